// Host profiles for the tracker's directed tests on the simulated host: a Scenario describes the
// host (devices with or without DMA logging and their limits, type1 or iommufd, IOMMU dirty bits,
// RAM below and above 4 GiB, an optional vIOMMU) and profileOf() turns it into a sim profile.
// The random never-lose scenarios live in oracle-scenario.ts and oracle-run.ts.

import type { DeviceJson, ProfileJson } from "@vfio-dirty/vfio-adapter/sim";
import type { Phase } from "../src/tracker.ts";

const MIB = 1 << 20;

export type Op =
  | { op: "run"; ms: number }
  | { op: "write"; dev: number; page: number; npages: number }
  | { op: "sync" }
  | { op: "phase"; to: Phase }
  | { op: "map"; slot: number; gpaPage: number; npages: number }
  | { op: "unmap"; slot: number }
  | { op: "fault"; kind: "report" | "type1" | "iommufd" | "unmap" | "error-state"; dev: number };

export interface Scenario {
  backend: "type1" | "iommufd";
  iommuDirty: boolean;
  lowMiB: number;
  highMiB: number; // 0: no RAM above 4 GiB
  devices: {
    logging: { maxRanges: number; maxSpanLog2: number | undefined; minPageSize: number } | undefined;
    p2p: boolean;
    preCopy: boolean;
    deviceTracking: boolean;
    workload: "uniform" | "hot-set" | "ring" | "bursts" | "idle";
    rate: number;
  }[];
  viommu: boolean;
  windowMiB: number;
  /** Phase right after start (most syncs in "setup" do nothing). */
  startPhase: Phase;
  ops: Op[];
}

/** The vIOMMU aperture workloads write in: 32 MiB at 256 MiB. */
const APERTURE = { iova: 256n * BigInt(MIB), length: 32n * BigInt(MIB) };

export function bdfOf(i: number): string {
  return `0000:3b:00.${i + 1}`;
}

export function profileOf(s: Scenario, name = "scenario"): ProfileJson {
  const ram = [{ gpa: "0", length: `${s.lowMiB}MiB`, kind: "ram" as const }];
  if (s.highMiB > 0) ram.push({ gpa: "4GiB", length: `${s.highMiB}MiB`, kind: "ram" });
  const region = s.viommu
    ? [{ iova: `0x${APERTURE.iova.toString(16)}`, length: `0x${APERTURE.length.toString(16)}` }]
    : ram.map((r) => ({ iova: r.gpa, length: r.length }));
  const devices: DeviceJson[] = s.devices.map((d, i) => ({
    bdf: bdfOf(i),
    vendor: "0x15b3",
    device: "0x101e",
    driver: d.logging ? "mlx5_vfio_pci" : "vfio-pci",
    group: 20 + i,
    migration: { flags: d.p2p ? ["stop-copy", "p2p", "pre-copy"] : ["stop-copy", "pre-copy"] },
    ...(d.logging
      ? {
          dmaLogging: {
            maxRanges: d.logging.maxRanges,
            ...(d.logging.maxSpanLog2 ? { maxSpanLog2: d.logging.maxSpanLog2 } : {}),
            minPageSize: d.logging.minPageSize,
          },
        }
      : {}),
    iommuDirty: s.iommuDirty,
    workload: d.workload === "idle" ? { kind: "idle" } : { kind: d.workload, pagesPerSecond: d.rate, region },
  }));
  return {
    name,
    kernel: "6.12",
    seed: 1,
    iommu: { vendor: "intel", dirtyTracking: s.iommuDirty },
    memory: ram,
    devices,
  };
}

// Random tracking scenarios on the simulated host, and the never-lose oracle.
//
// A scenario is a random host profile (devices with or without DMA logging and with their own
// limits, type1 or iommufd, IOMMU dirty bits or not, small guests with RAM below and above
// 4 GiB, an optional vIOMMU) and a random sequence of operations: time passing (workloads write),
// explicit DMA writes, syncs, phase changes, vIOMMU map/unmap and injected faults. After every
// sync, every page the ground truth says a device wrote since its unit was last read must be in
// the report. Shared by `npm test` (2,000+ scenarios) and `npm run test:long` (100,000).

import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import type { DeviceJson, ProfileJson } from "@vfio-dirty/vfio-adapter/sim";
import fc from "fast-check";
import type { Bitmap, BitmapCore } from "../src/bitmap.ts";
import { openTracker } from "../src/open.ts";
import type { StrategyName } from "../src/select.ts";
import type { Phase, Tracker } from "../src/tracker.ts";
import { openSim, simProfile } from "./sim-helpers.ts";

const MIB = 1 << 20;
const GIB = 1n << 30n;

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

/** vIOMMU IOVA slots: 16 slots of 1 MiB at 256 MiB + slot * 2 MiB (holes between them). */
const SLOT_BASE = 256n * BigInt(MIB);
const SLOT_STRIDE = 2n * BigInt(MIB);
const APERTURE = { iova: SLOT_BASE, length: 32n * BigInt(MIB) };

export const arbScenario: fc.Arbitrary<Scenario> = fc
  .record({
    backend: fc.constantFrom<"type1" | "iommufd">("type1", "iommufd"),
    iommuDirty: fc.boolean(),
    lowMiB: fc.constantFrom(4, 8, 16),
    highMiB: fc.constantFrom(0, 0, 4),
    devices: fc.array(
      fc.record({
        logging: fc.option(
          fc.record({
            maxRanges: fc.integer({ min: 1, max: 4 }),
            maxSpanLog2: fc.option(fc.constantFrom(24, 33, 42), { nil: undefined }),
            minPageSize: fc.constantFrom(4096, 4096, 8192, 2 * MIB),
          }),
          { nil: undefined, freq: 3 },
        ),
        p2p: fc.boolean(),
        preCopy: fc.oneof(
          { weight: 4, arbitrary: fc.constant(true) },
          { weight: 1, arbitrary: fc.constant(false) },
        ),
        deviceTracking: fc.oneof(
          { weight: 6, arbitrary: fc.constant(true) },
          { weight: 1, arbitrary: fc.constant(false) },
        ),
        workload: fc.constantFrom("uniform", "hot-set", "ring", "bursts", "idle") as fc.Arbitrary<
          "uniform" | "hot-set" | "ring" | "bursts" | "idle"
        >,
        rate: fc.integer({ min: 50, max: 3000 }),
      }),
      { minLength: 1, maxLength: 3 },
    ),
    viommu: fc.boolean(),
    windowMiB: fc.constantFrom(1, 2, 64, 65536),
    startPhase: fc.constantFrom<Phase>("setup", "pre-copy", "pre-copy", "pre-copy", "stop-copy"),
  })
  .chain((base) => {
    const nd = base.devices.length;
    const op: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 5,
        arbitrary: fc.record({ op: fc.constant("run" as const), ms: fc.integer({ min: 1, max: 200 }) }),
      },
      {
        weight: 3,
        arbitrary: fc.record({
          op: fc.constant("write" as const),
          dev: fc.nat(nd - 1),
          page: fc.nat(8191),
          npages: fc.integer({ min: 1, max: 4 }),
        }),
      },
      { weight: 5, arbitrary: fc.constant({ op: "sync" as const }) },
      {
        weight: 1,
        arbitrary: fc.record({
          op: fc.constant("phase" as const),
          to: fc.constantFrom<Phase>("pre-copy", "stop-copy"),
        }),
      },
      {
        weight: base.viommu ? 4 : 0,
        arbitrary: fc.record({
          op: fc.constant("map" as const),
          slot: fc.nat(15),
          gpaPage: fc.nat(base.lowMiB * 256 - 256),
          npages: fc.integer({ min: 1, max: 256 }),
        }),
      },
      {
        weight: base.viommu ? 2 : 0,
        arbitrary: fc.record({ op: fc.constant("unmap" as const), slot: fc.nat(15) }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          op: fc.constant("fault" as const),
          kind: fc.constantFrom("report", "type1", "iommufd", "unmap", "error-state") as fc.Arbitrary<
            "report" | "type1" | "iommufd" | "unmap" | "error-state"
          >,
          dev: fc.nat(nd - 1),
        }),
      },
    );
    return fc.array(op, { minLength: 4, maxLength: 30 }).map((ops) => ({ ...base, ops }));
  });

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

export interface ScenarioResult {
  syncs: number;
  strategy: StrategyName | "mixed";
  /** Pages the reports held, summed over syncs, and pages truly written in those intervals. */
  reported: number;
  written: number;
  events: number;
}

let sharedCore: BitmapCore | undefined;

/** Run one scenario; throws (with the reason) on a lost page or a tracking left running. */
export function runScenario(s: Scenario): ScenarioResult {
  sharedCore ??= loadBitmapCoreSync();
  const core = sharedCore;
  const sim = simProfile(profileOf(s));
  const session = openSim(sim, s.backend);
  let tracker: Tracker | undefined;
  const result: ScenarioResult = { syncs: 0, strategy: "all-dirty", reported: 0, written: 0, events: 0 };
  try {
    const devices = Object.fromEntries(
      s.devices.map((d, i) => [
        bdfOf(i),
        { deviceDirtyPageTracking: d.deviceTracking, preCopyDirtyPageTracking: d.preCopy },
      ]),
    );
    const opened = openTracker(session.target, {
      core,
      memory: session.memory,
      enableMigration: "on",
      ignoreBlockers: true,
      devices,
      windowBytes: BigInt(s.windowMiB) * BigInt(MIB),
      ...(s.viommu ? { viommu: true, viommuAperture: [APERTURE], mapper: session.mapper } : {}),
    });
    tracker = opened.tracker;
    result.strategy = opened.choice.strategy;
    const unitOf = (bdf: string): string =>
      opened.choice.strategy === "device" ? bdf : opened.choice.strategy === "all-dirty" ? "all" : "iommu";
    // Pages written and not yet reported, per device; and when the last (non-skipped) sync ran.
    const pending = new Map<string, Set<number>>();
    let lastSync = 0;
    const slots = new Map<number, { iova: bigint; length: bigint }>();
    tracker.start();
    if (s.startPhase !== "setup") tracker.setPhase(s.startPhase);
    const startedAt = sim.clock.now();
    for (const [i] of s.devices.entries()) pending.set(bdfOf(i), new Set());
    lastSync = startedAt;
    for (const o of s.ops) {
      switch (o.op) {
        case "run":
          sim.run(o.ms);
          break;
        case "write": {
          // With a vIOMMU, aim at the slots (mapped or not) rather than anywhere in the aperture.
          const iova = s.viommu
            ? SLOT_BASE + BigInt(o.page % 16) * SLOT_STRIDE + BigInt(Math.floor(o.page / 16) % 256) * 4096n
            : BigInt(o.page % (s.lowMiB * 256)) * 4096n;
          // Write now, then let time pass: a sync at this same instant would otherwise be
          // ambiguous (the sim's workloads write in [from, to), i.e. after a sync at `to`).
          sim.dmaWrite(bdfOf(o.dev), iova, BigInt(o.npages) * 4096n);
          sim.run(1);
          break;
        }
        case "phase":
          if (o.to === "pre-copy" && tracker.phase === "setup") tracker.setPhase("pre-copy");
          if (o.to === "stop-copy") tracker.setPhase("stop-copy");
          break;
        case "map": {
          if (!s.viommu || slots.has(o.slot)) break;
          const iova = SLOT_BASE + BigInt(o.slot) * SLOT_STRIDE;
          const length = BigInt(Math.min(o.npages, 256)) * 4096n;
          tracker.map(iova, BigInt(o.gpaPage) * 4096n, length);
          slots.set(o.slot, { iova, length });
          break;
        }
        case "unmap": {
          const m = slots.get(o.slot);
          if (!m) break;
          try {
            tracker.unmap(m.iova, m.length);
            slots.delete(o.slot);
          } catch {
            // The kernel refused the unmap (an injected fault): the mapping stays, and stays tracked.
          }
          break;
        }
        case "fault": {
          const bdf = bdfOf(o.dev);
          if (o.kind === "report") sim.failNext("DMA_LOGGING_REPORT", "EIO", bdf);
          else if (o.kind === "type1") sim.failNext("VFIO_IOMMU_DIRTY_PAGES(GET_BITMAP)", "EIO");
          else if (o.kind === "iommufd") sim.failNext("IOMMU_HWPT_GET_DIRTY_BITMAP", "EIO");
          else if (o.kind === "unmap")
            sim.failNext(s.backend === "type1" ? "VFIO_IOMMU_UNMAP_DMA" : "IOMMU_IOAS_UNMAP", "EIO");
          else sim.setDeviceError(bdf);
          break;
        }
        case "sync": {
          const now = sim.clock.now();
          const r = tracker.sync();
          result.events += r.events.length;
          if (r.skipped) break;
          result.syncs++;
          const got = r.bitmap!;
          // The counts are the bitmap's, however they were obtained (piece counts or a recount).
          if (r.dirtyPages !== got.count())
            throw new Error(`sync ${r.seq}: dirtyPages ${r.dirtyPages} but the bitmap has ${got.count()}`);
          for (const sec of r.perSection) {
            const n = got.count(Number(sec.iova / got.pageSize), Number(sec.length / got.pageSize));
            if (sec.pages !== n)
              throw new Error(
                `sync ${r.seq}: section 0x${sec.iova.toString(16)} says ${sec.pages}, bitmap ${n}`,
              );
          }
          for (const [i] of s.devices.entries()) {
            const bdf = bdfOf(i);
            const unit = unitOf(bdf);
            // The oracle: a page written at time t must be in some report of a sync at or after t,
            // at the latest the first one that reads its unit. (Bits read at a vIOMMU unmap are
            // reported at the next sync even when the unit itself is skipped in pre-copy, as QEMU
            // sets them in the RAM bitmap right away.)
            const set = pending.get(bdf)!;
            const truth = sim.writtenSince(lastSync, { device: bdf });
            result.written += truth.length;
            for (const page of truth) set.add(page);
            for (const page of set) if (covers(got, page)) set.delete(page);
            if (r.perDevice[unit]?.queried && set.size > 0) {
              const page = set.values().next().value!;
              throw new Error(
                `lost page: gpa 0x${(BigInt(page) * 4096n).toString(16)} written by ${bdf} (unit ${unit}, ${r.perDevice[unit]?.strategy}) not reported by sync ${r.seq}`,
              );
            }
          }
          lastSync = now;
          result.reported += r.dirtyPages;
          break;
        }
      }
    }
  } finally {
    tracker?.close();
    session.close();
  }
  if (sim.trackingActive()) throw new Error(`tracking left running: ${JSON.stringify(sim.trackingState())}`);
  return result;
}

function covers(b: Bitmap, page4k: number): boolean {
  const addr = BigInt(page4k) * 4096n;
  if (addr < b.base) return false;
  const bit = (addr - b.base) / b.pageSize;
  return bit < BigInt(b.nbits) && b.test(Number(bit));
}

export { GIB };

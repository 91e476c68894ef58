// npm run bench:policy: the two policies for vIOMMU mappings device logging cannot see
// (TrackerConfig.viommu.untracked), measured on guest workloads a VMM meets, on the simulated
// host. For each: pages reported against pages the device truly wrote (the over-report ratio),
// syncs that re-armed logging, and pages lost (must be 0).
//
//   strict-dma-api   the guest maps short-lived 64 KiB buffers at fresh IOVAs outside what logging
//                    was started on (an IOVA allocator moving upward), the device writes a few
//                    pages of each, the guest unmaps them before the next sync (intel_iommu=strict)
//   long-lived       a 256 MiB buffer mapped outside after start and kept, written sparsely
//   growing          one more 2 MiB buffer outside each interval, all kept, each written a little
// Every workload also writes 1,000 random pages a sync into 512 MiB mapped at start.

import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import type { ProfileJson } from "@vfio-dirty/vfio-adapter/sim";
import { openTracker } from "../src/open.ts";
import type { UntrackedPolicy } from "../src/tracker.ts";
import { openSim, simProfile } from "../test/sim-helpers.ts";

const MIB = 1n << 20n;
const PAGE = 4096n;
const BDF = "0000:3b:00.1";
const SYNCS = 30;
const BOOT = { iova: 0x1_0000_0000n, gpa: 0n, length: 512n * MIB };
const OUTSIDE = 0x10_0000_0000n; // where the guest's later mappings go

type Workload = "strict-dma-api" | "long-lived" | "growing";

export interface Result {
  workload: Workload;
  policy: UntrackedPolicy;
  written: number;
  reported: number;
  rearms: number;
  lost: number;
}

function profile(): ProfileJson {
  return {
    name: "untracked-policy",
    kernel: "6.12",
    seed: 1,
    iommu: { vendor: "intel", dirtyTracking: false },
    memory: [{ gpa: "0", length: "1GiB", kind: "ram" }],
    viommu: { mappings: [] },
    devices: [
      {
        bdf: BDF,
        vendor: "0x15b3",
        device: "0x101e",
        driver: "mlx5_vfio_pci",
        group: 20,
        migration: { flags: ["stop-copy", "p2p", "pre-copy"] },
        dmaLogging: { maxRanges: 4 },
        workload: { kind: "idle" },
      },
    ],
  } as ProfileJson;
}

function run(workload: Workload, policy: UntrackedPolicy): Result {
  const core = loadBitmapCoreSync();
  const sim = simProfile(profile());
  const s = openSim(sim, "type1");
  const { tracker } = openTracker(s.target, {
    core,
    memory: s.memory,
    viommu: true,
    viommuAperture: [{ iova: BOOT.iova, length: BOOT.length }],
    viommuUntracked: policy,
    mapper: s.mapper,
  });
  const mapped: { iova: bigint; gpa: bigint; length: bigint }[] = [];
  const owed = new Set<bigint>();
  const result: Result = { workload, policy, written: 0, reported: 0, rearms: 0, lost: 0 };
  let rng = 12345;
  const rand = (n: number) => {
    rng = (Math.imul(rng, 1103515245) + 12345) >>> 0;
    return rng % n;
  };
  const map = (iova: bigint, gpa: bigint, length: bigint) => {
    tracker.map(iova, gpa, length);
    mapped.push({ iova, gpa, length });
  };
  const unmap = (iova: bigint, length: bigint) => {
    tracker.unmap(iova, length);
    mapped.splice(
      mapped.findIndex((m) => m.iova === iova),
      1,
    );
  };
  const write = (iova: bigint) => {
    const m = mapped.find((x) => iova >= x.iova && iova < x.iova + x.length)!;
    sim.dmaWrite(BDF, iova, 8n);
    const gpa = m.gpa + (iova - m.iova);
    if (!owed.has(gpa)) result.written++;
    owed.add(gpa);
  };
  try {
    map(BOOT.iova, BOOT.gpa, BOOT.length);
    tracker.start();
    tracker.setPhase("pre-copy");
    let next = OUTSIDE;
    for (let i = 0; i < SYNCS; i++) {
      for (let k = 0; k < 1000; k++) write(BOOT.iova + BigInt(rand(Number(BOOT.length / PAGE))) * PAGE);
      if (workload === "strict-dma-api") {
        for (let b = 0; b < 8; b++) {
          const gpa = 512n * MIB + BigInt(rand(4096)) * 16n * PAGE;
          map(next, gpa, 16n * PAGE);
          for (let p = 0n; p < 4n; p++) write(next + BigInt(rand(16)) * PAGE);
          unmap(next, 16n * PAGE);
          next += 16n * PAGE;
        }
      } else if (workload === "long-lived") {
        if (i === 1) map(OUTSIDE, 512n * MIB, 256n * MIB);
        if (i >= 1) for (let k = 0; k < 100; k++) write(OUTSIDE + BigInt(rand(65536)) * PAGE);
      } else {
        map(next, 512n * MIB + BigInt(i) * 2n * MIB, 2n * MIB);
        next += 2n * MIB;
        for (const m of mapped.filter((x) => x.iova >= OUTSIDE))
          for (let k = 0; k < 4; k++) write(m.iova + BigInt(rand(512)) * PAGE);
      }
      sim.run(1);
      const r = tracker.sync();
      result.reported += r.dirtyPages;
      result.rearms += r.events.filter((e) => e.kind === "re-armed").length;
      for (const g of owed) if (!r.bitmap!.test(Number(g / PAGE))) result.lost++;
      owed.clear();
    }
  } finally {
    tracker.close();
    s.close();
  }
  return result;
}

/** Every workload under every policy; prints the table. Throws if any page was lost. */
export function benchUntrackedPolicy(): Result[] {
  const rows: Result[] = [];
  for (const w of ["strict-dma-api", "long-lived", "growing"] as const)
    for (const p of ["report-dirty", "re-arm", "adaptive"] as const) rows.push(run(w, p));
  console.log("workload        policy         written   reported  over-report  re-arms  lost");
  for (const r of rows)
    console.log(
      `${r.workload.padEnd(15)} ${r.policy.padEnd(13)} ${String(r.written).padStart(8)} ${String(r.reported).padStart(10)} ${(r.reported / r.written).toFixed(2).padStart(11)}x ${String(r.rearms).padStart(8)} ${String(r.lost).padStart(5)}`,
    );
  if (rows.some((r) => r.lost > 0)) throw new Error("untracked-policy: pages lost");
  return rows;
}

// `npm run bench:policy` runs this file alone.
if (import.meta.url === `file://${process.argv[1]}`) benchUntrackedPolicy();

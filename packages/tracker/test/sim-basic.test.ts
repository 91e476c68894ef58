import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import type { ProfileJson } from "@vfio-dirty/vfio-adapter/sim";
import { describe, expect, it } from "vitest";
import type { Bitmap } from "../src/bitmap.ts";
import { openTracker } from "../src/open.ts";
import { openSim, simProfile } from "./sim-helpers.ts";

const core = loadBitmapCoreSync();

export function pagesOf(b: Bitmap): Set<number> {
  const out = new Set<number>();
  const ratio = Number(b.pageSize / 4096n);
  for (const [start, n] of b.runs())
    for (let i = start; i < start + n; i++)
      for (let k = 0; k < ratio; k++) out.add(Number(b.base / 4096n) + i * ratio + k);
  return out;
}

const mlx5: ProfileJson = {
  name: "t-mlx5",
  kernel: "6.12",
  iommu: { vendor: "intel", dirtyTracking: false },
  memory: [
    { gpa: "0", length: "64MiB", kind: "ram" },
    { gpa: "4GiB", length: "64MiB", kind: "ram" },
  ],
  devices: [
    {
      bdf: "0000:3b:00.1",
      vendor: "0x15b3",
      device: "0x101e",
      driver: "mlx5_vfio_pci",
      group: 12,
      migration: { flags: ["stop-copy", "p2p", "pre-copy"] },
      dmaLogging: { maxRanges: 4, maxSpanLog2: 42 },
      workload: { kind: "uniform", pagesPerSecond: 2000, region: [{ iova: "0", length: "64MiB" }] },
    },
  ],
};

describe("tracking a simulated mlx5-like VF", () => {
  it("device logging through pre-copy and stop-copy, exact at its page size", () => {
    const sim = simProfile(mlx5);
    const s = openSim(sim, "type1");
    try {
      const { tracker, choice } = openTracker(s.target, { core, memory: s.memory });
      expect(choice.strategy).toBe("device");
      using t = tracker;
      t.start();
      expect(sim.trackingState().device).toEqual(["0000:3b:00.1"]);
      let last = sim.clock.now();
      sim.run(50);
      expect(t.sync().skipped).toBe("setup");
      t.setPhase("pre-copy");
      for (let i = 0; i < 5; i++) {
        sim.run(100);
        const r = t.sync();
        const truth = sim.writtenSince(last);
        last = sim.clock.now();
        const got = pagesOf(r.bitmap!);
        for (const p of truth) expect(got.has(p)).toBe(true);
        // Exact: device logging at 4 KiB reports what was written, nothing more.
        expect(r.dirtyPages).toBe(new Set(truth).size);
        expect(r.kernelBytes).toBeGreaterThan(0);
        expect(r.perDevice["0000:3b:00.1"]!.pages).toBe(r.dirtyPages);
        expect(r.perSection[0]!.pages).toBe(r.dirtyPages);
      }
      t.setPhase("stop-copy");
      sim.run(100);
      const r = t.sync();
      expect(r.dirtyPages).toBe(new Set(sim.writtenSince(last)).size);
    } finally {
      s.close();
    }
    expect(sim.trackingActive()).toBe(false);
  });
});

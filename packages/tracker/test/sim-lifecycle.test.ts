// Lifecycle on the simulated host: idempotent start/stop, no sync work in setup, devices read only
// at stop-copy, windows, merging into a RAM bitmap at another page size, `await using`.

import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import type { SimHost } from "@vfio-dirty/vfio-adapter/sim";
import { describe, expect, it } from "vitest";
import type { Bitmap } from "../src/bitmap.ts";
import { openTracker } from "../src/open.ts";
import { TrackerStateError } from "../src/tracker.ts";
import { bdfOf, profileOf, type Scenario } from "./scenario.ts";
import { openSim, type SimSession, simProfile } from "./sim-helpers.ts";

const core = loadBitmapCoreSync();
const LOG = { maxRanges: 4, maxSpanLog2: undefined, minPageSize: 4096 };

function twoDevices(): Scenario {
  const dev = {
    logging: LOG,
    p2p: true,
    preCopy: true,
    deviceTracking: true,
    workload: "uniform" as const,
    rate: 3000,
  };
  return {
    backend: "type1",
    iommuDirty: false,
    lowMiB: 16,
    highMiB: 4,
    devices: [dev, { ...dev, preCopy: false }],
    viommu: false,
    windowMiB: 64,
    startPhase: "pre-copy",
    ops: [],
  };
}

function session(): { sim: SimHost; s: SimSession } {
  const sim = simProfile(profileOf(twoDevices(), "life"));
  return { sim, s: openSim(sim, "type1") };
}

function pages(b: Bitmap): Set<number> {
  const out = new Set<number>();
  for (const [start, n] of b.runs())
    for (let i = start; i < start + n; i++) out.add(Number(b.base / 4096n) + i);
  return out;
}

describe("tracker lifecycle on the sim", () => {
  it('setPhase still takes the deprecated spelling "precopy", and reports "pre-copy"', () => {
    const { s } = session();
    try {
      const { tracker: t } = openTracker(s.target, { core, memory: s.memory });
      t.start();
      t.setPhase("precopy");
      expect(t.phase).toBe("pre-copy");
      expect(t.sync().phase).toBe("pre-copy");
      t.setPhase("pre-copy"); // the same phase: not a step back
      expect(() => t.setPhase("setup")).toThrow(TrackerStateError);
      t.close();
    } finally {
      s.close();
    }
  });

  it("start and stop are idempotent; sync needs a started tracker; phases only go forward", () => {
    const { sim, s } = session();
    try {
      const { tracker: t } = openTracker(s.target, { core, memory: s.memory });
      expect(() => t.sync()).toThrow(TrackerStateError);
      t.start();
      t.start(); // a second START would be EBUSY in the kernel: it must not be sent
      expect(t.events.filter((e) => e.kind === "degraded")).toEqual([]);
      t.setPhase("pre-copy");
      expect(() => t.setPhase("setup")).toThrow(TrackerStateError);
      t.stop();
      t.stop();
      expect(sim.trackingActive()).toBe(false);
      t.close();
      expect(() => t.start()).toThrow(TrackerStateError);
    } finally {
      s.close();
    }
  });

  it("setup: no sync work; pre-copy skips preCopyDirtyPageTracking=false devices; stop-copy reads them whole", () => {
    const { sim, s } = session();
    try {
      const devices = { [bdfOf(1)]: { preCopyDirtyPageTracking: false } };
      const { tracker } = openTracker(s.target, { core, memory: s.memory, devices });
      using t = tracker;
      t.start();
      sim.run(100);
      const setup = t.sync();
      expect(setup.skipped).toBe("setup");
      expect(setup.kernelBytes).toBe(0);
      expect(setup.bitmap).toBeUndefined();
      t.setPhase("pre-copy");
      const start = 0;
      for (let i = 0; i < 3; i++) {
        sim.run(100);
        const r = t.sync();
        expect(r.perDevice[bdfOf(0)]!.queried).toBe(true);
        expect(r.perDevice[bdfOf(1)]!.queried).toBe(false);
      }
      t.setPhase("stop-copy");
      sim.run(100);
      const r = t.sync();
      expect(r.perDevice[bdfOf(1)]!.queried).toBe(true);
      // Everything device 1 wrote since tracking started, setup included, is in this report.
      const got = pages(r.bitmap!);
      for (const p of sim.writtenSince(start, { device: bdfOf(1) })) expect(got.has(p)).toBe(true);
    } finally {
      s.close();
    }
  });

  it("windows: onWindow hands out bounded bitmaps that together hold the full report", () => {
    const { sim, s } = session();
    try {
      const { tracker } = openTracker(s.target, { core, memory: s.memory, windowBytes: 1n << 20n });
      using t = tracker;
      t.start();
      t.setPhase("stop-copy");
      sim.run(200);
      const seen = new Set<number>();
      let windows = 0;
      const r = t.sync({
        onWindow: (w) => {
          windows++;
          expect(BigInt(w.nbits) * w.pageSize).toBeLessThanOrEqual(1n << 20n);
          for (const p of pages(w)) seen.add(p);
        },
      });
      expect(r.bitmap).toBeUndefined();
      expect(windows).toBe(20); // 16 MiB + 4 MiB of RAM in 1 MiB windows
      expect(seen.size).toBe(r.dirtyPages);
      for (const p of sim.writtenSince(0)) expect(seen.has(p)).toBe(true);
    } finally {
      s.close();
    }
  });

  it("merges into a RAM bitmap at another page size (2 MiB) without losing a page", () => {
    const { sim, s } = session();
    try {
      const { tracker } = openTracker(s.target, { core, memory: s.memory });
      using t = tracker;
      using ram = core.bitmap({ nbits: 2048 + 2, pageSize: 2n << 20n, base: 0n }); // 4 GiB + 4 MiB
      t.start();
      t.setPhase("stop-copy");
      sim.run(100);
      const r = t.sync({ into: ram });
      expect(r.notMerged).toBe(0);
      const big = new Set(sim.writtenSince(0).map((p) => Math.floor(p / 512)));
      for (const b of big) expect(ram.test(b)).toBe(true);
      expect(ram.count()).toBe(big.size);
    } finally {
      s.close();
    }
  });

  it("await using stops tracking", async () => {
    const { sim, s } = session();
    try {
      {
        await using t = openTracker(s.target, { core, memory: s.memory }).tracker;
        t.start();
        expect(sim.trackingActive()).toBe(true);
      }
      expect(sim.trackingActive()).toBe(false);
    } finally {
      s.close();
    }
  });
});

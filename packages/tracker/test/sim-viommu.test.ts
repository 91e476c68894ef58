// vIOMMU: dirty bits of a mapping removed while tracking runs are kept, for each strategy.

import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import { describe, expect, it } from "vitest";
import { openTracker } from "../src/open.ts";
import { bdfOf, profileOf, type Scenario } from "./scenario.ts";
import { openSim, simProfile } from "./sim-helpers.ts";

const core = loadBitmapCoreSync();
const MIB = 1n << 20n;
const IOVA = 256n * MIB;

function scenario(logging: boolean, iommuDirty: boolean): Scenario {
  return {
    backend: iommuDirty ? "iommufd" : "type1",
    iommuDirty,
    lowMiB: 16,
    highMiB: 0,
    devices: [
      {
        logging: logging ? { maxRanges: 4, maxSpanLog2: undefined, minPageSize: 4096 } : undefined,
        p2p: true,
        preCopy: true,
        deviceTracking: true,
        workload: "idle",
        rate: 1,
      },
    ],
    viommu: true,
    windowMiB: 64,
    startPhase: "precopy",
    ops: [],
  };
}

describe.each([
  ["device", true, false],
  ["type1", false, false],
  ["iommufd", false, true],
] as const)("vIOMMU with %s tracking", (strategy, logging, iommuDirty) => {
  it("translates IOVA reports to GPA and keeps the bits of a removed mapping", () => {
    const sim = simProfile(profileOf(scenario(logging, iommuDirty), `viommu-${strategy}`));
    const s = openSim(sim, iommuDirty ? "iommufd" : "type1");
    try {
      const { tracker, choice } = openTracker(s.target, {
        core,
        memory: s.memory,
        viommu: true,
        viommuAperture: [{ iova: IOVA, length: 32n * MIB }],
        mapper: s.mapper,
      });
      expect(choice.strategy).toBe(strategy);
      using t = tracker;
      t.map(IOVA, 8n * MIB, 2n * MIB); // IOVA 256M -> GPA 8M
      t.map(IOVA + 4n * MIB, 2n * MIB, MIB); // IOVA 260M -> GPA 2M
      t.start();
      t.setPhase("precopy");
      sim.run(1);
      const bdf = bdfOf(0);
      expect(sim.dmaWrite(bdf, IOVA + 0x3000n, 0x1000n)).toBe(0x1000n);
      expect(sim.dmaWrite(bdf, IOVA + 4n * MIB + 0x5000n, 0x1000n)).toBe(0x1000n);
      // Remove the second mapping before the sync: its dirty page must still be reported.
      t.unmap(IOVA + 4n * MIB, MIB);
      expect(sim.dmaWrite(bdf, IOVA + 4n * MIB, 0x1000n)).toBe(0n); // now an IOMMU fault
      const r = t.sync();
      const dirty = (gpa: bigint) => r.bitmap!.test(Number(gpa / 4096n));
      expect(dirty(8n * MIB + 0x3000n)).toBe(true);
      expect(dirty(2n * MIB + 0x5000n)).toBe(true);
      if (strategy === "device") expect(r.dirtyPages).toBe(2); // exact
      // The next sync no longer sees the removed mapping.
      sim.run(1);
      expect(t.sync().dirtyPages).toBe(strategy === "type1" ? 512 : 0); // type1: every mapped page
    } finally {
      s.close();
    }
    expect(sim.trackingActive()).toBe(false);
  });
});

describe("vIOMMU without an aperture", () => {
  it("device logging starts on the IOVA ranges mapped at start(); a later mapping outside them is always dirty", () => {
    const sim = simProfile(profileOf(scenario(true, false), "viommu-noaperture"));
    const s = openSim(sim, "type1");
    try {
      const { tracker } = openTracker(s.target, { core, memory: s.memory, viommu: true, mapper: s.mapper });
      using t = tracker;
      t.map(IOVA, 8n * MIB, 2n * MIB);
      t.start();
      expect(sim.devices()[0]!.dmaLogging.ranges).toEqual([{ start: IOVA, last: IOVA + 2n * MIB - 1n }]);
      t.setPhase("precopy");
      t.map(IOVA + 16n * MIB, 2n * MIB, MIB); // outside what the device logs
      expect(t.events.some((e) => e.kind === "untracked-mapping")).toBe(true);
      sim.dmaWrite(bdfOf(0), IOVA + 0x1000n, 0x1000n);
      sim.dmaWrite(bdfOf(0), IOVA + 16n * MIB, 0x1000n);
      sim.run(1);
      const r = t.sync();
      expect(r.bitmap!.test(Number((8n * MIB + 0x1000n) / 4096n))).toBe(true);
      // The untracked mapping: all of its 256 pages, every sync.
      expect(r.dirtyPages).toBe(1 + 256);
    } finally {
      s.close();
    }
  });
});

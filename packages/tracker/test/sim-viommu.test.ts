// vIOMMU: dirty bits of a mapping removed while tracking runs are kept, for each strategy.

import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import { describe, expect, it } from "vitest";
import type { BitmapCore } from "../src/bitmap.ts";
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
    startPhase: "pre-copy",
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
      t.setPhase("pre-copy");
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
      t.setPhase("pre-copy");
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

describe("vIOMMU report rewritten by copying", () => {
  // A core whose translation tables record whether each translate copied or ORed.
  function spyCore(modes: boolean[]): BitmapCore {
    return {
      bitmap: (o) => core.bitmap(o),
      convert: (src, dst) => core.convert(src as never, dst as never),
      density: (b, n) => core.density(b as never, n),
      xlatTable: (pageSize) => {
        const t = core.xlatTable(pageSize);
        return {
          map: (iova, gpa, length) => t.map(iova, gpa, length),
          unmap: (iova, length) => t.unmap(iova, length),
          retire: () => t.retire(),
          translate: (src, dst, opts) => {
            modes.push(opts?.copy === true);
            return t.translate(src as never, dst as never, opts);
          },
          clearUnmappedGpa: (dst) => t.clearUnmappedGpa(dst as never),
          free: () => t.free(),
        };
      },
    };
  }

  /** A simulated vIOMMU setup whose tracker records, per translate, whether it copied. */
  function openSpied(
    logging: boolean,
    iommuDirty: boolean,
    name: string,
    extra: { windowBytes?: bigint } = {},
  ) {
    const sim = simProfile(profileOf(scenario(logging, iommuDirty), name));
    const s = openSim(sim, iommuDirty ? "iommufd" : "type1");
    const modes: boolean[] = [];
    try {
      const opened = openTracker(s.target, {
        core: spyCore(modes),
        memory: s.memory,
        viommu: true,
        viommuAperture: [{ iova: IOVA, length: 32n * MIB }],
        mapper: s.mapper,
        ...extra,
      });
      return { sim, s, modes, ...opened };
    } catch (e) {
      s.close();
      throw e;
    }
  }

  it.each([
    ["one-to-one mappings: copied", false],
    ["two IOVAs on one guest page: ORed", true],
  ])("%s, and each report holds exactly its own sync's pages", (_name, manyToOne) => {
    const { sim, s, modes, tracker } = openSpied(true, false, "viommu-copy");
    try {
      using t = tracker;
      t.map(IOVA, 8n * MIB, 2n * MIB); // IOVA 256M -> GPA 8M
      t.map(IOVA + 4n * MIB, 2n * MIB, MIB); // IOVA 260M -> GPA 2M
      if (manyToOne) t.map(IOVA + 8n * MIB, 8n * MIB, MIB); // IOVA 264M -> GPA 8M as well
      t.start();
      t.setPhase("pre-copy");
      const bdf = bdfOf(0);
      const page = (gpa: bigint): number => Number(gpa / 4096n);
      sim.dmaWrite(bdf, IOVA + 0x3000n, 0x2000n);
      sim.dmaWrite(bdf, IOVA + 4n * MIB + 0x5000n, 0x1000n);
      sim.run(1);
      const r1 = t.sync();
      expect([...r1.bitmap!.runs()]).toEqual([
        [page(2n * MIB + 0x5000n), 1],
        [page(8n * MIB + 0x3000n), 2],
      ]);
      // Next sync: other pages; the mapping at GPA 2M goes away, leaving a GPA hole whose old
      // bit must not survive in the reused report.
      t.unmap(IOVA + 4n * MIB, MIB);
      sim.dmaWrite(bdf, IOVA + 0x10_0000n, 0x1000n);
      sim.run(1);
      const r2 = t.sync();
      expect([...r2.bitmap!.runs()]).toEqual([[page(8n * MIB + 0x10_0000n), 1]]);
      expect(r2.dirtyPages).toBe(1);
      sim.run(1);
      const r3 = t.sync();
      expect(r3.bitmap!.count()).toBe(0);
      expect(r3.dirtyPages).toBe(0);
      // The copy is taken exactly when no two mappings share a guest page.
      expect(modes.length).toBeGreaterThan(0);
      expect(new Set(modes)).toEqual(new Set([!manyToOne]));
    } finally {
      s.close();
    }
  });

  it("bits read at unmap time are gone from the report once their guest range is a hole (iommufd)", () => {
    const { sim, s, modes, tracker, choice } = openSpied(false, true, "viommu-copy-hole");
    try {
      expect(choice.strategy).toBe("iommufd");
      using t = tracker;
      t.map(IOVA, 8n * MIB, 2n * MIB);
      t.map(IOVA + 4n * MIB, 2n * MIB, MIB);
      t.start();
      t.setPhase("pre-copy");
      sim.run(1);
      t.sync();
      // Written, then unmapped: the unmap reads the bit (into the carry), the next report has it.
      sim.dmaWrite(bdfOf(0), IOVA + 4n * MIB + 0x5000n, 0x1000n);
      t.unmap(IOVA + 4n * MIB, MIB);
      sim.run(1);
      const r2 = t.sync();
      expect([...r2.bitmap!.runs()]).toEqual([[Number((2n * MIB + 0x5000n) / 4096n), 1]]);
      // Now GPA 2M..3M is covered by no mapping: the reused report must not keep that bit.
      sim.run(1);
      const r3 = t.sync();
      expect(r3.bitmap!.count()).toBe(0);
      expect(r3.dirtyPages).toBe(0);
      expect(modes.at(-1)).toBe(true);
    } finally {
      s.close();
    }
  });

  it("type1 windows that share an IOVA block are not copied (a later window would copy zeros over pages it never queried)", () => {
    // type1 cannot cut a mapping, so a mapping too long for the current window opens its own,
    // starting at the 64-page block where the previous window ends: their bitmaps overlap.
    const { sim, s, modes, tracker, choice } = openSpied(false, false, "viommu-copy-overlap", {
      windowBytes: 4n * MIB,
    });
    try {
      expect(choice.strategy).toBe("type1");
      using t = tracker;
      const a = MIB + 0x2000n; // ends 2 pages into a 64-page block
      t.map(IOVA, 4n * MIB, a);
      t.map(IOVA + MIB + 0x4000n, 8n * MIB, 4n * MIB); // starts 4 pages into that block
      t.start();
      t.setPhase("pre-copy");
      sim.run(1);
      const r = t.sync();
      // type1 reports every mapped page: all of both mappings, including a's last two pages.
      expect([...r.bitmap!.runs()]).toEqual([
        [Number((4n * MIB) / 4096n), Number(a / 4096n)],
        [Number((8n * MIB) / 4096n), 1024],
      ]);
      expect(modes.length).toBeGreaterThan(0);
      expect(modes.every((m) => !m)).toBe(true);
    } finally {
      s.close();
    }
  });
});

// A device clears every logging page a REPORT touches, keeping only the bits inside the REPORT
// (mlx5's firmware, the test driver's edu_log_read_and_clear, and the simulated host all do). So
// the tracker must never send a REPORT that cuts a logging page: not with windows smaller than a
// logging page, not at a RAM section's edge inside one, not at a vIOMMU mapping's edge.

import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import type { ProfileJson, SimHost } from "@vfio-dirty/vfio-adapter/sim";
import { describe, expect, it } from "vitest";
import type { Bitmap } from "../src/bitmap.ts";
import { openTracker } from "../src/open.ts";
import { openSim, simProfile } from "./sim-helpers.ts";

const core = loadBitmapCoreSync();
const BDF = "0000:3b:00.1";

/** One mlx5-like VF logging at `logPage`, RAM as given, a type1 container. */
function profile(logPage: number, memory: ProfileJson["memory"], viommu = false): ProfileJson {
  return {
    name: "partial-page",
    kernel: "6.12",
    seed: 1,
    iommu: { vendor: "intel", dirtyTracking: false },
    memory,
    ...(viommu ? { viommu: { mappings: [] } } : {}),
    devices: [
      {
        bdf: BDF,
        vendor: "0x15b3",
        device: "0x101e",
        driver: "mlx5_vfio_pci",
        group: 20,
        migration: { flags: ["stop-copy", "p2p", "pre-copy"] },
        dmaLogging: { minPageSize: logPage },
        workload: { kind: "idle" },
      },
    ],
  } as ProfileJson;
}

const has = (b: Bitmap, gpa: bigint): boolean => b.test(Number((gpa - b.base) / b.pageSize));

/** Every page in `writes` (GPA) is in the report of the next sync. */
function expectReported(sim: SimHost, sync: () => Bitmap, writes: readonly bigint[]): Bitmap {
  for (const gpa of writes) sim.dmaWrite(BDF, gpa, 8n);
  sim.run(1);
  const b = sync();
  expect(writes.filter((g) => !has(b, g)).map((g) => `0x${g.toString(16)}`)).toEqual([]);
  return b;
}

describe("REPORTs never cut a device logging page", () => {
  for (const windowMiB of [1n, 3n, 64n]) {
    it(`2 MiB logging pages, ${windowMiB} MiB windows, RAM sections ending and starting inside a logging page`, () => {
      // RAM [0, 3 MiB) and [3 MiB, 5 MiB) meet in the middle of logging page 1 (QEMU splits RAM at
      // odd places); RAM [7 MiB, 9 MiB) starts and ends in the middle of logging pages 3 and 4.
      const sim = simProfile(
        profile(2 << 20, [
          { gpa: "0", length: "3MiB", kind: "ram" },
          { gpa: "3MiB", length: "2MiB", kind: "ram" },
          { gpa: "7MiB", length: "2MiB", kind: "ram" },
        ]),
      );
      const s = openSim(sim, "type1");
      try {
        const { tracker } = openTracker(s.target, { core, memory: s.memory, windowBytes: windowMiB << 20n });
        using t = tracker;
        t.start();
        t.setPhase("pre-copy");
        const writes = [0x1ff000n, 0x200000n, 0x2ff000n, 0x300000n, 0x4ff000n, 0x700000n, 0x8ff000n];
        for (let round = 0; round < 3; round++) {
          const b = expectReported(sim, () => t.sync().bitmap!, writes);
          // Over-reporting stays inside RAM: nothing in the hole [5 MiB, 7 MiB).
          expect(b.count(1280, 512)).toBe(0);
        }
      } finally {
        s.close();
      }
      expect(sim.trackingActive()).toBe(false);
    });
  }

  it("2 MiB logging pages behind a vIOMMU: 4 KiB mappings sharing a logging page, read in 1 MiB windows", () => {
    const sim = simProfile(profile(2 << 20, [{ gpa: "0", length: "16MiB", kind: "ram" }], true));
    const s = openSim(sim, "type1");
    try {
      const { tracker } = openTracker(s.target, {
        core,
        memory: s.memory,
        windowBytes: 1n << 20n,
        viommu: true,
        viommuAperture: [{ iova: 0x1000_0000n, length: 0x100_0000n }],
        mapper: s.mapper,
      });
      using t = tracker;
      // Three 4 KiB mappings in one 2 MiB logging page, at IOVAs 1 MiB apart (so in different
      // 1 MiB windows if windows were not widened to whole logging pages), to scattered GPAs.
      const maps = [
        { iova: 0x1000_0000n, gpa: 0x30_0000n },
        { iova: 0x1010_0000n, gpa: 0x7f_f000n },
        { iova: 0x101f_f000n, gpa: 0x00_1000n },
      ];
      for (const m of maps) t.map(m.iova, m.gpa, 4096n);
      t.start();
      t.setPhase("pre-copy");
      for (let round = 0; round < 3; round++) {
        for (const m of maps) sim.dmaWrite(BDF, m.iova, 8n);
        sim.run(1);
        const r = t.sync();
        for (const m of maps) expect(has(r.bitmap!, m.gpa), `gpa 0x${m.gpa.toString(16)}`).toBe(true);
        // No stray IOVA bits: every dirty IOVA page translated (no "unmapped-dirty" event).
        expect(r.events.filter((e) => e.kind === "unmapped-dirty")).toEqual([]);
        expect(r.dirtyPages).toBe(r.bitmap!.count());
      }
    } finally {
      s.close();
    }
    expect(sim.trackingActive()).toBe(false);
  });
});

// Device tracking behind a vIOMMU, directed: the two page losses found in issue 12, each of
// QEMU's 2025-26 vIOMMU loss classes, unmaps over ranges with holes, and a DMA_LOGGING_STOP that
// keeps failing. The oracle is the test's own record of what it made the device write, translated
// through the test's own map of what was mapped at that instant.

import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import type { ProfileJson, SimHost } from "@vfio-dirty/vfio-adapter/sim";
import { describe, expect, it } from "vitest";
import type { Bitmap } from "../src/bitmap.ts";
import { type OpenOptions, openTracker } from "../src/open.ts";
import type { Tracker } from "../src/tracker.ts";
import { openSim, type SimSession, simProfile } from "./sim-helpers.ts";

const core = loadBitmapCoreSync();
const BDF = "0000:3b:00.1";
const MIB = 1n << 20n;
const TIB = 1n << 40n;

/** A VF with DMA logging (or only IOMMU dirty tracking), behind a vIOMMU, with `ramMiB` of RAM. */
function profile(opts: {
  logging: boolean;
  iommuDirty?: boolean;
  ramMiB?: number;
  kernel?: string;
}): ProfileJson {
  return {
    name: "viommu-losses",
    kernel: opts.kernel ?? "6.12",
    seed: 1,
    iommu: { vendor: "intel", dirtyTracking: opts.iommuDirty ?? false },
    memory: [{ gpa: "0", length: `${opts.ramMiB ?? 64}MiB`, kind: "ram" }],
    viommu: { mappings: [] },
    devices: [
      {
        bdf: BDF,
        vendor: "0x15b3",
        device: "0x101e",
        driver: opts.logging ? "mlx5_vfio_pci" : "vfio-pci",
        group: 20,
        migration: { flags: ["stop-copy", "p2p", "pre-copy"] },
        ...(opts.logging ? { dmaLogging: {} } : {}),
        iommuDirty: opts.iommuDirty ?? false,
        workload: { kind: "idle" },
      },
    ],
  } as ProfileJson;
}

/**
 * The test's own model of the vIOMMU: what is mapped now, and every guest page the device was
 * made to write (through what was mapped at that instant) that no sync has reported yet.
 */
class Oracle {
  readonly mapped: { iova: bigint; gpa: bigint; length: bigint }[] = [];
  readonly owed = new Set<bigint>();

  constructor(
    readonly sim: SimHost,
    readonly t: Tracker,
  ) {}

  map(iova: bigint, gpa: bigint, length: bigint): void {
    this.t.map(iova, gpa, length);
    this.mapped.push({ iova, gpa, length });
  }

  unmap(iova: bigint, length: bigint): void {
    this.t.unmap(iova, length);
    const end = iova + length;
    const keep = this.mapped.filter((m) => m.iova + m.length <= iova || m.iova >= end);
    this.mapped.splice(0, this.mapped.length, ...keep);
  }

  /** The device writes one page at `iova`; a write where nothing is mapped faults. */
  write(iova: bigint): void {
    const m = this.mapped.find((x) => iova >= x.iova && iova < x.iova + x.length);
    this.sim.dmaWrite(BDF, iova, 8n);
    if (m) this.owed.add(m.gpa + (iova - m.iova));
  }

  /** Sync: every page owed must be in the report; returns it. */
  sync(): Bitmap {
    this.sim.run(1);
    const b = this.t.sync().bitmap!;
    const lost = [...this.owed].filter((g) => !b.test(Number(g / 4096n)));
    expect(lost.map((g) => `gpa 0x${g.toString(16)}`)).toEqual([]);
    this.owed.clear();
    return b;
  }
}

function session(
  p: ProfileJson,
  backend: "type1" | "iommufd",
  opts: Partial<OpenOptions>,
  f: (o: Oracle, s: SimSession) => void,
): Tracker {
  const sim = simProfile(p);
  const s = openSim(sim, backend);
  let tracker: Tracker | undefined;
  try {
    tracker = openTracker(s.target, {
      core,
      memory: s.memory,
      viommu: true,
      mapper: s.mapper,
      ...opts,
    }).tracker;
    f(new Oracle(sim, tracker), s);
  } finally {
    tracker?.close();
    s.close();
  }
  expect(sim.trackingActive()).toBe(false);
  return tracker!;
}

const APERTURE = [{ iova: 0x1000_0000n, length: 16n * MIB }];

describe("loss 1: an untracked mapping unmapped before the next sync", () => {
  for (const where of ["outside", "straddling"] as const) {
    it(`device logging, a mapping ${where} the aperture, written through, unmapped before the sync`, () => {
      const iova = where === "outside" ? 0x4000_0000n : APERTURE[0]!.iova + 16n * MIB - 8192n;
      const t = session(profile({ logging: true }), "type1", { viommuAperture: APERTURE }, (o) => {
        o.t.start();
        o.t.setPhase("pre-copy");
        o.map(iova, 0x20_0000n, 4n * 4096n);
        o.write(iova + 4096n);
        o.unmap(iova, 4n * 4096n);
        const b = o.sync();
        // Reported once more after it went, then never again.
        expect(b.count()).toBe(4);
        expect(o.sync().count()).toBe(0);
      });
      expect(t.events.filter((e) => e.kind === "untracked-mapping")).toHaveLength(1);
    });
  }
});

describe("loss 2: no aperture and no mapping at start()", () => {
  it("logging starts on guest RAM; a later mapping at an IOVA outside RAM is reported", () => {
    const t = session(profile({ logging: true, ramMiB: 64 }), "type1", {}, (o) => {
      o.t.start();
      o.t.setPhase("pre-copy");
      o.map(0x8000_0000n, 0x10_0000n, 8192n); // 2 GiB: outside the 64 MiB of RAM logging started on
      o.write(0x8000_0000n);
      o.sync();
      o.write(0x8000_1000n);
      o.sync();
    });
    expect(t.events.some((e) => e.kind === "untracked-mapping")).toBe(true);
  });
});

describe("re-arm policy", () => {
  it("a mapping outside the logged space: the next sync re-arms over the mapped space, then tracks it exactly", () => {
    const t = session(
      profile({ logging: true }),
      "type1",
      { viommuAperture: APERTURE, viommuUntracked: "re-arm" },
      (o) => {
        o.map(APERTURE[0]!.iova, 0x40_0000n, 64n * 4096n);
        o.t.start();
        o.t.setPhase("pre-copy");
        o.map(0x4000_0000n, 0x20_0000n, 16n * 4096n);
        o.write(0x4000_2000n);
        expect(o.sync().count()).toBe(16); // the untracked mapping, all of it, until re-armed
        o.write(0x4000_3000n);
        // The re-arm's gap: everything mapped is reported once.
        expect(o.sync().count()).toBe(64 + 16);
        o.write(0x4000_5000n);
        o.write(APERTURE[0]!.iova);
        // Now logged: what was written, and the page written before the all-dirty sync (that sync
        // marked everything instead of reading the log, so the log still held it).
        expect(o.sync().count()).toBe(3);
        expect(o.sync().count()).toBe(0);
      },
    );
    expect(t.events.filter((e) => e.kind === "re-armed")).toHaveLength(1);
  });

  it("a re-arm the device refuses (span limit) goes back onto the old ranges; the mapping stays reported", () => {
    const p = profile({ logging: true });
    // One range, 256 MiB at most: the device combines ranges into one, so two mappings 256 GiB
    // apart cannot be logged together.
    p.devices[0]!.dmaLogging = { maxRanges: 1, maxSpanLog2: 28 };
    const t = session(p, "type1", { viommuAperture: APERTURE, viommuUntracked: "re-arm" }, (o) => {
      o.map(APERTURE[0]!.iova, 0x40_0000n, 4096n);
      o.t.start();
      o.t.setPhase("pre-copy");
      o.map(0x40_0000_0000n, 0x20_0000n, 4096n); // 256 GiB away: no plan fits 2^28
      o.write(0x40_0000_0000n);
      o.sync();
      o.write(0x40_0000_0000n);
      o.write(APERTURE[0]!.iova);
      o.sync();
      o.write(0x40_0000_0000n);
      o.sync();
    });
    expect(t.events.some((e) => e.kind === "re-arm-refused")).toBe(true);
  });
});

describe("unmap over a range with holes (a whole-range invalidation)", () => {
  for (const backend of ["type1", "iommufd"] as const) {
    it(`${backend} IOMMU dirty tracking: unmaps every mapping, keeps their bits, and the IOVAs map again`, () => {
      session(profile({ logging: false, iommuDirty: true }), backend, {}, (o) => {
        const maps = [0x1000_0000n, 0x1010_0000n, 0x1030_0000n];
        for (const [i, iova] of maps.entries()) o.map(iova, BigInt(i + 1) * MIB, 8n * 4096n);
        o.t.start();
        o.t.setPhase("pre-copy");
        for (const iova of maps) o.write(iova + 4096n);
        o.unmap(0x1000_0000n, 4n * MIB); // holes between and after the mappings
        o.sync();
        // Tracker and kernel agree: the same IOVAs map again, and are tracked.
        for (const [i, iova] of maps.entries()) o.map(iova, BigInt(i + 10) * MIB, 8n * 4096n);
        o.write(maps[2]!);
        o.sync();
      });
    });
  }

  it("an unmap that cuts a mapping is refused before anything changes (the kernel would refuse it)", () => {
    session(profile({ logging: false, iommuDirty: true }), "iommufd", {}, (o) => {
      o.map(0x1000_0000n, MIB, 8n * 4096n);
      o.t.start();
      o.t.setPhase("pre-copy");
      o.write(0x1000_0000n);
      expect(() => o.t.unmap(0x1000_0000n, 4096n)).toThrow(/cuts the mapping/);
      o.write(0x1000_1000n);
      o.sync();
    });
  });
});

describe("QEMU's vIOMMU loss classes", () => {
  it("passthrough -> translated -> blocking: a whole-address-space unmap over 8 TiB on type1, split, bits kept", () => {
    // type1 reads at most 2^31 pages (a 256 MiB bitmap) per UNMAP with GET_DIRTY_BITMAP: 8 TiB at
    // 4 KiB. Mappings 12 TiB apart must go in several UNMAPs, each with its bits.
    session(profile({ logging: false, iommuDirty: true }), "type1", {}, (o) => {
      const maps = [0n, 4n * TIB, 12n * TIB];
      for (const [i, iova] of maps.entries()) o.map(iova, BigInt(i) * MIB, 4n * 4096n);
      o.t.start();
      o.t.setPhase("pre-copy");
      for (const iova of maps) o.write(iova);
      o.unmap(0n, 1n << 48n); // the switch to a blocking domain: everything goes
      o.sync();
      // Back to translated: map again, still tracked.
      o.map(0n, 5n * MIB, 4096n);
      o.write(0n);
      o.sync();
    });
  });

  for (const strategy of ["device", "type1", "iommufd"] as const) {
    const backend = strategy === "iommufd" ? "iommufd" : "type1";
    const p = profile({ logging: strategy === "device", iommuDirty: strategy !== "device" });
    it(`${strategy}: RAM not identity mapped, several IOVAs to one GPA, a mapping at IOVA 0 / GPA 0`, () => {
      session(p, backend, {}, (o) => {
        o.map(0n, 0n, 4096n); // QEMU's translated_addr = 0 class
        o.map(0x1000_0000n, 7n * MIB, 4n * 4096n);
        o.map(0x2000_0000n, 7n * MIB, 4n * 4096n); // the same guest pages through another IOVA
        o.t.start();
        o.t.setPhase("pre-copy");
        o.write(0n);
        o.write(0x2000_3000n);
        o.sync();
        o.write(0x1000_1000n);
        o.sync();
      });
    });

    it(`${strategy}: one IOVA remapped to another GPA between syncs, and within one interval as writes`, () => {
      session(p, backend, {}, (o) => {
        o.map(0x1000_0000n, 3n * MIB, 4n * 4096n);
        o.t.start();
        o.t.setPhase("pre-copy");
        o.write(0x1000_0000n);
        o.sync();
        o.unmap(0x1000_0000n, 4n * 4096n);
        o.map(0x1000_0000n, 9n * MIB, 4n * 4096n);
        o.write(0x1000_0000n);
        o.sync();
        // Within one interval: written through the old GPA, remapped, written through the new one.
        o.write(0x1000_1000n);
        o.unmap(0x1000_0000n, 4n * 4096n);
        o.map(0x1000_0000n, 12n * MIB, 4n * 4096n);
        o.write(0x1000_2000n);
        o.sync();
      });
    });
  }
});

describe("a DMA_LOGGING_STOP that fails", () => {
  it("once: retried, and logging stops", () => {
    const t = session(profile({ logging: true }), "type1", {}, (o, s) => {
      o.map(0x1000_0000n, MIB, 4096n);
      o.t.start();
      s.sim.failNext("DMA_LOGGING_STOP", "EIO", BDF);
      o.t.stop();
      expect(s.sim.trackingActive()).toBe(false);
    });
    expect(t.events.filter((e) => e.kind === "stop-failed")).toEqual([]);
  });

  it("every time: the device's fd is closed as the last resort, and the event says so", () => {
    const t = session(profile({ logging: true }), "type1", {}, (o, s) => {
      o.map(0x1000_0000n, MIB, 4096n);
      o.t.start();
      s.sim.injectFault({ op: "DMA_LOGGING_STOP", errno: "EIO", device: BDF, times: 10 });
      o.t.stop();
      expect(s.sim.trackingActive()).toBe(false);
    });
    const failed = t.events.filter((e) => e.kind === "stop-failed");
    expect(failed).toHaveLength(1);
    expect(failed[0]!.message).toMatch(/failed 3 times .*closed the device's fd as the last resort/);
  });
});

describe("adaptive policy (the default)", () => {
  it("reports an untracked mapping dirty until that cost one re-arm, then re-arms", () => {
    const t = session(profile({ logging: true }), "type1", { viommuAperture: APERTURE }, (o) => {
      o.map(APERTURE[0]!.iova, 0x40_0000n, 64n * 4096n);
      o.t.start();
      o.t.setPhase("pre-copy");
      o.map(0x4000_0000n, 0x20_0000n, 16n * 4096n);
      // 80 pages mapped, 16 untracked: the rent reaches the price of a re-arm at the 5th sync.
      for (let i = 1; i <= 5; i++) {
        o.write(0x4000_0000n + BigInt(i) * 4096n);
        expect(o.sync().count(), `sync ${i}`).toBe(16);
        expect(o.t.events.filter((e) => e.kind === "re-armed")).toHaveLength(i < 5 ? 0 : 1);
      }
      expect(o.sync().count()).toBe(80); // the re-arm's gap
      o.write(0x4000_3000n);
      expect(o.sync().count()).toBe(1); // logged now
    });
    expect(t.events.filter((e) => e.kind === "untracked-mapping")).toHaveLength(1);
  });
});

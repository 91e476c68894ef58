// Strategies on the simulated host, directed: shipped profiles, range planning against a device's
// real limits, page-size write-back, and every injected failure ending in over-reporting plus an
// event, never a lost page, with tracking stopped on every exit path.

import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import { Errno } from "@vfio-dirty/vfio-adapter";
import type { SimHost } from "@vfio-dirty/vfio-adapter/sim";
import { loadProfile } from "@vfio-dirty/vfio-adapter/sim";
import { describe, expect, it } from "vitest";
import type { Bitmap } from "../src/bitmap.ts";
import { MigrationBlockedError, openTracker } from "../src/open.ts";
import { predictPrecopy } from "../src/predict.ts";
import { readDeviceStateBytes } from "../src/probe.ts";
import type { Tracker } from "../src/tracker.ts";
import { bdfOf, profileOf, type Scenario } from "./scenario.ts";
import { openSim, type SimSession, simProfile } from "./sim-helpers.ts";

const core = loadBitmapCoreSync();
const MIB = 1n << 20n;

function has(b: Bitmap, page4k: number): boolean {
  const bit = (BigInt(page4k) * 4096n - b.base) / b.pageSize;
  return b.test(Number(bit));
}

/** Sync and check every page written since `since` is reported; returns the report and the new time. */
function syncChecked(sim: SimHost, t: Tracker, since: number) {
  const now = sim.clock.now();
  const r = t.sync();
  const truth = sim.writtenSince(since);
  for (const p of truth) expect(has(r.bitmap!, p), `page ${p} lost`).toBe(true);
  return { r, now, truth };
}

function withSession<T>(sim: SimHost, backend: "type1" | "iommufd", f: (s: SimSession) => T): T {
  const s = openSim(sim, backend);
  try {
    return f(s);
  } finally {
    s.close();
    expect(sim.trackingActive()).toBe(false);
  }
}

describe("shipped profiles", () => {
  it("mlx5-p2p: two VFs start logging on QEMU's three ranges (PCI BARs far above RAM), losing nothing", () => {
    // mlx5vf_create_tracker() refuses when log2(roundup_pow_of_two(sum of range lengths)) exceeds
    // the device's limit: 2 GiB + 14 GiB + 64 MiB is far below 2^42, so a real VF accepts these
    // ranges. A model that measures last - first instead (56 TiB here) refuses them; then each
    // device must degrade to all-dirty, visibly. Either way no page is lost.
    const sim = simProfile(loadProfile("mlx5-p2p").json);
    withSession(sim, "type1", (s) => {
      const { tracker, choice } = openTracker(s.target, { core, memory: s.memory });
      expect(choice.strategy).toBe("device");
      expect(choice.blockers).toEqual([]);
      using t = tracker;
      t.start();
      t.setPhase("pre-copy");
      const accepted = t.events.filter((e) => e.kind === "start-notes").map((e) => e.message);
      const degraded = t.events.filter((e) => e.kind === "degraded");
      expect(accepted.length + degraded.length).toBe(2);
      for (const m of accepted) expect(m).toMatch(/QEMU's ranges.*3 range\(s\) -> accepted/);
      for (const e of degraded) expect(e.errno).toBe(Errno.EOPNOTSUPP);
      let since = sim.clock.now();
      for (let i = 0; i < 3; i++) {
        sim.run(100);
        const { r, now, truth } = syncChecked(sim, t, since);
        since = now;
        if (degraded.length === 0) expect(r.dirtyPages).toBe(new Set(truth).size);
        // Reports cover RAM only: the bitmap ends with the RAM above 4 GiB, not at the BARs.
        expect(BigInt(r.bitmap!.nbits) * 4096n).toBe(18n << 30n);
      }
    });
  });

  it("mlx5-vf: MIG_DATA_SIZE feeds the pre-copy prediction", () => {
    const sim = simProfile(loadProfile("mlx5-vf").json);
    withSession(sim, "type1", (s) => {
      const { bytes, unknown } = readDeviceStateBytes(s.target.devices);
      expect(unknown).toEqual([]);
      expect(bytes).toBe(64n * MIB); // the profile's stateBytes
      // 64 MiB of device state at 1 GB/s: 67 ms of downtime; at 0.2 GB/s, 336 ms: over the limit.
      const p = predictPrecopy({
        bandwidth: 1e9,
        ramBytes: 2 ** 30,
        dirtyRate: 0,
        deviceStateBytes: Number(bytes),
      });
      expect(p.converges).toBe(true);
      expect(p.expectedDowntimeMs).toBeCloseTo(67.108864, 3);
      const q = predictPrecopy({
        bandwidth: 2e8,
        ramBytes: 2 ** 30,
        dirtyRate: 0,
        deviceStateBytes: Number(bytes),
      });
      expect(q.converges).toBe(false);
      expect(q.maxDirtyRate).toBeNull();
    });
  });

  it("gpu-iommufd: no DMA logging, IOMMU dirty bits through iommufd, exact", () => {
    const sim = simProfile(loadProfile("gpu-iommufd").json);
    withSession(sim, "iommufd", (s) => {
      const { tracker, choice } = openTracker(s.target, { core, memory: s.memory });
      expect(choice.strategy).toBe("iommufd");
      expect(
        choice.reasons.some((r) => r.strategy === "device" && r.call?.includes("DMA_LOGGING_START")),
      ).toBe(true);
      using t = tracker;
      t.start();
      t.setPhase("pre-copy");
      let since = sim.clock.now();
      sim.run(100);
      const { r, truth } = syncChecked(sim, t, since);
      since = sim.clock.now();
      expect(r.dirtyPages).toBe(new Set(truth).size);
      expect(r.strategy).toBe("iommufd");
    });
  });

  it("legacy-type1: type1 reports every mapped page and says so", () => {
    const sim = simProfile(loadProfile("legacy-type1").json);
    withSession(sim, "type1", (s) => {
      const { tracker, choice } = openTracker(s.target, { core, memory: s.memory, ignoreBlockers: true });
      expect(choice.strategy).toBe("type1");
      expect(choice.warnings.join()).toMatch(/every mapped page/);
      using t = tracker;
      t.start();
      t.setPhase("pre-copy");
      sim.run(100);
      const { r } = syncChecked(sim, t, 0);
      const ram = s.memory.filter((m) => m.kind === "ram").reduce((n, m) => n + Number(m.length / 4096n), 0);
      expect(r.dirtyPages).toBe(ram);
    });
  });

  it("mixed-logging: one device without logging rules device logging out, with the device named", () => {
    const sim = simProfile(loadProfile("mixed-logging").json);
    withSession(sim, "type1", (s) => {
      const { choice } = openTracker(s.target, { core, memory: s.memory, ignoreBlockers: true });
      expect(choice.strategy).not.toBe("device");
      const r = choice.reasons.find((x) => x.strategy === "device" && x.device !== undefined);
      expect(r?.call).toMatch(/DMA_LOGGING_START/);
    });
  });
});

function oneDevice(logging: Scenario["devices"][number]["logging"], extra: Partial<Scenario> = {}): Scenario {
  return {
    backend: "type1",
    iommuDirty: false,
    lowMiB: 16,
    highMiB: 4,
    devices: [{ logging, p2p: true, preCopy: true, deviceTracking: true, workload: "uniform", rate: 2000 }],
    viommu: false,
    windowMiB: 64,
    startPhase: "pre-copy",
    ops: [],
    ...extra,
  };
}

describe("device logging ranges and page sizes on the sim", () => {
  it("EOPNOTSUPP beyond the span: narrows to the sections, then the container falls back to type1", () => {
    // RAM at 0 and at 4 GiB against a 2^24 span limit: every plan is refused (the narrowed one
    // too). The type1 container has the migration capability, so the whole container moves to
    // type1 (coarse, but not all-dirty), visibly, and every page is reported.
    const sim = simProfile(
      profileOf(oneDevice({ maxRanges: 4, maxSpanLog2: 24, minPageSize: 4096 }), "span"),
    );
    withSession(sim, "type1", (s) => {
      const { tracker, choice } = openTracker(s.target, { core, memory: s.memory });
      expect(choice.strategy).toBe("device");
      expect(choice.fallbacks).toEqual(["type1", "all-dirty"]);
      using t = tracker;
      t.start();
      const refused = t.events.filter((e) => e.kind === "start-refused");
      expect(refused).toHaveLength(1);
      expect(refused[0]!.unit).toBe(bdfOf(0));
      expect(refused[0]!.errno).toBe(Errno.EOPNOTSUPP);
      expect(refused[0]!.call).toMatch(/DMA_LOGGING_START/);
      // What START was tried with is part of the refusal's story.
      expect(refused[0]!.message).toMatch(/tried: QEMU's ranges.*errno 95/);
      expect(t.events.find((e) => e.kind === "fallback")?.message).toMatch(/moves to type1/);
      expect(t.events.some((e) => e.kind === "degraded" || e.kind === "blocked")).toBe(false);
      expect(t.strategies).toEqual({ iommu: "type1" });
      t.setPhase("pre-copy");
      sim.run(50);
      const { r } = syncChecked(sim, t, 0);
      expect(r.strategy).toBe("type1");
    });
  });

  it("page-size write-back: a device logging at 2 MiB is read at 2 MiB and converted to 4 KiB", () => {
    const sim = simProfile(
      profileOf(oneDevice({ maxRanges: 4, maxSpanLog2: undefined, minPageSize: 2 * 2 ** 20 }), "psz"),
    );
    withSession(sim, "type1", (s) => {
      const { tracker } = openTracker(s.target, { core, memory: s.memory });
      using t = tracker;
      t.start();
      expect(sim.devices()[0]!.dmaLogging.pageSize).toBe(2n * MIB);
      expect(t.events.find((e) => e.kind === "start-notes")!.message).toMatch(
        /page size 0x200000; reports are converted/,
      );
      t.setPhase("pre-copy");
      sim.run(20);
      const { r, truth } = syncChecked(sim, t, 0);
      // Exact at the device's page size: every dirty 2 MiB page, all of its 512 small pages.
      const big = new Set(truth.map((p) => Math.floor(p / 512)));
      expect(r.dirtyPages).toBe(big.size * 512);
    });
  });
});

describe("fault injection: over-report plus an event, never a lost page", () => {
  const cases: {
    name: string;
    backend: "type1" | "iommufd";
    logging: boolean;
    iommuDirty: boolean;
    inject: (sim: SimHost) => void;
    event: string;
  }[] = [
    {
      name: "REPORT fails with EIO",
      backend: "type1",
      logging: true,
      iommuDirty: false,
      inject: (sim) => sim.failNext("DMA_LOGGING_REPORT", "EIO"),
      event: "query-failed",
    },
    {
      name: "type1 GET_BITMAP fails",
      backend: "type1",
      logging: false,
      iommuDirty: false,
      inject: (sim) => sim.failNext("VFIO_IOMMU_DIRTY_PAGES(GET_BITMAP)", "EIO"),
      event: "query-failed",
    },
    {
      name: "iommufd GET_DIRTY_BITMAP fails",
      backend: "iommufd",
      logging: false,
      iommuDirty: true,
      inject: (sim) => sim.failNext("IOMMU_HWPT_GET_DIRTY_BITMAP", "EIO"),
      event: "query-failed",
    },
    {
      name: "device falls into the ERROR state",
      backend: "type1",
      logging: true,
      iommuDirty: false,
      inject: (sim) => sim.setDeviceError(bdfOf(0)),
      event: "unhealthy",
    },
    {
      name: "REPORT fails and the restart fails too",
      backend: "type1",
      logging: true,
      iommuDirty: false,
      inject: (sim) => {
        sim.failNext("DMA_LOGGING_REPORT", "EIO");
        sim.injectFault({ op: "DMA_LOGGING_START", errno: "EIO", times: 5 });
      },
      event: "degraded",
    },
  ];

  it.each(cases)("$name", ({ backend, logging, iommuDirty, inject, event }) => {
    const sc = oneDevice(logging ? { maxRanges: 4, maxSpanLog2: undefined, minPageSize: 4096 } : undefined, {
      backend,
      iommuDirty,
    });
    const sim = simProfile(profileOf(sc, "fault"));
    withSession(sim, backend, (s) => {
      const { tracker } = openTracker(s.target, { core, memory: s.memory });
      using t = tracker;
      t.start();
      t.setPhase("pre-copy");
      let since = sim.clock.now();
      sim.run(50);
      ({ now: since } = syncChecked(sim, t, since));
      sim.run(50);
      inject(sim);
      const { r, now } = syncChecked(sim, t, since);
      since = now;
      // Over-reporting: everything the unit covers.
      const ram = s.memory.reduce((n, m) => n + Number(m.length / 4096n), 0);
      expect(r.dirtyPages).toBe(ram);
      expect(t.events.some((e) => e.kind === event)).toBe(true);
      // And the next sync still loses nothing (restarted, or degraded to all-dirty).
      sim.run(50);
      syncChecked(sim, t, since);
    });
  });

  it("an unmap-with-bitmap failure keeps the mapping's pages", () => {
    const sc = oneDevice(undefined, { viommu: true });
    const sim = simProfile(profileOf(sc, "unmapfail"));
    withSession(sim, "type1", (s) => {
      const IOVA = 256n * MIB;
      const { tracker } = openTracker(s.target, {
        core,
        memory: s.memory,
        viommu: true,
        viommuAperture: [{ iova: IOVA, length: 32n * MIB }],
        mapper: s.mapper,
      });
      using t = tracker;
      t.map(IOVA, 4n * MIB, MIB);
      t.start();
      t.setPhase("pre-copy");
      sim.dmaWrite(bdfOf(0), IOVA + 0x2000n, 0x1000n);
      sim.run(1);
      sim.failNext("VFIO_IOMMU_UNMAP_DMA", "EIO");
      t.unmap(IOVA, MIB); // the read fails; the tracker unmaps without it and reports the range
      expect(t.events.some((e) => e.kind === "unmap-failed")).toBe(true);
      const r = t.sync();
      expect(has(r.bitmap!, Number((4n * MIB + 0x2000n) / 4096n))).toBe(true);
      expect(r.perSection[0]!.pages).toBeGreaterThanOrEqual(256);
    });
  });

  it("blockers stop openTracker unless ignored", () => {
    const sc = oneDevice(undefined);
    sc.devices.push({ ...sc.devices[0]!, p2p: false });
    sc.devices[0]!.p2p = false;
    const sim = simProfile(profileOf(sc, "blocked"));
    withSession(sim, "type1", (s) => {
      expect(() => openTracker(s.target, { core, memory: s.memory })).toThrow(MigrationBlockedError);
      const { tracker, choice } = openTracker(s.target, { core, memory: s.memory, ignoreBlockers: true });
      tracker.close();
      expect(choice.blockers.map((b) => b.kind)).toContain("p2p");
    });
  });

  it("tracking is stopped on every exit path: an exception inside `using`", () => {
    const sim = simProfile(
      profileOf(oneDevice({ maxRanges: 4, maxSpanLog2: undefined, minPageSize: 4096 }), "exit"),
    );
    withSession(sim, "type1", (s) => {
      expect(() => {
        const { tracker } = openTracker(s.target, { core, memory: s.memory });
        using t = tracker;
        t.start();
        expect(sim.trackingActive()).toBe(true);
        throw new Error("caller failed mid-migration");
      }).toThrow(/mid-migration/);
      expect(sim.trackingActive()).toBe(false);
    });
  });
});

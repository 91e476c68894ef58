// Start-time fallback: when the chosen strategy cannot START, the whole container moves to the
// next strategy the probe found usable (device -> iommufd -> type1 -> all-dirty), each refusal
// recorded with its call and errno; all-dirty stays subject to enableMigration.
//
// First on the shipped guest-16tib profile (a 16 TiB guest, an mlx5-like VF that refuses more
// than 2^42 bytes of ranges, an IOMMU with dirty bits), then with fake kernel objects for the
// cases no shipped profile has (a device refusing START and an IOMMU without dirty tracking).

import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import { Errno, IoctlError, uapi } from "@vfio-dirty/vfio-adapter";
import { loadProfile } from "@vfio-dirty/vfio-adapter/sim";
import { describe, expect, it } from "vitest";
import { MigrationBlockedError, openTracker } from "../src/open.ts";
import type { ProbedDevice, TrackingTarget } from "../src/probe.ts";
import type { IovaRange } from "../src/ranges.ts";
import { openSim, simProfile } from "./sim-helpers.ts";

const core = loadBitmapCoreSync();
const GIB = 1n << 30n;

describe("start-time fallback on guest-16tib", () => {
  it("device logging is refused (EOPNOTSUPP, span beyond 2^42): the container moves to iommufd, exact, nothing lost", () => {
    const sim = simProfile(loadProfile("guest-16tib").json);
    const s = openSim(sim, "iommufd");
    try {
      const { tracker, choice } = openTracker(s.target, { core, memory: s.memory, windowBytes: 256n * GIB });
      expect(choice.strategy).toBe("device");
      expect(choice.fallbacks).toEqual(["iommufd", "all-dirty"]);
      using t = tracker;
      const since = sim.clock.now();
      t.start();
      const refused = t.events.filter((e) => e.kind === "start-refused");
      expect(refused).toHaveLength(1);
      expect(refused[0]).toMatchObject({ unit: "0000:3b:00.1", errno: Errno.EOPNOTSUPP });
      expect(refused[0]!.call).toMatch(/DMA_LOGGING_START/);
      expect(t.events.find((e) => e.kind === "fallback")?.message).toMatch(/moves to iommufd/);
      expect(t.events.some((e) => e.kind === "degraded" || e.kind === "blocked")).toBe(false);
      expect(t.strategies).toEqual({ iommu: "iommufd" });
      t.setPhase("pre-copy");
      sim.run(200);
      // 16 TiB is a 512 MiB bitmap: take it window by window.
      const truth = [...new Set(sim.writtenSince(since))].sort((a, b) => a - b);
      expect(truth.length).toBeGreaterThan(100);
      let lost = 0;
      let seen = 0;
      const r = t.sync({
        onWindow: (w) => {
          const first = w.base / 4096n;
          const end = first + BigInt(w.nbits);
          for (const p of truth) {
            if (BigInt(p) < first || BigInt(p) >= end) continue;
            seen++;
            if (!w.test(Number(BigInt(p) - first))) lost++;
          }
        },
      });
      expect(seen).toBe(truth.length);
      expect(lost).toBe(0);
      expect(r.strategy).toBe("iommufd");
      // Over-report ~1.0 (all-dirty would have been ~16,600x).
      expect(r.dirtyPages / truth.length).toBeGreaterThanOrEqual(1);
      expect(r.dirtyPages / truth.length).toBeLessThan(1.01);
      t.stop();
      expect(sim.trackingActive()).toBe(false);
    } finally {
      s.close();
    }
  });
});

describe("start-time fallback with fake kernel objects", () => {
  const memory = [{ iova: 0n, length: 4n << 20n, kind: "ram" as const }];

  it("device START refused, an iommufd IOMMU without dirty tracking, enableMigration=auto: blocked, with the refusal as a reason", () => {
    const dev = fakeDevice("0000:01:00.0", Errno.EOPNOTSUPP);
    const { tracker, choice } = openTracker(iommufdTarget([dev]), { core, memory });
    expect(choice.strategy).toBe("device");
    expect(choice.fallbacks).toEqual(["all-dirty"]);
    expect(choice.blockers).toEqual([]); // the probe could not know: only START tells
    using t = tracker;
    let err: unknown;
    try {
      t.start();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MigrationBlockedError);
    const blocked = (err as MigrationBlockedError).choice;
    expect(blocked.strategy).toBe("all-dirty");
    expect(blocked.blockers.map((b) => b.kind)).toEqual(["no-tracking"]);
    expect(blocked.reasons).toContainEqual(
      expect.objectContaining({
        device: "0000:01:00.0",
        strategy: "device",
        call: "VFIO_DEVICE_FEATURE(SET|DMA_LOGGING_START)",
        errno: Errno.EOPNOTSUPP,
      }),
    );
    // The probe's own reason why iommufd was not usable is kept alongside.
    expect(
      blocked.reasons.some(
        (r) =>
          r.strategy === "iommufd" &&
          r.call === "IOMMU_GET_HW_INFO: out_capabilities lacks IOMMU_HW_CAP_DIRTY_TRACKING",
      ),
    ).toBe(true);
    expect(t.events.map((e) => e.kind)).toEqual(["start-refused", "fallback", "blocked"]);
    expect(t.started).toBe(false);
    expect(dev.loggingActive).toBe(false);
    // A blocked start stays blocked (the chain is used up; all-dirty must not slip in silently).
    expect(() => t.start()).toThrow(MigrationBlockedError);
  });

  it("the same with ignoreBlockers: all-dirty, every page reported, the blocker kept as an event", () => {
    const dev = fakeDevice("0000:01:00.0", Errno.EOPNOTSUPP);
    const { tracker } = openTracker(iommufdTarget([dev]), { core, memory, ignoreBlockers: true });
    using t = tracker;
    t.start();
    expect(t.strategies).toEqual({ all: "all-dirty" });
    expect(t.events.map((e) => e.kind)).toEqual(["start-refused", "fallback", "blocked"]);
    t.setPhase("pre-copy");
    expect(t.sync().dirtyPages).toBe(1024);
  });

  it("the same with enableMigration=on: all-dirty accepted, no blocker", () => {
    const dev = fakeDevice("0000:01:00.0", Errno.EOPNOTSUPP);
    const { tracker } = openTracker(iommufdTarget([dev]), { core, memory, enableMigration: "on" });
    using t = tracker;
    t.start();
    expect(t.strategies).toEqual({ all: "all-dirty" });
    expect(t.events.map((e) => e.kind)).toEqual(["start-refused", "fallback"]);
    expect(t.events[0]!.message).toMatch(/device could not start: VFIO_DEVICE_FEATURE/);
  });

  it("two devices, the second refuses: the first one's logging is stopped and the container moves to type1", () => {
    const a = fakeDevice("0000:01:00.0", 0);
    const b = fakeDevice("0000:02:00.0", Errno.E2BIG);
    const container = fakeType1(true);
    const { tracker, choice } = openTracker(
      { devices: [a, b].map((d) => ({ id: d.label, device: d })), iommu: { kind: "type1", container } },
      { core, memory },
    );
    expect(choice.strategy).toBe("device");
    expect(choice.fallbacks).toEqual(["type1", "all-dirty"]);
    using t = tracker;
    t.start();
    expect(a.starts).toBe(1);
    expect(a.loggingActive).toBe(false); // undone, as vfio_devices_dma_logging_start() does
    expect(container.tracking).toBe(true);
    expect(t.strategies).toEqual({ iommu: "type1" });
    const refused = t.events.find((e) => e.kind === "start-refused");
    expect(refused).toMatchObject({ unit: "0000:02:00.0", errno: Errno.E2BIG });
    expect(t.events.some((e) => e.kind === "blocked")).toBe(false);
    t.setPhase("pre-copy");
    expect(t.sync().strategy).toBe("type1");
    t.stop();
    expect(container.tracking).toBe(false);
  });

  it("type1 without the migration capability: device refused -> all-dirty, a blocker under auto", () => {
    const dev = fakeDevice("0000:01:00.0", Errno.EOPNOTSUPP);
    const { tracker, choice } = openTracker(
      { devices: [{ id: dev.label, device: dev }], iommu: { kind: "type1", container: fakeType1(false) } },
      { core, memory },
    );
    expect(choice.fallbacks).toEqual(["all-dirty"]);
    using t = tracker;
    expect(() => t.start()).toThrow(/migration is blocked: no dirty tracking could start/);
  });
});

// --- Internal helpers ---

/** A migratable device with DMA logging whose START answers `startErrno` (0: accepted). */
function fakeDevice(label: string, startErrno: number) {
  const d = {
    label,
    starts: 0,
    loggingActive: false,
    featureProbe: () => true,
    getMigrationFlags: () => uapi.VFIO_MIGRATION_STOP_COPY | uapi.VFIO_MIGRATION_P2P,
    getMigDataSize: () => 0n,
    dmaLoggingStart(ranges: readonly IovaRange[], pageSize: bigint): bigint {
      d.starts++;
      if (startErrno !== 0)
        throw new IoctlError(
          "VFIO_DEVICE_FEATURE(SET|DMA_LOGGING_START)",
          startErrno,
          `device ${label}, ${ranges.length} ranges`,
        );
      d.loggingActive = true;
      return pageSize;
    },
    dmaLoggingStop() {
      d.loggingActive = false;
    },
    dmaLoggingReport() {},
  };
  return d satisfies ProbedDevice;
}

/** An iommufd whose IOMMU has no dirty tracking (no IOMMU_HW_CAP_DIRTY_TRACKING). */
function iommufdTarget(devs: ReturnType<typeof fakeDevice>[]): TrackingTarget {
  const refuse = (op: string) => () => {
    throw new IoctlError(op, Errno.EOPNOTSUPP, "fake iommufd");
  };
  return {
    devices: devs.map((d) => ({ id: d.label, device: d })),
    iommu: {
      kind: "iommufd",
      ioasId: 1,
      devIds: Object.fromEntries(devs.map((d, i) => [d.label, i + 10])),
      iommufd: {
        label: "iommufd 3",
        getHwInfo: () => ({ outCapabilities: 0n }),
        hwptAlloc: refuse("IOMMU_HWPT_ALLOC"),
        destroy: () => {},
        setDirtyTracking: refuse("IOMMU_HWPT_SET_DIRTY_TRACKING"),
        getDirtyBitmap: refuse("IOMMU_HWPT_GET_DIRTY_BITMAP"),
        ioasUnmap: (a) => a.length,
      },
    },
  };
}

/** A type1 container, with or without the migration capability; reports every page dirty. */
function fakeType1(migration: boolean) {
  const c = {
    tracking: false,
    getInfo: () => ({
      caps: migration ? { migration: { pgsizeBitmap: 0x1000n, maxDirtyBitmapSize: 1n << 28n } } : {},
    }),
    startDirtyTracking() {
      c.tracking = true;
    },
    stopDirtyTracking() {
      c.tracking = false;
    },
    getDirtyBitmap(a: { bitmap: Uint8Array }) {
      a.bitmap.fill(0xff);
    },
    unmapDmaWithDirtyBitmap(a: { length: bigint; bitmap: Uint8Array }) {
      a.bitmap.fill(0xff);
      return a.length;
    },
    unmapDma(a: { length: bigint }) {
      return a.length;
    },
  };
  return c;
}

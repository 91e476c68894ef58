// The oracle can fail: a device that drops report bits, an IOMMU whose dirty read drops bits, a
// model that disagrees with the host, a device that ignores DMA_LOGGING_STOP and a report whose
// counts lie must each be caught by runOracleScenario (oracle-run.ts), in directed scenarios and
// across random ones that pass with healthy hardware.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { TrackingTarget } from "../src/probe.ts";
import type { DirtyIommufd } from "../src/strategies/iommufd.ts";
import type { Tracker } from "../src/tracker.ts";
import { hugeIoptes } from "./oracle-hardware.ts";
import { type FailureKind, OracleFailure, type RunOptions, runOracleScenario } from "./oracle-run.ts";
import { arbOracleScenario, baseScenario, bdfOf, type Op, oracleProfile } from "./oracle-scenario.ts";
import { openSim, simProfile } from "./sim-helpers.ts";

const scenario = baseScenario;
const logging = { maxRanges: 4, maxSpanLog2: undefined, minPageSize: 4096 };
const write = (page: number): Op => ({
  op: "write",
  dev: 0,
  target: { kind: "mapped", of: 0, page },
  npages: 1,
});
const sync: Op = { op: "sync", mode: "full" };

/** The kind of OracleFailure `run` throws, or "passed". */
function outcome(run: () => unknown): FailureKind | "passed" {
  try {
    run();
    return "passed";
  } catch (e) {
    if (e instanceof OracleFailure) return e.kind;
    throw e;
  }
}

/** Calls `after(args, before)` after each call of `method` on `obj`, with a copy of the bitmap as it was. */
function wrapMethod<T extends object>(
  obj: T,
  method: string,
  after: (a: { bitmap: Uint8Array }, before: Uint8Array) => void,
  replace?: (...args: unknown[]) => unknown,
): T {
  return new Proxy(obj, {
    get(target, key) {
      const v = Reflect.get(target, key, target);
      if (key !== method) return typeof v === "function" ? v.bind(target) : v;
      if (replace) return replace;
      return (a: { bitmap: Uint8Array }) => {
        const before = a.bitmap.slice();
        const r = (v as (x: unknown) => unknown).call(target, a);
        after(a, before);
        return r;
      };
    },
  });
}

/** Clears every bit the kernel set in this call (`all`), or only the first one. */
function dropBits(all: boolean) {
  return (a: { bitmap: Uint8Array }, before: Uint8Array) => {
    for (let i = 0; i < a.bitmap.length; i++) {
      const fresh = a.bitmap[i]! & ~before[i]!;
      if (fresh === 0) continue;
      a.bitmap[i]! &= all ? before[i]! : ~(fresh & -fresh);
      if (!all) return;
    }
  };
}

/** Every device's DMA_LOGGING_REPORT drops the first bit it set. */
const droppingDevices = (t: TrackingTarget): TrackingTarget => ({
  ...t,
  devices: t.devices.map((d) => ({
    ...d,
    device: wrapMethod(d.device, "dmaLoggingReport", dropBits(false)),
  })),
});

/** The IOMMU's dirty read (type1 GET_BITMAP, iommufd GET_DIRTY_BITMAP) drops everything it set. */
const droppingIommu = (t: TrackingTarget): TrackingTarget => {
  const iommu = t.iommu;
  if (iommu.kind === "type1")
    return {
      ...t,
      iommu: { ...iommu, container: wrapMethod(iommu.container, "getDirtyBitmap", dropBits(true)) },
    };
  return { ...t, iommu: { ...iommu, iommufd: wrapMethod(iommu.iommufd, "getDirtyBitmap", dropBits(true)) } };
};

describe("the oracle catches broken hardware and a broken tracker", () => {
  it("a device whose REPORT drops a bit it set loses a page the oracle reports", () => {
    const s = scenario({
      devices: [{ logging, p2p: true, preCopy: true, deviceTracking: true }],
      ops: [write(5), sync],
    });
    expect(outcome(() => runOracleScenario(s))).toBe("passed");
    expect(outcome(() => runOracleScenario(s, { wrapTarget: droppingDevices }))).toBe("lost-page");
  });

  it.each([
    ["type1", false],
    ["iommufd", true],
  ] as const)(
    "an IOMMU (%s) whose dirty read drops its bits loses pages the oracle reports",
    (backend, iommuDirty) => {
      const s = scenario({ backend, iommuDirty, ops: [write(7), sync] });
      expect(outcome(() => runOracleScenario(s))).toBe("passed");
      expect(outcome(() => runOracleScenario(s, { wrapTarget: droppingIommu }))).toBe("lost-page");
    },
  );

  it("a vIOMMU device whose REPORT drops a bit is caught in GPA space (IOVA != GPA)", () => {
    const s = scenario({
      devices: [{ logging, p2p: true, preCopy: true, deviceTracking: true }],
      viommu: { aperture: undefined },
      before: [
        {
          op: "map",
          at: { kind: "zone", zone: 1, page: 16, npages: 8, gpa: { kind: "ram", section: 0, page: 100 } },
        },
      ],
      ops: [write(3), sync],
    });
    expect(outcome(() => runOracleScenario(s))).toBe("passed");
    expect(outcome(() => runOracleScenario(s, { wrapTarget: droppingDevices }))).toBe("lost-page");
  });

  it("a mapping made behind the tracker's back (the host lands a write the model calls a fault) is a disagreement", () => {
    const s = scenario({
      viommu: { aperture: undefined },
      before: [
        {
          op: "map",
          at: { kind: "zone", zone: 1, page: 0, npages: 4, gpa: { kind: "ram", section: 0, page: 0 } },
        },
      ],
      ops: [{ op: "write", dev: 0, target: { kind: "anywhere", zone: 1, page: 64 }, npages: 1 }, sync],
    });
    expect(outcome(() => runOracleScenario(s))).toBe("passed");
    const tamper: RunOptions["tamper"] = (session) => session.mapper.map(0x1004_0000n, 0x10_0000n, 0x1000n);
    expect(outcome(() => runOracleScenario(s, { tamper }))).toBe("host-disagrees");
  });

  it("a model that translates to the wrong guest page is caught by the host's ground truth", () => {
    // The kernel maps IOVA 256M + 256K to GPA 1M, the model to GPA 2M: the bytes land either way,
    // only the host's record of the guest pages written tells them apart.
    const s = scenario({
      viommu: { aperture: undefined },
      ops: [{ op: "write", dev: 0, target: { kind: "anywhere", zone: 1, page: 64 }, npages: 1 }, sync],
    });
    const tamper: RunOptions["tamper"] = (session, model) => {
      session.mapper.map(0x1004_0000n, 0x10_0000n, 0x1000n);
      model.map(0x1004_0000n, 0x20_0000n, 0x1000n);
    };
    expect(outcome(() => runOracleScenario(s, { tamper }))).toBe("host-disagrees");
  });

  it("a device that ignores DMA_LOGGING_STOP is left logging after close(), and the oracle says so", () => {
    const s = scenario({
      devices: [{ logging, p2p: true, preCopy: true, deviceTracking: true }],
      ops: [write(1), sync],
    });
    const deaf = (t: TrackingTarget): TrackingTarget => ({
      ...t,
      devices: t.devices.map((d) => ({
        ...d,
        device: wrapMethod(
          d.device,
          "dmaLoggingStop",
          () => {},
          () => {},
        ),
      })),
    });
    expect(outcome(() => runOracleScenario(s, { wrapTarget: deaf }))).toBe("tracking-left-running");
  });

  it("a report whose count disagrees with its bitmap is caught", () => {
    const s = scenario({ ops: [write(1), sync] });
    const lying = (t: Tracker): Tracker =>
      new Proxy(t, {
        get(target, key) {
          const v = Reflect.get(target, key, target);
          if (key !== "sync") return typeof v === "function" ? v.bind(target) : v;
          return (o?: object) => ({ ...target.sync(o), dirtyPages: 1 });
        },
      });
    expect(outcome(() => runOracleScenario(s, { wrapTracker: lying }))).toBe("counts");
  });

  it("the emulated VT-d clears the rest of a 2 MiB IOPTE that a dirty read cuts", () => {
    const s = scenario({ backend: "iommufd", iommuDirty: true, lowPages: 1024 });
    const sim = simProfile(oracleProfile(s));
    const session = openSim(sim, "iommufd");
    try {
      const iommu = session.target.iommu;
      if (iommu.kind !== "iommufd") throw new Error("not iommufd");
      const hwptId = iommu.hwptIds![0]!;
      const ram = [{ iova: 0n, gpa: 0n, length: 4n << 20n }]; // openSim mapped RAM at IOVA = GPA
      const cut = hugeIoptes(
        session.target,
        () => ram,
        () => {},
      );
      if (cut.iommu.kind !== "iommufd") throw new Error("not iommufd");
      const read = (fd: DirtyIommufd, iova: bigint) => {
        const bitmap = new Uint8Array(32); // 256 pages
        fd.getDirtyBitmap({ hwptId, iova, length: 1n << 20n, pageSize: 4096n, bitmap });
        return bitmap.some((b) => b !== 0);
      };
      iommu.iommufd.setDirtyTracking(hwptId, true);
      for (const fd of [iommu.iommufd, cut.iommu.iommufd]) {
        sim.dmaWrite(bdfOf(0), 0x10_1000n, 0x1000n); // in the second MiB of the first IOPTE
        expect(read(fd, 0n)).toBe(false); // a read of the first MiB: nothing dirty in it
        const kept = read(fd, 1n << 20n);
        expect(kept).toBe(fd === iommu.iommufd); // the sim keeps it; VT-d cleared the IOPTE
      }
    } finally {
      session.close();
    }
  });

  // Random scenarios that pass with healthy hardware: with a device that drops bits, some must
  // lose a page, and every failure must be a lost page (never a crash of the oracle itself).
  it("across random device-logging scenarios, a device that drops bits is caught", () => {
    const draws = fc.sample(
      arbOracleScenario.filter((s) => s.devices.every((d) => d.logging && d.deviceTracking)),
      { numRuns: 80, seed: 12 },
    );
    let healthy = 0;
    let caught = 0;
    for (const s of draws) {
      if (outcome(() => runOracleScenario(s)) !== "passed") continue;
      healthy++;
      const broken = outcome(() => runOracleScenario(s, { wrapTarget: droppingDevices }));
      if (broken === "passed") continue;
      expect(broken).toBe("lost-page");
      caught++;
    }
    console.log(`self-test: ${healthy} healthy, ${caught} caught`);
    expect(healthy).toBeGreaterThan(20);
    expect(caught).toBeGreaterThan(5);
  });
});

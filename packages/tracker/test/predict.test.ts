import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { criticalState } from "../src/critical-state.ts";
import { predictPrecopy } from "../src/predict.ts";

const GB = 1e9;

describe("predictPrecopy", () => {
  it("converges after two rounds (hand-computed)", () => {
    // Round 1 sends 1 GB in 1 s while 0.5 GB gets dirty (> 0.3 GB threshold); round 2 sends
    // 0.5 GB in 0.5 s while 0.25 GB gets dirty, which fits: downtime 250 ms.
    const p = predictPrecopy({ bandwidth: GB, ramBytes: GB, dirtyRate: 0.5 * GB });
    expect(p.converges).toBe(true);
    expect(p.iterations).toBe(2);
    expect(p.totalBytesSent).toBeCloseTo(1.75 * GB, 0);
    expect(p.expectedDowntimeMs).toBeCloseTo(250, 6);
    expect(p.totalMs).toBeCloseTo(1750, 6);
    expect(p.rounds.map((r) => r.bytesSent)).toEqual([GB, 0.5 * GB]);
    expect(p.rounds.map((r) => r.remainingBytes)).toEqual([0.5 * GB, 0.25 * GB]);
    expect(p.rounds.map((r) => r.thresholdBytes)).toEqual([0.3 * GB, 0.3 * GB]);
    expect(p.requiredBandwidth).toBeUndefined();
  });

  it("counts device state in the stop-copy and uses the 300 ms default", () => {
    // 0.1 GB dirty + 0.15 GB state = 0.25 GB <= 0.3 GB after the first pass.
    const p = predictPrecopy({
      bandwidth: GB,
      ramBytes: GB,
      dirtyRate: 0.1 * GB,
      deviceStateBytes: 0.15 * GB,
    });
    expect(p.converges).toBe(true);
    expect(p.iterations).toBe(1);
    expect(p.expectedDowntimeMs).toBeCloseTo(250, 6);
    // A 200 ms limit no longer fits in one round; round 2 sends 0.1 GB in 0.1 s, dirtying 0.01 GB.
    const q = predictPrecopy({
      bandwidth: GB,
      ramBytes: GB,
      dirtyRate: 0.1 * GB,
      deviceStateBytes: 0.15 * GB,
      downtimeLimitMs: 200,
    });
    expect(q.iterations).toBe(2);
    expect(q.expectedDowntimeMs).toBeCloseTo(160, 6);
  });

  it("never converges when memory is dirtied faster than sent, and says what would help", () => {
    const p = predictPrecopy({ bandwidth: GB, ramBytes: GB, dirtyRate: 2 * GB, maxIterations: 5 });
    expect(p.converges).toBe(false);
    expect(p.iterations).toBe(5);
    expect(p.totalBytesSent).toBeCloseTo(5 * GB, 0); // the whole of RAM, five times
    expect(p.rounds.every((r) => r.dirtyBytesAfter === GB)).toBe(true);
    // No sync cost: at the critical state every rate below the link converges (given enough
    // iterations), and 2 GB/s never settles.
    expect(p.maxDirtyRate).toBe(GB);
    expect(p.minDowntimeLimitMs).toBeNull();
    const b = p.requiredBandwidth!;
    expect(
      predictPrecopy({ bandwidth: b, ramBytes: GB, dirtyRate: 2 * GB, maxIterations: 5 }).converges,
    ).toBe(true);
    expect(
      predictPrecopy({ bandwidth: b * 0.999, ramBytes: GB, dirtyRate: 2 * GB, maxIterations: 5 }).converges,
    ).toBe(false);
  });

  it("device-state dominated: no dirty rate helps, only bandwidth", () => {
    const p = predictPrecopy({ bandwidth: GB, ramBytes: GB, dirtyRate: 1e6, deviceStateBytes: GB });
    expect(p.converges).toBe(false);
    expect(p.maxDirtyRate).toBeNull();
    expect(p.minDowntimeLimitMs).toBeCloseTo(1000, 6); // 1 GB of state at 1 GB/s
    // 1 GB of state within 300 ms needs 3.33 GB/s (plus a hair for the residual dirty pages).
    expect(p.requiredBandwidth! / (GB / 0.3)).toBeCloseTo(1, 3);
  });

  it("replays a measured trace cyclically", () => {
    // 2 s at 0.5 GB/s then 2 s idle: round 1 (1 s) dirties 0.5 GB; round 2 (0.5 s) 0.25 GB.
    const trace = [
      { seconds: 2, dirtyBytes: GB },
      { seconds: 2, dirtyBytes: 0 },
    ];
    const p = predictPrecopy({ bandwidth: GB, ramBytes: GB, trace });
    expect(p.converges).toBe(true);
    expect(p.rounds.map((r) => r.dirtyBytesAfter)).toEqual([0.5 * GB, 0.25 * GB]);
    // The long-run rate of the critical state is the trace's average.
    expect(p.critical.dirtyRate).toBeCloseTo(0.25 * GB, 0);
    // Starting in the idle half: a constant-rate equivalent of the average would differ.
    const idleFirst = predictPrecopy({ bandwidth: GB, ramBytes: GB, trace: [trace[1]!, trace[0]!] });
    expect(idleFirst.rounds[0]!.dirtyBytesAfter).toBe(0);
  });

  it("rejects invalid input", () => {
    expect(() => predictPrecopy({ bandwidth: 0, ramBytes: GB, dirtyRate: 1 })).toThrow(/bandwidth/);
    expect(() => predictPrecopy({ bandwidth: 1, ramBytes: -1, dirtyRate: 1 })).toThrow(/ramBytes/);
    expect(() => predictPrecopy({ bandwidth: 1, ramBytes: 1 })).toThrow(/give a dirty rate/);
    expect(() => predictPrecopy({ bandwidth: 1, ramBytes: 1, dirtyRate: 1, trace: [] })).toThrow(/not both/);
    expect(() => predictPrecopy({ bandwidth: 1, ramBytes: 1, dirtyRate: Number.NaN })).toThrow(/dirtyRate/);
    expect(() => predictPrecopy({ bandwidth: 1, ramBytes: 1, trace: [] })).toThrow(/empty/);
    expect(() => predictPrecopy({ bandwidth: 1, ramBytes: 1, dirtyRate: 1, maxIterations: 0 })).toThrow();
    expect(() => predictPrecopy({ bandwidth: 1, ramBytes: 1, dirtyRate: 1, syncCostMs: -1 })).toThrow(
      /syncCostMs/,
    );
    expect(() =>
      predictPrecopy({
        bandwidth: 1,
        ramBytes: 1,
        dirtyRate: 1,
        devices: [{ precopy: { infoVersion: 3 as 2, initialBytes: 1 } }],
      }),
    ).toThrow(/infoVersion/);
  });
});

describe("predictPrecopy: the sync cost", () => {
  it("charges every iteration and the downtime, and lowers QEMU's estimate (hand-computed)", () => {
    // B = 1 GB/s, 1 GB of RAM, D = 0.5 GB/s, x = 100 ms, y = 300 ms. Iteration k lasts
    // 0.1 + t_k s and leaves 0.5*(0.1 + t_k) GB: t = 1, 0.55, 0.325, 0.2125, 0.15625 s. At each
    // decision QEMU's estimate is B*t/(x + t), so the data fits only when x + t < y: first for
    // t = 0.15625 s, after iteration 4.
    const p = predictPrecopy({
      bandwidth: GB,
      ramBytes: GB,
      dirtyRate: 0.5 * GB,
      syncCostMs: 100,
    });
    expect(p.converges).toBe(true);
    expect(p.iterations).toBe(4);
    const t = [1, 0.55, 0.325, 0.2125];
    p.rounds.forEach((r, i) => {
      expect(r.seconds).toBeCloseTo(0.1 + t[i]!, 9);
      expect(r.syncMs).toBe(100);
    });
    const last = p.rounds.at(-1)!;
    expect(last.remainingBytes / GB).toBeCloseTo(0.15625, 9);
    expect(last.estimatedBandwidth / GB).toBeCloseTo(0.15625 / 0.25625, 9);
    expect(p.rounds[2]!.remainingBytes).toBeGreaterThan(p.rounds[2]!.thresholdBytes); // 0.2125 GB vs 0.204 GB
    // Downtime: the final sync, then what was pending plus what got dirty during the decision
    // sync: 100 ms + (0.15625 + 0.05) GB / 1 GB/s. Above the limit: the limit is QEMU's target.
    expect(p.expectedDowntimeMs).toBeCloseTo(306.25, 6);
    expect(p.totalMs).toBeCloseTo((1.1 + 0.65 + 0.425 + 0.3125 + 0.1) * 1000 + 306.25, 6);
    expect(p.totalBytesSent / GB).toBeCloseTo(1 + 0.55 + 0.325 + 0.2125 + 0.15625 + 0.05, 9);
    // The critical state: t* = D*x/(B - D) = 100 ms, so any limit above 200 ms converges.
    expect(p.minDowntimeLimitMs).toBeCloseTo(200, 9);
    expect(p.maxDirtyRate! / GB).toBeCloseTo(2 / 3, 9); // B*(1 - x/y)
  });

  it("the worked example: x = 250 ms needs a limit above 500 ms, x = 10 ms above 11.1 ms", () => {
    const run = (syncCostMs: number, downtimeLimitMs: number) =>
      predictPrecopy({
        bandwidth: 15 * GB,
        ramBytes: 64 * GB,
        dirtyRate: 7.5 * GB,
        syncCostMs,
        downtimeLimitMs,
        maxIterations: 200,
      });
    expect(run(250, 300).minDowntimeLimitMs).toBeCloseTo(500, 9);
    expect(run(250, 505).converges).toBe(true);
    expect(run(250, 495).converges).toBe(false);
    expect(run(10, 300).minDowntimeLimitMs).toBeCloseTo(1000 / 90, 9);
    expect(run(10, 11.3).converges).toBe(true);
    expect(run(10, 10.9).converges).toBe(false);
    // At 300 ms, x = 250 ms: 2.5 GB/s is the top.
    expect(run(250, 300).maxDirtyRate! / GB).toBeCloseTo(2.5, 9);
  });

  it("avail-switchover-bandwidth restores the threshold an idle guest with a slow sync loses", () => {
    // Nearly idle guest, 64 MB of device state, 250 ms syncs: QEMU's estimate is tiny.
    const base = { bandwidth: GB, ramBytes: GB, dirtyRate: 1e6, syncCostMs: 250, deviceStateBytes: 64e6 };
    expect(predictPrecopy(base).converges).toBe(false);
    const fixed = predictPrecopy({ ...base, availSwitchoverBandwidth: GB });
    expect(fixed.converges).toBe(true);
    expect(fixed.rounds.at(-1)!.thresholdBytes).toBeCloseTo(0.3 * GB, 0);
  });
});

describe("predictPrecopy: guest and device rates together", () => {
  it("adds the guest's vCPU rate to the devices' DMA rate", () => {
    const alone = predictPrecopy({ bandwidth: GB, ramBytes: GB, dirtyRate: 0.5 * GB });
    const split = predictPrecopy({
      bandwidth: GB,
      ramBytes: GB,
      dirtyRate: 0.3 * GB,
      guestDirtyRate: 0.2 * GB,
    });
    expect(split.rounds.map((r) => r.dirtyBytesAfter)).toEqual(alone.rounds.map((r) => r.dirtyBytesAfter));
    expect(split.iterations).toBe(2);
    expect(split.critical.dirtyRate).toBe(0.5 * GB);
    // A trace plus a guest rate: 0.25 GB/s average device DMA + 0.25 GB/s guest.
    const traced = predictPrecopy({
      bandwidth: GB,
      ramBytes: GB,
      trace: [{ seconds: 4, dirtyBytes: GB }],
      guestDirtyRate: 0.25 * GB,
    });
    expect(traced.rounds.map((r) => r.dirtyBytesAfter)).toEqual([0.5 * GB, 0.25 * GB]);
    // The guest alone (no device DMA at all).
    expect(predictPrecopy({ bandwidth: GB, ramBytes: GB, guestDirtyRate: 0.5 * GB }).iterations).toBe(2);
  });
});

describe("predictPrecopy: device pre-copy data (VFIO_MIG_GET_PRECOPY_INFO)", () => {
  // B = 1 GB/s, 1 GB of RAM, a guest dirtying 0.1 GB/s, no sync cost, 300 ms. One device with
  // 0.05 GB of stop-copy state and 0.2 GB of initial data; at 1.1 s it is reconfigured and has
  // 0.1 GB of new initial data.
  const device = (infoVersion: 1 | 2) => ({
    id: "0000:3b:00.1",
    stopCopyBytes: 0.05 * GB,
    precopy: { infoVersion, initialBytes: 0.2 * GB, reinit: [{ atMs: 1100, initialBytes: 0.1 * GB }] },
  });
  const run = (infoVersion: 1 | 2, switchoverAck: boolean) =>
    predictPrecopy({
      bandwidth: GB,
      ramBytes: GB,
      guestDirtyRate: 0.1 * GB,
      devices: [device(infoVersion)],
      switchoverAck,
    });

  it("v2 with switchover-ack: REINIT holds the switchover until the new initial data is sent", () => {
    const p = run(2, true);
    // Iteration 1: 1 GB RAM + 0.2 GB initial data in 1.2 s; 0.12 GB dirtied. The sync at 1.2 s
    // reads REINIT and 0.1 GB of initial data: pending 0.27 GB fits, but the ack is not given.
    expect(p.rounds[0]!.deviceBytesSent / GB).toBeCloseTo(0.2, 9);
    expect(p.rounds[0]!.reinit).toBe(true);
    expect(p.rounds[0]!.precopyInitialBytes / GB).toBeCloseTo(0.1, 9);
    expect(p.rounds[0]!.switchoverAckPending).toBe(true);
    expect(p.heldBySwitchoverAck).toBe(1);
    // Iteration 2 sends 0.12 + 0.1 GB in 0.22 s (0.022 GB dirtied): 0.072 GB left, acked.
    expect(p.iterations).toBe(2);
    expect(p.expectedDowntimeMs).toBeCloseTo(72, 6);
  });

  it("v1 cannot flag REINIT: the new data is dirty_bytes and lands in the downtime", () => {
    const p = run(1, true);
    expect(p.rounds[0]!.reinit).toBe(false);
    expect(p.rounds[0]!.precopyDirtyBytes / GB).toBeCloseTo(0.1, 9);
    expect(p.iterations).toBe(1);
    expect(p.heldBySwitchoverAck).toBe(0);
    expect(p.expectedDowntimeMs).toBeCloseTo(270, 6); // 0.12 + 0.05 + 0.1 GB
  });

  it("without switchover-ack REINIT changes nothing: the initial data goes in the downtime", () => {
    expect(run(2, false).expectedDowntimeMs).toBeCloseTo(270, 6);
  });

  it("device state that changes during pre-copy is read at each sync and counts at the critical state", () => {
    const p = predictPrecopy({
      bandwidth: GB,
      ramBytes: 0.1 * GB,
      dirtyRate: 0,
      devices: [{ precopy: { infoVersion: 1, initialBytes: 0.5 * GB, dirtyRate: 0.01 * GB } }],
      switchoverAck: true,
    });
    // Iteration 1 sends 0.1 GB RAM + 0.5 GB initial data in 0.6 s; 6 MB of device state changed.
    expect(p.iterations).toBe(1);
    expect(p.rounds[0]!.precopyDirtyBytes).toBeCloseTo(0.006 * GB, 0);
    expect(p.critical.dirtyRate).toBe(0.01 * GB); // device state changes count at the critical state
  });
});

describe("predictPrecopy: properties", () => {
  it("agrees with the critical state: converges just above minDowntimeLimitMs and never just below", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 1e8, max: 5e10, noNaN: true }),
        fc.double({ min: 0.05, max: 0.9, noNaN: true }),
        fc.double({ min: 1, max: 1000, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (B, f, x, guestShare) => {
          const D = f * B;
          const c = criticalState({ bandwidth: B, dirtyRate: D, syncCostMs: x });
          const ymin = c.minDowntimeLimitMs!;
          // RAM large enough that the first pass is longer than a settled iteration.
          const ramBytes = B * ((c.transferMs! + 1000) / 1000);
          const run = (downtimeLimitMs: number) =>
            predictPrecopy({
              bandwidth: B,
              ramBytes,
              dirtyRate: D * (1 - guestShare),
              guestDirtyRate: D * guestShare,
              syncCostMs: x,
              downtimeLimitMs,
              maxIterations: 2000,
            });
          expect(run(ymin * 1.01).converges).toBe(true);
          expect(run(ymin * 0.99).converges).toBe(false);
          expect(run(ymin).minDowntimeLimitMs).toBeCloseTo(ymin, 6);
        },
      ),
      { numRuns: 40 },
    );
  });
});

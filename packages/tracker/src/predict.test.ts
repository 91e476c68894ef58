import { describe, expect, it } from "vitest";
import { predictPrecopy } from "./predict.ts";

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
    // With a constant rate q at 1 GB/s, round k leaves q^k/GB^(k-1); it must reach 0.3 GB by
    // round 5: q <= GB * 0.3^(1/5).
    expect(p.maxDirtyRate).toBeCloseTo(GB * 0.3 ** (1 / 5), -3);
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
    // Starting in the idle half: a constant-rate equivalent of the average would differ.
    const idleFirst = predictPrecopy({ bandwidth: GB, ramBytes: GB, trace: [trace[1]!, trace[0]!] });
    expect(idleFirst.rounds[0]!.dirtyBytesAfter).toBe(0);
  });

  it("rejects invalid input", () => {
    expect(() => predictPrecopy({ bandwidth: 0, ramBytes: GB, dirtyRate: 1 })).toThrow(/bandwidth/);
    expect(() => predictPrecopy({ bandwidth: 1, ramBytes: -1, dirtyRate: 1 })).toThrow(/ramBytes/);
    expect(() => predictPrecopy({ bandwidth: 1, ramBytes: 1 })).toThrow(/exactly one/);
    expect(() => predictPrecopy({ bandwidth: 1, ramBytes: 1, dirtyRate: Number.NaN })).toThrow(/dirtyRate/);
    expect(() => predictPrecopy({ bandwidth: 1, ramBytes: 1, trace: [] })).toThrow(/empty/);
    expect(() => predictPrecopy({ bandwidth: 1, ramBytes: 1, dirtyRate: 1, maxIterations: 0 })).toThrow();
  });
});

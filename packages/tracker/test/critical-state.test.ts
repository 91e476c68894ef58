import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { criticalState, maxConvergingDirtyRate } from "../src/critical-state.ts";

const GB = 1e9;

describe("criticalState: ByteDance's worked example (e8a6d158dbfa thread)", () => {
  it("B = 15 GB/s, D = 7.5 GB/s: y > 500 ms with x = 250 ms (x + t > 100 ms)", () => {
    const c = criticalState({ bandwidth: 15 * GB, dirtyRate: 7.5 * GB, syncCostMs: 250 });
    expect(c.transferMs).toBeCloseTo(250, 9); // t = D*x/(B - D)
    expect(c.sampleMs).toBeCloseTo(500, 9);
    expect(c.estimatedBandwidth! / GB).toBeCloseTo(7.5, 9); // B*t/(x + t): half the link
    expect(c.minDowntimeLimitMs).toBeCloseTo(500, 9);
  });

  it("the same rates need only 11.1 ms with x = 10 ms (x + t < 100 ms)", () => {
    const c = criticalState({ bandwidth: 15 * GB, dirtyRate: 7.5 * GB, syncCostMs: 10 });
    expect(c.transferMs).toBeCloseTo(10, 9);
    expect(c.sampleMs).toBe(100);
    // 100*D*x/((B - D)*(100 - x)) = 100*7.5*10/(7.5*90)
    expect(c.minDowntimeLimitMs).toBeCloseTo(1000 / 90, 9);
    expect(c.minDowntimeLimitMs!.toFixed(1)).toBe("11.1");
  });

  it("at y = 300 ms and x = 250 ms the largest dirty rate that converges is 2.5 GB/s", () => {
    const d = maxConvergingDirtyRate({ bandwidth: 15 * GB, syncCostMs: 250, downtimeLimitMs: 300 });
    expect(d! / GB).toBeCloseTo(2.5, 9);
    // ...and it is the edge: exactly there the critical state needs the limit itself.
    expect(
      criticalState({ bandwidth: 15 * GB, dirtyRate: d!, syncCostMs: 250 }).minDowntimeLimitMs,
    ).toBeCloseTo(300, 6);
  });
});

describe("criticalState: hand-computed cases", () => {
  it("no sync cost: only the device state has to fit (y > S/B), any dirty rate below B settles", () => {
    const c = criticalState({ bandwidth: GB, dirtyRate: 0.9 * GB, syncCostMs: 0, stopCopyBytes: 0.1 * GB });
    expect(c.transferMs).toBe(0);
    expect(c.minDowntimeLimitMs).toBeCloseTo(100, 9);
    expect(maxConvergingDirtyRate({ bandwidth: GB, syncCostMs: 0, downtimeLimitMs: 300 })).toBe(GB);
    expect(
      maxConvergingDirtyRate({ bandwidth: GB, syncCostMs: 0, downtimeLimitMs: 50, stopCopyBytes: 0.1 * GB }),
    ).toBeNull();
  });

  it("device state at the critical state: y = x + t + S/D (x + t >= 100 ms)", () => {
    // B = 1 GB/s, D = 0.5 GB/s, x = 200 ms: t = 200 ms; S = 0.1 GB adds S/D = 200 ms.
    const c = criticalState({ bandwidth: GB, dirtyRate: 0.5 * GB, syncCostMs: 200, stopCopyBytes: 0.1 * GB });
    expect(c.minDowntimeLimitMs).toBeCloseTo(600, 9);
    // A faster rate raises QEMU's estimate: D = 0.6 GB/s gives 200*1/0.4 + 0.1/0.6 s = 500 + 166.7.
    const faster = criticalState({
      bandwidth: GB,
      dirtyRate: 0.6 * GB,
      syncCostMs: 200,
      stopCopyBytes: 0.1 * GB,
    });
    expect(faster.minDowntimeLimitMs).toBeCloseTo(500 + 1000 / 6, 9);
    // Idle guest, long sync: the estimate collapses and the device state never fits.
    expect(
      criticalState({ bandwidth: GB, dirtyRate: 0, syncCostMs: 200, stopCopyBytes: 0.1 * GB })
        .minDowntimeLimitMs,
    ).toBeNull();
  });

  it("avail-switchover-bandwidth replaces the estimate: y > (B*t + S)/Bs", () => {
    const c = criticalState({
      bandwidth: GB,
      dirtyRate: 0,
      syncCostMs: 200,
      stopCopyBytes: 0.1 * GB,
      availSwitchoverBandwidth: GB,
    });
    expect(c.minDowntimeLimitMs).toBeCloseTo(100, 9);
    // (B*t + S)/Bs < y  =>  t < (Bs*y - S)/B = 0.2 s  =>  D = t*B/(x + t) = 0.5 GB/s
    const d = maxConvergingDirtyRate({
      bandwidth: GB,
      syncCostMs: 200,
      downtimeLimitMs: 300,
      stopCopyBytes: 0.1 * GB,
      availSwitchoverBandwidth: GB,
    });
    expect(d! / GB).toBeCloseTo(0.5, 9);
  });

  it("a short limit below 100 ms uses the 100 ms sample (x + t < 100 ms)", () => {
    // y = 50 ms, x = 10 ms: D < y*B*(100 - x)/(100*x + y*(100 - x)) = 50*90/(1000 + 4500) B
    const d = maxConvergingDirtyRate({ bandwidth: GB, syncCostMs: 10, downtimeLimitMs: 50 });
    expect(d! / GB).toBeCloseTo(4500 / 5500, 9);
  });

  it("D >= B never settles", () => {
    expect(criticalState({ bandwidth: GB, dirtyRate: GB, syncCostMs: 10 }).minDowntimeLimitMs).toBeNull();
  });

  it("rejects invalid input", () => {
    expect(() => criticalState({ bandwidth: 0, dirtyRate: 1, syncCostMs: 1 })).toThrow(/bandwidth/);
    expect(() => criticalState({ bandwidth: 1, dirtyRate: -1, syncCostMs: 1 })).toThrow(/dirtyRate/);
    expect(() => maxConvergingDirtyRate({ bandwidth: 1, syncCostMs: 1, downtimeLimitMs: 0 })).toThrow(
      /downtime/,
    );
  });
});

// Random inputs over the ranges operators meet: 100 MB/s .. 100 GB/s links, syncs up to 2 s,
// device state up to 10 GB.
const bandwidth = fc.double({ min: 1e8, max: 1e11, noNaN: true });
// Not subnormal: a rate of 1e-316 B/s is no rate, and float has no precision left there.
const fraction = fc.oneof(fc.constant(0), fc.double({ min: 1e-9, max: 0.999, noNaN: true }));
const syncMs = fc.double({ min: 0, max: 2000, noNaN: true });
const state = fc.oneof(fc.constant(0), fc.double({ min: 1, max: 1e10, noNaN: true }));
const never = (v: number | null) => v ?? Number.POSITIVE_INFINITY;

describe("criticalState: properties", () => {
  it("the minimum downtime limit is monotone in the sync cost x", () => {
    fc.assert(
      fc.property(bandwidth, fraction, syncMs, syncMs, state, fc.boolean(), (B, f, x1, x2, S, avail) => {
        const [lo, hi] = x1 <= x2 ? [x1, x2] : [x2, x1];
        const at = (x: number) =>
          never(
            criticalState({
              bandwidth: B,
              dirtyRate: f * B,
              syncCostMs: x,
              stopCopyBytes: S,
              ...(avail ? { availSwitchoverBandwidth: B } : {}),
            }).minDowntimeLimitMs,
          );
        expect(at(lo)).toBeLessThanOrEqual(at(hi) * (1 + 1e-12));
      }),
      { numRuns: 500 },
    );
  });

  it("the minimum downtime limit is monotone in the dirty rate D (no device state, or avail-switchover-bandwidth)", () => {
    fc.assert(
      fc.property(bandwidth, fraction, fraction, syncMs, state, fc.boolean(), (B, f1, f2, x, S, avail) => {
        const [lo, hi] = f1 <= f2 ? [f1, f2] : [f2, f1];
        const at = (f: number) =>
          never(
            criticalState({
              bandwidth: B,
              dirtyRate: f * B,
              syncCostMs: x,
              ...(avail ? { stopCopyBytes: S, availSwitchoverBandwidth: B / 2 } : {}),
            }).minDowntimeLimitMs,
          );
        expect(at(lo)).toBeLessThanOrEqual(at(hi) * (1 + 1e-12));
      }),
      { numRuns: 500 },
    );
  });

  it("maxConvergingDirtyRate is the top of the rates criticalState lets converge (scan oracle)", () => {
    const limit = fc.double({ min: 1, max: 5000, noNaN: true });
    fc.assert(
      fc.property(bandwidth, syncMs, state, limit, fc.boolean(), (B, x, S, y, avail) => {
        const opts = {
          bandwidth: B,
          syncCostMs: x,
          stopCopyBytes: S,
          ...(avail ? { availSwitchoverBandwidth: B } : {}),
        };
        const converges = (D: number) =>
          never(criticalState({ ...opts, dirtyRate: D }).minDowntimeLimitMs) < y;
        // The oracle: the highest of 4000 evenly spaced rates that converges.
        let scan: number | null = null;
        for (let i = 0; i < 4000; i++) if (converges((B * i) / 4000)) scan = (B * i) / 4000;
        const got = maxConvergingDirtyRate({ ...opts, downtimeLimitMs: y });
        if (got === null) {
          expect(scan).toBeNull();
          return;
        }
        expect(scan === null || scan <= got * (1 + 1e-9) + 1e-6).toBe(true);
        if (got > 0) expect(converges(got * (1 - 1e-7))).toBe(true);
        if (got < B * (1 - 1e-6)) expect(converges(got > 0 ? got * (1 + 1e-7) : B * 1e-9)).toBe(false);
      }),
      { numRuns: 300 },
    );
  });
});

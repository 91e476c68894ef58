import { describe, expect, it } from "vitest";
import { DirtyRateMeter } from "../src/rate.ts";

describe("DirtyRateMeter", () => {
  it("computes last and moving-average rates, total and per device", () => {
    const m = new DirtyRateMeter({ window: 2 });
    m.start(0);
    expect(m.current()).toBeUndefined();
    m.record({ atMs: 1000, pages: 100, pageSize: 4096n, perDevice: { a: 100 } });
    m.record({ atMs: 3000, pages: 300, pageSize: 4096n, perDevice: { a: 200, b: 100 } });
    let r = m.current()!;
    expect(r.last.pagesPerSecond).toBe(150);
    expect(r.last.bytesPerSecond).toBe(150 * 4096);
    expect(r.average.pagesPerSecond).toBeCloseTo(400 / 3, 9); // 400 pages over 3 s
    expect(r.perDevice.b!.last.pagesPerSecond).toBe(50);
    expect(r.perDevice.b!.average.pagesPerSecond).toBeCloseTo(100 / 3, 9);
    // The window drops the oldest interval.
    m.record({ atMs: 4000, pages: 0, pageSize: 4096n });
    r = m.current()!;
    expect(r.average.pagesPerSecond).toBeCloseTo(300 / 3, 9);
  });

  it("records tracker reports", () => {
    const m = new DirtyRateMeter();
    m.start(0);
    m.recordReport(
      { dirtyPages: 20, pageSize: 4096n, perDevice: { a: { pages: 15 }, b: { pages: undefined } } },
      2000,
    );
    const r = m.current()!;
    expect(r.last.pagesPerSecond).toBe(10);
    expect(Object.keys(r.perDevice)).toEqual(["a"]);
  });

  it("uses the first sample to start the clock and rejects bad samples", () => {
    const m = new DirtyRateMeter();
    m.record({ atMs: 500, pages: 7, pageSize: 4096n });
    expect(m.current()).toBeUndefined();
    m.record({ atMs: 1500, pages: 10, pageSize: 2n << 20n });
    expect(m.current()!.last.bytesPerSecond).toBe(10 * 2 * 2 ** 20);
    expect(() => m.record({ atMs: 2000, pages: -1, pageSize: 4096n })).toThrow(RangeError);
    expect(() => new DirtyRateMeter({ window: 0 })).toThrow(RangeError);
  });
});

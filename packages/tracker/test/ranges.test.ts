import { Errno } from "@vfio-dirty/vfio-adapter";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  combineRanges,
  type IovaRange,
  type MemorySection,
  planLogging,
  startWithRetry,
} from "../src/ranges.ts";

const G = 1n << 30n;
const T = 1n << 40n;
const r = (iova: bigint, length: bigint): IovaRange => ({ iova, length });

/** A fake device: limits on range count and on the summed length (mlx5's address-space rule). */
function device(maxRanges: number, maxSpan: bigint) {
  const seen: (readonly IovaRange[])[] = [];
  const tryStart = (ranges: readonly IovaRange[]) => {
    seen.push(ranges);
    if (ranges.length > maxRanges) return Errno.E2BIG;
    if (ranges.reduce((s, x) => s + x.length, 0n) > maxSpan) return Errno.EOPNOTSUPP;
    return 0;
  };
  return { seen, tryStart };
}

describe("planLogging", () => {
  it("splits like QEMU: below 4 GiB, above 4 GiB, 64-bit PCI BARs", () => {
    const sections: MemorySection[] = [
      { iova: 0n, length: 640n << 10n, kind: "ram" },
      { iova: 1n << 20n, length: 3n * G - (1n << 20n), kind: "ram" },
      { iova: 4n * G, length: 64n * G, kind: "ram" },
      { iova: 32n * T, length: 256n << 20n, kind: "pci-bar" },
      { iova: 0xfe000000n, length: 0x1000n, kind: "pci-bar" }, // a 32-bit BAR stays in ranges32
    ];
    const plan = planLogging(sections, 4096n);
    expect(plan.coarse).toEqual([r(0n, 0xfe001000n), r(4n * G, 64n * G), r(32n * T, 256n << 20n)]);
    expect(plan.fine).toEqual([
      r(0n, 640n << 10n),
      r(1n << 20n, 3n * G - (1n << 20n)),
      r(0xfe000000n, 0x1000n),
      r(4n * G, 64n * G),
      r(32n * T, 256n << 20n),
    ]);
  });

  it("puts a section straddling 4 GiB above, aligns to the page size, rejects bad input", () => {
    const plan = planLogging([{ iova: 3n * G + 100n, length: 2n * G, kind: "ram" }], 4096n);
    expect(plan.coarse).toEqual([r(3n * G, 2n * G + 4096n)]);
    expect(() => planLogging([], 3000n)).toThrow(/power of two/);
    expect(() => planLogging([{ iova: 0n, length: 0n, kind: "ram" }], 4096n)).toThrow(/bad section/);
  });
});

describe("combineRanges", () => {
  it("merges the closest neighbours first (vfio_combine_iova_ranges)", () => {
    const ranges = [r(0n, 10n), r(20n, 10n), r(35n, 5n), r(100n, 10n)];
    // Gaps: 10, 5, 60. The smallest (30..35) goes first, then 10..20.
    expect(combineRanges(ranges, 3)).toEqual([r(0n, 10n), r(20n, 20n), r(100n, 10n)]);
    expect(combineRanges(ranges, 2)).toEqual([r(0n, 40n), r(100n, 10n)]);
    expect(combineRanges(ranges, 1)).toEqual([r(0n, 110n)]);
    // Ties go to the leftmost pair, as the kernel's strict '<' does.
    expect(combineRanges([r(0n, 1n), r(2n, 1n), r(4n, 1n)], 2)).toEqual([r(0n, 3n), r(4n, 1n)]);
  });

  it("always covers every input byte and respects the count (property)", () => {
    const arbRange = fc
      .tuple(fc.bigInt({ min: 0n, max: 1n << 50n }), fc.bigInt({ min: 1n, max: 1n << 36n }))
      .map(([iova, length]) => r(iova, length));
    fc.assert(
      fc.property(
        fc.array(arbRange, { minLength: 1, maxLength: 20 }),
        fc.integer({ min: 1, max: 8 }),
        (rs, n) => {
          const out = combineRanges(rs, n);
          expect(out.length).toBeLessThanOrEqual(n);
          for (const x of rs)
            expect(out.some((o) => o.iova <= x.iova && x.iova + x.length <= o.iova + o.length)).toBe(true);
          for (let i = 1; i < out.length; i++)
            expect(out[i]!.iova > out[i - 1]!.iova + out[i - 1]!.length).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("startWithRetry", () => {
  const sections: MemorySection[] = [
    { iova: 0n, length: 3n * G, kind: "ram" },
    { iova: 4n * G, length: 60n * G, kind: "ram" },
    { iova: 8n * T, length: G, kind: "ram" }, // hot-plugged far away: makes the above-4G range 8 TiB wide
    { iova: 32n * T, length: 256n << 20n, kind: "pci-bar" },
  ];
  const plan = planLogging(sections, 4096n);

  it("takes QEMU's ranges at once when the device accepts them", () => {
    const d = device(4, 1n << 50n);
    const res = startWithRetry(plan, d.tryStart);
    expect(res.ok).toBe(true);
    expect(res.attempts).toHaveLength(1);
    expect(res.ranges).toEqual(plan.coarse);
  });

  it("E2BIG halves the count, merging the closest neighbours", () => {
    const d = device(1, 1n << 50n);
    const res = startWithRetry(plan, d.tryStart);
    expect(res.ok).toBe(true);
    expect(res.attempts.map((a) => [a.ranges.length, a.errno])).toEqual([
      [3, Errno.E2BIG],
      [1, 0],
    ]);
    expect(res.attempts[1]!.note).toMatch(/E2BIG: halved/);
    expect(res.ranges).toEqual([r(0n, 32n * T + (256n << 20n))]);
  });

  it("the 2^42 span case: EOPNOTSUPP narrows to the sections, holes left out", () => {
    const d = device(4, 1n << 42n);
    const res = startWithRetry(plan, d.tryStart);
    expect(res.ok).toBe(true);
    expect(res.attempts.map((a) => a.errno)).toEqual([Errno.EOPNOTSUPP, 0]);
    expect(res.attempts[1]!.note).toMatch(/EOPNOTSUPP: narrowed/);
    // 4 sections, combined to at most 4: nothing merged, the 8 TiB hole is left out.
    expect(res.ranges).toEqual(plan.fine);
    expect(res.ranges.reduce((s, x) => s + x.length, 0n) <= 1n << 42n).toBe(true);
  });

  it("E2BIG then EOPNOTSUPP: narrowing uses the largest count not refused, and ends when nothing changes", () => {
    const d = device(2, 1n << 42n);
    const res = startWithRetry(plan, d.tryStart);
    expect(res.attempts.map((a) => [a.ranges.length, a.errno])).toEqual([
      [3, Errno.E2BIG],
      [1, Errno.EOPNOTSUPP],
      [2, Errno.EOPNOTSUPP],
    ]);
    // Two ranges cannot cover the sections within 2^42: [0, 8T+1G) is already wider.
    expect(res.ok).toBe(false);
    expect(res.errno).toBe(Errno.EOPNOTSUPP);
  });

  it("EOPNOTSUPP then E2BIG: grows back after the halving overshoots", () => {
    const d = device(3, 1n << 42n);
    const res = startWithRetry(plan, d.tryStart);
    expect(res.attempts.map((a) => [a.ranges.length, a.errno])).toEqual([
      [3, Errno.EOPNOTSUPP],
      [4, Errno.E2BIG],
      [2, Errno.EOPNOTSUPP],
      [3, 0],
    ]);
    expect(res.ranges).toEqual([r(0n, 64n * G), r(8n * T, G), r(32n * T, 256n << 20n)]);
  });

  it("gives up on other errnos and after the attempt bound, recording every attempt", () => {
    expect(startWithRetry(plan, () => Errno.EIO).attempts).toHaveLength(1);
    const many: MemorySection[] = Array.from({ length: 64 }, (_, i) => ({
      iova: BigInt(i) * 2n * G + 4n * G,
      length: G,
      kind: "ram" as const,
    }));
    let calls = 0;
    const res = startWithRetry(
      planLogging(many, 4096n),
      () => {
        calls++;
        return Errno.E2BIG;
      },
      3,
    );
    expect(res.ok).toBe(false);
    expect(calls).toBe(1); // one range already: halving cannot help
    const fineOnly = startWithRetry(
      { coarse: planLogging(many, 4096n).fine, fine: [] },
      () => Errno.E2BIG,
      3,
    );
    expect(fineOnly.attempts.map((a) => a.ranges.length)).toEqual([64, 32, 16]);
  });
});

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  alignDown,
  alignUp,
  bigMax,
  bigMin,
  CleanupStack,
  hex,
  isPowerOfTwoIn,
  mulberry32,
} from "../src/util/index.ts";

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });

describe("util/hex", () => {
  it("prints bigints and numbers as 0x-prefixed lower-case hex, exactly over u64", () => {
    expect(hex(0n)).toBe("0x0");
    expect(hex(4096)).toBe("0x1000");
    expect(hex((1n << 64n) - 1n)).toBe("0xffffffffffffffff");
    fc.assert(fc.property(u64, (v) => BigInt(hex(v)) === v));
  });
});

describe("util/bigint", () => {
  it("bigMin and bigMax agree with sorting, for any list", () => {
    fc.assert(
      fc.property(fc.array(fc.bigInt(), { minLength: 1, maxLength: 20 }), (xs) => {
        const sorted = [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
        expect(bigMin(...xs)).toBe(sorted[0]);
        expect(bigMax(...xs)).toBe(sorted[sorted.length - 1]);
      }),
    );
  });

  it("bigMin and bigMax refuse an empty list rather than return undefined", () => {
    expect(() => bigMin()).toThrow(RangeError);
    expect(() => bigMax()).toThrow(RangeError);
  });

  it("alignDown/alignUp give the nearest multiples at or below/above, for any positive alignment", () => {
    fc.assert(
      fc.property(u64, fc.bigInt({ min: 1n, max: 1n << 40n }), (v, a) => {
        const down = alignDown(v, a);
        const up = alignUp(v, a);
        expect(down % a).toBe(0n);
        expect(up % a).toBe(0n);
        expect(down <= v && v - down < a).toBe(true);
        expect(up >= v && up - v < a).toBe(true);
        expect(up === down).toBe(v % a === 0n);
      }),
    );
  });
});

describe("util/page-size", () => {
  it("accepts exactly the powers of two within the caller's bounds", () => {
    const pow2 = (v: bigint) => v > 0n && [...v.toString(2)].filter((c) => c === "1").length === 1;
    fc.assert(
      fc.property(fc.bigInt({ min: -4n, max: 1n << 33n }), (v) => {
        expect(isPowerOfTwoIn(v)).toBe(pow2(v));
        expect(isPowerOfTwoIn(v, 4096n)).toBe(pow2(v) && v >= 4096n);
        expect(isPowerOfTwoIn(v, 512n, 1n << 30n)).toBe(pow2(v) && v >= 512n && v <= 1n << 30n);
      }),
    );
    expect(isPowerOfTwoIn(12288n)).toBe(false);
    expect(isPowerOfTwoIn(1n << 31n, 512n, 1n << 30n)).toBe(false);
  });
});

describe("util/prng", () => {
  it("mulberry32 replays the same sequence from the same seed, in [0, 1)", () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const c = mulberry32(43);
    const xs = Array.from({ length: 100 }, a);
    expect(Array.from({ length: 100 }, b)).toEqual(xs);
    expect(Array.from({ length: 100 }, c)).not.toEqual(xs);
    for (const x of xs) expect(x >= 0 && x < 1).toBe(true);
  });

  it("mulberry32 keeps its published sequence (workloads and fault plans replay from saved seeds)", () => {
    const r = mulberry32(1);
    expect(Math.floor(r() * 2 ** 32)).toBe(2693262067);
  });
});

describe("util/cleanup", () => {
  it("runs steps newest first, once, and keeps going past a step that throws", () => {
    const order: number[] = [];
    const s = new CleanupStack();
    s.push(() => order.push(1));
    s.push(() => {
      order.push(2);
      throw new Error("boom");
    });
    s.push(() => order.push(3));
    expect(s.size).toBe(3);
    const errors = s.run();
    expect(order).toEqual([3, 2, 1]);
    expect(errors).toHaveLength(1);
    expect(s.size).toBe(0);
    s.run();
    expect(order).toEqual([3, 2, 1]);
  });
});

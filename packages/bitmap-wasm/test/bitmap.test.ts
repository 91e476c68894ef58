// Every bitmap operation against the bit-by-bit reference model, over random lengths, unaligned
// offsets at both ends, empty ranges and ranges ending exactly at the bitmap's end.

import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import type { Bitmap } from "../src/index.ts";
import { loadBitmapCoreSync } from "../src/node.ts";
import {
  type Bits,
  bitsArb,
  expectBits,
  load,
  rangeArb,
  read,
  refCount,
  refRuns,
  runs,
} from "./reference.ts";

const core = loadBitmapCoreSync();
const live: Bitmap[] = [];
const mk = (ref: Bits): Bitmap => {
  const bm = load(core, ref);
  live.push(bm);
  return bm;
};
afterEach(() => {
  for (const bm of live.splice(0)) bm.free();
});

const RUNS = runs(150);
// Lengths up to ~10 words: crosses word boundaries and exercises the unrolled 4-word loops.
const nbitsArb = fc.oneof(
  fc.integer({ min: 0, max: 700 }),
  fc.constantFrom(0, 1, 63, 64, 65, 128, 129, 511, 512, 513),
);
const withBits = nbitsArb.chain((nbits) => fc.tuple(fc.constant(nbits), bitsArb(nbits)));

describe("set / clear / test / fill", () => {
  it("set and clear a range change exactly that range", () => {
    fc.assert(
      fc.property(
        withBits.chain(([nbits, ref]) => fc.tuple(fc.constant(ref), rangeArb(nbits), fc.boolean())),
        ([ref, { start, n }, value]) => {
          const bm = mk(ref);
          if (value) bm.set(start, n);
          else bm.clear(start, n);
          const want = ref.slice();
          want.fill(value ? 1 : 0, start, start + n);
          expectBits(read(bm), want);
          bm.free();
        },
      ),
      RUNS,
    );
  });

  it("test reads every bit", () => {
    fc.assert(
      fc.property(withBits, ([nbits, ref]) => {
        const bm = mk(ref);
        for (let i = 0; i < nbits; i++) expect(bm.test(i)).toBe(ref[i] === 1);
        bm.free();
      }),
      runs(40),
    );
  });

  it("fill sets or clears all nbits and never a bit past the end", () => {
    fc.assert(
      fc.property(withBits, fc.boolean(), ([nbits, ref], value) => {
        const bm = mk(ref);
        bm.fill(value);
        expectBits(read(bm), new Uint8Array(nbits).fill(value ? 1 : 0));
        expect(bm.count()).toBe(value ? nbits : 0);
        bm.free();
      }),
      runs(60),
    );
  });
});

describe("count", () => {
  it("counts the set bits of any range", () => {
    fc.assert(
      fc.property(
        withBits.chain(([nbits, ref]) => fc.tuple(fc.constant(ref), rangeArb(nbits))),
        ([ref, { start, n }]) => {
          const bm = mk(ref);
          expect(bm.count(start, n)).toBe(refCount(ref, start, n));
          bm.free();
        },
      ),
      RUNS,
    );
  });
});

describe("next set / next clear / runs", () => {
  it("nextSet and nextClear find the first matching bit or -1", () => {
    fc.assert(
      fc.property(
        withBits.chain(([nbits, ref]) => fc.tuple(fc.constant(ref), fc.integer({ min: 0, max: nbits }))),
        ([ref, from]) => {
          const bm = mk(ref);
          const set = ref.indexOf(1, from);
          const clear = ref.indexOf(0, from);
          expect(bm.nextSet(from)).toBe(set);
          expect(bm.nextClear(from)).toBe(clear);
          bm.free();
        },
      ),
      RUNS,
    );
  });

  it("runs lists maximal runs from any start", () => {
    fc.assert(
      fc.property(
        withBits.chain(([nbits, ref]) => fc.tuple(fc.constant(ref), fc.integer({ min: 0, max: nbits }))),
        ([ref, from]) => {
          const bm = mk(ref);
          expect([...bm.runs(from)]).toEqual(refRuns(ref, from));
          bm.free();
        },
      ),
      RUNS,
    );
  });

  it("runs resumes when the caller buffer fills (raw ABI, buffer of 1..4 runs)", () => {
    const x = core.exports;
    fc.assert(
      fc.property(withBits, fc.integer({ min: 1, max: 4 }), ([, ref], cap) => {
        const bm = mk(ref);
        const out = x.mem_alloc(cap * 16) >>> 0;
        const got: [number, number][] = [];
        let from = 0n;
        for (;;) {
          const k = x.bitmap_runs(bm.handle, from, out, cap);
          expect(k).toBeGreaterThanOrEqual(0);
          const v = new BigUint64Array(x.memory.buffer, out, k * 2);
          for (let i = 0; i < k; i++) got.push([Number(v[2 * i]), Number(v[2 * i + 1])]);
          if (k < cap) break;
          from = v[2 * k - 2]! + v[2 * k - 1]!;
        }
        expect(x.mem_free(out)).toBe(0);
        expect(got).toEqual(refRuns(ref));
        bm.free();
      }),
      runs(80),
    );
  });

  it("runs over more runs than one internal batch (1024)", () => {
    const ref = new Uint8Array(5000);
    for (let i = 0; i < ref.length; i += 2) ref[i] = 1; // 2500 runs of length 1
    const bm = mk(ref);
    const runs = [...bm.runs()];
    expect(runs.length).toBe(2500);
    expect(runs).toEqual(refRuns(ref));
  });
});

describe("merge: OR and AND-NOT at differing offsets", () => {
  // Longer bitmaps too, so the 4 x v128 middle loops run several iterations plus their tails.
  const mergeBits = fc
    .oneof(nbitsArb, fc.integer({ min: 600, max: 3000 }))
    .chain((nbits) => fc.tuple(fc.constant(nbits), bitsArb(nbits)));
  const mergeCase = fc.tuple(mergeBits, mergeBits).chain(([[sn, sref], [dn, dref]]) =>
    fc
      .tuple(
        fc.constant(sref),
        fc.constant(dref),
        fc.nat(),
        fc.nat(),
        fc.nat(),
        fc.constantFrom("any", "toEnd", "empty", "max"),
        fc.boolean(),
      )
      .map(([s, d, sa, da, na, mode, sameShift]) => {
        const srcStart = sa % (sn + 1);
        let dstStart = da % (dn + 1);
        // Offsets equal mod 64 take the unshifted word path; others the two-load shifted one.
        if (sameShift) {
          dstStart = dstStart - (dstStart % 64) + (srcStart % 64);
          if (dstStart > dn) dstStart -= 64;
          if (dstStart < 0) dstStart = Math.min(srcStart, dn);
        }
        const room = Math.min(sn - srcStart, dn - dstStart);
        const n = mode === "empty" ? 0 : mode === "any" ? na % (room + 1) : room;
        return { sref: s, dref: d, srcStart, dstStart, n };
      }),
  );

  it("orFrom ORs exactly n bits into the destination", () => {
    fc.assert(
      fc.property(mergeCase, ({ sref, dref, srcStart, dstStart, n }) => {
        const src = mk(sref);
        const dst = mk(dref);
        dst.orFrom(src, srcStart, dstStart, n);
        const want = dref.slice();
        for (let i = 0; i < n; i++) want[dstStart + i]! |= sref[srcStart + i]!;
        expectBits(read(dst), want);
        expectBits(read(src), sref);
        src.free();
        dst.free();
      }),
      runs(250),
    );
  });

  it("andNotFrom clears in the destination what the source has set", () => {
    fc.assert(
      fc.property(mergeCase, ({ sref, dref, srcStart, dstStart, n }) => {
        const src = mk(sref);
        const dst = mk(dref);
        dst.andNotFrom(src, srcStart, dstStart, n);
        const want = dref.slice();
        for (let i = 0; i < n; i++) if (sref[srcStart + i]) want[dstStart + i] = 0;
        expectBits(read(dst), want);
        src.free();
        dst.free();
      }),
      runs(250),
    );
  });

  it("orFrom within one bitmap between disjoint ranges", () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 2, max: 600 })
          .chain((nbits) => fc.tuple(bitsArb(nbits), fc.nat(), fc.nat(), fc.nat())),
        ([ref, a, b, c]) => {
          const nbits = ref.length;
          const n = 1 + (a % Math.floor(nbits / 2));
          const srcStart = b % (nbits - 2 * n + 1);
          const dstStart = srcStart + n + (c % (nbits - srcStart - 2 * n + 1));
          const bm = mk(ref);
          bm.orFrom(bm, srcStart, dstStart, n);
          const want = ref.slice();
          for (let i = 0; i < n; i++) want[dstStart + i]! |= ref[srcStart + i]!;
          expectBits(read(bm), want);
          bm.free();
        },
      ),
      runs(100),
    );
  });
});

describe("take-and-clear", () => {
  it("copies the range out (overwriting) and zeroes it in the source", () => {
    fc.assert(
      fc.property(
        fc
          .oneof(nbitsArb, fc.integer({ min: 600, max: 3000 }))
          .chain((nbits) =>
            fc.tuple(bitsArb(nbits), bitsArb(nbits), rangeArb(nbits), fc.integer({ min: 0, max: 130 })),
          ),
        ([sref, dref0, { start, n }, extra]) => {
          // The destination may be longer than the source.
          const dref = new Uint8Array(sref.length + extra);
          dref.set(dref0);
          const src = mk(sref);
          const dst = mk(dref);
          src.takeAndClear(dst, start, n);
          const wantDst = dref.slice();
          wantDst.set(sref.subarray(start, start + n), start);
          const wantSrc = sref.slice();
          wantSrc.fill(0, start, start + n);
          expectBits(read(dst), wantDst);
          expectBits(read(src), wantSrc);
          src.free();
          dst.free();
        },
      ),
      runs(200),
    );
  });
});

describe("density", () => {
  it("splits a range into N buckets of set-bit counts", () => {
    fc.assert(
      fc.property(
        withBits.chain(([nbits, ref]) =>
          fc.tuple(fc.constant(ref), rangeArb(nbits), fc.integer({ min: 1, max: 40 })),
        ),
        ([ref, { start, n }, buckets]) => {
          const bm = mk(ref);
          const got = core.density(bm, buckets, start, n);
          const want: number[] = [];
          for (let k = 0; k < buckets; k++) {
            const lo = start + Math.floor((k * n) / buckets);
            const hi = start + Math.floor(((k + 1) * n) / buckets);
            want.push(refCount(ref, lo, hi - lo));
          }
          expect(got).toEqual(want);
          expect(got.reduce((a, b) => a + b, 0)).toBe(refCount(ref, start, n));
          bm.free();
        },
      ),
      RUNS,
    );
  });
});

describe("views and geometry", () => {
  it("exposes nbits, pageSize, base, byteLength, ptr and a live view of the words", () => {
    const bm = core.bitmap({ nbits: 130, pageSize: 2n << 20n, base: 6n << 20n });
    live.push(bm);
    expect([bm.nbits, bm.pageSize, bm.base, bm.byteLength]).toEqual([130, 2n << 20n, 6n << 20n, 24]);
    expect(bm.ptr % 16).toBe(0);
    expect(bm.bytes.byteOffset).toBe(bm.ptr);
    // The kernel's rule: page p is bit p % 64 of u64 word p / 64.
    bm.set(65, 1);
    expect(bm.words[1]).toBe(2n);
    bm.words[2] = 1n; // page 128, written as the kernel would
    expect(bm.test(128)).toBe(true);
    expect([...bm.runs()]).toEqual([
      [65, 1],
      [128, 1],
    ]);
  });

  it("large bitmaps allocated back to back start at different 1 KiB colours of a 4 KiB page", () => {
    // Keeps streaming merges between them clear of 4K aliasing (see bitmap_new).
    const bms = [0, 1, 2, 3].map(() => core.bitmap({ nbits: 1 << 20 }));
    live.push(...bms);
    const colours = bms.map((b) => b.ptr % 4096);
    expect(colours.every((c) => c % 1024 === 0)).toBe(true);
    expect(new Set(colours).size).toBe(4);
    bms[0]!.set(5, 1);
    bms[1]!.orFrom(bms[0]!);
    expect([...bms[1]!.runs()]).toEqual([[5, 1]]);
  });

  it("a bitmap of 0 bits supports every operation on the empty range", () => {
    const bm = core.bitmap({ nbits: 0 });
    live.push(bm);
    bm.set(0, 0);
    bm.fill(true);
    expect(bm.count()).toBe(0);
    expect(bm.nextSet(0)).toBe(-1);
    expect([...bm.runs()]).toEqual([]);
    expect(core.density(bm, 3)).toEqual([0, 0, 0]);
  });
});

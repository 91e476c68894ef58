// A plain bit-by-bit reference model for the wasm bitmap, and helpers that move bits between the
// model (one byte per bit) and a wasm Bitmap. Deliberately naive: every check in the tests
// compares the wasm result with what these loops compute one bit at a time.

import fc from "fast-check";
import type { Bitmap, BitmapCore } from "../src/index.ts";

export type Bits = Uint8Array; // one entry (0 or 1) per page

/**
 * fast-check run counts: `npm test` runs each property `n` times, sized to take well under a
 * second on a loaded 2-core machine; `npm run test:long` multiplies them (BITMAP_TEST_SCALE).
 */
const SCALE = Number(process.env.BITMAP_TEST_SCALE ?? 1);
export const runs = (n: number): { numRuns: number } => ({ numRuns: Math.max(1, Math.round(n * SCALE)) });

/** Deterministic pseudo-random bits with a given density (xorshift32, seeded). */
export function randomBits(nbits: number, seed: number, density: number): Bits {
  const out = new Uint8Array(nbits);
  let s = seed | 0 || 1;
  for (let i = 0; i < nbits; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s >>> 0) / 0x1_0000_0000 < density ? 1 : 0;
  }
  return out;
}

/** An arbitrary bit pattern: empty, full, random at some density, or a few isolated bits. */
export const bitsArb = (nbits: number): fc.Arbitrary<Bits> =>
  fc.oneof(
    fc
      .record({ seed: fc.integer(), density: fc.constantFrom(0, 0.003, 0.02, 0.3, 0.5, 0.9, 1) })
      .map(({ seed, density }) => randomBits(nbits, seed, density)),
    // One to three lone bits: the case where "any bit in this group?" must look at every word.
    fc.array(fc.nat(), { minLength: 1, maxLength: 3 }).map((picks) => {
      const out = new Uint8Array(nbits);
      if (nbits > 0) for (const p of picks) out[p % nbits] = 1;
      return out;
    }),
  );

/** A bitmap in wasm memory holding exactly `ref`, written through its word view. */
export function load(core: BitmapCore, ref: Bits, pageSize = 4096n, base = 0n): Bitmap {
  const bm = core.bitmap({ nbits: ref.length, pageSize, base });
  const bytes = bm.bytes;
  for (let i = 0; i < ref.length; i++) if (ref[i]) bytes[i >> 3]! |= 1 << (i & 7);
  return bm;
}

/** The bits of a wasm bitmap, after checking that no bit past nbits was written. */
export function read(bm: Bitmap): Bits {
  const bytes = bm.bytes;
  const out = new Uint8Array(bm.nbits);
  for (let i = 0; i < bm.nbits; i++) out[i] = (bytes[i >> 3]! >> (i & 7)) & 1;
  for (let i = bm.nbits; i < bm.byteLength * 8; i++) {
    if ((bytes[i >> 3]! >> (i & 7)) & 1) throw new Error(`bit ${i} past nbits ${bm.nbits} is set`);
  }
  return out;
}

/** Runs of set bits in ref at or after `from` (a run containing `from` starts at `from`). */
export function refRuns(ref: Bits, from = 0, to = ref.length): [number, number][] {
  const runs: [number, number][] = [];
  let i = from;
  while (i < to) {
    if (!ref[i]) {
      i++;
      continue;
    }
    const s = i;
    while (i < to && ref[i]) i++;
    runs.push([s, i - s]);
  }
  return runs;
}

export function refCount(ref: Bits, start = 0, n = ref.length - start): number {
  let c = 0;
  for (let i = start; i < start + n; i++) c += ref[i]!;
  return c;
}

/**
 * A range [start, start + n) inside nbits, biased towards the interesting cases: empty, ending
 * exactly at nbits, starting at 0, word-aligned, and arbitrary.
 */
export const rangeArb = (nbits: number): fc.Arbitrary<{ start: number; n: number }> =>
  fc
    .tuple(fc.nat(), fc.nat(), fc.constantFrom("any", "toEnd", "fromZero", "empty", "whole"))
    .map(([a, b, mode]) => {
      const start = mode === "fromZero" || mode === "whole" ? 0 : a % (nbits + 1);
      const room = nbits - start;
      if (mode === "empty") return { start, n: 0 };
      if (mode === "toEnd" || mode === "whole") return { start, n: room };
      return { start, n: b % (room + 1) };
    });

/**
 * Expects `got` to hold exactly the bits of `want`. A plain loop finds the first difference:
 * vitest's toEqual on a typed array of tens of thousands of entries costs about 170 ms a call,
 * which made property tests slow enough to time out on a loaded machine. On a mismatch the
 * message names the first differing page, how many differ, and the entries around it.
 */
export function expectBits(got: Bits, want: Bits, label = "bits"): void {
  if (got.length !== want.length) throw new Error(`${label}: ${got.length} entries, expected ${want.length}`);
  let first = -1;
  let differ = 0;
  for (let i = 0; i < got.length; i++) {
    if (got[i] === want[i]) continue;
    if (first < 0) first = i;
    differ++;
  }
  if (first < 0) return;
  const lo = Math.max(0, first - 8);
  const hi = Math.min(got.length, first + 9);
  throw new Error(
    `${label}: ${differ} of ${got.length} entries differ, the first at ${first} ` +
      `(entries ${lo}..${hi - 1}: got ${got.slice(lo, hi).join("")}, expected ${want.slice(lo, hi).join("")})`,
  );
}

// Page-size conversion against a by-address reference: every destination page that overlaps a
// dirty source page must be dirty, for every power-of-two pair in 512 B..1 GiB, with bases that
// differ and are not aligned to the larger page, including partial pages at both ends.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { loadBitmapCoreSync } from "../src/node.ts";
import { type Bits, bitsArb, expectBits, load, randomBits, read, runs } from "./reference.ts";

const core = loadBitmapCoreSync();

/** Reference: OR src into dst by address, one dirty source page at a time. */
function refConvert(
  sref: Bits,
  sBase: bigint,
  sPs: bigint,
  dref: Bits,
  dBase: bigint,
  dPs: bigint,
): { want: Bits; outside: number } {
  const want = dref.slice();
  const dEnd = dBase + BigInt(dref.length) * dPs;
  let outside = 0;
  for (let i = 0; i < sref.length; i++) {
    if (!sref[i]) continue;
    const lo = sBase + BigInt(i) * sPs;
    const hi = lo + sPs;
    if (lo < dBase || hi > dEnd) outside++;
    for (let a = lo > dBase ? lo : dBase; a < hi && a < dEnd; ) {
      const j = (a - dBase) / dPs;
      want[Number(j)] = 1;
      a = dBase + (j + 1n) * dPs;
    }
  }
  return { want, outside };
}

// Property tests with thousands of bits per case: allow for a loaded 2-core machine.
const HEAVY = 30_000;

const LOGS = Array.from({ length: 22 }, (_, i) => 9 + i); // 512 B .. 1 GiB

/** Two geometries whose spans overlap partially, bases unaligned to the larger page. */
const convertCase = fc
  .record({
    sLog: fc.constantFrom(...LOGS),
    dLog: fc.constantFrom(...LOGS),
    sBits: fc.integer({ min: 0, max: 300 }),
    dBits: fc.integer({ min: 0, max: 300 }),
    anchor: fc.bigInt({ min: 1n << 40n, max: 1n << 46n }),
    sOff: fc.integer({ min: -300, max: 300 }),
    dOff: fc.integer({ min: -300, max: 300 }),
  })
  .chain((g) => fc.tuple(fc.constant(g), bitsArb(g.sBits), bitsArb(g.dBits)));

describe("convert", () => {
  it(
    "never loses a dirty page, for every page-size pair and unaligned bases",
    () => {
      fc.assert(
        fc.property(convertCase, ([g, sref, dref]) => {
          const sPs = 1n << BigInt(g.sLog);
          const dPs = 1n << BigInt(g.dLog);
          // Align the anchor to the finer page; offsets in the finer page keep the bases unaligned
          // to the larger one, and each base stays aligned to its own page size.
          const fine = sPs < dPs ? sPs : dPs;
          const anchor = (g.anchor / fine) * fine;
          const sBase = roundDown(anchor + BigInt(g.sOff) * fine, sPs);
          const dBase = roundDown(anchor + BigInt(g.dOff) * fine, dPs);
          const src = load(core, sref, sPs, sBase);
          const dst = load(core, dref, dPs, dBase);
          const { outsidePages } = core.convert(src, dst);
          const { want, outside } = refConvert(sref, sBase, sPs, dref, dBase, dPs);
          expectBits(read(dst), want);
          expect(outsidePages).toBe(outside);
          expectBits(read(src), sref);
          src.free();
          dst.free();
        }),
        runs(250),
      );
    },
    HEAVY,
  );

  it(
    "matches the reference where the word-aligned fast paths apply (bases on 64-page boundaries)",
    () => {
      fc.assert(
        fc.property(
          fc
            .record({
              fineLog: fc.integer({ min: 9, max: 18 }),
              k: fc.integer({ min: 1, max: 12 }),
              coarsen: fc.boolean(),
              // Up to 4000 fine bits: enough for whole 32-word groups of the 32x SIMD expansion.
              sBits: fc.integer({ min: 0, max: 1500 }),
              dBits: fc.integer({ min: 0, max: 4000 }),
              sOff: fc.integer({ min: -3, max: 3 }),
              dOff: fc.integer({ min: -3, max: 3 }),
              tweak: fc.constantFrom(0, 0, 0, 1, 3, 64, 65, 100),
              sCoarse: fc.integer({ min: -5, max: 5 }),
            })
            .chain((g) => fc.tuple(fc.constant(g), bitsArb(g.sBits), bitsArb(g.dBits))),
          ([g, sref, dref]) => {
            const fine = 1n << BigInt(g.fineLog);
            const big = fine << BigInt(g.k);
            const [sPs, dPs] = g.coarsen ? [fine, big] : [big, fine];
            // Offsets in units of 64 fine pages keep destination words aligned to coarse groups;
            // `tweak` fine pages on top exercise the fall-back next to the fast path.
            const anchor = (1n << 44n) + big * 4n;
            const unit = 64n * fine;
            // For expansions, `sCoarse` whole coarse pages more: the first coarse bit used is then any
            // index, not a multiple of 64 >> k, so fine words may take bits from two source words.
            const sBase =
              roundDown(anchor + BigInt(g.sOff) * unit + (sPs === fine ? BigInt(g.tweak) * fine : 0n), sPs) +
              (g.coarsen ? 0n : BigInt(g.sCoarse) * big);
            const dBase = roundDown(
              anchor + BigInt(g.dOff) * unit + (dPs === fine ? BigInt(g.tweak) * fine : 0n),
              dPs,
            );
            const src = load(core, sref, sPs, sBase);
            const dst = load(core, dref, dPs, dBase);
            const { outsidePages } = core.convert(src, dst);
            const { want, outside } = refConvert(sref, sBase, sPs, dref, dBase, dPs);
            expectBits(read(dst), want);
            expect(outsidePages).toBe(outside);
            src.free();
            dst.free();
          },
        ),
        runs(250),
      );
    },
    HEAVY,
  );

  it(
    "matches the reference when coarsening by 2..32 over whole destination words (the lane fold)",
    () => {
      fc.assert(
        fc.property(
          fc
            .record({
              fineLog: fc.integer({ min: 9, max: 14 }),
              k: fc.integer({ min: 1, max: 5 }),
              // Up to 6000 fine bits: several whole destination words even at 32 fine bits each.
              sBits: fc.integer({ min: 0, max: 6000 }),
              dBits: fc.integer({ min: 0, max: 300 }),
              sOff: fc.integer({ min: -3, max: 3 }),
              dOff: fc.integer({ min: -3, max: 3 }),
              tweak: fc.constantFrom(0, 0, 0, 1, 63, 64, 100),
              // Lone dirty pages as well as bitsArb's densities: a dense source dirties every coarse
              // page and would hide a coarse bit put in the wrong place.
              lone: fc.array(fc.nat(), { minLength: 1, maxLength: 40 }),
            })
            .chain((g) =>
              fc.tuple(
                fc.constant(g),
                fc.oneof(bitsArb(g.sBits), fc.constant(loneBits(g.sBits, g.lone))),
                bitsArb(g.dBits),
              ),
            ),
          ([g, sref, dref]) => {
            const sPs = 1n << BigInt(g.fineLog);
            const dPs = sPs << BigInt(g.k);
            const anchor = (1n << 44n) + dPs * 64n * 4n;
            // Destination words start on 64 coarse pages; the source on 64 fine pages, off by
            // `tweak` fine pages to exercise the clipped path next to the fold.
            const sBase = anchor + BigInt(g.sOff) * 64n * sPs + BigInt(g.tweak) * sPs;
            const dBase = anchor + BigInt(g.dOff) * 64n * dPs;
            const src = load(core, sref, sPs, sBase);
            const dst = load(core, dref, dPs, dBase);
            const { outsidePages } = core.convert(src, dst);
            const { want, outside } = refConvert(sref, sBase, sPs, dref, dBase, dPs);
            expectBits(read(dst), want);
            expect(outsidePages).toBe(outside);
            src.free();
            dst.free();
          },
        ),
        runs(250),
      );
    },
    HEAVY,
  );

  it("covers all 22 x 22 page-size pairs at least once with overlapping unaligned windows", () => {
    for (const sLog of LOGS) {
      for (const dLog of LOGS) {
        const sPs = 1n << BigInt(sLog);
        const dPs = 1n << BigInt(dLog);
        const big = sPs > dPs ? sPs : dPs;
        const fine = sPs < dPs ? sPs : dPs;
        // The source starts 3 fine pages into a big page; the destination 5 fine pages before one.
        const sBase = roundDown(big * 7n + 3n * fine, sPs);
        const dBase = roundDown(big * 7n - 5n * fine, dPs);
        const sBits = sPs > dPs ? 3 : 200;
        const dBits = dPs > sPs ? 3 : 200;
        const sref = new Uint8Array(sBits);
        sref[0] = 1;
        sref[sBits - 1] = 1;
        sref[sBits >> 1] = 1;
        const src = load(core, sref, sPs, sBase);
        const dst = load(core, new Uint8Array(dBits), dPs, dBase);
        const { outsidePages } = core.convert(src, dst);
        const { want, outside } = refConvert(sref, sBase, sPs, new Uint8Array(dBits), dBase, dPs);
        expectBits(read(dst), want, `${sPs} -> ${dPs}`);
        expect(outsidePages, `${sPs} -> ${dPs}`).toBe(outside);
        src.free();
        dst.free();
      }
    }
  });

  it("coarsening by 2..4096 sees a lone dirty page at every position of a coarse page", () => {
    for (let k = 1; k <= 12; k++) {
      const r = 1 << k;
      for (const at of [0, 63, 64, r - 65, r - 64, r - 1].filter((a) => a >= 0 && a < r)) {
        // Three coarse pages, the dirty fine page at `at` inside the middle one only.
        const sref = new Uint8Array(3 * r);
        sref[r + at] = 1;
        const src = load(core, sref, 4096n, 1n << 40n);
        const dst = core.bitmap({ nbits: 3, pageSize: 4096n << BigInt(k), base: 1n << 40n });
        core.convert(src, dst);
        expectBits(read(dst), Uint8Array.from([0, 1, 0]), `k ${k}, at ${at}`);
        src.free();
        dst.free();
      }
    }
  });

  it(
    "expands into a long destination window that is not word-aligned with the source pages",
    () => {
      // 40000 fine bits: more than one 32768-bit scratch chunk of the shifted expansion.
      for (const [sLog, off] of [
        [16, 1],
        [15, 7],
        [17, 100],
        [21, 3],
      ] as const) {
        const sPs = 1n << BigInt(sLog);
        const sref = randomBits(Math.ceil((40_000 * 4096) / Number(sPs)) + 2, sLog, 0.4);
        const src = load(core, sref, sPs, 0n);
        const dref = randomBits(40_000, off, 0.05);
        const dBase = 4096n * BigInt(off);
        const dst = load(core, dref, 4096n, dBase);
        const { outsidePages } = core.convert(src, dst);
        const { want, outside } = refConvert(sref, 0n, sPs, dref, dBase, 4096n);
        expectBits(read(dst), want, `${sPs} -> 4096 at +${off} pages`);
        expect(outsidePages).toBe(outside);
        src.free();
        dst.free();
      }
    },
    HEAVY,
  );

  it(
    "coarsens a long source that is not word-aligned with the coarse pages (several scratch chunks)",
    () => {
      for (const [k, off] of [
        [9, 3],
        [6, 1],
        [12, 5000],
        [15, 77],
      ] as const) {
        const r = 1 << k;
        const nfine = 200_000;
        const sref = randomBits(nfine, k + off, 0.0005);
        // The first and the last fine page of some coarse pages, alone in them.
        const first = (r - (off % r)) % r;
        for (let c = 0; first + c * r < nfine; c += 3) sref[first + c * r] = 1;
        for (let c = 1; first + c * r - 1 < nfine; c += 5) sref[first + c * r - 1] = 1;
        const sBase = 4096n * BigInt(off);
        const src = load(core, sref, 4096n, sBase);
        const dPs = 4096n << BigInt(k);
        const dBits = Math.ceil((off + nfine) / r);
        const dst = core.bitmap({ nbits: dBits, pageSize: dPs, base: 0n });
        const { outsidePages } = core.convert(src, dst);
        const { want, outside } = refConvert(sref, sBase, 4096n, new Uint8Array(dBits), 0n, dPs);
        expectBits(read(dst), want, `k ${k}, +${off} pages`);
        expect(outsidePages).toBe(outside);
        src.free();
        dst.free();
      }
    },
    HEAVY,
  );

  it(
    "coarsens a long word-aligned source through whole destination words, exact at both partial ends",
    () => {
      // The source starts a multiple of 64 fine pages (not of r) into a coarse page, so fine words
      // line up with coarse pages but the first and last coarse pages are partial; the destination
      // starts 5 coarse pages earlier, so its interior begins mid-word; some runs cut the window
      // short so the interior ends at the destination's end. nw = r / 64 = 1 .. 64 words per bit.
      for (const k of [6, 7, 8, 9, 10, 11, 12]) {
        const r = 1 << k;
        const off = 64 * (1 + (k % Math.max(1, r / 64 - 1)));
        const nfine = 4 * 64 * r + 64 * 3 + 37;
        // About 1 dirty fine page per coarse page: some coarse pages clean, most dirty.
        const sref = randomBits(nfine, k, 1 / r);
        sref[0] = 1; // alone in the partial first coarse page
        sref[nfine - 1] = 1; // alone in the partial last coarse page
        const first = (r - (off % r)) % r;
        for (let c = 0; first + c * r < nfine; c += 3) sref[first + c * r] = 1;
        for (let c = 1; first + c * r - 1 < nfine; c += 5) sref[first + c * r - 1] = 1;
        const anchor = 1n << 40n;
        const sBase = anchor + 4096n * BigInt(off);
        const dPs = 4096n << BigInt(k);
        const dBase = anchor - 5n * dPs;
        const full = 5 + Math.ceil((off + nfine) / r);
        for (const dBits of [full, full - 70]) {
          const src = load(core, sref, 4096n, sBase);
          const dref = randomBits(dBits, k + dBits, 0.01);
          const dst = load(core, dref, dPs, dBase);
          const { outsidePages } = core.convert(src, dst);
          const { want, outside } = refConvert(sref, sBase, 4096n, dref, dBase, dPs);
          expectBits(read(dst), want, `k ${k}, ${dBits} coarse pages`);
          expect(outsidePages).toBe(outside);
          src.free();
          dst.free();
        }
      }
    },
    HEAVY,
  );

  it("coarsens a 4 KiB bitmap to 2 MiB pages with a dirty page in each partial end page", () => {
    // src covers [2 MiB - 8 KiB, 6 MiB + 4 KiB): partial coarse pages at both ends.
    const sBase = (2n << 20n) - 8192n;
    const sref = new Uint8Array(1024 + 3);
    sref[0] = 1; // in coarse page 0
    sref[sref.length - 1] = 1; // in coarse page 3
    const src = load(core, sref, 4096n, sBase);
    const dst = core.bitmap({ nbits: 4, pageSize: 2n << 20n, base: 0n });
    expect(core.convert(src, dst)).toEqual({ outsidePages: 0 });
    expectBits(read(dst), Uint8Array.from([1, 0, 0, 1]));
    src.free();
    dst.free();
  });

  it("expands a dirty 1 GiB page into every 512 B page of a window inside it", () => {
    const src = core.bitmap({ nbits: 2, pageSize: 1n << 30n, base: 1n << 30n });
    src.set(0, 1);
    // The window starts 512 B before the dirty page and ends inside it.
    const dst = core.bitmap({ nbits: 1000, pageSize: 512n, base: (1n << 30n) - 512n });
    expect(core.convert(src, dst)).toEqual({ outsidePages: 1 });
    expect(dst.count()).toBe(999);
    expect(dst.test(0)).toBe(false);
    src.free();
    dst.free();
  });

  it("rejects converting a bitmap into itself", () => {
    const bm = core.bitmap({ nbits: 10 });
    expect(() => core.convert(bm, bm)).toThrow(/OVERLAP/);
    bm.free();
  });
});

/** `n` bits with only the picked ones set. */
function loneBits(n: number, picks: readonly number[]): Bits {
  const out = new Uint8Array(n);
  if (n > 0) for (const p of picks) out[p % n] = 1;
  return out;
}

function roundDown(v: bigint, ps: bigint): bigint {
  return (v / ps) * ps;
}

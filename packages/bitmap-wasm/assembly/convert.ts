// Page-size conversion: OR a bitmap into another by address, for any power-of-two page sizes.
//
//   src (fine, 4 KiB)   |0|1|2|3|4|5|6|7|8|9|a|b|...        base 0x3000
//   dst (coarse, 16 KiB)      |   0   |   1   |   2   |    base 0x4000
//                       coarsen: dst bit j = OR of the fine bits inside it (any dirty -> dirty)
//                       expand:  each fine dst bit = the coarse src bit that contains it
//
// Bases are aligned to their own page size, so page boundaries of the finer bitmap include every
// boundary of the coarser one: each fine page lies in exactly one coarse page, and nothing is
// rounded away at either end. Work is limited to the address range both bitmaps cover.
//
// Coarsening reads the fine bits of each coarse bit: r >= 64 fine bits per coarse bit use an
// any-of-words scan (v128.any_true); r < 64 fold 64 fine bits into 64/r coarse bits with shifts.
// Expanding builds each fine destination word from the coarse bits it needs (a spread and a
// multiply for r < 64; whole words of ones for r >= 64).

import {
  anyInRange, anyWords, bitsMask, countRange, lowMask, mergeRange, OP_OR, setWordAt, windowClipped, windowSlack, wordAt,
} from "./bits";

/**
 * OR src into dst by address (see the header). Returns the number of dirty src pages not entirely
 * inside dst's span. Arguments are validated: page sizes are powers of two, spans do not overflow.
 */
export function convertInto(
  src: usize, sBase: u64, sLog: u64, sBits: u64,
  dst: usize, dBase: u64, dLog: u64, dBits: u64,
): u64 {
  const sEnd = sBase + (sBits << sLog);
  const dEnd = dBase + (dBits << dLog);
  const a = max<u64>(sBase, dBase);
  const b = min<u64>(sEnd, dEnd);
  if (a < b) {
    if (sLog == dLog) {
      mergeRange(dst, (a - dBase) >> dLog, src, (a - sBase) >> sLog, (b - a) >> sLog, OP_OR);
    } else if (sLog < dLog) {
      coarsen(src, sBase, sLog, dst, dBase, dLog, a, b);
    } else {
      expand(src, sBase, sLog, dst, dBase, dLog, a, b);
    }
  }
  // Source pages entirely inside dst: [ceil((dBase - sBase) / ps), floor((dEnd - sBase) / ps)).
  let iLo: u64 = 0;
  if (dBase > sBase) iLo = min<u64>(sBits, (dBase - sBase + (lowMask(sLog))) >> sLog);
  let iHi: u64 = 0;
  if (dEnd > sBase) iHi = min<u64>(sBits, (dEnd - sBase) >> sLog);
  // Count only the parts outside [iLo, iHi): when dst covers src this reads nothing.
  if (iHi <= iLo) return countRange(src, 0, sBits);
  return countRange(src, 0, iLo) + countRange(src, iHi, sBits - iHi);
}

// --- Internal helpers ---

// Coarsen: the overlap [a, b) holds fine src bits [i0, i1) and coarse dst bits [j0, j1).
function coarsen(src: usize, sBase: u64, sLog: u64, dst: usize, dBase: u64, dLog: u64, a: u64, b: u64): void {
  const k = dLog - sLog;
  const r: u64 = <u64>1 << k;
  const i0 = <i64>((a - sBase) >> sLog);
  const i1 = <i64>((b - sBase) >> sLog);
  const j0 = (a - dBase) >> dLog;
  const j1 = (b - dBase + lowMask(dLog)) >> dLog;
  // Fine bit (in src numbering) where coarse bit j0 starts; may precede i0 (partial first page).
  const f0 = i0 - <i64>((((a - dBase) >> sLog)) - (j0 << k));
  if (k >= 6 && (f0 & 63) == 0) {
    coarsenWordAligned(src, dst, f0, i0, i1, j0, j1, k);
    return;
  }
  if (k >= 6 && k <= 15) {
    coarsenShifted(src, dst, f0, i0, i1, j0, j1, k);
    return;
  }
  if (k >= 6) {
    const nw = <usize>(r >> 6);
    let j = j0;
    while (j < j1) {
      const wi = j >> 6;
      const wEnd = min<u64>((wi + 1) << 6, j1);
      let acc: u64 = 0;
      for (; j < wEnd; j++) {
        const fa = f0 + (<i64>(j - j0) << k);
        const lo = max<i64>(fa, i0);
        const hi = min<i64>(fa + <i64>r, i1);
        let dirty: bool;
        if (lo == fa && hi == fa + <i64>r && (fa & 63) == 0) {
          dirty = anyWords(src + (<usize>(fa >> 6) << 3), nw);
        } else {
          dirty = anyInRange(src, <u64>lo, <u64>hi);
        }
        if (dirty) acc |= <u64>1 << (j & 63);
      }
      setWordAt(dst, wi, wordAt(dst, wi) | acc);
    }
    return;
  }
  // r < 64: each destination word takes r windows of 64 fine bits, each folding to 64/r bits.
  const wFirst = j0 >> 6;
  const wLast = (j1 - 1) >> 6;
  // Fine position of coarse bit 64 * wi: fFirst + (wi - wFirst) * span.
  const span: i64 = <i64>64 << k;
  const fFirst = f0 + ((<i64>(wFirst << 6) - <i64>j0) << k);
  // Interior words [wA, wB): their r source words lie wholly inside [i0, i1) and start on a word.
  // With 8, 16 or 32 fine bits per coarse bit they go through the lane fold, a pointer loop.
  let wA = wLast + 1;
  let wB = wLast + 1;
  if (k >= 3 && (fFirst & 63) == 0 && i1 - fFirst >= span) {
    const skip: i64 = i0 > fFirst ? (i0 - fFirst + span - 1) / span : 0;
    wA = min<u64>(wFirst + <u64>skip, wLast + 1);
    wB = max<u64>(wA, min<u64>(wFirst + <u64>((i1 - fFirst) / span), wLast + 1));
  }
  for (let wi = wFirst; wi < wA; wi++) coarsenSubWord(src, dst, wi, fFirst + <i64>(wi - wFirst) * span, i0, i1, k);
  if (wA < wB) {
    const p = src + (<usize>((fFirst + <i64>(wA - wFirst) * span) >> 6) << 3);
    if (k == 4) laneFoldWords(p, dst, wA, wB, 4);
    else if (k == 3) laneFoldWords(p, dst, wA, wB, 3);
    else laneFoldWords(p, dst, wA, wB, 5);
  }
  for (let wi = max<u64>(wB, wA); wi <= wLast; wi++)
    coarsenSubWord(src, dst, wi, fFirst + <i64>(wi - wFirst) * span, i0, i1, k);
}

/**
 * One destination word of a sub-word coarsening (2^k fine bits per coarse bit, k < 6) whose
 * coarse bit 0 starts at fine position f (the window covers the whole word; clipping zeroes the
 * fine bits outside [i0, i1), so coarse bits outside the range receive nothing).
 */
function coarsenSubWord(src: usize, dst: usize, wi: u64, f: i64, i0: i64, i1: i64, k: u64): void {
  const r: u64 = <u64>1 << k;
  const per: u64 = 64 >> k;
  let acc: u64 = 0;
  if ((f & 63) == 0 && f >= i0 && f + (<i64>r << 6) <= i1) {
    // Whole source words, read directly; an all-zero stretch is skipped with one v128 test.
    const p = src + (<usize>(f >> 6) << 3);
    if (!anyWords(p, <usize>r)) return;
    for (let m: u64 = 0; m < r; m++) {
      const x = load<u64>(p + (<usize>m << 3));
      if (x != 0) acc |= foldGroups(x, k) << (m * per);
    }
  } else {
    for (let m: u64 = 0; m < r; m++) {
      const x = windowClipped(src, f + <i64>(m << 6), i0, i1);
      if (x != 0) acc |= foldGroups(x, k) << (m * per);
    }
  }
  if (acc != 0) setWordAt(dst, wi, wordAt(dst, wi) | acc);
}

/**
 * Destination words [wA, wB) from the source words at p onward, 2^k of them per destination word,
 * for k = 3, 4, 5: 8, 16 or 32 fine bits per coarse bit are a v128 lane. Lanes equal to zero are
 * narrowed to bytes (16 lanes per i8x16) and one bitmask gives 16 clean coarse bits, in order; the
 * word's 64 of them, inverted, are its dirty bits.
 */
// @ts-ignore: decorator
@inline function laneFoldWords(p: usize, dst: usize, wA: u64, wB: u64, k: u64): void {
  const zero = i64x2.splat(0);
  for (let wi = wA; wi < wB; wi++) {
    let clean: u64 = 0;
    if (k == 4) {
      for (let m = 0; m < 4; m++) {
        const q = p + (<usize>m << 5);
        const e = i8x16.narrow_i16x8_s(i16x8.eq(v128.load(q), zero), i16x8.eq(v128.load(q, 16), zero));
        clean |= <u64>i8x16.bitmask(e) << (<u64>m << 4);
      }
    } else if (k == 3) {
      for (let m = 0; m < 4; m++)
        clean |= <u64>i8x16.bitmask(i8x16.eq(v128.load(p + (<usize>m << 4)), zero)) << (<u64>m << 4);
    } else {
      for (let m = 0; m < 4; m++) {
        const q = p + (<usize>m << 6);
        const lo = i16x8.narrow_i32x4_s(i32x4.eq(v128.load(q), zero), i32x4.eq(v128.load(q, 16), zero));
        const hi = i16x8.narrow_i32x4_s(i32x4.eq(v128.load(q, 32), zero), i32x4.eq(v128.load(q, 48), zero));
        clean |= <u64>i8x16.bitmask(i8x16.narrow_i16x8_s(lo, hi)) << (<u64>m << 4);
      }
    }
    if (clean != 0xffffffffffffffff) setWordAt(dst, wi, wordAt(dst, wi) | ~clean);
    p += <usize>8 << <usize>k;
  }
}

// Expand: the overlap [a, b) holds coarse src bits [i0, i1) and fine dst bits [j0, j1).
function expand(src: usize, sBase: u64, sLog: u64, dst: usize, dBase: u64, dLog: u64, a: u64, b: u64): void {
  const k = sLog - dLog;
  const i0 = (a - sBase) >> sLog;
  const i1 = (b - sBase + lowMask(sLog)) >> sLog;
  const j0 = (a - dBase) >> dLog;
  const j1 = (b - dBase) >> dLog;
  // Virtual fine stream V[v] = src[i0 + (v >> k)] for v in [vLo, vHi); dst bit j = V[j - j0 + vLo].
  const vLo = <i64>(((a - sBase) >> dLog) - (i0 << k));
  const vHi = vLo + <i64>(j1 - j0);
  const wFirst = j0 >> 6;
  const wLast = (j1 - 1) >> 6;
  // Interior destination words (fully inside [j0, j1)) whose 64 fine bits start on a multiple of
  // 64 in V take their coarse bits from one source word: table or whole-word fast paths.
  const wA = (j0 + 63) >> 6;
  const wB = j1 >> 6;
  if (wA < wB && (((<i64>(wA << 6) - <i64>j0 + vLo) & 63) == 0) && k >= 3) {
    const v0 = <i64>(wA << 6) - <i64>j0 + vLo;
    if (k >= 6) {
      expandWholeWords(src, dst, i0, v0, wA, wB, k);
    } else {
      // SIMD for whole groups of r words (64 coarse bits each), the table for the rest.
      const done = expandBySimd(src, dst, i0 + (<u64>v0 >> k), wA, wB, k);
      expandByTable(src, dst, i0, v0 + (<i64>(done - wA) << 6), done, wB, k);
    }
    for (let wi = wFirst; wi < wA; wi++) expandEdgeWord(src, dst, i0, i1, j0, vLo, vHi, wi, k);
    for (let wi = wB; wi <= wLast; wi++) expandEdgeWord(src, dst, i0, i1, j0, vLo, vHi, wi, k);
    return;
  }
  if (k >= 3 && wLast - wFirst >= 4) {
    expandShifted(src, dst, i0, i1, j0, vLo, vHi, k);
    return;
  }
  for (let wi = wFirst; wi <= wLast; wi++) expandEdgeWord(src, dst, i0, i1, j0, vLo, vHi, wi, k);
}

// Scratch for expandShifted: CHUNK_WORDS words plus one word before and one after, which the
// merge's head and tail may read (see windowSlack in bits.ts).
// @ts-ignore: decorator
@inline const CHUNK_WORDS: u64 = 512;
const CHUNK: usize = memory.data(<i32>(CHUNK_WORDS + 2) * 8, 16) + 8;

/**
 * Expansion when destination words do not line up with 64-bit words of V: expand V word-aligned
 * into a 4 KiB scratch chunk with the fast kernels, then OR the chunk into the destination with
 * the shifted merge. One extra pass over L1-resident scratch instead of a per-word general path.
 */
function expandShifted(src: usize, dst: usize, i0: u64, i1: u64, j0: u64, vLo: i64, vHi: i64, k: u64): void {
  // V words whose 64 bits all lie in [vLo, vHi) read only coarse bits in [i0, i1).
  const vA = (vLo + 63) >> 6;
  const vB = vHi >> 6;
  for (let cw = vLo >> 6; cw < (vHi + 63) >> 6; cw += <i64>CHUNK_WORDS) {
    const ce = min<i64>(cw + <i64>CHUNK_WORDS, (vHi + 63) >> 6);
    memory.fill(CHUNK, 0, <usize>(ce - cw) << 3);
    const ia = max<i64>(cw, vA);
    const ib = min<i64>(ce, vB);
    if (ia < ib) {
      const wA = <u64>(ia - cw);
      const wB = <u64>(ib - cw);
      const v0 = ia << 6;
      if (k >= 6) {
        expandWholeWords(src, CHUNK, i0, v0, wA, wB, k);
      } else {
        const done = expandBySimd(src, CHUNK, i0 + (<u64>v0 >> k), wA, wB, k);
        expandByTable(src, CHUNK, i0, v0 + (<i64>(done - wA) << 6), done, wB, k);
      }
    }
    // Partial V words at either end of [vLo, vHi) through the clipping path.
    for (let vw = cw; vw < ce; vw++) {
      if (vw >= vA && vw < vB) continue;
      const v = vw << 6;
      let x = expandWindow(src, i0, i1, v, k);
      x &= bitsMask(<u64>max<i64>(vLo - v, 0), <u64>min<i64>(vHi - v, 64));
      store<u64>(CHUNK + (<usize>(vw - cw) << 3), x);
    }
    // V bits [a, b) of this chunk go to destination bits j0 + (v - vLo).
    const a = max<i64>(cw << 6, vLo);
    const b = min<i64>(ce << 6, vHi);
    if (a < b) mergeRange(dst, j0 + <u64>(a - vLo), CHUNK, <u64>(a - (cw << 6)), <u64>(b - a), OP_OR);
  }
}

/** One destination word of an expansion through the general (clipping) path. */
function expandEdgeWord(src: usize, dst: usize, i0: u64, i1: u64, j0: u64, vLo: i64, vHi: i64, wi: u64, k: u64): void {
  {
    const v = <i64>(wi << 6) - <i64>j0 + vLo;
    let x = expandWindow(src, i0, i1, v, k);
    // Bits of the window outside [vLo, vHi) belong to dst bits outside [j0, j1).
    if (v < vLo || v + 64 > vHi) {
      const lo = <u64>max<i64>(vLo - v, 0);
      const hi = <u64>min<i64>(vHi - v, 64);
      x &= bitsMask(lo, hi);
    }
    if (x != 0) setWordAt(dst, wi, wordAt(dst, wi) | x);
  }
}

/**
 * Coarsen by 64..32768 when coarse pages do not start on fine word boundaries: shift the fine bits
 * of a run of coarse pages into the word-aligned scratch chunk with the merge kernel, then
 * coarsen the chunk with the aligned kernel.
 */
function coarsenShifted(src: usize, dst: usize, f0: i64, i0: i64, i1: i64, j0: u64, j1: u64, k: u64): void {
  const perChunk = (CHUNK_WORDS << 6) >> k; // coarse bits per chunk, >= 1
  for (let j = j0; j < j1; j += perChunk) {
    const je = min<u64>(j + perChunk, j1);
    const fa = f0 + (<i64>(j - j0) << <i64>k);
    const nfine = <i64>(je - j) << <i64>k;
    memory.fill(CHUNK, 0, <usize>(nfine >> 3));
    const lo = max<i64>(fa, i0);
    const hi = min<i64>(fa + nfine, i1);
    if (lo < hi) mergeRange(CHUNK, <u64>(lo - fa), src, <u64>lo, <u64>(hi - lo), OP_OR);
    coarsenWordAligned(CHUNK, dst, 0, 0, nfine, j, je, k);
  }
}

/**
 * Coarsen when every coarse bit starts on a fine word boundary and spans r/64 >= 1 whole words.
 * The interior, whole destination words of coarse bits whose fine words all lie inside [i0, i1),
 * goes through coarsenWholeWords (no per-bit bookkeeping); the few bits before and after it
 * (partial edge pages, and interior bits that share a destination word with them) go through
 * coarsenBitByBit, which clips each coarse page to the source range.
 */
function coarsenWordAligned(src: usize, dst: usize, f0: i64, i0: i64, i1: i64, j0: u64, j1: u64, k: u64): void {
  const r = <i64>1 << <i64>k;
  // Coarse bits [jA, jB) have all r fine bits inside [i0, i1): f0 <= i0 < f0 + r, so jA is j0 or
  // j0 + 1, and jB stops before the coarse page that i1 cuts (or at j1).
  const jA = j0 + <u64>((i0 - f0 + r - 1) >> <i64>k);
  const jB = min<u64>(j1, j0 + <u64>((i1 - f0) >> <i64>k));
  const wA = (jA + 63) >> 6;
  const wB = jB >> 6;
  if (jA >= jB || wA >= wB) {
    coarsenBitByBit(src, dst, f0, i0, i1, j0, j0, j1, k);
    return;
  }
  coarsenBitByBit(src, dst, f0, i0, i1, j0, j0, wA << 6, k);
  const p = src + (<usize>((f0 + (<i64>((wA << 6) - j0) << <i64>k)) >> 6) << 3);
  coarsenWholeWords(p, dst + (<usize>wA << 3), dst + (<usize>wB << 3), <usize>(r >> 6));
  coarsenBitByBit(src, dst, f0, i0, i1, j0, wB << 6, j1, k);
}

/**
 * Coarse bits [ja, jb) of coarsenWordAligned one at a time, each clipped to [i0, i1) (exact at
 * partial edge pages); j0 is the coarse bit whose page starts at fine bit f0.
 */
function coarsenBitByBit(
  src: usize, dst: usize, f0: i64, i0: i64, i1: i64, j0: u64, ja: u64, jb: u64, k: u64,
): void {
  const r = <i64>1 << <i64>k;
  const nw = <usize>(r >> 6);
  let j = ja;
  while (j < jb) {
    const wi = j >> 6;
    const wEnd = min<u64>((wi + 1) << 6, jb);
    let acc: u64 = 0;
    for (; j < wEnd; j++) {
      const fa = f0 + (<i64>(j - j0) << <i64>k);
      let dirty: bool;
      if (fa >= i0 && fa + r <= i1) {
        dirty = anyWords(src + (<usize>(fa >> 6) << 3), nw);
      } else {
        const lo = max<i64>(fa, i0);
        const hi = min<i64>(fa + r, i1);
        dirty = lo < hi && anyInRange(src, <u64>lo, <u64>hi);
      }
      acc |= (<u64>dirty) << (j & 63);
    }
    if (acc != 0) setWordAt(dst, wi, wordAt(dst, wi) | acc);
  }
}

/**
 * Whole destination words [d, dEnd), 64 coarse bits each, whose fine words start at p and are
 * all inside the source: nw fine words per coarse bit. Only pointers advance; each word's 64
 * bits collect in a register and are ORed into memory once. nw == 8 (the common 4 KiB -> 2 MiB)
 * tests four coarse bits (256 bytes) per step with constant-offset v128 loads.
 */
function coarsenWholeWords(p: usize, d: usize, dEnd: usize, nw: usize): void {
  if (nw == 8) {
    while (d < dEnd) {
      let acc: u64 = 0;
      for (let b: u64 = 0; b < 64; b += 4) {
        const x0 = v128.or(v128.or(v128.load(p, 0), v128.load(p, 16)), v128.or(v128.load(p, 32), v128.load(p, 48)));
        const x1 = v128.or(v128.or(v128.load(p, 64), v128.load(p, 80)), v128.or(v128.load(p, 96), v128.load(p, 112)));
        const x2 = v128.or(v128.or(v128.load(p, 128), v128.load(p, 144)), v128.or(v128.load(p, 160), v128.load(p, 176)));
        const x3 = v128.or(v128.or(v128.load(p, 192), v128.load(p, 208)), v128.or(v128.load(p, 224), v128.load(p, 240)));
        const nib =
          <u32>v128.any_true(x0) |
          (<u32>v128.any_true(x1) << 1) |
          (<u32>v128.any_true(x2) << 2) |
          (<u32>v128.any_true(x3) << 3);
        acc |= <u64>nib << b;
        p += 256;
      }
      store<u64>(d, load<u64>(d) | acc);
      d += 8;
    }
    return;
  }
  const stride = nw << 3;
  while (d < dEnd) {
    let acc: u64 = 0;
    for (let b: u64 = 0; b < 64; b++) {
      let dirty: bool;
      if (nw == 1) dirty = load<u64>(p) != 0;
      else if (nw == 2) dirty = v128.any_true(v128.load(p));
      else if (nw == 4) dirty = v128.any_true(v128.or(v128.load(p, 0), v128.load(p, 16)));
      else dirty = anyWords(p, nw);
      acc |= (<u64>dirty) << b;
      p += stride;
    }
    store<u64>(d, load<u64>(d) | acc);
    d += 8;
  }
}

/**
 * Expand by 2^k, k in 3..5, into whole destination words [wA, wB): each takes 64 >> k coarse bits
 * starting at V position v0 + 64 * (wi - wA) (a multiple of 64, so inside one source word) and
 * looks the fine word up in a table of 2^(64 >> k) entries.
 */
function expandByTable(src: usize, dst: usize, i0: u64, v0: i64, wA: u64, wB: u64, k: u64): void {
  const per = <u64>64 >> k;
  const mask = lowMask(per);
  const table = spreadTable(k);
  let sbit = i0 + (<u64>v0 >> k);
  let d = dst + (<usize>wA << 3);
  const dEnd = dst + (<usize>wB << 3);
  while (d < dEnd) {
    // The 64 >> k coarse bits may straddle two source words when i0 is not a multiple of them.
    const sh = sbit & 63;
    let bitsIn = wordAt(src, sbit >> 6) >> sh;
    if (sh + per > 64) bitsIn |= wordAt(src, (sbit >> 6) + 1) << (64 - sh);
    bitsIn &= mask;
    store<u64>(d, load<u64>(d) | load<u64>(table + (<usize>bitsIn << 3)));
    d += 8;
    sbit += per;
  }
}

/**
 * Expand by 2^k, k in 3..5, with v128 lane masks: 64 coarse bits from sbit on become 2^k whole
 * destination words from wA on. A lane of 2^k bits is splatted from its coarse bit, ANDed with
 * its own bit's mask and compared with zero, giving all-ones or zero (i16x8 for 16x, i8x16 for
 * 8x, i32x4 for 32x). Returns the first destination word not written (groups of 2^k words only).
 */
function expandBySimd(src: usize, dst: usize, sbit: u64, wA: u64, wB: u64, k: u64): u64 {
  const group: u64 = <u64>1 << k;
  let wi = wA;
  const zero = i64x2.splat(0);
  while (wi + group <= wB) {
    const x = windowSlack(src, <i64>sbit);
    const d = dst + (<usize>wi << 3);
    if (k == 4) {
      const m = i16x8(1, 2, 4, 8, 16, 32, 64, 128);
      v128.store(d, v128.or(v128.load(d, 0), i16x8.ne(v128.and(i16x8.splat(<i16>x), m), zero)), 0);
      v128.store(d, v128.or(v128.load(d, 16), i16x8.ne(v128.and(i16x8.splat(<i16>(x >> 8)), m), zero)), 16);
      v128.store(d, v128.or(v128.load(d, 32), i16x8.ne(v128.and(i16x8.splat(<i16>(x >> 16)), m), zero)), 32);
      v128.store(d, v128.or(v128.load(d, 48), i16x8.ne(v128.and(i16x8.splat(<i16>(x >> 24)), m), zero)), 48);
      v128.store(d, v128.or(v128.load(d, 64), i16x8.ne(v128.and(i16x8.splat(<i16>(x >> 32)), m), zero)), 64);
      v128.store(d, v128.or(v128.load(d, 80), i16x8.ne(v128.and(i16x8.splat(<i16>(x >> 40)), m), zero)), 80);
      v128.store(d, v128.or(v128.load(d, 96), i16x8.ne(v128.and(i16x8.splat(<i16>(x >> 48)), m), zero)), 96);
      v128.store(d, v128.or(v128.load(d, 112), i16x8.ne(v128.and(i16x8.splat(<i16>(x >> 56)), m), zero)), 112);
    } else if (k == 3) {
      // Bytes 0-7 of the lane vector take coarse bits 0-7 of a 16-bit group, bytes 8-15 bits 8-15.
      const m = i8x16(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
      const sel = i8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
      for (let b: usize = 0; b < 4; b++) {
        const h = i8x16.swizzle(i16x8.splat(<i16>(x >> (<u64>b << 4))), sel);
        const q = d + (b << 4);
        v128.store(q, v128.or(v128.load(q), i8x16.ne(v128.and(h, m), zero)));
      }
    } else {
      const m = i32x4(1, 2, 4, 8);
      for (let b: usize = 0; b < 16; b++) {
        const q = d + (b << 4);
        const lanes = i32x4.splat(<i32>(x >> (<u64>b << 2)));
        v128.store(q, v128.or(v128.load(q), i32x4.ne(v128.and(lanes, m), zero)));
      }
    }
    wi += group;
    sbit += 64;
  }
  return wi;
}

/** Expand by 2^k >= 64: every set coarse bit fills r/64 whole destination words with ones. */
function expandWholeWords(src: usize, dst: usize, i0: u64, v0: i64, wA: u64, wB: u64, k: u64): void {
  const wordsPer = <u64>1 << (k - 6);
  // Coarse bit c covers destination words wA + (c - cA) * wordsPer - (v0 >> 6 mod wordsPer) ...
  // expressed through V: V word index vw = (v0 >> 6) + (wi - wA), coarse bit = i0 + (vw >> (k - 6)).
  const vw0 = <u64>v0 >> 6;
  let wi = wA;
  while (wi < wB) {
    const vw = vw0 + (wi - wA);
    const c = i0 + (vw >> (k - 6));
    // Words of this coarse bit from wi on (the first coarse bit may be entered part way).
    const n = min<u64>(wordsPer - (vw & (wordsPer - 1)), wB - wi);
    if (((wordAt(src, c >> 6) >> (c & 63)) & 1) != 0) {
      memory.fill(dst + (<usize>wi << 3), 0xff, <usize>n << 3);
    }
    wi += n;
  }
}

// Tables for k = 3, 4, 5: 256 + 16 + 4 fine words, built on first use.
const SPREAD_TABLES: usize = memory.data(276 * 8, 16);
let spreadBuilt = false;

function spreadTable(k: u64): usize {
  if (!spreadBuilt) {
    for (let x: u64 = 0; x < 256; x++) store<u64>(SPREAD_TABLES + (<usize>x << 3), spreadGroups(x, 3));
    for (let x: u64 = 0; x < 16; x++) store<u64>(SPREAD_TABLES + 2048 + (<usize>x << 3), spreadGroups(x, 4));
    for (let x: u64 = 0; x < 4; x++) store<u64>(SPREAD_TABLES + 2176 + (<usize>x << 3), spreadGroups(x, 5));
    spreadBuilt = true;
  }
  return k == 3 ? SPREAD_TABLES : k == 4 ? SPREAD_TABLES + 2048 : SPREAD_TABLES + 2176;
}

/** 64 bits of V starting at v (v may be negative; out-of-range coarse bits read as 0). */
function expandWindow(src: usize, i0: u64, i1: u64, v: i64, k: u64): u64 {
  // Coarse index (relative to i0) of V[v], floor division for negative v.
  const c0 = v >> <i64>k;
  if (k >= 6) {
    const c1 = (v + 63) >> <i64>k;
    const b0 = coarseBit(src, i0, i1, c0);
    if (c0 == c1) return b0 ? 0xffffffffffffffff : 0;
    const split = <u64>((c1 << <i64>k) - v);
    let x: u64 = b0 ? lowMask(split) : 0;
    if (coarseBit(src, i0, i1, c1)) x |= ~lowMask(split);
    return x;
  }
  const per = <i64>64 >> <i64>k;
  const sh = <u64>(v - (c0 << <i64>k));
  const lo = spreadGroups(windowClipped(src, <i64>i0 + c0, <i64>i0, <i64>i1), k);
  if (sh == 0) return lo;
  const hi = spreadGroups(windowClipped(src, <i64>i0 + c0 + per, <i64>i0, <i64>i1), k);
  return (lo >> sh) | (hi << (64 - sh));
}

// @ts-ignore: decorator
@inline function coarseBit(src: usize, i0: u64, i1: u64, c: i64): bool {
  const i = <i64>i0 + c;
  if (i < <i64>i0 || i >= <i64>i1) return false;
  return ((wordAt(src, <u64>i >> 6) >> (<u64>i & 63)) & 1) != 0;
}

/** OR each group of 2^k bits of x (k in 1..5) into one bit: 64 bits -> 64 >> k bits. */
function foldGroups(x: u64, k: u64): u64 {
  for (let i: u64 = 0; i < k; i++) x = pack2(x | (x >> 1));
  return x;
}

/** Inverse of foldGroups: each of the low 64 >> k bits of x becomes 2^k copies of itself. */
function spreadGroups(x: u64, k: u64): u64 {
  x &= lowMask(<u64>64 >> k);
  for (let i: u64 = 0; i < k; i++) x = unpack2(x);
  // Bits now sit at multiples of r = 2^k; multiplying by 2^r - 1 fills each group without carries.
  return x * lowMask(<u64>1 << k);
}

/** Keep the even bits of x and pack them into the low 32 bits. */
// @ts-ignore: decorator
@inline function pack2(x: u64): u64 {
  x &= 0x5555555555555555;
  x = (x | (x >> 1)) & 0x3333333333333333;
  x = (x | (x >> 2)) & 0x0f0f0f0f0f0f0f0f;
  x = (x | (x >> 4)) & 0x00ff00ff00ff00ff;
  x = (x | (x >> 8)) & 0x0000ffff0000ffff;
  return (x | (x >> 16)) & 0x00000000ffffffff;
}

/** Move bit t of the low 32 bits of x to bit 2t. */
// @ts-ignore: decorator
@inline function unpack2(x: u64): u64 {
  x &= 0x00000000ffffffff;
  x = (x | (x << 16)) & 0x0000ffff0000ffff;
  x = (x | (x << 8)) & 0x00ff00ff00ff00ff;
  x = (x | (x << 4)) & 0x0f0f0f0f0f0f0f0f;
  x = (x | (x << 2)) & 0x3333333333333333;
  return (x | (x << 1)) & 0x5555555555555555;
}

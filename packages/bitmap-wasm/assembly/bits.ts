// Word-level bit kernels over raw little-endian u64 words (the Linux/VFIO bitmap format).
//
//   word 0                                    word 1
//   bit 63 ....................... bit 1 bit 0 | bit 127 ............ bit 64 | ...
//   page p  <->  word p / 64 (p >> 6), bit p % 64 (p & 63), LSB first:
//     data[(iova / page_size) / 64] & (1ULL << ((iova / page_size) % 64))
//
//   A range [start, start + n) is a head (partial first word), whole middle words and a tail:
//     |....hhhh|mmmmmmmm|mmmmmmmm|tt......|
//
// Every function here trusts its arguments: the exports in index.ts validate handles and ranges
// first. Pointers are usize byte offsets of word 0; bit positions and counts are u64 (i64 where a
// position may be negative relative to a window). No function reads or writes a word outside the
// words that hold the range it was given.

// @ts-ignore: decorator
@inline const WORD_BITS: u64 = 64;
// @ts-ignore: decorator
@inline const ONES: u64 = 0xffffffffffffffff;

// @ts-ignore: decorator
@inline export function wordAt(w: usize, i: u64): u64 {
  return load<u64>(w + (<usize>i << 3));
}
// @ts-ignore: decorator
@inline export function setWordAt(w: usize, i: u64, v: u64): void {
  store<u64>(w + (<usize>i << 3), v);
}
/** Mask of the low b bits, b in [0, 64]. */
// @ts-ignore: decorator
@inline export function lowMask(b: u64): u64 {
  return b >= 64 ? ONES : (<u64>1 << b) - 1;
}
/** Mask of bits [lo, hi) within one word, 0 <= lo <= hi <= 64. */
// @ts-ignore: decorator
@inline export function bitsMask(lo: u64, hi: u64): u64 {
  return lowMask(hi) & ~lowMask(lo);
}
/** Number of u64 words that hold nbits. */
// @ts-ignore: decorator
@inline export function wordsFor(nbits: u64): u64 {
  return (nbits + 63) >> 6;
}

export function testBit(w: usize, bit: u64): bool {
  return ((wordAt(w, bit >> 6) >> (bit & 63)) & 1) != 0;
}

/** Set (value = true) or clear bits [start, start + n). */
export function writeRange(w: usize, start: u64, n: u64, value: bool): void {
  if (n == 0) return;
  const end = start + n;
  const first = start >> 6;
  const last = (end - 1) >> 6;
  if (first == last) {
    const m = bitsMask(start & 63, end - (first << 6));
    setWordAt(w, first, value ? wordAt(w, first) | m : wordAt(w, first) & ~m);
    return;
  }
  const mh = ~lowMask(start & 63);
  setWordAt(w, first, value ? wordAt(w, first) | mh : wordAt(w, first) & ~mh);
  const mid = first + 1;
  if (last > mid) memory.fill(w + (<usize>mid << 3), value ? 0xff : 0, <usize>(last - mid) << 3);
  const mt = lowMask(end - (last << 6));
  setWordAt(w, last, value ? wordAt(w, last) | mt : wordAt(w, last) & ~mt);
}

/** Set bits in [start, start + n), with four independent popcnt accumulators in the middle. */
export function countRange(w: usize, start: u64, n: u64): u64 {
  if (n == 0) return 0;
  const end = start + n;
  const first = start >> 6;
  const last = (end - 1) >> 6;
  if (first == last) return popcnt(wordAt(w, first) & bitsMask(start & 63, end - (first << 6)));
  let total = popcnt(wordAt(w, first) & ~lowMask(start & 63));
  total += popcnt(wordAt(w, last) & lowMask(end - (last << 6)));
  let p = w + (<usize>(first + 1) << 3);
  const pend = w + (<usize>last << 3);
  let a: u64 = 0,
    b: u64 = 0,
    c: u64 = 0,
    d: u64 = 0;
  while (p + 64 <= pend) {
    a += popcnt(load<u64>(p, 0)) + popcnt(load<u64>(p, 32));
    b += popcnt(load<u64>(p, 8)) + popcnt(load<u64>(p, 40));
    c += popcnt(load<u64>(p, 16)) + popcnt(load<u64>(p, 48));
    d += popcnt(load<u64>(p, 24)) + popcnt(load<u64>(p, 56));
    p += 64;
  }
  while (p < pend) {
    a += popcnt(load<u64>(p));
    p += 8;
  }
  return total + a + b + c + d;
}

/**
 * The 64 bits [p, p + 64) of a bitmap, where bits outside [lo, hi) read as 0 and only words
 * holding bits of [lo, hi) are loaded. p may be negative (a window starting before the range).
 */
export function windowClipped(w: usize, p: i64, lo: i64, hi: i64): u64 {
  if (p >= lo && p + 64 <= hi) return windowInside(w, p);
  const a = max<i64>(p, lo);
  const b = min<i64>(p + 64, hi);
  if (a >= b) return 0;
  // Bits [a, b) of the window, at least one and at most 64, spanning at most two words.
  const v = windowInsideEdge(w, a, b);
  return v << <u64>(a - p);
}

/**
 * The 64 bits [p, p + 64) for -64 < p, reading the words that hold them even if they lie one word
 * before or after the bitmap: every bitmap has its header before word 0 and a slack word after
 * the last (index.ts), so those reads stay inside its own block. Callers mask the bits outside
 * their range. Saves the clipping branches on the head and tail words of every merge, which
 * dominate when translation merges thousands of short mappings.
 */
// @ts-ignore: decorator
@inline export function windowSlack(w: usize, p: i64): u64 {
  const at = w + ((<usize>(<i32>(p >> 6))) << 3);
  const sh = <u64>p & 63;
  const lo = load<u64>(at);
  return sh == 0 ? lo : (lo >> sh) | (load<u64>(at, 8) << (64 - sh));
}

/** The 64 bits [p, p + 64); every bit is inside the range the caller validated. */
// @ts-ignore: decorator
@inline export function windowInside(w: usize, p: i64): u64 {
  const i = <u64>p >> 6;
  const sh = <u64>p & 63;
  const lo = wordAt(w, i);
  return sh == 0 ? lo : (lo >> sh) | (wordAt(w, i + 1) << (64 - sh));
}

export const OP_OR: i32 = 0;
export const OP_ANDNOT: i32 = 1;
/** dst bits := src bits (translation into a destination no other mapping writes). */
export const OP_COPY: i32 = 2;

/**
 * dst[dstStart + i] (op)= src[srcStart + i] for i < n: OR, AND-NOT or copy at any two bit offsets.
 * Both must be bitmaps from bitmap_new (header before, slack word after: see windowSlack).
 * Walks destination words; each gets the 64 source bits aligned to it (two overlapping loads and
 * a shift when the offsets differ mod 64), so the inner loop is word-wise and vectorised.
 *
 * Returns the set bits an OP_COPY wrote (0 for the other ops). They are counted as the copy goes,
 * summed in locals: the popcounts hide behind the stores' cache misses, where a count pass
 * afterwards would read everything again. Translation reports the sum, so a tracker needs no
 * count of its own.
 */
export function mergeRange(dst: usize, dstStart: u64, src: usize, srcStart: u64, n: u64, op: i32): u64 {
  if (n == 0) return 0;
  if (op == OP_OR) return mergeImpl(dst, dstStart, src, srcStart, n, OP_OR);
  if (op == OP_COPY) return mergeImpl(dst, dstStart, src, srcStart, n, OP_COPY);
  return mergeImpl(dst, dstStart, src, srcStart, n, OP_ANDNOT);
}

/** Copy bits [start, start + n) of src to the same bits of dst and zero them in src, one pass. */
export function takeRange(src: usize, dst: usize, start: u64, n: u64): void {
  if (n == 0) return;
  const end = start + n;
  const first = start >> 6;
  const last = (end - 1) >> 6;
  if (first == last) {
    takeWord(src, dst, first, bitsMask(start & 63, end - (first << 6)));
    return;
  }
  takeWord(src, dst, first, ~lowMask(start & 63));
  takeWord(src, dst, last, lowMask(end - (last << 6)));
  let s = src + (<usize>(first + 1) << 3);
  let d = dst + (<usize>(first + 1) << 3);
  const send = src + (<usize>last << 3);
  const zero = i64x2.splat(0);
  while (s + 64 <= send) {
    const v0 = v128.load(s, 0);
    const v1 = v128.load(s, 16);
    const v2 = v128.load(s, 32);
    const v3 = v128.load(s, 48);
    v128.store(d, v0, 0);
    v128.store(d, v1, 16);
    v128.store(d, v2, 32);
    v128.store(d, v3, 48);
    v128.store(s, zero, 0);
    v128.store(s, zero, 16);
    v128.store(s, zero, 32);
    v128.store(s, zero, 48);
    s += 64;
    d += 64;
  }
  while (s < send) {
    store<u64>(d, load<u64>(s));
    store<u64>(s, 0);
    s += 8;
    d += 8;
  }
}

/** First bit >= from that equals value (true: set, false: clear) below nbits, or nbits. */
export function findNext(w: usize, from: u64, nbits: u64, value: bool): u64 {
  if (from >= nbits) return nbits;
  const flip: u64 = value ? 0 : ONES;
  let i = from >> 6;
  const nw = wordsFor(nbits);
  let x = (wordAt(w, i) ^ flip) & ~lowMask(from & 63);
  while (x == 0) {
    i++;
    if (i >= nw) return nbits;
    // Skip four words at a time while they are all uninteresting (sparse bitmaps).
    while (i + 4 <= nw) {
      const p = w + (<usize>i << 3);
      const f = i64x2.splat(<i64>flip);
      const any = v128.or(v128.xor(v128.load(p, 0), f), v128.xor(v128.load(p, 16), f));
      if (v128.any_true(any)) break;
      i += 4;
    }
    if (i >= nw) return nbits;
    x = wordAt(w, i) ^ flip;
  }
  const bit = (i << 6) + ctz(x);
  return bit < nbits ? bit : nbits;
}

/**
 * Write runs of set bits in [from, hi) as {u64 start, u64 length} pairs at out; at most maxRuns.
 * Positions are reported in the bitmap's own numbering. Returns the number written; a run is never
 * cut except at hi (a run that began before `from` is reported from `from`).
 *
 * Word at a time: t = v ^ (v << 1 | carry) has a bit at every run boundary, and boundaries
 * alternate start, end, start, ... so each run costs two ctz and no per-bit work (a dense bitmap
 * has a run every four bits). Words without a boundary (all zeros outside a run, all ones inside
 * one) are skipped, eight at a time with v128 when outside a run.
 */
export function listRuns(w: usize, from: u64, hi: u64, out: usize, maxRuns: i32): i32 {
  if (from >= hi || maxRuns <= 0) return 0;
  const last = (hi - 1) >> 6;
  const lastMask = lowMask(hi - (last << 6));
  let count: i32 = 0;
  let carry: u64 = 0;
  let inRun = false;
  let start: u64 = 0;
  let i = from >> 6;
  let v = wordAt(w, i) & ~lowMask(from & 63);
  const pLast = w + (<usize>last << 3);
  for (;;) {
    if (i == last) v &= lastMask;
    let t = v ^ ((v << 1) | carry);
    carry = v >> 63;
    const base = i << 6;
    // Close a run carried in from earlier words.
    if (inRun && t != 0) {
      store<u64>(out, start, 0);
      store<u64>(out, base + ctz(t) - start, 8);
      out += 16;
      t &= t - 1;
      inRun = false;
      if (++count == maxRuns) return count;
    }
    // Whole runs inside this word: boundaries come in (start, end) pairs, no state to flip.
    while ((t & (t - 1)) != 0) {
      const s0 = ctz(t);
      t &= t - 1;
      const e0 = ctz(t);
      t &= t - 1;
      store<u64>(out, base + s0, 0);
      store<u64>(out, e0 - s0, 8);
      out += 16;
      if (++count == maxRuns) return count;
    }
    // A run that continues into the next word.
    if (t != 0) {
      start = base + ctz(t);
      inRun = true;
    }
    if (++i > last) break;
    // Skip words without a boundary; a skipped word leaves the carry unchanged. Check one word
    // first: on a dense bitmap the next word almost always has a boundary.
    // Pointer loops: a u64 word index would need a wrap and a shift per step in wasm32.
    let p = w + (<usize>i << 3);
    v = load<u64>(p);
    const skip: u64 = inRun ? 0xffffffffffffffff : 0;
    if (v == skip && p < pLast) {
      do {
        p += 8;
        v = load<u64>(p);
      } while (v == skip && p < pLast);
      i = <u64>((p - w) >> 3);
    }
  }
  if (inRun) {
    store<u64>(out, start, 0);
    store<u64>(out, hi - start, 8);
    count++;
  }
  return count;
}

/** Whether any bit in [a, b) is set (a < b). */
export function anyInRange(w: usize, a: u64, b: u64): bool {
  const first = a >> 6;
  const last = (b - 1) >> 6;
  if (first == last) return (wordAt(w, first) & bitsMask(a & 63, b - (first << 6))) != 0;
  if ((wordAt(w, first) & ~lowMask(a & 63)) != 0) return true;
  if ((wordAt(w, last) & lowMask(b - (last << 6))) != 0) return true;
  return anyWords(w + (<usize>(first + 1) << 3), <usize>(last - first - 1));
}

/** Whether any of nwords whole words at p is non-zero. */
// @ts-ignore: decorator
@inline export function anyWords(p: usize, nwords: usize): bool {
  const pend = p + (nwords << 3);
  while (p + 64 <= pend) {
    const v = v128.or(
      v128.or(v128.load(p, 0), v128.load(p, 16)),
      v128.or(v128.load(p, 32), v128.load(p, 48)),
    );
    if (v128.any_true(v)) return true;
    p += 64;
  }
  while (p < pend) {
    if (load<u64>(p) != 0) return true;
    p += 8;
  }
  return false;
}

// --- Internal helpers ---

// @ts-ignore: decorator
@inline function takeWord(src: usize, dst: usize, i: u64, m: u64): void {
  const s = wordAt(src, i);
  setWordAt(dst, i, (wordAt(dst, i) & ~m) | (s & m));
  setWordAt(src, i, s & ~m);
}

// @ts-ignore: decorator
@inline function applyOp(d: u64, s: u64, op: i32): u64 {
  return op == OP_OR ? d | s : op == OP_COPY ? s : d & ~s;
}

/**
 * Word `i` of dst (op)= s, where only the bits in mask m take part (a head or tail word). Returns
 * the bits a copy wrote, 0 for other ops.
 */
// @ts-ignore: decorator
@inline export function applyMasked(dst: usize, i: u64, s: u64, m: u64, op: i32): u64 {
  // A copy over the whole word stores without loading: for a translation the destination line is
  // usually not in cache, and a load would wait for it where a store does not.
  if (op == OP_COPY && m == ONES) setWordAt(dst, i, s);
  else {
    const d = wordAt(dst, i);
    setWordAt(dst, i, op == OP_COPY ? (d & ~m) | (s & m) : applyOp(d, s & m, op));
  }
  return op == OP_COPY ? popcnt(s & m) : 0;
}

/** The word at d (op)= s, as applyOpAt. */
// @ts-ignore: decorator
@inline function applyOpAt64(d: usize, s: u64, op: i32): u64 {
  if (op == OP_COPY) {
    store<u64>(d, s);
    return popcnt(s);
  }
  store<u64>(d, applyOp(load<u64>(d), s, op));
  return 0;
}

/**
 * The vector at d + off (op)= s. A copy never loads d (translation's destination is write-only)
 * and returns the bits it wrote, for the caller to sum in a local (see mergeRange); other ops 0.
 */
// @ts-ignore: decorator
@inline function applyOpAt(d: usize, off: usize, s: v128, op: i32): u64 {
  if (op == OP_COPY) {
    v128.store(d + off, s);
    return popcnt(i64x2.extract_lane(s, 0)) + popcnt(i64x2.extract_lane(s, 1));
  }
  if (op == OP_OR) v128.store(d + off, v128.or(v128.load(d + off), s));
  else v128.store(d + off, v128.andnot(v128.load(d + off), s));
  return 0;
}

// @ts-ignore: decorator
@inline function mergeImpl(dst: usize, dstStart: u64, src: usize, srcStart: u64, n: u64, op: i32): u64 {
  const dEnd = dstStart + n;
  const first = dstStart >> 6;
  const last = (dEnd - 1) >> 6;
  // Source bit aligned with destination bit 0 of word k is delta + 64k.
  const delta = <i64>srcStart - <i64>dstStart;
  if (first == last) {
    const m = bitsMask(dstStart & 63, dEnd - (first << 6));
    return applyMasked(dst, first, windowSlack(src, delta + <i64>(first << 6)), m, op);
  }
  // Head and tail words may need the source word before or after the range (slack reads, masked).
  let copied = applyMasked(dst, first, windowSlack(src, delta + <i64>(first << 6)), ~lowMask(dstStart & 63), op);
  // Middle words: every source bit they need is inside the range. The tail word is written after
  // them, as C does: writing it first measurably slowed short merges (translation's thousands of
  // mappings), presumably by disturbing the stream the middle loop starts.
  copied += mergeMiddle(dst, src, delta, first + 1, last, op);
  return copied + applyMasked(dst, last, windowSlack(src, delta + <i64>(last << 6)), lowMask(dEnd - (last << 6)), op);
}

/** Whole destination words [k0, last) of a merge; see mergeImpl. Returns the bits a copy wrote. */
// @ts-ignore: decorator
@inline export function mergeMiddle(dst: usize, src: usize, delta: i64, k0: u64, last: u64, op: i32): u64 {
  const nmid = <usize>(last - k0);
  if (nmid == 0) return 0;
  let d = dst + (<usize>k0 << 3);
  const dend = d + (nmid << 3);
  const p0 = <u64>(delta + <i64>(k0 << 6));
  const shift = <i32>(p0 & 63);
  let s = src + (<usize>(p0 >> 6) << 3);
  let copied: u64 = 0;
  if (shift == 0) {
    while (d + 64 <= dend) {
      copied += block64(d, s, op);
      d += 64;
      s += 64;
    }
    while (d < dend) {
      copied += applyOpAt64(d, load<u64>(s), op);
      d += 8;
      s += 8;
    }
    return copied;
  }
  const back = 64 - shift;
  while (d + 64 <= dend) {
    copied += shiftedBlock64(d, s, shift, op);
    d += 64;
    s += 64;
  }
  while (d + 32 <= dend) {
    const a0 = v128.load(s, 0);
    const b0 = v128.load(s, 8);
    const a1 = v128.load(s, 16);
    const b1 = v128.load(s, 24);
    const v0 = v128.or(i64x2.shr_u(a0, shift), i64x2.shl(b0, back));
    const v1 = v128.or(i64x2.shr_u(a1, shift), i64x2.shl(b1, back));
    copied += applyOpAt(d, 0, v0, op);
    copied += applyOpAt(d, 16, v1, op);
    d += 32;
    s += 32;
  }
  while (d < dend) {
    const v = (load<u64>(s) >> <u64>shift) | (load<u64>(s, 8) << <u64>back);
    copied += applyOpAt64(d, v, op);
    d += 8;
    s += 8;
  }
  return copied;
}

/** 64 bytes at the same bit offset in src and dst; reads s .. s + 64. */
// @ts-ignore: decorator
@inline export function block64(d: usize, s: usize, op: i32): u64 {
  return (
    applyOpAt(d, 0, v128.load(s, 0), op) +
    applyOpAt(d, 16, v128.load(s, 16), op) +
    applyOpAt(d, 32, v128.load(s, 32), op) +
    applyOpAt(d, 48, v128.load(s, 48), op)
  );
}

/**
 * 64 bytes of dst from src shifted down by 1..63 bits: word j is (s[j] >> shift) | (s[j + 1] <<
 * back). Four output vectors from five loads: the "next word" vectors [s1,s2], [s3,s4], ... come
 * from i8x16 shuffles (palignr) of neighbouring loads instead of four more unaligned loads. Reads
 * s .. s + 80: up to two words past this step, never past the slack word (the last middle word
 * reads s[j + 1], which still holds bits of the range because shift != 0).
 */
// @ts-ignore: decorator
@inline export function shiftedBlock64(d: usize, s: usize, shift: i32, op: i32): u64 {
  const back = 64 - shift;
  const a0 = v128.load(s, 0);
  const a1 = v128.load(s, 16);
  const a2 = v128.load(s, 32);
  const a3 = v128.load(s, 48);
  const a4 = v128.load(s, 64);
  const b0 = v128.shuffle<u8>(a0, a1, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23);
  const b1 = v128.shuffle<u8>(a1, a2, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23);
  const b2 = v128.shuffle<u8>(a2, a3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23);
  const b3 = v128.shuffle<u8>(a3, a4, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23);
  return (
    applyOpAt(d, 0, v128.or(i64x2.shr_u(a0, shift), i64x2.shl(b0, back)), op) +
    applyOpAt(d, 16, v128.or(i64x2.shr_u(a1, shift), i64x2.shl(b1, back)), op) +
    applyOpAt(d, 32, v128.or(i64x2.shr_u(a2, shift), i64x2.shl(b2, back)), op) +
    applyOpAt(d, 48, v128.or(i64x2.shr_u(a3, shift), i64x2.shl(b3, back)), op)
  );
}

/** Bits [a, b) (1..64 bits, inside the validated range) shifted down to bit 0. */
function windowInsideEdge(w: usize, a: i64, b: i64): u64 {
  const len = <u64>(b - a);
  const i = <u64>a >> 6;
  const sh = <u64>a & 63;
  let v = wordAt(w, i) >> sh;
  // Load the second word only if the bits continue into it.
  if (sh + len > 64) v |= wordAt(w, i + 1) << (64 - sh);
  return v & lowMask(len);
}

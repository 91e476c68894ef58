// Plain-JS baselines: what a careful JS developer would write without wasm. They work on Uint32Array
// views of the same wasm memory, because on a little-endian host the u64 bitmap word k is u32 words
// 2k (low) and 2k+1 (high), so bit i is still bit (i % 32) of u32 word (i / 32), and 32-bit integer
// ops stay in V8's fast small-integer paths (BigUint64Array would box every word as a BigInt).
//
//   orRange(dst32, 17, src32, 3, nbits - 17);
//   count(words32, 0, nbits);

const WORD = 32;

/** dst[dstStart + i] |= src[srcStart + i] for i < n; any offsets. */
export function orRange(
  dst: Uint32Array,
  dstStart: number,
  src: Uint32Array,
  srcStart: number,
  n: number,
): void {
  if (n === 0) return;
  const dbit = dstStart % WORD;
  if (dbit !== 0) {
    const k = Math.min(WORD - dbit, n);
    dst[Math.floor(dstStart / WORD)]! |= getBits(src, srcStart, k) << dbit;
    dstStart += k;
    srcStart += k;
    n -= k;
  }
  const d = Math.floor(dstStart / WORD);
  const s = Math.floor(srcStart / WORD);
  const nwords = Math.floor(n / WORD);
  const sh = srcStart % WORD;
  if (sh === 0) {
    for (let i = 0; i < nwords; i++) dst[d + i]! |= src[s + i]!;
  } else {
    const back = WORD - sh;
    for (let i = 0; i < nwords; i++) dst[d + i]! |= (src[s + i]! >>> sh) | (src[s + i + 1]! << back);
  }
  const rest = n % WORD;
  if (rest !== 0) dst[d + nwords]! |= getBits(src, srcStart + nwords * WORD, rest);
}

/** Number of set bits in [start, start + n). */
export function count(words: Uint32Array, start: number, n: number): number {
  if (n === 0) return 0;
  let total = 0;
  const sbit = start % WORD;
  if (sbit !== 0) {
    const k = Math.min(WORD - sbit, n);
    total += popcount32(getBits(words, start, k));
    start += k;
    n -= k;
  }
  const p = Math.floor(start / WORD);
  const nwords = Math.floor(n / WORD);
  for (let i = 0; i < nwords; i++) total += popcount32(words[p + i]!);
  const rest = n % WORD;
  if (rest !== 0) total += popcount32(words[p + nwords]! & lowMask(rest));
  return total;
}

/** Copy out and zero: the two typed-array builtins a JS developer reaches for. */
export function takeAndClear(src: Uint32Array, into: Uint32Array): void {
  into.set(src);
  src.fill(0);
}

/** 4 KiB -> 2 MiB: a coarse bit is set if any of its 512 fine bits (16 u32 words) is. ORs into dst. */
export function coarsen4k2m(dst: Uint32Array, src: Uint32Array, ncoarseBits: number): void {
  const per = 512 / WORD;
  for (let j = 0; j < ncoarseBits; j += WORD) {
    let out = 0;
    const lim = Math.min(WORD, ncoarseBits - j);
    for (let b = 0; b < lim; b++) {
      const base = (j + b) * per;
      let any = 0;
      for (let k = 0; k < per; k++) any |= src[base + k]!;
      if (any !== 0) out |= 1 << b;
    }
    dst[j / WORD]! |= out;
  }
}

/** 4 KiB -> 64 KiB: 16 fine bits per coarse bit, so a fine u32 word gives 2 coarse bits. */
export function coarsen4k64k(dst: Uint32Array, src: Uint32Array, ncoarseBits: number): void {
  for (let j = 0; j < ncoarseBits / WORD; j++) {
    let out = 0;
    for (let m = 0; m < 16; m++) {
      const w = src[j * 16 + m]!;
      if ((w & 0xffff) !== 0) out |= 1 << (2 * m);
      if (w >>> 16 !== 0) out |= 1 << (2 * m + 1);
    }
    dst[j]! |= out;
  }
}

/** 64 KiB -> 4 KiB: each coarse bit becomes 16 fine bits, so a fine u32 word takes 2 coarse bits. */
export function expand64k4k(dst: Uint32Array, src: Uint32Array, nfineWords: number): void {
  for (let i = 0; i < nfineWords; i++) {
    const pair = (src[i >>> 4]! >>> ((i & 15) * 2)) & 3;
    dst[i]! |= SPREAD[pair]!;
  }
}

/**
 * Lists runs of set bits from `from` as (start, length) pairs into out (2 numbers per run, at most
 * `cap` runs); returns how many it wrote and where to resume (nbits when done). Word at a time:
 * t = v ^ (v << 1 | carry) marks every run boundary, and boundaries alternate start, end, ...
 */
export function listRuns(
  words: Uint32Array,
  nbits: number,
  from: number,
  out: Float64Array,
  cap: number,
): { n: number; resume: number } {
  const last = Math.floor((nbits - 1) / WORD);
  let n = 0;
  let carry = 0;
  let start = 0;
  let inRun = false;
  if (from >= nbits || cap === 0) return { n: 0, resume: nbits };
  let i = Math.floor(from / WORD);
  let v = words[i]! & (0xffffffff << (from % WORD));
  for (;;) {
    if (i === last) v &= lowMask(nbits - i * WORD);
    let t = (v ^ ((v << 1) | carry)) >>> 0;
    carry = v >>> 31;
    while (t !== 0) {
      const pos = i * WORD + (31 - Math.clz32(t & -t));
      t &= t - 1;
      if (!inRun) {
        start = pos;
        inRun = true;
      } else {
        out[2 * n] = start;
        out[2 * n + 1] = pos - start;
        inRun = false;
        if (++n === cap) return { n, resume: pos };
      }
    }
    if (++i > last) break;
    // Skip words without a boundary: all zeros outside a run, all ones inside one.
    const same = inRun ? 0xffffffff : 0;
    while (i < last && words[i] === same) i++;
    v = words[i]!;
  }
  if (inRun) {
    out[2 * n] = start;
    out[2 * n + 1] = nbits - start;
    n++;
  }
  return { n, resume: nbits };
}

/** Run listing through a bounded buffer, the way a caller consumes it; returns the run count. */
export function runsAll(words: Uint32Array, nbits: number, out: Float64Array, cap: number): number {
  let runs = 0;
  let pos = 0;
  while (pos < nbits) {
    const { n, resume } = listRuns(words, nbits, pos, out, cap);
    runs += n;
    pos = resume;
    if (n < cap) break;
  }
  return runs;
}

/** One mapping of the translation benchmark, in pages relative to each bitmap's bit 0. */
export interface PageMapping {
  readonly iovaPage: number;
  readonly gpaPage: number;
  readonly npages: number;
}

/** IOVA -> GPA translation: one shifted word-wise OR per mapping. */
export function translate(src: Uint32Array, dst: Uint32Array, maps: readonly PageMapping[]): void {
  for (const m of maps) orRange(dst, m.gpaPage, src, m.iovaPage, m.npages);
}

// --- Internal helpers ---

const SPREAD = new Uint32Array([0, 0xffff, 0xffff0000, 0xffffffff]);

function lowMask(n: number): number {
  return n >= WORD ? 0xffffffff : (1 << n) - 1;
}

/** Reads n (1..32) bits of src from bit `start`, touching only the words they live in. */
function getBits(src: Uint32Array, start: number, n: number): number {
  const w = Math.floor(start / WORD);
  const sh = start % WORD;
  let v = src[w]! >>> sh;
  if (sh + n > WORD) v |= src[w + 1]! << (WORD - sh);
  return (v & lowMask(n)) >>> 0;
}

function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

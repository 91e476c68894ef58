// Translation's long merges in lockstep: the merges of one translation all read the same source
// bitmap and write the same destination, so up to eight of them run side by side and their
// cache misses are in flight together. Only xlat.ts uses this; the bit kernels it drives
// (applyMasked, mergeMiddle, block64, shiftedBlock64) are those of bits.ts.

import {
  applyMasked, block64, lowMask, mergeMiddle, mergeRange, OP_COPY, OP_OR, shiftedBlock64, windowSlack,
} from "./bits";

/** Most merges lockstepMerge takes at once (its callers queue up to this many). */
export const LOCKSTEP_MAX: u32 = 8;
/** Merges shorter than this many destination words gain nothing from a lockstep. */
export const LOCKSTEP_MIN_WORDS: u64 = 16;

/**
 * Up to LOCKSTEP_MAX long merges of the same src into the same dst at once (translation: one per
 * mapping), so the cache misses at every destination are in flight together instead of one
 * mapping's at a time. `m` holds `count` records {u64 dstStart, u64 srcStart, u64 n}, each at
 * least LOCKSTEP_MIN_WORDS words long. Measured on 10,000 mappings sent to shuffled guest
 * addresses: unshifted copies (same bit offset in src and dst) run at about 1.2x a memcpy eight
 * at a time, 1.4x four at a time, 1.7x one at a time; shifted ones, whose blocks cost more
 * work, do best four at a time (translation queues them so).
 *
 * Each merge: its head word (masked), then 64-byte blocks in lockstep with the others for as
 * many blocks as every merge still has, then its own leftover words and its tail word (masked).
 * Destinations may share a head or tail word (each is a masked read-modify-write, one after the
 * other); for op == OP_COPY they must share no bit. src is never written. (Peeling words up to a
 * 64-byte boundary of dst first, so no block straddles two cache lines, measured slower.)
 * Returns the bits a copy wrote (0 for OP_OR), as mergeRange.
 */
export function lockstepMerge(dst: usize, src: usize, m: usize, count: u32, op: i32): u64 {
  if (op == OP_COPY) return lockstepImpl(dst, src, m, count, OP_COPY);
  return lockstepImpl(dst, src, m, count, OP_OR);
}

// Per merge while in lockstep: {u64 d, u64 s, u64 shift, u64 last word}.
const LOCK_STATE: usize = memory.data(<i32>LOCKSTEP_MAX * 32, 16);

// @ts-ignore: decorator
@inline function lockstepImpl(dst: usize, src: usize, m: usize, count: u32, op: i32): u64 {
  let steps: usize = <usize>-1;
  let copied: u64 = 0;
  for (let q: u32 = 0; q < count; q++) {
    const r = m + <usize>q * 24;
    const d0 = load<u64>(r);
    const n = load<u64>(r, 16);
    const delta = <i64>load<u64>(r, 8) - <i64>d0;
    const first = d0 >> 6;
    const last = (d0 + n - 1) >> 6;
    copied += applyMasked(dst, first, windowSlack(src, delta + <i64>(first << 6)), ~lowMask(d0 & 63), op);
    const kA = first + 1;
    const p = <u64>(delta + <i64>(kA << 6));
    const st = LOCK_STATE + <usize>q * 32;
    store<u64>(st, dst + (<usize>kA << 3), 0);
    store<u64>(st, src + (<usize>(p >> 6) << 3), 8);
    store<u64>(st, p & 63, 16);
    store<u64>(st, last, 24);
    steps = min<usize>(steps, <usize>(last - kA) >> 3);
  }
  for (let i: usize = 0; i < steps; i++) {
    for (let q: u32 = 0; q < count; q++) {
      const st = LOCK_STATE + <usize>q * 32;
      const d = <usize>load<u64>(st, 0);
      const s = <usize>load<u64>(st, 8);
      copied += shifted64(d, s, <i32>load<u64>(st, 16), op);
      store<u64>(st, d + 64, 0);
      store<u64>(st, s + 64, 8);
    }
  }
  for (let q: u32 = 0; q < count; q++) {
    const r = m + <usize>q * 24;
    const d0 = load<u64>(r);
    const n = load<u64>(r, 16);
    const delta = <i64>load<u64>(r, 8) - <i64>d0;
    const st = LOCK_STATE + <usize>q * 32;
    const last = load<u64>(st, 24);
    copied += mergeMiddle(dst, src, delta, <u64>((<usize>load<u64>(st, 0) - dst) >> 3), last, op);
    copied += applyMasked(dst, last, windowSlack(src, delta + <i64>(last << 6)), lowMask(d0 + n - (last << 6)), op);
  }
  return copied;
}

/** One 64-byte step of a lockstep merge: block64 or shiftedBlock64 by the merge's shift. */
// @ts-ignore: decorator
@inline function shifted64(d: usize, s: usize, shift: i32, op: i32): u64 {
  return shift == 0 ? block64(d, s, op) : shiftedBlock64(d, s, shift, op);
}

// The two queues of long merges waiting for a lockstep: unshifted ones go eight at a time,
// shifted ones (more work per block) four at a time; see lockstepMerge. Each is a count (u32)
// followed by records {u64 dstStart, u64 srcStart, u64 n}.
export const PLAIN: usize = memory.data(16 + <i32>LOCKSTEP_MAX * 24, 16);
export const SHIFTED: usize = memory.data(16 + 4 * 24, 16);

/**
 * A merge for translation: short ones now, long ones into their queue (run when it is full).
 * Returns the bits the copies it ran wrote (see mergeRange).
 */
export function queueMerge(dst: usize, src: usize, dStart: u64, sStart: u64, n: u64, op: i32): u64 {
  if (n < LOCKSTEP_MIN_WORDS << 6) return mergeRange(dst, dStart, src, sStart, n, op);
  const q = ((sStart - dStart) & 63) == 0 ? PLAIN : SHIFTED;
  const count = load<u32>(q);
  const r = q + 16 + <usize>count * 24;
  store<u64>(r, dStart, 0);
  store<u64>(r, sStart, 8);
  store<u64>(r, n, 16);
  store<u32>(q, count + 1);
  return count + 1 == (q == PLAIN ? LOCKSTEP_MAX : 4) ? flushQueue(dst, src, q, op) : 0;
}

/** Run and empty a queue; returns the bits its copies wrote. */
export function flushQueue(dst: usize, src: usize, q: usize, op: i32): u64 {
  const count = load<u32>(q);
  if (count == 0) return 0;
  const copied = lockstepMerge(dst, src, q + 16, count, op);
  store<u32>(q, 0);
  return copied;
}

// IOVA -> GPA translation tables.
//
//   table header (48 bytes)                 entries (32 bytes each, sorted by iova, then gpa)
//   +0  u32 magic "XLAT"                    +0  u64 iova
//   +4  u32 count                           +8  u64 gpa
//   +8  u32 capacity                        +16 u64 length (bytes, a multiple of the page size)
//   +12 u32 entries pointer                 +24 u64 flags (bit 0: removed, awaiting retire)
//   +16 u64 page size   +24 u64 log2(page size)
//   +32 u32 GPA state (0 unknown, 1 no two entries share a GPA page, 2 some do)
//   +36 u32 pointer to the entries' GPA ranges {u64 gpa, u64 end} sorted by gpa (0 while unknown)
//   +40 u64 longest entry's length in bytes (0 while unknown)
//
// A sorted array, not a tree: tables hold up to some 65535 mappings (the type1 limit), a sweep in
// iova order gives the unmapped gaps in one pass, and translation visits every mapping anyway.
// Translation ORs each mapping's source bits into the destination with the word-wise shifted
// merge of bits.ts, so its cost is O(mappings + words), never per bit. The copy variant writes
// them instead, which lets a caller skip clearing the destination first (one pass fewer over it,
// and stores that need no load); it needs mappings that share no GPA page, checked once per
// change of the table (a sort by GPA) and remembered in the header with the sorted GPA ranges,
// from which xlatClearUnmappedGpa clears what no mapping covers.

import {
  countRange, listRuns, OP_COPY, OP_OR, writeRange,
} from "./bits";
import { ERR_NOMEM, ERR_OVERLAP, OK } from "./errors";
import { memAlloc, memFree, OWNER_MODULE } from "./mem";
import { flushQueue, PLAIN, queueMerge, SHIFTED } from "./xlat-lockstep";

// @ts-ignore: decorator
@inline export const XLAT_MAGIC: u32 = 0x54414c58;
// @ts-ignore: decorator
@inline export const XLAT_HEADER: usize = 48;
// @ts-ignore: decorator
@inline const ENTRY: usize = 32;
// @ts-ignore: decorator
@inline export const FLAG_REMOVED: u64 = 1;
// @ts-ignore: decorator
@inline const GPA_UNKNOWN: u32 = 0;
// @ts-ignore: decorator
@inline const GPA_DISJOINT: u32 = 1;
// @ts-ignore: decorator
@inline const GPA_OVERLAP: u32 = 2;

// @ts-ignore: decorator
@inline export function tCount(t: usize): u32 {
  return load<u32>(t, 4);
}
// @ts-ignore: decorator
@inline function setCount(t: usize, v: u32): void {
  store<u32>(t, v, 4);
}
// @ts-ignore: decorator
@inline function tCap(t: usize): u32 {
  return load<u32>(t, 8);
}
// @ts-ignore: decorator
@inline export function tEntries(t: usize): usize {
  return load<u32>(t, 12);
}
// @ts-ignore: decorator
@inline export function tPageSize(t: usize): u64 {
  return load<u64>(t, 16);
}
// @ts-ignore: decorator
@inline export function tLog(t: usize): u64 {
  return load<u64>(t, 24);
}
// @ts-ignore: decorator
@inline function gpaSorted(t: usize): usize {
  return load<u32>(t, 36);
}
/** The table changed: forget what is known of its GPA ranges. */
function forgetGpa(t: usize): void {
  const sorted = gpaSorted(t);
  if (sorted != 0) memFree(sorted);
  store<u32>(t, 0, 36);
  store<u32>(t, GPA_UNKNOWN, 32);
  store<u64>(t, 0, 40);
}
// @ts-ignore: decorator
@inline export function entryAt(t: usize, i: u32): usize {
  return tEntries(t) + (<usize>i) * ENTRY;
}
// @ts-ignore: decorator
@inline function eIova(e: usize): u64 {
  return load<u64>(e, 0);
}
// @ts-ignore: decorator
@inline function eGpa(e: usize): u64 {
  return load<u64>(e, 8);
}
// @ts-ignore: decorator
@inline function eLen(e: usize): u64 {
  return load<u64>(e, 16);
}
// @ts-ignore: decorator
@inline function eFlags(e: usize): u64 {
  return load<u64>(e, 24);
}
// @ts-ignore: decorator
@inline function setEntry(e: usize, iova: u64, gpa: u64, length: u64, flags: u64): void {
  store<u64>(e, iova, 0);
  store<u64>(e, gpa, 8);
  store<u64>(e, length, 16);
  store<u64>(e, flags, 24);
}

/** New empty table; 0 if out of memory. */
export function xlatCreate(pageSize: u64, log: u64): usize {
  const t = memAlloc(<u64>XLAT_HEADER, OWNER_MODULE);
  if (t == 0) return 0;
  const entries = memAlloc(<u64>(16 * ENTRY), OWNER_MODULE);
  if (entries == 0) {
    memFree(t);
    return 0;
  }
  store<u32>(t, XLAT_MAGIC, 0);
  setCount(t, 0);
  store<u32>(t, 16, 8);
  store<u32>(t, <u32>entries, 12);
  store<u64>(t, pageSize, 16);
  store<u64>(t, log, 24);
  store<u32>(t, 0, 36); // no sorted array to free yet
  forgetGpa(t);
  return t;
}

export function xlatDestroy(t: usize): void {
  forgetGpa(t);
  memFree(tEntries(t));
  store<u32>(t, 0, 0);
  memFree(t);
}

/** Add an active mapping (arguments validated: aligned, non-empty, no u64 overflow). */
export function xlatAdd(t: usize, iova: u64, gpa: u64, length: u64): i32 {
  const n = tCount(t);
  const end = iova + length;
  // Active mappings are sorted and disjoint: only the nearest active one below and the active
  // ones starting before `end` can overlap.
  const pos = lowerBound(t, iova);
  for (let i = <i32>pos - 1; i >= 0; i--) {
    const e = entryAt(t, <u32>i);
    if ((eFlags(e) & FLAG_REMOVED) != 0) continue;
    if (eIova(e) + eLen(e) > iova) return ERR_OVERLAP;
    break;
  }
  for (let i = pos; i < n; i++) {
    const e = entryAt(t, i);
    if (eIova(e) >= end) break;
    if ((eFlags(e) & FLAG_REMOVED) == 0) return ERR_OVERLAP;
  }
  if (!reserve(t, n + 1)) return ERR_NOMEM;
  let at = pos;
  while (at < n && eIova(entryAt(t, at)) == iova && eGpa(entryAt(t, at)) <= gpa) at++;
  const e = entryAt(t, at);
  memory.copy(e + ENTRY, e, <usize>(n - at) * ENTRY);
  setEntry(e, iova, gpa, length, 0);
  setCount(t, n + 1);
  forgetGpa(t);
  return OK;
}

/**
 * Move the active mappings inside [iova, iova + length) to removed, splitting mappings that
 * straddle an edge. Returns the bytes moved, or ERR_NOMEM (as a negative) with nothing changed.
 */
export function xlatRemove(t: usize, iova: u64, length: u64): i64 {
  const end = iova + length;
  // At most two active mappings straddle the edges, each leaving up to two active pieces.
  if (!reserve(t, tCount(t) + 2)) return ERR_NOMEM;
  const n = tCount(t);
  let added: u32 = 0;
  let moved: u64 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const e = entryAt(t, i);
    if ((eFlags(e) & FLAG_REMOVED) != 0) continue;
    const ei = eIova(e);
    const ee = ei + eLen(e);
    if (ee <= iova || ei >= end) continue;
    const g = eGpa(e);
    const lo = max<u64>(ei, iova);
    const hi = min<u64>(ee, end);
    if (lo > ei) {
      setEntry(entryAt(t, n + added), ei, g, lo - ei, 0);
      added++;
    }
    if (hi < ee) {
      setEntry(entryAt(t, n + added), hi, g + (hi - ei), ee - hi, 0);
      added++;
    }
    setEntry(e, lo, g + (lo - ei), hi - lo, FLAG_REMOVED);
    moved += hi - lo;
  }
  setCount(t, n + added);
  if (added != 0 || moved != 0) sortEntries(t);
  forgetGpa(t);
  return <i64>moved;
}

/** Drop every removed mapping; returns how many. */
export function xlatRetire(t: usize): i32 {
  const n = tCount(t);
  let kept: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const e = entryAt(t, i);
    if ((eFlags(e) & FLAG_REMOVED) != 0) continue;
    if (kept != i) memory.copy(entryAt(t, kept), e, ENTRY);
    kept++;
  }
  setCount(t, kept);
  forgetGpa(t);
  return <i32>(n - kept);
}

/**
 * OR src (IOVA space) into dst (GPA space) through every mapping. Both use the table's page size;
 * src != dst. Writes {unmapped_pages, outside_pages} at stats when stats != 0.
 */
export function xlatTranslate(
  t: usize, src: usize, sBase: u64, sBits: u64,
  dst: usize, dBase: u64, dBits: u64, stats: usize,
): void {
  translateImpl(t, src, sBase, sBits, dst, dBase, dBits, stats, OP_OR);
}

/**
 * As xlatTranslate, but each mapping's destination pages get its source bits (copied, not ORed),
 * and stats (when != 0) gets a third u64: the set bits copied into dst. The caller has checked
 * xlatGpaDisjoint: with no GPA page shared, the order of the copies does not matter, so they may
 * go out in lockstep as the ORs do.
 */
export function xlatTranslateCopy(
  t: usize, src: usize, sBase: u64, sBits: u64,
  dst: usize, dBase: u64, dBits: u64, stats: usize,
): void {
  translateImpl(t, src, sBase, sBits, dst, dBase, dBits, stats, OP_COPY);
}

/** Whether no two entries (active or removed) share a GPA page; -1 when out of memory. */
export function xlatGpaDisjoint(t: usize): i32 {
  if (!knowGpa(t)) return -1;
  return load<u32>(t, 32) == GPA_DISJOINT ? 1 : 0;
}

/**
 * Clear the pages of dst (GPA space, the table's page size) that no entry, active or removed,
 * maps to: with xlatTranslateCopy over every mapping, the whole of dst is then written once.
 * False when out of memory (dst untouched).
 */
export function xlatClearUnmappedGpa(t: usize, dst: usize, dBase: u64, dBits: u64): bool {
  if (!knowGpa(t)) return false;
  const log = tLog(t);
  const dEnd = dBase + (dBits << log);
  const sorted = gpaSorted(t);
  const n = tCount(t);
  let cur = dBase; // everything below cur is covered or cleared
  for (let i: u32 = 0; i < n && cur < dEnd; i++) {
    const g = load<u64>(sorted + (<usize>i << 4), 0);
    const gEnd = load<u64>(sorted + (<usize>i << 4), 8);
    if (g > cur) {
      const hi = min<u64>(g, dEnd);
      writeRange(dst, (cur - dBase) >> log, (hi - cur) >> log, false);
    }
    cur = max<u64>(cur, gEnd);
  }
  if (cur < dEnd) writeRange(dst, (cur - dBase) >> log, (dEnd - cur) >> log, false);
  return true;
}

// @ts-ignore: decorator
@inline function translateImpl(
  t: usize, src: usize, sBase: u64, sBits: u64,
  dst: usize, dBase: u64, dBits: u64, stats: usize, op: i32,
): void {
  const log = tLog(t);
  const sEnd = sBase + (sBits << log);
  const dEnd = dBase + (dBits << log);
  const n = tCount(t);
  let outside: u64 = 0;
  // The merge not yet handed to the queues: a mapping that carries on where it ends, in both
  // spaces, extends it, so mappings laid out in the same order in IOVA and GPA space (and the
  // pieces of one mapping) become one long merge.
  let candDst: u64 = 0;
  let candSrc: u64 = 0;
  let candN: u64 = 0;
  // Set bits the copies wrote, as the merges return them (0 for OP_OR).
  let copied: u64 = 0;
  // Entries are in iova order: start at the first that can reach sBase, stop at sEnd. A window of
  // a large IOVA space then costs its own mappings, not a pass over the whole table.
  for (let i = firstReaching(t, sBase); i < n; i++) {
    const e = entryAt(t, i);
    const ei = eIova(e);
    if (ei >= sEnd) break;
    const ee = ei + eLen(e);
    const x = max<u64>(ei, sBase);
    const y = min<u64>(ee, sEnd);
    if (x >= y) continue;
    const s0 = (x - sBase) >> log;
    const np = (y - x) >> log;
    const g = eGpa(e) + (x - ei);
    const gEnd = g + (y - x);
    const gx = max<u64>(g, dBase);
    const gy = min<u64>(gEnd, dEnd);
    if (gx >= gy) {
      if (stats != 0) outside += countRange(src, s0, np);
      continue;
    }
    const skip = (gx - g) >> log;
    const inner = (gy - gx) >> log;
    const dStart = (gx - dBase) >> log;
    if (candN != 0 && candDst + candN == dStart && candSrc + candN == s0 + skip) candN += inner;
    else {
      if (candN != 0) copied += queueMerge(dst, src, candDst, candSrc, candN, op);
      candDst = dStart;
      candSrc = s0 + skip;
      candN = inner;
    }
    if (stats != 0) {
      outside += countRange(src, s0, skip);
      outside += countRange(src, s0 + skip + inner, np - skip - inner);
    }
  }
  if (candN != 0) copied += queueMerge(dst, src, candDst, candSrc, candN, op);
  copied += flushQueue(dst, src, PLAIN, op);
  copied += flushQueue(dst, src, SHIFTED, op);
  if (stats != 0) {
    store<u64>(stats, countUnmapped(t, src, sBase, sBits), 0);
    store<u64>(stats, outside, 8);
    if (op == OP_COPY) store<u64>(stats, copied, 16);
  }
}

/** Runs of dirty src pages on no mapping, from bit `from`; like listRuns. */
export function xlatUnmappedRuns(t: usize, src: usize, sBase: u64, sBits: u64, from: u64, out: usize, maxRuns: i32): i32 {
  const log = tLog(t);
  const sEnd = sBase + (sBits << log);
  const n = tCount(t);
  let written: i32 = 0;
  let cur = sBase;
  for (let i: u32 = 0; i <= n && written < maxRuns; i++) {
    let gapEnd = sEnd;
    let next = sEnd;
    if (i < n) {
      const e = entryAt(t, i);
      gapEnd = min<u64>(eIova(e), sEnd);
      next = max<u64>(cur, eIova(e) + eLen(e));
    }
    if (gapEnd > cur) {
      const g0 = max<u64>((cur - sBase) >> log, from);
      const g1 = (gapEnd - sBase) >> log;
      if (g1 > g0) written += listRuns(src, g0, g1, out + (<usize>written << 4), maxRuns - written);
    }
    if (next >= sEnd) break;
    cur = max<u64>(cur, next);
  }
  return written;
}

// --- Internal helpers ---

/** Dirty src pages on no mapping: a sweep over the gaps between mappings in iova order. */
function countUnmapped(t: usize, src: usize, sBase: u64, sBits: u64): u64 {
  const log = tLog(t);
  const sEnd = sBase + (sBits << log);
  const n = tCount(t);
  let total: u64 = 0;
  let cur = sBase;
  for (let i = firstReaching(t, sBase); i < n; i++) {
    const e = entryAt(t, i);
    const ei = eIova(e);
    if (ei > cur) {
      const gapEnd = min<u64>(ei, sEnd);
      if (gapEnd > cur) total += countRange(src, (cur - sBase) >> log, (gapEnd - cur) >> log);
    }
    cur = max<u64>(cur, ei + eLen(e));
    if (cur >= sEnd) return total;
  }
  return total + countRange(src, (cur - sBase) >> log, (sEnd - cur) >> log);
}

/**
 * First index of an entry that may end after `iova`: every entry before it ends at or below iova.
 * Entries are sorted by start, and none is longer than the longest (cached until the table changes).
 */
function firstReaching(t: usize, iova: u64): u32 {
  let longest = load<u64>(t, 40);
  if (longest == 0) {
    const n = tCount(t);
    for (let i: u32 = 0; i < n; i++) longest = max<u64>(longest, eLen(entryAt(t, i)));
    store<u64>(t, longest, 40);
  }
  return iova > longest ? lowerBound(t, iova - longest + 1) : 0;
}

/** First index whose iova >= iova (entries are sorted by iova). */
function lowerBound(t: usize, iova: u64): u32 {
  let lo: u32 = 0;
  let hi = tCount(t);
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (eIova(entryAt(t, mid)) < iova) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Make room for `want` entries; false (table unchanged) if memory cannot grow. */
function reserve(t: usize, want: u32): bool {
  const cap = tCap(t);
  if (want <= cap) return true;
  const newCap = max<u32>(want, cap * 2);
  const fresh = memAlloc(<u64>newCap * <u64>ENTRY, OWNER_MODULE);
  if (fresh == 0) return false;
  const old = tEntries(t);
  memory.copy(fresh, old, <usize>tCount(t) * ENTRY);
  memFree(old);
  store<u32>(t, <u32>fresh, 12);
  store<u32>(t, newCap, 8);
  return true;
}

// @ts-ignore: decorator
@inline function entryLess(a: usize, b: usize): bool {
  const ai = eIova(a);
  const bi = eIova(b);
  if (ai != bi) return ai < bi;
  const ag = eGpa(a);
  const bg = eGpa(b);
  if (ag != bg) return ag < bg;
  return eFlags(a) < eFlags(b);
}

/** Insertion sort: after an unmap the array is sorted except for a few split pieces. */
function sortEntries(t: usize): void {
  const n = tCount(t);
  for (let i: u32 = 1; i < n; i++) {
    let j = i;
    while (j > 0 && entryLess(entryAt(t, j), entryAt(t, j - 1))) {
      swapEntries(entryAt(t, j), entryAt(t, j - 1));
      j--;
    }
  }
}

/** Sort the entries' GPA ranges and check them for overlap, once per change; false when out of memory. */
function knowGpa(t: usize): bool {
  if (load<u32>(t, 32) != GPA_UNKNOWN) return true;
  const n = tCount(t);
  // {u64 gpa, u64 end} per entry, sorted by gpa; then each must start at or after the one before ends.
  const sorted = memAlloc(max<u64>(<u64>n << 4, 16), OWNER_MODULE);
  if (sorted == 0) return false;
  for (let i: u32 = 0; i < n; i++) {
    const e = entryAt(t, i);
    store<u64>(sorted + (<usize>i << 4), eGpa(e), 0);
    store<u64>(sorted + (<usize>i << 4), eGpa(e) + eLen(e), 8);
  }
  heapSortPairs(sorted, n);
  let disjoint = true;
  for (let i: u32 = 1; i < n && disjoint; i++)
    if (load<u64>(sorted + (<usize>i << 4)) < load<u64>(sorted + (<usize>(i - 1) << 4), 8)) disjoint = false;
  store<u32>(t, <u32>sorted, 36);
  store<u32>(t, disjoint ? GPA_DISJOINT : GPA_OVERLAP, 32);
  return true;
}

/** Heap sort of n {u64 key, u64 value} records by key: O(n log n) with no extra memory. */
function heapSortPairs(p: usize, n: u32): void {
  if (n < 2) return; // (n - 1 below would wrap)
  for (let i = <i32>(n >> 1) - 1; i >= 0; i--) siftDown(p, <u32>i, n);
  for (let end = n - 1; end > 0; end--) {
    swapPairs(p, 0, end);
    siftDown(p, 0, end);
  }
}

function siftDown(p: usize, i: u32, n: u32): void {
  for (;;) {
    const l: u32 = 2 * i + 1;
    if (l >= n) return;
    let c = l;
    if (l + 1 < n && load<u64>(p + (<usize>(l + 1) << 4)) > load<u64>(p + (<usize>l << 4))) c = l + 1;
    if (load<u64>(p + (<usize>c << 4)) <= load<u64>(p + (<usize>i << 4))) return;
    swapPairs(p, i, c);
    i = c;
  }
}

// @ts-ignore: decorator
@inline function swapPairs(p: usize, i: u32, j: u32): void {
  const a = p + (<usize>i << 4);
  const b = p + (<usize>j << 4);
  const v = v128.load(a);
  v128.store(a, v128.load(b));
  v128.store(b, v);
}

// @ts-ignore: decorator
@inline function swapEntries(a: usize, b: usize): void {
  const v0 = v128.load(a, 0);
  const v1 = v128.load(a, 16);
  v128.store(a, v128.load(b, 0), 0);
  v128.store(a, v128.load(b, 16), 16);
  v128.store(b, v0, 0);
  v128.store(b, v1, 16);
}

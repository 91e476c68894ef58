// The raw ABI of bitmap.wasm (documented in ../ABI.md): snake_case exports that validate every
// argument and call the internal camelCase kernels. Nothing here traps on bad input: each check
// returns its error code from errors.ts before any memory is touched.
//
//   bitmap handle (mem block)          words (the kernel's format, LSB first) at +offset (>= 32)
//   +0  u32 magic "BMAP"               word 0: pages 0..63
//   +4  u32 offset of word 0           word 1: pages 64..127
//   +8  u64 nbits                      ...
//   +16 u64 page size (bytes)          bits of the last word past nbits stay 0
//   +24 u64 base (address of bit 0)   one slack u64 after the last word (never part of a range)
//
// Usage sketch (JS, no glue):
//   const { instance } = await WebAssembly.instantiate(bytes, {});
//   const x = instance.exports;
//   const bm = x.bitmap_new(1n << 20n, 4096n, 0n);            // 4 GiB of guest at 4 KiB
//   x.bitmap_set_range(bm, 5n, 3n); x.bitmap_count(bm, 0n, 1n << 20n) === 3n;
//   new Uint8Array(x.memory.buffer, x.bitmap_data(bm) >>> 0, (1 << 20) / 8);  // hand to the kernel
//   x.bitmap_free(bm);

import { convertInto } from "./convert";
import {
  countRange, findNext, listRuns, mergeRange, OP_ANDNOT, OP_OR, takeRange, testBit, wordsFor, writeRange,
} from "./bits";
import {
  ERR_ALIGN, ERR_BAD_ARGUMENT, ERR_BAD_HANDLE, ERR_BAD_POINTER, ERR_NOMEM, ERR_OVERFLOW, ERR_OVERLAP, ERR_PAGE_SIZE,
  ERR_RANGE, ERR_TOO_LARGE, OK,
} from "./errors";
import {
  OWNER_CALLER, OWNER_MODULE, blockOwner, blockPayload, insideCallerBlock, isLiveBlock, lastError, memAlloc, memFree,
  memUsedBytes,
} from "./mem";
import {
  XLAT_HEADER, XLAT_MAGIC, entryAt, tCount, tPageSize, xlatAdd, xlatCreate, xlatDestroy,
  xlatClearUnmappedGpa, xlatGpaDisjoint, xlatRemove, xlatRetire, xlatTranslate, xlatTranslateCopy, xlatUnmappedRuns,
} from "./xlat";

// @ts-ignore: decorator
@inline const BITMAP_MAGIC: u32 = 0x50414d42;
// @ts-ignore: decorator
@inline const BITMAP_HEADER: usize = 32;
// @ts-ignore: decorator
@inline const PAGE_BYTES: usize = 4096;
// Bitmaps with at least this many bytes of words get a page colour (see bitmap_new).
// @ts-ignore: decorator
@inline const COLOUR_MIN_BYTES: u64 = 65536;
let nextColour: u32 = 0;
// Largest nbits: the words plus header must fit one allocation below 4 GiB - 64 KiB.
// @ts-ignore: decorator
@inline const BITMAP_MAX_NBITS: u64 = 0x7fff00000;
// @ts-ignore: decorator
@inline const MIN_PAGE_LOG: u64 = 9;
// @ts-ignore: decorator
@inline const MAX_PAGE_LOG: u64 = 30;
// @ts-ignore: decorator
@inline const U64_MAX: u64 = 0xffffffffffffffff;

let pointerError: i32 = OK;

// --- Module and memory ---

export function abi_version(): i32 {
  return 1;
}

export function abi_last_error(): i32 {
  return pointerError;
}

export function mem_alloc(nbytes: i32): usize {
  const p = memAlloc(<u64>(<u32>nbytes), OWNER_CALLER);
  pointerError = p == 0 ? lastError : OK;
  return p;
}

export function mem_free(ptr: usize): i32 {
  // Bitmaps and tables are freed with their own calls, which also clear their magic.
  if (!isLiveBlock(ptr) || blockOwner(ptr) != OWNER_CALLER) return ERR_BAD_HANDLE;
  return memFree(ptr);
}

export function mem_used_bytes(): i64 {
  return <i64>memUsedBytes();
}

// --- Bitmaps ---

export function bitmap_new(nbits: i64, page_size: i64, base: i64): usize {
  const err = checkGeometry(nbits, page_size, base);
  if (err != OK) {
    pointerError = err;
    return 0;
  }
  // One slack word after the last lets merges read the word past a range without a bounds branch.
  const wordBytes = (wordsFor(<u64>nbits) << 3) + 8;
  // Large bitmaps start their words at a 4 KiB page offset of 0, 1, 2 or 3 KiB in turn. Two
  // bitmaps allocated back to back otherwise sit a few bytes apart modulo 4 KiB, and a streaming
  // merge's loads then falsely depend on its own just-issued stores ("4K aliasing"): a 256 MiB
  // OR ran at half of C's speed. Small bitmaps pack tightly instead (the colour costs up to 4 KiB).
  const coloured = wordBytes >= COLOUR_MIN_BYTES;
  const h = memAlloc(<u64>BITMAP_HEADER + wordBytes + (coloured ? <u64>PAGE_BYTES : 0), OWNER_MODULE);
  if (h == 0) {
    pointerError = lastError;
    return 0;
  }
  let dataOffset = BITMAP_HEADER;
  if (coloured) {
    const colourOffset = <usize>(nextColour & 3) * (PAGE_BYTES >> 2);
    nextColour++;
    const minData = h + BITMAP_HEADER;
    // Smallest address >= minData that is colourOffset past a 4 KiB boundary.
    const data = ((minData - colourOffset + PAGE_BYTES - 1) & ~(PAGE_BYTES - 1)) + colourOffset;
    dataOffset = data - h;
  }
  store<u32>(h, BITMAP_MAGIC, 0);
  store<u32>(h, <u32>dataOffset, 4);
  store<u64>(h, <u64>nbits, 8);
  store<u64>(h, <u64>page_size, 16);
  store<u64>(h, <u64>base, 24);
  pointerError = OK;
  return h;
}

export function bitmap_free(bm: usize): i32 {
  if (!isBitmap(bm)) return ERR_BAD_HANDLE;
  store<u32>(bm, 0, 0);
  return memFree(bm);
}

export function bitmap_data(bm: usize): usize {
  return isBitmap(bm) ? words(bm) : 0;
}

export function bitmap_nbits(bm: usize): i64 {
  return isBitmap(bm) ? <i64>nbitsOf(bm) : ERR_BAD_HANDLE;
}

export function bitmap_page_size(bm: usize): i64 {
  return isBitmap(bm) ? <i64>pageSizeOf(bm) : ERR_BAD_HANDLE;
}

export function bitmap_base(bm: usize): i64 {
  return isBitmap(bm) ? <i64>baseOf(bm) : ERR_BAD_HANDLE;
}

export function bitmap_set_range(bm: usize, start: i64, n: i64): i32 {
  const err = checkRange(bm, start, n);
  if (err != OK) return err;
  writeRange(words(bm), <u64>start, <u64>n, true);
  return OK;
}

export function bitmap_clear_range(bm: usize, start: i64, n: i64): i32 {
  const err = checkRange(bm, start, n);
  if (err != OK) return err;
  writeRange(words(bm), <u64>start, <u64>n, false);
  return OK;
}

export function bitmap_test(bm: usize, bit: i64): i32 {
  if (!isBitmap(bm)) return ERR_BAD_HANDLE;
  if (bit < 0 || <u64>bit >= nbitsOf(bm)) return ERR_RANGE;
  return testBit(words(bm), <u64>bit) ? 1 : 0;
}

export function bitmap_fill(bm: usize, value: i32): i32 {
  if (!isBitmap(bm)) return ERR_BAD_HANDLE;
  if (value != 0 && value != 1) return ERR_BAD_ARGUMENT;
  writeRange(words(bm), 0, nbitsOf(bm), value == 1);
  return OK;
}

export function bitmap_count(bm: usize, start: i64, n: i64): i64 {
  const err = checkRange(bm, start, n);
  if (err != OK) return err;
  return <i64>countRange(words(bm), <u64>start, <u64>n);
}

export function bitmap_or_from(dst: usize, src: usize, src_start: i64, dst_start: i64, n: i64): i32 {
  const err = checkMerge(dst, src, src_start, dst_start, n);
  if (err != OK) return err;
  mergeRange(words(dst), <u64>dst_start, words(src), <u64>src_start, <u64>n, OP_OR);
  return OK;
}

export function bitmap_andnot_from(dst: usize, src: usize, src_start: i64, dst_start: i64, n: i64): i32 {
  const err = checkMerge(dst, src, src_start, dst_start, n);
  if (err != OK) return err;
  mergeRange(words(dst), <u64>dst_start, words(src), <u64>src_start, <u64>n, OP_ANDNOT);
  return OK;
}

export function bitmap_take_and_clear(src: usize, dst: usize, start: i64, n: i64): i32 {
  let err = checkRange(src, start, n);
  if (err != OK) return err;
  err = checkRange(dst, start, n);
  if (err != OK) return err;
  if (src == dst) return ERR_OVERLAP;
  takeRange(words(src), words(dst), <u64>start, <u64>n);
  return OK;
}

export function bitmap_next_set(bm: usize, from: i64): i64 {
  const err = checkRange(bm, from, 0);
  if (err != OK) return err;
  return <i64>findNext(words(bm), <u64>from, nbitsOf(bm), true);
}

export function bitmap_next_clear(bm: usize, from: i64): i64 {
  const err = checkRange(bm, from, 0);
  if (err != OK) return err;
  return <i64>findNext(words(bm), <u64>from, nbitsOf(bm), false);
}

export function bitmap_runs(bm: usize, from: i64, out: usize, max_runs: i32): i32 {
  const err = checkRange(bm, from, 0);
  if (err != OK) return err;
  if (max_runs < 0) return ERR_BAD_ARGUMENT;
  if (!checkBuffer(out, <u64>max_runs << 4)) return ERR_BAD_POINTER;
  return listRuns(words(bm), <u64>from, nbitsOf(bm), out, max_runs);
}

export function bitmap_density(bm: usize, start: i64, n: i64, out: usize, buckets: i32): i32 {
  const err = checkRange(bm, start, n);
  if (err != OK) return err;
  if (buckets <= 0) return ERR_BAD_ARGUMENT;
  if (!checkBuffer(out, <u64>buckets << 3)) return ERR_BAD_POINTER;
  const w = words(bm);
  const total = <u64>n;
  const nb = <u64>buckets;
  // Bucket k = [start + floor(k * n / buckets), ...): split the quotient so k * n cannot overflow.
  const q = total / nb;
  const rem = total % nb;
  let lo = <u64>start;
  for (let k: u64 = 0; k < nb; k++) {
    const hi = <u64>start + (k + 1) * q + ((k + 1) * rem) / nb;
    store<u64>(out + (<usize>k << 3), countRange(w, lo, hi - lo));
    lo = hi;
  }
  return OK;
}

export function bitmap_convert(src: usize, dst: usize): i64 {
  if (!isBitmap(src) || !isBitmap(dst)) return ERR_BAD_HANDLE;
  if (src == dst) return ERR_OVERLAP;
  return <i64>convertInto(
    words(src), baseOf(src), pageLogOf(src), nbitsOf(src),
    words(dst), baseOf(dst), pageLogOf(dst), nbitsOf(dst),
  );
}

// --- IOVA -> GPA translation tables ---

export function xlat_new(page_size: i64): usize {
  if (pageLog(<u64>page_size) < 0) {
    pointerError = ERR_PAGE_SIZE;
    return 0;
  }
  const t = xlatCreate(<u64>page_size, <u64>pageLog(<u64>page_size));
  pointerError = t == 0 ? lastError : OK;
  return t;
}

export function xlat_free(t: usize): i32 {
  if (!isTable(t)) return ERR_BAD_HANDLE;
  xlatDestroy(t);
  return OK;
}

export function xlat_map(t: usize, iova: i64, gpa: i64, length: i64): i32 {
  if (!isTable(t)) return ERR_BAD_HANDLE;
  const err = checkMapping(t, <u64>iova, <u64>length);
  if (err != OK) return err;
  const mask = tPageSize(t) - 1;
  if ((<u64>gpa & mask) != 0) return ERR_ALIGN;
  if (<u64>length > U64_MAX - <u64>gpa) return ERR_OVERFLOW;
  return xlatAdd(t, <u64>iova, <u64>gpa, <u64>length);
}

export function xlat_unmap(t: usize, iova: i64, length: i64): i64 {
  if (!isTable(t)) return ERR_BAD_HANDLE;
  const err = checkMapping(t, <u64>iova, <u64>length);
  if (err != OK) return err;
  return xlatRemove(t, <u64>iova, <u64>length);
}

export function xlat_retire(t: usize): i32 {
  if (!isTable(t)) return ERR_BAD_HANDLE;
  return xlatRetire(t);
}

export function xlat_mapping_count(t: usize): i32 {
  if (!isTable(t)) return ERR_BAD_HANDLE;
  return <i32>tCount(t);
}

export function xlat_mapping_get(t: usize, index: i32, out: usize): i32 {
  if (!isTable(t)) return ERR_BAD_HANDLE;
  if (index < 0 || <u32>index >= tCount(t)) return ERR_BAD_ARGUMENT;
  if (!checkBuffer(out, 32)) return ERR_BAD_POINTER;
  memory.copy(out, entryAt(t, <u32>index), 32);
  return OK;
}

export function xlat_translate(t: usize, src: usize, dst: usize, stats: usize): i32 {
  const err = checkTranslate(t, src, dst, stats, 16);
  if (err != OK) return err;
  xlatTranslate(t, words(src), baseOf(src), nbitsOf(src), words(dst), baseOf(dst), nbitsOf(dst), stats);
  return OK;
}

export function xlat_translate_copy(t: usize, src: usize, dst: usize, stats: usize): i32 {
  const err = checkTranslate(t, src, dst, stats, 24);
  if (err != OK) return err;
  const disjoint = xlatGpaDisjoint(t);
  if (disjoint < 0) return ERR_NOMEM;
  if (disjoint == 0) return ERR_OVERLAP;
  xlatTranslateCopy(t, words(src), baseOf(src), nbitsOf(src), words(dst), baseOf(dst), nbitsOf(dst), stats);
  return OK;
}

export function xlat_gpa_disjoint(t: usize): i32 {
  if (!isTable(t)) return ERR_BAD_HANDLE;
  const r = xlatGpaDisjoint(t);
  return r < 0 ? ERR_NOMEM : r;
}

export function xlat_clear_unmapped_gpa(t: usize, dst: usize): i32 {
  if (!isTable(t) || !isBitmap(dst)) return ERR_BAD_HANDLE;
  if (pageSizeOf(dst) != tPageSize(t)) return ERR_PAGE_SIZE;
  return xlatClearUnmappedGpa(t, words(dst), baseOf(dst), nbitsOf(dst)) ? OK : ERR_NOMEM;
}

export function xlat_unmapped_runs(t: usize, src: usize, from: i64, out: usize, max_runs: i32): i32 {
  if (!isTable(t) || !isBitmap(src)) return ERR_BAD_HANDLE;
  if (pageSizeOf(src) != tPageSize(t)) return ERR_PAGE_SIZE;
  const err = checkRange(src, from, 0);
  if (err != OK) return err;
  if (max_runs < 0) return ERR_BAD_ARGUMENT;
  if (!checkBuffer(out, <u64>max_runs << 4)) return ERR_BAD_POINTER;
  return xlatUnmappedRuns(t, words(src), baseOf(src), nbitsOf(src), <u64>from, out, max_runs);
}

// --- Internal helpers ---

/** The arguments of xlat_translate and xlat_translate_copy (`statsBytes`: what stats receives). */
function checkTranslate(t: usize, src: usize, dst: usize, stats: usize, statsBytes: u64): i32 {
  if (!isTable(t) || !isBitmap(src) || !isBitmap(dst)) return ERR_BAD_HANDLE;
  if (pageSizeOf(src) != tPageSize(t) || pageSizeOf(dst) != tPageSize(t)) return ERR_PAGE_SIZE;
  if (src == dst) return ERR_OVERLAP;
  if (stats != 0 && !checkBuffer(stats, statsBytes)) return ERR_BAD_POINTER;
  return OK;
}

// @ts-ignore: decorator
@inline function words(bm: usize): usize {
  return bm + load<u32>(bm, 4);
}
// @ts-ignore: decorator
@inline function nbitsOf(bm: usize): u64 {
  return load<u64>(bm, 8);
}
// @ts-ignore: decorator
@inline function pageSizeOf(bm: usize): u64 {
  return load<u64>(bm, 16);
}
// @ts-ignore: decorator
@inline function baseOf(bm: usize): u64 {
  return load<u64>(bm, 24);
}
// @ts-ignore: decorator
@inline function pageLogOf(bm: usize): u64 {
  return ctz(pageSizeOf(bm));
}

function isBitmap(bm: usize): bool {
  return isModuleBlock(bm) && blockPayload(bm) >= <u64>BITMAP_HEADER && load<u32>(bm, 0) == BITMAP_MAGIC;
}

function isTable(t: usize): bool {
  return isModuleBlock(t) && blockPayload(t) >= <u64>XLAT_HEADER && load<u32>(t, 0) == XLAT_MAGIC;
}

// @ts-ignore: decorator
@inline function isModuleBlock(p: usize): bool {
  return isLiveBlock(p) && blockOwner(p) == OWNER_MODULE;
}

/** log2 of a page size in [512, 2^30], or -1. */
function pageLog(ps: u64): i32 {
  if (ps == 0 || (ps & (ps - 1)) != 0) return -1;
  const log = ctz(ps);
  return log < MIN_PAGE_LOG || log > MAX_PAGE_LOG ? -1 : <i32>log;
}

function checkGeometry(nbits: i64, page_size: i64, base: i64): i32 {
  if (nbits < 0) return ERR_RANGE;
  if (<u64>nbits > BITMAP_MAX_NBITS) return ERR_TOO_LARGE;
  const log = pageLog(<u64>page_size);
  if (log < 0) return ERR_PAGE_SIZE;
  if ((<u64>base & (<u64>page_size - 1)) != 0) return ERR_ALIGN;
  if (<u64>nbits > (U64_MAX - <u64>base) >> <u64>log) return ERR_OVERFLOW;
  return OK;
}

function checkRange(bm: usize, start: i64, n: i64): i32 {
  if (!isBitmap(bm)) return ERR_BAD_HANDLE;
  if (start < 0 || n < 0) return ERR_RANGE;
  if (<u64>start + <u64>n > nbitsOf(bm)) return ERR_RANGE;
  return OK;
}

function checkMerge(dst: usize, src: usize, src_start: i64, dst_start: i64, n: i64): i32 {
  let err = checkRange(dst, dst_start, n);
  if (err != OK) return err;
  err = checkRange(src, src_start, n);
  if (err != OK) return err;
  // In-place merges are allowed only between disjoint ranges (words are processed in order).
  if (src == dst && n > 0 && src_start < dst_start + n && dst_start < src_start + n) return ERR_OVERLAP;
  return OK;
}

function checkMapping(t: usize, iova: u64, length: u64): i32 {
  const mask = tPageSize(t) - 1;
  if ((iova & mask) != 0 || (length & mask) != 0) return ERR_ALIGN;
  if (length == 0) return ERR_BAD_ARGUMENT;
  if (length > U64_MAX - iova) return ERR_OVERFLOW;
  return OK;
}

/** A caller buffer lies inside one live mem_alloc block (never a bitmap's or table's memory). */
function checkBuffer(ptr: usize, nbytes: u64): bool {
  return insideCallerBlock(ptr, nbytes);
}

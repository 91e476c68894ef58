// The allocator: an address-ordered free list with coalescing over a bump region.
//
//   __heap_base                                              top            memory end
//   |[hdr|payload......][hdr|free.......][hdr|payload]........|..untouched...|
//    ^ block = 16-byte header + payload, sizes multiples of 16
//
//   header: +0 u32 size (whole block, header included)  +4 u32 tag (USED or FREE)
//           +8 u32 next free block (free blocks only, address order)
//           +12 u32 owner: OWNER_CALLER (mem_alloc) or OWNER_MODULE (bitmaps, tables)
//
// Why not TLSF (std/assembly/rt/tlsf.ts): it traps when memory.grow fails and caps blocks at 1 GiB;
// the ABI promises error codes, never traps, and a 256 MiB..4 GiB bitmap is one block. Bitmaps
// are few and large, so an O(free blocks) first fit costs nothing measurable. Freed blocks merge
// with free neighbours and a free block at the top is handed back to the bump region, so
// alloc/free cycles of any sizes reuse the same memory instead of growing it.

import { ERR_BAD_HANDLE, ERR_NOMEM, ERR_TOO_LARGE, OK } from "./errors";

// @ts-ignore: decorator
@inline const HDR: usize = 16;
// @ts-ignore: decorator
@inline const ALIGN_MASK: usize = 15;
// @ts-ignore: decorator
@inline const TAG_USED: u32 = 0xa110c8ed;
// @ts-ignore: decorator
@inline const TAG_FREE: u32 = 0xf4eeb10c;
// Smallest remainder worth splitting off as a free block.
// @ts-ignore: decorator
@inline const MIN_SPLIT: u32 = 64;
// Largest request: the whole 4 GiB address space minus one wasm page for static data.
// @ts-ignore: decorator
@inline export const MEM_MAX_REQUEST: u64 = 0xffff0000;

let heapStart: usize = (__heap_base + ALIGN_MASK) & ~ALIGN_MASK;
// End of the carved region (u64: may reach 2^32).
let top: u64 = <u64>heapStart;
// Above this address memory was never handed out, so it is still zero from memory.grow.
let neverUsed: u64 = <u64>heapStart;
// First free block (lowest address), 0 if none.
let freeHead: usize = 0;
let usedBytes: u64 = 0;

// @ts-ignore: decorator
@inline function blockSize(b: usize): u32 {
  return load<u32>(b, 0);
}
// @ts-ignore: decorator
@inline function setBlockSize(b: usize, v: u32): void {
  store<u32>(b, v, 0);
}
// @ts-ignore: decorator
@inline function blockTag(b: usize): u32 {
  return load<u32>(b, 4);
}
// @ts-ignore: decorator
@inline function setBlockTag(b: usize, v: u32): void {
  store<u32>(b, v, 4);
}
// @ts-ignore: decorator
@inline export const OWNER_CALLER: u32 = 0;
// @ts-ignore: decorator
@inline export const OWNER_MODULE: u32 = 1;
// @ts-ignore: decorator
@inline function nextFree(b: usize): usize {
  return load<u32>(b, 8);
}
// @ts-ignore: decorator
@inline function setNextFree(b: usize, v: usize): void {
  store<u32>(b, <u32>v, 8);
}

/** Bytes of memory currently in the module (u64: 4 GiB does not fit a u32). */
// @ts-ignore: decorator
@inline export function memoryEnd(): u64 {
  return (<u64>memory.size()) << 16;
}

/** Code of the last failed memAlloc (ERR_NOMEM, ERR_TOO_LARGE); OK after a success. */
export let lastError: i32 = OK;

/** Zeroed, 16-byte aligned block of nbytes owned by `owner`; 0 on failure with the code in lastError. */
export function memAlloc(nbytes: u64, owner: u32): usize {
  if (nbytes > MEM_MAX_REQUEST) {
    lastError = ERR_TOO_LARGE;
    return 0;
  }
  const need: u64 = (nbytes + <u64>HDR + <u64>ALIGN_MASK) & ~(<u64>ALIGN_MASK);
  // First fit in address order.
  let prev: usize = 0;
  let b = freeHead;
  while (b != 0) {
    const bs = <u64>blockSize(b);
    if (bs >= need) {
      const rest = bs - need;
      let after = nextFree(b);
      if (rest >= <u64>MIN_SPLIT) {
        const r = b + <usize>need;
        setBlockSize(r, <u32>rest);
        setBlockTag(r, TAG_FREE);
        setNextFree(r, after);
        after = r;
        setBlockSize(b, <u32>need);
      }
      if (prev == 0) freeHead = after;
      else setNextFree(prev, after);
      return finishAlloc(b, owner);
    }
    prev = b;
    b = nextFree(b);
  }
  // Carve from the top, growing memory if needed.
  const end = top + need;
  if (end > 0x100000000) {
    lastError = end - top > 0x100000000 - <u64>heapStart ? ERR_TOO_LARGE : ERR_NOMEM;
    return 0;
  }
  const memEnd = memoryEnd();
  if (end > memEnd) {
    const pagesNeeded = <i32>((end - memEnd + 0xffff) >> 16);
    // Grow by at least 1/8 of the current size to keep the number of grows small, but fall back
    // to the exact amount when that fails near the 4 GiB limit.
    const pagesWanted = max<i32>(pagesNeeded, memory.size() >> 3);
    if (memory.grow(pagesWanted) < 0 && memory.grow(pagesNeeded) < 0) {
      lastError = ERR_NOMEM;
      return 0;
    }
  }
  const nb = <usize>top;
  top = end;
  setBlockSize(nb, <u32>need);
  return finishAlloc(nb, owner);
}

/** True if ptr is the payload of a live block. */
export function isLiveBlock(ptr: usize): bool {
  // `ptr > top`, not `>=`: a zero-byte block at the top has its payload pointer equal to top.
  if (ptr < heapStart + HDR || (ptr & ALIGN_MASK) != 0 || <u64>ptr > top) return false;
  const b = ptr - HDR;
  if (blockTag(b) != TAG_USED) return false;
  const bs = <u64>blockSize(b);
  return bs >= <u64>HDR && <u64>b + bs <= top;
}

/**
 * True if [ptr, ptr + nbytes) lies inside the payload of one live block. Walks the blocks, which
 * tile [heapStart, top) (free neighbours are merged, so there are few): O(blocks), cheap next to
 * the bitmap work that follows, and it keeps a caller's output buffer from spilling over a block
 * header or another allocation.
 */
export function insideCallerBlock(ptr: usize, nbytes: u64): bool {
  let b = heapStart;
  while (<u64>b < top) {
    const bs = <u64>blockSize(b);
    if (bs < <u64>HDR) return false; // never happens for a consistent heap; refuse rather than loop
    const end = <u64>b + bs;
    if (<u64>ptr < end) {
      return blockTag(b) == TAG_USED && load<u32>(b, 12) == OWNER_CALLER && ptr >= b + HDR && <u64>ptr + nbytes <= end;
    }
    b = <usize>end;
  }
  return false;
}

/** Who owns a live block (OWNER_CALLER or OWNER_MODULE). */
export function blockOwner(ptr: usize): u32 {
  return load<u32>(ptr - HDR, 12);
}

/** Payload bytes of a live block. */
export function blockPayload(ptr: usize): u64 {
  return <u64>blockSize(ptr - HDR) - <u64>HDR;
}

export function memFree(ptr: usize): i32 {
  if (!isLiveBlock(ptr)) return ERR_BAD_HANDLE;
  let b = ptr - HDR;
  let bs = <u64>blockSize(b);
  usedBytes -= bs;
  setBlockTag(b, TAG_FREE);
  // Find the free neighbours in address order.
  let prev: usize = 0;
  let next = freeHead;
  while (next != 0 && next < b) {
    prev = next;
    next = nextFree(next);
  }
  // Merge with the following free block.
  if (next != 0 && <u64>b + bs == <u64>next) {
    bs += <u64>blockSize(next);
    next = nextFree(next);
  }
  // Merge into the preceding free block.
  if (prev != 0 && <u64>prev + <u64>blockSize(prev) == <u64>b) {
    bs += <u64>blockSize(prev);
    b = prev;
    // prev's predecessor stays linked to prev.
    prev = findPrevFree(b);
  }
  if (<u64>b + bs == top) {
    // Hand the top block back to the bump region.
    top = <u64>b;
    setBlockTag(b, 0);
    if (prev == 0) freeHead = next;
    else setNextFree(prev, next);
    return OK;
  }
  setBlockSize(b, <u32>bs);
  setBlockTag(b, TAG_FREE);
  setNextFree(b, next);
  if (prev == 0) freeHead = b;
  else setNextFree(prev, b);
  return OK;
}

export function memUsedBytes(): u64 {
  return usedBytes;
}

// --- Internal helpers ---

function finishAlloc(b: usize, owner: u32): usize {
  setBlockTag(b, TAG_USED);
  store<u32>(b, owner, 12);
  const bs = <u64>blockSize(b);
  usedBytes += bs;
  const p = b + HDR;
  // Memory above neverUsed is still zero from memory.grow: only clear what was used before.
  const end = <u64>b + bs;
  const dirtyEnd = min<u64>(end, neverUsed);
  if (dirtyEnd > <u64>p) memory.fill(p, 0, <usize>(dirtyEnd - <u64>p));
  if (end > neverUsed) neverUsed = end;
  lastError = OK;
  return p;
}

function findPrevFree(b: usize): usize {
  let prev: usize = 0;
  let f = freeHead;
  while (f != 0 && f < b) {
    prev = f;
    f = nextFree(f);
  }
  return prev;
}

// Writing dirty bits into the caller's bitmap, the two ways the kernel does it.
//
// - orBits(): iova_bitmap_set(), used by DMA logging REPORT and iommufd GET_DIRTY_BITMAP. It only
//   ever SETS bits in the caller's buffer, so several devices can report into one bitmap.
// - type1 GET_BITMAP / UNMAP+GET_DIRTY_BITMAP: update_user_bitmap() in vfio_iommu_type1.c copies
//   whole u64 words. It keeps only the low `shift` bits of the first word (the "leftover" of an
//   earlier mapping in the same word) and overwrites the rest, zeros after the mapping included.
//
// Bit rule (include/uapi/linux/iommufd.h): bit i covers [base + i*pageSize, base + (i+1)*pageSize),
// stored in data[i / 64] >> (i % 64), little-endian u64 words.

import { U64_MAX } from "../uapi/index.ts";
import { bigMax, bigMin } from "../util/bigint.ts";

/** Sets bits [first, last] (inclusive) in `bytes` (a little-endian u64 bitmap). */
export function setBitRange(bytes: Uint8Array, first: number, last: number): void {
  let i = first;
  while (i <= last && i % 8 !== 0) {
    bytes[i >>> 3]! |= 1 << (i & 7);
    i++;
  }
  if (i + 8 <= last + 1) {
    const fullBytes = Math.floor((last + 1 - i) / 8);
    bytes.fill(0xff, i >>> 3, (i >>> 3) + fullBytes);
    i += fullBytes * 8;
  }
  while (i <= last) {
    bytes[i >>> 3]! |= 1 << (i & 7);
    i++;
  }
}

/** Bytes of a bitmap with `nbits` bits, rounded up to whole u64 words (DIRTY_BITMAP_BYTES). */
export function bitmapBytes(nbits: bigint): bigint {
  return ((nbits + 63n) / 64n) * 8n;
}

/**
 * iova_bitmap_alloc(): the bytes of whole u64 words the kernel maps for [iova, iova + length) at
 * `pageSize` per bit, or undefined when that is more than it will pin (the caller answers EFAULT).
 * A length of 0 wraps `length - 1` to the whole address space, as the u64 arithmetic in C does.
 */
export function iovaBitmapBytes(length: bigint, pageSize: bigint): number | undefined {
  const words = ((length - 1n) & U64_MAX) / (pageSize * 64n) + 1n;
  return words * 8n > 0x7fff_ffffn ? undefined : Number(words * 8n);
}

/**
 * iova_bitmap_set(): marks [iova, iova+length) dirty in a bitmap whose bit 0 is `base` with
 * `pageSize` bits, clipped to the bitmap's `nbits`. A coarser page size sets the one bit covering
 * the range; a finer one sets every bit it spans (replication).
 */
export function orRange(
  bytes: Uint8Array,
  base: bigint,
  pageSize: bigint,
  nbits: bigint,
  iova: bigint,
  length: bigint,
): void {
  if (length <= 0n) return;
  const end = iova + length;
  const windowEnd = base + nbits * pageSize;
  const a = bigMax(iova, base);
  const b = bigMin(end, windowEnd);
  if (a >= b) return;
  const first = (a - base) / pageSize;
  const last = (b - 1n - base) / pageSize;
  setBitRange(bytes, Number(first), Number(last));
}

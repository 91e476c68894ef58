// The raw exports of bitmap.wasm as TypeScript sees them (ABI.md), and the small checks every
// wrapper shares: argument conversion at the boundary and status-to-exception mapping.

import { BitmapError, ErrorCode } from "./errors.ts";

/** The raw exports of bitmap.wasm (ABI version 1). i64 parameters are bigint; i32 are number. */
export interface BitmapExports {
  readonly memory: WebAssembly.Memory;
  abi_version(): number;
  abi_last_error(): number;
  mem_alloc(nbytes: number): number;
  mem_free(ptr: number): number;
  mem_used_bytes(): bigint;
  bitmap_new(nbits: bigint, pageSize: bigint, base: bigint): number;
  bitmap_free(bm: number): number;
  bitmap_data(bm: number): number;
  bitmap_nbits(bm: number): bigint;
  bitmap_page_size(bm: number): bigint;
  bitmap_base(bm: number): bigint;
  bitmap_set_range(bm: number, start: bigint, n: bigint): number;
  bitmap_clear_range(bm: number, start: bigint, n: bigint): number;
  bitmap_test(bm: number, bit: bigint): number;
  bitmap_fill(bm: number, value: number): number;
  bitmap_count(bm: number, start: bigint, n: bigint): bigint;
  bitmap_or_from(dst: number, src: number, srcStart: bigint, dstStart: bigint, n: bigint): number;
  bitmap_andnot_from(dst: number, src: number, srcStart: bigint, dstStart: bigint, n: bigint): number;
  bitmap_take_and_clear(src: number, dst: number, start: bigint, n: bigint): number;
  bitmap_next_set(bm: number, from: bigint): bigint;
  bitmap_next_clear(bm: number, from: bigint): bigint;
  bitmap_runs(bm: number, from: bigint, out: number, maxRuns: number): number;
  bitmap_density(bm: number, start: bigint, n: bigint, out: number, buckets: number): number;
  bitmap_convert(src: number, dst: number): bigint;
  xlat_new(pageSize: bigint): number;
  xlat_free(t: number): number;
  xlat_map(t: number, iova: bigint, gpa: bigint, length: bigint): number;
  xlat_unmap(t: number, iova: bigint, length: bigint): bigint;
  xlat_retire(t: number): number;
  xlat_mapping_count(t: number): number;
  xlat_mapping_get(t: number, index: number, out: number): number;
  xlat_translate(t: number, src: number, dst: number, stats: number): number;
  xlat_translate_copy(t: number, src: number, dst: number, stats: number): number;
  xlat_gpa_disjoint(t: number): number;
  xlat_clear_unmapped_gpa(t: number, dst: number): number;
  xlat_unmapped_runs(t: number, src: number, from: bigint, out: number, maxRuns: number): number;
}

/** Every export the wrappers need; checked once at load so a stale .wasm fails loudly. */
export const REQUIRED_EXPORTS: readonly (keyof BitmapExports)[] = [
  "memory",
  "abi_version",
  "abi_last_error",
  "mem_alloc",
  "mem_free",
  "mem_used_bytes",
  "bitmap_new",
  "bitmap_free",
  "bitmap_data",
  "bitmap_nbits",
  "bitmap_page_size",
  "bitmap_base",
  "bitmap_set_range",
  "bitmap_clear_range",
  "bitmap_test",
  "bitmap_fill",
  "bitmap_count",
  "bitmap_or_from",
  "bitmap_andnot_from",
  "bitmap_take_and_clear",
  "bitmap_next_set",
  "bitmap_next_clear",
  "bitmap_runs",
  "bitmap_density",
  "bitmap_convert",
  "xlat_new",
  "xlat_free",
  "xlat_map",
  "xlat_unmap",
  "xlat_retire",
  "xlat_mapping_count",
  "xlat_mapping_get",
  "xlat_translate",
  "xlat_translate_copy",
  "xlat_gpa_disjoint",
  "xlat_clear_unmapped_gpa",
  "xlat_unmapped_runs",
];

/** Throw for a negative i32 status; return it otherwise. */
export function check(status: number, op: string, detail: () => string): number {
  if (status < 0) throw new BitmapError(status, op, detail());
  return status;
}

/** Throw for a negative i64 result; return it as a number otherwise (counts fit 2^53). */
export function checkBig(value: bigint, op: string, detail: () => string): number {
  if (value < 0n) throw new BitmapError(Number(value), op, detail());
  return Number(value);
}

/** A bit position or count as the i64 the ABI takes; rejects non-integers before BigInt() would. */
export function bits(value: number, op: string, what: string): bigint {
  if (!Number.isSafeInteger(value)) {
    throw new BitmapError(ErrorCode.BAD_ARGUMENT, op, `${what} ${value} is not a safe integer`);
  }
  return BigInt(value);
}

/** A u64 address or length as the i64 the ABI takes (two's complement above 2^63). */
export function u64(value: bigint, op: string, what: string): bigint {
  if (value < 0n || value > 0xffff_ffff_ffff_ffffn) {
    throw new BitmapError(ErrorCode.OVERFLOW, op, `${what} ${hex(value)} is not a u64`);
  }
  return BigInt.asIntN(64, value);
}

/** An i64 from the ABI read back as the u64 it stands for. */
export function fromU64(value: bigint): bigint {
  return BigInt.asUintN(64, value);
}

export function hex(value: bigint): string {
  return value < 0n ? `-0x${(-value).toString(16)}` : `0x${value.toString(16)}`;
}

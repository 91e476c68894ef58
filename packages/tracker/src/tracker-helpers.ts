// Small helpers the tracker's modules share: ranges, counts, kernel errors (bigint min/max/align
// and hex come from @vfio-dirty/vfio-adapter/util).

import { VfioError } from "@vfio-dirty/vfio-adapter";
import { hex } from "@vfio-dirty/vfio-adapter/util";
import { type IovaRange, mergeOverlapping } from "./ranges.ts";

export function hexRange(iova: bigint, length: bigint): string {
  return `${hex(iova)}+${hex(length)}`;
}

export function covers(space: readonly IovaRange[], r: IovaRange): boolean {
  let at = r.iova;
  for (const s of mergeOverlapping(space)) {
    if (s.iova <= at && at < s.iova + s.length) at = s.iova + s.length;
    if (at >= r.iova + r.length) return true;
  }
  return at >= r.iova + r.length;
}

export function sum(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}

export function bitsOf(w: IovaRange, pageSize: bigint): number {
  return Number((w.length + pageSize - 1n) / pageSize);
}

export function checkAligned(op: string, pageSize: bigint, iova: bigint, gpa: bigint, length: bigint): void {
  if (length <= 0n || iova < 0n || gpa < 0n || iova % pageSize || gpa % pageSize || length % pageSize)
    throw new RangeError(`${op}: iova, gpa and length must be page aligned and length > 0`);
}

export function cmp(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** An error from the kernel (the adapter's VfioError, or anything carrying an errno). */
export function isKernelError(e: unknown): boolean {
  return e instanceof VfioError || errnoOf(e) !== undefined;
}

/** The kernel call an error names (the adapter's IoctlError carries it as `op`). */
export function callOf(e: unknown): string | undefined {
  const op = (e as { op?: unknown } | null)?.op;
  return typeof op === "string" ? op : undefined;
}

export function errnoOf(e: unknown): number | undefined {
  const n = (e as { errno?: unknown } | null)?.errno;
  return typeof n === "number" ? n : undefined;
}

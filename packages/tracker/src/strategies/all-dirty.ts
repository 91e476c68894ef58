// The fallback strategy: nothing tracks, so every page is dirty on every sync (QEMU's
// enable-migration=on without dirty tracking). Also what a unit degrades to after a failure
// it could not recover from.

import type { Bitmap } from "../bitmap.ts";
import type { IovaRange } from "../ranges.ts";
import type { DirtyStrategy } from "../strategy.ts";

export class AllDirtyStrategy implements DirtyStrategy {
  readonly name = "all-dirty" as const;
  readonly kernelBytes = 0;

  start(_ranges: readonly IovaRange[]): void {}

  stop(): void {}

  query(iova: bigint, length: bigint, into: Bitmap): void {
    setRange(into, iova, length);
  }
}

/**
 * Set every bit of `into` that overlaps [iova, iova + length), clipped to the bitmap. Rounds
 * outwards: a partly covered page is dirty.
 */
export function setRange(into: Bitmap, iova: bigint, length: bigint): void {
  const end = into.base + BigInt(into.nbits) * into.pageSize;
  const lo = iova > into.base ? iova : into.base;
  const hi = iova + length < end ? iova + length : end;
  if (hi <= lo) return;
  const first = (lo - into.base) / into.pageSize;
  const last = (hi - into.base + into.pageSize - 1n) / into.pageSize;
  into.set(Number(first), Number(last - first));
}

// Placing a scratch bitmap's bits into the caller's bitmap, by address, through bitmap-wasm.
// Strategies read into a scratch bitmap when the kernel cannot write in place (type1 overwrites
// whole words; a device logging at another page size; a piece not on a word boundary).

import type { Bitmap, BitmapCore } from "../bitmap.ts";

/** OR `src` into `dst` by address (same page size: a shifted OR; else a conversion). */
export function orPlaced(core: BitmapCore, src: Bitmap, dst: Bitmap): void {
  if (src.pageSize === dst.pageSize && src.base >= dst.base) {
    const at = (src.base - dst.base) / dst.pageSize;
    if ((src.base - dst.base) % dst.pageSize === 0n && at + BigInt(src.nbits) <= BigInt(dst.nbits)) {
      dst.orFrom(src, 0, Number(at), src.nbits);
      return;
    }
  }
  core.convert(src, dst);
}

// Getting the kernel's bits into the caller's bitmap. Where the range starts on a word of the
// caller's bitmap, the kernel writes straight into its words in wasm memory (zero copy, `wordView`);
// otherwise strategies read into a scratch bitmap and OR it in by address (`viaScratch`): type1
// overwrites whole words, a device may log at another page size, a piece may not start on a word.

import type { Bitmap, BitmapCore } from "../bitmap.ts";

/**
 * The bytes of `into`'s words for [iova, iova + length) at `into`'s page size, when the range
 * starts on a u64 word of `into` and ends inside it; else undefined. A fresh view each call: wasm
 * memory may have grown since the last one (old views are then detached).
 */
export function wordView(into: Bitmap, iova: bigint, length: bigint): Uint8Array | undefined {
  const P = into.pageSize;
  const offset = iova - into.base;
  if (offset < 0n || offset % (64n * P) !== 0n || iova + length > into.base + BigInt(into.nbits) * P)
    return undefined;
  const firstByte = Number(offset / P / 8n);
  const nbytes = Number(((length / P + 63n) / 64n) * 8n);
  return into.bytes.subarray(firstByte, firstByte + nbytes);
}

/**
 * Reads through a scratch bitmap of `shape`: `read` fills it (the kernel's call), then its bits are
 * OR-ed into `into` by address. The scratch is freed on every path, also when `read` throws (then
 * nothing is placed: the caller reports the range as it must).
 */
export function viaScratch(
  core: BitmapCore,
  shape: { nbits: number; pageSize: bigint; base: bigint },
  into: Bitmap,
  read: (scratch: Bitmap) => void,
): void {
  const scratch = core.bitmap(shape);
  try {
    read(scratch);
    orPlaced(core, scratch, into);
  } finally {
    scratch.free();
  }
}

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

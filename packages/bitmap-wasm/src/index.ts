// The public surface of @vfio-dirty/bitmap-wasm: a runtime-neutral loader and typed wrappers
// over the raw ABI of build/bitmap.wasm (ABI.md). No Node-only imports here: Node callers use
// "@vfio-dirty/bitmap-wasm/node" to find the .wasm beside the package.
//
//   const core = await loadBitmapCore(await fetch(wasmUrl));     // or bytes, a URL, a Module
//   using dirty = core.bitmap({ nbits: 1 << 20, pageSize: 4096n, base: 0n });
//   host.ioctl(fd, req, encode({ data: host.addressOf(dirty.bytes) }));  // kernel writes in place
//   for (const [start, length] of dirty.runs()) ...

export {
  ABI_VERSION,
  BITMAP_MAX_NBITS,
  Bitmap,
  BitmapCore,
  type BitmapExports,
  type BitmapOptions,
  type BitmapSource,
  type ConvertResult,
  instantiateBitmapCoreSync,
  loadBitmapCore,
  type TranslateResult,
  type XlatMapping,
  XlatTable,
} from "./core.ts";
export { BitmapError, ErrorCode, type ErrorCodeName, errorCodeName } from "./errors.ts";

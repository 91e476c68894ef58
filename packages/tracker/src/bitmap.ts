// The part of @vfio-dirty/bitmap-wasm the tracker uses, as structural interfaces.
//
// Why not import the classes' types directly: bitmap-wasm's Bitmap is a class with private
// fields, which TypeScript types nominally, so no stand-in could be passed. The tests run the
// tracker on the real wasm core and, as a reference model, on a naive TypeScript core
// (test/ref-core.ts); test/bitmap-types.test.ts checks that the real core satisfies these types.

/** A dirty bitmap in wasm memory: bit i stands for [base + i * pageSize, base + (i + 1) * pageSize). */
export interface Bitmap {
  readonly nbits: number;
  readonly pageSize: bigint;
  readonly base: bigint;
  /** Byte offset of word 0 in wasm memory. */
  readonly ptr: number;
  /** Whole u64 words, in bytes. */
  readonly byteLength: number;
  /** Live view of the words (re-derive after memory.grow; hand it to host.addressOf). */
  readonly bytes: Uint8Array;
  set(start: number, n: number): void;
  clear(start: number, n: number): void;
  test(bit: number): boolean;
  fill(value: boolean): void;
  count(start?: number, n?: number): number;
  nextSet(from: number): number;
  nextClear(from: number): number;
  orFrom(src: Bitmap, srcStart: number, dstStart: number, n: number): void;
  andNotFrom(src: Bitmap, srcStart: number, dstStart: number, n: number): void;
  takeAndClear(into: Bitmap): void;
  runs(from?: number): Iterable<[number, number]>;
  free(): void;
  [Symbol.dispose](): void;
}

/** IOVA-to-GPA translation table. */
export interface XlatTable {
  map(iova: bigint, gpa: bigint, length: bigint): void;
  /** Move active mappings inside the range to "removed" (they keep translating); returns bytes moved. */
  unmap(iova: bigint, length: bigint): bigint;
  /** Drop removed mappings; returns how many. */
  retire(): number;
  /** OR srcIova into dstGpa; with `copy`, write each mapping's GPA pages (mappings must share no GPA page). */
  translate(
    srcIova: Bitmap,
    dstGpa: Bitmap,
    opts?: { copy?: boolean },
  ): { unmappedPages: number | bigint; outsidePages?: number | bigint; copiedPages?: number | bigint };
  /** Clear the pages of dstGpa that no mapping (active or removed) maps to. */
  clearUnmappedGpa(dstGpa: Bitmap): void;
  free(): void;
}

export interface BitmapCore {
  bitmap(opts: { nbits: number; pageSize?: bigint; base?: bigint }): Bitmap;
  /** OR src into dst by address; returns the number of src pages not entirely inside dst's span. */
  convert(src: Bitmap, dst: Bitmap): { outsidePages: number };
  density(bitmap: Bitmap, buckets: number): number[];
  xlatTable(pageSize?: bigint): XlatTable;
}

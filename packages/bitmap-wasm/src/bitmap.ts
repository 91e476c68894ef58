// A dirty bitmap living in wasm memory: the kernel's format (u64 words, bit p % 64 of word p / 64
// is page p at base + p * pageSize), with typed methods over the raw bitmap_* exports.
//
//   using bm = core.bitmap({ nbits: 512, pageSize: 4096n, base: 0x10000n });
//   bm.set(3, 10); bm.count() === 10; bm.nextSet(0) === 3; [...bm.runs()] -> [[3, 10]]
//   kernel: host.addressOf(bm.bytes) is where the kernel writes; re-derive it after memory.grow.

import { type BitmapExports, bits, check, checkBig, fromU64, hex } from "./abi.ts";
import { BitmapError, ErrorCode } from "./errors.ts";

/** Scratch space in wasm memory, shared by a core's wrappers (runs, density, stats). */
export interface Scratch {
  /** Pointer to at least `nbytes` bytes (may move when it grows; call again after any allocation). */
  get(nbytes: number): number;
}

/** Runs fetched per call of bitmap_runs; 16 bytes each. */
const RUNS_BATCH = 1024;

export class Bitmap implements Disposable {
  /** Number of pages (bits). */
  readonly nbits: number;
  /** Bytes per page. */
  readonly pageSize: bigint;
  /** Address of bit 0. */
  readonly base: bigint;
  /** Bytes of whole u64 words holding the bits (ceil(nbits / 64) * 8). */
  readonly byteLength: number;
  /** The raw handle for the bitmap_* exports. */
  readonly handle: number;
  /** Byte offset of word 0 in wasm memory; stable for the bitmap's life (memory.grow keeps offsets). */
  readonly ptr: number;
  #freed = false;

  /** @internal Created by BitmapCore.bitmap(). */
  constructor(
    private readonly x: BitmapExports,
    private readonly scratch: Scratch,
    handle: number,
  ) {
    this.handle = handle;
    this.nbits = Number(x.bitmap_nbits(handle));
    this.pageSize = x.bitmap_page_size(handle);
    this.base = fromU64(x.bitmap_base(handle));
    this.byteLength = Math.ceil(this.nbits / 64) * 8;
    this.ptr = x.bitmap_data(handle) >>> 0;
  }

  /**
   * A live view of the words in wasm memory. A new view on every access, so it is current; a view
   * (or a native address taken from it) you keep goes stale when memory grows (any allocation).
   */
  get bytes(): Uint8Array {
    this.#live("bitmap.bytes");
    return new Uint8Array(this.x.memory.buffer, this.ptr, this.byteLength);
  }

  /** The same words as BigUint64Array (the kernel's u64 view); same staleness rule as `bytes`. */
  get words(): BigUint64Array {
    this.#live("bitmap.words");
    return new BigUint64Array(this.x.memory.buffer, this.ptr, this.byteLength / 8);
  }

  /** Whether free() was called. */
  get freed(): boolean {
    return this.#freed;
  }

  set(start: number, n: number): void {
    this.#range("bitmap.set", start, n, (s, c) => this.x.bitmap_set_range(this.#h("bitmap.set"), s, c));
  }

  clear(start: number, n: number): void {
    this.#range("bitmap.clear", start, n, (s, c) => this.x.bitmap_clear_range(this.#h("bitmap.clear"), s, c));
  }

  test(bit: number): boolean {
    const op = "bitmap.test";
    const r = this.x.bitmap_test(this.#h(op), bits(bit, op, "bit"));
    return check(r, op, () => `bit ${bit} ${this.#what()}`) === 1;
  }

  fill(value: boolean): void {
    const op = "bitmap.fill";
    check(this.x.bitmap_fill(this.#h(op), value ? 1 : 0), op, () => `${value} ${this.#what()}`);
  }

  /** Set bits in [start, start + n); the whole bitmap by default. */
  count(start = 0, n = this.nbits - start): number {
    const op = "bitmap.count";
    const r = this.x.bitmap_count(this.#h(op), bits(start, op, "start"), bits(n, op, "n"));
    return checkBig(r, op, () => `start ${start}, n ${n} ${this.#what()}`);
  }

  /** First set bit >= from, or -1. */
  nextSet(from = 0): number {
    const op = "bitmap.nextSet";
    const r = checkBig(
      this.x.bitmap_next_set(this.#h(op), bits(from, op, "from")),
      op,
      () => `from ${from} ${this.#what()}`,
    );
    return r >= this.nbits ? -1 : r;
  }

  /** First clear bit >= from, or -1. */
  nextClear(from = 0): number {
    const op = "bitmap.nextClear";
    const r = checkBig(
      this.x.bitmap_next_clear(this.#h(op), bits(from, op, "from")),
      op,
      () => `from ${from} ${this.#what()}`,
    );
    return r >= this.nbits ? -1 : r;
  }

  /** this[dstStart + i] |= src[srcStart + i] for i < n (n defaults to what fits both). */
  orFrom(
    src: Bitmap,
    srcStart = 0,
    dstStart = 0,
    n = Math.min(src.nbits - srcStart, this.nbits - dstStart),
  ): void {
    this.#merge("bitmap.orFrom", src, srcStart, dstStart, n, this.x.bitmap_or_from);
  }

  /** this[dstStart + i] &= ~src[srcStart + i] for i < n: clear what src has set. */
  andNotFrom(
    src: Bitmap,
    srcStart = 0,
    dstStart = 0,
    n = Math.min(src.nbits - srcStart, this.nbits - dstStart),
  ): void {
    this.#merge("bitmap.andNotFrom", src, srcStart, dstStart, n, this.x.bitmap_andnot_from);
  }

  /** Copy bits [start, start + n) into the same bits of `into` (overwriting) and zero them here. */
  takeAndClear(into: Bitmap, start = 0, n = this.nbits - start): void {
    const op = "bitmap.takeAndClear";
    const r = this.x.bitmap_take_and_clear(
      this.#h(op),
      into.#h(op),
      bits(start, op, "start"),
      bits(n, op, "n"),
    );
    check(r, op, () => `start ${start}, n ${n}, ${this.#what()} into ${into.nbits} bits`);
  }

  /** Maximal runs of set bits at or after `from`, as [start, length]. Do not free the bitmap mid-way. */
  *runs(from = 0): Generator<[start: number, length: number], void, undefined> {
    const op = "bitmap.runs";
    let pos = bits(from, op, "from");
    for (;;) {
      const out = this.scratch.get(RUNS_BATCH * 16);
      const got = check(
        this.x.bitmap_runs(this.#h(op), pos, out, RUNS_BATCH),
        op,
        () => `from ${pos} ${this.#what()}`,
      );
      // Copy the batch out before yielding: the caller may allocate (and grow memory) in between.
      const batch = new BigUint64Array(this.x.memory.buffer, out, got * 2).slice();
      for (let i = 0; i < got; i++) yield [Number(batch[2 * i]), Number(batch[2 * i + 1])];
      if (got < RUNS_BATCH) return;
      pos = batch[2 * got - 2]! + batch[2 * got - 1]!;
    }
  }

  free(): void {
    if (this.#freed) return;
    check(this.x.bitmap_free(this.handle), "bitmap.free", () => this.#what());
    this.#freed = true;
  }

  [Symbol.dispose](): void {
    this.free();
  }

  /** @internal The handle, after checking the bitmap is not freed. */
  _handle(op: string): number {
    return this.#h(op);
  }

  #h(op: string): number {
    this.#live(op);
    return this.handle;
  }

  #live(op: string): void {
    if (this.#freed)
      throw new BitmapError(ErrorCode.BAD_HANDLE, op, `bitmap of ${this.nbits} bits was freed`);
  }

  #what(): string {
    return `on bitmap of ${this.nbits} bits, pageSize ${this.pageSize}, base ${hex(this.base)}`;
  }

  #range(op: string, start: number, n: number, call: (s: bigint, c: bigint) => number): void {
    const r = call(bits(start, op, "start"), bits(n, op, "n"));
    check(r, op, () => `start ${start}, n ${n} ${this.#what()}`);
  }

  #merge(
    op: string,
    src: Bitmap,
    srcStart: number,
    dstStart: number,
    n: number,
    fn: (dst: number, src: number, s: bigint, d: bigint, n: bigint) => number,
  ): void {
    const r = fn(
      this.#h(op),
      src.#h(op),
      bits(srcStart, op, "srcStart"),
      bits(dstStart, op, "dstStart"),
      bits(n, op, "n"),
    );
    check(
      r,
      op,
      () => `srcStart ${srcStart}, dstStart ${dstStart}, n ${n}, from ${src.nbits} bits ${this.#what()}`,
    );
  }
}

// Loading bitmap.wasm in any runtime and the BitmapCore that creates bitmaps and tables on it.
//
//   const core = await loadBitmapCore(bytes | response | url | module);
//   const a = core.bitmap({ nbits: 1 << 20 });             // 4 KiB pages at base 0
//   const b = core.bitmap({ nbits: 512, pageSize: 2n << 20n, base: 0n });
//   core.convert(a, b);                                    // coarsen 4 KiB -> 2 MiB, never loses a page
//   core.density(a, 64);                                   // 64 bucket counts

import { type BitmapExports, bits, check, REQUIRED_EXPORTS, u64 } from "./abi.ts";
import { Bitmap, type Scratch } from "./bitmap.ts";
import { BitmapError, ErrorCode } from "./errors.ts";
import { type TranslateResult, type XlatMapping, XlatTable } from "./xlat.ts";

export type { BitmapExports, TranslateResult, XlatMapping };
export { Bitmap, XlatTable };

/** The ABI version this wrapper speaks (abi_version() of the module). */
export const ABI_VERSION = 1;

/**
 * Most bits one bitmap can have (BITMAP_MAX_NBITS of the ABI): its words must fit one allocation
 * below 4 GiB. 128 TiB of guest at 4 KiB pages; cover more in windows (README "Limits").
 */
export const BITMAP_MAX_NBITS = 2 ** 35 - 2 ** 20;

/** What loadBitmapCore accepts: the .wasm bytes, a fetch Response, a URL to fetch, or a compiled Module. */
export type BitmapSource = ArrayBuffer | ArrayBufferView | Response | URL | WebAssembly.Module;

export interface BitmapOptions {
  /** Number of pages (bits). */
  nbits: number;
  /** Bytes per page, a power of two from 512 to 2^30; default 4096n. */
  pageSize?: bigint;
  /** Address of bit 0, a multiple of pageSize; default 0n. */
  base?: bigint;
}

export interface ConvertResult {
  /** Dirty source pages not entirely inside the destination's span (cover them with another window). */
  outsidePages: number;
}

/** Load and instantiate bitmap.wasm; runs in Node, Bun, Deno and browsers. */
export async function loadBitmapCore(source: BitmapSource): Promise<BitmapCore> {
  if (source instanceof WebAssembly.Module) return wrap(await WebAssembly.instantiate(source, {}));
  if (source instanceof URL) return loadBitmapCore(await fetchBytes(source));
  if (typeof Response !== "undefined" && source instanceof Response) {
    return loadBitmapCore(new Uint8Array(await source.arrayBuffer()));
  }
  const module = await WebAssembly.compile(toBytes(source as ArrayBuffer | ArrayBufferView));
  return wrap(await WebAssembly.instantiate(module, {}));
}

/** Synchronous instantiation from bytes or a Module (Node, Bun, Deno, workers). */
export function instantiateBitmapCoreSync(
  source: ArrayBuffer | ArrayBufferView | WebAssembly.Module,
): BitmapCore {
  const module = source instanceof WebAssembly.Module ? source : new WebAssembly.Module(toBytes(source));
  return wrap(new WebAssembly.Instance(module, {}));
}

export class BitmapCore {
  #scratchPtr = 0;
  #scratchBytes = 0;
  readonly #scratch: Scratch = { get: (nbytes) => this.#scratchGet(nbytes) };

  /** @internal Use loadBitmapCore(). */
  constructor(
    /** The raw exports, for code that calls the ABI directly. */
    readonly exports: BitmapExports,
  ) {}

  get memory(): WebAssembly.Memory {
    return this.exports.memory;
  }

  /** Bytes held by live allocations (for leak checks). */
  get usedBytes(): number {
    return Number(this.exports.mem_used_bytes());
  }

  /** A zeroed bitmap. Allocating may grow memory: re-derive views and addresses of other bitmaps after it. */
  bitmap({ nbits, pageSize = 4096n, base = 0n }: BitmapOptions): Bitmap {
    const op = "core.bitmap";
    const h = this.exports.bitmap_new(
      bits(nbits, op, "nbits"),
      u64(pageSize, op, "pageSize"),
      u64(base, op, "base"),
    );
    if (h === 0) {
      throw new BitmapError(
        this.exports.abi_last_error(),
        op,
        `nbits ${nbits}, pageSize ${pageSize}, base 0x${base.toString(16)}`,
      );
    }
    return new Bitmap(this.exports, this.#scratch, h >>> 0);
  }

  /** A translation table for mappings aligned to pageSize (default 4096n). */
  xlatTable(pageSize = 4096n): XlatTable {
    const op = "core.xlatTable";
    const t = this.exports.xlat_new(u64(pageSize, op, "pageSize"));
    if (t === 0) throw new BitmapError(this.exports.abi_last_error(), op, `pageSize ${pageSize}`);
    return new XlatTable(this.exports, this.#scratch, t >>> 0, pageSize);
  }

  /** OR src into dst by address, for any two page sizes; a dirty page is never lost. */
  convert(src: Bitmap, dst: Bitmap): ConvertResult {
    const op = "core.convert";
    const r = this.exports.bitmap_convert(src._handle(op), dst._handle(op));
    if (r < 0n) {
      throw new BitmapError(
        Number(r),
        op,
        `src pageSize ${src.pageSize} base 0x${src.base.toString(16)}, dst pageSize ${dst.pageSize} base 0x${dst.base.toString(16)}`,
      );
    }
    return { outsidePages: Number(r) };
  }

  /** Set-bit counts of `buckets` equal parts of [start, start + n) (the whole bitmap by default). */
  density(bitmap: Bitmap, buckets: number, start = 0, n = bitmap.nbits - start): number[] {
    const op = "core.density";
    if (!Number.isSafeInteger(buckets) || buckets <= 0 || buckets > 0x7fff_ffff) {
      throw new BitmapError(ErrorCode.BAD_ARGUMENT, op, `buckets ${buckets}`);
    }
    const out = this.#scratchGet(buckets * 8);
    const h = bitmap._handle(op);
    const r = this.exports.bitmap_density(h, bits(start, op, "start"), bits(n, op, "n"), out, buckets);
    check(r, op, () => `start ${start}, n ${n}, buckets ${buckets} on bitmap of ${bitmap.nbits} bits`);
    return Array.from(new BigUint64Array(this.exports.memory.buffer, out, buckets), Number);
  }

  /** One scratch block in wasm memory, grown on demand (never shrinks; freed with nothing else). */
  #scratchGet(nbytes: number): number {
    if (nbytes <= this.#scratchBytes) return this.#scratchPtr;
    if (this.#scratchPtr !== 0) this.exports.mem_free(this.#scratchPtr);
    this.#scratchPtr = 0;
    this.#scratchBytes = 0;
    const p = this.exports.mem_alloc(nbytes) >>> 0;
    if (p === 0) throw new BitmapError(this.exports.abi_last_error(), "core.scratch", `${nbytes} bytes`);
    this.#scratchPtr = p;
    this.#scratchBytes = nbytes;
    return p;
  }
}

// --- Internal helpers ---

function wrap(instance: WebAssembly.Instance): BitmapCore {
  const x = instance.exports as unknown as BitmapExports;
  for (const name of REQUIRED_EXPORTS) {
    if (!(name in x)) throw new Error(`bitmap.wasm lacks export ${name}: rebuild @vfio-dirty/bitmap-wasm`);
  }
  const version = x.abi_version();
  if (version !== ABI_VERSION)
    throw new Error(`bitmap.wasm speaks ABI ${version}, this wrapper ABI ${ABI_VERSION}`);
  return new BitmapCore(x);
}

function toBytes(source: ArrayBuffer | ArrayBufferView): Uint8Array<ArrayBuffer> {
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  const view = new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  // WebAssembly compiles from an ArrayBuffer-backed view; copy anything else (SharedArrayBuffer).
  return view.buffer instanceof ArrayBuffer ? (view as Uint8Array<ArrayBuffer>) : view.slice();
}

async function fetchBytes(url: URL): Promise<Uint8Array<ArrayBuffer>> {
  if (url.protocol === "file:" && isNodeWithoutFileFetch()) {
    // Node's fetch does not read file: URLs (Bun's and Deno's do). A dynamic import keeps this
    // module free of Node-only static imports for bundlers and browsers.
    const fs = await import("node:fs/promises");
    return new Uint8Array(await fs.readFile(url));
  }
  const res = await fetch(url);
  if (!res.ok) throw new Error(`fetching ${url.href}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

function isNodeWithoutFileFetch(): boolean {
  const g = globalThis as { process?: { versions?: Record<string, string | undefined> }; Deno?: unknown };
  const versions = g.process?.versions;
  return versions?.node !== undefined && versions.bun === undefined && g.Deno === undefined;
}

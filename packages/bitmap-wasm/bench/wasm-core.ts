// The AssemblyScript core as the benchmark sees it: build/bitmap.wasm instantiated with no imports and
// called through its raw exports (ABI.md), exactly as Bun, Deno or a browser would, so the figures
// measure the wasm code and not the TypeScript wrapper.
//
//   const core = await loadRawCore();
//   const bm = core.newBitmap(nbits, 4096n);   // handle; core.dataPtr(bm) is word 0
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "./paths.ts";

/** The raw exports the benchmark calls (names and signatures from ABI.md). */
export interface RawExports {
  readonly memory: WebAssembly.Memory;
  abi_version(): number;
  abi_last_error(): number;
  mem_alloc(nbytes: number): number;
  mem_free(ptr: number): number;
  bitmap_new(nbits: bigint, pageSize: bigint, base: bigint): number;
  bitmap_free(bm: number): number;
  bitmap_data(bm: number): number;
  bitmap_count(bm: number, start: bigint, n: bigint): bigint;
  bitmap_or_from(dst: number, src: number, srcStart: bigint, dstStart: bigint, n: bigint): number;
  bitmap_take_and_clear(src: number, dst: number, start: bigint, n: bigint): number;
  bitmap_runs(bm: number, from: bigint, out: number, maxRuns: number): number;
  bitmap_convert(src: number, dst: number): bigint;
  xlat_new(pageSize: bigint): number;
  xlat_free(t: number): number;
  xlat_map(t: number, iova: bigint, gpa: bigint, length: bigint): number;
  xlat_translate(t: number, src: number, dst: number, stats: number): number;
}

/** The raw exports without the memory object: what a core outside V8 (wasm2c) offers too. */
export type RawFunctions = Omit<RawExports, "memory">;

/** Thin checked helpers over the raw exports of any engine. */
export interface CoreHelpers<E extends RawFunctions = RawFunctions> {
  readonly exports: E;
  readonly wasmPath: string;
  readonly wasmBytes: number;
  /** Allocates a zeroed bitmap; throws with the ABI error code on failure. */
  newBitmap(nbits: number, pageSize: bigint): number;
  /** Byte offset of word 0 (unsigned). */
  dataPtr(bm: number): number;
  /** Allocates zeroed bytes; throws on failure. */
  alloc(nbytes: number): number;
  /** Throws if a status/value return is a negative ABI error code. */
  check(what: string, status: number | bigint): void;
}

/** The core instantiated by V8, as the benchmark's `wasm` column calls it. */
export type RawCore = CoreHelpers<RawExports>;

/** Path of the built module (npm run build:wasm). */
export function wasmPath(): string {
  return join(packageRoot, "build", "bitmap.wasm");
}

export async function loadRawCore(): Promise<RawCore> {
  const path = wasmPath();
  const bytes = readFileSync(path);
  const { instance } = await WebAssembly.instantiate(bytes, {});
  if (WebAssembly.Module.imports(new WebAssembly.Module(bytes)).length !== 0) {
    throw new Error(`${path} has imports; the raw ABI promises none`);
  }
  const ex = instance.exports as unknown as RawExports;
  const missing = REQUIRED.filter(
    (name) => typeof (ex as unknown as Record<string, unknown>)[name] !== "function",
  );
  if (missing.length > 0) throw new Error(`${path} lacks raw exports: ${missing.join(", ")} (see ABI.md)`);
  return coreHelpers(ex, path, bytes.length);
}

/** The checked helpers over a set of raw exports (V8's instance, or wasm2c's through koffi). */
export function coreHelpers<E extends RawFunctions>(ex: E, path: string, wasmBytes: number): CoreHelpers<E> {
  const check = (what: string, status: number | bigint): void => {
    if (status < 0) throw new Error(`${what} failed with ABI error ${status}`);
  };
  return {
    exports: ex,
    wasmPath: path,
    wasmBytes,
    newBitmap(nbits, pageSize) {
      const bm = ex.bitmap_new(BigInt(nbits), pageSize, 0n);
      if (bm === 0)
        throw new Error(`bitmap_new(${nbits}, ${pageSize}) failed with ABI error ${ex.abi_last_error()}`);
      return bm;
    },
    dataPtr: (bm) => ex.bitmap_data(bm) >>> 0,
    alloc(nbytes) {
      const ptr = ex.mem_alloc(nbytes);
      if (ptr === 0) throw new Error(`mem_alloc(${nbytes}) failed with ABI error ${ex.abi_last_error()}`);
      return ptr >>> 0;
    },
    check,
  };
}

/** The raw exports the benchmark calls, by name. */
export const REQUIRED = [
  "abi_version",
  "abi_last_error",
  "mem_alloc",
  "mem_free",
  "bitmap_new",
  "bitmap_free",
  "bitmap_data",
  "bitmap_count",
  "bitmap_or_from",
  "bitmap_take_and_clear",
  "bitmap_runs",
  "bitmap_convert",
  "xlat_new",
  "xlat_free",
  "xlat_map",
  "xlat_translate",
] as const;

// Native C baselines: compiles native/bitmap-ops.c with the system's `cc -O3 -march=native` at bench
// time (into native/, gitignored) and binds it through koffi. Every function takes raw u64 addresses,
// so C runs on the very same wasm memory as the AssemblyScript core (koffi.address(memory.buffer)
// + wasm pointer): same bytes, same pages, no copies.
//
//   const c = loadNative();
//   c.count(addr, 0n, nbits);
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import koffi from "koffi";
import { benchDir } from "./paths.ts";

/** Compiler command line, recorded in the report. */
export const CC_FLAGS = ["-O3", "-march=native", "-shared", "-fPIC", "-Wall", "-Wextra"] as const;

/** Bindings to bitmap-ops.c; addresses and bit positions are u64 (bigint). */
export interface NativeOps {
  readonly ccVersion: string;
  orRange(dst: bigint, dstStart: bigint, src: bigint, srcStart: bigint, nbits: bigint): void;
  count(addr: bigint, start: bigint, nbits: bigint): number;
  takeAndClear(src: bigint, into: bigint, nwords: bigint): void;
  coarsen4k2m(dst: bigint, src: bigint, ncoarseBits: bigint): void;
  coarsen4k64k(dst: bigint, src: bigint, ncoarseBits: bigint): void;
  expand64k4k(dst: bigint, src: bigint, nfineWords: bigint): void;
  /** Lists every run through a buffer of `cap` pairs; returns the run count and summed length. */
  runsAll(addr: bigint, nbits: bigint, buf: bigint, cap: bigint): { runs: number; totalLength: number };
  translate(src: bigint, dst: bigint, maps: bigint, nmaps: bigint): void;
  memcpy(dst: bigint, src: bigint, nbytes: bigint): void;
  fillRandom(addr: bigint, nwords: bigint, seed: bigint): void;
  fillSparse(addr: bigint, nbits: bigint, nset: bigint, seed: bigint): void;
  memset(addr: bigint, value: number, nbytes: bigint): void;
  /** u64 number `k` at `addr`. */
  word(addr: bigint, k: bigint): bigint;
  /** Order-sensitive digest of `nwords` words (validation, not timed). */
  hash(addr: bigint, nwords: bigint): bigint;
}

/** Compiles the C baselines (a few hundred ms) and loads them. Throws if no `cc` is installed. */
export function loadNative(): NativeOps {
  const nativeDir = join(benchDir, "native");
  const source = join(nativeDir, "bitmap-ops.c");
  const lib = join(nativeDir, "bitmap-ops.so");
  try {
    execFileSync("cc", [...CC_FLAGS, "-o", lib, source], { stdio: ["ignore", "inherit", "inherit"] });
  } catch (cause) {
    throw new Error(`compiling the C baselines failed (is build-essential installed?): cc ${source}`, {
      cause,
    });
  }
  const ccVersion = execFileSync("cc", ["--version"], { encoding: "utf8" }).split("\n")[0] ?? "cc";
  const so = koffi.load(lib);
  const orRange = so.func("void c_or_range(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t)");
  const count = so.func("uint64_t c_count(uint64_t, uint64_t, uint64_t)");
  const takeAndClear = so.func("void c_take_and_clear(uint64_t, uint64_t, uint64_t)");
  const coarsen = so.func("void c_coarsen_4k_2m(uint64_t, uint64_t, uint64_t)");
  const coarsen16 = so.func("void c_coarsen_4k_64k(uint64_t, uint64_t, uint64_t)");
  const expand = so.func("void c_expand_64k_4k(uint64_t, uint64_t, uint64_t)");
  const runsAll = so.func("uint64_t c_runs_all(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t)");
  const translate = so.func("void c_translate(uint64_t, uint64_t, uint64_t, uint64_t)");
  const memcpy = so.func("void c_memcpy(uint64_t, uint64_t, uint64_t)");
  const fillRandom = so.func("void c_fill_random(uint64_t, uint64_t, uint64_t)");
  const fillSparse = so.func("void c_fill_sparse(uint64_t, uint64_t, uint64_t, uint64_t)");
  const memset = so.func("void c_memset(uint64_t, int, uint64_t)");
  const hash = so.func("uint64_t c_hash(uint64_t, uint64_t)");
  const word = so.func("uint64_t c_word(uint64_t, uint64_t)");
  // The summed run length comes back through this 8-byte out-parameter outside wasm memory.
  const totalLengthOut = new BigUint64Array(1);
  const totalLengthAddr = koffi.address(totalLengthOut);
  return {
    ccVersion,
    orRange: (d, ds, s, ss, n) => orRange(d, ds, s, ss, n),
    count: (a, s, n) => Number(count(a, s, n)),
    takeAndClear: (s, d, n) => takeAndClear(s, d, n),
    coarsen4k2m: (d, s, n) => coarsen(d, s, n),
    coarsen4k64k: (d, s, n) => coarsen16(d, s, n),
    expand64k4k: (d, s, n) => expand(d, s, n),
    runsAll: (a, n, buf, cap) => {
      const runs = Number(runsAll(a, n, buf, cap, totalLengthAddr));
      return { runs, totalLength: Number(totalLengthOut[0]) };
    },
    translate: (s, d, m, n) => translate(s, d, m, n),
    memcpy: (d, s, n) => memcpy(d, s, n),
    fillRandom: (a, n, seed) => fillRandom(a, n, seed),
    fillSparse: (a, n, k, seed) => fillSparse(a, n, k, seed),
    memset: (a, v, n) => memset(a, v, n),
    hash: (a, n) => BigInt(hash(a, n)),
    word: (a, k) => BigInt(word(a, k)),
  };
}

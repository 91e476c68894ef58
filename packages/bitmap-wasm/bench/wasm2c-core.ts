// The same build/bitmap.wasm outside V8, for the `wasm2c` column: translated by wasm2c, compiled
// with the system's `cc -O3 -march=native` like the C baselines, and called through koffi with raw
// pointers as a C or Rust VMM would call it. Its bitmaps live in its own linear memory; the
// benchmark mirrors every input there and checks that its answers agree with the other columns.
//
//   const w2c = loadWasm2cCore();               // undefined when no wasm2c with SIMD is installed
//   const bm = w2c.newBitmap(nbits, 4096n);     // a handle in w2c's memory; w2c.base() + dataPtr(bm)
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import koffi from "koffi";
import { CC_FLAGS } from "./native.ts";
import { benchDir, packageRoot } from "./paths.ts";
import { type CoreHelpers, coreHelpers, type RawFunctions, type REQUIRED, wasmPath } from "./wasm-core.ts";

export interface Wasm2cCore extends CoreHelpers {
  /** Address of byte 0 of this instance's linear memory. */
  base(): bigint;
  /** `wasm2c --version` and the compiler line, for the report. */
  readonly description: string;
}

/** Signatures of the exports the bench calls: result, then parameters (i = i32, I = i64). */
const SIGNATURES: Record<(typeof REQUIRED)[number], string> = {
  abi_version: "i_",
  abi_last_error: "i_",
  mem_alloc: "i_i",
  mem_free: "i_i",
  bitmap_new: "i_III",
  bitmap_free: "i_i",
  bitmap_data: "i_i",
  bitmap_count: "I_iII",
  bitmap_or_from: "i_iiIII",
  bitmap_take_and_clear: "i_iiII",
  bitmap_runs: "i_iIii",
  bitmap_convert: "I_ii",
  xlat_new: "i_I",
  xlat_free: "i_i",
  xlat_map: "i_iIII",
  xlat_translate: "i_iiii",
};

/**
 * Translates, compiles (cached by the wasm's and the flags' hash) and instantiates the core.
 * Returns undefined, with the reason, when no wasm2c with SIMD is installed.
 */
export function loadWasm2cCore(): { core?: Wasm2cCore; skipped?: string } {
  let dir: string;
  try {
    dir = execFileSync("sh", [join(packageRoot, "scripts", "fetch-wasm2c.sh"), "--installed"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    })
      .trim()
      .split("\n")
      .pop()!;
  } catch {
    return { skipped: "no wasm2c with SIMD (run packages/bitmap-wasm/scripts/fetch-wasm2c.sh)" };
  }
  const wasm = readFileSync(wasmPath());
  const flags = CC_FLAGS.filter((f) => f !== "-Wall" && f !== "-Wextra");
  const key = createHash("sha256").update(wasm).update(flags.join(" ")).digest("hex").slice(0, 16);
  const work = join(packageRoot, "node_modules", ".cache", "bench", "wasm2c", key);
  const lib = join(work, "bitmap-wasm2c.so");
  const version = execFileSync(join(dir, "bin", "wasm2c"), ["--version"], { encoding: "utf8" }).trim();
  if (!existsSync(lib)) {
    mkdirSync(work, { recursive: true });
    const c = join(work, "bitmap.c");
    writeFileSync(join(work, "bitmap.wasm"), wasm);
    execFileSync(join(dir, "bin", "wasm2c"), [join(work, "bitmap.wasm"), "-n", "bitmap", "-o", c]);
    const sources = [
      join(benchDir, "native", "wasm2c-shim.c"),
      c,
      join(dir, "src", "wasm-rt-impl.c"),
      join(dir, "src", "wasm-rt-mem-impl.c"),
    ];
    execFileSync(
      "cc",
      [...flags, "-w", "-I", work, "-I", join(dir, "include"), ...sources, "-lm", "-o", lib],
      {
        stdio: ["ignore", "inherit", "inherit"],
      },
    );
  }
  const so = koffi.load(lib);
  const instance = BigInt(so.func("uint64_t w2c_bench_new(void)")());
  if (instance === 0n) throw new Error("w2c_bench_new: out of memory");
  const memoryBase = so.func("uint64_t w2c_bench_memory_base(uint64_t)");
  const ctype = { i: "int32_t", I: "int64_t" } as const;
  const fns: Record<string, (...args: (number | bigint)[]) => number | bigint> = {};
  for (const [name, sig] of Object.entries(SIGNATURES)) {
    const [ret, params] = sig.split("_") as [keyof typeof ctype, string];
    const types = ["uint64_t", ...[...params].map((p) => ctype[p as keyof typeof ctype])];
    const f = so.func(`${ctype[ret]} w2c_bitmap_${name}(${types.join(", ")})`);
    // As the JS API gives them: i32 as a number, i64 as a bigint.
    fns[name] =
      ret === "I" ? (...args) => BigInt(f(instance, ...args)) : (...args) => Number(f(instance, ...args));
  }
  const helpers = coreHelpers(fns as unknown as RawFunctions, lib, wasm.length);
  return {
    core: {
      ...helpers,
      base: () => BigInt(memoryBase(instance)),
      description: `wasm2c ${version} (${dir}), cc ${flags.slice(0, 2).join(" ")}`,
    },
  };
}

// Node helpers: find build/bitmap.wasm beside this package and load it synchronously.
//
//   import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
//   const core = loadBitmapCoreSync();

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type BitmapCore, instantiateBitmapCoreSync } from "./core.ts";

/** Absolute path of build/bitmap.wasm (from dist/ or src/, both one level below the package root). */
export function wasmPath(): string {
  return fileURLToPath(new URL("../build/bitmap.wasm", import.meta.url));
}

/** Compile and instantiate the package's bitmap.wasm synchronously. */
export function loadBitmapCoreSync(): BitmapCore {
  return instantiateBitmapCoreSync(readFileSync(wasmPath()));
}

export * from "./index.ts";

// Command-line driver of abi-check.js for Node, Bun and Deno (all three provide node:fs and
// node:process): `node run-check.js build/bitmap.wasm`. Prints one line
// `ABI_CHECK_RESULT {json}` for the test to parse, and exits 1 when any check failed.
import { readFileSync } from "node:fs";
import process from "node:process";
import { checkAbi } from "./abi-check.js";

const path = process.argv[2];
if (!path) {
  console.error("usage: run-check.js <bitmap.wasm>");
  process.exit(2);
}
const result = await checkAbi(readFileSync(path));
console.log(`ABI_CHECK_RESULT ${JSON.stringify(result)}`);
process.exit(result.ok ? 0 : 1);

// Raw dirty-bitmap files: little-endian u64 words, bit i = page i (the kernel's format), with the
// page size and the address of bit 0 supplied by the user, since the file does not carry them.
//
//   const core = await bitmapCore();
//   const input = parseInputSpec("a.bin,base=0x100000000", { pageSize: 4096n, base: 0n });
//   using bm = readBitmapFile(core, input);     // validated, copied into wasm memory
//   writeBitmapFile("out.bin", bm);
//
// The bytes go into wasm memory in one copy; no JS loop ever looks at a bit.

import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { BITMAP_MAX_NBITS, type Bitmap, type BitmapCore } from "@vfio-dirty/bitmap-wasm";
import { InternalError } from "@vfio-dirty/vfio-adapter";
import { UsageError } from "./errors.ts";
import { formatBytes, hex } from "./format/units.ts";
import { parseAddress, parsePageSize, U64_MAX } from "./parse/size.ts";

/** A bitmap file and where it sits in the address space. */
export interface BitmapInput {
  path: string;
  pageSize: bigint;
  base: bigint;
}

let core: BitmapCore | undefined;

/**
 * The one bitmap-wasm instance of this process, loaded on first use so that commands without
 * bitmaps (predict, --help) never instantiate the module.
 */
export async function bitmapCore(): Promise<BitmapCore> {
  if (!core) {
    const { loadBitmapCoreSync } = await import("@vfio-dirty/bitmap-wasm/node");
    core = loadBitmapCoreSync();
  }
  return core;
}

/**
 * "FILE[,page-size=SIZE][,base=ADDR]": the suffixes override `defaults` for this one input, so
 * inputs of one command can differ (merge). A path with a comma is given as "FILE," + suffixes.
 */
export function parseInputSpec(spec: string, defaults: { pageSize: bigint; base: bigint }): BitmapInput {
  const parts = spec.split(",");
  let pageSize = defaults.pageSize;
  let base = defaults.base;
  // Only trailing key=value parts are options, so "my,file.bin" still names a file.
  let end = parts.length;
  while (end > 1 && /^(page-size|base)=/.test(parts[end - 1]!)) end--;
  // A trailing "key=value" with an unknown key is a typo ("pagesize=4K"), unless a file of that
  // whole name exists.
  const unknown = end > 1 ? /^([a-z][a-z0-9-]*)=/i.exec(parts[end - 1]!) : null;
  if (unknown && !existsSync(parts.slice(0, end).join(",")))
    throw new UsageError(
      `'${spec}': unknown option '${unknown[1]}='; a file takes FILE[,page-size=SIZE][,base=ADDR]`,
    );
  for (const opt of parts.slice(end)) {
    const [key, value = ""] = opt.split("=", 2) as [string, string?];
    if (key === "page-size") pageSize = parsePageSize(value, `${spec}: page-size`);
    else base = parseAddress(value, `${spec}: base`);
  }
  const path = parts.slice(0, end).join(",");
  if (path === "") throw new UsageError(`'${spec}': no file name; give FILE[,page-size=SIZE][,base=ADDR]`);
  return { path, pageSize, base };
}

/** Reads and validates a bitmap file into a new wasm bitmap (the caller frees it). */
export function readBitmapFile(core: BitmapCore, input: BitmapInput): Bitmap {
  const bytes = readInputFile(input.path);
  if (bytes.length === 0 || bytes.length % 8 !== 0)
    throw new UsageError(
      `${input.path}: ${bytes.length} bytes is not a whole number of u64 words; a bitmap file's length must be a non-zero multiple of 8`,
    );
  checkPlacement(input, bytes.length * 8);
  const bm = core.bitmap({ nbits: bytes.length * 8, pageSize: input.pageSize, base: input.base });
  bm.bytes.set(bytes);
  return bm;
}

/** Writes the bitmap's words (whole u64 words, little-endian) to `path`. */
export function writeBitmapFile(path: string, bm: Bitmap): void {
  try {
    writeFileSync(path, bm.bytes.subarray(0, bm.byteLength));
  } catch (err) {
    throw new UsageError(
      `${path}: cannot write (${(err as NodeJS.ErrnoException).code ?? err}); check the directory exists and is writable`,
      {
        cause: err,
      },
    );
  }
}

/** Reads any input file, turning a missing or unreadable file into a usage error. */
export function readInputFile(path: string): Buffer {
  // Node reads at most 2 GiB - 1 into one buffer; say so, rather than "cannot read".
  const size = statSync(path, { throwIfNoEntry: false })?.size;
  if (size !== undefined && size > MAX_READ_BYTES)
    throw new UsageError(
      `${path}: ${formatBytes(size)}, more than the 2 GiB a bitmap file may have (${MAX_READ_BYTES * 8} pages); split it into files of whole words, each with its own base`,
    );
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "no such file"
        : code === "EISDIR"
          ? "is a directory"
          : code === "EACCES"
            ? "permission denied"
            : code;
    throw new UsageError(`${path}: cannot read (${why}); check the path`, { cause: err });
  }
}

/** nbits rounded up to whole u64 words, so an output file is a valid bitmap file. */
export function wholeWords(nbits: bigint): number {
  const n = ((nbits + 63n) / 64n) * 64n;
  if (n > BigInt(MAX_FILE_NBITS))
    throw new UsageError(
      `the output would need ${n} pages; that is more than one bitmap holds (${MAX_FILE_NBITS}); use a larger page size`,
    );
  return Number(n === 0n ? 64n : n);
}

/** The most bytes one file read gives in Node (kIoMaxLength, 2 GiB - 1), rounded down to whole words. */
const MAX_READ_BYTES = 2 ** 31 - 8;

/** Largest bitmap bitmap-wasm holds: its own limit, so the two can never disagree. */
export const MAX_FILE_NBITS = BITMAP_MAX_NBITS;

/** End address (exclusive) of a bitmap's span. */
export function spanEnd(bm: { nbits: number; pageSize: bigint; base: bigint }): bigint {
  return bm.base + BigInt(bm.nbits) * bm.pageSize;
}

/**
 * The output bitmaps are sized to cover every input page, so bitmap-wasm reporting pages outside
 * them means a sizing bug here: stop rather than write a file that lost pages.
 */
export function assertNothingOutside(outsidePages: number): void {
  if (outsidePages !== 0)
    throw new InternalError(`${outsidePages} dirty pages fell outside the output bitmap (sizing bug)`);
}

// --- Internal helpers ---

function checkPlacement(input: BitmapInput, nbits: number): void {
  if (input.base % input.pageSize !== 0n)
    throw new UsageError(
      `${input.path}: base ${hex(input.base)} is not a multiple of the page size ${hex(input.pageSize)}; align --base to the page size`,
    );
  if (input.base + BigInt(nbits) * input.pageSize - 1n > U64_MAX)
    throw new UsageError(
      `${input.path}: ${nbits} pages of ${hex(input.pageSize)} from ${hex(input.base)} pass 2^64; use a lower --base or smaller --page-size`,
    );
  if (nbits > MAX_FILE_NBITS)
    throw new UsageError(
      `${input.path}: more pages than one bitmap holds (${MAX_FILE_NBITS}); split the file`,
    );
}

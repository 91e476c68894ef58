// Parsing of sizes and addresses typed by people: "4096", "4K", "2M", "1G", "0x1000", "0xfee00000".
//
// Suffixes are binary (K = 1024), because every size vfio-dirty meets is a page size or a guest
// RAM size, and nobody means 4000 bytes by "4K". "KiB"/"KB"/"k" are accepted as the same thing.
// Results are bigint: addresses go up to 2^64 - 1 and lose precision as numbers.

import { isPowerOfTwoIn } from "@vfio-dirty/vfio-adapter/util";
import { UsageError } from "../errors.ts";

export const U64_MAX = (1n << 64n) - 1n;

const UNITS: Record<string, bigint> = {
  "": 1n,
  b: 1n,
  k: 1n << 10n,
  m: 1n << 20n,
  g: 1n << 30n,
  t: 1n << 40n,
  p: 1n << 50n,
};

/**
 * A byte count: decimal or 0x hex, optionally with a K/M/G/T/P suffix (binary units).
 * `what` names the flag in the error: "--page-size '3Q': not a size; use e.g. 4096, 4K, 2M, 1G or 0x1000".
 */
export function parseSize(text: string, what: string): bigint {
  const t = text.trim();
  const m = /^(0x[0-9a-f]+|\d+)\s*([kmgtp]?)(?:i?b)?$/i.exec(t);
  if (!m) throw new UsageError(`${what} '${text}': not a size; use e.g. 4096, 4K, 2M, 1G or 0x1000`);
  const value = BigInt(m[1]!) * UNITS[(m[2] ?? "").toLowerCase()]!;
  if (value > U64_MAX)
    throw new UsageError(`${what} '${text}': larger than 2^64-1 bytes; use a smaller size`);
  return value;
}

/** Like parseSize, and also a power of two within [min, max] (page sizes). */
export function parsePageSize(text: string, what: string, min = 512n, max = 1n << 30n): bigint {
  const value = parseSize(text, what);
  if (!isPowerOfTwoIn(value, min, max))
    throw new UsageError(
      `${what} '${text}': a page size must be a power of two from ${formatSizeShort(min)} to ${formatSizeShort(max)}; use e.g. 4K or 2M`,
    );
  return value;
}

/** An address: decimal or 0x hex, 0 .. 2^64-1. No suffixes (an address is not a size). */
export function parseAddress(text: string, what: string): bigint {
  const t = text.trim();
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(t))
    throw new UsageError(`${what} '${text}': not an address; use decimal or 0x hex, e.g. 0x100000000`);
  const value = BigInt(t);
  if (value > U64_MAX) throw new UsageError(`${what} '${text}': above 2^64-1; use a 64-bit address`);
  return value;
}

/** A non-negative integer count (seeds, sample counts). */
export function parseCount(text: string, what: string, max = Number.MAX_SAFE_INTEGER): number {
  const t = text.trim();
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(t) || Number(t) > max)
    throw new UsageError(`${what} '${text}': not a whole number from 0 to ${max}`);
  return Number(t);
}

/** "4K", "2M", "1G", or the plain byte count when it is not a whole unit. */
export function formatSizeShort(value: bigint): string {
  for (const [suffix, unit] of [
    ["P", 1n << 50n],
    ["T", 1n << 40n],
    ["G", 1n << 30n],
    ["M", 1n << 20n],
    ["K", 1n << 10n],
  ] as const) {
    if (value >= unit && value % unit === 0n) return `${value / unit}${suffix}`;
  }
  return value.toString();
}

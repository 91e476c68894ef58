// The one power-of-two test behind every page-size check. Each caller keeps its own bounds (the
// kernel's 4 KiB, bitmap-wasm's 512 B to 1 GiB, a command line's range) and its own error message.

/** True when `value` is a power of two within [min, max] (defaults: any positive power of two). */
export function isPowerOfTwoIn(value: bigint, min = 1n, max?: bigint): boolean {
  if (value <= 0n || (value & (value - 1n)) !== 0n) return false;
  return value >= min && (max === undefined || value <= max);
}

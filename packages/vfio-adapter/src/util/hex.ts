// How addresses and lengths appear in messages and JSON.

/** "0x1000": an address or length as the kernel prints it (%llx), exact over the whole u64 range. */
export function hex(value: bigint | number): string {
  return `0x${value.toString(16)}`;
}

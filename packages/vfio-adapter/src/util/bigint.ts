// Math.min, Math.max and page alignment for bigint addresses (Math.min and Math.max throw on bigint).

/** The smallest of one or more bigints (`bigMin(...list)` for a list); throws on none. */
export function bigMin(...values: readonly bigint[]): bigint {
  let m = first(values, "bigMin");
  for (const v of values) if (v < m) m = v;
  return m;
}

/** The largest of one or more bigints (`bigMax(...list)` for a list); throws on none. */
export function bigMax(...values: readonly bigint[]): bigint {
  let m = first(values, "bigMax");
  for (const v of values) if (v > m) m = v;
  return m;
}

/** `value` rounded down to a multiple of `align` (any positive `align`, not only powers of two). */
export function alignDown(value: bigint, align: bigint): bigint {
  return value - (value % align);
}

/** `value` rounded up to a multiple of `align`; callers check the result still fits where it goes. */
export function alignUp(value: bigint, align: bigint): bigint {
  return ((value + align - 1n) / align) * align;
}

function first(values: readonly bigint[], what: string): bigint {
  const v = values[0];
  if (v === undefined) throw new RangeError(`${what}: no values`);
  return v;
}

// Rates typed by people, in bytes per second: "1G/s", "10GB/s", "800MiB/s", "500M" (a bare size
// means per second), and link speeds in bits: "25Gbit/s", "10Gbps", "10Gb/s" (lower-case b).
// Byte units are binary like sizes (1G/s = 2^30 B/s); bit units are decimal, as link speeds
// are quoted (25Gbit/s = 25e9 bit/s).

import { UsageError } from "../errors.ts";

const BINARY: Record<string, number> = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };
const DECIMAL: Record<string, number> = { "": 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 };

/** Bytes per second, > 0 (>= 0 with allowZero: an idle device). `what` names the flag in the error message. */
export function parseRate(text: string, what: string, opts: { allowZero?: boolean } = {}): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(iB|B|bits?|b)?(\/s|ps)?$/i.exec(text.trim());
  const unit = m?.[3];
  // "b" alone is bits only in lower case; "KB"/"kB" are bytes.
  const isBits = unit !== undefined && (/^bits?$/i.test(unit) || unit === "b");
  const scale = m ? (isBits ? DECIMAL : BINARY)[m[2]!.toLowerCase()]! : Number.NaN;
  const value = m ? (Number(m[1]) * scale) / (isBits ? 8 : 1) : Number.NaN;
  if (!Number.isFinite(value))
    throw new UsageError(
      `${what} '${text}': not a rate; use bytes per second such as 1G/s, 800M/s or 10Gbit/s`,
    );
  if (value < 0 || (value === 0 && !opts.allowZero))
    throw new UsageError(`${what} '${text}': must be more than zero`);
  return value;
}

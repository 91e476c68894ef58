// Durations typed by people: "30s", "500ms", "1.5s", "2m". A unit is required, because a bare
// "10" is seconds to some people and milliseconds to others.

import { UsageError } from "../errors.ts";

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000 };

/** Milliseconds. `what` names the flag in the error message. */
export function parseDuration(text: string, what: string, opts: { allowZero?: boolean } = {}): number {
  const m = /^(\d+(?:\.\d+)?)\s*(us|ms|s|min|m|h)$/i.exec(text.trim());
  if (!m)
    throw new UsageError(`${what} '${text}': not a duration; use a number with a unit, e.g. 30s or 500ms`);
  const ms = Number(m[1]) * UNIT_MS[m[2]!.toLowerCase()]!;
  if (!Number.isFinite(ms) || ms > 365 * 86_400_000)
    throw new UsageError(`${what} '${text}': too long; use at most a year`);
  if (ms === 0 && !opts.allowZero) throw new UsageError(`${what} '${text}': must be longer than zero`);
  return ms;
}

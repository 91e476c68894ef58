// Debian tools some tests use (promtool and prometheus from `prometheus`, rsvg-convert from
// `librsvg2-bin`; .ci/apt-packages.txt installs them). Missing under CI=true, such a test fails;
// elsewhere (a laptop without them) it is skipped, and the reason is printed.

import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

export const IN_CI = process.env.CI === "true" || process.env.CI === "1";

/** The full path of `name` on PATH, or undefined. */
export function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * The tools' paths, or, when one is missing: under CI an error, else a skip of the test with the
 * reason printed.
 */
export function needTools(names: readonly string[], pkg: string, skip: (note: string) => never): string[] {
  const found = names.map((n) => which(n));
  const missing = names.filter((_, i) => found[i] === undefined);
  if (missing.length > 0) {
    const why = `${missing.join(", ")} not on PATH (Debian package ${pkg}, listed in .ci/apt-packages.txt)`;
    if (IN_CI) throw new Error(`${why}: CI must have it`);
    console.warn(`SKIPPED: ${why}`);
    skip(why);
  }
  return found as string[];
}

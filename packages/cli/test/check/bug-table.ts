// The bug table: for each driver bug, the rules `vfio-dirty check` must fail, and no other. The
// bugs are the simulated host's dmaLogging.quirks and the real-kernel test driver's bug= values
// (tests/vm/module/edu_log_vfio.c): the same names, the same table, asserted on the simulated
// host in `npm test` (bugs.test.ts) and on the real kernel in `npm run test:vm`
// (tests/vm/scenarios/check.test.ts). "@*" stands for every page size asked for.

import type { RuleResult } from "../../src/check/run.ts";

export const BUG_TABLE = {
  // The same REPORT right after gives the same pages again.
  "no-clear": ["device.report.clears@*"],
  // The exactness scenario writes the last page of its range.
  "drop-last-page": ["device.report.exact@*"],
  // Claims 4 KiB, clears 64 KiB: a REPORT of one page takes its neighbours with it.
  "ignore-page-size": ["device.report.sub-range"],
  // The caller's bits are gone: QEMU's one bitmap for every device would lose pages.
  "zero-bitmap": ["device.report.only-sets-bits"],
  // The page past the range is reported into the caller's word, and cleared.
  "outside-range": ["device.report.outside-range", "device.report.sub-range"],
  // Ranges 5 to 8 are accepted but never logged.
  "drop-ranges": ["device.start.ranges-logged"],
  // Logging goes on: REPORT still answers, and a new START is refused.
  "stop-noop": ["device.report.after-stop", "device.start.restart"],
  // A START while logging is accepted (and forgets the log).
  "second-start": ["device.start.twice"],
} as const;

export type Bug = keyof typeof BUG_TABLE;

/** The rule ids `bug` must fail at these page sizes ("4K", "2M"), sorted. */
export function expectedFailures(bug: Bug, pageSizes: readonly string[]): string[] {
  return BUG_TABLE[bug]
    .flatMap((id) => (id.endsWith("@*") ? pageSizes.map((p) => id.replace("@*", `@${p}`)) : [id]))
    .sort();
}

/** The rule ids that failed (at any level) or could not run on `path`, sorted. */
export function failedRules(results: readonly RuleResult[], path: RuleResult["path"] = "group"): string[] {
  return results
    .filter((r) => r.path === path && (r.result === "fail" || r.result === "error"))
    .map((r) => r.id)
    .sort();
}

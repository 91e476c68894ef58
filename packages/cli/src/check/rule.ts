// A conformance rule of `vfio-dirty check`: what a driver or IOMMU must (MUST), should (SHOULD) or
// is merely observed to do (INFO), where that comes from, and how one scenario's outcome is judged.
//
// The kernel interaction lives in the adapter's scenarios (@vfio-dirty/vfio-adapter/scenarios):
// a rule names the scenario that observes it and judges that scenario's outcome. One scenario can
// back several rules (the iommufd NO_CLEAR scenario gives four); a rule with `perPageSize` is
// judged once per page size asked for, on the scenario of that size ("device.logging.exact@2M").
//
//   const rule: CheckRule = {
//     id: "device.report.clears", area: "device", level: "MUST",
//     title: "REPORT clears what it returned",
//     source: 'vfio.h DMA_LOGGING_REPORT: "During querying the log is cleared for the IOVA range."',
//     scenario: "device.report.dma-pages-then-clear",
//     judge: ok((r) => (allZero(r.second) ? pass("a second REPORT is empty") : fail("..."))),
//   };

import type { ScenarioOutcome } from "@vfio-dirty/vfio-adapter/scenarios";

/** MUST: the uAPI text or a kernel function requires it. SHOULD: QEMU or the tracker relies on it. INFO: left open. */
export type Level = "MUST" | "SHOULD" | "INFO";
/** device: DMA logging (VFIO_DEVICE_FEATURE); iommufd: HWPT dirty tracking; type1: VFIO_IOMMU_DIRTY_PAGES. */
export type Area = "device" | "iommufd" | "type1";
export const AREAS: readonly Area[] = ["device", "iommufd", "type1"];

/** What a judge decides: the rule holds or not, with one line of detail, or it cannot be judged here. */
export type Verdict = { pass: boolean; detail: string } | { skip: string };

export interface CheckRule {
  /** "device.report.clears": area.subject.case; the page size is appended for perPageSize rules. */
  readonly id: string;
  readonly area: Area;
  readonly level: Level;
  /** What the rule asks, in one line. */
  readonly title: string;
  /** Where it comes from: the uAPI comment quoted, or the kernel / QEMU / tracker function named. */
  readonly source: string;
  /** The scenario whose outcome is judged; for perPageSize rules, its id without "@<size>". */
  readonly scenario: string;
  /** Judged once per page size asked for (`--page-size`). */
  readonly perPageSize?: boolean;
  /** Runs even on a device without DMA logging (the device area skips the rest then). */
  readonly withoutLogging?: boolean;
  judge(outcome: ScenarioOutcome): Verdict;
}

export const pass = (detail: string): Verdict => ({ pass: true, detail });
export const fail = (detail: string): Verdict => ({ pass: false, detail });

/** The result object of a scenario that succeeded (fields read by the judges). */
// biome-ignore lint/suspicious/noExplicitAny: scenario results are JSON, read field by field
export type Result = any;

/**
 * A judge for a scenario whose steps must all succeed: a failed step fails the rule, naming it
 * ("REPORT failed: EINVAL"); otherwise `fn` judges the result.
 */
export function ok(fn: (result: Result) => Verdict): CheckRule["judge"] {
  return (o) => {
    if (o.errno !== null) {
      const step = (o.result as { failedStep?: string } | undefined)?.failedStep;
      return fail(`${step ?? "the call"} failed: ${o.errno}`);
    }
    return fn(o.result);
  };
}

/** A judge for a rule that is one errno the kernel must give. */
export function errnoIs(expected: string): CheckRule["judge"] {
  return (o) =>
    o.errno === expected
      ? pass(`refused: ${expected}`)
      : fail(
          o.errno === null ? `accepted; must be refused with ${expected}` : `${o.errno}; must be ${expected}`,
        );
}

/** A judge for a rule that only needs the call refused, with whatever errno. */
export function refused(what: string): CheckRule["judge"] {
  return (o) => {
    const step = (o.result as { failedStep?: string } | undefined)?.failedStep;
    if (step) return fail(`${step} failed first: ${o.errno}`);
    return o.errno !== null ? pass(`refused: ${o.errno}`) : fail(`${what} succeeded; it must be refused`);
  };
}

/** Set bit indexes of a list of "0x..." u64 words (scenario results hold bitmaps that way). */
export function wordBits(words: readonly string[]): number[] {
  const bits: number[] = [];
  words.forEach((w, i) => {
    const v = BigInt(w);
    for (let b = 0; b < 64; b++) if ((v >> BigInt(b)) & 1n) bits.push(i * 64 + b);
  });
  return bits;
}

/** "bits 3, 40" / "no bit". */
export function bitList(bits: readonly number[]): string {
  return bits.length === 0 ? "no bit" : `bit${bits.length > 1 ? "s" : ""} ${bits.join(", ")}`;
}

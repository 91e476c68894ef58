// The human output of `check`: per device, a table per area and path (rule, level, result, one
// line of detail), a summary line per device, and the verdict. Sources are in --json and --junit.

import Table from "cli-table3";
import type { Output } from "../output.ts";
import { type CheckDocument, type DeviceReport, resultGroups } from "./document.ts";
import type { RuleResult } from "./run.ts";

const PATH_NAMES: Record<string, string> = {
  "device (group)": "DMA logging, through its group (type1 container)",
  "device (cdev)": "DMA logging, through its cdev (iommufd)",
  "iommufd (cdev)": "iommufd HWPT dirty tracking",
  "type1 (group)": "type1 dirty tracking",
};

export function printCheck(out: Output, doc: CheckDocument): void {
  const c = out.color;
  const result = (r: RuleResult) =>
    ({
      pass: c.green("pass"),
      fail: r.level === "MUST" ? c.red(c.bold("FAIL")) : c.yellow("fail"),
      skip: c.dim("skip"),
      info: c.cyan("info"),
      error: c.magenta("error"),
    })[r.result];
  for (const d of doc.devices) {
    for (const [label, results] of resultGroups(d.results)) {
      out.result(c.bold(`${d.address} (${d.driver ?? "no driver"}): ${PATH_NAMES[label] ?? label}`));
      out.result(ruleTable(results.map((r) => [r.id, r.level, result(r), r.detail])));
    }
    out.result(`${d.address}: ${summaryLine(d)}`);
  }
}

/** "58 rules: 46 passed, 1 failed (1 MUST), 7 skipped, 4 info". */
export function summaryLine(d: Pick<DeviceReport, "summary">): string {
  const s = d.summary;
  const failed =
    s.failed > 0 ? `${s.failed} failed (${s.failedMust} MUST, ${s.failedShould} SHOULD)` : "0 failed";
  const errors = s.errors > 0 ? `, ${s.errors} could not run` : "";
  return `${s.rules} rules: ${s.passed} passed, ${failed}, ${s.skipped} skipped, ${s.info} info${errors}`;
}

// --- Internal helpers ---

/** A table with a line under the header and none between rows: 90 rules stay readable. */
function ruleTable(rows: string[][]): string {
  const t = new Table({
    head: ["rule", "level", "result", "detail"],
    style: { head: [], border: [], compact: true },
  });
  for (const r of rows) t.push(r);
  return t.toString();
}

// The result of a `check` run: the --json document (schemas/check.schema.json), and the exit
// code it implies. Shared by the human table, the JSON and the JUnit XML, so they cannot disagree.

import type { Area } from "./rule.ts";
import { type RuleResult, summarize } from "./run.ts";

export const CHECK_SCHEMA = "vfio-dirty/check@1";

export type Summary = ReturnType<typeof summarize>;

/** One device's results. */
export interface DeviceReport {
  address: string;
  vendorId: string;
  deviceId: string;
  driver: string | null;
  iommuGroup: number;
  cdev: string | null;
  /** Whether the rules that need DMA could run, and why not. */
  dma: { available: boolean; source: string; why: string | null };
  results: RuleResult[];
  summary: Summary;
}

export interface CheckDocument {
  command: "check";
  schema: typeof CHECK_SCHEMA;
  host: string;
  simulated: boolean;
  /** "sim" (the simulated device writes where check asks), a plugin's name, or "none". */
  workload: string;
  /** Page sizes of the per-page-size rules, bytes. */
  pageSizes: number[];
  areas: Area[];
  devices: DeviceReport[];
  summary: Summary;
  /** 0: every MUST passed; 3: a MUST failed; 1: a rule could not run (and no MUST failed). */
  exitCode: 0 | 1 | 3;
  /** Ctrl-C stopped the run early; the rules left are skipped. */
  interrupted: boolean;
}

/** 3 when any MUST failed, else 1 when any rule could not run, else 0 (SHOULD failures do not count). */
export function exitCodeOf(s: Summary): 0 | 1 | 3 {
  if (s.failedMust > 0) return 3;
  return s.errors > 0 ? 1 : 0;
}

/** The counts over every device. */
export function totalSummary(devices: readonly DeviceReport[]): Summary {
  return summarize(devices.flatMap((d) => d.results));
}

/** Results by area and path, in table order: "device (group)", "device (cdev)", "iommufd (cdev)", "type1 (group)". */
export function resultGroups(results: readonly RuleResult[]): [string, RuleResult[]][] {
  const out = new Map<string, RuleResult[]>();
  for (const r of results) {
    const key = `${r.area} (${r.path})`;
    out.set(key, [...(out.get(key) ?? []), r]);
  }
  return [...out];
}

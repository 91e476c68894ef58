// Running the rules against one device: which paths and areas apply, the probes that decide what
// follows (does the device log? does its IOMMU track?), each scenario run once and judged by every
// rule that reads it. Pure over a ScenarioTarget, so the CLI, the sim tests and the real-kernel
// tests (the IOMMUFD_TEST mock device has no PCI address) all run it the same way.
//
//   const results = await checkTarget(target, { areas: ["device"], pageSizes: [4096n] });
//   results.filter((r) => r.result === "fail" && r.level === "MUST");

import {
  allScenarios,
  pageSizeName,
  pageSizeScenarios,
  runScenarios,
  type Scenario,
  type ScenarioOutcome,
  type ScenarioTarget,
} from "@vfio-dirty/vfio-adapter/scenarios";
import type { Area, CheckRule, Level } from "./rule.ts";
import { ALL_RULES } from "./rules/index.ts";

/** How the device was reached: its group in a type1 container, or its cdev bound to an iommufd. */
export type Path = "group" | "cdev";
export type Outcome = "pass" | "fail" | "skip" | "info" | "error";

/** One rule judged on one path (and one page size). */
export interface RuleResult {
  /** The rule id, with "@<size>" for a per-page-size rule: "device.report.exact@4K". */
  id: string;
  rule: string;
  area: Area;
  level: Level;
  path: Path;
  /** Bytes, for per-page-size rules; null otherwise. */
  pageSize: number | null;
  result: Outcome;
  detail: string;
  title: string;
  source: string;
  /** The adapter scenario judged ("device.logging.exact@4K"). */
  scenario: string;
  /** Time the scenario took, ms (0 for a rule judged on a scenario already run). */
  ms: number;
}

export interface CheckOptions {
  areas: readonly Area[];
  /** Page sizes the per-page-size rules run at (each a power of two, 4 KiB to 2 MiB). */
  pageSizes: readonly bigint[];
  /** Why the rules that need DMA cannot run here (target.dma is missing): said in their skip. */
  noDmaReason?: string;
  /** Stops between scenarios (Ctrl-C): the rules left are skipped, saying so. */
  signal?: AbortSignal;
  /** The rules to run; default every rule. */
  rules?: readonly CheckRule[];
}

const PROBE_SCENARIO = "device.logging.probe-ops";
const CAPABILITY_SCENARIO = "iommufd.dirty.capability-and-alloc";

/**
 * Every rule of `opts.areas` on the device of `target`, whose `has` says what the host offers
 * (type1, iommufd, cdev, dma); `dmaLogging` and `iommuDirty` are found by the probe rules here.
 * Device rules run on every path the device has, type1 rules on the group, iommufd rules on the
 * cdev (or the target's own iommufdDevice).
 */
export async function checkTarget(target: ScenarioTarget, opts: CheckOptions): Promise<RuleResult[]> {
  const rules = opts.rules ?? ALL_RULES;
  const scenarios = scenarioIndex(opts.pageSizes);
  const has = target.has;
  const out: RuleResult[] = [];
  const run = (area: Area, path: Path, t: ScenarioTarget, gate?: Gate) =>
    runArea(
      rules.filter((r) => r.area === area),
      path,
      t,
      scenarios,
      opts,
      out,
      gate,
    );

  if (opts.areas.includes("device")) {
    const paths: Path[] = [];
    if (has.type1) paths.push("group");
    if (has.iommufd && has.cdev) paths.push("cdev");
    if (paths.length === 0)
      skipArea(
        rules,
        "device",
        "group",
        "the device opens neither through a type1 container nor through a cdev with iommufd",
        out,
      );
    for (const path of paths) {
      const t = { ...target, has: { ...has, deviceVia: path, dmaLogging: true } };
      const probe = await timed(t, scenarios.get(PROBE_SCENARIO)!);
      const o = probe.outcome;
      const logs = o.errno === null && (o.result as { start?: string }).start === "OK";
      const why = logs ? undefined : `no DMA logging: ${probeReason(o)}`;
      await run(
        "device",
        path,
        { ...t, has: { ...t.has, dmaLogging: logs } },
        { ran: new Map([[PROBE_SCENARIO, probe]]), why },
      );
    }
  }
  if (opts.areas.includes("iommufd")) {
    if (!(has.iommufd && has.cdev))
      skipArea(
        rules,
        "iommufd",
        "cdev",
        has.iommufd
          ? "the device has no cdev (/dev/vfio/devices/vfioN) to bind to the iommufd"
          : "no iommufd (/dev/iommu) on this host",
        out,
      );
    else {
      const t = { ...target, has: { ...has, iommuDirty: true } };
      const cap = await timed(t, scenarios.get(CAPABILITY_SCENARIO)!);
      const dirty =
        cap.outcome.errno === null && (cap.outcome.result as { capability?: boolean }).capability === true;
      await run(
        "iommufd",
        "cdev",
        { ...t, has: { ...t.has, iommuDirty: dirty } },
        {
          ran: new Map([[CAPABILITY_SCENARIO, cap]]),
          why: dirty
            ? undefined
            : "the IOMMU reports no dirty tracking (GET_HW_INFO: no IOMMU_HW_CAP_DIRTY_TRACKING)",
          exempt: new Set([CAPABILITY_SCENARIO]),
        },
      );
    }
  }
  if (opts.areas.includes("type1")) {
    if (!has.type1)
      skipArea(rules, "type1", "group", "no type1 container (/dev/vfio/vfio) on this host", out);
    else await run("type1", "group", { ...target, has: { ...has, deviceVia: "group" } });
  }
  return out;
}

/** Exit-code-relevant counts of a list of results. */
export function summarize(results: readonly RuleResult[]) {
  const count = (f: (r: RuleResult) => boolean) => results.filter(f).length;
  return {
    rules: results.length,
    passed: count((r) => r.result === "pass"),
    failed: count((r) => r.result === "fail"),
    failedMust: count((r) => r.result === "fail" && r.level === "MUST"),
    failedShould: count((r) => r.result === "fail" && r.level === "SHOULD"),
    skipped: count((r) => r.result === "skip"),
    info: count((r) => r.result === "info"),
    errors: count((r) => r.result === "error"),
  };
}

// --- Internal helpers ---

/** What a probe already decided for an area: scenarios already run, and why the rest is skipped. */
interface Gate {
  /** Outcomes by scenario id, with the time each took (charged to the first rule judged on it). */
  ran: Map<string, Timed>;
  /** Set when the area's capability is missing: every rule but the probe's own is skipped with it. */
  why?: string;
  /** Scenarios that run even when `why` is set (the iommufd capability rule reads its probe). */
  exempt?: Set<string>;
}

async function runArea(
  rules: readonly CheckRule[],
  path: Path,
  t: ScenarioTarget,
  scenarios: Map<string, Scenario>,
  opts: CheckOptions,
  out: RuleResult[],
  gate: Gate = { ran: new Map() },
): Promise<void> {
  for (const rule of rules) {
    for (const pageSize of rule.perPageSize ? opts.pageSizes : [undefined]) {
      const at = pageSize === undefined ? "" : `@${pageSizeName(pageSize)}`;
      const scenarioId = `${rule.scenario}${at}`;
      const base = {
        id: `${rule.id}${at}`,
        rule: rule.id,
        area: rule.area,
        level: rule.level,
        path,
        pageSize: pageSize === undefined ? null : Number(pageSize),
        title: rule.title,
        source: rule.source,
        scenario: scenarioId,
      };
      const push = (result: Outcome, detail: string, ms = 0) => out.push({ ...base, result, detail, ms });
      if (opts.signal?.aborted) {
        push("skip", "interrupted (Ctrl-C) before this rule ran");
        continue;
      }
      const probed = gate.ran.has(scenarioId) || gate.exempt?.has(scenarioId);
      if (gate.why && !rule.withoutLogging && !probed) {
        push("skip", gate.why);
        continue;
      }
      const scenario = scenarios.get(scenarioId);
      if (!scenario) throw new Error(`check rule ${rule.id} names no scenario ${scenarioId}`);
      let ran = gate.ran.get(scenarioId);
      if (!ran) {
        ran = await timed(t, scenario);
        gate.ran.set(scenarioId, ran);
      }
      const { outcome, ms } = ran;
      ran.ms = 0;
      if (outcome.skipped) {
        push(
          "skip",
          outcome.skipped === "cannot drive DMA" && opts.noDmaReason ? opts.noDmaReason : outcome.skipped,
          ms,
        );
        continue;
      }
      if (outcome.setupError) {
        push("error", `could not set up: ${outcome.setupError}`, ms);
        continue;
      }
      const v = rule.judge(outcome);
      if ("skip" in v) push("skip", v.skip, ms);
      else push(rule.level === "INFO" ? "info" : v.pass ? "pass" : "fail", v.detail, ms);
    }
  }
}

function skipArea(rules: readonly CheckRule[], area: Area, path: Path, why: string, out: RuleResult[]): void {
  for (const rule of rules.filter((r) => r.area === area))
    out.push({
      id: rule.id,
      rule: rule.id,
      area,
      level: rule.level,
      path,
      pageSize: null,
      result: "skip",
      detail: why,
      title: rule.title,
      source: rule.source,
      scenario: rule.scenario,
      ms: 0,
    });
}

/** A scenario's outcome and the ms it took. */
interface Timed {
  outcome: ScenarioOutcome;
  ms: number;
}

async function timed(t: ScenarioTarget, s: Scenario): Promise<Timed> {
  const t0 = performance.now();
  const [outcome] = await runScenarios(t, [s]);
  return { outcome: outcome!, ms: Math.round(performance.now() - t0) };
}

/** Scenarios by id: the adapter's, and the per-page-size ones at every size asked for. */
function scenarioIndex(pageSizes: readonly bigint[]): Map<string, Scenario> {
  const list = [...allScenarios, ...pageSizes.flatMap((p) => pageSizeScenarios(p))];
  return new Map(list.map((s) => [s.id, s]));
}

/** Why the device does not log, from its PROBE: "VFIO_DEVICE_FEATURE(PROBE|SET|DMA_LOGGING_START): ENOTTY". */
function probeReason(o: ScenarioOutcome): string {
  if (o.skipped) return o.skipped;
  if (o.setupError) return `the device could not be opened (${o.setupError})`;
  const start = (o.result as { start?: string } | undefined)?.start ?? o.errno ?? "?";
  return `VFIO_DEVICE_FEATURE(PROBE|SET|DMA_LOGGING_START): ${start}${start === "ENOTTY" ? " (the driver implements no vfio_log_ops)" : ""}`;
}

// `predict`'s human output: what the prediction was computed from (and how much each number can
// be trusted), an iteration table in the spirit of `virsh domjobinfo`, and a verdict that says
// what would make a non-converging migration converge.

import type { PrecopyRound } from "@vfio-dirty/tracker";
import type { DeviceDocument, PredictDocument } from "../commands/predict.ts";
import type { Context } from "../context.ts";
import { keyValueTable, listTable } from "../format/table.ts";
import { formatBytes, formatMs, formatRate } from "../format/units.ts";
import type { PredictOptions } from "./input.ts";

/** QEMU's target page: the unit of "dirty pages rate" in `virsh domjobinfo` / `info migrate`. */
const TARGET_PAGE = 4096;

/** Rows shown in full; longer runs show their first and last rows. */
const TABLE_ROWS = 24;

export function printPrediction(ctx: Context, d: PredictDocument, opts: PredictOptions): void {
  const { out } = ctx;
  const c = out.color;
  const i = d.input;
  out.info(
    `pre-copy of ${formatBytes(i.ramBytes)} RAM at ${formatRate(i.bandwidth)}, downtime-limit ${formatMs(i.downtimeLimitMs)}, ${syncText(i, opts)}`,
  );
  out.info(`dirty rate ${formatRate(d.dirtyRate.total)}: ${rateParts(d, opts)}`);
  if (i.traceUpperBound) out.warn(upperBoundNote(i.traceStrategy));
  for (const dev of i.devices) out.info(deviceLine(dev, i.deviceSource));
  if (i.switchoverAck || i.availSwitchoverBandwidth !== null)
    out.info(
      [
        i.switchoverAck ? "switchover-ack on: switchover waits for every device's initial data" : "",
        i.availSwitchoverBandwidth !== null
          ? `avail-switchover-bandwidth ${formatRate(i.availSwitchoverBandwidth)}: the switchover decision uses it`
          : "",
      ]
        .filter(Boolean)
        .join("; "),
    );
  out.result(iterationTable(d.rounds));
  if (d.converges) printConverges(ctx, d);
  else printDoesNotConverge(ctx, d);
  if (opts.svg) out.info(c.dim(`picture: ${opts.svg}`));
}

// --- Internal helpers ---

function syncText(i: PredictDocument["input"], opts: PredictOptions): string {
  if (i.syncCostSource === "default")
    return "no sync cost (give --sync-cost, or --report for the measured one)";
  const from = i.syncCostSource === "report" ? ` (the mean measured in ${opts.report})` : "";
  return `sync cost ${formatMs(i.syncCostMs)}${from}`;
}

/** "device DMA 12 MiB/s (run.json: 20 pre-copy syncs, device) + guest 108 MiB/s (query-dirty-rate, ...)" */
function rateParts(d: PredictDocument, opts: PredictOptions): string {
  const i = d.input;
  const parts: string[] = [];
  const dma =
    i.source === "report"
      ? `${opts.report}: ${i.traceSamples} pre-copy syncs with ${i.traceStrategy}${i.traceUpperBound ? ", an upper bound" : ""}`
      : i.source === "dirty-rate"
        ? "--dirty-rate"
        : "none given";
  parts.push(`device DMA ${formatRate(d.dirtyRate.deviceDma)} (${dma})`);
  const g = i.guestDirtyRateSource;
  if (i.guestDirtyRate !== null && g) {
    const how =
      g.kind === "option"
        ? "--guest-dirty-rate"
        : `${g.file}: ${g.kind}${g.mode ? `, ${g.mode}` : ""}${g.calcTimeMs !== null ? ` over ${formatMs(g.calcTimeMs)}` : ""}`;
    parts.push(`guest ${formatRate(i.guestDirtyRate)} (${how})`);
  }
  if (d.dirtyRate.deviceState > 0)
    parts.push(`device state ${formatRate(d.dirtyRate.deviceState)} (PRE_COPY dirty_bytes growth)`);
  return parts.join(" + ");
}

function upperBoundNote(strategy: string | null): string {
  if (strategy === "type1")
    return "the trace came from type1, which reports every mapped page dirty on every sync: the device rate is an upper bound, not a measurement";
  if (strategy === "all-dirty")
    return "the trace came from all-dirty (no dirty tracking: every page dirty on every sync): the device rate is an upper bound, not a measurement";
  return `the trace came from ${strategy} (a unit degraded to all-dirty during the run): the device rate is partly an upper bound, not a measurement`;
}

function deviceLine(dev: DeviceDocument, source: PredictDocument["input"]["deviceSource"]): string {
  const name = dev.id && dev.id !== "device" ? dev.id : "device";
  const from = source === "report" ? " (from the report's deviceState)" : "";
  let line = `${name}${from}: stop-copy ${formatBytes(dev.stopCopyBytes)}`;
  const p = dev.precopy;
  if (p) {
    line += `; PRE_COPY (GET_PRECOPY_INFO v${p.infoVersion}): initial ${formatBytes(p.initialBytes)}, dirty ${formatBytes(p.dirtyBytes)}`;
    if (p.dirtyRate > 0) line += `, +${formatRate(p.dirtyRate)}`;
    for (const e of p.reinit)
      line += `; new initial data ${formatBytes(e.initialBytes)} at ${formatMs(e.atMs)}${p.infoVersion === 2 ? " (REINIT)" : " (v1: seen as dirty_bytes)"}`;
  }
  return line;
}

/** iteration | sync | sent | remaining | threshold | dirty rate | pages/s | downtime if stopped | note */
function iterationTable(rounds: readonly PrecopyRound[]): string {
  const row = (x: PrecopyRound): string[] => [
    String(x.iteration),
    formatMs(x.syncMs),
    formatBytes(Math.round(x.bytesSent)),
    formatBytes(Math.round(x.remainingBytes)),
    formatBytes(Math.round(x.thresholdBytes)),
    formatRate(x.dirtyRate),
    String(Math.round(x.dirtyRate / TARGET_PAGE)),
    formatMs(x.expectedDowntimeMs),
    [
      x.reinit ? "REINIT" : "",
      x.switchoverAckPending ? "held: switchover-ack" : "",
      x.remainingBytes < x.thresholdBytes && !x.switchoverAckPending ? "fits" : "",
    ]
      .filter(Boolean)
      .join(", "),
  ];
  const shown =
    rounds.length <= TABLE_ROWS
      ? rounds.map(row)
      : [
          ...rounds.slice(0, TABLE_ROWS / 2).map(row),
          ["...", "", "", "", "", "", "", "", `${rounds.length - TABLE_ROWS} more`],
          ...rounds.slice(-TABLE_ROWS / 2).map(row),
        ];
  return listTable(
    [
      "iteration",
      "sync",
      "sent",
      "remaining",
      "threshold",
      "dirty rate",
      "pages/s",
      "downtime if stopped",
      "",
    ],
    shown,
  );
}

function printConverges(ctx: Context, d: PredictDocument): void {
  const { out } = ctx;
  const c = out.color;
  const i = d.input;
  out.result(`${c.green("converges")} after ${d.iterations} iteration${d.iterations === 1 ? "" : "s"}`);
  const rows: [string, string][] = [
    [
      "expected downtime",
      `${formatMs(d.expectedDowntimeMs)}${d.downtimeOverLimit ? c.yellow(` (over downtime-limit: it includes the final ${formatMs(i.syncCostMs)} sync and what the guest dirtied during the last decision sync, which QEMU's estimate leaves out)`) : ""}`,
    ],
    ["total sent", formatBytes(Math.round(d.totalBytesSent))],
    ["total time", formatMs(d.totalMs)],
  ];
  if (d.heldBySwitchoverAck > 0)
    rows.push([
      "switchover-ack",
      `held the switchover ${d.heldBySwitchoverAck} time(s) until the initial data was sent`,
    ]);
  out.result(keyValueTable([...rows, ...criticalRows(d)]));
}

function printDoesNotConverge(ctx: Context, d: PredictDocument): void {
  const { out } = ctx;
  const c = out.color;
  const i = d.input;
  out.result(`${c.red("does not converge")} within ${d.iterations} iterations`);
  const rows: [string, string][] = [
    [
      "downtime if stopped",
      `${formatMs(d.expectedDowntimeMs)} at the end (limit ${formatMs(i.downtimeLimitMs)})`,
    ],
    ["total sent", formatBytes(Math.round(d.totalBytesSent))],
    ...criticalRows(d),
  ];
  if (d.requiredBandwidth !== null)
    rows.push([
      "would converge with",
      `bandwidth >= ${formatRate(d.requiredBandwidth)} (within ${i.maxIterations} iterations)`,
    ]);
  if (d.minDowntimeLimitMs !== null && d.minDowntimeLimitMs < i.downtimeLimitMs)
    rows.push([
      "note",
      `the critical state converges at this limit: pre-copy needs more than ${i.maxIterations} iterations (--max-iterations)`,
    ]);
  const estimate = d.critical.estimatedBandwidth;
  if (
    i.availSwitchoverBandwidth === null &&
    estimate !== null &&
    estimate < i.bandwidth / 2 &&
    i.syncCostMs > 0
  )
    rows.push([
      "hint",
      `the ${formatMs(i.syncCostMs)} sync makes QEMU estimate ${formatRate(estimate)} of ${formatRate(i.bandwidth)}: avail-switchover-bandwidth tells it the real bandwidth (--avail-switchover-bandwidth)`,
    ]);
  out.result(keyValueTable(rows));
}

/** A limit with the precision it needs: "11.1 ms", "500 ms", "2.50 s". */
function formatLimit(ms: number): string {
  return ms >= 100 ? formatMs(ms) : `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
}

function criticalRows(d: PredictDocument): [string, string][] {
  const k = d.critical;
  const i = d.input;
  const rows: [string, string][] = [];
  if (k.transferMs === null)
    rows.push([
      "critical state",
      "none: the dirty rate is at or above the bandwidth, pre-copy never settles",
    ]);
  else
    rows.push([
      "critical state",
      `each iteration ${formatMs(k.iterationMs!)} (sync ${formatMs(i.syncCostMs)} + transfer ${formatMs(k.transferMs)}); QEMU estimates ${formatRate(k.estimatedBandwidth!)}`,
    ]);
  rows.push([
    "smallest downtime-limit",
    d.minDowntimeLimitMs === null ? "none converges" : `above ${formatLimit(d.minDowntimeLimitMs)}`,
  ]);
  rows.push([
    "largest dirty rate",
    d.maxDirtyRate === null
      ? `none converges at ${formatMs(i.downtimeLimitMs)} (the device state alone does not fit)`
      : d.maxDirtyRate >= i.bandwidth
        ? `any below the bandwidth converges at ${formatMs(i.downtimeLimitMs)}, given enough iterations`
        : `below ${formatRate(d.maxDirtyRate)} at ${formatMs(i.downtimeLimitMs)} (now ${formatRate(d.dirtyRate.total)})`,
  ]);
  return rows;
}

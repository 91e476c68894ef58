// `vfio-dirty predict`: will pre-copy converge? A thin shell over the tracker's predictPrecopy:
// parse the rates and sizes, or take the measured trace from a `track --report` file, then print.

import { type PrecopyPrediction, predictPrecopy } from "@vfio-dirty/tracker";
import { Command } from "commander";
import type { Context } from "../context.ts";
import { UsageError } from "../errors.ts";
import { formatBytes, formatMs, formatRate } from "../format/units.ts";
import { parseDuration } from "../parse/duration.ts";
import { parseRate } from "../parse/rate.ts";
import { parseSize } from "../parse/size.ts";
import { readTrackReport } from "../report.ts";

interface PredictOptions {
  report?: string;
  dirtyRate?: string;
  ram?: string;
  bandwidth?: string;
  downtime: string;
  deviceState?: string;
  maxIterations?: string;
}

/** The --json document of `predict`. */
export interface PredictDocument {
  command: "predict";
  input: {
    bandwidth: number;
    downtimeLimitMs: number;
    ramBytes: number;
    deviceStateBytes: number;
    dirtyRate: number | null;
    traceSamples: number | null;
    source: "dirty-rate" | "report";
  };
  converges: boolean;
  iterations: number;
  totalBytesSent: number;
  expectedDowntimeMs: number;
  totalMs: number;
  requiredBandwidth: number | null;
  maxDirtyRate: number | null;
  rounds: { iteration: number; bytesSent: number; seconds: number; dirtyBytesAfter: number }[];
}

export function predictCommand(makeContext: (cmd: Command) => Context): Command {
  return new Command("predict")
    .description("predict whether pre-copy converges within the downtime limit")
    .option("--report <file.json>", "a report written by 'track --report' (its measured dirty-rate trace)")
    .option("--dirty-rate <rate>", "constant dirty rate, e.g. 200M/s (instead of --report)")
    .option("--ram <size>", "guest RAM, e.g. 16G (required with --dirty-rate; overrides the report's)")
    .option("--bandwidth <rate>", "migration bandwidth, e.g. 10Gbit/s or 1G/s (required)")
    .option("--downtime <duration>", "downtime limit (QEMU downtime-limit)", "300ms")
    .option("--device-state <size>", "device state sent at stop-copy, e.g. 64M", "0")
    .option("--max-iterations <n>", "give up after this many pre-copy iterations", "30")
    .addHelpText(
      "after",
      `
Examples:
  $ vfio-dirty predict --dirty-rate 200M/s --ram 16G --bandwidth 10Gbit/s
  $ vfio-dirty predict --report run.json --bandwidth 1G/s --downtime 500ms --device-state 64M
`,
    )
    .action((opts: PredictOptions, cmd: Command) => {
      const ctx = makeContext(cmd);
      const doc = predict(opts);
      ctx.out.document(doc);
      printPrediction(ctx, doc);
    });
}

/** Validates the options and runs the model. */
export function predict(opts: PredictOptions): PredictDocument {
  if (opts.bandwidth === undefined)
    throw new UsageError(
      "predict needs --bandwidth; give the migration link speed, e.g. --bandwidth 10Gbit/s",
    );
  if ((opts.report === undefined) === (opts.dirtyRate === undefined))
    throw new UsageError("predict needs exactly one of --report FILE.json and --dirty-rate RATE");
  const bandwidth = parseRate(opts.bandwidth, "--bandwidth");
  const downtimeLimitMs = parseDuration(opts.downtime, "--downtime");
  const deviceStateBytes = Number(parseSize(opts.deviceState ?? "0", "--device-state"));
  const maxIterations = Number(opts.maxIterations ?? "30");
  if (!Number.isInteger(maxIterations) || maxIterations < 1 || maxIterations > 10_000)
    throw new UsageError(`--max-iterations '${opts.maxIterations}': use a whole number from 1 to 10000`);

  let prediction: PrecopyPrediction;
  let input: PredictDocument["input"];
  if (opts.dirtyRate !== undefined) {
    if (opts.ram === undefined)
      throw new UsageError("--dirty-rate needs --ram; give the guest RAM, e.g. --ram 16G");
    const ramBytes = Number(parseSize(opts.ram, "--ram"));
    const dirtyRate = parseRate(opts.dirtyRate, "--dirty-rate");
    prediction = predictPrecopy({
      bandwidth,
      downtimeLimitMs,
      ramBytes,
      deviceStateBytes,
      dirtyRate,
      maxIterations,
    });
    input = {
      bandwidth,
      downtimeLimitMs,
      ramBytes,
      deviceStateBytes,
      dirtyRate,
      traceSamples: null,
      source: "dirty-rate",
    };
  } else {
    const report = readTrackReport(opts.report!);
    const ramBytes = opts.ram !== undefined ? Number(parseSize(opts.ram, "--ram")) : report.ramBytes;
    const trace = report.samples
      .filter((s) => s.intervalMs > 0)
      .map((s) => ({ seconds: s.intervalMs / 1000, dirtyBytes: s.dirtyBytes }));
    if (trace.length === 0)
      throw new UsageError(
        `${opts.report}: the report has no sync samples; run track for longer than one interval`,
      );
    prediction = predictPrecopy({
      bandwidth,
      downtimeLimitMs,
      ramBytes,
      deviceStateBytes,
      trace,
      maxIterations,
    });
    input = {
      bandwidth,
      downtimeLimitMs,
      ramBytes,
      deviceStateBytes,
      dirtyRate: null,
      traceSamples: trace.length,
      source: "report",
    };
  }
  return {
    command: "predict",
    input,
    converges: prediction.converges,
    iterations: prediction.iterations,
    totalBytesSent: prediction.totalBytesSent,
    expectedDowntimeMs: prediction.expectedDowntimeMs,
    totalMs: prediction.totalMs,
    requiredBandwidth: prediction.requiredBandwidth ?? null,
    maxDirtyRate: prediction.maxDirtyRate ?? null,
    rounds: prediction.rounds.map((r) => ({ ...r })),
  };
}

// --- Internal helpers ---

function printPrediction(ctx: Context, d: PredictDocument): void {
  const { out } = ctx;
  const c = out.color;
  const i = d.input;
  out.info(
    `pre-copy of ${formatBytes(i.ramBytes)} RAM${i.deviceStateBytes ? ` + ${formatBytes(i.deviceStateBytes)} device state` : ""} at ${formatRate(i.bandwidth)}, ` +
      (i.dirtyRate !== null
        ? `dirty rate ${formatRate(i.dirtyRate)}`
        : `measured trace of ${i.traceSamples} syncs`) +
      `, downtime limit ${formatMs(i.downtimeLimitMs)}`,
  );
  if (d.converges) {
    out.result(`${c.green("converges")} after ${d.iterations} iteration${d.iterations === 1 ? "" : "s"}`);
    out.result(`  expected downtime  ${formatMs(d.expectedDowntimeMs)}`);
    out.result(`  total sent         ${formatBytes(Math.round(d.totalBytesSent))}`);
    out.result(`  total time         ${formatMs(d.totalMs)}`);
  } else {
    out.result(`${c.red("does not converge")} within ${d.iterations} iterations`);
    out.result(
      `  pending at the end ${formatMs(d.expectedDowntimeMs)} of transfer (limit ${formatMs(i.downtimeLimitMs)})`,
    );
    out.result(`  total sent         ${formatBytes(Math.round(d.totalBytesSent))}`);
    if (d.requiredBandwidth !== null)
      out.result(`  would converge with bandwidth >= ${formatRate(d.requiredBandwidth)}`);
    if (d.maxDirtyRate === null)
      out.result("  no dirty rate helps: the device state alone does not fit in the downtime limit");
    else out.result(`  or with a dirty rate <= ${formatRate(d.maxDirtyRate)}`);
  }
}

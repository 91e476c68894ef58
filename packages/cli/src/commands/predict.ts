// `vfio-dirty predict`: will pre-copy converge within the downtime limit, and if not, why and what
// would fix it? A thin shell over the tracker's predictPrecopy: the options (predict/input.ts),
// the model, then an iteration table like `virsh domjobinfo`, a verdict, --json and --svg.
// Exit 3 when it does not converge.

import { writeFileSync } from "node:fs";
import { type PrecopyPrediction, predictPrecopy } from "@vfio-dirty/tracker";
import { Command } from "commander";
import type { Context } from "../context.ts";
import { CheckFailedError, UsageError } from "../errors.ts";
import { formatMs, formatRate } from "../format/units.ts";
import { type DescribedInput, type PredictOptions, predictInput } from "../predict/input.ts";
import { printPrediction } from "../predict/print.ts";
import { predictSvg } from "../svg/predict-chart.ts";

export type { PredictOptions } from "../predict/input.ts";

/** The --json document of `predict`. */
export interface PredictDocument {
  command: "predict";
  input: Omit<DescribedInput, "devices"> & { devices: DeviceDocument[] };
  converges: boolean;
  iterations: number;
  totalBytesSent: number;
  expectedDowntimeMs: number;
  /** The expected downtime is above the limit (the final sync and the last decision sync's dirt). */
  downtimeOverLimit: boolean;
  totalMs: number;
  requiredBandwidth: number | null;
  /** The largest total dirty rate that converges at the limit (critical state); null: none. */
  maxDirtyRate: number | null;
  /** The smallest downtime limit that converges (critical state); null: none. */
  minDowntimeLimitMs: number | null;
  heldBySwitchoverAck: number;
  /** What the total dirty rate is made of, bytes/s. */
  dirtyRate: { total: number; deviceDma: number; guest: number; deviceState: number };
  critical: PrecopyPrediction["critical"];
  rounds: PrecopyPrediction["rounds"][number][];
}

export interface DeviceDocument {
  id: string | null;
  stopCopyBytes: number;
  precopy: {
    infoVersion: 1 | 2;
    initialBytes: number;
    dirtyBytes: number;
    dirtyRate: number;
    reinit: { atMs: number; initialBytes: number }[];
  } | null;
}

export function predictCommand(makeContext: (cmd: Command) => Context): Command {
  return new Command("predict")
    .description("predict whether pre-copy converges within the downtime limit, and what would make it")
    .option("--report <file.json>", "a report written by 'track --report': the devices' measured DMA trace")
    .option("--dirty-rate <rate>", "the devices' DMA dirty rate, e.g. 200M/s (instead of --report)")
    .option("--guest-dirty-rate <rate>", "the guest's own (vCPU) dirty rate, added to the devices'")
    .option(
      "--guest-dirty-rate-from <file>",
      "read the guest's rate from QEMU's query-dirty-rate reply, 'info dirty_rate' or 'virsh domstats --dirtyrate'",
    )
    .option("--ram <size>", "guest RAM, e.g. 16G (required without --report; overrides the report's)")
    .option("--bandwidth <rate>", "migration bandwidth, e.g. 10Gbit/s or 1G/s (required)")
    .option("--downtime-limit <duration>", "QEMU downtime-limit (default 300ms)")
    .option("--downtime <duration>", "the older spelling of --downtime-limit")
    .option(
      "--sync-cost <duration>",
      "one dirty-bitmap sync (default: the mean sync cost in --report, else 0)",
    )
    .option("--device-state <size>", "what the devices send in stop-copy (MIG_DATA_SIZE), e.g. 64M")
    .option("--precopy-initial-size <size>", "PRE_COPY device: initial_bytes when pre-copy starts")
    .option("--precopy-dirty-size <size>", "PRE_COPY device: dirty_bytes when pre-copy starts (default 0)")
    .option("--precopy-dirty-rate <rate>", "PRE_COPY device: how fast its state changes (default 0)")
    .option(
      "--precopy-info <v1|v2>",
      "GET_PRECOPY_INFO semantics: v1 (default), or v2 (PRECOPY_INFOv2: REINIT)",
    )
    .option("--precopy-reinit <at:size,...>", "new initial data at these times into pre-copy, e.g. 2s:64M")
    .option("--switchover-ack", "QEMU's switchover-ack: switch over only once the initial data was sent")
    .option(
      "--avail-switchover-bandwidth <rate>",
      "QEMU avail-switchover-bandwidth: the switchover decision uses it",
    )
    .option("--max-iterations <n>", "give up after this many pre-copy iterations", "30")
    .option("--svg <file.svg>", "write the picture: pending data per iteration against the downtime budget")
    .addHelpText(
      "after",
      `
Examples:
  $ vfio-dirty predict --dirty-rate 200M/s --ram 16G --bandwidth 10Gbit/s
  $ vfio-dirty predict --report run.json --guest-dirty-rate-from qmp-reply.json --bandwidth 25Gbit/s
  $ vfio-dirty predict --dirty-rate 7.5G/s --ram 64G --bandwidth 15G/s --sync-cost 250ms
  $ vfio-dirty predict --report run.json --bandwidth 1G/s --precopy-initial-size 128M --precopy-info v2 \\
      --precopy-reinit 2s:32M --switchover-ack --svg plan.svg

Exit code 3 when pre-copy does not converge within the downtime limit.
`,
    )
    .action((opts: PredictOptions, cmd: Command) => {
      const ctx = makeContext(cmd);
      const doc = predict(opts);
      if (opts.svg) writeSvg(opts.svg, doc);
      ctx.out.document(doc);
      printPrediction(ctx, doc, opts);
      if (!doc.converges)
        throw new CheckFailedError(
          `pre-copy does not converge within downtime-limit ${formatMs(doc.input.downtimeLimitMs)}`,
        );
    });
}

/** Validates the options and runs the model. */
export function predict(opts: PredictOptions): PredictDocument {
  const { model, described } = predictInput(opts);
  const p = predictPrecopy(model);
  const deviceState = described.devices.reduce((a, d) => a + (d.precopy?.dirtyRate ?? 0), 0);
  return {
    command: "predict",
    input: { ...described, devices: described.devices.map(deviceDocument) },
    converges: p.converges,
    iterations: p.iterations,
    totalBytesSent: p.totalBytesSent,
    expectedDowntimeMs: p.expectedDowntimeMs,
    downtimeOverLimit: p.converges && p.expectedDowntimeMs > described.downtimeLimitMs,
    totalMs: p.totalMs,
    requiredBandwidth: p.requiredBandwidth ?? null,
    maxDirtyRate: p.maxDirtyRate,
    minDowntimeLimitMs: p.minDowntimeLimitMs,
    heldBySwitchoverAck: p.heldBySwitchoverAck,
    dirtyRate: {
      total: p.critical.dirtyRate,
      deviceDma: described.deviceDirtyRate,
      guest: described.guestDirtyRate ?? 0,
      deviceState,
    },
    critical: p.critical,
    rounds: p.rounds.map((r) => ({ ...r })),
  };
}

// --- Internal helpers ---

function deviceDocument(d: DescribedInput["devices"][number]): DeviceDocument {
  return {
    id: d.id ?? null,
    stopCopyBytes: d.stopCopyBytes ?? 0,
    precopy: d.precopy
      ? {
          infoVersion: d.precopy.infoVersion,
          initialBytes: d.precopy.initialBytes,
          dirtyBytes: d.precopy.dirtyBytes ?? 0,
          dirtyRate: d.precopy.dirtyRate ?? 0,
          reinit: (d.precopy.reinit ?? []).map((e) => ({ ...e })),
        }
      : null,
  };
}

function writeSvg(path: string, doc: PredictDocument): void {
  const i = doc.input;
  try {
    writeFileSync(
      path,
      predictSvg({
        title: `vfio-dirty predict: ${doc.converges ? "converges" : "does not converge"}`,
        subtitle: `bandwidth ${formatRate(i.bandwidth)}, downtime-limit ${formatMs(i.downtimeLimitMs)}, sync cost ${formatMs(i.syncCostMs)}, dirty rate ${formatRate(doc.dirtyRate.total)}`,
        rounds: doc.rounds,
        converges: doc.converges,
        linkBudgetBytes: (i.bandwidth * i.downtimeLimitMs) / 1000,
      }),
    );
  } catch (err) {
    throw new UsageError(
      `${path}: cannot write (${(err as NodeJS.ErrnoException).code}); check the directory exists`,
      {
        cause: err,
      },
    );
  }
}

// `predict`'s options, checked and turned into the tracker's PrecopyInput, together with where
// each number came from (the JSON document and the human output say so).
//
//   const { model, described } = predictInput(opts);   // UsageError on any bad option
//   predictPrecopy(model);

import { readFileSync } from "node:fs";
import type { DeviceMigrationData, DirtyTraceSample, PrecopyInput } from "@vfio-dirty/tracker";
import { UsageError } from "../errors.ts";
import { parseDuration } from "../parse/duration.ts";
import { GuestDirtyRateError, parseGuestDirtyRate } from "../parse/guest-dirty-rate.ts";
import { parseRate } from "../parse/rate.ts";
import { parseSize } from "../parse/size.ts";
import { readTrackReport, type TrackReport } from "../report.ts";
import { devicesFromReport } from "./device-state.ts";

/** The options as commander hands them over (all strings). */
export interface PredictOptions {
  report?: string;
  dirtyRate?: string;
  guestDirtyRate?: string;
  guestDirtyRateFrom?: string;
  ram?: string;
  bandwidth?: string;
  downtimeLimit?: string;
  /** The older spelling of --downtime-limit. */
  downtime?: string;
  syncCost?: string;
  deviceState?: string;
  precopyInitialSize?: string;
  precopyDirtySize?: string;
  precopyDirtyRate?: string;
  precopyInfo?: string;
  precopyReinit?: string;
  switchoverAck?: boolean;
  availSwitchoverBandwidth?: string;
  maxIterations?: string;
  svg?: string;
}

/** What the prediction was computed from: the `input` of the --json document. */
export interface DescribedInput {
  bandwidth: number;
  downtimeLimitMs: number;
  ramBytes: number;
  /** Stop-copy bytes of every device (sum). */
  deviceStateBytes: number;
  /** --dirty-rate (the devices' DMA), or null. */
  dirtyRate: number | null;
  traceSamples: number | null;
  /** Where the devices' DMA rate came from. */
  source: "dirty-rate" | "report" | "none";
  /** Long-run device DMA rate (the trace's average, or --dirty-rate; 0 without either), B/s. */
  deviceDirtyRate: number;
  /** The tracking strategy that measured the trace (null without --report). */
  traceStrategy: string | null;
  /** The trace is an upper bound (type1 or all-dirty report every mapped page), not a measurement. */
  traceUpperBound: boolean;
  /** The guest's vCPU rate, B/s (null when not given). */
  guestDirtyRate: number | null;
  guestDirtyRateSource: {
    kind: "option" | "query-dirty-rate" | "info dirty_rate" | "domstats";
    file: string | null;
    mode: string | null;
    calcTimeMs: number | null;
  } | null;
  syncCostMs: number;
  syncCostSource: "option" | "report" | "default";
  devices: DeviceMigrationData[];
  deviceSource: "options" | "report" | "none";
  availSwitchoverBandwidth: number | null;
  switchoverAck: boolean;
  maxIterations: number;
}

/** Checks every option (exit 2 on the first problem) before anything is computed. */
export function predictInput(opts: PredictOptions): { model: PrecopyInput; described: DescribedInput } {
  if (opts.bandwidth === undefined)
    throw new UsageError(
      "predict needs --bandwidth; give the migration link speed, e.g. --bandwidth 10Gbit/s",
    );
  if (opts.report !== undefined && opts.dirtyRate !== undefined)
    throw new UsageError(
      "--report and --dirty-rate both give the devices' DMA rate; give one (add the guest's with --guest-dirty-rate)",
    );
  if (opts.guestDirtyRate !== undefined && opts.guestDirtyRateFrom !== undefined)
    throw new UsageError(
      "give the guest's dirty rate once: --guest-dirty-rate RATE or --guest-dirty-rate-from FILE",
    );
  if (
    opts.report === undefined &&
    opts.dirtyRate === undefined &&
    opts.guestDirtyRate === undefined &&
    opts.guestDirtyRateFrom === undefined
  )
    throw new UsageError(
      "predict needs a dirty rate: --report FILE.json or --dirty-rate RATE (the devices' DMA), and/or --guest-dirty-rate(-from)",
    );
  if (opts.downtimeLimit !== undefined && opts.downtime !== undefined)
    throw new UsageError("--downtime is the older spelling of --downtime-limit; give one");
  const bandwidth = parseRate(opts.bandwidth, "--bandwidth");
  const downtimeLimitMs = parseDuration(
    opts.downtimeLimit ?? opts.downtime ?? "300ms",
    opts.downtime !== undefined ? "--downtime" : "--downtime-limit",
  );
  const maxIterations = Number(opts.maxIterations ?? "30");
  if (!Number.isInteger(maxIterations) || maxIterations < 1 || maxIterations > 10_000)
    throw new UsageError(`--max-iterations '${opts.maxIterations}': use a whole number from 1 to 10000`);
  const report = opts.report !== undefined ? readTrackReport(opts.report) : undefined;
  const ramBytes = ramOf(opts, report);
  const dma = deviceDma(opts, report);
  const guest = guestRate(opts);
  const sync = syncCost(opts, report);
  const devices = deviceData(opts, report);
  const availSwitchoverBandwidth =
    opts.availSwitchoverBandwidth !== undefined
      ? parseRate(opts.availSwitchoverBandwidth, "--avail-switchover-bandwidth")
      : null;
  const switchoverAck = opts.switchoverAck === true;
  const model: PrecopyInput = {
    bandwidth,
    downtimeLimitMs,
    ramBytes,
    ...(dma.trace ? { trace: dma.trace } : { dirtyRate: dma.rate }),
    ...(guest ? { guestDirtyRate: guest.rate } : {}),
    syncCostMs: sync.ms,
    devices: devices.list,
    ...(availSwitchoverBandwidth !== null ? { availSwitchoverBandwidth } : {}),
    switchoverAck,
    maxIterations,
  };
  return {
    model,
    described: {
      bandwidth,
      downtimeLimitMs,
      ramBytes,
      deviceStateBytes: devices.list.reduce((a, d) => a + (d.stopCopyBytes ?? 0), 0),
      dirtyRate: opts.dirtyRate !== undefined ? dma.rate : null,
      traceSamples: dma.trace?.length ?? null,
      source: dma.trace ? "report" : opts.dirtyRate !== undefined ? "dirty-rate" : "none",
      deviceDirtyRate: dma.rate,
      traceStrategy: report ? report.strategyAtEnd : null,
      traceUpperBound: report !== undefined && UPPER_BOUND_STRATEGIES.has(report.strategyAtEnd),
      guestDirtyRate: guest?.rate ?? null,
      guestDirtyRateSource: guest?.source ?? null,
      syncCostMs: sync.ms,
      syncCostSource: sync.source,
      devices: devices.list,
      deviceSource: devices.source,
      availSwitchoverBandwidth,
      switchoverAck,
      maxIterations,
    },
  };
}

/** Strategies whose reports are every mapped page, not what the devices wrote. */
export const UPPER_BOUND_STRATEGIES: ReadonlySet<string> = new Set(["type1", "all-dirty", "mixed"]);

// --- Internal helpers ---

function ramOf(opts: PredictOptions, report: TrackReport | undefined): number {
  if (opts.ram !== undefined) {
    const ram = Number(parseSize(opts.ram, "--ram"));
    if (ram === 0)
      throw new UsageError(`--ram '${opts.ram}': a guest has some RAM; give its size, e.g. --ram 16G`);
    return ram;
  }
  if (report) return report.ramBytes;
  throw new UsageError("predict needs --ram without --report; give the guest RAM, e.g. --ram 16G");
}

/** The devices' DMA: the report's pre-copy syncs, or --dirty-rate, or nothing (0). */
function deviceDma(
  opts: PredictOptions,
  report: TrackReport | undefined,
): { rate: number; trace?: DirtyTraceSample[] } {
  if (opts.dirtyRate !== undefined)
    return { rate: parseRate(opts.dirtyRate, "--dirty-rate", { allowZero: true }) };
  if (!report) return { rate: 0 };
  // Stop-copy syncs are the quiesced devices: pre-copy is what repeats during a migration.
  const trace = report.samples
    .filter((s) => s.intervalMs > 0 && (s.phase === "pre-copy" || s.phase === "precopy"))
    .map((s) => ({ seconds: s.intervalMs / 1000, dirtyBytes: s.dirtyBytes }));
  if (trace.length === 0)
    throw new UsageError(
      `${opts.report}: the report has no pre-copy sync samples; run track for longer than one interval before --phase-switch`,
    );
  const seconds = trace.reduce((a, s) => a + s.seconds, 0);
  return { rate: trace.reduce((a, s) => a + s.dirtyBytes, 0) / seconds, trace };
}

function guestRate(
  opts: PredictOptions,
): { rate: number; source: DescribedInput["guestDirtyRateSource"] } | null {
  if (opts.guestDirtyRate !== undefined)
    return {
      rate: parseRate(opts.guestDirtyRate, "--guest-dirty-rate", { allowZero: true }),
      source: { kind: "option", file: null, mode: null, calcTimeMs: null },
    };
  const file = opts.guestDirtyRateFrom;
  if (file === undefined) return null;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new UsageError(
      `--guest-dirty-rate-from ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? err}); check the path`,
      { cause: err },
    );
  }
  try {
    const g = parseGuestDirtyRate(text);
    return {
      rate: g.bytesPerSecond,
      source: { kind: g.format, file, mode: g.mode, calcTimeMs: g.calcTimeMs },
    };
  } catch (err) {
    if (!(err instanceof GuestDirtyRateError)) throw err;
    throw new UsageError(`--guest-dirty-rate-from ${file}: ${err.message}`, { cause: err });
  }
}

function syncCost(
  opts: PredictOptions,
  report: TrackReport | undefined,
): { ms: number; source: DescribedInput["syncCostSource"] } {
  if (opts.syncCost !== undefined)
    return { ms: parseDuration(opts.syncCost, "--sync-cost", { allowZero: true }), source: "option" };
  if (report) return { ms: report.syncCost.meanMs, source: "report" };
  return { ms: 0, source: "default" };
}

/** The command line's one device (when any device option is given), else the report's section. */
function deviceData(
  opts: PredictOptions,
  report: TrackReport | undefined,
): { list: DeviceMigrationData[]; source: DescribedInput["deviceSource"] } {
  const precopyGiven =
    opts.precopyInitialSize !== undefined ||
    opts.precopyDirtySize !== undefined ||
    opts.precopyDirtyRate !== undefined ||
    opts.precopyInfo !== undefined ||
    opts.precopyReinit !== undefined;
  if (opts.deviceState === undefined && !precopyGiven) {
    if (report?.deviceState) return { list: devicesFromReport(report.deviceState.devices), source: "report" };
    return { list: [], source: "none" };
  }
  const stopCopyBytes = Number(parseSize(opts.deviceState ?? "0", "--device-state"));
  if (!precopyGiven)
    return { list: stopCopyBytes ? [{ id: "device", stopCopyBytes }] : [], source: "options" };
  if (opts.precopyInitialSize === undefined)
    throw new UsageError(
      "the --precopy-* options describe a PRE_COPY device: give its initial data with --precopy-initial-size SIZE",
    );
  const infoVersion = precopyInfoVersion(opts.precopyInfo ?? "v1");
  return {
    list: [
      {
        id: "device",
        stopCopyBytes,
        precopy: {
          infoVersion,
          initialBytes: Number(parseSize(opts.precopyInitialSize, "--precopy-initial-size")),
          dirtyBytes: Number(parseSize(opts.precopyDirtySize ?? "0", "--precopy-dirty-size")),
          dirtyRate:
            opts.precopyDirtyRate !== undefined
              ? parseRate(opts.precopyDirtyRate, "--precopy-dirty-rate", { allowZero: true })
              : 0,
          reinit: opts.precopyReinit !== undefined ? parseReinit(opts.precopyReinit) : [],
        },
      },
    ],
    source: "options",
  };
}

function precopyInfoVersion(text: string): 1 | 2 {
  if (text === "v1" || text === "1") return 1;
  if (text === "v2" || text === "2") return 2;
  throw new UsageError(
    `--precopy-info '${text}': use v1 (VFIO_MIG_GET_PRECOPY_INFO before Linux 7.1) or v2 (the PRECOPY_INFOv2 opt-in, REINIT)`,
  );
}

/** "2s:64M,5s:32M": at 2 s into pre-copy the device has 64 MiB of new initial data, ... */
export function parseReinit(text: string): { atMs: number; initialBytes: number }[] {
  return text.split(",").map((part) => {
    const m = /^([^:]+):([^:]+)$/.exec(part.trim());
    if (!m)
      throw new UsageError(
        `--precopy-reinit '${part}': use AT:SIZE, e.g. 2s:64M (new initial data 2 s into pre-copy), comma-separated`,
      );
    return {
      atMs: parseDuration(m[1]!, "--precopy-reinit time"),
      initialBytes: Number(parseSize(m[2]!, "--precopy-reinit size")),
    };
  });
}

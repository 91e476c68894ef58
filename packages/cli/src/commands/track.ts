// `vfio-dirty track`: a tracking session (start, a sync every interval, an optional switch to
// stop-copy, stop) with a live line on a terminal, a summary at the end, and on the simulated
// host the ground-truth check: every page a device wrote must have been reported (exit 3 if not).
// Ctrl-C or SIGTERM stops tracking cleanly and still writes the report and the picture.

import { writeFileSync } from "node:fs";
import { constants as os } from "node:os";
import { Command } from "commander";
import type { Context } from "../context.ts";
import { CheckFailedError, EXIT_RUNTIME, ExitError, UsageError } from "../errors.ts";
import { keyValueTable } from "../format/table.ts";
import { formatMs, formatRate } from "../format/units.ts";
import { chooseHost, type HostChoice, hostLine } from "../host.ts";
import { SIM_WORKLOADS } from "../host-open.ts";
import { expose } from "../metrics/exposition.ts";
import { serveMetrics } from "../metrics/server.ts";
import { TrackMetrics } from "../metrics/track.ts";
import { parseDuration } from "../parse/duration.ts";
import { parseListenAddress } from "../parse/listen.ts";
import { parsePciAddresses } from "../parse/pci.ts";
import { addQemuOptions, parseQemuOptions, type QemuOptionFlags } from "../parse/qemu-options.ts";
import { parseCount, parsePageSize } from "../parse/size.ts";
import { checkWritable } from "../parse/writable.ts";
import type { TrackReport } from "../report.ts";
import { trackSvg } from "../svg/pictures.ts";
import type { TrackBackend } from "../track/backend.ts";
import { DirtGrid } from "../track/dirt-grid.ts";
import { runTrack, summaryLines } from "../track/loop.ts";
import { openTrackBackend } from "../track/open.ts";

interface TrackOptions extends QemuOptionFlags {
  duration: string;
  interval: string;
  pageSize: string;
  phaseSwitch?: string;
  workload?: string;
  seed: string;
  report?: string;
  svg?: string;
  fast?: boolean;
  metricsListen?: string;
  /** --device-state / --no-device-state; undefined: on for the simulated host only. */
  deviceState?: boolean;
}

/** The seed simulated workloads use unless --seed is given, so runs repeat. */
export const DEFAULT_SEED = 1;

export function trackCommand(makeContext: (cmd: Command) => Context): Command {
  return addQemuOptions(new Command("track"))
    .description("track dirty pages of VFIO devices: live rate, summary, report and picture")
    .argument("[pci-address...]", "devices to track (default: every VFIO-bound device)")
    .option("--duration <duration>", "how long to track", "30s")
    .option("--interval <duration>", "time between syncs", "1s")
    .option("--page-size <size>", "tracking page size", "4K")
    .option("--phase-switch <duration>", "switch from pre-copy to stop-copy after this long")
    .option(
      "--workload <name|file>",
      `sim: ${SIM_WORKLOADS.join(", ")} or a trace .json, for every device; linux: a plugin (edu or a .js path)`,
    )
    .option("--seed <n>", "seed of the simulated workloads", String(DEFAULT_SEED))
    .option("--report <file.json>", "write the full report (the --json document) here")
    .option("--svg <file.svg>", "write the picture: dirty rate over time and a GPA x time heat map")
    .option("--fast", "sim only: run simulated time as fast as possible instead of at wall-clock pace")
    .option(
      "--device-state",
      "read the devices' migration data into the report: MIG_DATA_SIZE, and for PRE_COPY devices RUNNING -> PRE_COPY with one GET_PRECOPY_INFO per sync, the data read and discarded as a VMM would (default: on for --host sim, off on a real host)",
    )
    .option("--no-device-state", "leave the devices' migration state alone (no deviceState in the report)")
    .option(
      "--metrics-listen <addr>",
      "serve Prometheus/OpenMetrics /metrics here during the run (e.g. 127.0.0.1:9464; port 0: a free one)",
    )
    .addHelpText(
      "after",
      `
Examples:
  $ vfio-dirty track --host sim --duration 10s
  $ vfio-dirty track --host sim:mlx5-vf --duration 20s --phase-switch 15s --report run.json --svg run.svg
  $ vfio-dirty track 0000:00:03.0 --host linux --workload edu --duration 5s
  $ vfio-dirty track --host sim:mlx5-p2p --pre-copy-dirty-page-tracking off=0000:3b:00.2 --phase-switch 5s --duration 8s

--device-state never changes the dirty bitmaps: the readings are advisory (a failed ioctl is an
event, and that device's readings stop there), and every device moved to PRE_COPY goes back to
RUNNING at the end, on Ctrl-C, SIGTERM and errors too. 'predict --report' models the devices with
it. On a real host it starts a pre-copy session on each PRE_COPY device, so it is off unless given.

Exit code 3 when the simulated host's ground truth shows a written page that was never reported.
`,
    )
    .action(async (addresses: string[], opts: TrackOptions, cmd: Command) => {
      const ctx = makeContext(cmd);
      const durationMs = parseDuration(opts.duration, "--duration");
      const intervalMs = parseDuration(opts.interval, "--interval");
      const pageSize = parsePageSize(opts.pageSize, "--page-size");
      const phaseSwitchMs =
        opts.phaseSwitch !== undefined
          ? parseDuration(opts.phaseSwitch, "--phase-switch", { allowZero: true })
          : null;
      const seed = parseCount(opts.seed, "--seed", 2 ** 32 - 1);
      const qemu = parseQemuOptions(opts);
      if (intervalMs > durationMs)
        throw new UsageError(
          `--interval ${opts.interval} is longer than --duration ${opts.duration}; shorten the interval`,
        );
      if (qemu.preCopyDirtyPageTracking !== "none" && phaseSwitchMs === null)
        throw new UsageError(
          "--pre-copy-dirty-page-tracking off reads those devices only in stop-copy; give --phase-switch too",
        );
      if (phaseSwitchMs !== null && phaseSwitchMs > durationMs)
        throw new UsageError(
          `--phase-switch ${opts.phaseSwitch} is after the end of the run (--duration ${opts.duration}); switch to stop-copy within the run`,
        );
      // Before any work: a missing directory must not throw a long measurement away at the end.
      if (opts.report) checkWritable(opts.report, "--report");
      if (opts.svg) checkWritable(opts.svg, "--svg");
      const listen =
        opts.metricsListen !== undefined
          ? parseListenAddress(opts.metricsListen, "--metrics-listen")
          : undefined;
      const choice = chooseHost(ctx.globals.host);
      // Listening comes first: a taken port is refused before any device is opened.
      let metrics: TrackMetrics | undefined;
      const server = listen
        ? await serveMetrics(listen, (f) => metrics?.text(f) ?? expose([], f))
        : undefined;
      try {
        const backend = await openTrackBackend(choice, {
          addresses: parsePciAddresses(addresses),
          pageSize,
          seed,
          workload: opts.workload,
          signal: ctx.io.signal,
          fast: opts.fast === true,
          qemu,
          deviceState: opts.deviceState ?? choice.kind === "sim",
        });
        metrics = new TrackMetrics({
          host: backend.hostName,
          simulated: backend.simulated,
          devices: backend.devices,
          strategy: backend.strategy,
          pageSize: Number(backend.pageSize),
        });
        // Said even under --json and --quiet: with port 0 it is the only way to learn the port.
        if (server) ctx.io.stderr.write(`metrics: ${server.url}\n`);
        // runTrack closes the backend on every path it controls; a forced exit skips those paths.
        const unguard = ctx.io.onForcedExit?.("tracking", () => backend.close());
        try {
          await trackAndReport(
            ctx,
            backend,
            choice,
            { durationMs, intervalMs, phaseSwitchMs, seed },
            opts,
            metrics,
          );
        } finally {
          unguard?.();
        }
      } finally {
        await server?.close();
      }
    });
}

// --- Internal helpers ---

/** The session once the backend is open: live line, report and picture, summary, ground-truth verdict. */
async function trackAndReport(
  ctx: Context,
  backend: TrackBackend,
  choice: HostChoice,
  run: { durationMs: number; intervalMs: number; phaseSwitchMs: number | null; seed: number },
  opts: TrackOptions,
  metrics: TrackMetrics,
): Promise<void> {
  const { durationMs, intervalMs } = run;
  const { out } = ctx;
  out.info(hostLine(backend.host, choice));
  out.info(
    `tracking ${backend.devices.join(", ")} with ${backend.strategy} for ${formatMs(durationMs)}, sync every ${formatMs(intervalMs)} (Ctrl-C stops)`,
  );
  let slowWarned = false;
  // The picture's finer heat map is gathered only when a picture is wanted.
  const grid = opts.svg ? new DirtGrid(backend.gpaEnd, backend.pageSize) : undefined;
  const report = await runTrack(
    backend,
    { ...run, ...(grid ? { grid } : {}) },
    {
      signal: ctx.io.signal,
      // Notes and warnings as they happen, not after the run: a degradation is news now.
      onStarted: (events) => {
        printEvents(ctx, events, metrics);
        for (const r of backend.reasons) out.note(out.color.dim(`why ${backend.strategy}: ${r}`));
      },
      onEvents: (events) => printEvents(ctx, events, metrics),
      onSample: (s, elapsed, sync) => {
        metrics.onSync(s, sync.strategy, sync.perDevice);
        out.liveLine(
          `sync ${s.sync}  ${s.dirtyPages} dirty pages  ${formatRate(s.dirtyRate)}  ${formatMs(elapsed)} / ${formatMs(durationMs)}  [${s.phase}]`,
        );
      },
      onSlowSync: (s, interval) => {
        // With --fast simulated time does not pass during a sync: nothing stretches.
        if (slowWarned || opts.fast) return;
        slowWarned = true;
        out.warn(
          `sync ${s.sync} took ${formatMs(s.syncMs)}${backend.simulated ? " (simulated host)" : ""}, longer than the ${formatMs(interval)} interval: the run takes longer than --duration in wall time (the summary gives both); use a longer --interval`,
        );
      },
    },
  );
  out.clearLive();
  const failed = writeOutputs(report, opts, grid);
  out.document(report);
  printSummary(ctx, report, opts, failed);
  // A failed write is reported after the summary, so the measurement is at least on screen.
  if (failed.length > 0) throw new ExitError(failed.join("; "), EXIT_RUNTIME);
  if (report.groundTruth && !report.groundTruth.ok)
    throw new CheckFailedError(
      `${report.groundTruth.pagesLost} written pages were never reported dirty: a tracking bug; please report it with the report file`,
    );
  if (report.interrupted) throw new ExitError("", signalExitCode(ctx.io.signal.reason));
}

/** 128 + the signal's number, as shells report a process ended by it: 130 for SIGINT, 143 for SIGTERM. */
function signalExitCode(reason: unknown): number {
  const n = typeof reason === "string" ? os.signals[reason as NodeJS.Signals] : undefined;
  return 128 + (n ?? os.signals.SIGINT);
}

/** Writes the report and the picture; returns one line per file that could not be written. */
function writeOutputs(report: TrackReport, opts: TrackOptions, grid: DirtGrid | undefined): string[] {
  const failed: string[] = [];
  const write = (path: string, text: () => string) => {
    let content: string;
    try {
      content = text();
    } catch (err) {
      // A bug in drawing must not cost the summary or the other file.
      failed.push(
        `${path}: not written: internal error (${err instanceof Error ? err.message : err}); please report it with the report file`,
      );
      return;
    }
    try {
      writeFileSync(path, content);
    } catch (err) {
      failed.push(
        `${path}: cannot write (${(err as NodeJS.ErrnoException).code ?? err}); nothing was written there`,
      );
    }
  };
  if (opts.report) write(opts.report, () => `${JSON.stringify(report, null, 2)}\n`);
  if (opts.svg) write(opts.svg, () => trackSvg(report, grid?.snapshot()));
  return failed;
}

/** Start notes as notes; anything the tracker had to do to stay safe as a warning (never quiet). */
function printEvents(
  ctx: Context,
  events: readonly TrackReport["events"][number][],
  metrics: TrackMetrics,
): void {
  for (const e of events)
    if (e.kind === "start-notes") ctx.out.note(ctx.out.color.dim(`note: ${e.message}`));
    else {
      metrics.onEvent(e.kind);
      ctx.out.warn(`${e.kind}: ${e.message}`);
    }
}

function printSummary(
  ctx: Context,
  report: TrackReport,
  opts: TrackOptions,
  failed: readonly string[],
): void {
  const { out } = ctx;
  const c = out.color;
  out.result(keyValueTable(summaryLines(report)));
  if (report.groundTruth)
    out.result(
      report.groundTruth.ok
        ? c.green("ground truth: no page lost")
        : c.red(`ground truth: ${report.groundTruth.pagesLost} pages LOST`),
    );
  if (report.interrupted) out.note(c.yellow("interrupted: tracking stopped cleanly"));
  const written = (p: string | undefined) => p !== undefined && !failed.some((f) => f.startsWith(`${p}:`));
  if (written(opts.report)) out.note(`report: ${opts.report}`);
  if (written(opts.svg)) out.note(`picture: ${opts.svg}`);
}

// `vfio-dirty track`: a tracking session (start, a sync every interval, an optional switch to
// stop-copy, stop) with a live line on a terminal, a summary at the end, and on the simulated
// host the ground-truth check: every page a device wrote must have been reported (exit 3 if not).
// Ctrl-C or SIGTERM stops tracking cleanly and still writes the report and the picture.

import { writeFileSync } from "node:fs";
import { Command } from "commander";
import type { Context } from "../context.ts";
import { CheckFailedError, UsageError } from "../errors.ts";
import { keyValueTable } from "../format/table.ts";
import { formatMs, formatRate } from "../format/units.ts";
import { chooseHost, type HostChoice, hostLine } from "../host.ts";
import { parseDuration } from "../parse/duration.ts";
import { parsePciAddress } from "../parse/pci.ts";
import { addQemuOptions, parseQemuOptions, type QemuOptionFlags } from "../parse/qemu-options.ts";
import { parseCount, parsePageSize } from "../parse/size.ts";
import type { TrackReport } from "../report.ts";
import { trackSvg } from "../svg/pictures.ts";
import type { TrackBackend } from "../track/backend.ts";
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
      "sim: a workload kind or trace file for every device; linux: a plugin (edu or a .js path)",
    )
    .option("--seed <n>", "seed of the simulated workloads", String(DEFAULT_SEED))
    .option("--report <file.json>", "write the full report (the --json document) here")
    .option("--svg <file.svg>", "write the picture: dirty rate over time and a GPA x time heat map")
    .option("--fast", "sim only: run simulated time as fast as possible instead of at wall-clock pace")
    .addHelpText(
      "after",
      `
Examples:
  $ vfio-dirty track --host sim --duration 10s
  $ vfio-dirty track --host sim:mlx5-vf --duration 20s --phase-switch 15s --report run.json --svg run.svg
  $ vfio-dirty track 0000:00:03.0 --host linux --workload edu --duration 5s
  $ vfio-dirty track --host sim:mlx5-p2p --pre-copy-dirty-page-tracking off=0000:3b:00.2 --phase-switch 5s --duration 8s

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
      const choice = chooseHost(ctx.globals.host);
      const backend = await openTrackBackend(choice, {
        addresses: addresses.map(parsePciAddress),
        pageSize,
        seed,
        workload: opts.workload,
        signal: ctx.io.signal,
        fast: opts.fast === true,
        qemu,
      });
      // runTrack closes the backend on every path it controls; a forced exit skips those paths.
      const unguard = ctx.io.onForcedExit?.("tracking", () => backend.close());
      try {
        await trackAndReport(ctx, backend, choice, { durationMs, intervalMs, phaseSwitchMs, seed }, opts);
      } finally {
        unguard?.();
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
): Promise<void> {
  const { durationMs, intervalMs } = run;
  ctx.out.info(hostLine(backend.host, choice));
  ctx.out.info(
    `tracking ${backend.devices.join(", ")} with ${backend.strategy} for ${formatMs(durationMs)}, sync every ${formatMs(intervalMs)} (Ctrl-C stops)`,
  );
  const report = await runTrack(backend, run, {
    signal: ctx.io.signal,
    onSample: (s, elapsed) =>
      ctx.out.liveLine(
        `sync ${s.sync}  ${s.dirtyPages} dirty pages  ${formatRate(s.dirtyRate)}  ${formatMs(elapsed)} / ${formatMs(durationMs)}  [${s.phase}]`,
      ),
  });
  ctx.out.clearLive();
  writeOutputs(report, opts);
  ctx.out.document(report);
  printSummary(ctx, report, opts);
  if (report.groundTruth && !report.groundTruth.ok)
    throw new CheckFailedError(
      `${report.groundTruth.pagesLost} written pages were never reported dirty: a tracking bug; please report it with the report file`,
    );
}

function writeOutputs(report: TrackReport, opts: TrackOptions): void {
  const write = (path: string, text: string) => {
    try {
      writeFileSync(path, text);
    } catch (err) {
      throw new UsageError(
        `${path}: cannot write (${(err as NodeJS.ErrnoException).code}); check the directory exists`,
        {
          cause: err,
        },
      );
    }
  };
  if (opts.report) write(opts.report, `${JSON.stringify(report, null, 2)}\n`);
  if (opts.svg) write(opts.svg, trackSvg(report));
}

function printSummary(ctx: Context, report: TrackReport, opts: TrackOptions): void {
  const { out } = ctx;
  const c = out.color;
  // What the tracker had to do to stay safe (degraded, restarted, over-reported) is never quiet.
  for (const e of report.events)
    if (e.kind === "start-notes") out.info(c.dim(`note: ${e.message}`));
    else out.warn(`${e.kind}: ${e.message}`);
  for (const r of report.reasons) out.info(c.dim(`why ${report.strategy}: ${r}`));
  out.result(keyValueTable(summaryLines(report)));
  if (report.groundTruth)
    out.result(
      report.groundTruth.ok
        ? c.green("ground truth: no page lost")
        : c.red(`ground truth: ${report.groundTruth.pagesLost} pages LOST`),
    );
  if (report.interrupted) out.info(c.yellow("interrupted: tracking stopped cleanly"));
  if (opts.report) out.info(`report: ${opts.report}`);
  if (opts.svg) out.info(`picture: ${opts.svg}`);
}

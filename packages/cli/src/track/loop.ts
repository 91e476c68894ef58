// The track loop: start, sync every interval, optionally switch to stop-copy, stop, and build the
// report. Ctrl-C / SIGTERM ends the loop early: the tracker still gets its final sync and stop,
// and the report is still written, marked `interrupted`.
//
//   const report = await runTrack(backend, { durationMs: 10_000, intervalMs: 1000, ... }, hooks);

import type { Bitmap } from "@vfio-dirty/tracker";
import { formatBytes, formatMs, formatRate, hex } from "../format/units.ts";
import {
  type GroundTruth,
  maxOf,
  type SyncSample,
  summarizeRates,
  TRACK_REPORT_SCHEMA,
  type TrackReport,
} from "../report.ts";
import type { TrackBackend } from "./backend.ts";
import type { DirtGrid } from "./dirt-grid.ts";

export interface TrackOptions {
  durationMs: number;
  intervalMs: number;
  /** Switch to stop-copy this long after start (null: stay in pre-copy). */
  phaseSwitchMs: number | null;
  seed: number;
  /** Columns (GPA buckets) of the heat map. */
  heatmapColumns?: number;
  /** Where the picture's finer heat map is gathered (bounded however long the run). */
  grid?: DirtGrid;
}

export interface TrackHooks {
  signal: AbortSignal;
  /** Called after each sync (for the live line and the metrics), with the tracker's per-unit counts. */
  onSample?(s: SyncSample, elapsedMs: number, sync: SyncDetail): void;
  /** Called once tracking has started, with what the tracker recorded while starting. */
  onStarted?(events: readonly TrackEvent[]): void;
  /** Called after each sync with the events the tracker recorded during it (printed as they happen). */
  onEvents?(events: readonly TrackEvent[]): void;
  /**
   * Called for each sync that took longer than the interval: the run then takes longer, in wall
   * time, than the tracked time says.
   */
  onSlowSync?(s: SyncSample, intervalMs: number): void;
  /** Wall clock in ms (default performance.now): the report's wallMs. */
  wallNow?(): number;
}

type TrackEvent = TrackReport["events"][number];

/** What the tracker said of one sync beyond the sample: the strategy used, and per unit. */
export interface SyncDetail {
  strategy: string;
  perDevice: ReturnType<TrackBackend["tracker"]["sync"]>["perDevice"];
}

/** Runs a tracking session on `backend` and returns its report. Always stops tracking. */
export async function runTrack(
  backend: TrackBackend,
  opts: TrackOptions,
  hooks: TrackHooks,
): Promise<TrackReport> {
  const { tracker, core } = backend;
  const columns = opts.heatmapColumns ?? 64;
  const samples: SyncSample[] = [];
  const rows: number[][] = [];
  const events: TrackReport["events"] = [];
  const startedAt = new Date().toISOString();
  // Every page any sync reported: the ground-truth check compares the union of reports with the
  // union of writes. Kept at the check granularity (see checkPageSize), so a 16 TiB guest needs
  // 32 MiB, not 512 MiB.
  const checkSize = checkPageSize(backend.gpaEnd, backend.pageSize);
  let reported: Bitmap | undefined;
  let interrupted = false;
  let lastStrategy: string | undefined;
  let phaseSwitchMs: number | null = null;
  let t0 = 0;
  const wallNow = hooks.wallNow ?? (() => performance.now());
  let wall0 = 0;
  let slowSyncs = 0;
  let memory: TrackReport["memory"] | undefined;
  let report: Omit<TrackReport, "trackingStopped">;
  let trackingStopped: boolean | null = null;
  try {
    // Allocated inside the try: a failure here must still close the opened backend.
    reported = core.bitmap({ nbits: nbitsFor(backend.gpaEnd, checkSize), pageSize: checkSize, base: 0n });
    tracker.start();
    tracker.setPhase("pre-copy");
    hooks.onStarted?.(tracker.events.map(toEvent));
    let seenEvents = tracker.events.length;
    t0 = backend.nowMs();
    wall0 = wallNow();
    let last = t0;
    let stopCopy = false;
    // Device state: advisory readings beside tracking, never part of the bitmaps. Its events
    // are news as they happen, like the tracker's.
    const ds = backend.deviceState;
    const dsEvents = () => {
      const fresh = ds?.takeEvents() ?? [];
      events.push(...fresh);
      if (fresh.length > 0) hooks.onEvents?.(fresh);
    };
    ds?.start(0);
    dsEvents();
    for (;;) {
      const elapsed = backend.nowMs() - t0;
      if (elapsed >= opts.durationMs) break;
      // The switch is an instant of its own: time runs up to it, the devices stop, and the sync
      // right after reads what they wrote until then.
      const untilSwitch =
        !stopCopy && opts.phaseSwitchMs !== null && opts.phaseSwitchMs > elapsed
          ? opts.phaseSwitchMs - elapsed
          : Number.POSITIVE_INFINITY;
      const step = Math.min(opts.intervalMs, opts.durationMs - elapsed, untilSwitch);
      await backend.advance(step, hooks.signal);
      if (hooks.signal.aborted) interrupted = true;
      if (!stopCopy && opts.phaseSwitchMs !== null && backend.nowMs() - t0 >= opts.phaseSwitchMs) {
        const at = backend.nowMs() - t0;
        // Pre-copy ends here: the stop-copy size while the device is still in PRE_COPY.
        ds?.finish(at);
        dsEvents();
        for (const note of backend.quiesce?.() ?? [])
          events.push({ tMs: at, kind: "not-quiesced", message: note });
        tracker.setPhase("stop-copy");
        stopCopy = true;
        phaseSwitchMs = at;
      }
      let detail: SyncDetail = { strategy: backend.strategy, perDevice: undefined };
      last = syncOnce(backend, reported, samples, rows, columns, t0, last, opts.grid, (r) => {
        lastStrategy = r.strategy;
        detail = { strategy: r.strategy, perDevice: r.perDevice };
        memory ??= r.perSection?.map((m) => ({ gpa: hex(m.iova), length: Number(m.length), kind: m.kind }));
      });
      const sample = samples.at(-1)!;
      ds?.sample(sample.tMs);
      dsEvents();
      hooks.onSample?.(sample, backend.nowMs() - t0, detail);
      const fresh = tracker.events.slice(seenEvents);
      seenEvents = tracker.events.length;
      if (fresh.length > 0) hooks.onEvents?.(fresh.map(toEvent));
      if (sample.syncMs > opts.intervalMs) {
        slowSyncs++;
        hooks.onSlowSync?.(sample, opts.intervalMs);
      }
      if (interrupted) break;
      // Let the event loop run between syncs: signals, metrics scrapes and timers are handled
      // even when the host's time needs no waiting (--fast).
      await yieldToEventLoop();
      if (hooks.signal.aborted) interrupted = true;
    }
    // After the last sync, so the tracker never sees PRE_COPY -> RUNNING (it reads that as a reset).
    ds?.finish(backend.nowMs() - t0);
    ds?.close(backend.nowMs() - t0);
    dsEvents();
    const wallMs = wallNow() - wall0;
    const truth = groundTruth(backend, reported, checkSize);
    // The tracker's own record, start-time degradations included (not only those of syncs).
    for (const e of tracker.events) events.push(toEvent(e));
    report = {
      schema: TRACK_REPORT_SCHEMA,
      command: "track",
      host: backend.hostName,
      simulated: backend.simulated,
      devices: [...backend.devices],
      strategy: backend.strategy,
      // What the last sync really used: "mixed" or "all-dirty" after a unit degraded.
      strategyAtEnd: lastStrategy ?? backend.strategy,
      reasons: [...backend.reasons],
      pageSize: Number(backend.pageSize),
      ramBytes: Number(backend.ramBytes),
      memory: memory ?? [],
      startedAt,
      durationMs: backend.nowMs() - t0,
      wallMs,
      interrupted,
      phaseSwitchMs,
      workload: backend.workload,
      seed: opts.seed,
      syncs: samples.length,
      samples,
      dirtyRate: summarizeRates(samples),
      bytesReadFromKernel: samples.reduce((a, s) => a + s.bytesRead, 0),
      syncCost: {
        meanMs: samples.length ? samples.reduce((a, s) => a + s.syncMs, 0) / samples.length : 0,
        maxMs: maxOf(samples.map((s) => s.syncMs)),
        // On the simulated host a sync's wall time is the simulator's work, not a kernel's.
        simulated: backend.simulated,
        slowSyncs,
      },
      events,
      groundTruth: truth,
      heatmap: {
        base: hex(0n),
        bucketBytes: Number(bucketBytes(backend.gpaEnd, backend.pageSize, columns)),
        columns,
        rows,
      },
      ...(ds ? { deviceState: ds.section() } : {}),
    };
  } finally {
    reported?.free();
    // Stopped on every path, errors included; the report then says whether the host agrees.
    trackingStopped = backend.close();
  }
  return { ...report, trackingStopped };
}

/** One line of human summary per fact, for the end of a run. */
export function summaryLines(r: TrackReport): [string, string][] {
  const lines: [string, string][] = [
    [
      "strategy",
      r.strategyAtEnd === r.strategy ? r.strategy : `${r.strategy} (at the end: ${r.strategyAtEnd})`,
    ],
    ["devices", r.devices.join(", ") || "(none)"],
    [
      "syncs",
      `${r.syncs} in ${formatMs(r.durationMs)}${r.simulated ? " simulated" : ""} (wall time ${formatMs(r.wallMs)})${r.interrupted ? ", interrupted" : ""}`,
    ],
    [
      "dirty rate",
      `mean ${formatRate(r.dirtyRate.mean)}, p50 ${formatRate(r.dirtyRate.p50)}, p99 ${formatRate(r.dirtyRate.p99)}, max ${formatRate(r.dirtyRate.max)}`,
    ],
    ["read from kernel", formatBytes(r.bytesReadFromKernel)],
    ["sync cost", syncCostLine(r)],
  ];
  if (r.groundTruth) {
    const g = r.groundTruth;
    lines.push([
      "ground truth",
      `written ${g.pagesWritten}, reported ${g.pagesReported}, lost ${g.pagesLost}, over-report ${g.overReportRatio === null ? "n/a" : `${g.overReportRatio.toFixed(2)}x`}`,
    ]);
  }
  for (const d of r.deviceState?.devices ?? []) lines.push([`device state ${d.device}`, deviceStateLine(d)]);
  const serious = r.events.filter((e) => e.kind !== "start-notes").length;
  if (serious) lines.push(["events", `${serious} (listed above; details in the report)`]);
  return lines;
}

// --- Internal helpers ---

/** "stop-copy 64 MiB; PRE_COPY info v2: 5 readings, last initial 0 B dirty 1 MiB, 1 REINIT". */
function deviceStateLine(d: NonNullable<TrackReport["deviceState"]>["devices"][number]): string {
  const stop = `stop-copy ${d.stopCopyBytes === null ? "unknown (no MIG_DATA_SIZE)" : formatBytes(d.stopCopyBytes)}`;
  if (d.precopyInfoVersion === null) return `${stop}; no PRE_COPY`;
  const last = d.precopy.at(-1);
  const reinits = d.precopyInfoVersion === 2 ? d.precopy.filter((p) => p.reinit).length : 0;
  const readings = `${d.precopy.length} reading${d.precopy.length === 1 ? "" : "s"}`;
  return `${stop}; PRE_COPY info v${d.precopyInfoVersion}: ${readings}${last ? `, last initial ${formatBytes(last.initialBytes)} dirty ${formatBytes(last.dirtyBytes)}` : ""}${reinits ? `, ${reinits} REINIT` : ""}`;
}

function syncCostLine(r: TrackReport): string {
  const c = r.syncCost;
  const slow = c.slowSyncs
    ? `; ${c.slowSyncs} sync${c.slowSyncs === 1 ? "" : "s"} took longer than the interval`
    : "";
  // The simulator's time says how much work a sync is here, not what a kernel would take.
  return `mean ${formatMs(c.meanMs)}, max ${formatMs(c.maxMs)}${c.simulated ? " (simulated host)" : ""}${slow}`;
}

function toEvent(e: { atMs: number; kind: string; unit: string; message: string }): TrackEvent {
  return { tMs: e.atMs, kind: e.kind, message: `${e.unit}: ${e.message}` };
}

/** Resolves on the next turn of the event loop (after pending I/O and signal callbacks). */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function syncOnce(
  backend: TrackBackend,
  reported: Bitmap,
  samples: SyncSample[],
  rows: number[][],
  columns: number,
  t0: number,
  last: number,
  grid: DirtGrid | undefined,
  onResult: (r: ReturnType<TrackBackend["tracker"]["sync"]>) => void,
): number {
  const perBucket = bucketBytes(backend.gpaEnd, backend.pageSize, columns) / backend.pageSize;
  const row = new Array<number>(columns).fill(0);
  // Windows, not one bitmap of the whole guest: memory stays bounded for huge guests. Each
  // window feeds the union of reports and its share of the heat-map row, both counted in wasm.
  const fine = grid?.newRow();
  const r = backend.tracker.sync({
    onWindow: (w) => {
      backend.core.convert(w, reported);
      addDensity(row, w, perBucket);
      if (fine) grid!.addWindow(fine, w, backend.core);
    },
  });
  // A window handed over twice (a read failed in a later window: the earlier ones come again,
  // all dirty) adds its pages twice; a column never holds more pages than it spans.
  for (const [c, n] of row.entries()) row[c] = Math.min(n, Number(perBucket));
  rows.push(row);
  onResult(r);
  const now = backend.nowMs();
  const intervalMs = now - last;
  if (fine) grid!.push(fine, last - t0, now - t0);
  const dirtyBytes = r.dirtyPages * Number(backend.pageSize);
  samples.push({
    sync: samples.length + 1,
    tMs: now - t0,
    intervalMs,
    phase: r.phase,
    dirtyPages: r.dirtyPages,
    dirtyBytes,
    dirtyRate: intervalMs > 0 ? (dirtyBytes * 1000) / intervalMs : 0,
    syncMs: r.durationMs,
    bytesRead: r.kernelBytes,
  });
  return now;
}

/** Adds a window's dirty pages to the heat-map columns it overlaps. */
function addDensity(row: number[], w: Bitmap, perBucket: bigint): void {
  const first = w.base / w.pageSize; // page number of the window's bit 0
  const end = first + BigInt(w.nbits);
  for (let c = Number(first / perBucket); c < row.length; c++) {
    const lo = BigInt(c) * perBucket;
    if (lo >= end) break;
    const from = lo > first ? lo : first;
    const to = lo + perBucket < end ? lo + perBucket : end;
    if (to > from) row[c]! += w.count(Number(from - first), Number(to - from));
  }
}

/**
 * Granularity of the ground-truth check: the tracking page size, at least 4 KiB (the sim's
 * truth is per 4 KiB page), and coarser for guests so large that a union bitmap at that size
 * would pass 2^28 bits (32 MiB).
 */
export function checkPageSize(gpaEnd: bigint, pageSize: bigint): bigint {
  let g = pageSize > 4096n ? pageSize : 4096n;
  while (gpaEnd / g > 1n << 28n) g *= 2n;
  return g;
}

/** Bytes per heat-map column: whole pages, so every column covers the same span. */
function bucketBytes(gpaEnd: bigint, pageSize: bigint, columns: number): bigint {
  const pages = (gpaEnd + pageSize - 1n) / pageSize;
  const perBucket = (pages + BigInt(columns) - 1n) / BigInt(columns);
  return (perBucket > 0n ? perBucket : 1n) * pageSize;
}

function nbitsFor(gpaEnd: bigint, pageSize: bigint): number {
  const n = (gpaEnd + pageSize - 1n) / pageSize;
  return Number(((n + 63n) / 64n) * 64n) || 64;
}

function groundTruth(backend: TrackBackend, reported: Bitmap, checkSize: bigint): GroundTruth | null {
  const pages = backend.writtenSinceStart?.();
  if (!pages) return null;
  const { core } = backend;
  // Written pages at the check granularity, set run by run (never bit by bit), then the ones no
  // report covered.
  const written = core.bitmap({ nbits: reported.nbits, pageSize: checkSize, base: 0n });
  try {
    const ratio = checkSize / 4096n;
    let outside = 0;
    let i = 0;
    while (i < pages.length) {
      const start = BigInt(pages[i]!) / ratio;
      let end = start + 1n;
      let j = i + 1;
      while (j < pages.length && BigInt(pages[j]!) / ratio <= end) {
        end = BigInt(pages[j]!) / ratio + 1n;
        j++;
      }
      // Writes beyond tracked memory cannot have been reported: they count as lost.
      const inEnd = end < BigInt(written.nbits) ? end : BigInt(written.nbits);
      if (inEnd > start) written.set(Number(start), Number(inEnd - start));
      if (end > inEnd) outside += Number(end - (start > inEnd ? start : inEnd));
      i = j;
    }
    const pagesWritten = written.count() + outside;
    written.andNotFrom(reported, 0, 0, reported.nbits);
    const pagesLost = written.count() + outside;
    const pagesReported = reported.count();
    return {
      checkPageSize: Number(checkSize),
      pagesWritten,
      pagesReported,
      pagesLost,
      overReportRatio: pagesWritten > 0 ? pagesReported / pagesWritten : null,
      ok: pagesLost === 0,
    };
  } finally {
    written.free();
  }
}

// The track report: what `track --report FILE.json` writes and `track --json` prints (one shape),
// and what `predict --report` reads back. Documented in packages/cli/README.md; the `schema`
// field changes when a field's meaning does.
//
// Byte counts and rates are numbers (exact below 2^53); addresses are "0x..." strings, because
// they use the whole u64 range.

import { readFileSync } from "node:fs";
import { UsageError } from "./errors.ts";

export const TRACK_REPORT_SCHEMA = "vfio-dirty/track-report@1";

/** One sync. */
export interface SyncSample {
  /** 1-based sync number. */
  sync: number;
  /** Time of the sync since tracking started, ms. */
  tMs: number;
  /** Time since the previous sync (or the start), ms. */
  intervalMs: number;
  phase: string;
  dirtyPages: number;
  dirtyBytes: number;
  /** dirtyBytes / intervalMs, in bytes per second. */
  dirtyRate: number;
  /** Wall time the sync took, ms. */
  syncMs: number;
  /** Bitmap bytes read from the kernel by this sync. */
  bytesRead: number;
}

export interface RateSummary {
  mean: number;
  p50: number;
  p99: number;
  max: number;
}

export interface GroundTruth {
  /**
   * Granularity of the check in bytes: the tracking page size, at least 4 KiB, coarser for
   * guests above 1 TiB at 4 KiB. The page counts below are in pages of this size.
   */
  checkPageSize: number;
  /** Distinct pages the simulated devices wrote while tracking ran. */
  pagesWritten: number;
  /** Distinct pages the tracker reported dirty. */
  pagesReported: number;
  /** Written but never reported: must be 0. */
  pagesLost: number;
  /** pagesReported / pagesWritten (1 = exact; null when nothing was written). */
  overReportRatio: number | null;
  ok: boolean;
}

export interface Heatmap {
  /** Guest-physical address of the first column. */
  base: string;
  /** Bytes each column covers. */
  bucketBytes: number;
  columns: number;
  /** One row per sync: dirty pages per column. */
  rows: number[][];
}

/**
 * VFIO migration data of the tracked devices: optional, filled by hosts that read it (the adapter's
 * MIG_DATA_SIZE and VFIO_MIG_GET_PRECOPY_INFO). `predict --report` models the devices with it.
 */
export interface DeviceStateSection {
  devices: DeviceStateReading[];
}

export interface DeviceStateReading {
  /** PCI address. */
  device: string;
  /**
   * VFIO_DEVICE_FEATURE_MIG_DATA_SIZE (stop_copy_length) when pre-copy ended (at the switch to
   * stop-copy, or after the last sync): the device state still to send in STOP_COPY; null when the
   * device cannot say.
   */
  stopCopyBytes: number | null;
  /**
   * How GET_PRECOPY_INFO's flags were read: 1 before the PRECOPY_INFOv2 opt-in (the kernel echoes
   * what user space passed in, so REINIT means nothing), 2 after it; null when the device has no
   * PRE_COPY.
   */
  precopyInfoVersion: 1 | 2 | null;
  /**
   * One VFIO_MIG_GET_PRECOPY_INFO reading per sync while the device was in PRE_COPY; `track`
   * drains the data fd after each, so each reading is what became pending since the last.
   */
  precopy: PrecopyInfoReading[];
}

export interface PrecopyInfoReading {
  /** Time since tracking started, ms (the same clock as samples[].tMs). */
  tMs: number;
  initialBytes: number;
  dirtyBytes: number;
  /** VFIO_PRECOPY_INFO_REINIT was set (meaningful with precopyInfoVersion 2 only). */
  reinit: boolean;
  /**
   * Bytes read from the data fd right after this reading (absent: nothing was read, so the next
   * reading still counts them). predict needs it to tell new data from data not yet sent.
   */
  drainedBytes?: number;
}

export interface TrackReport {
  schema: typeof TRACK_REPORT_SCHEMA;
  command: "track";
  host: string;
  simulated: boolean;
  devices: string[];
  /** The strategy chosen at start. */
  strategy: string;
  /** The strategy of the last sync ("mixed" when some unit degraded to all-dirty). */
  strategyAtEnd: string;
  reasons: string[];
  pageSize: number;
  ramBytes: number;
  /**
   * The guest memory sections tracked (RAM) or only logged (pci-bar), from the tracker's first
   * sync: the picture draws them as bands. Empty when no sync ran.
   */
  memory: { gpa: string; length: number; kind: string }[];
  startedAt: string;
  /** Tracked time: the host's clock from start to the last sync (simulated time on the sim). */
  durationMs: number;
  /**
   * Wall-clock time of the same span. Longer than durationMs when syncs took longer than the
   * interval (see syncCost.slowSyncs), or on the simulated host with --fast, shorter.
   */
  wallMs: number;
  /** True when Ctrl-C / SIGTERM ended the run early. */
  interrupted: boolean;
  /** Milliseconds after start at which the tracker switched to stop-copy, or null. */
  phaseSwitchMs: number | null;
  workload: string;
  seed: number;
  syncs: number;
  samples: SyncSample[];
  dirtyRate: RateSummary;
  bytesReadFromKernel: number;
  syncCost: {
    meanMs: number;
    maxMs: number;
    /** True on the simulated host: the time is the simulator's work, not a real kernel's. */
    simulated: boolean;
    /** Syncs that took longer than the interval (each stretches the run in wall time). */
    slowSyncs: number;
  };
  events: { tMs: number; kind: string; message: string }[];
  groundTruth: GroundTruth | null;
  /** After the run: the host confirms no dirty tracking is left running (null: cannot tell). */
  trackingStopped: boolean | null;
  heatmap: Heatmap;
  /** The devices' migration data, when the host read it (optional). */
  deviceState?: DeviceStateSection;
}

/** Reads and checks a report written by `track --report`; any problem is a usage error. */
export function readTrackReport(path: string): TrackReport {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new UsageError(
      `${path}: cannot read the report (${(err as NodeJS.ErrnoException).code ?? err}); check the path`,
      {
        cause: err,
      },
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${path}: not JSON; give a file written by 'vfio-dirty track --report'`, {
      cause: err,
    });
  }
  const r = doc as Partial<TrackReport>;
  if (typeof r !== "object" || r === null || r.schema !== TRACK_REPORT_SCHEMA)
    throw new UsageError(
      `${path}: not a vfio-dirty track report (schema ${TRACK_REPORT_SCHEMA}); write one with 'track --report'`,
    );
  if (typeof r.ramBytes !== "number" || !Array.isArray(r.samples))
    throw new UsageError(
      `${path}: the report lacks ramBytes or samples; write it again with 'track --report'`,
    );
  for (const s of r.samples) {
    if (
      typeof s?.intervalMs !== "number" ||
      typeof s?.dirtyBytes !== "number" ||
      s.intervalMs < 0 ||
      s.dirtyBytes < 0
    )
      throw new UsageError(
        `${path}: a sample lacks intervalMs or dirtyBytes; write the report again with 'track --report'`,
      );
  }
  if (r.deviceState !== undefined) checkDeviceState(path, r.deviceState);
  return r as TrackReport;
}

/** The `deviceState` section, field by field (predict computes with it). */
function checkDeviceState(path: string, section: unknown): void {
  const bad = (what: string) =>
    new UsageError(`${path}: deviceState ${what}; see the track-report schema (deviceState)`);
  const count = (v: unknown) => typeof v === "number" && Number.isFinite(v) && v >= 0;
  const devices = (section as { devices?: unknown } | null)?.devices;
  if (!Array.isArray(devices)) throw bad("has no devices[]");
  for (const d of devices as Partial<DeviceStateReading>[]) {
    if (typeof d?.device !== "string") throw bad("has a device without its PCI address");
    if (d.stopCopyBytes !== null && !count(d.stopCopyBytes))
      throw bad(`of ${d.device}: stopCopyBytes is not a size`);
    if (d.precopyInfoVersion !== null && d.precopyInfoVersion !== 1 && d.precopyInfoVersion !== 2)
      throw bad(`of ${d.device}: precopyInfoVersion must be 1, 2 or null`);
    if (!Array.isArray(d.precopy)) throw bad(`of ${d.device}: precopy must be a list of readings`);
    let last = Number.NEGATIVE_INFINITY;
    for (const p of d.precopy) {
      if (!count(p?.tMs) || !count(p.initialBytes) || !count(p.dirtyBytes) || typeof p.reinit !== "boolean")
        throw bad(`of ${d.device}: a precopy reading needs tMs, initialBytes, dirtyBytes and reinit`);
      if (p.drainedBytes !== undefined && !count(p.drainedBytes))
        throw bad(`of ${d.device}: a precopy reading's drainedBytes is not a size`);
      if (p.tMs < last) throw bad(`of ${d.device}: precopy readings are not in time order`);
      last = p.tMs;
    }
  }
}

/** Percentile by nearest rank (p in 0..100) of a non-empty list; 0 for an empty one. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

/** Mean, p50, p99, max of the per-sync dirty rates. */
export function summarizeRates(samples: readonly SyncSample[]): RateSummary {
  const rates = samples.map((s) => s.dirtyRate);
  const mean = rates.length ? rates.reduce((a, b) => a + b, 0) / rates.length : 0;
  return {
    mean,
    p50: percentile(rates, 50),
    p99: percentile(rates, 99),
    max: maxOf(rates),
  };
}

/** Largest of `values`, 0 for none. A loop: spreading a long run's samples into Math.max overflows the stack. */
export function maxOf(values: Iterable<number>): number {
  let m = 0;
  let first = true;
  for (const v of values) {
    if (first || v > m) m = v;
    first = false;
  }
  return m;
}

// The tracker's public types: its configuration, its reports, its errors and the Tracker itself.
// The implementation is in tracker.ts (createTracker), which re-exports all of these.

import { hex } from "@vfio-dirty/vfio-adapter/util";
import type { Bitmap, BitmapCore } from "./bitmap.ts";
import type { IovaRange, MemorySection } from "./ranges.ts";
import type { StrategyChoice, StrategyName } from "./select.ts";
import type { DirtyStrategy, DmaMapper, TrackerEvent } from "./strategy.ts";

export type Phase = "setup" | "pre-copy" | "stop-copy";

/** The older spelling of "pre-copy": still accepted by setPhase (deprecated), never reported. */
export type DeprecatedPhase = "precopy";

/** What to do with a vIOMMU mapping device logging cannot see (TrackerConfig.viommu.untracked). */
export type UntrackedPolicy = "report-dirty" | "re-arm" | "adaptive";

/** A tracking unit: one device (device logging) or the whole container / IOAS (IOMMU strategies). */
export interface UnitConfig {
  /** A device id (PCI address) or "iommu". */
  readonly id: string;
  /** Devices whose DMA this unit sees. */
  readonly devices: readonly string[];
  readonly strategy: DirtyStrategy;
  /** QEMU x-pre-copy-dirty-page-tracking: false skips the unit during pre-copy. Default true. */
  readonly preCopy?: boolean;
}

export interface TrackerConfig {
  readonly core: BitmapCore;
  readonly units: readonly UnitConfig[];
  /**
   * Guest memory in GPA space. RAM sections are tracked and reported; "pci-bar" sections are
   * only part of what device logging is started on (QEMU's 64-bit PCI range).
   */
  readonly memory: readonly MemorySection[];
  /** Tracking page size in bytes; default 4096. */
  readonly pageSize?: bigint;
  /** Guest memory queried per window; default 64 GiB. Rounded to whole bitmap words. */
  readonly windowBytes?: bigint;
  /**
   * A vIOMMU: devices DMA in IOVA space. `aperture` is the IOVA space devices may use: device
   * logging is started over it and over every mapping made before start() outside it (default:
   * the IOVA ranges mapped when start() is called, or the guest memory when none is). `mapper`
   * makes the kernel's DMA mappings (omit it when the caller maps by itself). `untracked` says
   * what happens to a mapping made after start() that the device logs cannot see (outside the
   * IOVA ranges their START accepted): "report-dirty" reports its pages dirty on every sync while
   * it exists and once more after it is unmapped; "re-arm" reads the logs at the next sync, then
   * STOPs and STARTs them over the IOVA space mapped now (bounded by the devices' range and span
   * limits, as at start), and reports every page mapped once more, because the device may have
   * written any of them between the STOP and the START; "adaptive" (the default) reports dirty
   * until that has cost as much as one re-arm would, then re-arms (measured in
   * bench/untracked-policy.ts: within 1.5x of the better of the two on every workload there,
   * where each of the others is 6-15x worse on one of them).
   */
  readonly viommu?: {
    readonly aperture?: readonly IovaRange[];
    readonly mapper?: DmaMapper;
    readonly untracked?: UntrackedPolicy;
  };
  /** Milliseconds, monotonic; default performance.now. */
  readonly now?: () => number;
  /**
   * Count each unit's pages (one pass over the bitmap per unit). Default true; false leaves
   * `perDevice[id].pages` undefined and saves those passes (the benchmark shows both).
   */
  readonly perDeviceCounts?: boolean;
  /**
   * What start() does when the kernel refuses a unit's START (after the strategy's own bounded
   * retries). Without it, that unit alone degrades to all-dirty (event "degraded").
   */
  readonly startFallback?: StartFallback;
}

/**
 * Start-time fallback, decided per container as QEMU does: if one unit cannot start, every unit
 * is stopped and the whole set moves to the next entry of `chain` (device -> iommufd -> type1 ->
 * all-dirty, as far as the probe found them usable). Each refusal is an event "start-refused"
 * naming the call and errno, each move an event "fallback".
 */
export interface StartFallback {
  /** Complete unit sets, best first; the last is normally all-dirty. */
  readonly chain: readonly (readonly UnitConfig[])[];
  /** QEMU enable-migration: with "auto", ending up all-dirty is a blocker (event "blocked"). */
  readonly enableMigration: "auto" | "on";
  /** With "auto": start all-dirty anyway (the "blocked" event stays) instead of throwing. */
  readonly ignoreBlockers?: boolean;
  /** The selection the chain came from; a blocked start() throws it, with the refusals added. */
  readonly choice?: StrategyChoice;
}

export interface UnitReport {
  readonly strategy: StrategyName;
  /** False when the unit was skipped (pre-copy with preCopy=false). */
  readonly queried: boolean;
  /**
   * Pages this unit reported that no unit queried before it in this sync had (units report into
   * one bitmap, so overlaps count once, for the first). With a vIOMMU, counted in IOVA pages.
   * Undefined when the tracker was created with perDeviceCounts: false.
   */
  readonly pages: number | undefined;
}

export interface SectionReport extends IovaRange {
  readonly kind: MemorySection["kind"];
  readonly pages: number;
}

export interface DirtyReport {
  readonly seq: number;
  readonly phase: Phase;
  /** Strategy of the units (the first unit's when all agree; "mixed" after a degradation). */
  readonly strategy: StrategyName | "mixed";
  readonly pageSize: bigint;
  /**
   * GPA-space bitmap at the tracking page size, base 0 (undefined with onWindow or when skipped).
   * Owned by the tracker, valid until the next sync.
   */
  readonly bitmap: Bitmap | undefined;
  readonly dirtyPages: number;
  readonly perDevice: Readonly<Record<string, UnitReport>>;
  readonly perSection: readonly SectionReport[];
  readonly durationMs: number;
  /** Bytes of bitmap the kernel wrote for this sync. */
  readonly kernelBytes: number;
  /** Events recorded during this sync. */
  readonly events: readonly TrackerEvent[];
  /** Why no work was done: "setup" (QEMU does no sync during setup). */
  readonly skipped?: "setup";
  /** Dirty pages that could not be merged into `into` because it does not cover them. */
  readonly notMerged?: number;
}

export interface SyncOptions {
  /**
   * Receive each window (GPA space) instead of a full bitmap; the window is freed after the call.
   * OR each window into your dirty bitmap, never assign it: when a unit's read fails in a later
   * window, the windows before it are handed over a second time in the same sync, with every page
   * that unit covers dirty (the uAPI says the whole log is corrupt after a failed read), and a
   * "re-emitted" event is recorded.
   */
  readonly onWindow?: (window: Bitmap) => void;
  /** Also OR the result into this bitmap (any page size, e.g. QEMU's RAM bitmap), via convert. */
  readonly into?: Bitmap;
}

export class TrackerStateError extends Error {
  override name = "TrackerStateError";
}

/**
 * unmap() failed part-way: it went in several kernel calls (whole mappings, a window's span at a
 * time) and a later one failed. `unmapped` were unmapped before the failure and are no longer
 * tracked (their bits are kept); the rest of the range stays mapped and tracked, as in the kernel.
 */
export class UnmapError extends Error {
  override name = "UnmapError";
  constructor(
    readonly iova: bigint,
    readonly length: bigint,
    readonly unmapped: readonly IovaRange[],
    cause: unknown,
  ) {
    const what = unmapped.map((r) => `${hex(r.iova)}+${hex(r.length)}`).join(", ");
    super(
      `unmap ${hex(iova)}+${hex(length)} failed part-way: ${cause instanceof Error ? cause.message : String(cause)}; unmapped before it: ${what}; the rest stays mapped and tracked`,
      { cause },
    );
  }
}

export interface Tracker {
  readonly started: boolean;
  readonly phase: Phase;
  /** Every event since creation. */
  readonly events: readonly TrackerEvent[];
  /** Current strategy per unit id. */
  readonly strategies: Readonly<Record<string, StrategyName>>;
  start(): void;
  /** Forward only. "precopy" is a deprecated spelling of "pre-copy" (accepted, reported as "pre-copy"). */
  setPhase(phase: Phase | DeprecatedPhase): void;
  sync(opts?: SyncOptions): DirtyReport;
  /** vIOMMU: a new mapping iova -> gpa. */
  map(iova: bigint, gpa: bigint, length: bigint): void;
  /** vIOMMU: remove mappings in [iova, iova + length), keeping their dirty bits. */
  unmap(iova: bigint, length: bigint): void;
  /** Stop tracking (idempotent). Errors are recorded, never thrown: stopping must complete. */
  stop(): void;
  /** Stop and free every bitmap and table. */
  close(): void;
  [Symbol.dispose](): void;
  [Symbol.asyncDispose](): Promise<void>;
}

// The ops table every tracking strategy implements, and the events the tracker records.
//
// A strategy only talks to the kernel; tracker.ts owns state and policy (start/stop idempotence,
// phases, windows, fail-safe), the way QEMU's VFIOIOMMUClass backends leave policy to
// hw/vfio/container.c. Required ops are start/stop/query; the rest are optional and checked.

import type { Bitmap } from "./bitmap.ts";
import type { IovaRange } from "./ranges.ts";
import type { StrategyName } from "./select.ts";

export interface DirtyStrategy {
  readonly name: StrategyName;
  /** Begin tracking so that every write inside `ranges` (IOVA space) is recorded. Throws on failure. */
  start(ranges: readonly IovaRange[]): void;
  /**
   * Stop tracking, retrying the kernel's STOP a few times. Must not throw for "already stopped";
   * throws when the kernel keeps refusing, and then stays stoppable (a later stop() tries again).
   * `final`: tracking ends here (the tracker's stop or close), so a strategy may use its last
   * resort (device logging closes the device's fd); a restart mid-migration passes false, since
   * closing the fd then would reset the device under a running guest.
   */
  stop(final?: boolean): void;
  /**
   * OR the dirty bits of [iova, iova + length) into `into`, placed by `into.base` and
   * `into.pageSize` (the tracking page size), and clear them in the kernel's log. Never clears a
   * bit of `into`. Throws on any failure: the caller then treats the whole log as corrupt.
   */
  query(iova: bigint, length: bigint, into: Bitmap): void;
  /** Bytes of bitmap the kernel has written so far (the cost of queries). */
  readonly kernelBytes: number;
  /** Optional health check before a query: a reason when the log cannot be trusted (ERROR state, reset). */
  check?(): string | undefined;
  /**
   * Optional (IOMMU strategies): unmap the whole mappings `mapped` (sorted, disjoint, inside
   * [iova, iova + length); the gaps between them are holes) in the kernel, and OR their dirty bits,
   * read in the same step, into `into` (IOVA space, covering [iova, iova + length)). type1: UNMAP
   * with GET_DIRTY_BITMAP over the range (holes allowed); iommufd: GET_DIRTY_BITMAP with NO_CLEAR
   * over each contiguous run (over a hole the kernel answers 0 and reads nothing after it), then
   * UNMAP. Returns the bytes the kernel unmapped and whether the bits were read: when the read
   * fails the strategy unmaps without it (read: false) and the caller must report the mappings
   * dirty. Throws only when the unmap itself fails, leaving the mappings in place.
   */
  unmapDirty?(
    iova: bigint,
    length: bigint,
    mapped: readonly IovaRange[],
    into: Bitmap,
  ): { unmapped: bigint; read: boolean; error?: unknown };
  /**
   * Optional (device logging): whether the log sees DMA writes anywhere in `r` (r lies in the
   * ranges START accepted). Without it the strategy sees every mapped IOVA (the IOMMU's).
   */
  covers?(r: IovaRange): boolean;
  /**
   * Optional: the strategy cannot query part of a range (type1 refuses a range that cuts through a
   * mapping). Windows then keep whole ranges together.
   */
  readonly wholeRanges?: boolean;
  /**
   * Optional: the kernel clears dirty state in pages of this size even when a query covers only
   * part of one (a device's logging page, written back by DMA_LOGGING_START: mlx5's firmware and
   * the test driver's edu_log_read_and_clear clear whole pages; an IOMMU's huge IOPTE: VT-d's
   * intel_iommu_read_and_clear_dirty clears a 2 MiB or 1 GiB entry a query starts inside). A query
   * that cut such a page would lose the rest of it, so the tracker never ends a window inside one.
   * Valid after start(); undefined: the tracking page size.
   */
  readonly clearGranule?: bigint;
  /**
   * Optional: query() widens [iova, iova + length) to whole clear granules and may set bits
   * outside the range but inside those pages (device logging does; iommufd cannot, since a read
   * over unmapped IOVA is EINVAL, and needs no widening because its pieces end at mapping edges).
   * The tracker clears such bits where no memory or mapping is.
   */
  readonly widensQueries?: boolean;
  /** Optional: what start() learned (device logging's range attempts), for reports. */
  readonly startNotes?: readonly string[];
}

/** Kernel DMA mapping for a vIOMMU: what QEMU's vIOMMU notifier does with vfio_dma_map/unmap. */
export interface DmaMapper {
  map(iova: bigint, gpa: bigint, length: bigint): void;
  unmap(iova: bigint, length: bigint): void;
}

export type TrackerEventKind =
  | "query-failed"
  | "unhealthy"
  | "restarted"
  | "degraded"
  | "unmap-failed"
  | "stop-failed"
  | "untracked-mapping"
  | "unmapped-dirty"
  | "start-notes"
  // start(): a strategy's START was refused by the kernel (after its own bounded retries).
  | "start-refused"
  // start(): every unit moved to the next usable strategy (QEMU decides per container).
  | "fallback"
  // start(): only all-dirty is left and enableMigration is "auto" (a blocker, as QEMU's).
  | "blocked"
  // sync(): threw part-way (a failed callback or merge); every queried unit is reported whole next sync.
  | "sync-failed"
  // sync({ into }): dirty pages outside \`into\` (they are still in the report, never dropped).
  | "not-merged"
  // sync({ onWindow }): a unit's read failed in a later window, so the windows before it, already
  // handed over, were handed over again with every page the unit covers there dirty.
  | "re-emitted"
  // unmap(): the kernel unmapped another byte count than the tracker had mapped in the range.
  | "unmap-mismatch"
  // sync(): vIOMMU mappings left the logged IOVA space; the unit's logging moved over the space
  // mapped now (re-arm policy). Everything it covers is reported once more at the next sync.
  | "re-armed"
  // sync(): the re-arm's START was refused; logging went back onto the old ranges, and the
  // mappings outside them stay reported dirty.
  | "re-arm-refused";

/** Something the user must know: every fail-safe path records one. */
export interface TrackerEvent {
  /** Milliseconds on the tracker's clock. */
  readonly atMs: number;
  readonly kind: TrackerEventKind;
  /** The unit concerned: a device id or "iommu". */
  readonly unit: string;
  readonly message: string;
  readonly errno?: number;
  /** The kernel call that failed, when known (an IoctlError's op). */
  readonly call?: string;
  readonly range?: IovaRange;
}

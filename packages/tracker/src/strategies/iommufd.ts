// iommufd IOMMU dirty tracking: IOMMU_HWPT_SET_DIRTY_TRACKING / IOMMU_HWPT_GET_DIRTY_BITMAP on a
// HWPT allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING, as QEMU's hw/vfio/iommufd.c does.
//
// GET_DIRTY_BITMAP only sets bits (iova_bitmap), so the kernel writes straight into the caller's
// bitmap in wasm memory. On a vIOMMU unmap the range is read with NO_CLEAR first and then
// unmapped from the IOAS, so bits dirtied up to the unmap are kept (QEMU does the same in
// iommufd_cdev_unmap_one() with unmap_all's dirty read).

import type { Bitmap, BitmapCore } from "../bitmap.ts";
import { type IovaRange, mergeOverlapping } from "../ranges.ts";
import type { DirtyStrategy } from "../strategy.ts";
import { viaScratch, wordView } from "./place.ts";
import { stillTracking, stopWithRetry } from "./stopping.ts";

/** The part of the adapter's IommuFd this strategy uses. */
export interface DirtyIommufd {
  readonly label: string;
  setDirtyTracking(hwptId: number, enable: boolean): void;
  getDirtyBitmap(a: {
    hwptId: number;
    iova: bigint;
    length: bigint;
    pageSize: bigint;
    bitmap: Uint8Array;
    noClear?: boolean;
  }): void;
  ioasUnmap(a: { ioasId: number; iova: bigint; length: bigint }): bigint;
}

/**
 * The largest IOPTE an IOMMU maps by default: VT-d's 1 GiB superpage (AMD's v1 table may map
 * larger contiguous sizes; a window edge could still cut one of those).
 */
export const IOMMU_MAX_PAGE = 1n << 30n;

export class IommufdStrategy implements DirtyStrategy {
  readonly name = "iommufd" as const;
  kernelBytes = 0;
  /** GET_DIRTY_BITMAP clears a huge IOPTE whole when a query starts inside it (VT-d): windows never end inside one. */
  readonly clearGranule = IOMMU_MAX_PAGE;
  #running = false;

  /** HWPTs switched on so far (undone in reverse if a later one fails). */
  #enabled: number[] = [];

  /**
   * `hwptIds`: the dirty-tracking HWPTs of the devices (one per IOMMU instance, as QEMU allocates
   * them); all translate `ioasId`.
   */
  constructor(
    readonly iommufd: DirtyIommufd,
    readonly hwptIds: readonly number[],
    readonly ioasId: number,
    readonly core: BitmapCore,
    readonly pageSize: bigint,
  ) {
    if (hwptIds.length === 0) throw new RangeError("IommufdStrategy: no HWPT");
  }

  start(_ranges: readonly IovaRange[]): void {
    // Enabling clears stale dirty bits in the kernel: tracking starts from now. On failure undo
    // the HWPTs already switched, as iommufd_set_dirty_page_tracking() in QEMU does.
    try {
      for (const id of this.hwptIds) {
        this.iommufd.setDirtyTracking(id, true);
        this.#enabled.push(id);
      }
    } catch (e) {
      try {
        this.#disableAll();
      } catch {
        // What refuses to switch off stays listed: stop() tries it again.
      }
      throw e;
    }
    this.#running = true;
  }

  stop(): void {
    if (!this.#running && this.#enabled.length === 0) return;
    this.#disableAll();
    this.#running = false;
  }

  /** Switch tracking off on every HWPT switched on, newest first; those that refuse stay listed. */
  #disableAll(): void {
    let first: unknown;
    const left: number[] = [];
    for (const id of [...this.#enabled].reverse()) {
      const e = stopWithRetry(() => this.iommufd.setDirtyTracking(id, false));
      if (e === undefined) continue;
      first ??= e;
      left.unshift(id);
    }
    this.#enabled = left;
    // Still running: a later stop() tries the rest again. The iommufd is the caller's: closing it
    // would end the tracking, and the guest's DMA mappings with it.
    if (first !== undefined)
      throw stillTracking(
        `IOMMU_HWPT_SET_DIRTY_TRACKING(disable) of HWPT ${left.join(", ")}`,
        "closing the iommufd ends it",
        first,
      );
  }

  query(iova: bigint, length: bigint, into: Bitmap): void {
    this.#read(iova, length, into, false);
  }

  unmapDirty(
    iova: bigint,
    length: bigint,
    mapped: readonly IovaRange[],
    into: Bitmap,
  ): { unmapped: bigint; read: boolean; error?: unknown } {
    // GET_DIRTY_BITMAP needs contiguously mapped IOVA: over a hole, real kernels (6.12, 7.3) answer
    // 0 and leave every area after the hole unread (__iommu_read_and_clear_dirty's EINVAL is
    // dropped by iommu_read_and_clear_dirty). So each run is read on its own, with NO_CLEAR: the
    // bits stay in the IOPTEs until the unmap, so a failed read loses nothing the caller does not
    // then report dirty.
    let read = true;
    let error: unknown;
    try {
      for (const r of mergeOverlapping(mapped)) this.#read(r.iova, r.length, into, true);
    } catch (e) {
      read = false;
      error = e;
    }
    // IOAS_UNMAP takes holes (it unmaps every area inside) but no cut area (ENOENT).
    const unmapped = this.iommufd.ioasUnmap({ ioasId: this.ioasId, iova, length });
    return { unmapped, read, ...(error !== undefined ? { error } : {}) };
  }

  #read(iova: bigint, length: bigint, into: Bitmap, noClear: boolean): void {
    const P = into.pageSize;
    const words = wordView(into, iova, length);
    if (words) {
      // Zero copy: each HWPT's GET_DIRTY_BITMAP ORs straight into the caller's words.
      for (const hwptId of this.hwptIds) {
        this.iommufd.getDirtyBitmap({ hwptId, iova, length, pageSize: P, bitmap: words, noClear });
        this.kernelBytes += words.byteLength;
      }
      return;
    }
    viaScratch(this.core, { nbits: Number(length / P), pageSize: P, base: iova }, into, (scratch) => {
      for (const hwptId of this.hwptIds) {
        this.iommufd.getDirtyBitmap({ hwptId, iova, length, pageSize: P, bitmap: scratch.bytes, noClear });
        this.kernelBytes += scratch.byteLength;
      }
    });
  }
}

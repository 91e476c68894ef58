// Legacy type1 IOMMU dirty tracking: VFIO_IOMMU_DIRTY_PAGES on the container.
//
// type1 reports every page of a mapping dirty unless all groups are in pinned-page scope, which
// ordinary vfio-pci devices never are: it is safe but coarse. Its GET_BITMAP overwrites whole
// words of the user bitmap (update_user_bitmap() in drivers/vfio/vfio_iommu_type1.c copies the
// dma's words out), so it is read into a scratch bitmap and OR-ed into the caller's, never
// straight into a bitmap other units share. It also refuses ranges that cut through a mapping,
// hence `wholeRanges`.

import type { Bitmap, BitmapCore } from "../bitmap.ts";
import type { IovaRange } from "../ranges.ts";
import type { DirtyStrategy } from "../strategy.ts";
import { viaScratch } from "./place.ts";
import { stillTracking, stopWithRetry } from "./stopping.ts";

/** The part of the adapter's Container this strategy uses. */
export interface Type1Container {
  startDirtyTracking(): void;
  stopDirtyTracking(): void;
  getDirtyBitmap(a: { iova: bigint; length: bigint; pageSize: bigint; bitmap: Uint8Array }): void;
  unmapDmaWithDirtyBitmap(a: { iova: bigint; length: bigint; pageSize: bigint; bitmap: Uint8Array }): bigint;
  unmapDma(a: { iova: bigint; length: bigint }): bigint;
}

export class Type1Strategy implements DirtyStrategy {
  readonly name = "type1" as const;
  readonly wholeRanges = true;
  kernelBytes = 0;
  #running = false;

  constructor(
    readonly container: Type1Container,
    readonly core: BitmapCore,
    readonly pageSize: bigint,
  ) {}

  start(_ranges: readonly IovaRange[]): void {
    // type1 tracks every mapping of the container; the ranges need no planning.
    this.container.startDirtyTracking();
    this.#running = true;
  }

  stop(): void {
    if (!this.#running) return;
    const last = stopWithRetry(() => this.container.stopDirtyTracking());
    // Still running: a later stop() tries again. The container is the caller's: closing it would
    // end the tracking, and every DMA mapping of a guest that may still run.
    if (last !== undefined)
      throw stillTracking("VFIO_IOMMU_DIRTY_PAGES(STOP)", "closing the container ends it", last);
    this.#running = false;
  }

  query(iova: bigint, length: bigint, into: Bitmap): void {
    this.#viaScratch(iova, length, into, (bitmap) =>
      this.container.getDirtyBitmap({ iova, length, pageSize: this.pageSize, bitmap }),
    );
  }

  unmapDirty(
    iova: bigint,
    length: bigint,
    _mapped: readonly IovaRange[],
    into: Bitmap,
  ): { unmapped: bigint; read: boolean; error?: unknown } {
    // One UNMAP with GET_DIRTY_BITMAP covers holes: vfio_dma_do_unmap unmaps every vfio_dma inside
    // and copies each one's bits out. It fails before unmapping anything (a bitmap over the 256 MiB
    // limit, an IOMMU that stopped tracking): then unmap without the bits.
    try {
      let unmapped = 0n;
      this.#viaScratch(iova, length, into, (bitmap) => {
        unmapped = this.container.unmapDmaWithDirtyBitmap({ iova, length, pageSize: this.pageSize, bitmap });
      });
      return { unmapped, read: true };
    } catch (error) {
      return { unmapped: this.container.unmapDma({ iova, length }), read: false, error };
    }
  }

  #viaScratch(iova: bigint, length: bigint, into: Bitmap, read: (bytes: Uint8Array) => void): void {
    const shape = { nbits: Number(length / this.pageSize), pageSize: this.pageSize, base: iova };
    viaScratch(this.core, shape, into, (scratch) => {
      read(scratch.bytes); // bytes derived right before the call: valid after any memory.grow
      this.kernelBytes += scratch.byteLength;
    });
  }
}

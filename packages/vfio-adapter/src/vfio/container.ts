// A VFIO container (/dev/vfio/vfio) with the type1 IOMMU: DMA mappings and IOMMU dirty tracking.
//
// VFIO_IOMMU_DIRTY_PAGES shares its number (0x3b75) with VFIO_DEVICE_FEATURE; only this class
// issues it, on a container fd, so the two are never confused.
//
//   using container = Container.open(host);
//   group.setContainer(container);
//   container.setIommu(VFIO_TYPE1v2_IOMMU);
//   const { caps } = container.getInfo();              // caps.migration?.pgsizeBitmap
//   container.mapDma({ vaddr: mem.address, iova: 0n, length: mem.length });
//   container.startDirtyTracking();
//   container.getDirtyBitmap({ iova: 0n, length: mem.length, pageSize: 4096n, bitmap: bm.bytes });

import { ProtocolError } from "../errors.ts";
import type { Host } from "../host.ts";
import {
  decodeDmaUnmap,
  decodeIommuType1Info,
  decodeIommuType1InfoCaps,
  encodeDirtyBitmap,
  encodeDmaMap,
  encodeDmaUnmap,
  encodeIommuType1InfoRequest,
  type IommuType1Caps,
  type IommuType1Info,
  iommuInfoRetryArgsz,
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_GET_API_VERSION,
  VFIO_IOMMU_DIRTY_PAGES,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU,
  type VfioBitmap,
} from "../uapi/vfio.ts";
import { hex } from "../util/hex.ts";
import { checkBitmapRoom, FdObject, openPath, rangeFields } from "./fd-object.ts";

/** The largest type1 info answer accepted for the retry; a real one is a few hundred bytes. */
export const MAX_IOMMU_INFO_ARGSZ = 1 << 20;

/** A dirty bitmap request: `bitmap` is zeroed memory (e.g. a bitmap-wasm Bitmap's `bytes`). */
export interface DirtyBitmapRequest {
  iova: bigint;
  length: bigint;
  /** Bytes of IOVA per bit; must be in the migration capability's pgsize_bitmap. */
  pageSize: bigint;
  /** The kernel writes bits here in place, at host.addressOf(bitmap). */
  bitmap: Uint8Array;
}

export class Container extends FdObject {
  /** Opens /dev/vfio/vfio (or `path`). */
  static open(host: Host, path = "/dev/vfio/vfio"): Container {
    return new Container(host, openPath(host, path), "container");
  }

  /** Wraps an fd this object will own and close. */
  static fromFd(host: Host, fd: number): Container {
    return new Container(host, fd, "container");
  }

  /** VFIO_GET_API_VERSION: VFIO_API_VERSION (0) on every kernel so far. */
  getApiVersion(): number {
    return this.ioctl("VFIO_GET_API_VERSION", VFIO_GET_API_VERSION, 0);
  }

  /** VFIO_CHECK_EXTENSION: true when the container supports `extension` (e.g. VFIO_TYPE1v2_IOMMU). */
  checkExtension(extension: number): boolean {
    return this.ioctl("VFIO_CHECK_EXTENSION", VFIO_CHECK_EXTENSION, extension, `extension ${extension}`) > 0;
  }

  /** VFIO_SET_IOMMU: needs a group attached first. */
  setIommu(iommuType: number): void {
    this.ioctl("VFIO_SET_IOMMU", VFIO_SET_IOMMU, iommuType, `type ${iommuType}`);
  }

  /**
   * VFIO_IOMMU_GET_INFO with its capability chain. When the kernel says the buffer was too small
   * (CAPS flag, larger argsz), retries once with the size it asked for, as QEMU's
   * vfio_get_iommu_info() does; a second "too small" is a ProtocolError.
   */
  getInfo(): { info: IommuType1Info; caps: IommuType1Caps } {
    const op = "VFIO_IOMMU_GET_INFO";
    let buf = encodeIommuType1InfoRequest();
    this.ioctl(op, VFIO_IOMMU_GET_INFO, buf, `argsz ${buf.length}`);
    let info = this.decode(op, () => decodeIommuType1Info(buf));
    const want = iommuInfoRetryArgsz(info, buf.length);
    if (want !== undefined) {
      if (want > MAX_IOMMU_INFO_ARGSZ)
        throw new ProtocolError(`${op} (${this.detail()}): the kernel asks for an implausible argsz ${want}`);
      buf = encodeIommuType1InfoRequest(want);
      this.ioctl(op, VFIO_IOMMU_GET_INFO, buf, `argsz ${buf.length}`);
      info = this.decode(op, () => decodeIommuType1Info(buf));
      if (iommuInfoRetryArgsz(info, buf.length) !== undefined)
        throw new ProtocolError(
          `${op} (${this.detail()}): argsz grew again to ${info.argsz} after retrying with ${buf.length}`,
        );
    }
    const caps = this.decode(op, () => decodeIommuType1InfoCaps(buf));
    return { info, caps };
  }

  /** VFIO_IOMMU_MAP_DMA: maps `length` bytes at `vaddr` to `iova`, readable and writable by default. */
  mapDma(a: { vaddr: bigint; iova: bigint; length: bigint; flags?: number }): void {
    const op = "VFIO_IOMMU_MAP_DMA";
    const flags = a.flags ?? VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
    const buf = this.encode(op, () =>
      encodeDmaMap({ flags, vaddr: a.vaddr, iova: a.iova, length: a.length }),
    );
    this.ioctl(
      op,
      VFIO_IOMMU_MAP_DMA,
      buf,
      ...rangeFields(a.iova, a.length),
      `vaddr ${hex(a.vaddr)}`,
      `flags ${hex(flags)}`,
    );
  }

  /** VFIO_IOMMU_UNMAP_DMA: returns the bytes the kernel actually unmapped (it may be fewer). */
  unmapDma(a: { iova: bigint; length: bigint; flags?: number }): bigint {
    const op = "VFIO_IOMMU_UNMAP_DMA";
    const flags = a.flags ?? 0;
    const buf = this.encode(op, () => encodeDmaUnmap({ flags, iova: a.iova, length: a.length }));
    this.ioctl(op, VFIO_IOMMU_UNMAP_DMA, buf, ...rangeFields(a.iova, a.length), `flags ${hex(flags)}`);
    return this.decode(op, () => decodeDmaUnmap(buf)).length;
  }

  /**
   * VFIO_IOMMU_UNMAP_DMA with GET_DIRTY_BITMAP: unmaps and, in the same call, writes the range's
   * dirty bits into `bitmap`, so nothing dirtied before the unmap is lost. Returns the bytes unmapped.
   */
  unmapDmaWithDirtyBitmap(a: DirtyBitmapRequest): bigint {
    const op = "VFIO_IOMMU_UNMAP_DMA(GET_DIRTY_BITMAP)";
    const { bitmap, fields } = this.vfioBitmap(op, a);
    const buf = this.encode(op, () =>
      encodeDmaUnmap({ flags: VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, iova: a.iova, length: a.length, bitmap }),
    );
    this.ioctl(op, VFIO_IOMMU_UNMAP_DMA, buf, ...fields);
    return this.decode(op, () => decodeDmaUnmap(buf)).length;
  }

  /** VFIO_IOMMU_DIRTY_PAGES START: the IOMMU begins logging pages devices may have written. */
  startDirtyTracking(): void {
    const buf = encodeDirtyBitmap({ flags: VFIO_IOMMU_DIRTY_PAGES_FLAG_START });
    this.ioctl("VFIO_IOMMU_DIRTY_PAGES(START)", VFIO_IOMMU_DIRTY_PAGES, buf);
  }

  /** VFIO_IOMMU_DIRTY_PAGES STOP. */
  stopDirtyTracking(): void {
    const buf = encodeDirtyBitmap({ flags: VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP });
    this.ioctl("VFIO_IOMMU_DIRTY_PAGES(STOP)", VFIO_IOMMU_DIRTY_PAGES, buf);
  }

  /**
   * VFIO_IOMMU_DIRTY_PAGES GET_BITMAP: writes the dirty bits of [iova, iova + length) into
   * `bitmap` and clears them in the kernel. The range must lie within one mapping on older kernels.
   */
  getDirtyBitmap(a: DirtyBitmapRequest): void {
    const op = "VFIO_IOMMU_DIRTY_PAGES(GET_BITMAP)";
    const { bitmap, fields } = this.vfioBitmap(op, a);
    const buf = this.encode(op, () =>
      encodeDirtyBitmap({
        flags: VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
        get: { iova: a.iova, length: a.length, bitmap },
      }),
    );
    this.ioctl(op, VFIO_IOMMU_DIRTY_PAGES, buf, ...fields);
  }

  // --- Internal helpers ---

  // The struct vfio_bitmap that GET_BITMAP and UNMAP with GET_DIRTY_BITMAP both carry, with the
  // caller's bitmap checked for room before any syscall, and the fields their errors name.
  private vfioBitmap(op: string, a: DirtyBitmapRequest): { bitmap: VfioBitmap; fields: string[] } {
    const bitmapLength = this.encode(op, () =>
      checkBitmapRoom(op, a.length, a.pageSize, a.bitmap.byteLength),
    );
    return {
      bitmap: { pageSize: a.pageSize, bitmapLength, data: this.host.addressOf(a.bitmap) },
      fields: [
        ...rangeFields(a.iova, a.length),
        `pgsize ${hex(a.pageSize)}`,
        `bitmap ${a.bitmap.byteLength} bytes`,
      ],
    };
  }
}

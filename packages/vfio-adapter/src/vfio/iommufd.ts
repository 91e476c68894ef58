// An iommufd (/dev/iommu): IO address spaces, hardware page tables and IOMMU dirty tracking.
//
//   using iommufd = IommuFd.open(host);
//   const ioasId = iommufd.ioasAlloc();
//   iommufd.ioasMap({ ioasId, userVa: mem.address, length: mem.length, iova: 0n });
//   const hwptId = iommufd.hwptAlloc({ devId, ptId: ioasId, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
//   iommufd.setDirtyTracking(hwptId, true);
//   iommufd.getDirtyBitmap({ hwptId, iova: 0n, length: mem.length, pageSize: 4096n, bitmap: bm.bytes });

import { Errno, InvalidInputError, IoctlError, ProtocolError } from "../errors.ts";
import type { Host } from "../host.ts";
import {
  decodeHwInfo,
  decodeHwptAlloc,
  decodeIoasAlloc,
  decodeIoasIovaRanges,
  decodeIoasMap,
  decodeIoasUnmap,
  decodeIommuIovaRanges,
  encodeHwInfo,
  encodeHwptAlloc,
  encodeHwptGetDirtyBitmap,
  encodeHwptSetDirtyTracking,
  encodeIoasAlloc,
  encodeIoasIovaRanges,
  encodeIoasMap,
  encodeIoasUnmap,
  encodeIommuDestroy,
  type HwInfo,
  IOMMU_DESTROY,
  IOMMU_GET_HW_INFO,
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
  IOMMU_HWPT_GET_DIRTY_BITMAP,
  IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
  IOMMU_HWPT_SET_DIRTY_TRACKING,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_IOAS_UNMAP,
  type IommuIovaRange,
  SIZEOF_IOMMU_IOVA_RANGE,
} from "../uapi/iommufd.ts";
import { hex } from "../util/hex.ts";
import { checkBitmapRoom, FdObject, openPath, rangeFields } from "./fd-object.ts";

/** Room for IOVA ranges on the first IOMMU_IOAS_IOVA_RANGES call; real IOASes have a handful. */
export const INITIAL_IOVA_RANGES = 8;
/** The most ranges accepted for the retry. */
export const MAX_IOVA_RANGES = 1 << 16;

export class IommuFd extends FdObject {
  /** Opens /dev/iommu (or `path`). */
  static open(host: Host, path = "/dev/iommu"): IommuFd {
    return new IommuFd(host, openPath(host, path), "iommufd");
  }

  /** Wraps an fd this object will own and close. */
  static fromFd(host: Host, fd: number): IommuFd {
    return new IommuFd(host, fd, "iommufd");
  }

  /** IOMMU_IOAS_ALLOC: a new, empty IO address space. */
  ioasAlloc(): number {
    const op = "IOMMU_IOAS_ALLOC";
    const buf = encodeIoasAlloc();
    this.ioctl(op, IOMMU_IOAS_ALLOC, buf);
    return this.decode(op, () => decodeIoasAlloc(buf)).outIoasId;
  }

  /** IOMMU_DESTROY of an IOAS or HWPT. */
  destroy(id: number): void {
    const op = "IOMMU_DESTROY";
    this.ioctl(
      op,
      IOMMU_DESTROY,
      this.encode(op, () => encodeIommuDestroy({ id })),
      `id ${id}`,
    );
  }

  /**
   * IOMMU_IOAS_MAP: maps `length` bytes at `userVa`. With `iova` the mapping is placed there
   * (FIXED_IOVA); without, the kernel picks. Returns the IOVA used. Readable and writable by default.
   */
  ioasMap(a: { ioasId: number; userVa: bigint; length: bigint; iova?: bigint; flags?: number }): bigint {
    const op = "IOMMU_IOAS_MAP";
    const flags =
      (a.flags ?? IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE) |
      (a.iova !== undefined ? IOMMU_IOAS_MAP_FIXED_IOVA : 0);
    const iova = a.iova ?? 0n;
    const buf = this.encode(op, () =>
      encodeIoasMap({ flags, ioasId: a.ioasId, userVa: a.userVa, length: a.length, iova }),
    );
    this.ioctl(
      op,
      IOMMU_IOAS_MAP,
      buf,
      `ioas ${a.ioasId}`,
      ...rangeFields(iova, a.length),
      `user_va ${hex(a.userVa)}`,
      `flags ${hex(flags)}`,
    );
    return this.decode(op, () => decodeIoasMap(buf)).iova;
  }

  /** IOMMU_IOAS_UNMAP: returns the bytes unmapped. */
  ioasUnmap(a: { ioasId: number; iova: bigint; length: bigint }): bigint {
    const op = "IOMMU_IOAS_UNMAP";
    const buf = this.encode(op, () => encodeIoasUnmap(a));
    this.ioctl(op, IOMMU_IOAS_UNMAP, buf, `ioas ${a.ioasId}`, ...rangeFields(a.iova, a.length));
    return this.decode(op, () => decodeIoasUnmap(buf)).length;
  }

  /**
   * IOMMU_IOAS_IOVA_RANGES: the IOVA windows mappings may use and their alignment. When the kernel
   * answers EMSGSIZE it has written the count needed; retry once with that much room.
   */
  ioasIovaRanges(ioasId: number): { ranges: IommuIovaRange[]; iovaAlignment: bigint } {
    const op = "IOMMU_IOAS_IOVA_RANGES";
    let room = INITIAL_IOVA_RANGES;
    for (let attempt = 0; ; attempt++) {
      const array = new Uint8Array(room * SIZEOF_IOMMU_IOVA_RANGE);
      const buf = this.encode(op, () =>
        encodeIoasIovaRanges({ ioasId, numIovas: room, allowedIovas: this.host.addressOf(array) }),
      );
      const rc = this.tryIoctl(IOMMU_IOAS_IOVA_RANGES, buf);
      const answer = this.decode(op, () => decodeIoasIovaRanges(buf));
      if (rc >= 0) {
        if (answer.numIovas > room)
          throw new ProtocolError(
            `${op} (${this.detail(`ioas ${ioasId}`)}): ${answer.numIovas} ranges in room for ${room}`,
          );
        return {
          ranges: this.decode(op, () => decodeIommuIovaRanges(array, answer.numIovas)),
          iovaAlignment: answer.outIovaAlignment,
        };
      }
      if (-rc !== Errno.EMSGSIZE || attempt > 0)
        throw new IoctlError(op, -rc, this.detail(`ioas ${ioasId}`, `num_iovas ${room}`));
      if (answer.numIovas <= room || answer.numIovas > MAX_IOVA_RANGES)
        throw new ProtocolError(
          `${op} (${this.detail(`ioas ${ioasId}`)}): EMSGSIZE with num_iovas ${answer.numIovas}`,
        );
      room = answer.numIovas;
    }
  }

  /**
   * IOMMU_GET_HW_INFO for a bound device. `data` receives the driver-specific info (e.g. struct
   * iommu_hw_info_vtd) when given. `outCapabilities & IOMMU_HW_CAP_DIRTY_TRACKING` tells whether
   * IOMMU dirty tracking is possible.
   */
  getHwInfo(devId: number, data?: Uint8Array): HwInfo {
    const op = "IOMMU_GET_HW_INFO";
    const buf = this.encode(op, () =>
      encodeHwInfo({
        devId,
        dataLen: data?.byteLength ?? 0,
        dataUptr: data ? this.host.addressOf(data) : 0n,
      }),
    );
    this.ioctl(op, IOMMU_GET_HW_INFO, buf, `dev_id ${devId}`, `data_len ${data?.byteLength ?? 0}`);
    return this.decode(op, () => decodeHwInfo(buf));
  }

  /**
   * IOMMU_HWPT_ALLOC: a kernel-managed page table for device `devId` over IOAS `ptId`. With
   * IOMMU_HWPT_ALLOC_DIRTY_TRACKING, EOPNOTSUPP means this IOMMU cannot track dirty pages.
   */
  hwptAlloc(a: { devId: number; ptId: number; flags?: number }): number {
    const op = "IOMMU_HWPT_ALLOC";
    const flags = a.flags ?? 0;
    const buf = this.encode(op, () => encodeHwptAlloc({ devId: a.devId, ptId: a.ptId, flags }));
    this.ioctl(op, IOMMU_HWPT_ALLOC, buf, `dev_id ${a.devId}`, `pt_id ${a.ptId}`, `flags ${hex(flags)}`);
    return this.decode(op, () => decodeHwptAlloc(buf)).outHwptId;
  }

  /** IOMMU_HWPT_SET_DIRTY_TRACKING: turns dirty tracking on or off for a HWPT. */
  setDirtyTracking(hwptId: number, enable: boolean): void {
    const op = "IOMMU_HWPT_SET_DIRTY_TRACKING";
    const flags = enable ? IOMMU_HWPT_DIRTY_TRACKING_ENABLE : 0;
    const buf = this.encode(op, () => encodeHwptSetDirtyTracking({ hwptId, flags }));
    this.ioctl(op, IOMMU_HWPT_SET_DIRTY_TRACKING, buf, `hwpt ${hwptId}`, enable ? "enable" : "disable");
  }

  /**
   * IOMMU_HWPT_GET_DIRTY_BITMAP: sets the range's dirty bits in `bitmap` (bit 0 = `iova`) and
   * clears them in the IOPTEs, unless `noClear` (used right before an unmap of the same range).
   */
  getDirtyBitmap(a: {
    hwptId: number;
    iova: bigint;
    length: bigint;
    pageSize: bigint;
    bitmap: Uint8Array;
    noClear?: boolean;
  }): void {
    const op = a.noClear ? "IOMMU_HWPT_GET_DIRTY_BITMAP(NO_CLEAR)" : "IOMMU_HWPT_GET_DIRTY_BITMAP";
    const fields = [
      `hwpt ${a.hwptId}`,
      ...rangeFields(a.iova, a.length),
      `page_size ${hex(a.pageSize)}`,
      `bitmap ${a.bitmap.byteLength} bytes`,
    ];
    this.encode(op, () => checkBitmapRoom(op, a.length, a.pageSize, a.bitmap.byteLength));
    if (!Number.isInteger(a.hwptId))
      throw new InvalidInputError(`${op} (${this.detail()}): hwpt id ${a.hwptId}`);
    const buf = this.encode(op, () =>
      encodeHwptGetDirtyBitmap({
        hwptId: a.hwptId,
        flags: a.noClear ? IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR : 0,
        iova: a.iova,
        length: a.length,
        pageSize: a.pageSize,
        data: this.host.addressOf(a.bitmap),
      }),
    );
    this.ioctl(op, IOMMU_HWPT_GET_DIRTY_BITMAP, buf, ...fields);
  }
}

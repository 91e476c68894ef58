// include/uapi/linux/iommufd.h: the constants, ioctl numbers and struct codecs vfio-dirty uses.
//
// Every iommufd ioctl takes a struct whose first u32 is its size; the kernel accepts shorter
// structs from older userspace and longer ones whose extra bytes are zero, so encoders always
// send the newest layout with unused fields zeroed. u64 fields are bigint, pointers are bigint
// addresses, u32 fields are number.
//
//   const bytes = encodeHwptGetDirtyBitmap({ hwptId, flags: 0, iova, length, pageSize: 4096n, data: host.addressOf(bitmap.bytes) });
//   host.ioctl(iommufd, IOMMU_HWPT_GET_DIRTY_BITMAP, bytes);
//
// Field names: kernel names in camelCase; `page_size` is `pageSize`.

import { alloc, CodecError, getU32, getU64, putU32, putU64, reader } from "./codec.ts";
import { _IO } from "./ioctl.ts";

/** ioctl type byte ';' (shared with VFIO) and the first iommufd nr. */
export const IOMMUFD_TYPE = 0x3b;
export const IOMMUFD_CMD_BASE = 0x80;

// enum of command numbers (IOMMUFD_CMD_*).
export const IOMMUFD_CMD_DESTROY = IOMMUFD_CMD_BASE;
export const IOMMUFD_CMD_IOAS_ALLOC = 0x81;
export const IOMMUFD_CMD_IOAS_ALLOW_IOVAS = 0x82;
export const IOMMUFD_CMD_IOAS_COPY = 0x83;
export const IOMMUFD_CMD_IOAS_IOVA_RANGES = 0x84;
export const IOMMUFD_CMD_IOAS_MAP = 0x85;
export const IOMMUFD_CMD_IOAS_UNMAP = 0x86;
export const IOMMUFD_CMD_OPTION = 0x87;
export const IOMMUFD_CMD_VFIO_IOAS = 0x88;
export const IOMMUFD_CMD_HWPT_ALLOC = 0x89;
export const IOMMUFD_CMD_GET_HW_INFO = 0x8a;
export const IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING = 0x8b;
export const IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP = 0x8c;

export const IOMMU_DESTROY = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_DESTROY);
export const IOMMU_IOAS_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOC);
export const IOMMU_IOAS_IOVA_RANGES = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_IOVA_RANGES);
export const IOMMU_IOAS_MAP = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP);
export const IOMMU_IOAS_UNMAP = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_UNMAP);
/** Linux 6.6+ (data_type / data_len / data_uptr 6.7+, fault_id 6.11+). */
export const IOMMU_HWPT_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_ALLOC);
/** Linux 6.6+ (out_capabilities 6.7+). */
export const IOMMU_GET_HW_INFO = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_GET_HW_INFO);
/** Linux 6.7+. */
export const IOMMU_HWPT_SET_DIRTY_TRACKING = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING);
/** Linux 6.7+. */
export const IOMMU_HWPT_GET_DIRTY_BITMAP = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP);

// enum iommufd_ioas_map_flags.
export const IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0;
export const IOMMU_IOAS_MAP_WRITEABLE = 1 << 1;
export const IOMMU_IOAS_MAP_READABLE = 1 << 2;

// enum iommufd_hwpt_alloc_flags.
export const IOMMU_HWPT_ALLOC_NEST_PARENT = 1 << 0;
export const IOMMU_HWPT_ALLOC_DIRTY_TRACKING = 1 << 1;
/** Linux 6.11+. */
export const IOMMU_HWPT_FAULT_ID_VALID = 1 << 2;

// enum iommu_hwpt_data_type.
export const IOMMU_HWPT_DATA_NONE = 0;

// enum iommu_hw_info_type.
export const IOMMU_HW_INFO_TYPE_NONE = 0;
export const IOMMU_HW_INFO_TYPE_INTEL_VTD = 1;

// enum iommufd_hw_capabilities.
export const IOMMU_HW_CAP_DIRTY_TRACKING = 1 << 0;

// enum iommufd_hwpt_set_dirty_tracking_flags.
export const IOMMU_HWPT_DIRTY_TRACKING_ENABLE = 1;

// enum iommufd_hwpt_get_dirty_bitmap_flags.
export const IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = 1;

// ---------------------------------------------------------------------------------------------
// struct iommu_destroy

export const SIZEOF_IOMMU_DESTROY = 8;
export interface IommuDestroy {
  /** sizeof the struct as the caller sends it; encoders set it to the struct size. */
  size: number;
  /** Any destroyable object: IOAS, HWPT. */
  id: number;
}
export function encodeIommuDestroy(a: { id: number; size?: number }): Uint8Array {
  const [b, v] = alloc(SIZEOF_IOMMU_DESTROY);
  putU32(v, 0, a.size ?? b.length, "size");
  putU32(v, 4, a.id, "id");
  return b;
}
export function decodeIommuDestroy(bytes: Uint8Array): IommuDestroy {
  const v = reader(bytes, SIZEOF_IOMMU_DESTROY, "iommu_destroy");
  return { size: getU32(v, 0), id: getU32(v, 4) };
}

// ---------------------------------------------------------------------------------------------
// struct iommu_ioas_alloc

export const SIZEOF_IOMMU_IOAS_ALLOC = 12;
export interface IoasAlloc {
  /** sizeof the struct as the caller sends it; encoders set it to the struct size. */
  size: number;
  /** Must be 0. */
  flags: number;
  /** The new IOAS, written by the kernel. */
  outIoasId: number;
}
export function encodeIoasAlloc(a: Partial<IoasAlloc> = {}): Uint8Array {
  const [b, v] = alloc(SIZEOF_IOMMU_IOAS_ALLOC);
  putU32(v, 0, a.size ?? b.length, "size");
  putU32(v, 4, a.flags ?? 0, "flags");
  putU32(v, 8, a.outIoasId ?? 0, "out_ioas_id");
  return b;
}
export function decodeIoasAlloc(bytes: Uint8Array): IoasAlloc {
  const v = reader(bytes, SIZEOF_IOMMU_IOAS_ALLOC, "iommu_ioas_alloc");
  return { size: getU32(v, 0), flags: getU32(v, 4), outIoasId: getU32(v, 8) };
}

// ---------------------------------------------------------------------------------------------
// struct iommu_iova_range and struct iommu_ioas_iova_ranges

export const SIZEOF_IOMMU_IOVA_RANGE = 16;
export interface IommuIovaRange {
  /** First IOVA of the window. */
  start: bigint;
  /** Inclusive last IOVA. */
  last: bigint;
}
export function encodeIommuIovaRanges(ranges: readonly IommuIovaRange[]): Uint8Array {
  const [b, v] = alloc(ranges.length * SIZEOF_IOMMU_IOVA_RANGE);
  ranges.forEach((r, i) => {
    putU64(v, i * 16, r.start, `ranges[${i}].start`);
    putU64(v, i * 16 + 8, r.last, `ranges[${i}].last`);
  });
  return b;
}
export function decodeIommuIovaRanges(bytes: Uint8Array, numIovas: number): IommuIovaRange[] {
  const v = reader(bytes, numIovas * SIZEOF_IOMMU_IOVA_RANGE, "iommu_iova_range[]");
  return Array.from({ length: numIovas }, (_, i) => ({
    start: getU64(v, i * 16),
    last: getU64(v, i * 16 + 8),
  }));
}

export const SIZEOF_IOMMU_IOAS_IOVA_RANGES = 32;
export interface IoasIovaRanges {
  /** sizeof the struct as the caller sends it; encoders set it to the struct size. */
  size: number;
  /** The IO address space operated on. */
  ioasId: number;
  /** In: entries room at allowedIovas. Out: how many ranges exist (EMSGSIZE when more than room). */
  numIovas: number;
  /** Address of an iommu_iova_range array. */
  allowedIovas: bigint;
  /** Out: IOVA alignment every map must respect. */
  outIovaAlignment: bigint;
}
export function encodeIoasIovaRanges(
  a: Omit<IoasIovaRanges, "size" | "outIovaAlignment"> & { size?: number; outIovaAlignment?: bigint },
): Uint8Array {
  const [b, v] = alloc(SIZEOF_IOMMU_IOAS_IOVA_RANGES);
  putU32(v, 0, a.size ?? b.length, "size");
  putU32(v, 4, a.ioasId, "ioas_id");
  putU32(v, 8, a.numIovas, "num_iovas"); // 12: __reserved
  putU64(v, 16, a.allowedIovas, "allowed_iovas");
  putU64(v, 24, a.outIovaAlignment ?? 0n, "out_iova_alignment");
  return b;
}
export function decodeIoasIovaRanges(bytes: Uint8Array): IoasIovaRanges {
  const v = reader(bytes, SIZEOF_IOMMU_IOAS_IOVA_RANGES, "iommu_ioas_iova_ranges");
  return {
    size: getU32(v, 0),
    ioasId: getU32(v, 4),
    numIovas: getU32(v, 8),
    allowedIovas: getU64(v, 16),
    outIovaAlignment: getU64(v, 24),
  };
}

// ---------------------------------------------------------------------------------------------
// struct iommu_ioas_map

export const SIZEOF_IOMMU_IOAS_MAP = 40;
export interface IoasMap {
  /** sizeof the struct as the caller sends it; encoders set it to the struct size. */
  size: number;
  /** IOMMU_IOAS_MAP_*. */
  flags: number;
  /** The IO address space operated on. */
  ioasId: number;
  /** Process virtual address of the memory to map. */
  userVa: bigint;
  /** Bytes of IOVA. */
  length: bigint;
  /** In with FIXED_IOVA; otherwise the kernel writes where it placed the mapping. */
  iova: bigint;
}
export function encodeIoasMap(a: Omit<IoasMap, "size"> & { size?: number }): Uint8Array {
  const [b, v] = alloc(SIZEOF_IOMMU_IOAS_MAP);
  putU32(v, 0, a.size ?? b.length, "size");
  putU32(v, 4, a.flags, "flags");
  putU32(v, 8, a.ioasId, "ioas_id"); // 12: __reserved
  putU64(v, 16, a.userVa, "user_va");
  putU64(v, 24, a.length, "length");
  putU64(v, 32, a.iova, "iova");
  return b;
}
export function decodeIoasMap(bytes: Uint8Array): IoasMap {
  const v = reader(bytes, SIZEOF_IOMMU_IOAS_MAP, "iommu_ioas_map");
  return {
    size: getU32(v, 0),
    flags: getU32(v, 4),
    ioasId: getU32(v, 8),
    userVa: getU64(v, 16),
    length: getU64(v, 24),
    iova: getU64(v, 32),
  };
}

// ---------------------------------------------------------------------------------------------
// struct iommu_ioas_unmap

export const SIZEOF_IOMMU_IOAS_UNMAP = 24;
export interface IoasUnmap {
  /** sizeof the struct as the caller sends it; encoders set it to the struct size. */
  size: number;
  /** The IO address space operated on. */
  ioasId: number;
  /** First IOVA of the range. */
  iova: bigint;
  /** In: bytes to unmap. Out: bytes unmapped. */
  length: bigint;
}
export function encodeIoasUnmap(a: Omit<IoasUnmap, "size"> & { size?: number }): Uint8Array {
  const [b, v] = alloc(SIZEOF_IOMMU_IOAS_UNMAP);
  putU32(v, 0, a.size ?? b.length, "size");
  putU32(v, 4, a.ioasId, "ioas_id");
  putU64(v, 8, a.iova, "iova");
  putU64(v, 16, a.length, "length");
  return b;
}
export function decodeIoasUnmap(bytes: Uint8Array): IoasUnmap {
  const v = reader(bytes, SIZEOF_IOMMU_IOAS_UNMAP, "iommu_ioas_unmap");
  return { size: getU32(v, 0), ioasId: getU32(v, 4), iova: getU64(v, 8), length: getU64(v, 16) };
}

// ---------------------------------------------------------------------------------------------
// struct iommu_hw_info

export const SIZEOF_IOMMU_HW_INFO = 40;
export interface HwInfo {
  /** sizeof the struct as the caller sends it; encoders set it to the struct size. */
  size: number;
  /** 0 (Linux 6.17 adds IOMMU_HW_INFO_FLAG_INPUT_TYPE, unused here). */
  flags: number;
  /** Device id from VFIO_DEVICE_BIND_IOMMUFD. */
  devId: number;
  /** In: bytes of room at dataUptr. Out: bytes the kernel has. */
  dataLen: number;
  /** Address for the driver-specific data (e.g. struct iommu_hw_info_vtd), or 0. */
  dataUptr: bigint;
  /** IOMMU_HW_INFO_TYPE_*. */
  outDataType: number;
  /** PASID width, 0 without PASID (Linux 6.13+; reserved before). */
  outMaxPasidLog2: number;
  /** IOMMU_HW_CAP_*; IOMMU_HW_CAP_DIRTY_TRACKING is what matters here. */
  outCapabilities: bigint;
}
export function encodeHwInfo(a: Partial<HwInfo> & { devId: number }): Uint8Array {
  const [b, v] = alloc(SIZEOF_IOMMU_HW_INFO);
  putU32(v, 0, a.size ?? b.length, "size");
  putU32(v, 4, a.flags ?? 0, "flags");
  putU32(v, 8, a.devId, "dev_id");
  putU32(v, 12, a.dataLen ?? 0, "data_len");
  putU64(v, 16, a.dataUptr ?? 0n, "data_uptr");
  putU32(v, 24, a.outDataType ?? 0, "out_data_type");
  const pasid = a.outMaxPasidLog2 ?? 0;
  if (!Number.isInteger(pasid) || pasid < 0 || pasid > 0xff)
    throw new CodecError(`out_max_pasid_log2: ${pasid} is not a u8`);
  v.setUint8(28, pasid); // 29..31: __reserved
  putU64(v, 32, a.outCapabilities ?? 0n, "out_capabilities");
  return b;
}
export function decodeHwInfo(bytes: Uint8Array): HwInfo {
  const v = reader(bytes, SIZEOF_IOMMU_HW_INFO, "iommu_hw_info");
  return {
    size: getU32(v, 0),
    flags: getU32(v, 4),
    devId: getU32(v, 8),
    dataLen: getU32(v, 12),
    dataUptr: getU64(v, 16),
    outDataType: getU32(v, 24),
    outMaxPasidLog2: v.getUint8(28),
    outCapabilities: getU64(v, 32),
  };
}

// ---------------------------------------------------------------------------------------------
// struct iommu_hwpt_alloc

export const SIZEOF_IOMMU_HWPT_ALLOC = 48;
export interface HwptAlloc {
  /** sizeof the struct as the caller sends it; encoders set it to the struct size. */
  size: number;
  /** IOMMU_HWPT_ALLOC_*. */
  flags: number;
  /** Device id from VFIO_DEVICE_BIND_IOMMUFD. */
  devId: number;
  /** IOAS (or parent HWPT) the page table mirrors. */
  ptId: number;
  /** The new HWPT, written by the kernel. */
  outHwptId: number;
  /** IOMMU_HWPT_DATA_NONE for a kernel-managed table. */
  dataType: number;
  /** Bytes of driver-specific data: room in, the kernel's length out. */
  dataLen: number;
  /** Address of the driver-specific data buffer, or 0. */
  dataUptr: bigint;
  /** With IOMMU_HWPT_FAULT_ID_VALID (Linux 6.11+). */
  faultId: number;
}
/** 48 bytes; kernels before 6.11 know 40 and accept the zero tail. */
export function encodeHwptAlloc(a: Partial<HwptAlloc> & { devId: number; ptId: number }): Uint8Array {
  const [b, v] = alloc(SIZEOF_IOMMU_HWPT_ALLOC);
  putU32(v, 0, a.size ?? b.length, "size");
  putU32(v, 4, a.flags ?? 0, "flags");
  putU32(v, 8, a.devId, "dev_id");
  putU32(v, 12, a.ptId, "pt_id");
  putU32(v, 16, a.outHwptId ?? 0, "out_hwpt_id"); // 20: __reserved
  putU32(v, 24, a.dataType ?? IOMMU_HWPT_DATA_NONE, "data_type");
  putU32(v, 28, a.dataLen ?? 0, "data_len");
  putU64(v, 32, a.dataUptr ?? 0n, "data_uptr");
  putU32(v, 40, a.faultId ?? 0, "fault_id"); // 44: __reserved2
  return b;
}
export function decodeHwptAlloc(bytes: Uint8Array): HwptAlloc {
  const v = reader(bytes, SIZEOF_IOMMU_HWPT_ALLOC, "iommu_hwpt_alloc");
  return {
    size: getU32(v, 0),
    flags: getU32(v, 4),
    devId: getU32(v, 8),
    ptId: getU32(v, 12),
    outHwptId: getU32(v, 16),
    dataType: getU32(v, 24),
    dataLen: getU32(v, 28),
    dataUptr: getU64(v, 32),
    faultId: getU32(v, 40),
  };
}

// ---------------------------------------------------------------------------------------------
// struct iommu_hwpt_set_dirty_tracking

export const SIZEOF_IOMMU_HWPT_SET_DIRTY_TRACKING = 16;
export interface HwptSetDirtyTracking {
  /** sizeof the struct as the caller sends it; encoders set it to the struct size. */
  size: number;
  /** IOMMU_HWPT_DIRTY_TRACKING_ENABLE, or 0 to disable. */
  flags: number;
  /** The hardware page table operated on. */
  hwptId: number;
}
export function encodeHwptSetDirtyTracking(a: { hwptId: number; flags: number; size?: number }): Uint8Array {
  const [b, v] = alloc(SIZEOF_IOMMU_HWPT_SET_DIRTY_TRACKING);
  putU32(v, 0, a.size ?? b.length, "size");
  putU32(v, 4, a.flags, "flags");
  putU32(v, 8, a.hwptId, "hwpt_id"); // 12: __reserved
  return b;
}
export function decodeHwptSetDirtyTracking(bytes: Uint8Array): HwptSetDirtyTracking {
  const v = reader(bytes, SIZEOF_IOMMU_HWPT_SET_DIRTY_TRACKING, "iommu_hwpt_set_dirty_tracking");
  return { size: getU32(v, 0), flags: getU32(v, 4), hwptId: getU32(v, 8) };
}

// ---------------------------------------------------------------------------------------------
// struct iommu_hwpt_get_dirty_bitmap

export const SIZEOF_IOMMU_HWPT_GET_DIRTY_BITMAP = 48;
export interface HwptGetDirtyBitmap {
  /** sizeof the struct as the caller sends it; encoders set it to the struct size. */
  size: number;
  /** The hardware page table operated on. */
  hwptId: number;
  /** IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR or 0. */
  flags: number;
  /** IOVA of bit 0. */
  iova: bigint;
  /** Bytes of IOVA. */
  length: bigint;
  /** Bytes per bit (kernel: page_size). */
  pageSize: bigint;
  /** Address of the u64 bitmap: bit (iova / pageSize) % 64 of word (iova / pageSize) / 64. */
  data: bigint;
}
export function encodeHwptGetDirtyBitmap(
  a: Omit<HwptGetDirtyBitmap, "size"> & { size?: number },
): Uint8Array {
  const [b, v] = alloc(SIZEOF_IOMMU_HWPT_GET_DIRTY_BITMAP);
  putU32(v, 0, a.size ?? b.length, "size");
  putU32(v, 4, a.hwptId, "hwpt_id");
  putU32(v, 8, a.flags, "flags"); // 12: __reserved
  putU64(v, 16, a.iova, "iova");
  putU64(v, 24, a.length, "length");
  putU64(v, 32, a.pageSize, "page_size");
  putU64(v, 40, a.data, "data");
  return b;
}
export function decodeHwptGetDirtyBitmap(bytes: Uint8Array): HwptGetDirtyBitmap {
  const v = reader(bytes, SIZEOF_IOMMU_HWPT_GET_DIRTY_BITMAP, "iommu_hwpt_get_dirty_bitmap");
  return {
    size: getU32(v, 0),
    hwptId: getU32(v, 4),
    flags: getU32(v, 8),
    iova: getU64(v, 16),
    length: getU64(v, 24),
    pageSize: getU64(v, 32),
    data: getU64(v, 40),
  };
}

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

import { alloc, reader } from "./codec.ts";
import { _IO } from "./ioctl.ts";
import * as L from "./iommufd-layouts.ts";

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

export const SIZEOF_IOMMU_DESTROY = L.IOMMU_DESTROY.size;
export interface IommuDestroy {
  /** sizeof the struct as the caller sends it; encoders set it to the struct size. */
  size: number;
  /** Any destroyable object: IOAS, HWPT. */
  id: number;
}
export function encodeIommuDestroy(a: { id: number; size?: number }): Uint8Array {
  return L.IOMMU_DESTROY.encode(a);
}
export function decodeIommuDestroy(bytes: Uint8Array): IommuDestroy {
  return L.IOMMU_DESTROY.decode(bytes);
}

// ---------------------------------------------------------------------------------------------
// struct iommu_ioas_alloc

export const SIZEOF_IOMMU_IOAS_ALLOC = L.IOMMU_IOAS_ALLOC.size;
export interface IoasAlloc {
  /** sizeof the struct as the caller sends it; encoders set it to the struct size. */
  size: number;
  /** Must be 0. */
  flags: number;
  /** The new IOAS, written by the kernel. */
  outIoasId: number;
}
export function encodeIoasAlloc(a: Partial<IoasAlloc> = {}): Uint8Array {
  return L.IOMMU_IOAS_ALLOC.encode(a);
}
export function decodeIoasAlloc(bytes: Uint8Array): IoasAlloc {
  return L.IOMMU_IOAS_ALLOC.decode(bytes);
}

// ---------------------------------------------------------------------------------------------
// struct iommu_iova_range and struct iommu_ioas_iova_ranges

export const SIZEOF_IOMMU_IOVA_RANGE = L.IOMMU_IOVA_RANGE.size;
export interface IommuIovaRange {
  /** First IOVA of the window. */
  start: bigint;
  /** Inclusive last IOVA. */
  last: bigint;
}
export function encodeIommuIovaRanges(ranges: readonly IommuIovaRange[]): Uint8Array {
  const [b, v] = alloc(ranges.length * SIZEOF_IOMMU_IOVA_RANGE);
  ranges.forEach((r, i) => {
    L.IOMMU_IOVA_RANGE.encodeInto(v, i * SIZEOF_IOMMU_IOVA_RANGE, r, `ranges[${i}].`);
  });
  return b;
}
export function decodeIommuIovaRanges(bytes: Uint8Array, numIovas: number): IommuIovaRange[] {
  const v = reader(bytes, numIovas * SIZEOF_IOMMU_IOVA_RANGE, "iommu_iova_range[]");
  return Array.from({ length: numIovas }, (_, i) =>
    L.IOMMU_IOVA_RANGE.decodeAt(v, i * SIZEOF_IOMMU_IOVA_RANGE),
  );
}

export const SIZEOF_IOMMU_IOAS_IOVA_RANGES = L.IOMMU_IOAS_IOVA_RANGES.size;
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
  return L.IOMMU_IOAS_IOVA_RANGES.encode(a);
}
export function decodeIoasIovaRanges(bytes: Uint8Array): IoasIovaRanges {
  return L.IOMMU_IOAS_IOVA_RANGES.decode(bytes);
}

// ---------------------------------------------------------------------------------------------
// struct iommu_ioas_map

export const SIZEOF_IOMMU_IOAS_MAP = L.IOMMU_IOAS_MAP.size;
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
  return L.IOMMU_IOAS_MAP.encode(a);
}
export function decodeIoasMap(bytes: Uint8Array): IoasMap {
  return L.IOMMU_IOAS_MAP.decode(bytes);
}

// ---------------------------------------------------------------------------------------------
// struct iommu_ioas_unmap

export const SIZEOF_IOMMU_IOAS_UNMAP = L.IOMMU_IOAS_UNMAP.size;
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
  return L.IOMMU_IOAS_UNMAP.encode(a);
}
export function decodeIoasUnmap(bytes: Uint8Array): IoasUnmap {
  return L.IOMMU_IOAS_UNMAP.decode(bytes);
}

// ---------------------------------------------------------------------------------------------
// struct iommu_hw_info

export const SIZEOF_IOMMU_HW_INFO = L.IOMMU_HW_INFO.size;
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
  return L.IOMMU_HW_INFO.encode(a);
}
export function decodeHwInfo(bytes: Uint8Array): HwInfo {
  return L.IOMMU_HW_INFO.decode(bytes);
}

// ---------------------------------------------------------------------------------------------
// struct iommu_hwpt_alloc

export const SIZEOF_IOMMU_HWPT_ALLOC = L.IOMMU_HWPT_ALLOC.size;
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
  return L.IOMMU_HWPT_ALLOC.encode(a);
}
export function decodeHwptAlloc(bytes: Uint8Array): HwptAlloc {
  return L.IOMMU_HWPT_ALLOC.decode(bytes);
}

// ---------------------------------------------------------------------------------------------
// struct iommu_hwpt_set_dirty_tracking

export const SIZEOF_IOMMU_HWPT_SET_DIRTY_TRACKING = L.IOMMU_HWPT_SET_DIRTY_TRACKING.size;
export interface HwptSetDirtyTracking {
  /** sizeof the struct as the caller sends it; encoders set it to the struct size. */
  size: number;
  /** IOMMU_HWPT_DIRTY_TRACKING_ENABLE, or 0 to disable. */
  flags: number;
  /** The hardware page table operated on. */
  hwptId: number;
}
export function encodeHwptSetDirtyTracking(a: { hwptId: number; flags: number; size?: number }): Uint8Array {
  return L.IOMMU_HWPT_SET_DIRTY_TRACKING.encode(a);
}
export function decodeHwptSetDirtyTracking(bytes: Uint8Array): HwptSetDirtyTracking {
  return L.IOMMU_HWPT_SET_DIRTY_TRACKING.decode(bytes);
}

// ---------------------------------------------------------------------------------------------
// struct iommu_hwpt_get_dirty_bitmap

export const SIZEOF_IOMMU_HWPT_GET_DIRTY_BITMAP = L.IOMMU_HWPT_GET_DIRTY_BITMAP.size;
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
  return L.IOMMU_HWPT_GET_DIRTY_BITMAP.encode(a);
}
export function decodeHwptGetDirtyBitmap(bytes: Uint8Array): HwptGetDirtyBitmap {
  return L.IOMMU_HWPT_GET_DIRTY_BITMAP.decode(bytes);
}

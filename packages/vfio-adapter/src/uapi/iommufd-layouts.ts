// The layouts of the include/uapi/linux/iommufd.h structs vfio-dirty uses, each described once.
// iommufd.ts derives its codecs and SIZEOF_* constants from these; the header test compiles every
// member's offset and size, and every sizeof, against real kernel headers. Member names are the
// kernel's; TypeScript names are camelCase (`page_size` is `pageSize`).
// Internal to the package: not re-exported from the package root.

import type {
  HwInfo,
  HwptAlloc,
  HwptGetDirtyBitmap,
  HwptSetDirtyTracking,
  IoasAlloc,
  IoasIovaRanges,
  IoasMap,
  IoasUnmap,
  IommuDestroy,
  IommuIovaRange,
} from "./iommufd.ts";
import { defineStruct, type KernelVersion, reserved, u8, u32, u64 } from "./struct.ts";

// `since` need only be right relative to the header sets checked (6.12 and sid have iommufd.h).
const V6_2: KernelVersion = [6, 2];
const V6_7: KernelVersion = [6, 7];
const V6_11: KernelVersion = [6, 11];
const V6_12: KernelVersion = [6, 12];

/** size: the encoders send the struct's own size unless told otherwise. */
const size = () => u32("size", "size", { default: "sizeof" });
const zero = { default: 0 } as const;
const zeroN = { default: 0n } as const;

export const IOMMU_DESTROY = defineStruct<IommuDestroy>(
  "iommu_destroy",
  "iommufd",
  8,
  [size(), u32("id", "id")],
  {
    since: V6_2,
  },
);

export const IOMMU_IOAS_ALLOC = defineStruct<IoasAlloc>(
  "iommu_ioas_alloc",
  "iommufd",
  12,
  [size(), u32("flags", "flags", zero), u32("out_ioas_id", "outIoasId", zero)],
  { since: V6_2 },
);

export const IOMMU_IOVA_RANGE = defineStruct<IommuIovaRange>(
  "iommu_iova_range",
  "iommufd",
  16,
  [u64("start", "start"), u64("last", "last")],
  { since: V6_2 },
);

export const IOMMU_IOAS_IOVA_RANGES = defineStruct<IoasIovaRanges>(
  "iommu_ioas_iova_ranges",
  "iommufd",
  32,
  [
    size(),
    u32("ioas_id", "ioasId"),
    u32("num_iovas", "numIovas"),
    reserved("__reserved", "u32"),
    u64("allowed_iovas", "allowedIovas"),
    u64("out_iova_alignment", "outIovaAlignment", zeroN),
  ],
  { since: V6_2 },
);

export const IOMMU_IOAS_MAP = defineStruct<IoasMap>(
  "iommu_ioas_map",
  "iommufd",
  40,
  [
    size(),
    u32("flags", "flags"),
    u32("ioas_id", "ioasId"),
    reserved("__reserved", "u32"),
    u64("user_va", "userVa"),
    u64("length", "length"),
    u64("iova", "iova"),
  ],
  { since: V6_2 },
);

export const IOMMU_IOAS_UNMAP = defineStruct<IoasUnmap>(
  "iommu_ioas_unmap",
  "iommufd",
  24,
  [size(), u32("ioas_id", "ioasId"), u64("iova", "iova"), u64("length", "length")],
  { since: V6_2 },
);

/** out_max_pasid_log2 and the 3-byte __reserved took the place of a u32 __reserved in 6.12's header. */
export const IOMMU_HW_INFO = defineStruct<HwInfo>(
  "iommu_hw_info",
  "iommufd",
  40,
  [
    size(),
    u32("flags", "flags", zero),
    u32("dev_id", "devId"),
    u32("data_len", "dataLen", zero),
    u64("data_uptr", "dataUptr", zeroN),
    u32("out_data_type", "outDataType", zero),
    u8("out_max_pasid_log2", "outMaxPasidLog2", { ...zero, since: V6_12 }),
    reserved("__reserved", "u8", { count: 3, since: V6_12 }),
    u64("out_capabilities", "outCapabilities", zeroN),
  ],
  { since: V6_7 },
);

/** 48 bytes with fault_id (6.11); kernels before know 40 and accept the zero tail. */
export const IOMMU_HWPT_ALLOC = defineStruct<HwptAlloc>(
  "iommu_hwpt_alloc",
  "iommufd",
  48,
  [
    size(),
    u32("flags", "flags", zero),
    u32("dev_id", "devId"),
    u32("pt_id", "ptId"),
    u32("out_hwpt_id", "outHwptId", zero),
    reserved("__reserved", "u32"),
    u32("data_type", "dataType", zero),
    u32("data_len", "dataLen", zero),
    u64("data_uptr", "dataUptr", zeroN),
    u32("fault_id", "faultId", zero),
    reserved("__reserved2", "u32"),
  ],
  { since: V6_11 },
);

export const IOMMU_HWPT_SET_DIRTY_TRACKING = defineStruct<HwptSetDirtyTracking>(
  "iommu_hwpt_set_dirty_tracking",
  "iommufd",
  16,
  [size(), u32("flags", "flags"), u32("hwpt_id", "hwptId"), reserved("__reserved", "u32")],
  { since: V6_7 },
);

export const IOMMU_HWPT_GET_DIRTY_BITMAP = defineStruct<HwptGetDirtyBitmap>(
  "iommu_hwpt_get_dirty_bitmap",
  "iommufd",
  48,
  [
    size(),
    u32("hwpt_id", "hwptId"),
    u32("flags", "flags"),
    reserved("__reserved", "u32"),
    u64("iova", "iova"),
    u64("length", "length"),
    u64("page_size", "pageSize"),
    u64("data", "data"),
  ],
  { since: V6_7 },
);

/** Every iommufd.h layout, for the header check. */
export const IOMMUFD_LAYOUTS = [
  IOMMU_DESTROY,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOVA_RANGE,
  IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_UNMAP,
  IOMMU_HW_INFO,
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_SET_DIRTY_TRACKING,
  IOMMU_HWPT_GET_DIRTY_BITMAP,
] as const;

// The layouts of the include/uapi/linux/vfio.h structs vfio-dirty uses, each described once.
// vfio.ts derives its codecs and SIZEOF_* constants from these; the header test compiles every
// member's offset and size, and every sizeof, against real kernel headers. Member names are the
// kernel's; TypeScript names are camelCase, with `size` byte counts called `length`.
// Internal to the package: not re-exported from the package root.

import {
  defineStruct,
  flexible,
  type KernelVersion,
  nested,
  reserved,
  s32,
  u16,
  u32,
  u64,
} from "./struct.ts";
import type {
  AttachIommufdPt,
  BindIommufd,
  DetachIommufdPt,
  DeviceInfo,
  DirtyBitmap,
  DirtyBitmapGet,
  DmaLoggingControl,
  DmaLoggingRange,
  DmaLoggingReport,
  DmaMap,
  DmaUnmap,
  FeatureMigDataSize,
  FeatureMigration,
  FeatureMigState,
  GroupStatus,
  IommuMigrationCap,
  IommuType1Info,
  PrecopyInfo,
  RegionInfo,
  VfioBitmap,
  VfioIovaRange,
} from "./vfio.ts";

const V6_2: KernelVersion = [6, 2];
const V6_6: KernelVersion = [6, 6];
// `since` need only be right relative to the header sets checked (6.1, 6.12, sid).
const V6_12: KernelVersion = [6, 12];
const V6_13: KernelVersion = [6, 13];
const V6_17: KernelVersion = [6, 17];

/** argsz: the encoders send the struct's own size unless told otherwise. */
const argsz = () => u32("argsz", "argsz", { default: "sizeof" });
const zero = { default: 0 } as const;
const zeroN = { default: 0n } as const;

// --- Capability chains ---

export const VFIO_INFO_CAP_HEADER = defineStruct<{ id: number; version: number; next: number }>(
  "vfio_info_cap_header",
  "vfio",
  8,
  [u16("id", "id"), u16("version", "version"), u32("next", "next")],
);

// --- Group, device, region ---

export const VFIO_GROUP_STATUS = defineStruct<GroupStatus>("vfio_group_status", "vfio", 8, [
  argsz(),
  u32("flags", "flags", zero),
]);

/** 6.1's header ends at cap_offset (20 bytes); `pad` makes it 24 later. */
export const VFIO_DEVICE_INFO = defineStruct<DeviceInfo>("vfio_device_info", "vfio", 24, [
  argsz(),
  u32("flags", "flags", zero),
  u32("num_regions", "numRegions", zero),
  u32("num_irqs", "numIrqs", zero),
  u32("cap_offset", "capOffset", zero),
  reserved("pad", "u32", { since: V6_12 }),
]);

export const VFIO_REGION_INFO = defineStruct<RegionInfo>("vfio_region_info", "vfio", 32, [
  argsz(),
  u32("flags", "flags", zero),
  u32("index", "index"),
  u32("cap_offset", "capOffset", zero),
  u64("size", "length", zeroN),
  u64("offset", "offset", zeroN),
]);

// --- Type1 IOMMU info and its capabilities ---

export const VFIO_IOMMU_TYPE1_INFO = defineStruct<IommuType1Info>("vfio_iommu_type1_info", "vfio", 24, [
  argsz(),
  u32("flags", "flags", zero),
  u64("iova_pgsizes", "iovaPgsizes"),
  u32("cap_offset", "capOffset", zero),
  // Implicit padding in 6.1's header; a named member later. sizeof is 24 either way.
  reserved("pad", "u32", { since: V6_12 }),
]);

export const VFIO_IOVA_RANGE = defineStruct<VfioIovaRange>("vfio_iova_range", "vfio", 16, [
  u64("start", "start"),
  u64("end", "end"),
]);

export const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = defineStruct<{ nrIovas: number }>(
  "vfio_iommu_type1_info_cap_iova_range",
  "vfio",
  16,
  [
    nested("header", undefined, VFIO_INFO_CAP_HEADER),
    u32("nr_iovas", "nrIovas"),
    reserved("reserved", "u32"),
    flexible("iova_ranges", VFIO_IOVA_RANGE),
  ],
);

export const VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = defineStruct<IommuMigrationCap>(
  "vfio_iommu_type1_info_cap_migration",
  "vfio",
  32,
  [
    nested("header", undefined, VFIO_INFO_CAP_HEADER),
    u32("flags", "flags"),
    u64("pgsize_bitmap", "pgsizeBitmap"),
    u64("max_dirty_bitmap_size", "maxDirtyBitmapSize"),
  ],
);

export const VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = defineStruct<{ avail: number }>(
  "vfio_iommu_type1_info_dma_avail",
  "vfio",
  12,
  [nested("header", undefined, VFIO_INFO_CAP_HEADER), u32("avail", "avail")],
);

// --- Type1 DMA map / unmap and dirty pages ---

export const VFIO_IOMMU_TYPE1_DMA_MAP = defineStruct<DmaMap>("vfio_iommu_type1_dma_map", "vfio", 32, [
  argsz(),
  u32("flags", "flags"),
  u64("vaddr", "vaddr"),
  u64("iova", "iova"),
  u64("size", "length"),
]);

export const VFIO_BITMAP = defineStruct<VfioBitmap>("vfio_bitmap", "vfio", 24, [
  u64("pgsize", "pageSize"),
  u64("size", "bitmapLength"),
  u64("data", "data"),
]);

export const VFIO_IOMMU_TYPE1_DMA_UNMAP = defineStruct<DmaUnmap>("vfio_iommu_type1_dma_unmap", "vfio", 24, [
  argsz(),
  u32("flags", "flags"),
  u64("iova", "iova"),
  u64("size", "length"),
  flexible("data", "u8"),
]);

export const VFIO_IOMMU_TYPE1_DIRTY_BITMAP = defineStruct<DirtyBitmap>(
  "vfio_iommu_type1_dirty_bitmap",
  "vfio",
  8,
  [argsz(), u32("flags", "flags"), flexible("data", "u8")],
);

export const VFIO_IOMMU_TYPE1_DIRTY_BITMAP_GET = defineStruct<DirtyBitmapGet>(
  "vfio_iommu_type1_dirty_bitmap_get",
  "vfio",
  40,
  [u64("iova", "iova"), u64("size", "length"), nested("bitmap", "bitmap", VFIO_BITMAP)],
);

// --- Device features and their payloads ---

/** The header; the payload follows in data[]. */
export const VFIO_DEVICE_FEATURE = defineStruct<{ argsz: number; flags: number }>(
  "vfio_device_feature",
  "vfio",
  8,
  [argsz(), u32("flags", "flags"), flexible("data", "u8")],
);

export const VFIO_DEVICE_FEATURE_MIGRATION = defineStruct<FeatureMigration>(
  "vfio_device_feature_migration",
  "vfio",
  8,
  [u64("flags", "flags", zeroN)],
);

export const VFIO_DEVICE_FEATURE_MIG_STATE = defineStruct<FeatureMigState>(
  "vfio_device_feature_mig_state",
  "vfio",
  8,
  [u32("device_state", "deviceState", zero), s32("data_fd", "dataFd", { default: -1 })],
);

export const VFIO_DEVICE_FEATURE_DMA_LOGGING_CONTROL = defineStruct<DmaLoggingControl>(
  "vfio_device_feature_dma_logging_control",
  "vfio",
  24,
  [
    u64("page_size", "pageSize"),
    u32("num_ranges", "numRanges"),
    reserved("__reserved", "u32"),
    u64("ranges", "ranges"),
  ],
);

export const VFIO_DEVICE_FEATURE_DMA_LOGGING_RANGE = defineStruct<DmaLoggingRange>(
  "vfio_device_feature_dma_logging_range",
  "vfio",
  16,
  [u64("iova", "iova"), u64("length", "length")],
);

export const VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT = defineStruct<DmaLoggingReport>(
  "vfio_device_feature_dma_logging_report",
  "vfio",
  32,
  [u64("iova", "iova"), u64("length", "length"), u64("page_size", "pageSize"), u64("bitmap", "bitmap")],
);

export const VFIO_DEVICE_FEATURE_MIG_DATA_SIZE = defineStruct<FeatureMigDataSize>(
  "vfio_device_feature_mig_data_size",
  "vfio",
  8,
  [u64("stop_copy_length", "stopCopyLength", zeroN)],
  { since: V6_2 },
);

export const VFIO_PRECOPY_INFO = defineStruct<PrecopyInfo>(
  "vfio_precopy_info",
  "vfio",
  24,
  [
    argsz(),
    u32("flags", "flags", zero),
    u64("initial_bytes", "initialBytes", zeroN),
    u64("dirty_bytes", "dirtyBytes", zeroN),
  ],
  { since: V6_2 },
);

// --- Device cdev and iommufd binding ---

/** 16 bytes in 6.6; token_uuid_ptr (6.17) makes it 24. */
export const VFIO_DEVICE_BIND_IOMMUFD = defineStruct<BindIommufd>(
  "vfio_device_bind_iommufd",
  "vfio",
  24,
  [
    argsz(),
    u32("flags", "flags", zero),
    s32("iommufd", "iommufd"),
    u32("out_devid", "outDevid", zero),
    u64("token_uuid_ptr", "tokenUuidPtr", { ...zeroN, since: V6_17 }),
  ],
  { since: V6_6 },
);

/** 12 bytes before pasid (6.13). */
export const VFIO_DEVICE_ATTACH_IOMMUFD_PT = defineStruct<AttachIommufdPt>(
  "vfio_device_attach_iommufd_pt",
  "vfio",
  16,
  [
    argsz(),
    u32("flags", "flags", zero),
    u32("pt_id", "ptId"),
    u32("pasid", "pasid", { ...zero, since: V6_13 }),
  ],
  { since: V6_6 },
);

/** 8 bytes before pasid (6.13). */
export const VFIO_DEVICE_DETACH_IOMMUFD_PT = defineStruct<DetachIommufdPt>(
  "vfio_device_detach_iommufd_pt",
  "vfio",
  12,
  [argsz(), u32("flags", "flags", zero), u32("pasid", "pasid", { ...zero, since: V6_13 })],
  { since: V6_6 },
);

/** Every vfio.h layout, for the header check. */
export const VFIO_LAYOUTS = [
  VFIO_INFO_CAP_HEADER,
  VFIO_GROUP_STATUS,
  VFIO_DEVICE_INFO,
  VFIO_REGION_INFO,
  VFIO_IOMMU_TYPE1_INFO,
  VFIO_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  VFIO_IOMMU_TYPE1_DMA_MAP,
  VFIO_BITMAP,
  VFIO_IOMMU_TYPE1_DMA_UNMAP,
  VFIO_IOMMU_TYPE1_DIRTY_BITMAP,
  VFIO_IOMMU_TYPE1_DIRTY_BITMAP_GET,
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_MIGRATION,
  VFIO_DEVICE_FEATURE_MIG_STATE,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_CONTROL,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_RANGE,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
  VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
  VFIO_PRECOPY_INFO,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
] as const;

// include/uapi/linux/vfio.h: the constants, ioctl numbers and struct codecs vfio-dirty uses.
//
// Every struct has a SIZEOF_* constant, an encode* (userspace -> kernel, and the simulated
// kernel's answers) and a decode* (kernel answers, and the simulated kernel reading requests).
// Offsets and field order follow the header; tests compile the real headers and compare. u64
// fields are bigint, pointers are bigint addresses (the uAPI carries them as __aligned_u64), u32
// fields are number. Encoders set argsz to the struct's size unless told otherwise.
//
//   const bytes = encodeDmaMap({ flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE, vaddr, iova, length });
//   host.ioctl(containerFd, VFIO_IOMMU_MAP_DMA, bytes);
//
// Field names: kernel names in camelCase, except that a byte count the kernel calls `size` is
// `length` here (the project's rule: no bare `size`), and `pgsize`/`page_size` is `pageSize`.

import {
  buildCapChain,
  type CapHeader,
  type CapSpec,
  capBody,
  SIZEOF_VFIO_INFO_CAP_HEADER,
  walkCapChain,
} from "./cap-chain.ts";
import { alloc, CodecError, getS32, putS32, putU32, reader, U32_MAX } from "./codec.ts";
import { _IO } from "./ioctl.ts";
import type { KernelVersion, StructLayout } from "./struct.ts";
import * as L from "./vfio-layouts.ts";

// ---------------------------------------------------------------------------------------------
// Constants

/** VFIO_API_VERSION: what VFIO_GET_API_VERSION returns. */
export const VFIO_API_VERSION = 0;

/** Extensions (VFIO_CHECK_EXTENSION arguments) and IOMMU types (VFIO_SET_IOMMU arguments). */
export const VFIO_TYPE1_IOMMU = 1;
export const VFIO_SPAPR_TCE_IOMMU = 2;
export const VFIO_TYPE1v2_IOMMU = 3;
export const VFIO_DMA_CC_IOMMU = 4;
export const VFIO_EEH = 5;
export const VFIO_SPAPR_TCE_v2_IOMMU = 7;
export const VFIO_NOIOMMU_IOMMU = 8;
export const VFIO_UNMAP_ALL = 9;
export const VFIO_UPDATE_VADDR = 10;

/** ioctl type byte ';' and the first VFIO nr. */
export const VFIO_TYPE = 0x3b;
export const VFIO_BASE = 100;

// Container (/dev/vfio/vfio) ioctls.
export const VFIO_GET_API_VERSION = _IO(VFIO_TYPE, VFIO_BASE + 0);
export const VFIO_CHECK_EXTENSION = _IO(VFIO_TYPE, VFIO_BASE + 1);
export const VFIO_SET_IOMMU = _IO(VFIO_TYPE, VFIO_BASE + 2);
// Group (/dev/vfio/$GROUP) ioctls.
export const VFIO_GROUP_GET_STATUS = _IO(VFIO_TYPE, VFIO_BASE + 3);
export const VFIO_GROUP_SET_CONTAINER = _IO(VFIO_TYPE, VFIO_BASE + 4);
export const VFIO_GROUP_UNSET_CONTAINER = _IO(VFIO_TYPE, VFIO_BASE + 5);
export const VFIO_GROUP_GET_DEVICE_FD = _IO(VFIO_TYPE, VFIO_BASE + 6);
// Device ioctls.
export const VFIO_DEVICE_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 7);
export const VFIO_DEVICE_GET_REGION_INFO = _IO(VFIO_TYPE, VFIO_BASE + 8);
export const VFIO_DEVICE_GET_IRQ_INFO = _IO(VFIO_TYPE, VFIO_BASE + 9);
export const VFIO_DEVICE_SET_IRQS = _IO(VFIO_TYPE, VFIO_BASE + 10);
export const VFIO_DEVICE_RESET = _IO(VFIO_TYPE, VFIO_BASE + 11);
// Type1 IOMMU ioctls (on the container).
export const VFIO_IOMMU_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 12);
export const VFIO_IOMMU_MAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 13);
export const VFIO_IOMMU_UNMAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 14);
export const VFIO_IOMMU_ENABLE = _IO(VFIO_TYPE, VFIO_BASE + 15);
export const VFIO_IOMMU_DISABLE = _IO(VFIO_TYPE, VFIO_BASE + 16);
/**
 * VFIO_IOMMU_DIRTY_PAGES (container fd) and VFIO_DEVICE_FEATURE (device fd) are the same number,
 * 0x3b75. Route by what the fd is, never by the number alone.
 */
export const VFIO_IOMMU_DIRTY_PAGES = _IO(VFIO_TYPE, VFIO_BASE + 17);
export const VFIO_DEVICE_FEATURE = _IO(VFIO_TYPE, VFIO_BASE + 17);
// Device cdev (/dev/vfio/devices/vfioN) ioctls, Linux 6.6+.
export const VFIO_DEVICE_BIND_IOMMUFD = _IO(VFIO_TYPE, VFIO_BASE + 18);
export const VFIO_DEVICE_ATTACH_IOMMUFD_PT = _IO(VFIO_TYPE, VFIO_BASE + 19);
export const VFIO_DEVICE_DETACH_IOMMUFD_PT = _IO(VFIO_TYPE, VFIO_BASE + 20);
/** On the migration data fd, Linux 6.2+. */
export const VFIO_MIG_GET_PRECOPY_INFO = _IO(VFIO_TYPE, VFIO_BASE + 21);

// struct vfio_group_status flags.
export const VFIO_GROUP_FLAGS_VIABLE = 1 << 0;
export const VFIO_GROUP_FLAGS_CONTAINER_SET = 1 << 1;

// struct vfio_device_info flags.
export const VFIO_DEVICE_FLAGS_RESET = 1 << 0;
export const VFIO_DEVICE_FLAGS_PCI = 1 << 1;
export const VFIO_DEVICE_FLAGS_PLATFORM = 1 << 2;
export const VFIO_DEVICE_FLAGS_AMBA = 1 << 3;
export const VFIO_DEVICE_FLAGS_CCW = 1 << 4;
export const VFIO_DEVICE_FLAGS_AP = 1 << 5;
export const VFIO_DEVICE_FLAGS_FSL_MC = 1 << 6;
export const VFIO_DEVICE_FLAGS_CAPS = 1 << 7;

// struct vfio_region_info flags.
export const VFIO_REGION_INFO_FLAG_READ = 1 << 0;
export const VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
export const VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;
export const VFIO_REGION_INFO_FLAG_CAPS = 1 << 3;

/** vfio-pci's fixed region indexes. */
export const VFIO_PCI_BAR0_REGION_INDEX = 0;
export const VFIO_PCI_BAR1_REGION_INDEX = 1;
export const VFIO_PCI_BAR2_REGION_INDEX = 2;
export const VFIO_PCI_BAR3_REGION_INDEX = 3;
export const VFIO_PCI_BAR4_REGION_INDEX = 4;
export const VFIO_PCI_BAR5_REGION_INDEX = 5;
export const VFIO_PCI_ROM_REGION_INDEX = 6;
export const VFIO_PCI_CONFIG_REGION_INDEX = 7;
export const VFIO_PCI_VGA_REGION_INDEX = 8;
export const VFIO_PCI_NUM_REGIONS = 9;

// struct vfio_iommu_type1_info flags and capability ids.
export const VFIO_IOMMU_INFO_PGSIZES = 1 << 0;
export const VFIO_IOMMU_INFO_CAPS = 1 << 1;
export const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;
export const VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = 2;
export const VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3;

// struct vfio_iommu_type1_dma_map flags.
export const VFIO_DMA_MAP_FLAG_READ = 1 << 0;
export const VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;
export const VFIO_DMA_MAP_FLAG_VADDR = 1 << 2;

// struct vfio_iommu_type1_dma_unmap flags.
export const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1 << 0;
export const VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1;
export const VFIO_DMA_UNMAP_FLAG_VADDR = 1 << 2;

// struct vfio_iommu_type1_dirty_bitmap flags: exactly one per call.
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_START = 1 << 0;
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP = 1 << 1;
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP = 1 << 2;

// struct vfio_device_feature flags: a 16-bit feature index plus GET / SET / PROBE.
export const VFIO_DEVICE_FEATURE_MASK = 0xffff;
export const VFIO_DEVICE_FEATURE_GET = 1 << 16;
export const VFIO_DEVICE_FEATURE_SET = 1 << 17;
export const VFIO_DEVICE_FEATURE_PROBE = 1 << 18;

// Feature indexes.
export const VFIO_DEVICE_FEATURE_PCI_VF_TOKEN = 0;
export const VFIO_DEVICE_FEATURE_MIGRATION = 1;
export const VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE = 2;
export const VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY = 3;
export const VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP = 4;
export const VFIO_DEVICE_FEATURE_LOW_POWER_EXIT = 5;
export const VFIO_DEVICE_FEATURE_DMA_LOGGING_START = 6;
export const VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP = 7;
export const VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT = 8;
/** Linux 6.2+. */
export const VFIO_DEVICE_FEATURE_MIG_DATA_SIZE = 9;
/**
 * Linux 7.1+: a SET (no payload) opts the device fd in to the v2 VFIO_MIG_GET_PRECOPY_INFO, whose
 * `flags` is an output (VFIO_PRECOPY_INFO_REINIT). EINVAL on a device without PRE_COPY, ENOTTY on
 * older kernels; the opt-in lasts until the device fd's last close.
 */
export const VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 = 12;

/** Names of the feature indexes, for messages such as "VFIO_DEVICE_FEATURE(SET|DMA_LOGGING_START)". */
export const VFIO_DEVICE_FEATURE_NAMES: Readonly<Record<number, string>> = {
  [VFIO_DEVICE_FEATURE_PCI_VF_TOKEN]: "PCI_VF_TOKEN",
  [VFIO_DEVICE_FEATURE_MIGRATION]: "MIGRATION",
  [VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE]: "MIG_DEVICE_STATE",
  [VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY]: "LOW_POWER_ENTRY",
  [VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP]: "LOW_POWER_ENTRY_WITH_WAKEUP",
  [VFIO_DEVICE_FEATURE_LOW_POWER_EXIT]: "LOW_POWER_EXIT",
  [VFIO_DEVICE_FEATURE_DMA_LOGGING_START]: "DMA_LOGGING_START",
  [VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP]: "DMA_LOGGING_STOP",
  [VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT]: "DMA_LOGGING_REPORT",
  [VFIO_DEVICE_FEATURE_MIG_DATA_SIZE]: "MIG_DATA_SIZE",
  [VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2]: "MIG_PRECOPY_INFOv2",
};

/** "VFIO_DEVICE_FEATURE(GET|MIGRATION)", "VFIO_DEVICE_FEATURE(PROBE|SET|DMA_LOGGING_START)". */
export function deviceFeatureOpName(flags: number): string {
  const parts: string[] = [];
  if (flags & VFIO_DEVICE_FEATURE_PROBE) parts.push("PROBE");
  if (flags & VFIO_DEVICE_FEATURE_GET) parts.push("GET");
  if (flags & VFIO_DEVICE_FEATURE_SET) parts.push("SET");
  const index = flags & VFIO_DEVICE_FEATURE_MASK;
  parts.push(VFIO_DEVICE_FEATURE_NAMES[index] ?? `feature ${index}`);
  return `VFIO_DEVICE_FEATURE(${parts.join("|")})`;
}

// struct vfio_device_feature_migration flags.
export const VFIO_MIGRATION_STOP_COPY = 1 << 0;
export const VFIO_MIGRATION_P2P = 1 << 1;
/** Linux 6.2+. */
export const VFIO_MIGRATION_PRE_COPY = 1 << 2;

// enum vfio_device_mig_state.
export const VFIO_DEVICE_STATE_ERROR = 0;
export const VFIO_DEVICE_STATE_STOP = 1;
export const VFIO_DEVICE_STATE_RUNNING = 2;
export const VFIO_DEVICE_STATE_STOP_COPY = 3;
export const VFIO_DEVICE_STATE_RESUMING = 4;
export const VFIO_DEVICE_STATE_RUNNING_P2P = 5;
/** Linux 6.2+. */
export const VFIO_DEVICE_STATE_PRE_COPY = 6;
/** Linux 6.2+. */
export const VFIO_DEVICE_STATE_PRE_COPY_P2P = 7;
/** Number of states (VFIO_DEVICE_STATE_NR, Linux 6.2+; 6 before PRE_COPY existed). */
export const VFIO_DEVICE_STATE_NR = 8;

export const VFIO_DEVICE_STATE_NAMES: readonly string[] = [
  "ERROR",
  "STOP",
  "RUNNING",
  "STOP_COPY",
  "RESUMING",
  "RUNNING_P2P",
  "PRE_COPY",
  "PRE_COPY_P2P",
];

// struct vfio_device_bind_iommufd flags (Linux 6.17+, with the 24-byte form).
export const VFIO_DEVICE_BIND_FLAG_TOKEN = 1 << 0;
// struct vfio_device_attach_iommufd_pt / detach flags (Linux 6.13+).
export const VFIO_DEVICE_ATTACH_PASID = 1 << 0;
export const VFIO_DEVICE_DETACH_PASID = 1 << 0;

// ---------------------------------------------------------------------------------------------
// Migration state machine

/**
 * The kernel's vfio_from_fsm_table (drivers/vfio/vfio_main.c): from state `cur`, to reach
 * `target`, the next single arc goes to MIG_FSM_TABLE[cur][target]. Indexed by state number.
 * STOP_COPY -> PRE_COPY(_P2P) leads to ERROR: those arcs are blocked.
 */
export const MIG_FSM_TABLE: readonly (readonly number[])[] = buildFsmTable();

/**
 * The kernel's state_flags_table: the VFIO_MIGRATION_* flags a device must report for a state to
 * exist on it. ERROR needs every flag (it can never be requested).
 */
export const MIG_STATE_FLAGS: readonly number[] = [
  /* ERROR */ U32_MAX,
  /* STOP */ VFIO_MIGRATION_STOP_COPY,
  /* RUNNING */ VFIO_MIGRATION_STOP_COPY,
  /* STOP_COPY */ VFIO_MIGRATION_STOP_COPY,
  /* RESUMING */ VFIO_MIGRATION_STOP_COPY,
  /* RUNNING_P2P */ VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P,
  /* PRE_COPY */ VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY,
  /* PRE_COPY_P2P */ VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY,
];

/** True when a device with these VFIO_MIGRATION_* flags has `state`. */
export function migStateSupported(state: number, migrationFlags: number): boolean {
  const need = MIG_STATE_FLAGS[state];
  return need !== undefined && (need & migrationFlags) >>> 0 === need >>> 0;
}

/**
 * vfio_mig_get_next_state(): the next state on the way from `cur` to `target` on a device with
 * `migrationFlags`, skipping states the device lacks. undefined when the kernel answers EINVAL
 * (unsupported or unknown state, or a blocked arc).
 */
export function nextMigState(cur: number, target: number, migrationFlags: number): number | undefined {
  if (!migStateSupported(cur, migrationFlags) || !migStateSupported(target, migrationFlags)) return undefined;
  let next = MIG_FSM_TABLE[cur]![target]!;
  // ERROR is never "supported" (it needs every flag), so stop there rather than loop on it.
  while (next !== VFIO_DEVICE_STATE_ERROR && !migStateSupported(next, migrationFlags))
    next = MIG_FSM_TABLE[next]![target]!;
  return next === VFIO_DEVICE_STATE_ERROR ? undefined : next;
}

/**
 * The states a SET of `target` passes through from `cur` (excluding `cur`, ending in `target`),
 * as vfio_mig_set_state() steps a driver; undefined when the kernel would refuse.
 */
export function migStatePath(cur: number, target: number, migrationFlags: number): number[] | undefined {
  if (!migStateSupported(cur, migrationFlags) || !migStateSupported(target, migrationFlags)) return undefined;
  const path: number[] = [];
  let at = cur;
  // Each step gets strictly closer in the kernel's table; the bound only guards a corrupted table.
  for (let i = 0; at !== target && i < VFIO_DEVICE_STATE_NR; i++) {
    const next = nextMigState(at, target, migrationFlags);
    if (next === undefined) return undefined;
    path.push(next);
    at = next;
  }
  return at === target ? path : undefined;
}

// ---------------------------------------------------------------------------------------------
// struct vfio_group_status

export const SIZEOF_VFIO_GROUP_STATUS = L.VFIO_GROUP_STATUS.size;
export interface GroupStatus {
  /** Bytes the caller provides; encoders set it to the struct size. */
  argsz: number;
  /** VFIO_GROUP_FLAGS_*. */
  flags: number;
}
export function encodeGroupStatus(a: Partial<GroupStatus> = {}): Uint8Array {
  return L.VFIO_GROUP_STATUS.encode(a);
}
export function decodeGroupStatus(bytes: Uint8Array): GroupStatus {
  return L.VFIO_GROUP_STATUS.decode(bytes);
}

/** VFIO_GROUP_SET_CONTAINER reads an int (the container fd) through its pointer argument. */
export const SIZEOF_VFIO_FD_ARG = 4;
export function encodeFdArg(fd: number): Uint8Array {
  const [b, v] = alloc(SIZEOF_VFIO_FD_ARG);
  putS32(v, 0, fd, "fd");
  return b;
}
export function decodeFdArg(bytes: Uint8Array): number {
  return getS32(reader(bytes, SIZEOF_VFIO_FD_ARG, "int fd"), 0);
}

/** VFIO_GROUP_GET_DEVICE_FD takes the device name as a NUL-terminated string ("0000:3b:00.1"). */
export function encodeDeviceName(name: string): Uint8Array {
  if (name.length === 0 || name.includes("\0"))
    throw new CodecError(`device name ${JSON.stringify(name)} is invalid`);
  const text = new TextEncoder().encode(name);
  const b = new Uint8Array(text.length + 1);
  b.set(text);
  return b;
}
export function decodeDeviceName(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  if (end < 0) throw new CodecError("device name is not NUL-terminated");
  return new TextDecoder().decode(bytes.subarray(0, end));
}

// ---------------------------------------------------------------------------------------------
// struct vfio_device_info

export const SIZEOF_VFIO_DEVICE_INFO = L.VFIO_DEVICE_INFO.size;
export interface DeviceInfo {
  /** Bytes the caller provides; encoders set it to the struct size. */
  argsz: number;
  /** VFIO_DEVICE_FLAGS_*. */
  flags: number;
  /** Max region index + 1. */
  numRegions: number;
  /** Max IRQ index + 1. */
  numIrqs: number;
  /** Offset of the first capability, valid with VFIO_DEVICE_FLAGS_CAPS. */
  capOffset: number;
}
export function encodeDeviceInfo(a: Partial<DeviceInfo> = {}): Uint8Array {
  return L.VFIO_DEVICE_INFO.encode(a);
}
export function decodeDeviceInfo(bytes: Uint8Array): DeviceInfo {
  return L.VFIO_DEVICE_INFO.decode(bytes);
}

// ---------------------------------------------------------------------------------------------
// struct vfio_region_info

export const SIZEOF_VFIO_REGION_INFO = L.VFIO_REGION_INFO.size;
export interface RegionInfo {
  /** Bytes the caller provides; encoders set it to the struct size. */
  argsz: number;
  /** VFIO_REGION_INFO_FLAG_*. */
  flags: number;
  /** Region index, the input. */
  index: number;
  /** Offset of the first capability, valid with VFIO_REGION_INFO_FLAG_CAPS. */
  capOffset: number;
  /** Region size in bytes (kernel: size). */
  length: bigint;
  /** Region offset within the device fd, for pread/pwrite/mmap. */
  offset: bigint;
}
export function encodeRegionInfo(a: Partial<RegionInfo> & { index: number }): Uint8Array {
  return L.VFIO_REGION_INFO.encode(a);
}
export function decodeRegionInfo(bytes: Uint8Array): RegionInfo {
  return L.VFIO_REGION_INFO.decode(bytes);
}

// ---------------------------------------------------------------------------------------------
// struct vfio_iommu_type1_info and its capabilities

export const SIZEOF_VFIO_IOMMU_TYPE1_INFO = L.VFIO_IOMMU_TYPE1_INFO.size;
/** Offset of cap_offset in struct vfio_iommu_type1_info (for fitInfoToArgsz). */
export const VFIO_IOMMU_TYPE1_INFO_CAP_OFFSET_AT = L.VFIO_IOMMU_TYPE1_INFO.offsetOf("cap_offset");
export const SIZEOF_VFIO_IOVA_RANGE = L.VFIO_IOVA_RANGE.size;
/** sizeof(struct vfio_iommu_type1_info_cap_iova_range) without the flexible array. */
export const SIZEOF_VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = L.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE.size;
export const SIZEOF_VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = L.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION.size;
export const SIZEOF_VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = L.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL.size;

export interface IommuType1Info {
  /** Size the kernel filled, or (with VFIO_IOMMU_INFO_CAPS and cap_offset 0) the size it needs. */
  argsz: number;
  /** VFIO_IOMMU_INFO_*. */
  flags: number;
  /** Bitmap of supported IOMMU page sizes. */
  iovaPgsizes: bigint;
  /** Offset of the first capability, 0 when none or when the buffer was too small. */
  capOffset: number;
}

/** struct vfio_iova_range: an inclusive IOVA window. */
export interface VfioIovaRange {
  /** First IOVA of the window. */
  start: bigint;
  /** Inclusive last IOVA. */
  end: bigint;
}

/** struct vfio_iommu_type1_info_cap_migration, minus the header. */
export interface IommuMigrationCap {
  /** Reserved, 0 today. */
  flags: number;
  /** Page sizes dirty tracking can report at. */
  pgsizeBitmap: bigint;
  /** Largest bitmap, in bytes, one VFIO_IOMMU_DIRTY_PAGES GET_BITMAP may ask for. */
  maxDirtyBitmapSize: bigint;
}

/** The capabilities vfio-dirty understands; anything else is listed in `unknown`. */
export interface IommuType1Caps {
  /** Usable IOVA windows (VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE). */
  iovaRanges?: VfioIovaRange[];
  /** Present when the type1 driver can log dirty pages (VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION). */
  migration?: IommuMigrationCap;
  /** DMA mappings still available (struct vfio_iommu_type1_info_dma_avail). */
  dmaAvail?: number;
  /** Capabilities this version does not decode, in chain order. */
  unknown: CapHeader[];
}

/**
 * The request: only argsz matters. Pass a larger `argsz` (the kernel's answer) for the retry;
 * the buffer is that long so the kernel can write the capability chain after the fixed part.
 */
export function encodeIommuType1InfoRequest(argsz: number = SIZEOF_VFIO_IOMMU_TYPE1_INFO): Uint8Array {
  if (argsz < SIZEOF_VFIO_IOMMU_TYPE1_INFO) throw new CodecError(`argsz ${argsz} is below the struct size`);
  const [b, v] = alloc(argsz);
  putU32(v, L.VFIO_IOMMU_TYPE1_INFO.offsetOf("argsz"), argsz, "argsz");
  return b;
}

/** The fixed part. Accepts longer buffers (the chain follows). */
export function decodeIommuType1Info(bytes: Uint8Array): IommuType1Info {
  return L.VFIO_IOMMU_TYPE1_INFO.decode(bytes);
}

/**
 * The retry protocol: the buffer length to retry with when the kernel reported (CAPS flag set,
 * argsz larger than what was sent) that the chain did not fit; undefined when no retry is due.
 */
export function iommuInfoRetryArgsz(info: IommuType1Info, sentArgsz: number): number | undefined {
  return info.flags & VFIO_IOMMU_INFO_CAPS && info.argsz > sentArgsz ? info.argsz : undefined;
}

/**
 * Walks and decodes the capability chain of a whole answer. No chain (no CAPS flag, cap_offset 0)
 * gives no capabilities. Throws CodecError when argsz exceeds the buffer, the chain loops or
 * overruns, or a capability's body does not fit.
 */
export function decodeIommuType1InfoCaps(bytes: Uint8Array): IommuType1Caps {
  const info = decodeIommuType1Info(bytes);
  const caps: IommuType1Caps = { unknown: [] };
  if (!(info.flags & VFIO_IOMMU_INFO_CAPS) || info.capOffset === 0) return caps;
  if (info.argsz > bytes.byteLength)
    throw new CodecError(
      `vfio_iommu_type1_info: argsz ${info.argsz} exceeds the ${bytes.byteLength}-byte buffer yet cap_offset is set`,
    );
  const filled = bytes.subarray(0, info.argsz);
  for (const cap of walkCapChain(
    filled,
    info.capOffset,
    SIZEOF_VFIO_IOMMU_TYPE1_INFO,
    "vfio_iommu_type1_info",
  )) {
    if (cap.id === VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
      const what = "vfio_iommu_type1_info_cap_iova_range";
      const v = capBody(filled, cap, SIZEOF_VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, what);
      const nr = L.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE.decodeAt(v, cap.offset).nrIovas;
      capBody(
        filled,
        cap,
        SIZEOF_VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE + nr * SIZEOF_VFIO_IOVA_RANGE,
        `${what} (${nr} ranges)`,
      );
      caps.iovaRanges = [];
      const first = cap.offset + L.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE.offsetOf("iova_ranges");
      for (let i = 0; i < nr; i++)
        caps.iovaRanges.push(L.VFIO_IOVA_RANGE.decodeAt(v, first + i * SIZEOF_VFIO_IOVA_RANGE));
    } else if (cap.id === VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION) {
      const v = capBody(
        filled,
        cap,
        SIZEOF_VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
        "vfio_iommu_type1_info_cap_migration",
      );
      caps.migration = L.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION.decodeAt(v, cap.offset);
    } else if (cap.id === VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
      const v = capBody(
        filled,
        cap,
        SIZEOF_VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
        "vfio_iommu_type1_info_dma_avail",
      );
      caps.dmaAvail = L.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL.decodeAt(v, cap.offset).avail;
    } else {
      caps.unknown.push(cap);
    }
  }
  return caps;
}

/**
 * A whole answer as the kernel builds it (vfio_iommu_type1_get_info): fixed part, then the
 * capabilities in the kernel's order (migration, DMA avail, IOVA ranges: the order of its
 * vfio_iommu_*_build_caps calls), then any `extra`; argsz = total length, CAPS set when there is a
 * chain. `alignCaps` (default true) pads each capability to 8 bytes as kernels since v6.6 do;
 * false gives the packed chain of earlier kernels (see buildCapChain). The one builder of this
 * answer, for the simulated kernel and for tests; cut it to the caller's argsz with fitInfoToArgsz().
 */
export function encodeIommuType1Info(a: {
  flags?: number;
  iovaPgsizes: bigint;
  caps?: Omit<IommuType1Caps, "unknown"> & { extra?: CapSpec[] };
  alignCaps?: boolean;
}): Uint8Array {
  const specs: CapSpec[] = [];
  const c = a.caps ?? {};
  // Capability bodies are encoded whole and their header cut off: buildCapChain writes headers.
  const body = (bytes: Uint8Array) => bytes.subarray(SIZEOF_VFIO_INFO_CAP_HEADER);
  if (c.migration)
    specs.push({
      id: VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
      version: 1,
      body: body(L.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION.encode(c.migration)),
    });
  if (c.dmaAvail !== undefined)
    specs.push({
      id: VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
      version: 1,
      body: body(L.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL.encode({ avail: c.dmaAvail })),
    });
  if (c.iovaRanges) {
    const cap = L.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE;
    const [whole, v] = alloc(cap.size + c.iovaRanges.length * SIZEOF_VFIO_IOVA_RANGE);
    cap.encodeInto(v, 0, { nrIovas: c.iovaRanges.length });
    const first = cap.offsetOf("iova_ranges");
    c.iovaRanges.forEach((r, i) => {
      L.VFIO_IOVA_RANGE.encodeInto(v, first + i * SIZEOF_VFIO_IOVA_RANGE, r);
    });
    specs.push({ id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, version: 1, body: body(whole) });
  }
  specs.push(...(c.extra ?? []));
  const fixed = L.VFIO_IOMMU_TYPE1_INFO.encode({ iovaPgsizes: a.iovaPgsizes, argsz: 0 });
  const { bytes, first } = buildCapChain(fixed, specs, a.alignCaps ?? true);
  L.VFIO_IOMMU_TYPE1_INFO.encodeInto(new DataView(bytes.buffer), 0, {
    argsz: bytes.length,
    flags: (a.flags ?? VFIO_IOMMU_INFO_PGSIZES) | (first ? VFIO_IOMMU_INFO_CAPS : 0),
    iovaPgsizes: a.iovaPgsizes,
    capOffset: first,
  });
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// struct vfio_iommu_type1_dma_map

export const SIZEOF_VFIO_IOMMU_TYPE1_DMA_MAP = L.VFIO_IOMMU_TYPE1_DMA_MAP.size;
export interface DmaMap {
  /** Bytes the caller provides; encoders set it to the struct size. */
  argsz: number;
  /** VFIO_DMA_MAP_FLAG_*. */
  flags: number;
  /** Process virtual address of the memory to map. */
  vaddr: bigint;
  /** First IOVA of the range. */
  iova: bigint;
  /** Bytes to map (kernel: size). */
  length: bigint;
}
export function encodeDmaMap(a: Omit<DmaMap, "argsz"> & { argsz?: number }): Uint8Array {
  return L.VFIO_IOMMU_TYPE1_DMA_MAP.encode(a);
}
export function decodeDmaMap(bytes: Uint8Array): DmaMap {
  return L.VFIO_IOMMU_TYPE1_DMA_MAP.decode(bytes);
}

// ---------------------------------------------------------------------------------------------
// struct vfio_bitmap (inside dma_unmap and dirty_bitmap_get)

export const SIZEOF_VFIO_BITMAP = L.VFIO_BITMAP.size;
export interface VfioBitmap {
  /** Bytes of IOVA per bit (kernel: pgsize). */
  pageSize: bigint;
  /** Bytes of bitmap memory at `data` (kernel: size). */
  bitmapLength: bigint;
  /** Address of the zeroed bitmap memory, u64 words. */
  data: bigint;
}

// ---------------------------------------------------------------------------------------------
// struct vfio_iommu_type1_dma_unmap (+ trailing struct vfio_bitmap with GET_DIRTY_BITMAP)

export const SIZEOF_VFIO_IOMMU_TYPE1_DMA_UNMAP = L.VFIO_IOMMU_TYPE1_DMA_UNMAP.size;
/** The unmap struct followed by the vfio_bitmap its data[] carries with GET_DIRTY_BITMAP. */
export const SIZEOF_VFIO_IOMMU_TYPE1_DMA_UNMAP_WITH_BITMAP =
  SIZEOF_VFIO_IOMMU_TYPE1_DMA_UNMAP + SIZEOF_VFIO_BITMAP;
export interface DmaUnmap {
  /** Bytes the caller provides; encoders set it to the struct size. */
  argsz: number;
  /** VFIO_DMA_UNMAP_FLAG_*. */
  flags: number;
  /** First IOVA of the range. */
  iova: bigint;
  /** Bytes to unmap; the kernel writes back how many it unmapped (kernel: size). */
  length: bigint;
  /** Present when argsz covers it and GET_DIRTY_BITMAP is set. */
  bitmap?: VfioBitmap;
}
/** argsz is 24, or 48 when a bitmap is given (the bitmap lives in data[]). */
export function encodeDmaUnmap(a: Omit<DmaUnmap, "argsz"> & { argsz?: number }): Uint8Array {
  const total = a.bitmap ? SIZEOF_VFIO_IOMMU_TYPE1_DMA_UNMAP_WITH_BITMAP : SIZEOF_VFIO_IOMMU_TYPE1_DMA_UNMAP;
  const b = L.VFIO_IOMMU_TYPE1_DMA_UNMAP.encode(a, total);
  const data = L.VFIO_IOMMU_TYPE1_DMA_UNMAP.offsetOf("data");
  if (a.bitmap) L.VFIO_BITMAP.encodeInto(new DataView(b.buffer), data, a.bitmap, "bitmap.");
  return b;
}
export function decodeDmaUnmap(bytes: Uint8Array): DmaUnmap {
  const u = L.VFIO_IOMMU_TYPE1_DMA_UNMAP.decode(bytes);
  if (
    u.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP &&
    u.argsz >= SIZEOF_VFIO_IOMMU_TYPE1_DMA_UNMAP_WITH_BITMAP
  ) {
    const v = reader(
      bytes,
      SIZEOF_VFIO_IOMMU_TYPE1_DMA_UNMAP_WITH_BITMAP,
      "vfio_iommu_type1_dma_unmap + vfio_bitmap",
    );
    u.bitmap = L.VFIO_BITMAP.decodeAt(v, L.VFIO_IOMMU_TYPE1_DMA_UNMAP.offsetOf("data"));
  }
  return u;
}

// ---------------------------------------------------------------------------------------------
// struct vfio_iommu_type1_dirty_bitmap (+ struct vfio_iommu_type1_dirty_bitmap_get for GET_BITMAP)

export const SIZEOF_VFIO_IOMMU_TYPE1_DIRTY_BITMAP = L.VFIO_IOMMU_TYPE1_DIRTY_BITMAP.size;
export const SIZEOF_VFIO_IOMMU_TYPE1_DIRTY_BITMAP_GET = L.VFIO_IOMMU_TYPE1_DIRTY_BITMAP_GET.size;
export const SIZEOF_VFIO_IOMMU_TYPE1_DIRTY_BITMAP_WITH_GET =
  SIZEOF_VFIO_IOMMU_TYPE1_DIRTY_BITMAP + SIZEOF_VFIO_IOMMU_TYPE1_DIRTY_BITMAP_GET;
export interface DirtyBitmapGet {
  /** First IOVA of the range. */
  iova: bigint;
  /** Bytes of IOVA to report (kernel: size). */
  length: bigint;
  /** Where the kernel writes the bits. */
  bitmap: VfioBitmap;
}
export interface DirtyBitmap {
  /** Bytes the caller provides; encoders set it to the struct size. */
  argsz: number;
  /** Exactly one VFIO_IOMMU_DIRTY_PAGES_FLAG_*. */
  flags: number;
  /** With GET_BITMAP: the range and where to write its bits. */
  get?: DirtyBitmapGet;
}
/** START / STOP: 8 bytes. GET_BITMAP: 48 bytes, argsz covering the get struct but not the bitmap memory. */
export function encodeDirtyBitmap(a: Omit<DirtyBitmap, "argsz"> & { argsz?: number }): Uint8Array {
  const total = a.get ? SIZEOF_VFIO_IOMMU_TYPE1_DIRTY_BITMAP_WITH_GET : SIZEOF_VFIO_IOMMU_TYPE1_DIRTY_BITMAP;
  const b = L.VFIO_IOMMU_TYPE1_DIRTY_BITMAP.encode(a, total);
  const data = L.VFIO_IOMMU_TYPE1_DIRTY_BITMAP.offsetOf("data");
  if (a.get) L.VFIO_IOMMU_TYPE1_DIRTY_BITMAP_GET.encodeInto(new DataView(b.buffer), data, a.get);
  return b;
}
export function decodeDirtyBitmap(bytes: Uint8Array): DirtyBitmap {
  const d = L.VFIO_IOMMU_TYPE1_DIRTY_BITMAP.decode(bytes);
  if (d.flags & VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP) {
    const v = reader(
      bytes,
      SIZEOF_VFIO_IOMMU_TYPE1_DIRTY_BITMAP_WITH_GET,
      "vfio_iommu_type1_dirty_bitmap + _get",
    );
    d.get = L.VFIO_IOMMU_TYPE1_DIRTY_BITMAP_GET.decodeAt(v, L.VFIO_IOMMU_TYPE1_DIRTY_BITMAP.offsetOf("data"));
  }
  return d;
}

// ---------------------------------------------------------------------------------------------
// struct vfio_device_feature (header) and the feature payloads in its data[]

export const SIZEOF_VFIO_DEVICE_FEATURE = L.VFIO_DEVICE_FEATURE.size;
export interface DeviceFeature {
  /** Bytes the caller provides; encoders set it to the struct size. */
  argsz: number;
  /** Feature index | VFIO_DEVICE_FEATURE_GET / SET / PROBE. */
  flags: number;
  /** The feature's payload (a view into the buffer on decode). */
  data: Uint8Array;
}
/** Header + payload, argsz = 8 + payload length. The kernel writes GET answers into the payload. */
export function encodeDeviceFeature(flags: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const b = L.VFIO_DEVICE_FEATURE.encode({ flags }, SIZEOF_VFIO_DEVICE_FEATURE + data.byteLength);
  b.set(data, L.VFIO_DEVICE_FEATURE.offsetOf("data"));
  return b;
}
/** The payload is bytes [8, argsz); argsz beyond the buffer is an error. */
export function decodeDeviceFeature(bytes: Uint8Array): DeviceFeature {
  const { argsz, flags } = L.VFIO_DEVICE_FEATURE.decode(bytes);
  if (argsz < SIZEOF_VFIO_DEVICE_FEATURE || argsz > bytes.byteLength)
    throw new CodecError(`vfio_device_feature: argsz ${argsz} outside 8..${bytes.byteLength}`);
  return { argsz, flags, data: bytes.subarray(L.VFIO_DEVICE_FEATURE.offsetOf("data"), argsz) };
}

/** struct vfio_device_feature_migration. */
export const SIZEOF_VFIO_DEVICE_FEATURE_MIGRATION = L.VFIO_DEVICE_FEATURE_MIGRATION.size;
export interface FeatureMigration {
  /** VFIO_MIGRATION_*. A u64 in the uAPI; the defined bits fit in a number. */
  flags: bigint;
}
export function encodeFeatureMigration(a: Partial<FeatureMigration> = {}): Uint8Array {
  return L.VFIO_DEVICE_FEATURE_MIGRATION.encode(a);
}
export function decodeFeatureMigration(bytes: Uint8Array): FeatureMigration {
  return L.VFIO_DEVICE_FEATURE_MIGRATION.decode(bytes);
}

/** struct vfio_device_feature_mig_state. */
export const SIZEOF_VFIO_DEVICE_FEATURE_MIG_STATE = L.VFIO_DEVICE_FEATURE_MIG_STATE.size;
export interface FeatureMigState {
  /** enum vfio_device_mig_state. */
  deviceState: number;
  /** Migration data fd the kernel returns for arcs that open a data session, else -1. */
  dataFd: number;
}
export function encodeFeatureMigState(a: Partial<FeatureMigState> = {}): Uint8Array {
  return L.VFIO_DEVICE_FEATURE_MIG_STATE.encode(a);
}
export function decodeFeatureMigState(bytes: Uint8Array): FeatureMigState {
  return L.VFIO_DEVICE_FEATURE_MIG_STATE.decode(bytes);
}

/** struct vfio_device_feature_dma_logging_control. */
export const SIZEOF_VFIO_DEVICE_FEATURE_DMA_LOGGING_CONTROL = L.VFIO_DEVICE_FEATURE_DMA_LOGGING_CONTROL.size;
export interface DmaLoggingControl {
  /** Tracking granularity hint in; the granularity the device chose out (kernel: page_size). */
  pageSize: bigint;
  /** Entries in the `ranges` array. */
  numRanges: number;
  /** Address of an array of struct vfio_device_feature_dma_logging_range. */
  ranges: bigint;
}
export function encodeDmaLoggingControl(a: DmaLoggingControl): Uint8Array {
  return L.VFIO_DEVICE_FEATURE_DMA_LOGGING_CONTROL.encode(a);
}
export function decodeDmaLoggingControl(bytes: Uint8Array): DmaLoggingControl {
  return L.VFIO_DEVICE_FEATURE_DMA_LOGGING_CONTROL.decode(bytes);
}

/** struct vfio_device_feature_dma_logging_range. */
export const SIZEOF_VFIO_DEVICE_FEATURE_DMA_LOGGING_RANGE = L.VFIO_DEVICE_FEATURE_DMA_LOGGING_RANGE.size;
export interface DmaLoggingRange {
  /** First IOVA of the range. */
  iova: bigint;
  /** Bytes of IOVA. */
  length: bigint;
}
/** The ranges array the control struct points to. */
export function encodeDmaLoggingRanges(ranges: readonly DmaLoggingRange[]): Uint8Array {
  const range = L.VFIO_DEVICE_FEATURE_DMA_LOGGING_RANGE;
  const [b, v] = alloc(ranges.length * range.size);
  ranges.forEach((r, i) => {
    range.encodeInto(v, i * range.size, r, `ranges[${i}].`);
  });
  return b;
}
export function decodeDmaLoggingRanges(bytes: Uint8Array, numRanges: number): DmaLoggingRange[] {
  const v = reader(
    bytes,
    numRanges * SIZEOF_VFIO_DEVICE_FEATURE_DMA_LOGGING_RANGE,
    "vfio_device_feature_dma_logging_range[]",
  );
  const range = L.VFIO_DEVICE_FEATURE_DMA_LOGGING_RANGE;
  return Array.from({ length: numRanges }, (_, i) => range.decodeAt(v, i * range.size));
}

/** struct vfio_device_feature_dma_logging_report. */
export const SIZEOF_VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT = L.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT.size;
export interface DmaLoggingReport {
  /** First IOVA of the range. */
  iova: bigint;
  /** Bytes of IOVA. */
  length: bigint;
  /** Bytes per bit; any power of two >= 4 KiB (kernel: page_size). */
  pageSize: bigint;
  /** Address of the u64 bitmap the device ORs its bits into (it never clears bits). */
  bitmap: bigint;
}
export function encodeDmaLoggingReport(a: DmaLoggingReport): Uint8Array {
  return L.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT.encode(a);
}
export function decodeDmaLoggingReport(bytes: Uint8Array): DmaLoggingReport {
  return L.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT.decode(bytes);
}

/** struct vfio_device_feature_mig_data_size (Linux 6.2+). */
export const SIZEOF_VFIO_DEVICE_FEATURE_MIG_DATA_SIZE = L.VFIO_DEVICE_FEATURE_MIG_DATA_SIZE.size;
export interface FeatureMigDataSize {
  /** Estimated bytes the STOP_COPY phase will transfer. */
  stopCopyLength: bigint;
}
export function encodeFeatureMigDataSize(a: Partial<FeatureMigDataSize> = {}): Uint8Array {
  return L.VFIO_DEVICE_FEATURE_MIG_DATA_SIZE.encode(a);
}
export function decodeFeatureMigDataSize(bytes: Uint8Array): FeatureMigDataSize {
  return L.VFIO_DEVICE_FEATURE_MIG_DATA_SIZE.decode(bytes);
}

// ---------------------------------------------------------------------------------------------
// struct vfio_precopy_info (VFIO_MIG_GET_PRECOPY_INFO on the migration data fd, Linux 6.2+)

export const SIZEOF_VFIO_PRECOPY_INFO = L.VFIO_PRECOPY_INFO.size;
/**
 * vfio_precopy_info.flags output, Linux 7.1+, only after the MIG_PRECOPY_INFOv2 opt-in: new
 * initial data is on the stream; `initialBytes` starts over (it may be larger than before) and
 * `dirtyBytes` is relative to that new initial data.
 */
export const VFIO_PRECOPY_INFO_REINIT = 1 << 0;
export interface PrecopyInfo {
  /** Bytes the caller provides; encoders set it to the struct size. */
  argsz: number;
  /**
   * In: 0. Out: VFIO_PRECOPY_INFO_REINIT after the v2 opt-in (the kernel zeroes it first); without
   * the opt-in the kernel hands back whatever was passed in (bug-compatible with kernels < 7.1).
   */
  flags: number;
  /** Initial precopy bytes still to read. */
  initialBytes: bigint;
  /** Bytes of device state changed since last read. */
  dirtyBytes: bigint;
}
export function encodePrecopyInfo(a: Partial<PrecopyInfo> = {}): Uint8Array {
  return L.VFIO_PRECOPY_INFO.encode(a);
}
export function decodePrecopyInfo(bytes: Uint8Array): PrecopyInfo {
  return L.VFIO_PRECOPY_INFO.decode(bytes);
}

// ---------------------------------------------------------------------------------------------
// struct vfio_device_bind_iommufd (cdev, Linux 6.6+; token_uuid_ptr Linux 6.17+)

/** The 6.6 form: argsz, flags, iommufd, out_devid. */
export const SIZEOF_VFIO_DEVICE_BIND_IOMMUFD_V1 = L.VFIO_DEVICE_BIND_IOMMUFD.sizeAt([6, 6]);
/** The 6.17 form, adding token_uuid_ptr. Older kernels accept it when flags is 0. */
export const SIZEOF_VFIO_DEVICE_BIND_IOMMUFD = L.VFIO_DEVICE_BIND_IOMMUFD.size;
export interface BindIommufd {
  /** Bytes the caller provides; encoders set it to the struct size. */
  argsz: number;
  /** VFIO_DEVICE_BIND_FLAG_TOKEN or 0. */
  flags: number;
  /** The iommufd to bind to. */
  iommufd: number;
  /** Device id within that iommufd, written by the kernel. */
  outDevid: number;
  /** Address of a 16-byte VF token UUID, with VFIO_DEVICE_BIND_FLAG_TOKEN; absent in the 16-byte form. */
  tokenUuidPtr?: bigint;
}
/** `form` 24 (default) or 16 bytes; argsz follows the form. */
export function encodeBindIommufd(
  a: { iommufd: number; flags?: number; outDevid?: number; tokenUuidPtr?: bigint; argsz?: number },
  form: 16 | 24 = 24,
): Uint8Array {
  if (form === 16 && (a.tokenUuidPtr !== undefined || (a.flags ?? 0) & VFIO_DEVICE_BIND_FLAG_TOKEN))
    throw new CodecError("the 16-byte vfio_device_bind_iommufd has no token_uuid_ptr");
  return L.VFIO_DEVICE_BIND_IOMMUFD.encode(a, form);
}
/** Reads token_uuid_ptr only when argsz and the buffer cover it. */
export function decodeBindIommufd(bytes: Uint8Array): BindIommufd {
  return decodeGrown(L.VFIO_DEVICE_BIND_IOMMUFD, bytes, [6, 6], {});
}

// ---------------------------------------------------------------------------------------------
// struct vfio_device_attach_iommufd_pt / vfio_device_detach_iommufd_pt (cdev, Linux 6.6+; pasid 6.13+)

export const SIZEOF_VFIO_DEVICE_ATTACH_IOMMUFD_PT = L.VFIO_DEVICE_ATTACH_IOMMUFD_PT.size;
export interface AttachIommufdPt {
  /** Bytes the caller provides; encoders set it to the struct size. */
  argsz: number;
  /** VFIO_DEVICE_ATTACH_PASID or 0. */
  flags: number;
  /** IOAS or HWPT id in; the attached HWPT id out. */
  ptId: number;
  /** Only with VFIO_DEVICE_ATTACH_PASID. */
  pasid: number;
}
/**
 * argsz 16. Kernels 6.6 to 6.12 read only up to pt_id and accept a larger argsz when flags is 0,
 * so the one form serves all.
 */
export function encodeAttachIommufdPt(a: {
  ptId: number;
  flags?: number;
  pasid?: number;
  argsz?: number;
}): Uint8Array {
  return L.VFIO_DEVICE_ATTACH_IOMMUFD_PT.encode(a);
}
/** The 12-byte pre-6.13 form decodes with pasid 0. */
export function decodeAttachIommufdPt(bytes: Uint8Array): AttachIommufdPt {
  return decodeGrown(L.VFIO_DEVICE_ATTACH_IOMMUFD_PT, bytes, [6, 6], { pasid: 0 });
}

export const SIZEOF_VFIO_DEVICE_DETACH_IOMMUFD_PT = L.VFIO_DEVICE_DETACH_IOMMUFD_PT.size;
export interface DetachIommufdPt {
  /** Bytes the caller provides; encoders set it to the struct size. */
  argsz: number;
  /** VFIO_DEVICE_DETACH_PASID or 0. */
  flags: number;
  /** Only with VFIO_DEVICE_DETACH_PASID. */
  pasid: number;
}
export function encodeDetachIommufdPt(
  a: { flags?: number; pasid?: number; argsz?: number } = {},
): Uint8Array {
  return L.VFIO_DEVICE_DETACH_IOMMUFD_PT.encode(a);
}
/** The 8-byte pre-6.13 form decodes with pasid 0. */
export function decodeDetachIommufdPt(bytes: Uint8Array): DetachIommufdPt {
  return decodeGrown(L.VFIO_DEVICE_DETACH_IOMMUFD_PT, bytes, [6, 6], { pasid: 0 });
}

// --- Internal helpers ---

/**
 * A struct that grew since kernel `oldest`: the buffer must hold the oldest form; newer members are
 * read only when both argsz and the buffer cover them, else they take `absent`.
 */
function decodeGrown<T extends { argsz: number }>(
  layout: StructLayout<T>,
  bytes: Uint8Array,
  oldest: KernelVersion,
  absent: Partial<T>,
): T {
  const v = reader(bytes, layout.sizeAt(oldest), layout.name);
  const covered = Math.min(layout.decodeAt(v, 0, 4).argsz, bytes.byteLength);
  return { ...absent, ...layout.decodeAt(v, 0, Math.max(layout.sizeAt(oldest), covered)) };
}

function buildFsmTable(): number[][] {
  const [E, S, R, SC, RS, RP, PC, PCP] = [0, 1, 2, 3, 4, 5, 6, 7] as const;
  // Rows: from; columns: to (ERROR, STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P).
  const t: number[][] = [];
  t[E] = [E, E, E, E, E, E, E, E];
  t[S] = [E, S, RP, SC, RS, RP, RP, RP];
  t[R] = [E, RP, R, RP, RP, RP, PC, RP];
  t[SC] = [E, S, S, SC, S, S, E, E];
  t[RS] = [E, S, S, S, RS, S, S, S];
  t[RP] = [E, S, R, S, S, RP, R, PCP];
  t[PC] = [E, R, R, PCP, R, R, PC, PCP];
  t[PCP] = [E, RP, RP, SC, RP, RP, PC, PCP];
  return t;
}

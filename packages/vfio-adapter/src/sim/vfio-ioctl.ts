// VFIO ioctls on the simulated kernel: container (drivers/vfio/container.c + vfio_iommu_type1.c),
// group (drivers/vfio/group.c), device and its features (drivers/vfio/vfio_main.c,
// drivers/vfio/pci/vfio_pci_core.c, mlx5-like log_ops and mig_ops), the cdev bind/attach/detach
// (drivers/vfio/device_cdev.c) and the migration data fd.
//
// Each handler follows the kernel's order of checks, because the errno a caller sees depends on
// which check comes first. Structs are decoded and encoded with the adapter's uapi codecs: the
// bytes are those the real kernel would get. The struct buffer itself is the caller's memory, so
// one shorter than the kernel's minimum is EFAULT (copy_from_user past its end); memory the struct
// points to is looked up in the AddressSpace, EFAULT when the process does not own it.

import { Errno } from "../errors.ts";
import type { IoctlArg } from "../host.ts";
import {
  decodeBindIommufd,
  decodeDeviceName,
  decodeDirtyBitmap,
  decodeDmaLoggingControl,
  decodeDmaLoggingReport,
  decodeDmaMap,
  decodeDmaUnmap,
  decodeFdArg,
  decodeFeatureMigState,
  encodeDmaLoggingControl,
  encodeFeatureMigDataSize,
  encodeFeatureMigration,
  encodeFeatureMigState,
  encodeIommuType1Info,
  encodePrecopyInfo,
  fitInfoToArgsz,
  SIZEOF_VFIO_DEVICE_FEATURE_DMA_LOGGING_CONTROL,
  SIZEOF_VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
  SIZEOF_VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
  SIZEOF_VFIO_DEVICE_FEATURE_MIG_STATE,
  SIZEOF_VFIO_DEVICE_FEATURE_MIGRATION,
  SIZEOF_VFIO_IOMMU_TYPE1_INFO,
  U64_MAX,
  VFIO_CHECK_EXTENSION,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_BIND_FLAG_TOKEN,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_MASK,
  VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
  VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
  VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2,
  VFIO_DEVICE_FEATURE_MIGRATION,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_RESET,
  VFIO_DMA_CC_IOMMU,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
  VFIO_IOMMU_DIRTY_PAGES,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_MIG_GET_PRECOPY_INFO,
  VFIO_MIGRATION_PRE_COPY,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_NUM_REGIONS,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  VFIO_SET_IOMMU,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
  VFIO_UPDATE_VADDR,
} from "../uapi/index.ts";
import type { Interval } from "./dma-log.ts";
import type { CdevFile, SimContainer, SimDevice, SimGroup, SimKernel } from "./kernel.ts";
import { REGION_SHIFT } from "./kernel.ts";
import type { MigrationSession } from "./migration.ts";
import { KERNEL } from "./profile.ts";
import { DIRTY_BITMAP_SIZE_MAX, Type1Iommu } from "./type1.ts";
import { bitmapBytes, iovaBitmapBytes } from "./user-bits.ts";

/** LOG_MAX_RANGES: PAGE_SIZE / sizeof(struct vfio_device_feature_dma_logging_range). */
export const LOG_MAX_RANGES = 256;
/** TASK_SIZE_MAX on x86-64 (47-bit user space minus a guard page): access_ok()'s limit. */
const TASK_SIZE_MAX = (1n << 47n) - 4096n;
const EBADFD = 77;
const ESPIPE = 29;
/** Migration flags and states that exist before 6.2 (no PRE_COPY). */
const KERNEL_DMA_LOGGING = 6001;
const KERNEL_MIGRATION_V2 = 5018;
/** vfio_info_cap_add aligns capabilities to 8 bytes from v6.6 on. */
const KERNEL_ALIGNED_CAPS = 6006;

// ---------------------------------------------------------------------------------------------
// Container (/dev/vfio/vfio)

export function containerIoctl(k: SimKernel, c: SimContainer, request: number, arg: IoctlArg): number {
  switch (request) {
    case VFIO_GET_API_VERSION:
      return 0;
    case VFIO_CHECK_EXTENSION: {
      const ext = typeof arg === "number" ? arg : -1;
      if ([VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU, VFIO_UNMAP_ALL, VFIO_UPDATE_VADDR].includes(ext)) return 1;
      // Cache coherency is a property of the domains: only known once the IOMMU is set.
      if (ext === VFIO_DMA_CC_IOMMU) return c.iommu ? 1 : 0;
      return 0;
    }
    case VFIO_SET_IOMMU: {
      // VFIO_SET_IOMMU: only a container holding a group may enable an IOMMU, and only once.
      const type = typeof arg === "number" ? arg : -1;
      if (c.groups.size === 0 || c.iommu) return -Errno.EINVAL;
      if (type !== VFIO_TYPE1_IOMMU && type !== VFIO_TYPE1v2_IOMMU) return -Errno.ENODEV;
      c.iommu = new Type1Iommu({
        v2: type === VFIO_TYPE1v2_IOMMU,
        pgsizeBitmap: k.profile.iommu.iovaPageSizes,
        dmaEntryLimit: k.profile.iommu.dmaEntryLimit,
        iovaRanges: k.profile.iommu.iovaRanges,
        space: k.space,
        allPinnedScope: () => [...c.groups].every((g) => g.devices.every((d) => d.pinnedScope)),
        overflowErrno: k.profile.kernel >= KERNEL.TYPE1_OVERFLOW,
      });
      return 0;
    }
    default:
      // Unrecognised ioctls pass to the IOMMU driver; without one the container answers EINVAL.
      if (!c.iommu) return -Errno.EINVAL;
      return type1Ioctl(k, c.iommu, request, arg);
  }
}

function type1Ioctl(k: SimKernel, t1: Type1Iommu, request: number, arg: IoctlArg): number {
  const known = [VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_IOMMU_DIRTY_PAGES];
  // An integer where a struct pointer belongs is an address the process does not own.
  if (typeof arg === "number") return known.includes(request) ? -Errno.EFAULT : -Errno.ENOTTY;
  switch (request) {
    case VFIO_IOMMU_GET_INFO:
      return type1GetInfo(k, t1, arg);
    case VFIO_IOMMU_MAP_DMA: {
      if (arg.byteLength < 32) return -Errno.EFAULT;
      const m = decodeDmaMap(arg);
      if (m.argsz < 32 || m.flags & ~7) return -Errno.EINVAL;
      return t1.map({ flags: m.flags, vaddr: m.vaddr, iova: m.iova, size: m.length });
    }
    case VFIO_IOMMU_UNMAP_DMA:
      return type1Unmap(t1, arg);
    case VFIO_IOMMU_DIRTY_PAGES:
      return type1DirtyPages(t1, arg);
    default:
      return -Errno.ENOTTY;
  }
}

function type1GetInfo(k: SimKernel, t1: Type1Iommu, arg: Uint8Array): number {
  const minsz = 16; // offsetofend(iova_pgsizes)
  if (arg.byteLength < minsz) return -Errno.EFAULT;
  const argsz = new DataView(arg.buffer, arg.byteOffset).getUint32(0, true);
  if (argsz < minsz) return -Errno.EINVAL;
  // The uapi builder lays the capabilities out as vfio_iommu_type1_get_info does (migration with
  // the smallest IOMMU page size, DMA-avail, IOVA ranges), padded to 8 bytes from v6.6 on and
  // packed before: the DMA-avail capability then leaves the IOVA ranges at offset 68.
  const full = encodeIommuType1Info({
    iovaPgsizes: t1.pgsizeBitmap,
    caps: {
      migration: { flags: 0, pgsizeBitmap: t1.minPageSize, maxDirtyBitmapSize: DIRTY_BITMAP_SIZE_MAX },
      dmaAvail: t1.dmaAvail,
      iovaRanges: k.profile.iommu.iovaRanges.map((r) => ({ start: r.start, end: r.start + r.length - 1n })),
    },
    alignCaps: k.profile.kernel >= KERNEL_ALIGNED_CAPS,
  });
  // Callers older than cap_offset (argsz < 24) get the first 16 bytes only.
  const out =
    argsz < SIZEOF_VFIO_IOMMU_TYPE1_INFO
      ? fitInfoToArgsz(full, argsz, minsz, VFIO_IOMMU_INFO_CAPS, 16)
      : fitInfoToArgsz(full, argsz, SIZEOF_VFIO_IOMMU_TYPE1_INFO, VFIO_IOMMU_INFO_CAPS, 16);
  if (out.byteLength > arg.byteLength) return -Errno.EFAULT;
  arg.set(out);
  return 0;
}

function type1Unmap(t1: Type1Iommu, arg: Uint8Array): number {
  const minsz = 24;
  if (arg.byteLength < minsz) return -Errno.EFAULT;
  const v = new DataView(arg.buffer, arg.byteOffset, arg.byteLength);
  const argsz = v.getUint32(0, true);
  const flags = v.getUint32(4, true);
  if (argsz < minsz || flags & ~7) return -Errno.EINVAL;
  const getDirty = (flags & 1) !== 0;
  if (getDirty && flags & 6) return -Errno.EINVAL;
  let bitmap: { pgsize: bigint; size: bigint; data: bigint } | undefined;
  if (getDirty) {
    if (argsz < minsz + 24) return -Errno.EINVAL;
    if (arg.byteLength < minsz + 24) return -Errno.EFAULT;
    const u = decodeDmaUnmap(arg);
    const b = u.bitmap!;
    if (!accessOk(b.data, b.bitmapLength)) return -Errno.EINVAL;
    const rc = verifyBitmapSize(u.length, b.pageSize, b.bitmapLength);
    if (rc) return rc;
    bitmap = { pgsize: b.pageSize, size: b.bitmapLength, data: b.data };
  }
  const u = decodeDmaUnmap(arg);
  const r = t1.unmap({ flags, iova: u.iova, size: u.length, ...(bitmap ? { bitmap } : {}) });
  if (r.rc) return r.rc;
  v.setBigUint64(16, r.unmapped, true);
  return 0;
}

function type1DirtyPages(t1: Type1Iommu, arg: Uint8Array): number {
  if (!t1.v2) return -Errno.EACCES;
  if (arg.byteLength < 8) return -Errno.EFAULT;
  const v = new DataView(arg.buffer, arg.byteOffset, arg.byteLength);
  const argsz = v.getUint32(0, true);
  const flags = v.getUint32(4, true);
  if (argsz < 8 || flags & ~7) return -Errno.EINVAL;
  // Exactly one of START, STOP, GET_BITMAP.
  if (flags === 0 || (flags & (flags - 1)) !== 0) return -Errno.EINVAL;
  if (flags === VFIO_IOMMU_DIRTY_PAGES_FLAG_START) return t1.dirtyStart();
  if (flags === VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP) return t1.dirtyStop();
  if (flags !== VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP) return -Errno.EINVAL;
  if (argsz - 8 < 40) return -Errno.EINVAL;
  if (arg.byteLength < 48) return -Errno.EFAULT;
  const d = decodeDirtyBitmap(arg).get!;
  if (t1.overflowErrno) {
    // check_add_overflow(iova, size - 1): a range up to 2^64 itself is fine.
    if (d.length === 0n) return -Errno.EINVAL;
    if (d.iova + d.length - 1n > U64_MAX) return -Errno.EOVERFLOW;
  } else if (d.iova + d.length > U64_MAX) return -Errno.EINVAL; // range.iova + range.size < range.iova
  if (!accessOk(d.bitmap.data, d.bitmap.bitmapLength)) return -Errno.EINVAL;
  const rc = verifyBitmapSize(d.length, d.bitmap.pageSize, d.bitmap.bitmapLength);
  if (rc) return rc;
  return t1.getBitmap(d.iova, d.length, {
    pgsize: d.bitmap.pageSize,
    size: d.bitmap.bitmapLength,
    data: d.bitmap.data,
  });
}

/** verify_bitmap_size(size >> __ffs(pgsize), bitmap_size). A zero pgsize has no __ffs: EINVAL. */
function verifyBitmapSize(length: bigint, pgsize: bigint, bitmapLength: bigint): number {
  if (pgsize === 0n) return -Errno.EINVAL;
  const shift = BigInt((pgsize & -pgsize).toString(2).length - 1);
  const npages = length >> shift;
  if (!npages || !bitmapLength || bitmapLength > DIRTY_BITMAP_SIZE_MAX || bitmapLength < bitmapBytes(npages))
    return -Errno.EINVAL;
  return 0;
}

function accessOk(addr: bigint, length: bigint): boolean {
  return length <= TASK_SIZE_MAX && addr <= TASK_SIZE_MAX - length;
}

// ---------------------------------------------------------------------------------------------
// Group (/dev/vfio/<group>)

export function groupIoctl(k: SimKernel, g: SimGroup, request: number, arg: IoctlArg): number {
  switch (request) {
    case VFIO_GROUP_GET_STATUS: {
      if (typeof arg === "number" || arg.byteLength < 8) return -Errno.EFAULT;
      const v = new DataView(arg.buffer, arg.byteOffset, arg.byteLength);
      if (v.getUint32(0, true) < 8) return -Errno.EINVAL;
      // vfio_group_ioctl_get_status: a group with a container is viable by construction.
      let flags = 0;
      if (g.container) flags = VFIO_GROUP_FLAGS_CONTAINER_SET | VFIO_GROUP_FLAGS_VIABLE;
      else if (g.viable) flags = VFIO_GROUP_FLAGS_VIABLE;
      v.setUint32(4, flags, true);
      return 0;
    }
    case VFIO_GROUP_SET_CONTAINER: {
      if (typeof arg === "number" || arg.byteLength < 4) return -Errno.EFAULT;
      const fd = decodeFdArg(arg);
      const f = k.files.get(fd);
      if (!f) return -Errno.EBADF;
      if (g.container) return -Errno.EINVAL;
      // 6.2 added iommufd compat here and answers EBADFD for an fd it does not recognise. The
      // sim does not model the iommufd compat container, so an iommufd fd is unrecognised too.
      if (f.kind !== "container") return k.profile.kernel >= KERNEL.IOMMUFD ? -EBADFD : -Errno.EINVAL;
      // iommu_group_claim_dma_owner fails while a member is bound to a DMA-using host driver.
      if (!g.viable) return -Errno.EBUSY;
      f.container.groups.add(g);
      g.container = f.container;
      return 0;
    }
    case VFIO_GROUP_UNSET_CONTAINER:
      if (!g.container) return -Errno.EINVAL;
      if (g.devices.some((d) => d.groupFds > 0)) return -Errno.EBUSY;
      k.unsetContainer(g);
      return 0;
    case VFIO_GROUP_GET_DEVICE_FD: {
      if (typeof arg === "number") return -Errno.EFAULT;
      if (arg.indexOf(0) < 0) return arg.byteLength >= 4096 ? -Errno.EINVAL : -Errno.EFAULT;
      const name = decodeDeviceName(arg);
      const d = g.devices.find((x) => x.bdf === name);
      if (!d) return -Errno.ENODEV;
      if (!g.container?.iommu) return -Errno.EINVAL;
      d.groupFds++;
      return k.install({ kind: "device", device: d });
    }
    default:
      return -Errno.ENOTTY;
  }
}

// ---------------------------------------------------------------------------------------------
// Device (group path fd or cdev)

export function deviceIoctl(
  k: SimKernel,
  file: { kind: "device"; device: SimDevice } | CdevFile,
  request: number,
  arg: IoctlArg,
): number {
  const d = file.device;
  const cdevKernel = k.profile.kernel >= KERNEL.CDEV;
  if (request === VFIO_DEVICE_BIND_IOMMUFD && cdevKernel) {
    if (file.kind !== "cdev") return -Errno.EINVAL;
    return bind(k, file, arg);
  }
  if (file.kind === "cdev" && !file.bound) return -Errno.EINVAL;
  if (file.kind === "cdev" && file.bound) {
    if (request === VFIO_DEVICE_ATTACH_IOMMUFD_PT) {
      if (typeof arg === "number" || arg.byteLength < 12) return -Errno.EFAULT;
      const v = new DataView(arg.buffer, arg.byteOffset, arg.byteLength);
      if (v.getUint32(0, true) < 12 || v.getUint32(4, true)) return -Errno.EINVAL;
      const rc = file.bound.ctx.attach(file.bound.idev, v.getUint32(8, true));
      if (rc < 0) return rc;
      v.setUint32(8, rc, true);
      return 0;
    }
    if (request === VFIO_DEVICE_DETACH_IOMMUFD_PT) {
      if (typeof arg === "number" || arg.byteLength < 8) return -Errno.EFAULT;
      const v = new DataView(arg.buffer, arg.byteOffset, arg.byteLength);
      if (v.getUint32(0, true) < 8 || v.getUint32(4, true)) return -Errno.EINVAL;
      file.bound.ctx.detach(file.bound.idev);
      return 0;
    }
  }
  if (request === VFIO_DEVICE_RESET) {
    // A function reset loses what the device's tracker held (the log is re-armed, empty), and
    // the driver's reset_done puts migration back to RUNNING with its data session ended (mlx5).
    d.log?.reset();
    d.fsm?.reset();
    return 0;
  }
  if (typeof arg === "number") return -Errno.EFAULT;
  switch (request) {
    case VFIO_DEVICE_FEATURE:
      return featureIoctl(k, d, arg);
    case VFIO_DEVICE_GET_INFO: {
      if (arg.byteLength < 16) return -Errno.EFAULT;
      const v = new DataView(arg.buffer, arg.byteOffset, arg.byteLength);
      const argsz = v.getUint32(0, true);
      if (argsz < 16) return -Errno.EINVAL;
      v.setUint32(4, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET, true);
      v.setUint32(8, VFIO_PCI_NUM_REGIONS, true);
      v.setUint32(12, 5, true); // VFIO_PCI_NUM_IRQS
      if (argsz >= 20 && arg.byteLength >= 20) v.setUint32(16, 0, true);
      return 0;
    }
    case VFIO_DEVICE_GET_REGION_INFO: {
      if (arg.byteLength < 32) return -Errno.EFAULT;
      const v = new DataView(arg.buffer, arg.byteOffset, arg.byteLength);
      if (v.getUint32(0, true) < 32) return -Errno.EINVAL;
      const index = v.getUint32(8, true);
      const r = regionOf(index);
      if (!r) return -Errno.EINVAL;
      v.setUint32(4, r.flags, true);
      v.setUint32(12, 0, true);
      v.setBigUint64(16, r.length, true);
      v.setBigUint64(24, BigInt(index) << REGION_SHIFT, true);
      return 0;
    }
    default:
      return -Errno.ENOTTY;
  }
}

/** Region layout: BAR0 (1 MiB, mmap-able), config space (4 KiB); the rest are absent (size 0). */
export function regionOf(index: number): { flags: number; length: bigint } | undefined {
  if (index >= VFIO_PCI_NUM_REGIONS || index === 8) return undefined; // no VGA region
  if (index === VFIO_PCI_CONFIG_REGION_INDEX)
    return { flags: VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE, length: 4096n };
  if (index === 0)
    return {
      flags: VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP,
      length: 0x10_0000n,
    };
  return { flags: 0, length: 0n };
}

function bind(k: SimKernel, file: CdevFile, arg: IoctlArg): number {
  if (typeof arg === "number" || arg.byteLength < 16) return -Errno.EFAULT;
  const b = decodeBindIommufd(arg);
  const tokenOk = k.profile.kernel >= 6017 && b.flags === VFIO_DEVICE_BIND_FLAG_TOKEN;
  if (b.argsz < 16 || (b.flags && !tokenOk) || b.iommufd < 0) return -Errno.EINVAL;
  const d = file.device;
  if (d.group.openFd !== undefined || d.json.heldBy) return -Errno.EBUSY;
  if (file.bound) return -Errno.EINVAL;
  // vfio_df_open: only the group path may open a device more than once.
  if (d.cdev) return -Errno.EINVAL;
  const f = k.files.get(b.iommufd);
  if (!f) return -Errno.EBADF;
  if (f.kind !== "iommufd") return -EBADFD;
  const idev = f.ctx.bindDevice(d.bdf, d.iommuDirty);
  file.bound = { ctx: f.ctx, idev };
  d.cdev = file;
  new DataView(arg.buffer, arg.byteOffset, arg.byteLength).setUint32(12, idev.id, true);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// VFIO_DEVICE_FEATURE (vfio_ioctl_device_feature)

function featureIoctl(k: SimKernel, d: SimDevice, arg: Uint8Array): number {
  const minsz = 8;
  if (arg.byteLength < minsz) return -Errno.EFAULT;
  const v = new DataView(arg.buffer, arg.byteOffset, arg.byteLength);
  const argsz = v.getUint32(0, true);
  const flags = v.getUint32(4, true);
  if (argsz < minsz) return -Errno.EINVAL;
  const known =
    VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE;
  if (flags & ~known) return -Errno.EINVAL;
  if (
    !(flags & VFIO_DEVICE_FEATURE_PROBE) &&
    flags & VFIO_DEVICE_FEATURE_SET &&
    flags & VFIO_DEVICE_FEATURE_GET
  )
    return -Errno.EINVAL;
  // The payload is the caller's memory after the header, argsz - 8 bytes long.
  const payloadLength = argsz - minsz;
  const payload = arg.subarray(minsz, Math.min(arg.byteLength, argsz));
  const kernel = k.profile.kernel;
  const index = flags & VFIO_DEVICE_FEATURE_MASK;
  const migOps = d.fsm !== undefined && kernel >= KERNEL_MIGRATION_V2;
  const logOps = d.log !== undefined && kernel >= KERNEL_DMA_LOGGING;
  const check = (supported: number, need: number): number =>
    checkFeature(flags, payloadLength, supported, need);
  const need = (n: number): boolean => payload.byteLength >= n;

  switch (index) {
    case VFIO_DEVICE_FEATURE_MIGRATION: {
      if (!migOps) return -Errno.ENOTTY;
      const rc = check(VFIO_DEVICE_FEATURE_GET, SIZEOF_VFIO_DEVICE_FEATURE_MIGRATION);
      if (rc !== 1) return rc;
      if (!need(8)) return -Errno.EFAULT;
      payload.set(encodeFeatureMigration({ flags: BigInt(d.fsm!.flags) }));
      return 0;
    }
    case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE: {
      if (!migOps) return -Errno.ENOTTY;
      const rc = check(
        VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_GET,
        SIZEOF_VFIO_DEVICE_FEATURE_MIG_STATE,
      );
      if (rc !== 1) return rc;
      if (!need(8)) return -Errno.EFAULT;
      const mig = decodeFeatureMigState(payload);
      if (flags & VFIO_DEVICE_FEATURE_GET) {
        payload.set(encodeFeatureMigState({ deviceState: d.fsm!.state, dataFd: -1 }));
        return 0;
      }
      const r = d.fsm!.set(mig.deviceState, k.clock.now() / 1e6);
      const dataFd = r.session ? k.install({ kind: "mig-data", device: d, session: r.session }) : -1;
      payload.set(encodeFeatureMigState({ deviceState: mig.deviceState, dataFd }));
      return r.rc;
    }
    case VFIO_DEVICE_FEATURE_MIG_DATA_SIZE: {
      if (kernel < KERNEL.MIG_DATA_SIZE) return -Errno.ENOTTY;
      if (!migOps) return -Errno.ENOTTY;
      const rc = check(VFIO_DEVICE_FEATURE_GET, SIZEOF_VFIO_DEVICE_FEATURE_MIG_DATA_SIZE);
      if (rc !== 1) return rc;
      if (!need(8)) return -Errno.EFAULT;
      payload.set(encodeFeatureMigDataSize({ stopCopyLength: d.fsm!.model.stateBytes }));
      return 0;
    }
    case VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2: {
      // vfio_ioctl_device_feature_migration_precopy_info_v2: the core answers for every device,
      // checking the migration flags before the operation (so PROBE too is EINVAL without them).
      if (kernel < KERNEL.PRECOPY_INFO_V2) return -Errno.ENOTTY;
      if (!migOps || !(d.fsm!.flags & VFIO_MIGRATION_PRE_COPY)) return -Errno.EINVAL;
      const rc = check(VFIO_DEVICE_FEATURE_SET, 0);
      if (rc !== 1) return rc;
      d.precopyInfoV2 = true;
      return 0;
    }
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_START: {
      if (!logOps) return -Errno.ENOTTY;
      const rc = check(VFIO_DEVICE_FEATURE_SET, SIZEOF_VFIO_DEVICE_FEATURE_DMA_LOGGING_CONTROL);
      if (rc !== 1) return rc;
      if (!need(SIZEOF_VFIO_DEVICE_FEATURE_DMA_LOGGING_CONTROL)) return -Errno.EFAULT;
      return loggingStart(k, d, payload);
    }
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP: {
      if (!logOps) return -Errno.ENOTTY;
      const rc = check(VFIO_DEVICE_FEATURE_SET, 0);
      if (rc !== 1) return rc;
      d.logBroken = false;
      return d.log!.stopRequested();
    }
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT: {
      if (!logOps) return -Errno.ENOTTY;
      const rc = check(VFIO_DEVICE_FEATURE_GET, SIZEOF_VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT);
      if (rc !== 1) return rc;
      if (!need(SIZEOF_VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT)) return -Errno.EFAULT;
      return loggingReport(k, d, payload);
    }
    default:
      // vfio_pci_core_ioctl_feature: PCI_VF_TOKEN only for a PF with VFs, no low-power here.
      return -Errno.ENOTTY;
  }
}

/** vfio_check_feature(): 1 to go on, 0 for a successful PROBE, or -errno. */
function checkFeature(flags: number, argsz: number, supported: number, minsz: number): number {
  if (flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET) & ~supported) return -Errno.EINVAL;
  if (flags & VFIO_DEVICE_FEATURE_PROBE) return 0;
  if (!(flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET))) return -Errno.EINVAL;
  if (argsz < minsz) return -Errno.EINVAL;
  return 1;
}

function loggingStart(k: SimKernel, d: SimDevice, payload: Uint8Array): number {
  const control = decodeDmaLoggingControl(payload);
  const n = control.numRanges;
  if (n === 0) return -Errno.EINVAL;
  if (n > LOG_MAX_RANGES) return -Errno.E2BIG;
  const raw = k.space.read(control.ranges, n * 16);
  if (typeof raw === "number") return raw;
  const rv = new DataView(raw.buffer);
  const mask = (control.pageSize - 1n) & U64_MAX;
  const nodes: Interval[] = [];
  for (let i = 0; i < n; i++) {
    const iova = rv.getBigUint64(i * 16, true);
    const length = rv.getBigUint64(i * 16 + 8, true);
    if (iova & mask || length & mask) return -Errno.EINVAL;
    if (iova + length > U64_MAX) return -Errno.EOVERFLOW;
    const node = { start: iova, last: iova + length - 1n };
    if (nodes.some((x) => x.start <= node.last && node.start <= x.last)) return -Errno.EINVAL;
    nodes.push(node);
  }
  const r = d.log!.start(nodes, control.pageSize);
  if (r.rc) return r.rc;
  d.logBroken = false;
  payload.set(encodeDmaLoggingControl({ ...control, pageSize: r.pageSize }));
  return 0;
}

function loggingReport(k: SimKernel, d: SimDevice, payload: Uint8Array): number {
  const rep = decodeDmaLoggingReport(payload);
  const ps = rep.pageSize;
  if (ps < 4096n || (ps & (ps - 1n)) !== 0n) return -Errno.EINVAL;
  if (rep.iova + rep.length > U64_MAX) return -Errno.EOVERFLOW;
  // iova_bitmap_alloc: whole u64 words covering [iova, iova + length); length 0 would wrap to a
  // bitmap of the whole address space, which no caller's buffer holds: EFAULT.
  if (rep.length === 0n) return -Errno.EFAULT;
  const byteLength = iovaBitmapBytes(rep.length, ps);
  if (byteLength === undefined) return -Errno.EFAULT;
  const bytes = k.space.view(rep.bitmap, byteLength);
  if (!bytes) return -Errno.EFAULT;
  if (!d.log!.active) return -Errno.EINVAL;
  if (d.logBroken) return -Errno.EIO;
  const nbits = (rep.length + ps - 1n) / ps;
  return d.log!.report(rep.iova, rep.length, ps, nbits, bytes);
}

// ---------------------------------------------------------------------------------------------
// Migration data fd

export function migDataIoctl(
  k: SimKernel,
  d: SimDevice,
  session: MigrationSession,
  request: number,
  arg: IoctlArg,
): number {
  if (request !== VFIO_MIG_GET_PRECOPY_INFO || k.profile.kernel < KERNEL.MIG_DATA_SIZE) return -Errno.ENOTTY;
  if (typeof arg === "number" || arg.byteLength < 24) return -Errno.EFAULT;
  const v = new DataView(arg.buffer, arg.byteOffset, arg.byteLength);
  const argsz = v.getUint32(0, true);
  if (argsz < 24) return -Errno.EINVAL;
  const r = d.fsm!.precopyInfo(session, v.getUint32(4, true), d.precopyInfoV2, k.clock.now() / 1e6);
  if (r.rc) return r.rc;
  arg.set(
    encodePrecopyInfo({ argsz, flags: r.flags, initialBytes: r.initialBytes, dirtyBytes: r.dirtyBytes }),
  );
  return 0;
}

/** pread on a migration data fd: the stream has no offsets (FMODE_STREAM), so pread is ESPIPE. */
export const MIG_DATA_PREAD_ERRNO = -ESPIPE;

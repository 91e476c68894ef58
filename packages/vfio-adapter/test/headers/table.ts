// What the header check compares: every struct layout the codecs are derived from (src/uapi/
// *-layouts.ts: each member's offset and size, and the struct's sizeof, in every header set that
// has them) and, collected automatically from the modules' exports, every constant.
//
// No layout is written here: the descriptions the codecs use are the ones compiled against the
// headers, so a layout cannot be right in the check and wrong in the codec.
//
// `since` is the first kernel whose uAPI headers have the item; header sets older than that skip
// it. (It need only be right relative to the header sets checked: 6.1, 6.12 and sid, which is
// 7.2 today and so checks the 7.1 PRECOPY_INFOv2 items.)

import * as capChain from "../../src/uapi/cap-chain.ts";
import * as ioctl from "../../src/uapi/ioctl.ts";
import * as iommufd from "../../src/uapi/iommufd.ts";
import { IOMMUFD_LAYOUTS } from "../../src/uapi/iommufd-layouts.ts";
import type { KernelVersion, StructLayout } from "../../src/uapi/struct.ts";
import * as vfio from "../../src/uapi/vfio.ts";
import { VFIO_LAYOUTS } from "../../src/uapi/vfio-layouts.ts";

export type Version = KernelVersion;
export type Layout = StructLayout<object>;

const V: Record<string, Version> = {
  "6.2": [6, 2],
  "6.6": [6, 6],
  "6.7": [6, 7],
  "6.11": [6, 11],
  "6.13": [6, 13],
  "6.17": [6, 17],
  "7.1": [7, 1],
};

/** Every struct description the codecs are derived from. */
export const LAYOUTS: readonly Layout[] = [...VFIO_LAYOUTS, ...IOMMUFD_LAYOUTS];

/** The SIZEOF_* export named after a layout: SIZEOF_VFIO_REGION_INFO for vfio_region_info. */
export function sizeofName(l: Layout): string {
  return `SIZEOF_${l.name.toUpperCase()}`;
}

/** SIZEOF_* exports of an older, shorter form of a struct: compared with sizeof in headers before `until`. */
export const OLDER_FORMS: { ts: string; c: string; since: Version; until: Version }[] = [
  {
    ts: "SIZEOF_VFIO_DEVICE_BIND_IOMMUFD_V1",
    c: "vfio_device_bind_iommufd",
    since: V["6.6"]!,
    until: V["6.17"]!,
  },
];

/** Constants that exist only on the TypeScript side (sizes and offsets checked above). */
const TS_ONLY = new Set(["VFIO_IOMMU_TYPE1_INFO_CAP_OFFSET_AT"]);

/** Constants newer than the oldest header set. */
const CONST_SINCE: Record<string, Version> = {
  VFIO_DEVICE_FEATURE_MIG_DATA_SIZE: V["6.2"]!,
  VFIO_MIGRATION_PRE_COPY: V["6.2"]!,
  VFIO_DEVICE_STATE_PRE_COPY: V["6.2"]!,
  VFIO_DEVICE_STATE_PRE_COPY_P2P: V["6.2"]!,
  VFIO_DEVICE_STATE_NR: V["6.2"]!,
  VFIO_MIG_GET_PRECOPY_INFO: V["6.2"]!,
  VFIO_PRECOPY_INFO_REINIT: V["7.1"]!,
  VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2: V["7.1"]!,
  VFIO_DEVICE_BIND_IOMMUFD: V["6.6"]!,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT: V["6.6"]!,
  VFIO_DEVICE_DETACH_IOMMUFD_PT: V["6.6"]!,
  VFIO_DEVICE_ATTACH_PASID: V["6.13"]!,
  VFIO_DEVICE_DETACH_PASID: V["6.13"]!,
  VFIO_DEVICE_BIND_FLAG_TOKEN: V["6.17"]!,
  IOMMUFD_CMD_HWPT_ALLOC: V["6.6"]!,
  IOMMUFD_CMD_GET_HW_INFO: V["6.6"]!,
  IOMMU_HWPT_ALLOC: V["6.6"]!,
  IOMMU_GET_HW_INFO: V["6.6"]!,
  IOMMU_HWPT_ALLOC_NEST_PARENT: V["6.6"]!,
  IOMMU_HWPT_DATA_NONE: V["6.7"]!,
  IOMMU_HW_INFO_TYPE_NONE: V["6.6"]!,
  IOMMU_HW_INFO_TYPE_INTEL_VTD: V["6.6"]!,
  IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING: V["6.7"]!,
  IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP: V["6.7"]!,
  IOMMU_HWPT_SET_DIRTY_TRACKING: V["6.7"]!,
  IOMMU_HWPT_GET_DIRTY_BITMAP: V["6.7"]!,
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING: V["6.7"]!,
  IOMMU_HW_CAP_DIRTY_TRACKING: V["6.7"]!,
  IOMMU_HWPT_DIRTY_TRACKING_ENABLE: V["6.7"]!,
  IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR: V["6.7"]!,
  IOMMU_HWPT_FAULT_ID_VALID: V["6.11"]!,
};

export interface ConstSpec {
  /** The TypeScript export. */
  ts: string;
  /** The C expression. */
  c: string;
  value: bigint;
  header: "vfio" | "iommufd" | "ioctl";
  since?: Version;
}

/** Every numeric UPPER_CASE export of the uAPI modules, with its C name and header. */
export function collectConstants(): ConstSpec[] {
  const out: ConstSpec[] = [];
  const add = (mod: Record<string, unknown>, header: ConstSpec["header"], cName: (n: string) => string) => {
    for (const [name, value] of Object.entries(mod)) {
      if (typeof value !== "number" || !/^[A-Z][A-Za-z0-9_]*$/.test(name)) continue;
      if (name.startsWith("SIZEOF_") || TS_ONLY.has(name)) continue;
      const since = CONST_SINCE[name] ?? (header === "iommufd" ? V["6.2"] : undefined);
      out.push({ ts: name, c: cName(name), value: BigInt(value), header, ...(since ? { since } : {}) });
    }
  };
  add(vfio as Record<string, unknown>, "vfio", (n) => n);
  add(iommufd as Record<string, unknown>, "iommufd", (n) => n);
  add(ioctl as Record<string, unknown>, "ioctl", (n) => `_${n}`);
  return out;
}

/** Requests built with the TypeScript _IOR/_IOW/_IOWR helpers against the C macros. */
export const IOCTL_MACROS: { ts: number; c: string }[] = [
  { ts: ioctl._IO(0x3b, 100), c: "_IO(';', 100)" },
  { ts: ioctl._IOR(0x3b, 1, 8), c: "_IOR(';', 1, __u64)" },
  { ts: ioctl._IOW(0x56, 200, 24), c: "_IOW('V', 200, struct vfio_bitmap)" },
  { ts: ioctl._IOWR(0xae, 0xff, 16383), c: "_IOWR(0xae, 0xff, char[16383])" },
];

/** SIZEOF_* exports that are sums or scalars rather than one struct. */
export const SIZE_EXPRESSIONS: { ts: string; c: string; since?: Version }[] = [
  { ts: "SIZEOF_VFIO_FD_ARG", c: "sizeof(__s32)" },
  {
    ts: "SIZEOF_VFIO_IOMMU_TYPE1_DMA_UNMAP_WITH_BITMAP",
    c: "sizeof(struct vfio_iommu_type1_dma_unmap) + sizeof(struct vfio_bitmap)",
  },
  {
    ts: "SIZEOF_VFIO_IOMMU_TYPE1_DIRTY_BITMAP_WITH_GET",
    c: "sizeof(struct vfio_iommu_type1_dirty_bitmap) + sizeof(struct vfio_iommu_type1_dirty_bitmap_get)",
  },
];

/** All SIZEOF_* exports of the uAPI modules, by name. */
export function sizeofExports(): Map<string, number> {
  const out = new Map<string, number>();
  for (const mod of [vfio, iommufd, capChain] as Record<string, unknown>[])
    for (const [n, v] of Object.entries(mod))
      if (n.startsWith("SIZEOF_") && typeof v === "number") out.set(n, v);
  return out;
}

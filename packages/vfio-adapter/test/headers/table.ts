// What the header check compares: every struct the TypeScript codecs define, each field they
// read or write, and (collected automatically from the modules' exports) every constant.
//
// A field's TypeScript offset is not written down here: it is found by encoding the struct with
// a marker value in that field and looking for where the marker lands, then decoding a buffer
// with the marker at the C offset. So the check exercises the real encoder and decoder, and a
// table typo cannot agree with a codec bug by accident.
//
// `since` is the first kernel whose uAPI headers have the item; header sets older than that skip
// it. (It need only be right relative to the header sets checked: 6.1, 6.12 and sid, which is
// 7.2 today and so checks the 7.1 PRECOPY_INFOv2 items.)

import * as capChain from "../../src/uapi/cap-chain.ts";
import * as ioctl from "../../src/uapi/ioctl.ts";
import * as iommufd from "../../src/uapi/iommufd.ts";
import * as vfio from "../../src/uapi/vfio.ts";

export type Version = readonly [major: number, minor: number];
type Args = Record<string, unknown>;

export interface FieldSpec {
  /** C member name. */
  c: string;
  /** Path of the TypeScript property ("bitmap.pageSize"). */
  ts: string;
  /** Bytes: the C member's sizeof. */
  width: 1 | 2 | 4 | 8;
  since?: Version;
  /** The encoder computes this field itself (argsz, cap_offset): check decoding only. */
  decodeOnly?: boolean;
}

export interface StructSpec {
  /** C struct name without "struct ". */
  c: string;
  header: "vfio" | "iommufd";
  /** The TypeScript SIZEOF_* export that must equal sizeof(struct c). */
  sizeofName: string;
  since?: Version;
  /** Older header sets have a smaller struct (fields checked, size not). */
  sizeSince?: Version;
  /** Header sets from this version on have a different (newer) size: skip the size check there. */
  until?: Version;
  /** Arguments that encode to a valid struct with every checked field 0. */
  base: Args;
  /** Bytes of the struct, starting at its first byte. */
  encode(a: Args): Uint8Array;
  /** Decodes bytes laid out like the C struct. */
  decode(b: Uint8Array): Args;
  fields: FieldSpec[];
}

const V: Record<string, Version> = {
  "6.2": [6, 2],
  "6.6": [6, 6],
  "6.7": [6, 7],
  "6.11": [6, 11],
  "6.12": [6, 12],
  "6.13": [6, 13],
  "6.17": [6, 17],
  "7.1": [7, 1],
};

// A type1 info answer with one capability, for checking a capability struct's layout in place.
const CAP_AT = vfio.SIZEOF_VFIO_IOMMU_TYPE1_INFO; // first capability: right after the 8-aligned fixed part
function withCap(caps: vfio.IommuType1Caps | Omit<vfio.IommuType1Caps, "unknown">): Uint8Array {
  return vfio.encodeIommuType1Info({ iovaPgsizes: 0n, caps });
}
function decodeCapAt(capBytes: Uint8Array, template: Uint8Array): vfio.IommuType1Caps {
  const full = template.slice();
  // Keep the template's header (id, version, next) and replace only the body.
  full.set(capBytes.subarray(8), CAP_AT + 8);
  return vfio.decodeIommuType1InfoCaps(full);
}

const f = (c: string, ts: string, width: FieldSpec["width"], more: Partial<FieldSpec> = {}): FieldSpec => ({
  c,
  ts,
  width,
  ...more,
});

export const STRUCTS: StructSpec[] = [
  {
    c: "vfio_info_cap_header",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_INFO_CAP_HEADER",
    base: { id: 0, version: 0 },
    encode: (a) =>
      vfio
        .encodeIommuType1Info({
          iovaPgsizes: 0n,
          caps: { extra: [{ id: a.id as number, version: a.version as number, body: new Uint8Array(8) }] },
        })
        .subarray(CAP_AT),
    decode: (b) => {
      const full = vfio.encodeIommuType1Info({
        iovaPgsizes: 0n,
        caps: { extra: [{ id: 0, version: 0, body: new Uint8Array(8) }] },
      });
      full.set(b.subarray(0, 4), CAP_AT); // id and version; `next` is checked by its own test
      return vfio.decodeIommuType1InfoCaps(full).unknown[0] as unknown as Args;
    },
    fields: [f("id", "id", 2), f("version", "version", 2)],
  },
  {
    c: "vfio_group_status",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_GROUP_STATUS",
    base: {},
    encode: (a) => vfio.encodeGroupStatus(a),
    decode: (b) => ({ ...vfio.decodeGroupStatus(b) }),
    fields: [f("argsz", "argsz", 4), f("flags", "flags", 4)],
  },
  {
    // 6.1's header ends at cap_offset (20 bytes); a later one added the `pad` that makes it 24.
    // Kernels read only up to what argsz covers, so sending 24 is right for every kernel.
    c: "vfio_device_info",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_DEVICE_INFO",
    sizeSince: V["6.12"],
    base: {},
    encode: (a) => vfio.encodeDeviceInfo(a),
    decode: (b) => ({ ...vfio.decodeDeviceInfo(b) }),
    fields: [
      f("argsz", "argsz", 4),
      f("flags", "flags", 4),
      f("num_regions", "numRegions", 4),
      f("num_irqs", "numIrqs", 4),
      f("cap_offset", "capOffset", 4),
    ],
  },
  {
    c: "vfio_region_info",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_REGION_INFO",
    base: { index: 0 },
    encode: (a) => vfio.encodeRegionInfo(a as { index: number }),
    decode: (b) => ({ ...vfio.decodeRegionInfo(b) }),
    fields: [
      f("argsz", "argsz", 4),
      f("flags", "flags", 4),
      f("index", "index", 4),
      f("cap_offset", "capOffset", 4),
      f("size", "length", 8),
      f("offset", "offset", 8),
    ],
  },
  {
    c: "vfio_iommu_type1_info",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_IOMMU_TYPE1_INFO",
    base: { flags: 0, iovaPgsizes: 0n },
    encode: (a) => vfio.encodeIommuType1Info(a as { flags: number; iovaPgsizes: bigint }),
    decode: (b) => ({ ...vfio.decodeIommuType1Info(b) }),
    fields: [
      f("argsz", "argsz", 4, { decodeOnly: true }),
      f("flags", "flags", 4),
      f("iova_pgsizes", "iovaPgsizes", 8),
      f("cap_offset", "capOffset", 4, { decodeOnly: true }),
    ],
  },
  {
    c: "vfio_iova_range",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_IOVA_RANGE",
    base: { start: 0n, end: 0n },
    encode: (a) => withCap({ iovaRanges: [a as unknown as vfio.VfioIovaRange] }).subarray(CAP_AT + 16),
    decode: (b) => {
      const full = withCap({ iovaRanges: [{ start: 0n, end: 0n }] });
      full.set(b.subarray(0, 16), CAP_AT + 16);
      return vfio.decodeIommuType1InfoCaps(full).iovaRanges![0] as unknown as Args;
    },
    fields: [f("start", "start", 8), f("end", "end", 8)],
  },
  {
    c: "vfio_iommu_type1_info_cap_iova_range",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE",
    base: {},
    encode: () => withCap({ iovaRanges: [] }).subarray(CAP_AT),
    decode: () => ({}),
    // nr_iovas and iova_ranges[] are checked by their own test (the count is not a free field).
    fields: [],
  },
  {
    c: "vfio_iommu_type1_info_cap_migration",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION",
    base: { flags: 0, pgsizeBitmap: 0n, maxDirtyBitmapSize: 0n },
    encode: (a) => withCap({ migration: a as unknown as vfio.IommuMigrationCap }).subarray(CAP_AT),
    decode: (b) =>
      decodeCapAt(b, withCap({ migration: { flags: 0, pgsizeBitmap: 0n, maxDirtyBitmapSize: 0n } }))
        .migration as unknown as Args,
    fields: [
      f("flags", "flags", 4),
      f("pgsize_bitmap", "pgsizeBitmap", 8),
      f("max_dirty_bitmap_size", "maxDirtyBitmapSize", 8),
    ],
  },
  {
    c: "vfio_iommu_type1_info_dma_avail",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL",
    base: { avail: 0 },
    encode: (a) => withCap({ dmaAvail: a.avail as number }).subarray(CAP_AT),
    decode: (b) => ({ avail: decodeCapAt(b, withCap({ dmaAvail: 0 })).dmaAvail }),
    fields: [f("avail", "avail", 4)],
  },
  {
    c: "vfio_iommu_type1_dma_map",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_IOMMU_TYPE1_DMA_MAP",
    base: { flags: 0, vaddr: 0n, iova: 0n, length: 0n },
    encode: (a) => vfio.encodeDmaMap(a as unknown as vfio.DmaMap),
    decode: (b) => ({ ...vfio.decodeDmaMap(b) }),
    fields: [
      f("argsz", "argsz", 4),
      f("flags", "flags", 4),
      f("vaddr", "vaddr", 8),
      f("iova", "iova", 8),
      f("size", "length", 8),
    ],
  },
  {
    c: "vfio_bitmap",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_BITMAP",
    base: { pageSize: 0n, bitmapLength: 0n, data: 0n },
    encode: (a) =>
      vfio
        .encodeDmaUnmap({ flags: 0, iova: 0n, length: 0n, bitmap: a as unknown as vfio.VfioBitmap })
        .subarray(vfio.SIZEOF_VFIO_IOMMU_TYPE1_DMA_UNMAP),
    decode: (b) => {
      const full = vfio.encodeDmaUnmap({
        flags: vfio.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
        iova: 0n,
        length: 0n,
        bitmap: { pageSize: 0n, bitmapLength: 0n, data: 0n },
      });
      full.set(b.subarray(0, vfio.SIZEOF_VFIO_BITMAP), vfio.SIZEOF_VFIO_IOMMU_TYPE1_DMA_UNMAP);
      return vfio.decodeDmaUnmap(full).bitmap as unknown as Args;
    },
    fields: [f("pgsize", "pageSize", 8), f("size", "bitmapLength", 8), f("data", "data", 8)],
  },
  {
    c: "vfio_iommu_type1_dma_unmap",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_IOMMU_TYPE1_DMA_UNMAP",
    base: { flags: 0, iova: 0n, length: 0n },
    encode: (a) => vfio.encodeDmaUnmap(a as unknown as vfio.DmaUnmap),
    decode: (b) => ({ ...vfio.decodeDmaUnmap(b) }),
    fields: [f("argsz", "argsz", 4), f("flags", "flags", 4), f("iova", "iova", 8), f("size", "length", 8)],
  },
  {
    c: "vfio_iommu_type1_dirty_bitmap",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_IOMMU_TYPE1_DIRTY_BITMAP",
    base: { flags: 0 },
    encode: (a) => vfio.encodeDirtyBitmap(a as { flags: number }),
    decode: (b) => ({ ...vfio.decodeDirtyBitmap(b) }),
    fields: [f("argsz", "argsz", 4), f("flags", "flags", 4)],
  },
  {
    c: "vfio_iommu_type1_dirty_bitmap_get",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_IOMMU_TYPE1_DIRTY_BITMAP_GET",
    base: { iova: 0n, length: 0n, bitmap: { pageSize: 0n, bitmapLength: 0n, data: 0n } },
    encode: (a) =>
      vfio
        .encodeDirtyBitmap({ flags: 0, get: a as unknown as vfio.DirtyBitmapGet })
        .subarray(vfio.SIZEOF_VFIO_IOMMU_TYPE1_DIRTY_BITMAP),
    decode: (b) => {
      const full = vfio.encodeDirtyBitmap({
        flags: vfio.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
        get: { iova: 0n, length: 0n, bitmap: { pageSize: 0n, bitmapLength: 0n, data: 0n } },
      });
      full.set(
        b.subarray(0, vfio.SIZEOF_VFIO_IOMMU_TYPE1_DIRTY_BITMAP_GET),
        vfio.SIZEOF_VFIO_IOMMU_TYPE1_DIRTY_BITMAP,
      );
      return vfio.decodeDirtyBitmap(full).get as unknown as Args;
    },
    fields: [
      f("iova", "iova", 8),
      f("size", "length", 8),
      f("bitmap.pgsize", "bitmap.pageSize", 8),
      f("bitmap.size", "bitmap.bitmapLength", 8),
      f("bitmap.data", "bitmap.data", 8),
    ],
  },
  {
    c: "vfio_device_feature",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_DEVICE_FEATURE",
    base: { flags: 0 },
    encode: (a) => vfio.encodeDeviceFeature(a.flags as number),
    decode: (b) => ({ ...vfio.decodeDeviceFeature(b) }),
    // argsz is checked by its own test: the decoder rejects an argsz larger than the buffer.
    fields: [f("flags", "flags", 4)],
  },
  {
    c: "vfio_device_feature_migration",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_DEVICE_FEATURE_MIGRATION",
    base: {},
    encode: (a) => vfio.encodeFeatureMigration(a),
    decode: (b) => ({ ...vfio.decodeFeatureMigration(b) }),
    fields: [f("flags", "flags", 8)],
  },
  {
    c: "vfio_device_feature_mig_state",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_DEVICE_FEATURE_MIG_STATE",
    base: {},
    encode: (a) => vfio.encodeFeatureMigState(a),
    decode: (b) => ({ ...vfio.decodeFeatureMigState(b) }),
    fields: [f("device_state", "deviceState", 4), f("data_fd", "dataFd", 4)],
  },
  {
    c: "vfio_device_feature_dma_logging_control",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_DEVICE_FEATURE_DMA_LOGGING_CONTROL",
    base: { pageSize: 0n, numRanges: 0, ranges: 0n },
    encode: (a) => vfio.encodeDmaLoggingControl(a as unknown as vfio.DmaLoggingControl),
    decode: (b) => ({ ...vfio.decodeDmaLoggingControl(b) }),
    fields: [f("page_size", "pageSize", 8), f("num_ranges", "numRanges", 4), f("ranges", "ranges", 8)],
  },
  {
    c: "vfio_device_feature_dma_logging_range",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_DEVICE_FEATURE_DMA_LOGGING_RANGE",
    base: { iova: 0n, length: 0n },
    encode: (a) => vfio.encodeDmaLoggingRanges([a as unknown as vfio.DmaLoggingRange]),
    decode: (b) => ({ ...vfio.decodeDmaLoggingRanges(b, 1)[0] }),
    fields: [f("iova", "iova", 8), f("length", "length", 8)],
  },
  {
    c: "vfio_device_feature_dma_logging_report",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT",
    base: { iova: 0n, length: 0n, pageSize: 0n, bitmap: 0n },
    encode: (a) => vfio.encodeDmaLoggingReport(a as unknown as vfio.DmaLoggingReport),
    decode: (b) => ({ ...vfio.decodeDmaLoggingReport(b) }),
    fields: [
      f("iova", "iova", 8),
      f("length", "length", 8),
      f("page_size", "pageSize", 8),
      f("bitmap", "bitmap", 8),
    ],
  },
  {
    c: "vfio_device_feature_mig_data_size",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_DEVICE_FEATURE_MIG_DATA_SIZE",
    since: V["6.2"],
    base: {},
    encode: (a) => vfio.encodeFeatureMigDataSize(a),
    decode: (b) => ({ ...vfio.decodeFeatureMigDataSize(b) }),
    fields: [f("stop_copy_length", "stopCopyLength", 8)],
  },
  {
    c: "vfio_precopy_info",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_PRECOPY_INFO",
    since: V["6.2"],
    base: {},
    encode: (a) => vfio.encodePrecopyInfo(a),
    decode: (b) => ({ ...vfio.decodePrecopyInfo(b) }),
    fields: [
      f("argsz", "argsz", 4),
      f("flags", "flags", 4),
      f("initial_bytes", "initialBytes", 8),
      f("dirty_bytes", "dirtyBytes", 8),
    ],
  },
  {
    // The 6.6 form: sizeof is 16 until token_uuid_ptr arrived.
    c: "vfio_device_bind_iommufd",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_DEVICE_BIND_IOMMUFD_V1",
    since: V["6.6"],
    until: V["6.17"],
    base: { iommufd: 0 },
    encode: (a) => vfio.encodeBindIommufd(a as { iommufd: number }, 16),
    decode: (b) => ({ ...vfio.decodeBindIommufd(b) }),
    fields: [
      f("argsz", "argsz", 4),
      f("flags", "flags", 4),
      f("iommufd", "iommufd", 4),
      f("out_devid", "outDevid", 4),
    ],
  },
  {
    // The 24-byte form, checked against headers that have token_uuid_ptr (Debian sid).
    c: "vfio_device_bind_iommufd",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_DEVICE_BIND_IOMMUFD",
    since: V["6.17"],
    base: { iommufd: 0 },
    encode: (a) => vfio.encodeBindIommufd(a as { iommufd: number }, 24),
    decode: (b) => ({ ...vfio.decodeBindIommufd(b) }),
    fields: [
      f("argsz", "argsz", 4),
      f("flags", "flags", 4),
      f("iommufd", "iommufd", 4),
      f("out_devid", "outDevid", 4),
      f("token_uuid_ptr", "tokenUuidPtr", 8),
    ],
  },
  {
    c: "vfio_device_attach_iommufd_pt",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_DEVICE_ATTACH_IOMMUFD_PT",
    since: V["6.13"],
    base: { ptId: 0 },
    encode: (a) => vfio.encodeAttachIommufdPt(a as { ptId: number }),
    decode: (b) => ({ ...vfio.decodeAttachIommufdPt(b) }),
    fields: [f("argsz", "argsz", 4), f("flags", "flags", 4), f("pt_id", "ptId", 4), f("pasid", "pasid", 4)],
  },
  {
    // Pre-6.13 layout of the same struct: the fields all kernels share.
    c: "vfio_device_attach_iommufd_pt",
    header: "vfio",
    sizeofName: "",
    since: V["6.6"],
    base: { ptId: 0 },
    encode: (a) => vfio.encodeAttachIommufdPt(a as { ptId: number }),
    decode: (b) => ({ ...vfio.decodeAttachIommufdPt(b) }),
    fields: [f("argsz", "argsz", 4), f("flags", "flags", 4), f("pt_id", "ptId", 4)],
  },
  {
    c: "vfio_device_detach_iommufd_pt",
    header: "vfio",
    sizeofName: "SIZEOF_VFIO_DEVICE_DETACH_IOMMUFD_PT",
    since: V["6.13"],
    base: {},
    encode: (a) => vfio.encodeDetachIommufdPt(a),
    decode: (b) => ({ ...vfio.decodeDetachIommufdPt(b) }),
    fields: [f("argsz", "argsz", 4), f("flags", "flags", 4), f("pasid", "pasid", 4)],
  },
  // ----------------------------------------------------------------------------- iommufd.h
  {
    c: "iommu_destroy",
    header: "iommufd",
    sizeofName: "SIZEOF_IOMMU_DESTROY",
    since: V["6.2"],
    base: { id: 0 },
    encode: (a) => iommufd.encodeIommuDestroy(a as { id: number }),
    decode: (b) => ({ ...iommufd.decodeIommuDestroy(b) }),
    fields: [f("size", "size", 4), f("id", "id", 4)],
  },
  {
    c: "iommu_ioas_alloc",
    header: "iommufd",
    sizeofName: "SIZEOF_IOMMU_IOAS_ALLOC",
    since: V["6.2"],
    base: {},
    encode: (a) => iommufd.encodeIoasAlloc(a),
    decode: (b) => ({ ...iommufd.decodeIoasAlloc(b) }),
    fields: [f("size", "size", 4), f("flags", "flags", 4), f("out_ioas_id", "outIoasId", 4)],
  },
  {
    c: "iommu_iova_range",
    header: "iommufd",
    sizeofName: "SIZEOF_IOMMU_IOVA_RANGE",
    since: V["6.2"],
    base: { start: 0n, last: 0n },
    encode: (a) => iommufd.encodeIommuIovaRanges([a as unknown as iommufd.IommuIovaRange]),
    decode: (b) => ({ ...iommufd.decodeIommuIovaRanges(b, 1)[0] }),
    fields: [f("start", "start", 8), f("last", "last", 8)],
  },
  {
    c: "iommu_ioas_iova_ranges",
    header: "iommufd",
    sizeofName: "SIZEOF_IOMMU_IOAS_IOVA_RANGES",
    since: V["6.2"],
    base: { ioasId: 0, numIovas: 0, allowedIovas: 0n },
    encode: (a) => iommufd.encodeIoasIovaRanges(a as unknown as iommufd.IoasIovaRanges),
    decode: (b) => ({ ...iommufd.decodeIoasIovaRanges(b) }),
    fields: [
      f("size", "size", 4),
      f("ioas_id", "ioasId", 4),
      f("num_iovas", "numIovas", 4),
      f("allowed_iovas", "allowedIovas", 8),
      f("out_iova_alignment", "outIovaAlignment", 8),
    ],
  },
  {
    c: "iommu_ioas_map",
    header: "iommufd",
    sizeofName: "SIZEOF_IOMMU_IOAS_MAP",
    since: V["6.2"],
    base: { flags: 0, ioasId: 0, userVa: 0n, length: 0n, iova: 0n },
    encode: (a) => iommufd.encodeIoasMap(a as unknown as iommufd.IoasMap),
    decode: (b) => ({ ...iommufd.decodeIoasMap(b) }),
    fields: [
      f("size", "size", 4),
      f("flags", "flags", 4),
      f("ioas_id", "ioasId", 4),
      f("user_va", "userVa", 8),
      f("length", "length", 8),
      f("iova", "iova", 8),
    ],
  },
  {
    c: "iommu_ioas_unmap",
    header: "iommufd",
    sizeofName: "SIZEOF_IOMMU_IOAS_UNMAP",
    since: V["6.2"],
    base: { ioasId: 0, iova: 0n, length: 0n },
    encode: (a) => iommufd.encodeIoasUnmap(a as unknown as iommufd.IoasUnmap),
    decode: (b) => ({ ...iommufd.decodeIoasUnmap(b) }),
    fields: [f("size", "size", 4), f("ioas_id", "ioasId", 4), f("iova", "iova", 8), f("length", "length", 8)],
  },
  {
    c: "iommu_hw_info",
    header: "iommufd",
    sizeofName: "SIZEOF_IOMMU_HW_INFO",
    since: V["6.7"],
    base: { devId: 0 },
    encode: (a) => iommufd.encodeHwInfo(a as { devId: number }),
    decode: (b) => ({ ...iommufd.decodeHwInfo(b) }),
    fields: [
      f("size", "size", 4),
      f("flags", "flags", 4),
      f("dev_id", "devId", 4),
      f("data_len", "dataLen", 4),
      f("data_uptr", "dataUptr", 8),
      f("out_data_type", "outDataType", 4),
      f("out_max_pasid_log2", "outMaxPasidLog2", 1, { since: V["6.12"] }),
      f("out_capabilities", "outCapabilities", 8),
    ],
  },
  {
    c: "iommu_hwpt_alloc",
    header: "iommufd",
    sizeofName: "SIZEOF_IOMMU_HWPT_ALLOC",
    since: V["6.11"],
    base: { devId: 0, ptId: 0 },
    encode: (a) => iommufd.encodeHwptAlloc(a as { devId: number; ptId: number }),
    decode: (b) => ({ ...iommufd.decodeHwptAlloc(b) }),
    fields: [
      f("size", "size", 4),
      f("flags", "flags", 4),
      f("dev_id", "devId", 4),
      f("pt_id", "ptId", 4),
      f("out_hwpt_id", "outHwptId", 4),
      f("data_type", "dataType", 4),
      f("data_len", "dataLen", 4),
      f("data_uptr", "dataUptr", 8),
      f("fault_id", "faultId", 4),
    ],
  },
  {
    c: "iommu_hwpt_set_dirty_tracking",
    header: "iommufd",
    sizeofName: "SIZEOF_IOMMU_HWPT_SET_DIRTY_TRACKING",
    since: V["6.7"],
    base: { hwptId: 0, flags: 0 },
    encode: (a) => iommufd.encodeHwptSetDirtyTracking(a as { hwptId: number; flags: number }),
    decode: (b) => ({ ...iommufd.decodeHwptSetDirtyTracking(b) }),
    fields: [f("size", "size", 4), f("flags", "flags", 4), f("hwpt_id", "hwptId", 4)],
  },
  {
    c: "iommu_hwpt_get_dirty_bitmap",
    header: "iommufd",
    sizeofName: "SIZEOF_IOMMU_HWPT_GET_DIRTY_BITMAP",
    since: V["6.7"],
    base: { hwptId: 0, flags: 0, iova: 0n, length: 0n, pageSize: 0n, data: 0n },
    encode: (a) => iommufd.encodeHwptGetDirtyBitmap(a as unknown as iommufd.HwptGetDirtyBitmap),
    decode: (b) => ({ ...iommufd.decodeHwptGetDirtyBitmap(b) }),
    fields: [
      f("size", "size", 4),
      f("hwpt_id", "hwptId", 4),
      f("flags", "flags", 4),
      f("iova", "iova", 8),
      f("length", "length", 8),
      f("page_size", "pageSize", 8),
      f("data", "data", 8),
    ],
  },
];

/** Extra offsets checked directly: flexible arrays, nested structs, and fields the codecs compute. */
export const EXTRA_OFFSETS: {
  c: string;
  field: string;
  ts: number;
  since?: Version;
  header: "vfio" | "iommufd";
}[] = [
  { c: "vfio_info_cap_header", field: "next", ts: 4, header: "vfio" },
  { c: "vfio_iommu_type1_info_cap_iova_range", field: "nr_iovas", ts: 8, header: "vfio" },
  { c: "vfio_iommu_type1_info_cap_iova_range", field: "iova_ranges", ts: 16, header: "vfio" },
  {
    c: "vfio_iommu_type1_dma_unmap",
    field: "data",
    ts: vfio.SIZEOF_VFIO_IOMMU_TYPE1_DMA_UNMAP,
    header: "vfio",
  },
  {
    c: "vfio_iommu_type1_dirty_bitmap",
    field: "data",
    ts: vfio.SIZEOF_VFIO_IOMMU_TYPE1_DIRTY_BITMAP,
    header: "vfio",
  },
  { c: "vfio_iommu_type1_dirty_bitmap_get", field: "bitmap", ts: 16, header: "vfio" },
  { c: "vfio_device_feature", field: "argsz", ts: 0, header: "vfio" },
  { c: "vfio_device_feature", field: "data", ts: vfio.SIZEOF_VFIO_DEVICE_FEATURE, header: "vfio" },
  {
    c: "vfio_iommu_type1_info",
    field: "cap_offset",
    ts: vfio.VFIO_IOMMU_TYPE1_INFO_CAP_OFFSET_AT,
    header: "vfio",
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

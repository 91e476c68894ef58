import { describe, expect, it } from "vitest";
import { CodecError } from "../../src/uapi/codec.ts";
import * as v from "../../src/uapi/vfio.ts";

const U64_MAX = 0xffff_ffff_ffff_ffffn;
const hexOf = (b: Uint8Array) => Buffer.from(b).toString("hex");

// One row per struct: encode some distinctive values, decode them back, compare. `min` is the
// shortest buffer the decoder accepts (older, shorter forms of the struct); default the whole struct.
const ROUND_TRIPS: {
  name: string;
  bytes: () => Uint8Array;
  decode: (b: Uint8Array) => unknown;
  want: unknown;
  min?: number;
}[] = [
  {
    name: "vfio_group_status",
    bytes: () => v.encodeGroupStatus({ flags: v.VFIO_GROUP_FLAGS_VIABLE }),
    decode: v.decodeGroupStatus,
    want: { argsz: 8, flags: 1 },
  },
  {
    name: "vfio_device_info",
    bytes: () => v.encodeDeviceInfo({ flags: 0x83, numRegions: 9, numIrqs: 5, capOffset: 24 }),
    decode: v.decodeDeviceInfo,
    want: { argsz: 24, flags: 0x83, numRegions: 9, numIrqs: 5, capOffset: 24 },
  },
  {
    name: "vfio_region_info",
    bytes: () => v.encodeRegionInfo({ index: 7, flags: 3, length: 0x1000n, offset: 0x70000000000n }),
    decode: v.decodeRegionInfo,
    want: { argsz: 32, flags: 3, index: 7, capOffset: 0, length: 0x1000n, offset: 0x70000000000n },
  },
  {
    name: "vfio_iommu_type1_dma_map",
    bytes: () => v.encodeDmaMap({ flags: 3, vaddr: 0x7f0000000000n, iova: 0x100000n, length: U64_MAX }),
    decode: v.decodeDmaMap,
    want: { argsz: 32, flags: 3, vaddr: 0x7f0000000000n, iova: 0x100000n, length: U64_MAX },
  },
  {
    name: "vfio_iommu_type1_dma_unmap",
    bytes: () => v.encodeDmaUnmap({ flags: 0, iova: 0x2000n, length: 0x3000n }),
    decode: v.decodeDmaUnmap,
    want: { argsz: 24, flags: 0, iova: 0x2000n, length: 0x3000n },
  },
  {
    name: "vfio_iommu_type1_dma_unmap + vfio_bitmap",
    bytes: () =>
      v.encodeDmaUnmap({
        flags: v.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
        iova: 0x2000n,
        length: 0x40000n,
        bitmap: { pageSize: 4096n, bitmapLength: 8n, data: 0xdead0000n },
      }),
    decode: v.decodeDmaUnmap,
    want: {
      argsz: 48,
      flags: 1,
      iova: 0x2000n,
      length: 0x40000n,
      bitmap: { pageSize: 4096n, bitmapLength: 8n, data: 0xdead0000n },
    },
  },
  {
    name: "vfio_iommu_type1_dirty_bitmap (START)",
    bytes: () => v.encodeDirtyBitmap({ flags: v.VFIO_IOMMU_DIRTY_PAGES_FLAG_START }),
    decode: v.decodeDirtyBitmap,
    want: { argsz: 8, flags: 1 },
  },
  {
    name: "vfio_iommu_type1_dirty_bitmap + _get",
    bytes: () =>
      v.encodeDirtyBitmap({
        flags: v.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
        get: {
          iova: 0n,
          length: 1n << 30n,
          bitmap: { pageSize: 4096n, bitmapLength: 32768n, data: 0x1000n },
        },
      }),
    decode: v.decodeDirtyBitmap,
    want: {
      argsz: 48,
      flags: 4,
      get: { iova: 0n, length: 1n << 30n, bitmap: { pageSize: 4096n, bitmapLength: 32768n, data: 0x1000n } },
    },
  },
  {
    name: "vfio_device_feature_migration",
    bytes: () => v.encodeFeatureMigration({ flags: 7n }),
    decode: v.decodeFeatureMigration,
    want: { flags: 7n },
  },
  {
    name: "vfio_device_feature_mig_state",
    bytes: () => v.encodeFeatureMigState({ deviceState: v.VFIO_DEVICE_STATE_STOP_COPY, dataFd: 12 }),
    decode: v.decodeFeatureMigState,
    want: { deviceState: 3, dataFd: 12 },
  },
  {
    name: "vfio_device_feature_mig_state (data_fd -1)",
    bytes: () => v.encodeFeatureMigState({ deviceState: 2 }),
    decode: v.decodeFeatureMigState,
    want: { deviceState: 2, dataFd: -1 },
  },
  {
    name: "vfio_device_feature_dma_logging_control",
    bytes: () => v.encodeDmaLoggingControl({ pageSize: 4096n, numRanges: 3, ranges: 0xabc000n }),
    decode: v.decodeDmaLoggingControl,
    want: { pageSize: 4096n, numRanges: 3, ranges: 0xabc000n },
  },
  {
    name: "vfio_device_feature_dma_logging_report",
    bytes: () =>
      v.encodeDmaLoggingReport({ iova: 1n << 32n, length: 1n << 21n, pageSize: 1n << 21n, bitmap: 8n }),
    decode: v.decodeDmaLoggingReport,
    want: { iova: 1n << 32n, length: 1n << 21n, pageSize: 1n << 21n, bitmap: 8n },
  },
  {
    name: "vfio_device_feature_mig_data_size",
    bytes: () => v.encodeFeatureMigDataSize({ stopCopyLength: 123456789n }),
    decode: v.decodeFeatureMigDataSize,
    want: { stopCopyLength: 123456789n },
  },
  {
    name: "vfio_precopy_info",
    bytes: () => v.encodePrecopyInfo({ initialBytes: 10n, dirtyBytes: 20n }),
    decode: v.decodePrecopyInfo,
    want: { argsz: 24, flags: 0, initialBytes: 10n, dirtyBytes: 20n },
  },
  {
    name: "vfio_device_bind_iommufd (24)",
    bytes: () =>
      v.encodeBindIommufd({
        iommufd: 5,
        flags: v.VFIO_DEVICE_BIND_FLAG_TOKEN,
        outDevid: 2,
        tokenUuidPtr: 0x5000n,
      }),
    decode: v.decodeBindIommufd,
    want: { argsz: 24, flags: 1, iommufd: 5, outDevid: 2, tokenUuidPtr: 0x5000n },
    min: 16,
  },
  {
    name: "vfio_device_bind_iommufd (16)",
    bytes: () => v.encodeBindIommufd({ iommufd: 5, outDevid: 2 }, 16),
    decode: v.decodeBindIommufd,
    want: { argsz: 16, flags: 0, iommufd: 5, outDevid: 2 },
  },
  {
    name: "vfio_device_attach_iommufd_pt",
    bytes: () => v.encodeAttachIommufdPt({ ptId: 9, flags: v.VFIO_DEVICE_ATTACH_PASID, pasid: 33 }),
    decode: v.decodeAttachIommufdPt,
    want: { argsz: 16, flags: 1, ptId: 9, pasid: 33 },
    min: 12,
  },
  {
    name: "vfio_device_detach_iommufd_pt",
    bytes: () => v.encodeDetachIommufdPt({ pasid: 4 }),
    decode: v.decodeDetachIommufdPt,
    want: { argsz: 12, flags: 0, pasid: 4 },
    min: 8,
  },
];

describe("vfio.h codecs", () => {
  it.each(ROUND_TRIPS)("$name round-trips", ({ bytes, decode, want }) => {
    expect(decode(bytes())).toEqual(want);
  });

  it.each(ROUND_TRIPS)(
    "$name: a truncated buffer is a CodecError, an oversized one decodes its prefix",
    ({ bytes, decode, want, min }) => {
      const b = bytes();
      const minimum = min ?? b.length;
      expect(() => decode(b.subarray(0, minimum - 1))).toThrow(CodecError);
      const big = new Uint8Array(b.length + 40);
      big.set(b);
      expect(decode(big)).toEqual(want);
    },
  );

  it("lays out vfio_iommu_type1_dma_map byte for byte", () => {
    const b = v.encodeDmaMap({ flags: 3, vaddr: 0x1122334455667788n, iova: 0x1000n, length: 0x200000n });
    expect(hexOf(b)).toBe(
      "20000000" + "03000000" + "8877665544332211" + "0010000000000000" + "0000200000000000",
    );
  });

  it("lays out dma_unmap with its trailing vfio_bitmap byte for byte", () => {
    const b = v.encodeDmaUnmap({
      flags: v.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
      iova: 0x1000n,
      length: 0x2000n,
      bitmap: { pageSize: 0x1000n, bitmapLength: 8n, data: 0xaabbn },
    });
    expect(hexOf(b)).toBe(
      "30000000" +
        "01000000" +
        "0010000000000000" +
        "0020000000000000" +
        "0010000000000000" +
        "0800000000000000" +
        "bbaa000000000000",
    );
  });

  it("lays out a DMA_LOGGING_START feature request byte for byte", () => {
    const control = v.encodeDmaLoggingControl({ pageSize: 4096n, numRanges: 2, ranges: 0x10n });
    const b = v.encodeDeviceFeature(
      v.VFIO_DEVICE_FEATURE_SET | v.VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
      control,
    );
    expect(hexOf(b)).toBe(
      "20000000" + "06000200" + "0010000000000000" + "02000000" + "00000000" + "1000000000000000",
    );
    const d = v.decodeDeviceFeature(b);
    expect(d.flags & v.VFIO_DEVICE_FEATURE_MASK).toBe(v.VFIO_DEVICE_FEATURE_DMA_LOGGING_START);
    expect(v.decodeDmaLoggingControl(d.data)).toEqual({ pageSize: 4096n, numRanges: 2, ranges: 0x10n });
  });

  it("decodes vfio_device_feature's payload only up to argsz and rejects an argsz beyond the buffer", () => {
    const b = v.encodeDeviceFeature(v.VFIO_DEVICE_FEATURE_GET | 1, new Uint8Array(8).fill(0xee));
    const padded = new Uint8Array(64);
    padded.set(b);
    expect(v.decodeDeviceFeature(padded).data).toEqual(new Uint8Array(8).fill(0xee));
    expect(() => v.decodeDeviceFeature(b.subarray(0, 12))).toThrow(/argsz 16 outside 8\.\.12/);
    const tiny = v.encodeDeviceFeature(0);
    new DataView(tiny.buffer).setUint32(0, 4, true);
    expect(() => v.decodeDeviceFeature(tiny)).toThrow(CodecError);
  });

  it("reads the DMA logging ranges array and rejects one shorter than num_ranges", () => {
    const ranges = [
      { iova: 0n, length: 0x1000n },
      { iova: 1n << 40n, length: 1n << 30n },
    ];
    const b = v.encodeDmaLoggingRanges(ranges);
    expect(b.length).toBe(32);
    expect(v.decodeDmaLoggingRanges(b, 2)).toEqual(ranges);
    expect(() => v.decodeDmaLoggingRanges(b, 3)).toThrow(CodecError);
  });

  it("reads the bitmap of dma_unmap only with GET_DIRTY_BITMAP and an argsz covering it", () => {
    const b = v.encodeDmaUnmap({
      flags: 0,
      iova: 0n,
      length: 0x1000n,
      bitmap: { pageSize: 4096n, bitmapLength: 8n, data: 1n },
    });
    expect(v.decodeDmaUnmap(b).bitmap).toBeUndefined();
    const withFlag = v.encodeDmaUnmap({ flags: 1, iova: 0n, length: 0x1000n, argsz: 24 });
    expect(v.decodeDmaUnmap(withFlag).bitmap).toBeUndefined();
    const lying = v.encodeDmaUnmap({ flags: 1, iova: 0n, length: 0x1000n, argsz: 48 }); // 24-byte buffer
    expect(() => v.decodeDmaUnmap(lying)).toThrow(CodecError);
  });

  it("requires the get struct when GET_BITMAP is set", () => {
    const b = v.encodeDirtyBitmap({ flags: v.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP });
    expect(b.length).toBe(8);
    expect(() => v.decodeDirtyBitmap(b)).toThrow(CodecError);
  });

  it("reads token_uuid_ptr only when argsz covers it (the 6.6 kernel's 16-byte answer)", () => {
    const b = v.encodeBindIommufd({ iommufd: 3, tokenUuidPtr: 0x99n, argsz: 16 });
    expect(v.decodeBindIommufd(b).tokenUuidPtr).toBeUndefined();
    expect(() => v.encodeBindIommufd({ iommufd: 3, tokenUuidPtr: 1n }, 16)).toThrow(/no token_uuid_ptr/);
    expect(() => v.encodeBindIommufd({ iommufd: 3, flags: v.VFIO_DEVICE_BIND_FLAG_TOKEN }, 16)).toThrow(
      CodecError,
    );
  });

  it("decodes the pre-6.13 12-byte attach and 8-byte detach forms with pasid 0", () => {
    const attach = v.encodeAttachIommufdPt({ ptId: 4, pasid: 77, argsz: 12 });
    expect(v.decodeAttachIommufdPt(attach.subarray(0, 12))).toEqual({
      argsz: 12,
      flags: 0,
      ptId: 4,
      pasid: 0,
    });
    expect(v.decodeAttachIommufdPt(attach)).toEqual({ argsz: 12, flags: 0, ptId: 4, pasid: 0 });
    const detach = v.encodeDetachIommufdPt({ argsz: 8 });
    expect(v.decodeDetachIommufdPt(detach.subarray(0, 8))).toEqual({ argsz: 8, flags: 0, pasid: 0 });
  });

  it("rejects values that do not fit their field instead of wrapping them", () => {
    expect(() => v.encodeDmaMap({ flags: 0, vaddr: -1n, iova: 0n, length: 1n })).toThrow(
      /vaddr: -1 is not a u64/,
    );
    expect(() => v.encodeDmaMap({ flags: 0, vaddr: 0n, iova: U64_MAX + 1n, length: 1n })).toThrow(/iova/);
    expect(() => v.encodeRegionInfo({ index: 2 ** 32 })).toThrow(/index: 4294967296 is not a u32/);
    expect(() => v.encodeRegionInfo({ index: 1.5 })).toThrow(CodecError);
    expect(() => v.encodeFeatureMigState({ dataFd: 2 ** 31 })).toThrow(/not an s32/);
    expect(() => v.encodeBindIommufd({ iommufd: -(2 ** 31) - 1 })).toThrow(CodecError);
  });

  it("encodes and decodes device names as NUL-terminated strings", () => {
    const b = v.encodeDeviceName("0000:3b:00.1");
    expect(b.at(-1)).toBe(0);
    expect(b.length).toBe(13);
    expect(v.decodeDeviceName(b)).toBe("0000:3b:00.1");
    expect(() => v.encodeDeviceName("")).toThrow(CodecError);
    expect(() => v.encodeDeviceName("a\0b")).toThrow(CodecError);
    expect(() => v.decodeDeviceName(new Uint8Array([0x41, 0x42]))).toThrow(/not NUL-terminated/);
  });

  it("encodes the SET_CONTAINER fd argument as an s32", () => {
    expect(hexOf(v.encodeFdArg(7))).toBe("07000000");
    expect(v.decodeFdArg(v.encodeFdArg(-1))).toBe(-1);
  });

  it("names feature operations the way errors print them", () => {
    expect(v.deviceFeatureOpName(v.VFIO_DEVICE_FEATURE_SET | v.VFIO_DEVICE_FEATURE_DMA_LOGGING_START)).toBe(
      "VFIO_DEVICE_FEATURE(SET|DMA_LOGGING_START)",
    );
    expect(
      v.deviceFeatureOpName(
        v.VFIO_DEVICE_FEATURE_PROBE | v.VFIO_DEVICE_FEATURE_GET | v.VFIO_DEVICE_FEATURE_MIGRATION,
      ),
    ).toBe("VFIO_DEVICE_FEATURE(PROBE|GET|MIGRATION)");
    expect(v.deviceFeatureOpName(v.VFIO_DEVICE_FEATURE_GET | 0x123)).toBe(
      "VFIO_DEVICE_FEATURE(GET|feature 291)",
    );
  });
});

import { describe, expect, it } from "vitest";
import { CodecError } from "../../src/uapi/codec.ts";
import * as i from "../../src/uapi/iommufd.ts";

const hexOf = (b: Uint8Array) => Buffer.from(b).toString("hex");
const U64_MAX = 0xffff_ffff_ffff_ffffn;

const ROUND_TRIPS: {
  name: string;
  bytes: () => Uint8Array;
  decode: (b: Uint8Array) => unknown;
  want: unknown;
}[] = [
  {
    name: "iommu_destroy",
    bytes: () => i.encodeIommuDestroy({ id: 7 }),
    decode: i.decodeIommuDestroy,
    want: { size: 8, id: 7 },
  },
  {
    name: "iommu_ioas_alloc",
    bytes: () => i.encodeIoasAlloc({ outIoasId: 3 }),
    decode: i.decodeIoasAlloc,
    want: { size: 12, flags: 0, outIoasId: 3 },
  },
  {
    name: "iommu_ioas_iova_ranges",
    bytes: () =>
      i.encodeIoasIovaRanges({ ioasId: 2, numIovas: 4, allowedIovas: 0x8000n, outIovaAlignment: 4096n }),
    decode: i.decodeIoasIovaRanges,
    want: { size: 32, ioasId: 2, numIovas: 4, allowedIovas: 0x8000n, outIovaAlignment: 4096n },
  },
  {
    name: "iommu_ioas_map",
    bytes: () =>
      i.encodeIoasMap({ flags: 7, ioasId: 2, userVa: 0x7f0000001000n, length: 0x200000n, iova: 0x100000n }),
    decode: i.decodeIoasMap,
    want: { size: 40, flags: 7, ioasId: 2, userVa: 0x7f0000001000n, length: 0x200000n, iova: 0x100000n },
  },
  {
    name: "iommu_ioas_unmap",
    bytes: () => i.encodeIoasUnmap({ ioasId: 2, iova: 0n, length: U64_MAX }),
    decode: i.decodeIoasUnmap,
    want: { size: 24, ioasId: 2, iova: 0n, length: U64_MAX },
  },
  {
    name: "iommu_hw_info",
    bytes: () =>
      i.encodeHwInfo({
        devId: 1,
        dataLen: 24,
        dataUptr: 0x9000n,
        outDataType: i.IOMMU_HW_INFO_TYPE_INTEL_VTD,
        outMaxPasidLog2: 20,
        outCapabilities: BigInt(i.IOMMU_HW_CAP_DIRTY_TRACKING),
      }),
    decode: i.decodeHwInfo,
    want: {
      size: 40,
      flags: 0,
      devId: 1,
      dataLen: 24,
      dataUptr: 0x9000n,
      outDataType: 1,
      outMaxPasidLog2: 20,
      outCapabilities: 1n,
    },
  },
  {
    name: "iommu_hwpt_alloc",
    bytes: () =>
      i.encodeHwptAlloc({
        devId: 1,
        ptId: 2,
        flags: i.IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
        outHwptId: 5,
        faultId: 6,
      }),
    decode: i.decodeHwptAlloc,
    want: {
      size: 48,
      flags: 2,
      devId: 1,
      ptId: 2,
      outHwptId: 5,
      dataType: 0,
      dataLen: 0,
      dataUptr: 0n,
      faultId: 6,
    },
  },
  {
    name: "iommu_hwpt_set_dirty_tracking",
    bytes: () => i.encodeHwptSetDirtyTracking({ hwptId: 5, flags: i.IOMMU_HWPT_DIRTY_TRACKING_ENABLE }),
    decode: i.decodeHwptSetDirtyTracking,
    want: { size: 16, flags: 1, hwptId: 5 },
  },
  {
    name: "iommu_hwpt_get_dirty_bitmap",
    bytes: () =>
      i.encodeHwptGetDirtyBitmap({
        hwptId: 5,
        flags: i.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
        iova: 0x1000n,
        length: 0x200000n,
        pageSize: 4096n,
        data: 0xabc0n,
      }),
    decode: i.decodeHwptGetDirtyBitmap,
    want: { size: 48, hwptId: 5, flags: 1, iova: 0x1000n, length: 0x200000n, pageSize: 4096n, data: 0xabc0n },
  },
];

describe("iommufd.h codecs", () => {
  it.each(ROUND_TRIPS)("$name round-trips", ({ bytes, decode, want }) => {
    expect(decode(bytes())).toEqual(want);
  });

  it.each(ROUND_TRIPS)(
    "$name: truncated is a CodecError, oversized decodes its prefix",
    ({ bytes, decode, want }) => {
      const b = bytes();
      expect(() => decode(b.subarray(0, b.length - 1))).toThrow(CodecError);
      const big = new Uint8Array(b.length + 16);
      big.set(b);
      expect(decode(big)).toEqual(want);
    },
  );

  it("lays out iommu_hwpt_get_dirty_bitmap byte for byte (reserved word zero)", () => {
    const b = i.encodeHwptGetDirtyBitmap({
      hwptId: 3,
      flags: 0,
      iova: 0x1000n,
      length: 0x200000n,
      pageSize: 0x1000n,
      data: 0x7f00deadbeefn,
    });
    expect(hexOf(b)).toBe(
      "30000000" +
        "03000000" +
        "00000000" +
        "00000000" +
        "0010000000000000" +
        "0000200000000000" +
        "0010000000000000" +
        "efbeadde007f0000",
    );
  });

  it("sends the newest hwpt_alloc layout with the fault_id tail zeroed", () => {
    const b = i.encodeHwptAlloc({ devId: 1, ptId: 2 });
    expect(b.length).toBe(48);
    expect(hexOf(b.subarray(40))).toBe("0000000000000000");
  });

  it("reads and writes IOVA range arrays", () => {
    const ranges = [
      { start: 0n, last: 0xfedfffffn },
      { start: 0xfef00000n, last: U64_MAX },
    ];
    const b = i.encodeIommuIovaRanges(ranges);
    expect(i.decodeIommuIovaRanges(b, 2)).toEqual(ranges);
    expect(i.decodeIommuIovaRanges(b, 0)).toEqual([]);
    expect(() => i.decodeIommuIovaRanges(b, 3)).toThrow(CodecError);
  });

  it("rejects out-of-range fields", () => {
    expect(() => i.encodeHwInfo({ devId: 1, outMaxPasidLog2: 256 })).toThrow(/not a u8/);
    expect(() => i.encodeIoasUnmap({ ioasId: -1, iova: 0n, length: 1n })).toThrow(/ioas_id/);
    expect(() =>
      i.encodeIoasMap({ flags: 0, ioasId: 1, userVa: 0n, length: U64_MAX + 1n, iova: 0n }),
    ).toThrow(/length/);
  });
});

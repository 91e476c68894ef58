// Property tests: for any in-range field values, decode(encode(x)) is x and the bytes sit where
// the kernel expects them; for any out-of-range value, encoding throws instead of wrapping.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { walkCapChain } from "../../src/uapi/cap-chain.ts";
import { CodecError } from "../../src/uapi/codec.ts";
import * as i from "../../src/uapi/iommufd.ts";
import * as v from "../../src/uapi/vfio.ts";

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const s32 = fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff });
const u64 = fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn });

describe("codec properties", () => {
  it("dma_map, dma_unmap + bitmap and dirty bitmap get round-trip any u64 values", () => {
    fc.assert(
      fc.property(u32, u64, u64, u64, u64, u64, u64, (flags, a, b, c, d, e, f) => {
        expect(v.decodeDmaMap(v.encodeDmaMap({ flags, vaddr: a, iova: b, length: c }))).toEqual({
          argsz: 32,
          flags,
          vaddr: a,
          iova: b,
          length: c,
        });
        const bitmap = { pageSize: d, bitmapLength: e, data: f };
        const unmapFlags = (flags | v.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) >>> 0;
        expect(v.decodeDmaUnmap(v.encodeDmaUnmap({ flags: unmapFlags, iova: a, length: b, bitmap }))).toEqual(
          {
            argsz: 48,
            flags: unmapFlags,
            iova: a,
            length: b,
            bitmap,
          },
        );
        const get = { iova: a, length: b, bitmap };
        expect(
          v.decodeDirtyBitmap(v.encodeDirtyBitmap({ flags: v.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, get }))
            .get,
        ).toEqual(get);
      }),
    );
  });

  it("device feature payloads round-trip inside the feature header", () => {
    fc.assert(
      fc.property(u64, u32, u64, u64, u32, s32, (pageSize, numRanges, ranges, bm, state, fd) => {
        const control = v.encodeDmaLoggingControl({ pageSize, numRanges, ranges });
        const f = v.decodeDeviceFeature(v.encodeDeviceFeature(v.VFIO_DEVICE_FEATURE_SET | 6, control));
        expect(f.argsz).toBe(8 + 24);
        expect(v.decodeDmaLoggingControl(f.data)).toEqual({ pageSize, numRanges, ranges });
        const report = { iova: ranges, length: pageSize, pageSize: bm, bitmap: ranges };
        expect(v.decodeDmaLoggingReport(v.encodeDmaLoggingReport(report))).toEqual(report);
        expect(v.decodeFeatureMigState(v.encodeFeatureMigState({ deviceState: state, dataFd: fd }))).toEqual({
          deviceState: state,
          dataFd: fd,
        });
      }),
    );
  });

  it("iommufd structs round-trip any in-range values", () => {
    fc.assert(
      fc.property(u32, u32, u32, u64, u64, u64, u64, (a, b, c, x, y, z, w) => {
        const bitmap = { hwptId: a, flags: b, iova: x, length: y, pageSize: z, data: w };
        expect(i.decodeHwptGetDirtyBitmap(i.encodeHwptGetDirtyBitmap(bitmap))).toEqual({
          size: 48,
          ...bitmap,
        });
        const map = { flags: a, ioasId: b, userVa: x, length: y, iova: z };
        expect(i.decodeIoasMap(i.encodeIoasMap(map))).toEqual({ size: 40, ...map });
        const alloc = {
          flags: a,
          devId: b,
          ptId: c,
          outHwptId: a,
          dataType: b,
          dataLen: c,
          dataUptr: w,
          faultId: a,
        };
        expect(i.decodeHwptAlloc(i.encodeHwptAlloc(alloc))).toEqual({ size: 48, ...alloc });
        const ranges = [{ start: x, last: y }];
        expect(i.decodeIommuIovaRanges(i.encodeIommuIovaRanges(ranges), 1)).toEqual(ranges);
      }),
    );
  });

  it("refuses every out-of-range u32 and u64 rather than wrapping it", () => {
    const badU32 = fc.oneof(
      fc.integer({ min: 0x1_0000_0000, max: Number.MAX_SAFE_INTEGER }),
      fc.integer({ min: Number.MIN_SAFE_INTEGER, max: -1 }),
      fc.double({ noInteger: true }),
    );
    const badU64 = fc.oneof(
      fc.bigInt({ min: 1n << 64n, max: 1n << 80n }),
      fc.bigInt({ min: -(1n << 64n), max: -1n }),
    );
    fc.assert(
      fc.property(badU32, badU64, (n, big) => {
        expect(() => i.encodeHwptSetDirtyTracking({ hwptId: n, flags: 0 })).toThrow(CodecError);
        expect(() => v.encodeDmaMap({ flags: 0, vaddr: 0n, iova: big, length: 1n })).toThrow(CodecError);
      }),
    );
  });

  it("decodes any type1 info answer without hanging: a result or a CodecError, nothing else", () => {
    // Random bytes after a plausible header: chains that loop, overrun or point anywhere.
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 24, maxLength: 160 }),
        fc.integer({ min: 0, max: 200 }),
        (bytes, capAt) => {
          const dv = new DataView(bytes.buffer);
          dv.setUint32(0, Math.min(bytes.length, dv.getUint32(0, true) % 256), true);
          dv.setUint32(4, v.VFIO_IOMMU_INFO_CAPS, true);
          dv.setUint32(16, capAt, true);
          try {
            const caps = v.decodeIommuType1InfoCaps(bytes);
            expect(caps.unknown.length).toBeLessThanOrEqual(bytes.length / 8);
          } catch (e) {
            expect(e).toBeInstanceOf(CodecError);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("walks a chain of any length of distinct forward links exactly once", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 30 }), (n) => {
        const b = new Uint8Array(24 + n * 8);
        const dv = new DataView(b.buffer);
        for (let k = 0; k < n; k++) {
          const at = 24 + k * 8;
          dv.setUint16(at, k, true);
          dv.setUint32(at + 4, k + 1 < n ? at + 8 : 0, true);
        }
        expect(walkCapChain(b, 24, 24, "t").map((c) => c.id)).toEqual(Array.from({ length: n }, (_, k) => k));
      }),
    );
  });
});

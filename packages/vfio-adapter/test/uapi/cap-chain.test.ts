import { describe, expect, it } from "vitest";
import { buildCapChain, fitInfoToArgsz, walkCapChain } from "../../src/uapi/cap-chain.ts";
import { CodecError } from "../../src/uapi/codec.ts";
import {
  decodeIommuType1Info,
  decodeIommuType1InfoCaps,
  encodeIommuType1Info,
  encodeIommuType1InfoRequest,
  iommuInfoRetryArgsz,
  SIZEOF_VFIO_IOMMU_TYPE1_INFO,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
  VFIO_IOMMU_TYPE1_INFO_CAP_OFFSET_AT,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
} from "../../src/uapi/vfio.ts";

// The values a real 6.1 kernel with an emulated VT-d answered (see shared/README.md), laid out as
// kernels since 6.6 do unless a test says otherwise.
const REAL_CAPS = {
  iovaRanges: [
    { start: 0n, end: 0xfedfffffn },
    { start: 0xfef00000n, end: 0xffffffffffffn },
  ],
  migration: { flags: 0, pgsizeBitmap: 0x1000n, maxDirtyBitmapSize: 268435456n },
  dmaAvail: 65535,
};
const realInfo = () => encodeIommuType1Info({ iovaPgsizes: 0x40201000n, caps: REAL_CAPS });
const setU32 = (b: Uint8Array, at: number, x: number) =>
  new DataView(b.buffer, b.byteOffset).setUint32(at, x, true);

describe("type1 info capability chain", () => {
  it("builds the chain as the kernel does and decodes it back", () => {
    const b = realInfo();
    // vfio_iommu_type1_get_info's order: migration (32), dma avail (12 -> 16 aligned), iova ranges
    // (8 + 8 + 2*16 = 48), after the 24-byte fixed part.
    expect(b.length).toBe(24 + 32 + 16 + 48);
    const info = decodeIommuType1Info(b);
    expect(info).toEqual({
      argsz: b.length,
      flags: VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS,
      iovaPgsizes: 0x40201000n,
      capOffset: 24,
    });
    expect(decodeIommuType1InfoCaps(b)).toEqual({ ...REAL_CAPS, unknown: [] });
    expect(
      walkCapChain(b, 24, SIZEOF_VFIO_IOMMU_TYPE1_INFO, "t").map((c) => [c.id, c.offset, c.next]),
    ).toEqual([
      [VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, 24, 56],
      [VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 56, 72],
      [VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 72, 0],
    ]);
  });

  it("packs the chain without padding as kernels before 6.6 did, and decodes it the same", () => {
    const b = encodeIommuType1Info({ iovaPgsizes: 0x40201000n, caps: REAL_CAPS, alignCaps: false });
    // The 12-byte dma avail capability leaves the iova ranges at 68, and nothing pads the end.
    expect(b.length).toBe(24 + 32 + 12 + 48);
    expect(decodeIommuType1Info(b)).toMatchObject({ argsz: b.length, capOffset: 24 });
    expect(
      walkCapChain(b, 24, SIZEOF_VFIO_IOMMU_TYPE1_INFO, "t").map((c) => [c.id, c.offset, c.next]),
    ).toEqual([
      [VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, 24, 56],
      [VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 56, 68],
      [VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 68, 0],
    ]);
    expect(decodeIommuType1InfoCaps(b)).toEqual({ ...REAL_CAPS, unknown: [] });
    // Same capabilities byte for byte; only where the iova ranges start differs.
    const aligned = realInfo();
    expect(b.subarray(24, 56)).toEqual(aligned.subarray(24, 56));
    expect(b.subarray(68)).toEqual(aligned.subarray(72));
  });

  it("lists capabilities it does not know instead of failing", () => {
    const b = encodeIommuType1Info({
      iovaPgsizes: 0x1000n,
      caps: { dmaAvail: 3, extra: [{ id: 99, version: 2, body: new Uint8Array([1, 2, 3]) }] },
    });
    const caps = decodeIommuType1InfoCaps(b);
    expect(caps.dmaAvail).toBe(3);
    expect(caps.unknown).toEqual([{ id: 99, version: 2, offset: 40, next: 0 }]);
  });

  it("has no capabilities without the CAPS flag or with cap_offset 0", () => {
    const none = encodeIommuType1Info({ iovaPgsizes: 0x1000n });
    expect(none.length).toBe(24);
    expect(decodeIommuType1Info(none).flags & VFIO_IOMMU_INFO_CAPS).toBe(0);
    expect(decodeIommuType1InfoCaps(none)).toEqual({ unknown: [] });
    const b = realInfo();
    setU32(b, VFIO_IOMMU_TYPE1_INFO_CAP_OFFSET_AT, 0);
    expect(decodeIommuType1InfoCaps(b)).toEqual({ unknown: [] });
  });

  it("rejects a chain that loops back on itself or through another capability", () => {
    const self = realInfo();
    setU32(self, 24 + 4, 24); // first cap's next -> itself
    expect(() => decodeIommuType1InfoCaps(self)).toThrow(/loops back to offset 24/);
    const cycle = realInfo();
    setU32(cycle, 72 + 4, 56); // iova ranges -> dma avail -> iova ranges ...
    expect(() => decodeIommuType1InfoCaps(cycle)).toThrow(CodecError);
  });

  it("rejects a capability inside the fixed struct or past the buffer", () => {
    const inside = realInfo();
    setU32(inside, VFIO_IOMMU_TYPE1_INFO_CAP_OFFSET_AT, 8);
    expect(() => decodeIommuType1InfoCaps(inside)).toThrow(/overlaps the 24-byte fixed struct/);
    const past = realInfo();
    setU32(past, 72 + 4, past.length - 4); // header would straddle the end
    expect(() => decodeIommuType1InfoCaps(past)).toThrow(/runs past/);
    const far = realInfo();
    setU32(far, 24 + 4, 0xffff_fff0);
    expect(() => decodeIommuType1InfoCaps(far)).toThrow(CodecError);
  });

  it("rejects capability bodies that overrun the buffer (nr_iovas too large, short migration cap)", () => {
    const many = realInfo();
    setU32(many, 72 + 8, 1000); // nr_iovas
    expect(() => decodeIommuType1InfoCaps(many)).toThrow(/1000 ranges/);
    const mig = encodeIommuType1Info({ iovaPgsizes: 0n, caps: { migration: REAL_CAPS.migration } });
    const cut = mig.slice(0, mig.length - 8);
    setU32(cut, 0, cut.length);
    expect(() => decodeIommuType1InfoCaps(cut)).toThrow(/cap_migration/);
  });

  it("only walks the part of the buffer argsz says the kernel filled", () => {
    const b = realInfo();
    const big = new Uint8Array(b.length + 64);
    big.set(b);
    expect(decodeIommuType1InfoCaps(big)).toEqual({ ...REAL_CAPS, unknown: [] });
    // argsz larger than the buffer while cap_offset is set: the answer cannot be trusted.
    setU32(b, 0, b.length + 8);
    expect(() => decodeIommuType1InfoCaps(b)).toThrow(/exceeds/);
  });

  it("implements the argsz-too-small protocol: fit, report, retry", () => {
    const full = realInfo();
    const request = encodeIommuType1InfoRequest();
    expect(request.length).toBe(24);
    const answer = fitInfoToArgsz(
      full,
      request.length,
      24,
      VFIO_IOMMU_INFO_CAPS,
      VFIO_IOMMU_TYPE1_INFO_CAP_OFFSET_AT,
    );
    expect(answer.length).toBe(24);
    const info = decodeIommuType1Info(answer);
    expect(info.argsz).toBe(full.length);
    expect(info.capOffset).toBe(0);
    expect(info.flags & VFIO_IOMMU_INFO_CAPS).toBe(VFIO_IOMMU_INFO_CAPS);
    expect(iommuInfoRetryArgsz(info, request.length)).toBe(full.length);
    expect(decodeIommuType1InfoCaps(answer)).toEqual({ unknown: [] });
    // Retry with the size asked for: the whole answer fits.
    const retry = encodeIommuType1InfoRequest(full.length);
    expect(fitInfoToArgsz(full, retry.length, 24, VFIO_IOMMU_INFO_CAPS, 16)).toBe(full);
    expect(iommuInfoRetryArgsz(decodeIommuType1Info(full), retry.length)).toBeUndefined();
    // An old kernel without caps never asks for a retry.
    expect(iommuInfoRetryArgsz({ argsz: 16, flags: 1, iovaPgsizes: 0n, capOffset: 0 }, 24)).toBeUndefined();
    expect(() => encodeIommuType1InfoRequest(16)).toThrow(CodecError);
  });

  it("builds chains 8-byte aligned with next links, and leaves an empty chain as the fixed part", () => {
    const fixed = new Uint8Array(20).fill(0xff);
    const { bytes, first } = buildCapChain(fixed, [
      { id: 1, version: 1, body: new Uint8Array(1) },
      { id: 2, version: 3, body: new Uint8Array(0) },
    ]);
    expect(first).toBe(24);
    expect(bytes.length).toBe(24 + 16 + 8);
    expect(walkCapChain(bytes, first, 20, "x")).toEqual([
      { id: 1, version: 1, offset: 24, next: 40 },
      { id: 2, version: 3, offset: 40, next: 0 },
    ]);
    expect(buildCapChain(fixed, [])).toEqual({ bytes: fixed, first: 0 });
  });

  it("builds packed chains (before 6.6): each capability right after the previous one", () => {
    const fixed = new Uint8Array(20).fill(0xff);
    const { bytes, first } = buildCapChain(
      fixed,
      [
        { id: 1, version: 1, body: new Uint8Array(1) },
        { id: 2, version: 3, body: new Uint8Array(0) },
      ],
      false,
    );
    expect(first).toBe(20);
    expect(bytes.length).toBe(20 + 9 + 8);
    expect(walkCapChain(bytes, first, 20, "x")).toEqual([
      { id: 1, version: 1, offset: 20, next: 29 },
      { id: 2, version: 3, offset: 29, next: 0 },
    ]);
    expect(buildCapChain(fixed, [], false)).toEqual({ bytes: fixed, first: 0 });
  });
});

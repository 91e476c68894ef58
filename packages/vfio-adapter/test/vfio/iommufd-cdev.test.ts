import { describe, expect, it } from "vitest";
import { Errno, InvalidInputError, IoctlError, ProtocolError } from "../../src/errors.ts";
import * as i from "../../src/uapi/iommufd.ts";
import * as v from "../../src/uapi/vfio.ts";
import { DeviceCdev } from "../../src/vfio/cdev.ts";
import { IommuFd } from "../../src/vfio/iommufd.ts";
import { bytesOf, FakeHost, setU32, setU64, u32 } from "./fake-host.ts";

function setup() {
  const host = new FakeHost();
  host.paths.set("/dev/iommu", 5);
  host.paths.set("/dev/vfio/devices/vfio0", 6);
  return {
    host,
    iommufd: IommuFd.open(host),
    cdev: DeviceCdev.open(host, "/dev/vfio/devices/vfio0", "0000:00:03.0"),
  };
}

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a throw");
}

describe("DeviceCdev", () => {
  it("binds with the 24-byte struct and returns the device id", () => {
    const { host, iommufd, cdev } = setup();
    host.onIoctl = (_fd, _r, arg) => {
      setU32(arg as Uint8Array, 12, 1);
      return 0;
    };
    expect(cdev.bindIommufd(iommufd)).toBe(1);
    expect(v.decodeBindIommufd(bytesOf(host.calls[0]))).toEqual({
      argsz: 24,
      flags: 0,
      iommufd: 5,
      outDevid: 0,
      tokenUuidPtr: 0n,
    });
  });

  it("falls back to the 16-byte form when an older kernel rejects 24 bytes", () => {
    const { host, iommufd, cdev } = setup();
    host.onIoctl = (_fd, _r, arg) => {
      const b = arg as Uint8Array;
      if (u32(b, 0) !== 16) return -Errno.EINVAL;
      setU32(b, 12, 2);
      return 0;
    };
    expect(cdev.bindIommufd(iommufd)).toBe(2);
    expect(host.calls.map((c) => bytesOf(c).length)).toEqual([24, 16]);
  });

  it("sends the VF token by address and does not fall back with a token", () => {
    const { host, iommufd, cdev } = setup();
    const token = new Uint8Array(16).fill(0xab);
    host.onIoctl = (_fd, _r, arg, h) => {
      const b = v.decodeBindIommufd(arg as Uint8Array);
      expect(b.flags).toBe(v.VFIO_DEVICE_BIND_FLAG_TOKEN);
      expect(h.memoryAt(b.tokenUuidPtr!)).toEqual(token);
      return -Errno.EINVAL;
    };
    const e = thrown(() => cdev.bindIommufd(iommufd, token)) as IoctlError;
    expect(e.errno).toBe(Errno.EINVAL);
    expect(e.message).toContain(
      "VFIO_DEVICE_BIND_IOMMUFD (device 0000:00:03.0 fd 6, iommufd 5, argsz 24, with VF token)",
    );
    expect(host.calls.length).toBe(1);
    expect(() => cdev.bindIommufd(iommufd, new Uint8Array(8))).toThrow(/16-byte UUID/);
  });

  it("attaches to a page table (returning the HWPT id) and detaches", () => {
    const { host, cdev } = setup();
    host.onIoctl = (_fd, request, arg) => {
      if (request === v.VFIO_DEVICE_ATTACH_IOMMUFD_PT) setU32(arg as Uint8Array, 8, 7);
      return 0;
    };
    expect(cdev.attachIommufdPt(3)).toBe(7);
    cdev.detachIommufdPt();
    expect(v.decodeAttachIommufdPt(bytesOf(host.calls[0]))).toEqual({
      argsz: 16,
      flags: 0,
      ptId: 3,
      pasid: 0,
    });
    expect(bytesOf(host.calls[1])).toEqual(v.encodeDetachIommufdPt());
  });
});

describe("IommuFd", () => {
  it("allocates and destroys an IOAS", () => {
    const { host, iommufd } = setup();
    host.onIoctl = (_fd, request, arg) => {
      if (request === i.IOMMU_IOAS_ALLOC) setU32(arg as Uint8Array, 8, 2);
      return 0;
    };
    expect(iommufd.ioasAlloc()).toBe(2);
    iommufd.destroy(2);
    expect(host.calls.map((c) => [c.fd, c.request])).toEqual([
      [5, i.IOMMU_IOAS_ALLOC],
      [5, i.IOMMU_DESTROY],
    ]);
    expect(i.decodeIommuDestroy(bytesOf(host.calls[1]))).toEqual({ size: 8, id: 2 });
  });

  it("maps at a fixed IOVA or where the kernel chooses", () => {
    const { host, iommufd } = setup();
    host.onIoctl = (_fd, _r, arg) => {
      const m = i.decodeIoasMap(arg as Uint8Array);
      if (!(m.flags & i.IOMMU_IOAS_MAP_FIXED_IOVA)) setU64(arg as Uint8Array, 32, 0xa000_0000n);
      return 0;
    };
    expect(iommufd.ioasMap({ ioasId: 2, userVa: 0x7000n, length: 0x1000n, iova: 0x1000n })).toBe(0x1000n);
    expect(iommufd.ioasMap({ ioasId: 2, userVa: 0x7000n, length: 0x1000n })).toBe(0xa000_0000n);
    expect(host.calls.map((c) => i.decodeIoasMap(bytesOf(c)).flags)).toEqual([7, 6]);
  });

  it("unmaps and returns the bytes unmapped", () => {
    const { host, iommufd } = setup();
    host.onIoctl = () => 0;
    expect(iommufd.ioasUnmap({ ioasId: 2, iova: 0x1000n, length: 0x2000n })).toBe(0x2000n);
    host.onIoctl = () => -Errno.ENOENT;
    expect(thrown(() => iommufd.ioasUnmap({ ioasId: 2, iova: 0x1000n, length: 0x2000n })).message).toMatch(
      /^IOMMU_IOAS_UNMAP \(iommufd fd 5, ioas 2, iova 0x1000, length 0x2000\): ENOENT/,
    );
  });

  it("reads IOVA ranges, retrying once with the count the kernel asked for after EMSGSIZE", () => {
    const { host, iommufd } = setup();
    const ranges = Array.from({ length: 10 }, (_, k) => ({
      start: BigInt(k) << 32n,
      last: (BigInt(k) << 32n) + 0xfffn,
    }));
    host.onIoctl = (_fd, _r, arg, h) => {
      const b = arg as Uint8Array;
      const q = i.decodeIoasIovaRanges(b);
      setU32(b, 8, ranges.length);
      if (q.numIovas < ranges.length) return -Errno.EMSGSIZE;
      h.memoryAt(q.allowedIovas).set(i.encodeIommuIovaRanges(ranges));
      setU64(b, 24, 4096n);
      return 0;
    };
    expect(iommufd.ioasIovaRanges(2)).toEqual({ ranges, iovaAlignment: 4096n });
    expect(host.calls.map((c) => i.decodeIoasIovaRanges(bytesOf(c)).numIovas)).toEqual([8, 10]);
  });

  it("fails after a second EMSGSIZE and on a nonsense count", () => {
    const { host, iommufd } = setup();
    let grow = 8;
    host.onIoctl = (_fd, _r, arg) => {
      grow += 8;
      setU32(arg as Uint8Array, 8, grow);
      return -Errno.EMSGSIZE;
    };
    expect(thrown(() => iommufd.ioasIovaRanges(2))).toBeInstanceOf(IoctlError);
    expect(host.calls.length).toBe(2);
    host.onIoctl = (_fd, _r, arg) => {
      setU32(arg as Uint8Array, 8, 3); // "too small" but asks for less than it had
      return -Errno.EMSGSIZE;
    };
    expect(() => iommufd.ioasIovaRanges(2)).toThrow(ProtocolError);
  });

  it("reads hardware info into a caller buffer by address", () => {
    const { host, iommufd } = setup();
    const data = new Uint8Array(24);
    host.onIoctl = (_fd, _r, arg, h) => {
      const q = i.decodeHwInfo(arg as Uint8Array);
      expect(q.dataLen).toBe(24);
      h.memoryAt(q.dataUptr).fill(1);
      (arg as Uint8Array).set(
        i.encodeHwInfo({
          ...q,
          outDataType: i.IOMMU_HW_INFO_TYPE_INTEL_VTD,
          outCapabilities: 1n,
          dataLen: 24,
        }),
      );
      return 0;
    };
    const info = iommufd.getHwInfo(1, data);
    expect(info.outCapabilities & BigInt(i.IOMMU_HW_CAP_DIRTY_TRACKING)).toBe(1n);
    expect(data[23]).toBe(1);
    expect(i.decodeHwInfo(bytesOf(host.calls[0])).devId).toBe(1);
  });

  it("allocates a dirty-tracking HWPT and explains EOPNOTSUPP", () => {
    const { host, iommufd } = setup();
    host.onIoctl = (_fd, _r, arg) => {
      setU32(arg as Uint8Array, 16, 9);
      return 0;
    };
    expect(iommufd.hwptAlloc({ devId: 1, ptId: 2, flags: i.IOMMU_HWPT_ALLOC_DIRTY_TRACKING })).toBe(9);
    expect(i.decodeHwptAlloc(bytesOf(host.calls[0]))).toMatchObject({
      size: 48,
      flags: 2,
      devId: 1,
      ptId: 2,
    });
    host.onIoctl = () => -Errno.EOPNOTSUPP;
    const e = thrown(() =>
      iommufd.hwptAlloc({ devId: 1, ptId: 2, flags: i.IOMMU_HWPT_ALLOC_DIRTY_TRACKING }),
    );
    expect(e.message).toMatch(/^IOMMU_HWPT_ALLOC \(iommufd fd 5, dev_id 1, pt_id 2, flags 0x2\): EOPNOTSUPP/);
    expect(e.message).toContain("cannot track dirty pages");
  });

  it("refuses a dirty bitmap short of whole u64 words before the kernel can write past it", () => {
    const { host, iommufd } = setup();
    // 0x41 pages -> 65 bits -> the kernel writes two u64 words; 9 bytes covers the bits but not
    // the second word, which iova_bitmap would write into whatever follows the buffer.
    const req = { hwptId: 9, iova: 0n, length: 0x41000n, pageSize: 0x1000n, bitmap: new Uint8Array(9) };
    expect(() => iommufd.getDirtyBitmap(req)).toThrow(/too small for 65 pages \(needs 16/);
    expect(() => iommufd.getDirtyBitmap({ ...req, pageSize: 0x1800n, bitmap: new Uint8Array(64) })).toThrow(
      InvalidInputError,
    );
    expect(host.calls.length).toBe(0);
    host.onIoctl = () => 0;
    iommufd.getDirtyBitmap({ ...req, bitmap: new Uint8Array(16) });
    expect(host.calls.length).toBe(1);
  });

  it("toggles dirty tracking and reads the dirty bitmap, with and without NO_CLEAR", () => {
    const { host, iommufd } = setup();
    const bitmap = new Uint8Array(8);
    host.onIoctl = (_fd, request, arg, h) => {
      if (request === i.IOMMU_HWPT_GET_DIRTY_BITMAP)
        h.memoryAt(i.decodeHwptGetDirtyBitmap(arg as Uint8Array).data)[0] = 1;
      return 0;
    };
    iommufd.setDirtyTracking(9, true);
    iommufd.getDirtyBitmap({ hwptId: 9, iova: 0n, length: 0x40000n, pageSize: 0x1000n, bitmap });
    iommufd.getDirtyBitmap({
      hwptId: 9,
      iova: 0n,
      length: 0x40000n,
      pageSize: 0x1000n,
      bitmap,
      noClear: true,
    });
    iommufd.setDirtyTracking(9, false);
    expect(bitmap[0]).toBe(1);
    expect(i.decodeHwptSetDirtyTracking(bytesOf(host.calls[0]))).toEqual({ size: 16, flags: 1, hwptId: 9 });
    expect(i.decodeHwptGetDirtyBitmap(bytesOf(host.calls[1]))).toEqual({
      size: 48,
      hwptId: 9,
      flags: 0,
      iova: 0n,
      length: 0x40000n,
      pageSize: 0x1000n,
      data: host.addressOf(bitmap),
    });
    expect(i.decodeHwptGetDirtyBitmap(bytesOf(host.calls[2])).flags).toBe(
      i.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
    );
    expect(i.decodeHwptSetDirtyTracking(bytesOf(host.calls[3])).flags).toBe(0);
    host.onIoctl = () => -Errno.ENOENT;
    expect(
      thrown(() =>
        iommufd.getDirtyBitmap({
          hwptId: 9,
          iova: 0x1000n,
          length: 0x1000n,
          pageSize: 0x1000n,
          bitmap,
          noClear: true,
        }),
      ).message,
    ).toMatch(
      /^IOMMU_HWPT_GET_DIRTY_BITMAP\(NO_CLEAR\) \(iommufd fd 5, hwpt 9, iova 0x1000, length 0x1000, page_size 0x1000, bitmap 8 bytes\): ENOENT/,
    );
  });
});

import { describe, expect, it } from "vitest";
import {
  Errno,
  InternalError,
  InvalidInputError,
  IoctlError,
  ProtocolError,
  SyscallError,
} from "../../src/errors.ts";
import { fitInfoToArgsz } from "../../src/uapi/cap-chain.ts";
import { CodecError } from "../../src/uapi/codec.ts";
import * as v from "../../src/uapi/vfio.ts";
import { Container } from "../../src/vfio/container.ts";
import { Device } from "../../src/vfio/device.ts";
import { bytesOf, FakeHost, setU64, u32 } from "./fake-host.ts";

const CAPS = {
  iovaRanges: [{ start: 0n, end: 0xfedfffffn }],
  migration: { flags: 0, pgsizeBitmap: 0x1000n, maxDirtyBitmapSize: 268435456n },
  dmaAvail: 65535,
};

function openContainer(host = new FakeHost()): { host: FakeHost; c: Container } {
  host.paths.set("/dev/vfio/vfio", 3);
  return { host, c: Container.open(host) };
}

/** A type1 kernel that answers GET_INFO with `full`, cut to the caller's argsz. */
function infoKernel(full: Uint8Array) {
  return (_fd: number, request: number, arg: Uint8Array | number) => {
    if (request !== v.VFIO_IOMMU_GET_INFO || typeof arg === "number") return -Errno.ENOTTY;
    arg.set(
      fitInfoToArgsz(full, u32(arg, 0), 24, v.VFIO_IOMMU_INFO_CAPS, v.VFIO_IOMMU_TYPE1_INFO_CAP_OFFSET_AT),
    );
    return 0;
  };
}

describe("Container", () => {
  it("opens /dev/vfio/vfio and reports ENOENT naming the path", () => {
    const host = new FakeHost();
    const e = (() => {
      try {
        Container.open(host);
      } catch (err) {
        return err;
      }
    })() as SyscallError;
    expect(e).toBeInstanceOf(SyscallError);
    expect(e.errno).toBe(Errno.ENOENT);
    expect(e.message).toContain("/dev/vfio/vfio");
    expect(host.opened).toEqual(["/dev/vfio/vfio"]);
  });

  it("passes integer arguments for API version, extension check and SET_IOMMU", () => {
    const { host, c } = openContainer();
    host.onIoctl = (_fd, request, arg) =>
      request === v.VFIO_CHECK_EXTENSION ? (arg === v.VFIO_TYPE1v2_IOMMU ? 1 : 0) : 0;
    expect(c.getApiVersion()).toBe(v.VFIO_API_VERSION);
    expect(c.checkExtension(v.VFIO_TYPE1v2_IOMMU)).toBe(true);
    expect(c.checkExtension(v.VFIO_SPAPR_TCE_IOMMU)).toBe(false);
    c.setIommu(v.VFIO_TYPE1v2_IOMMU);
    expect(host.calls.map((x) => [x.fd, x.request, x.sent])).toEqual([
      [3, 0x3b64, 0],
      [3, 0x3b65, 3],
      [3, 0x3b65, 2],
      [3, 0x3b66, 3],
    ]);
  });

  it("reads type1 info with its capabilities, growing the buffer and retrying once", () => {
    const { host, c } = openContainer();
    const full = v.encodeIommuType1Info({ iovaPgsizes: 0x40201000n, caps: CAPS });
    host.onIoctl = infoKernel(full);
    const { info, caps } = c.getInfo();
    expect(host.calls.map((x) => u32(bytesOf(x), 0))).toEqual([24, full.length]);
    expect(bytesOf(host.calls[1]).length).toBe(full.length);
    expect(info.iovaPgsizes).toBe(0x40201000n);
    expect(caps).toEqual({ ...CAPS, unknown: [] });
  });

  it("reads type1 info in one call when there is no capability chain", () => {
    const { host, c } = openContainer();
    host.onIoctl = infoKernel(v.encodeIommuType1Info({ iovaPgsizes: 0x1000n }));
    expect(c.getInfo().caps).toEqual({ unknown: [] });
    expect(host.calls.length).toBe(1);
  });

  it("gives up with ProtocolError when argsz grows again or is implausible", () => {
    const { host, c } = openContainer();
    let size = 64;
    host.onIoctl = (_fd, _r, arg) => {
      const b = arg as Uint8Array;
      size += 64;
      b.set(v.encodeIommuType1Info({ iovaPgsizes: 0n }).subarray(0, 24));
      new DataView(b.buffer).setUint32(0, size, true);
      new DataView(b.buffer).setUint32(4, v.VFIO_IOMMU_INFO_CAPS, true);
      return 0;
    };
    expect(() => c.getInfo()).toThrow(/argsz grew again/);
    expect(host.calls.length).toBe(2);
    size = 1 << 24;
    expect(() => c.getInfo()).toThrow(ProtocolError);
  });

  it("turns a looping capability chain into ProtocolError with the CodecError as cause", () => {
    const { host, c } = openContainer();
    const full = v.encodeIommuType1Info({ iovaPgsizes: 0n, caps: CAPS });
    new DataView(full.buffer).setUint32(24 + 4, 24, true);
    host.onIoctl = infoKernel(full);
    const err = (() => {
      try {
        c.getInfo();
      } catch (e) {
        return e as ProtocolError;
      }
    })();
    expect(err).toBeInstanceOf(ProtocolError);
    expect(err?.cause).toBeInstanceOf(CodecError);
    expect(err?.message).toMatch(/^VFIO_IOMMU_GET_INFO \(container fd 3\): .*loops/);
  });

  it("maps DMA with the exact struct bytes and names the fields in errors", () => {
    const { host, c } = openContainer();
    host.onIoctl = () => 0;
    c.mapDma({ vaddr: 0x7f00_0000_0000n, iova: 0x10_0000n, length: 0x20_0000n });
    expect(bytesOf(host.calls[0])).toEqual(
      v.encodeDmaMap({ flags: 3, vaddr: 0x7f00_0000_0000n, iova: 0x10_0000n, length: 0x20_0000n }),
    );
    host.onIoctl = () => -Errno.EINVAL;
    const err = (() => {
      try {
        c.mapDma({ vaddr: 0x1000n, iova: 0x1000n, length: 0x1000n, flags: v.VFIO_DMA_MAP_FLAG_READ });
      } catch (e) {
        return e as IoctlError;
      }
    })()!;
    expect(err).toBeInstanceOf(IoctlError);
    expect(err.errno).toBe(Errno.EINVAL);
    expect(err.op).toBe("VFIO_IOMMU_MAP_DMA");
    expect(err.message).toMatch(
      /^VFIO_IOMMU_MAP_DMA \(container fd 3, iova 0x1000, length 0x1000, vaddr 0x1000, flags 0x1\): EINVAL \(22\): /,
    );
  });

  it("rejects values that do not fit the struct as InvalidInputError without calling the kernel", () => {
    const { host, c } = openContainer();
    expect(() => c.mapDma({ vaddr: -1n, iova: 0n, length: 1n })).toThrow(InvalidInputError);
    expect(host.calls.length).toBe(0);
  });

  it("returns the length the kernel says it unmapped", () => {
    const { host, c } = openContainer();
    host.onIoctl = (_fd, _r, arg) => {
      setU64(arg as Uint8Array, 16, 0x1000n); // a short unmap
      return 0;
    };
    expect(c.unmapDma({ iova: 0n, length: 0x4000n })).toBe(0x1000n);
  });

  it("unmaps with the dirty bitmap: vfio_bitmap points at the caller's memory, sized in whole u64 words", () => {
    const { host, c } = openContainer();
    const bitmap = new Uint8Array(16);
    host.onIoctl = (_fd, _r, arg, h) => {
      const u = v.decodeDmaUnmap(arg as Uint8Array);
      expect(u.flags).toBe(v.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP);
      expect(u.argsz).toBe(48);
      h.memoryAt(u.bitmap!.data)[0] = 0b101; // the kernel writes dirty bits in place
      return 0;
    };
    const len = c.unmapDmaWithDirtyBitmap({ iova: 0x10000n, length: 0x41000n, pageSize: 0x1000n, bitmap });
    expect(len).toBe(0x41000n);
    expect(bitmap[0]).toBe(0b101);
    const sent = v.decodeDmaUnmap(bytesOf(host.calls[0]));
    // 0x41 pages -> 65 bits -> two u64 words.
    expect(sent.bitmap).toEqual({ pageSize: 0x1000n, bitmapLength: 16n, data: host.addressOf(bitmap) });
  });

  it("refuses a bitmap too small for the range or a page size that is not a power of two", () => {
    const { host, c } = openContainer();
    const req = { iova: 0n, length: 0x41000n, pageSize: 0x1000n, bitmap: new Uint8Array(8) };
    expect(() => c.getDirtyBitmap(req)).toThrow(/too small for 65 pages \(needs 16/);
    expect(() => c.unmapDmaWithDirtyBitmap(req)).toThrow(InvalidInputError);
    expect(() => c.getDirtyBitmap({ ...req, pageSize: 3000n, bitmap: new Uint8Array(64) })).toThrow(
      /not a power of two/,
    );
    expect(() => c.getDirtyBitmap({ ...req, length: 0n })).toThrow(InvalidInputError);
    expect(host.calls.length).toBe(0);
  });

  it("starts, stops and reads IOMMU dirty tracking with VFIO_IOMMU_DIRTY_PAGES", () => {
    const { host, c } = openContainer();
    host.onIoctl = () => 0;
    const bitmap = new Uint8Array(8);
    c.startDirtyTracking();
    c.getDirtyBitmap({ iova: 0x1000n, length: 0x8000n, pageSize: 0x1000n, bitmap });
    c.stopDirtyTracking();
    expect(host.calls.map((x) => x.request)).toEqual([0x3b75, 0x3b75, 0x3b75]);
    expect(host.calls.map((x) => v.decodeDirtyBitmap(bytesOf(x)))).toEqual([
      { argsz: 8, flags: v.VFIO_IOMMU_DIRTY_PAGES_FLAG_START },
      {
        argsz: 48,
        flags: v.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
        get: {
          iova: 0x1000n,
          length: 0x8000n,
          bitmap: { pageSize: 0x1000n, bitmapLength: 8n, data: host.addressOf(bitmap) },
        },
      },
      { argsz: 8, flags: v.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP },
    ]);
    host.onIoctl = () => -Errno.EINVAL;
    expect(() => c.getDirtyBitmap({ iova: 0n, length: 0x1000n, pageSize: 0x1000n, bitmap })).toThrow(
      /^VFIO_IOMMU_DIRTY_PAGES\(GET_BITMAP\) \(container fd 3, iova 0x0, length 0x1000, pgsize 0x1000, bitmap 8 bytes\): EINVAL/,
    );
  });

  it("routes 0x3b75 by object: the container sends dirty-pages structs, the device feature structs", () => {
    const host = new FakeHost();
    host.paths.set("/dev/vfio/vfio", 3);
    const container = Container.open(host);
    const device = Device.fromFd(host, 9, "0000:00:03.0");
    const seen: string[] = [];
    host.onIoctl = (fd, request, arg) => {
      expect(request).toBe(0x3b75);
      // The kernel knows what each fd is; so does this fake.
      if (fd === 3) seen.push(`container flags ${v.decodeDirtyBitmap(arg as Uint8Array).flags}`);
      else seen.push(`device ${v.deviceFeatureOpName(v.decodeDeviceFeature(arg as Uint8Array).flags)}`);
      return 0;
    };
    container.startDirtyTracking();
    device.dmaLoggingStop();
    expect(seen).toEqual(["container flags 1", "device VFIO_DEVICE_FEATURE(SET|DMA_LOGGING_STOP)"]);
  });

  it("closes once, fails loudly on use after close, and disposes", () => {
    const { host, c } = openContainer();
    c.close();
    c.close();
    expect(host.closedFds).toEqual([3]);
    expect(() => c.getApiVersion()).toThrow(InternalError);
    const { host: h2, c: c2 } = openContainer();
    c2[Symbol.dispose]();
    expect(h2.closedFds).toEqual([3]);
    expect(c2.closed).toBe(true);
  });

  it("reports a failing close(2) as SyscallError", () => {
    const { host, c } = openContainer();
    host.closeResult = -Errno.EIO;
    expect(() => c.close()).toThrow(/^close \(container fd 3\): EIO/);
    expect(c.closed).toBe(true);
  });
});

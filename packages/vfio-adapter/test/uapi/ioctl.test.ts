import { describe, expect, it } from "vitest";
import {
  _IO,
  _IOC,
  _IOR,
  _IOW,
  _IOWR,
  decodeIoctlRequest,
  IOC_READ,
  IOC_WRITE,
} from "../../src/uapi/ioctl.ts";
import { IOMMU_DESTROY, IOMMU_HWPT_GET_DIRTY_BITMAP } from "../../src/uapi/iommufd.ts";
import {
  VFIO_DEVICE_FEATURE,
  VFIO_GET_API_VERSION,
  VFIO_IOMMU_DIRTY_PAGES,
  VFIO_MIG_GET_PRECOPY_INFO,
} from "../../src/uapi/vfio.ts";

describe("ioctl request numbers", () => {
  it("builds _IO(';', nr) as 0x3b00 + nr for VFIO and iommufd", () => {
    expect(VFIO_GET_API_VERSION).toBe(0x3b64);
    expect(VFIO_MIG_GET_PRECOPY_INFO).toBe(0x3b79);
    expect(IOMMU_DESTROY).toBe(0x3b80);
    expect(IOMMU_HWPT_GET_DIRTY_BITMAP).toBe(0x3b8c);
  });

  it("gives VFIO_IOMMU_DIRTY_PAGES and VFIO_DEVICE_FEATURE the same number (routed by fd)", () => {
    expect(VFIO_IOMMU_DIRTY_PAGES).toBe(0x3b75);
    expect(VFIO_DEVICE_FEATURE).toBe(VFIO_IOMMU_DIRTY_PAGES);
  });

  it("encodes direction and size like asm-generic (known values)", () => {
    // KVM_GET_API_VERSION = _IO(0xae, 0) and KVM_CREATE_VCPU-style numbers from the kernel.
    expect(_IO(0xae, 0x00)).toBe(0xae00);
    // _IOR('T', 0x30, unsigned int) = TIOCGPTN = 0x80045430
    expect(_IOR(0x54, 0x30, 4)).toBe(0x80045430);
    // _IOW('T', 0x31, int) = TIOCSPTLCK = 0x40045431
    expect(_IOW(0x54, 0x31, 4)).toBe(0x40045431);
    // _IOWR(0xae, 0x05, 8) with both direction bits set: top bits 0b11
    expect(_IOWR(0xae, 0x05, 8)).toBe(0xc008ae05);
    expect(_IOWR(0xae, 0x05, 8)).toBeGreaterThan(0); // unsigned, never a negative int32
  });

  it("decodes a request back into its fields", () => {
    const r = _IOC(IOC_READ | IOC_WRITE, 0x3b, 0x7f, 0x3fff);
    expect(decodeIoctlRequest(r)).toEqual({ dir: 3, type: 0x3b, nr: 0x7f, size: 0x3fff });
    expect(decodeIoctlRequest(VFIO_DEVICE_FEATURE)).toEqual({ dir: 0, type: 0x3b, nr: 117, size: 0 });
    expect(decodeIoctlRequest(_IOW(1, 2, 3)).dir).toBe(IOC_WRITE);
  });

  it("rejects fields that do not fit their bit width", () => {
    expect(() => _IO(0x100, 0)).toThrow(RangeError);
    expect(() => _IO(0x3b, 256)).toThrow(/nr 256 does not fit in 8 bits/);
    expect(() => _IOR(0x3b, 1, 1 << 14)).toThrow(/size/);
    expect(() => _IO(0x3b, -1)).toThrow(RangeError);
    expect(() => _IO(0x3b, 1.5)).toThrow(RangeError);
  });
});

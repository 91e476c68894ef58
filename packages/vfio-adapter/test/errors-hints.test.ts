// Hints per errno family: no raw errno reaches a user without its meaning.

import { describe, expect, it } from "vitest";
import { Errno, errnoHint, errnoName, IoctlError, SyscallError, VfioError } from "../src/errors.ts";

describe("errnoName", () => {
  it("names every errno in the table, and reads a negated errno the same", () => {
    for (const [name, n] of Object.entries(Errno)) {
      expect(errnoName(n)).toBe(`${name} (${n})`);
      expect(errnoName(-n)).toBe(`${name} (${n})`);
    }
    expect(errnoName(-4242)).toBe("errno 4242");
  });
});

describe("errnoHint", () => {
  it.each([
    ["VFIO_DEVICE_FEATURE(PROBE|DMA_LOGGING_START)", Errno.ENOTTY, /does not implement this call/],
    ["open", Errno.EBUSY, /most likely QEMU/],
    ["VFIO_IOMMU_DIRTY_PAGES(START)", Errno.EBUSY, /already in that state/],
    ["open", Errno.EACCES, /root.*\/dev\/vfio.*RLIMIT_MEMLOCK/],
    ["VFIO_IOMMU_MAP_DMA", Errno.EPERM, /root/],
    ["VFIO_DEVICE_FEATURE(SET|DMA_LOGGING_START)", Errno.E2BIG, /too many ranges/],
    ["VFIO_IOMMU_DIRTY_PAGES(GET_BITMAP)", Errno.E2BIG, /split it/],
    ["IOMMU_HWPT_ALLOC", Errno.EOPNOTSUPP, /cannot track dirty pages/],
    ["VFIO_DEVICE_FEATURE(SET|DMA_LOGGING_START)", Errno.EOPNOTSUPP, /narrow the ranges/],
    ["IOMMU_GET_HW_INFO", Errno.EOPNOTSUPP, /not supported/],
    ["VFIO_IOMMU_MAP_DMA", Errno.EINVAL, /fields sent.*alignment/],
    ["VFIO_IOMMU_MAP_DMA", Errno.ENOSPC, /dma_entry_limit/],
    ["VFIO_IOMMU_MAP_DMA", Errno.EEXIST, /overlaps/],
    ["IOMMU_HWPT_GET_DIRTY_BITMAP", Errno.ENOENT, /does not exist/],
    ["IOMMU_HWPT_GET_DIRTY_BITMAP", Errno.EFAULT, /please report/],
    ["VFIO_DEVICE_FEATURE(GET|DMA_LOGGING_REPORT)", Errno.EIO, /treated as lost/],
    ["pread", Errno.ENODEV, /gone/],
    ["close", Errno.EBADF, /not open/],
    ["ioctl", Errno.EINTR, /retry/],
    ["VFIO_IOMMU_MAP_DMA", Errno.EOVERFLOW, /overflows/],
    ["open", Errno.EMFILE, /RLIMIT_NOFILE/],
    ["ioctl", 4242, /dmesg/],
  ])("%s %i", (op, errno, hint) => {
    expect(errnoHint(op, errno)).toMatch(hint);
  });

  it("says which node is missing on open", () => {
    expect(errnoHint("open", Errno.ENOENT, "/dev/vfio/vfio")).toMatch(/modprobe vfio-pci/);
    expect(errnoHint("open", Errno.ENOENT, "/dev/vfio/12")).toMatch(/IOMMU group node.*bound to vfio-pci/);
    expect(errnoHint("open", Errno.ENOENT, "/dev/vfio/devices/vfio0")).toMatch(/CONFIG_VFIO_DEVICE_CDEV/);
    expect(errnoHint("open", Errno.ENOENT, "/dev/iommu")).toMatch(/CONFIG_IOMMUFD/);
    expect(errnoHint("open", Errno.ENOENT)).toMatch(/bound to vfio-pci/);
  });
});

describe("error classes", () => {
  it("SyscallError carries op, errno and target, and uses the target for its hint", () => {
    const cause = new Error("koffi");
    const e = new SyscallError("open", Errno.ENOENT, "/dev/iommu", { cause });
    expect(e).toBeInstanceOf(VfioError);
    expect(e.name).toBe("SyscallError");
    expect([e.op, e.errno, e.target, e.cause]).toEqual(["open", 2, "/dev/iommu", cause]);
    expect(e.message).toBe(
      "open (/dev/iommu): ENOENT (2): no iommufd: it needs a kernel with CONFIG_IOMMUFD (modprobe iommufd)",
    );
  });

  it("IoctlError with EINVAL names the fields that were sent", () => {
    const e = new IoctlError(
      "VFIO_IOMMU_MAP_DMA",
      Errno.EINVAL,
      "container fd 5, iova 0x1001, length 0x1000",
    );
    expect(e.message).toBe(
      "VFIO_IOMMU_MAP_DMA (container fd 5, iova 0x1001, length 0x1000): EINVAL (22): the kernel rejected the fields sent (listed in parentheses); check page alignment, flags and argsz",
    );
  });
});

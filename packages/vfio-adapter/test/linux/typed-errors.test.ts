// The typed objects over the Linux host on this machine's real kernel, as far as a machine without
// VFIO allows: every failure the real kernel gives reaches the caller as a typed error with op,
// target, errno name and a hint. Opening the VFIO and iommufd nodes fails with a clear ENOENT, and
// VFIO ioctls on a non-VFIO fd (/dev/null) come back from the real kernel as ENOTTY, named and
// explained. Real VFIO calls run in tests/vm.

import { existsSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { Errno, IoctlError, SyscallError } from "../../src/errors.ts";
import { O_CLOEXEC, O_RDWR } from "../../src/host.ts";
import { createLinuxHost } from "../../src/linux/index.ts";
import * as v from "../../src/uapi/vfio.ts";
import { Container, Device, DeviceCdev, IommuFd } from "../../src/vfio/index.ts";

const host = createLinuxHost();
afterAll(() => host[Symbol.dispose]());

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw");
}

describe.skipIf(existsSync("/dev/vfio/vfio"))("typed objects on a host without VFIO", () => {
  it("Container.open: SyscallError ENOENT that says to load vfio", () => {
    const e = thrown(() => Container.open(host));
    expect(e).toBeInstanceOf(SyscallError);
    expect((e as SyscallError).errno).toBe(Errno.ENOENT);
    expect((e as SyscallError).message).toBe(
      "open (/dev/vfio/vfio): ENOENT (2): no VFIO container node: load the vfio module (modprobe vfio-pci) and check that /dev is mounted",
    );
  });

  it.skipIf(existsSync("/dev/iommu"))("IommuFd.open: ENOENT that names CONFIG_IOMMUFD", () => {
    expect(() => IommuFd.open(host)).toThrow(/^open \(\/dev\/iommu\): ENOENT \(2\): no iommufd/);
  });

  it("IommuFd.open reports ENOENT for a missing path as SyscallError", () => {
    expect(() => IommuFd.open(host, "/dev/iommu-does-not-exist")).toThrow(SyscallError);
  });

  it("DeviceCdev.open: ENOENT that names the cdev kernel option", () => {
    expect(() => DeviceCdev.open(host, "/dev/vfio/devices/vfio0", "0000:3b:00.2")).toThrow(
      /ENOENT \(2\): no VFIO device cdev: .*CONFIG_VFIO_DEVICE_CDEV/,
    );
  });
});

describe("typed objects on a non-VFIO fd", () => {
  it("an ioctl the driver lacks is IoctlError ENOTTY naming the ioctl and the fd", () => {
    const fd = host.open("/dev/null", O_RDWR | O_CLOEXEC);
    expect(fd).toBeGreaterThanOrEqual(0);
    const container = Container.fromFd(host, fd);
    try {
      const e = thrown(() => container.getApiVersion());
      expect(e).toBeInstanceOf(IoctlError);
      expect((e as IoctlError).errno).toBe(Errno.ENOTTY);
      expect((e as IoctlError).message).toMatch(
        new RegExp(
          `^VFIO_GET_API_VERSION \\(container fd ${fd}\\): ENOTTY \\(25\\): the kernel or the device's driver`,
        ),
      );
      // VFIO_CHECK_EXTENSION takes an integer argument: also a real ENOTTY, not a coercion error.
      expect(() => container.checkExtension(3)).toThrow(IoctlError);
    } finally {
      container.close();
    }
    expect(host.close(fd)).toBe(-Errno.EBADF); // the object closed it exactly once
  });

  it("a device ioctl is ENOTTY from the real kernel, named with the device and fd; a probe is false", () => {
    const fd = host.open("/dev/null", O_RDWR);
    expect(fd).toBeGreaterThanOrEqual(0);
    const device = Device.fromFd(host, fd, "0000:00:00.0");
    try {
      const e = thrown(() => device.getInfo());
      expect(e).toBeInstanceOf(IoctlError);
      expect((e as IoctlError).errno).toBe(Errno.ENOTTY);
      expect((e as IoctlError).message).toBe(
        `VFIO_DEVICE_GET_INFO (device 0000:00:00.0 fd ${fd}): ENOTTY (25): the kernel or the device's driver does not implement this call`,
      );
      // A feature probe on a non-VFIO fd is simply "not supported".
      expect(device.featureProbe(v.VFIO_DEVICE_FEATURE_DMA_LOGGING_START, v.VFIO_DEVICE_FEATURE_SET)).toBe(
        false,
      );
    } finally {
      device.close();
    }
    expect(device.closed).toBe(true);
  });
});

// The typed objects over the Linux host on a machine without VFIO: every failure the real kernel
// gives reaches the caller as a typed error with op, target, errno name and a hint.

import { existsSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { Errno, IoctlError, SyscallError } from "../../src/errors.ts";
import { O_CLOEXEC, O_RDWR } from "../../src/host.ts";
import { createLinuxHost } from "../../src/linux/index.ts";
import { Container, DeviceCdev, IommuFd } from "../../src/vfio/index.ts";

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
});

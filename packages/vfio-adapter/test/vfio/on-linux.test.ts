// The typed objects on this machine's real kernel, as far as a machine without VFIO allows:
// opening /dev/vfio/vfio fails with a clear ENOENT, and VFIO ioctls on a non-VFIO fd (/dev/null)
// come back from the real kernel as ENOTTY, named and explained.

import { describe, expect, it } from "vitest";
import { Errno, IoctlError, SyscallError } from "../../src/errors.ts";
import { O_RDWR } from "../../src/host.ts";
import { createLinuxHost } from "../../src/linux/index.ts";
import * as v from "../../src/uapi/vfio.ts";
import { Container } from "../../src/vfio/container.ts";
import { Device } from "../../src/vfio/device.ts";
import { IommuFd } from "../../src/vfio/iommufd.ts";

const host = createLinuxHost();
const probeFd = host.open("/dev/vfio/vfio", O_RDWR);
const haveVfio = probeFd >= 0;
if (haveVfio) host.close(probeFd);

describe.skipIf(haveVfio)("typed objects on a Linux host without VFIO", () => {
  it("Container.open reports ENOENT for /dev/vfio/vfio with a hint", () => {
    let err: SyscallError | undefined;
    try {
      Container.open(host);
    } catch (e) {
      err = e as SyscallError;
    }
    expect(err).toBeInstanceOf(SyscallError);
    expect(err!.errno).toBe(Errno.ENOENT);
    expect(err!.message).toMatch(/^open \(\/dev\/vfio\/vfio\): ENOENT \(2\): /);
  });

  it("IommuFd.open reports ENOENT for a missing /dev/iommu", () => {
    expect(() => IommuFd.open(host, "/dev/iommu-does-not-exist")).toThrow(SyscallError);
  });

  it("a VFIO ioctl on /dev/null is ENOTTY from the real kernel, named with the device and fd", () => {
    const fd = host.open("/dev/null", O_RDWR);
    expect(fd).toBeGreaterThanOrEqual(0);
    const device = Device.fromFd(host, fd, "0000:00:00.0");
    try {
      let err: IoctlError | undefined;
      try {
        device.getInfo();
      } catch (e) {
        err = e as IoctlError;
      }
      expect(err).toBeInstanceOf(IoctlError);
      expect(err!.errno).toBe(Errno.ENOTTY);
      expect(err!.message).toBe(
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

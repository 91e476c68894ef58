// The VFIO device cdev path (/dev/vfio/devices/vfioN, Linux 6.6+): a device opened directly,
// bound to an iommufd and attached to an IOAS or HWPT, with no group or container.
//
//   using iommufd = IommuFd.open(host);
//   using device = DeviceCdev.open(host, "/dev/vfio/devices/vfio0", "0000:3b:00.1");
//   const devId = device.bindIommufd(iommufd);
//   const hwptId = iommufd.hwptAlloc({ devId, ptId: ioasId, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
//   device.attachIommufdPt(hwptId);

import { Errno, InvalidInputError, IoctlError } from "../errors.ts";
import type { Fd, Host } from "../host.ts";
import {
  decodeAttachIommufdPt,
  decodeBindIommufd,
  encodeAttachIommufdPt,
  encodeBindIommufd,
  encodeDetachIommufdPt,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_BIND_FLAG_TOKEN,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
} from "../uapi/vfio.ts";
import { Device } from "./device.ts";
import { openPath } from "./fd-object.ts";
import type { IommuFd } from "./iommufd.ts";

export class DeviceCdev extends Device {
  /** Opens a device cdev; `name` (the PCI address) is for messages. */
  static open(host: Host, path: string, name: string): DeviceCdev {
    return new DeviceCdev(host, openPath(host, path), name);
  }

  /** Wraps a cdev fd this object will own and close. */
  static fromCdevFd(host: Host, fd: Fd, name: string): DeviceCdev {
    return new DeviceCdev(host, fd, name);
  }

  /**
   * VFIO_DEVICE_BIND_IOMMUFD: returns the device id within `iommufd`. Sends the 24-byte struct
   * (with token_uuid_ptr, Linux 6.17+) first; a kernel that rejects that size without a token
   * (EINVAL or E2BIG) gets the 16-byte 6.6 form. A VF token needs 6.17: with `vfToken` there is
   * no fallback, since binding without it would fail anyway.
   */
  bindIommufd(iommufd: IommuFd, vfToken?: Uint8Array): number {
    const op = "VFIO_DEVICE_BIND_IOMMUFD";
    const ifd = iommufd.fd;
    if (vfToken !== undefined && vfToken.byteLength !== 16)
      throw new InvalidInputError(
        `${op} (${this.detail()}): a VF token is a 16-byte UUID, got ${vfToken.byteLength}`,
      );
    const fields = [`iommufd ${ifd}`];
    const long = this.encode(op, () =>
      encodeBindIommufd(
        vfToken
          ? { iommufd: ifd, flags: VFIO_DEVICE_BIND_FLAG_TOKEN, tokenUuidPtr: this.host.addressOf(vfToken) }
          : { iommufd: ifd },
        24,
      ),
    );
    const rc = this.tryIoctl(VFIO_DEVICE_BIND_IOMMUFD, long);
    if (rc >= 0) return this.decode(op, () => decodeBindIommufd(long)).outDevid;
    if (vfToken || (-rc !== Errno.EINVAL && -rc !== Errno.E2BIG))
      throw new IoctlError(
        op,
        -rc,
        this.detail(...fields, "argsz 24", vfToken ? "with VF token" : "flags 0"),
      );
    const short = this.encode(op, () => encodeBindIommufd({ iommufd: ifd }, 16));
    this.ioctl(op, VFIO_DEVICE_BIND_IOMMUFD, short, ...fields, "argsz 16 (after argsz 24 failed)");
    return this.decode(op, () => decodeBindIommufd(short)).outDevid;
  }

  /**
   * VFIO_DEVICE_ATTACH_IOMMUFD_PT: attaches to an IOAS or HWPT (replacing any current one).
   * Returns the HWPT id the kernel attached (for an IOAS, the one it created).
   */
  attachIommufdPt(ptId: number): number {
    const op = "VFIO_DEVICE_ATTACH_IOMMUFD_PT";
    const buf = this.encode(op, () => encodeAttachIommufdPt({ ptId }));
    this.ioctl(op, VFIO_DEVICE_ATTACH_IOMMUFD_PT, buf, `pt_id ${ptId}`);
    return this.decode(op, () => decodeAttachIommufdPt(buf)).ptId;
  }

  /** VFIO_DEVICE_DETACH_IOMMUFD_PT: the device blocks DMA afterwards. */
  detachIommufdPt(): void {
    this.ioctl("VFIO_DEVICE_DETACH_IOMMUFD_PT", VFIO_DEVICE_DETACH_IOMMUFD_PT, encodeDetachIommufdPt());
  }
}

// A VFIO group (/dev/vfio/$GROUP): viability, attaching it to a container, and device fds.
//
//   using group = Group.open(host, 12);
//   if (!group.getStatus().viable) throw ...;       // every device in the group must be bound to vfio
//   group.setContainer(container);
//   using device = group.getDevice("0000:3b:00.1");

import { InvalidInputError } from "../errors.ts";
import type { Host } from "../host.ts";
import {
  decodeGroupStatus,
  encodeDeviceName,
  encodeFdArg,
  encodeGroupStatus,
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
} from "../uapi/vfio.ts";
import type { Container } from "./container.ts";
import { Device } from "./device.ts";
import { FdObject, openPath } from "./fd-object.ts";

export interface GroupStatusFlags {
  /** VFIO_GROUP_FLAGS_* as the kernel returned them. */
  flags: number;
  /** Every device in the group is bound to a VFIO driver (or none at all). */
  viable: boolean;
  /** The group is attached to a container. */
  containerSet: boolean;
}

export class Group extends FdObject {
  /** Opens /dev/vfio/<groupId> (or `path`). */
  static open(host: Host, groupId: number, path = `/dev/vfio/${groupId}`): Group {
    if (!Number.isInteger(groupId) || groupId < 0 || groupId > 0xffff_ffff)
      throw new InvalidInputError(`IOMMU group id ${groupId} is not a non-negative integer`);
    return new Group(host, openPath(host, path), groupId);
  }

  /** Wraps an fd this object will own and close. */
  static fromFd(host: Host, fd: number, groupId: number): Group {
    return new Group(host, fd, groupId);
  }

  private constructor(
    host: Host,
    fd: number,
    /** The IOMMU group number. */
    readonly groupId: number,
  ) {
    super(host, fd, `group ${groupId}`);
  }

  /** VFIO_GROUP_GET_STATUS. */
  getStatus(): GroupStatusFlags {
    const op = "VFIO_GROUP_GET_STATUS";
    const buf = encodeGroupStatus();
    this.ioctl(op, VFIO_GROUP_GET_STATUS, buf);
    const { flags } = this.decode(op, () => decodeGroupStatus(buf));
    return {
      flags,
      viable: (flags & VFIO_GROUP_FLAGS_VIABLE) !== 0,
      containerSet: (flags & VFIO_GROUP_FLAGS_CONTAINER_SET) !== 0,
    };
  }

  /** VFIO_GROUP_SET_CONTAINER: the kernel reads the container fd through a pointer. */
  setContainer(container: Container): void {
    const fd = container.fd;
    this.ioctl("VFIO_GROUP_SET_CONTAINER", VFIO_GROUP_SET_CONTAINER, encodeFdArg(fd), `container fd ${fd}`);
  }

  /** VFIO_GROUP_UNSET_CONTAINER: all device fds of the group must be closed first. */
  unsetContainer(): void {
    this.ioctl("VFIO_GROUP_UNSET_CONTAINER", VFIO_GROUP_UNSET_CONTAINER, 0);
  }

  /**
   * VFIO_GROUP_GET_DEVICE_FD: a Device for `name` (the sysfs name, "0000:3b:00.1"). The caller
   * owns the returned Device and must close it.
   */
  getDevice(name: string): Device {
    const op = "VFIO_GROUP_GET_DEVICE_FD";
    if (typeof name !== "string" || name.length === 0 || name.length > 255 || /[\0/]/.test(name))
      throw new InvalidInputError(`${op} (${this.detail()}): device name ${JSON.stringify(name)} is invalid`);
    const fd = this.ioctl(op, VFIO_GROUP_GET_DEVICE_FD, encodeDeviceName(name), `device ${name}`);
    return Device.fromFd(this.host, fd, name);
  }
}

// @vfio-dirty/vfio-adapter: the public surface, nothing else.

export {
  Errno,
  errnoHint,
  errnoName,
  InternalError,
  InvalidInputError,
  IoctlError,
  ProtocolError,
  SyscallError,
  UnsupportedError,
  VfioError,
} from "./errors.ts";
export type { Fd, Host, HostFactory, IoctlArg, MappedMemory, SysfsReader } from "./host.ts";
export { O_CLOEXEC, O_RDONLY, O_RDWR, O_WRONLY } from "./host.ts";
export type { IommuHardware } from "./iommu-hw.ts";
export { decodeAmdFeatures, decodeIntelEcap } from "./iommu-hw.ts";
export type { PciAddress } from "./pci-address.ts";
export { formatPciAddress, isPciAddress, parsePciAddress } from "./pci-address.ts";
export type { IommuGroup, IommuUnit, PciDevice, VfioCdev } from "./sysfs.ts";
export {
  findPciDevice,
  isVfioPciDriver,
  listIommuUnits,
  listPciDevices,
  listVfioDevices,
  readIommuUnit,
} from "./sysfs.ts";
export { checkSysfsPath } from "./sysfs-path.ts";
export * as uapi from "./uapi/index.ts";
export {
  Container,
  Device,
  DeviceCdev,
  type DirtyBitmapRequest,
  Group,
  type GroupStatusFlags,
  IommuFd,
  type PrecopyEstimate,
} from "./vfio/index.ts";
// backends: "@vfio-dirty/vfio-adapter/linux" | "@vfio-dirty/vfio-adapter/sim"

// Typed VFIO and iommufd objects over any Host: one method per ioctl, explicit lifetimes.

export { DeviceCdev } from "./cdev.ts";
export { Container, type DirtyBitmapRequest, MAX_IOMMU_INFO_ARGSZ } from "./container.ts";
export { Device, MAX_REGION_INFO_ARGSZ, type PrecopyEstimate } from "./device.ts";
export { FdObject } from "./fd-object.ts";
export { Group, type GroupStatusFlags } from "./group.ts";
export { INITIAL_IOVA_RANGES, IommuFd, MAX_IOVA_RANGES } from "./iommufd.ts";

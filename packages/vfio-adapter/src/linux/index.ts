// @vfio-dirty/vfio-adapter/linux: the koffi-backed Linux host. Only this subpath loads koffi.

export { createDirSysfsReader } from "./dir-sysfs.ts";
export type { LinuxHost, LinuxHostOptions } from "./linux-host.ts";
export { createLinuxHost } from "./linux-host.ts";

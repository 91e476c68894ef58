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
export * as uapi from "./uapi/index.ts";
// backends: "@vfio-dirty/vfio-adapter/linux" | "@vfio-dirty/vfio-adapter/sim"

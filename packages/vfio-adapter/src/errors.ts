// Typed errors for every way a syscall or a capability can fail.
//
// Every message names the operation, the fd or device, the errno by name and number, and a hint
// a person can act on:
//   VFIO_DEVICE_FEATURE(SET|DMA_LOGGING_START) (device 0000:3b:00.1 fd 7, 5 ranges): E2BIG (7):
//   too many ranges for this device; merge ranges and retry
// Callers match on the class and on `errno`, never on message text.

export class VfioError extends Error {
  override name = this.constructor.name;
}

/** Linux errno numbers vfio-dirty meets (asm-generic/errno-base.h and errno.h, x86-64 and arm64). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENOSPC: 28,
  ENOTTY: 25,
  ERANGE: 34,
  ENOSYS: 38,
  EOVERFLOW: 75,
  EMSGSIZE: 90,
  EOPNOTSUPP: 95,
} as const;
export type ErrnoName = keyof typeof Errno;

const NAMES = new Map<number, ErrnoName>(Object.entries(Errno).map(([k, v]) => [v, k as ErrnoName]));

/** "EINVAL (22)"; unknown numbers stay readable as "errno 123". */
export function errnoName(errno: number): string {
  const name = NAMES.get(errno);
  return name ? `${name} (${errno})` : `errno ${errno}`;
}

/**
 * What a person can do about an errno from a given operation. Operation-specific hints win over
 * the generic ones, because ENOTTY from a feature probe means something else than ENOTTY from open.
 */
export function errnoHint(op: string, errno: number): string {
  if (errno === Errno.ENOTTY) return "the kernel or the device's driver does not implement this call";
  if (errno === Errno.EBUSY && op.startsWith("open"))
    return "another process (most likely QEMU) holds the group or device; stop it or use a free device";
  if (errno === Errno.EBUSY) return "already in that state (tracking started twice?) or held by another user";
  if (errno === Errno.EACCES || errno === Errno.EPERM)
    return "run as root or grant access to /dev/vfio (and raise RLIMIT_MEMLOCK for DMA mappings)";
  if (errno === Errno.ENOENT && op.startsWith("open"))
    return "no such node: is the device bound to vfio-pci and the vfio module loaded?";
  if (errno === Errno.E2BIG && op.includes("DMA_LOGGING_START"))
    return "too many ranges for this device; merge neighbouring ranges and retry";
  if (errno === Errno.EOPNOTSUPP && op.includes("HWPT_ALLOC"))
    return "this IOMMU cannot track dirty pages; use device logging or another strategy";
  if (errno === Errno.EOPNOTSUPP && op.includes("DMA_LOGGING_START"))
    return "the device cannot log this address span; narrow the ranges";
  if (errno === Errno.EINVAL)
    return "the kernel rejected the fields sent (listed above); check alignment and flags";
  if (errno === Errno.ENOMEM) return "the kernel is out of memory for this request; use smaller windows";
  if (errno === Errno.ENOSPC) return "the IOMMU's mapping limit was reached (dma_entry_limit)";
  if (errno === Errno.EFAULT)
    return "a buffer address handed to the kernel is not valid memory (a bug: please report)";
  if (errno === Errno.EIO) return "the device failed; its dirty log must be treated as lost";
  return "see the kernel log (dmesg) for details";
}

/** A failed syscall other than ioctl: open, close, pread, pwrite, mmap. */
export class SyscallError extends VfioError {
  constructor(
    readonly op: string,
    readonly errno: number,
    readonly target: string,
    opts?: ErrorOptions,
  ) {
    super(`${op} (${target}): ${errnoName(errno)}: ${errnoHint(op, errno)}`, opts);
  }
}

/** A failed ioctl: op is the kernel's name, e.g. "VFIO_DEVICE_FEATURE(SET|DMA_LOGGING_START)". */
export class IoctlError extends VfioError {
  constructor(
    readonly op: string,
    readonly errno: number,
    /** The fd or device and the fields sent: "device 0000:00:03.0 fd 7, iova 0x1000, length 0x2000". */
    readonly detail: string,
    opts?: ErrorOptions,
  ) {
    super(`${op} (${detail}): ${errnoName(errno)}: ${errnoHint(op, errno)}`, opts);
  }
}

/** A capability is missing; the caller may fall back to a weaker strategy. */
export class UnsupportedError extends VfioError {}

/** Input from outside (a PCI address, a size, a profile) is malformed. */
export class InvalidInputError extends VfioError {}

/** The kernel answered with bytes that break the uAPI's rules (a capability chain that loops). */
export class ProtocolError extends VfioError {}

/** A bug in vfio-dirty; the CLI asks the user to report it. */
export class InternalError extends VfioError {}

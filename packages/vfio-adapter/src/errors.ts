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
  ESRCH: 3,
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
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOTTY: 25,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ELOOP: 40,
  ENOMSG: 42,
  EOVERFLOW: 75,
  EBADFD: 77,
  EMSGSIZE: 90,
  EOPNOTSUPP: 95,
  ETIMEDOUT: 110,
} as const;
export type ErrnoName = keyof typeof Errno;

const NAMES = new Map<number, ErrnoName>(Object.entries(Errno).map(([k, v]) => [v, k as ErrnoName]));

/** "EINVAL (22)"; unknown numbers stay readable as "errno 123". A negated errno (-22) reads the same. */
export function errnoName(errno: number): string {
  const n = Math.abs(errno);
  const name = NAMES.get(n);
  return name ? `${name} (${n})` : `errno ${n}`;
}

/**
 * What a person can do about an errno from a given operation. Operation-specific hints win over
 * the generic ones, because ENOTTY from a feature probe means something else than ENOTTY from open.
 * `target` (the path or fd the call was made on) sharpens hints for open: a missing /dev/iommu and
 * a missing /dev/vfio/vfio have different fixes.
 */
export function errnoHint(op: string, errno: number, target = ""): string {
  errno = Math.abs(errno);
  const isOpen = op.startsWith("open");
  switch (errno) {
    case Errno.ENOTTY:
      return "the kernel or the device's driver does not implement this call";
    case Errno.EBUSY:
      if (isOpen)
        return "another process (most likely QEMU) holds the group or device; stop it or use a free device";
      return "already in that state (tracking started twice?) or held by another user";
    case Errno.EACCES:
    case Errno.EPERM:
      return "run as root or grant access to /dev/vfio (and raise RLIMIT_MEMLOCK for DMA mappings)";
    case Errno.ENOENT:
      if (isOpen) return openNoEntHint(target);
      return "no such object: the id or range named does not exist (already destroyed or unmapped?)";
    case Errno.E2BIG:
      if (op.includes("DMA_LOGGING_START"))
        return "too many ranges for this device; merge neighbouring ranges and retry";
      return "the request is larger than the kernel accepts; split it into smaller pieces";
    case Errno.EOPNOTSUPP:
      if (op.includes("HWPT_ALLOC"))
        return "this IOMMU cannot track dirty pages; use device logging or another strategy";
      if (op.includes("DMA_LOGGING_START"))
        return "the device cannot log this address span; narrow the ranges";
      return "not supported by this kernel, IOMMU or device; a weaker strategy may still work";
    case Errno.EINVAL:
      return "the kernel rejected the fields sent (listed in parentheses); check page alignment, flags and argsz";
    case Errno.ENOMEM:
      return "the kernel is out of memory for this request; use smaller windows";
    case Errno.ENOSPC:
      return "the IOMMU's mapping limit was reached (dma_entry_limit)";
    case Errno.EFAULT:
      return "a buffer address handed to the kernel is not valid memory (a bug: please report)";
    case Errno.EIO:
      return "the device failed; its dirty log must be treated as lost";
    case Errno.ENODEV:
    case Errno.ENXIO:
      return "the device is gone or has no such region (unbound, reset or hot-removed?)";
    case Errno.EBADF:
      return "the fd is not open (used after close: a bug, please report)";
    case Errno.EINTR:
    case Errno.EAGAIN:
      return "the call was interrupted or would block; retry it";
    case Errno.EEXIST:
      return "already exists: the range overlaps an existing mapping";
    case Errno.EOVERFLOW:
    case Errno.ERANGE:
      return "a value is out of the kernel's range (iova + length overflows, or an unsupported page size)";
    case Errno.EMFILE:
    case Errno.ENFILE:
      return "too many open files; close unused devices or raise RLIMIT_NOFILE";
    case Errno.ENOSYS:
      return "the kernel lacks this system call";
    default:
      return "see the kernel log (dmesg) for details";
  }
}

/** A failed syscall other than ioctl: open, close, pread, pwrite, mmap. */
export class SyscallError extends VfioError {
  constructor(
    readonly op: string,
    readonly errno: number,
    readonly target: string,
    opts?: ErrorOptions,
  ) {
    super(`${op} (${target}): ${errnoName(errno)}: ${errnoHint(op, errno, target)}`, opts);
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

// --- Internal helpers ---

// ENOENT from open names a missing node; which node says which kernel feature or module is missing.
function openNoEntHint(target: string): string {
  if (target.includes("/dev/vfio/devices/"))
    return "no VFIO device cdev: it needs a kernel with CONFIG_VFIO_DEVICE_CDEV (6.6+) and the device bound to vfio-pci";
  if (target.includes("/dev/iommu"))
    return "no iommufd: it needs a kernel with CONFIG_IOMMUFD (modprobe iommufd)";
  if (target.includes("/dev/vfio/vfio"))
    return "no VFIO container node: load the vfio module (modprobe vfio-pci) and check that /dev is mounted";
  if (target.includes("/dev/vfio/"))
    return "no such IOMMU group node: is the device bound to vfio-pci (or a variant driver)?";
  return "no such node: is the device bound to vfio-pci and the vfio module loaded?";
}

// The Linux Host: the kernel's syscalls through koffi, with the kernel's bytes passed unchanged.
//
// Kernel conventions throughout: each call returns its result or -errno and never throws for a
// failed syscall (the typed objects in src/vfio/ turn -errno into IoctlError). Arguments that libc
// could silently misread are refused here before any syscall, with the errno the kernel would give:
// a path with a NUL byte would be truncated by C (opening a different file), a non-integer fd or a
// negative offset would be coerced by the FFI layer.
//
//   using host = createLinuxHost();
//   const fd = host.open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);   // -ENOENT without the vfio module
//   const mem = host.mmapAnonymous(2n << 20n);                    // zeroed, page-aligned DMA buffer
//   host.munmap(mem);

import { Errno, InvalidInputError, SyscallError } from "../errors.ts";
import type { Fd, Host, IoctlArg, MappedMemory, SysfsReader } from "../host.ts";
import { createDirSysfsReader } from "./dir-sysfs.ts";
import { findHolders } from "./holders.ts";
import {
  loadLibc,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  nativeView,
  PROT_READ,
  PROT_WRITE,
  viewAddress,
} from "./libc.ts";

export interface LinuxHostOptions {
  /** Where sysfs is mounted; default "/sys". Ignored when `sysfs` is given. */
  sysfsRoot?: string;
  /** A ready SysfsReader (tests hand in a fixture tree). */
  sysfs?: SysfsReader;
  /** The C library to bind; default "libc.so.6" (glibc). */
  libc?: string;
  /** Where procfs is mounted, for holders(); default "/proc" (tests hand in a fixture tree). */
  procRoot?: string;
}

/** The Linux host. Disposing it unmaps memory from mmapAnonymous that is still mapped. */
export interface LinuxHost extends Host, Disposable {
  /** The host page size in bytes (getpagesize(2)). */
  readonly pageSize: bigint;
}

/** Creates the Linux Host: libc through koffi, sysfs from a directory (default /sys). */
export function createLinuxHost(opts: LinuxHostOptions = {}): LinuxHost {
  const libc = loadLibc(opts.libc);
  const sysfs = opts.sysfs ?? createDirSysfsReader(opts.sysfsRoot ?? "/sys");
  const pageSize = BigInt(libc.getpagesize());
  // Live mappings by address. munmap only ever unmaps what mmapAnonymous returned, so a stale or
  // forged MappedMemory can never unmap memory that something else (V8, wasm) now owns.
  const mappings = new Map<bigint, LiveMapping>();

  const unmap = (address: bigint, m: LiveMapping): number => {
    const rc = libc.munmap(address, Number(m.length));
    if (rc < 0) return -libc.errno();
    m.unmapped = true;
    mappings.delete(address);
    return 0;
  };

  return {
    name: "linux",
    simulated: false,
    pageSize,
    sysfs,

    holders: (path) => findHolders(path, opts.procRoot),

    open(path: string, flags: number): number {
      if (typeof path !== "string" || path.includes("\0")) return -Errno.EINVAL;
      if (!isInt32(flags)) return -Errno.EINVAL;
      const fd = libc.open(path, flags, 0);
      return fd < 0 ? -libc.errno() : fd;
    },

    close(fd: Fd): number {
      if (!isFd(fd)) return -Errno.EBADF;
      const rc = libc.close(fd);
      return rc < 0 ? -libc.errno() : rc;
    },

    ioctl(fd: Fd, request: number, arg: IoctlArg): number {
      if (!isFd(fd)) return -Errno.EBADF;
      // ioctl numbers are 32-bit (_IOC packs dir, size, type and nr into an unsigned int).
      if (!Number.isInteger(request) || request < 0 || request > 0xffff_ffff) return -Errno.EINVAL;
      let rc: number;
      if (typeof arg === "number") {
        if (!Number.isSafeInteger(arg) || arg < 0) return -Errno.EINVAL;
        rc = libc.ioctlInt(fd, request, arg);
      } else if (arg instanceof Uint8Array) {
        rc = libc.ioctlPtr(fd, request, arg);
      } else {
        return -Errno.EINVAL;
      }
      return rc < 0 ? -libc.errno() : rc;
    },

    pread(fd: Fd, buf: Uint8Array, offset: bigint): number {
      if (!isFd(fd)) return -Errno.EBADF;
      if (!(buf instanceof Uint8Array) || !isOffset(offset)) return -Errno.EINVAL;
      const n = Number(libc.pread(fd, buf, buf.byteLength, offset));
      return n < 0 ? -libc.errno() : n;
    },

    pwrite(fd: Fd, buf: Uint8Array, offset: bigint): number {
      if (!isFd(fd)) return -Errno.EBADF;
      if (!(buf instanceof Uint8Array) || !isOffset(offset)) return -Errno.EINVAL;
      const n = Number(libc.pwrite(fd, buf, buf.byteLength, offset));
      return n < 0 ? -libc.errno() : n;
    },

    read(fd: Fd, buf: Uint8Array): number {
      if (!isFd(fd)) return -Errno.EBADF;
      if (!(buf instanceof Uint8Array)) return -Errno.EINVAL;
      const n = Number(libc.read(fd, buf, buf.byteLength));
      return n < 0 ? -libc.errno() : n;
    },

    write(fd: Fd, buf: Uint8Array): number {
      if (!isFd(fd)) return -Errno.EBADF;
      if (!(buf instanceof Uint8Array)) return -Errno.EINVAL;
      const n = Number(libc.write(fd, buf, buf.byteLength));
      return n < 0 ? -libc.errno() : n;
    },

    addressOf(view: ArrayBufferView): bigint {
      if (!ArrayBuffer.isView(view))
        throw new InvalidInputError("addressOf needs a typed array, DataView or Buffer");
      const address = viewAddress(view);
      // koffi gives 0 for a view whose buffer was detached (wasm memory.grow) or holds no memory.
      // Handing the kernel address 0 would be EFAULT at best; say what went wrong instead.
      if (address === 0n)
        throw new InvalidInputError(
          "addressOf: the view has no memory (detached by WebAssembly memory.grow, or empty); derive it again",
        );
      return address;
    },

    mmapAnonymous(length: bigint): MappedMemory {
      if (typeof length !== "bigint" || length <= 0n || length > MAX_MAPPING)
        throw new InvalidInputError(
          `mmapAnonymous: length must be a bigint between 1 and ${MAX_MAPPING} bytes, got ${String(length)}`,
        );
      // mmap rounds up to whole pages anyway; round here so `length` says what was really mapped.
      const rounded = ((length + pageSize - 1n) / pageSize) * pageSize;
      const result = BigInt(
        libc.mmap(0n, Number(rounded), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n),
      );
      if (result === -1n) {
        const errno = libc.errno();
        throw new SyscallError("mmap", errno, `anonymous, length 0x${rounded.toString(16)}`);
      }
      const m: LiveMapping = { length: rounded, bytes: undefined, unmapped: false };
      try {
        m.bytes = new Uint8Array(nativeView(result, Number(rounded)));
      } catch (cause) {
        libc.munmap(result, Number(rounded));
        throw new SyscallError("mmap", Errno.ENOMEM, `view of 0x${rounded.toString(16)} bytes`, { cause });
      }
      mappings.set(result, m);
      return mappedMemory(result, m);
    },

    munmap(mem: MappedMemory): number {
      const m = mem ? mappings.get(mem.address) : undefined;
      if (!m || m.length !== mem.length) return -Errno.EINVAL;
      return unmap(mem.address, m);
    },

    [Symbol.dispose]() {
      for (const [address, m] of [...mappings]) unmap(address, m);
    },
  };
}

// --- Internal helpers ---

interface LiveMapping {
  readonly length: bigint;
  bytes: Uint8Array | undefined;
  unmapped: boolean;
}

// 4 GiB: koffi 3.3.4's view() of more than 4 GiB aborts the whole process (a fatal N-API error
// on Node 20, checked with 5 GiB), so larger buffers must be mapped in pieces. Remove when koffi
// handles views beyond 2^32 bytes.
const MAX_MAPPING = 1n << 32n;

// `bytes` is a getter so that using memory after munmap throws instead of crashing the process:
// the ArrayBuffer koffi.view returns cannot be detached, and touching an unmapped page is SIGSEGV.
// A view obtained before munmap and kept is, as in C, the caller's bug.
function mappedMemory(address: bigint, m: LiveMapping): MappedMemory {
  return Object.freeze({
    address,
    length: m.length,
    get bytes(): Uint8Array {
      if (m.unmapped || !m.bytes)
        throw new InvalidInputError(`memory at 0x${address.toString(16)} was unmapped; map it again`);
      return m.bytes;
    },
  });
}

function isFd(fd: number): boolean {
  return Number.isInteger(fd) && fd >= 0 && fd <= 0x7fff_ffff;
}

function isInt32(n: number): boolean {
  return Number.isInteger(n) && n >= -0x8000_0000 && n <= 0x7fff_ffff;
}

function isOffset(offset: bigint): boolean {
  return typeof offset === "bigint" && offset >= 0n && offset <= 0x7fff_ffff_ffff_ffffn;
}

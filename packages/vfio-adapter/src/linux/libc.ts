// koffi bindings to the handful of libc calls the Linux host makes, and nothing else.
//
// Each binding returns the raw C result; `errno` is read with koffi.errno() by the caller right
// after the call, before any other FFI call can overwrite it. ioctl(2) is variadic in C; we bind it
// twice with fixed prototypes (pointer and integer third argument). On x86-64 and arm64 Linux a
// fixed-prototype call passes the argument in the same register as a variadic one, and glibc's
// ioctl only forwards it to the syscall, so this is exact (koffi's variadic calls re-parse types on
// every call, which is slower on the query path).
//
//   const libc = loadLibc();
//   const rc = libc.ioctlPtr(fd, request, bytes);
//   const errno = rc < 0 ? koffi.errno() : 0;

import koffi from "koffi";
import { UnsupportedError } from "../errors.ts";

/** The libc calls vfio-dirty makes. Pointers are bigint addresses or typed arrays koffi pins for the call. */
export interface Libc {
  open(path: string, flags: number, mode: number): number;
  close(fd: number): number;
  /** ioctl with struct bytes: the kernel reads and writes `arg` in place. */
  ioctlPtr(fd: number, request: number, arg: Uint8Array): number;
  /** ioctl with a plain integer argument (VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU). */
  ioctlInt(fd: number, request: number, arg: number): number;
  pread(fd: number, buf: Uint8Array, count: number, offset: bigint): number | bigint;
  pwrite(fd: number, buf: Uint8Array, count: number, offset: bigint): number | bigint;
  read(fd: number, buf: Uint8Array, count: number): number | bigint;
  write(fd: number, buf: Uint8Array, count: number): number | bigint;
  /** Returns the address, or -1 (MAP_FAILED). */
  mmap(
    addr: bigint,
    length: number,
    prot: number,
    flags: number,
    fd: number,
    offset: bigint,
  ): number | bigint;
  munmap(addr: bigint, length: number): number;
  getpagesize(): number;
  /** errno as left by the last call through koffi. */
  errno(): number;
}

/** mmap(2) constants (Linux, all architectures vfio-dirty builds for). */
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;

/**
 * Loads libc once per library name; later calls share the bindings. Throws UnsupportedError when
 * the library or one of its symbols cannot be loaded (a non-glibc system, a wrong name).
 */
export function loadLibc(name = "libc.so.6"): Libc {
  let libc = loaded.get(name);
  if (!libc) {
    try {
      libc = bind(name);
    } catch (cause) {
      throw new UnsupportedError(
        `cannot bind ${name} through koffi (${(cause as Error).message}); the Linux host needs glibc`,
        { cause },
      );
    }
    loaded.set(name, libc);
  }
  return libc;
}

/** The raw address koffi sees for a view (includes a subarray's byteOffset); 0n for detached views. */
export function viewAddress(view: ArrayBufferView): bigint {
  return koffi.address(view);
}

/** An ArrayBuffer over native memory, without copying. */
export function nativeView(address: bigint, length: number): ArrayBuffer {
  return koffi.view(address, length);
}

// --- Internal helpers ---

const loaded = new Map<string, Libc>();

function bind(name: string): Libc {
  const lib = koffi.load(name);
  // intptr_t / int64_t for ssize_t and off_t: koffi has no ssize_t, and both are 64-bit on the
  // LP64 targets we build for.
  const open = lib.func("int open(const char *path, int flags, uint32_t mode)");
  const close = lib.func("int close(int fd)");
  const ioctlPtr = lib.func("ioctl", "int", ["int", "unsigned long", "void *"]);
  const ioctlInt = lib.func("ioctl", "int", ["int", "unsigned long", "unsigned long"]);
  const pread = lib.func("intptr_t pread(int fd, void *buf, size_t count, int64_t offset)");
  const pwrite = lib.func("intptr_t pwrite(int fd, const void *buf, size_t count, int64_t offset)");
  const read = lib.func("intptr_t read(int fd, void *buf, size_t count)");
  const write = lib.func("intptr_t write(int fd, const void *buf, size_t count)");
  const mmap = lib.func(
    "intptr_t mmap(intptr_t addr, size_t length, int prot, int flags, int fd, int64_t offset)",
  );
  const munmap = lib.func("int munmap(intptr_t addr, size_t length)");
  const getpagesize = lib.func("int getpagesize(void)");
  return {
    open: (path, flags, mode) => open(path, flags, mode),
    close: (fd) => close(fd),
    ioctlPtr: (fd, request, arg) => ioctlPtr(fd, request, arg),
    ioctlInt: (fd, request, arg) => ioctlInt(fd, request, arg),
    pread: (fd, buf, count, offset) => pread(fd, buf, count, offset),
    pwrite: (fd, buf, count, offset) => pwrite(fd, buf, count, offset),
    read: (fd, buf, count) => read(fd, buf, count),
    write: (fd, buf, count) => write(fd, buf, count),
    mmap: (addr, length, prot, flags, fd, offset) => mmap(addr, length, prot, flags, fd, offset),
    munmap: (addr, length) => munmap(addr, length),
    getpagesize: () => getpagesize(),
    errno: () => koffi.errno(),
  };
}

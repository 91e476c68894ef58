// The Host: the one syscall surface every part of vfio-dirty above the uAPI layer talks to.
//
// It is a syscall surface, not one method per ioctl. The typed objects in src/vfio/ encode the
// kernel's struct bytes once (src/uapi/) and hand the very same bytes to whichever backend is in
// use: src/linux/ passes them to libc through koffi, src/sim/ decodes them with the same uAPI
// codecs and answers as the kernel would. So the simulated kernel sees what the real one would,
// and every codec is exercised on both paths.
//
// Conventions, kernel style: calls return a non-negative result or a negative errno and never
// throw for a failed syscall. The typed objects turn a negative result into an IoctlError that
// names the operation, the fd and the fields sent (see errors.ts).
//
//   const host = createLinuxHost();              // or createSimHost(profile)
//   const fd = host.open("/dev/vfio/vfio", O_RDWR);
//   const buf = encodeSomething(...);             // struct bytes, argsz set
//   const rc = host.ioctl(fd, VFIO_GET_API_VERSION, 0);

/** A file descriptor, as the kernel numbers it (the sim numbers its own). */
export type Fd = number;

/** open(2) flags used by vfio-dirty; values are Linux x86-64/arm64 ones. */
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CLOEXEC = 0o2000000;

/** An ioctl argument: struct bytes the kernel reads and may write back in place, or a plain integer. */
export type IoctlArg = Uint8Array | number;

/** Anonymous memory from mmap(2): a DMA buffer a device can be given. */
export interface MappedMemory {
  /** The address the kernel sees (the sim's own address space on the simulated host). */
  readonly address: bigint;
  /** Length in bytes, a multiple of the host page size. */
  readonly length: bigint;
  /** The same memory as bytes. Writes through the view are what the device and kernel see. */
  readonly bytes: Uint8Array;
}

/**
 * Read-only view of a sysfs tree. Paths are relative to the sysfs root ("bus/pci/devices"), use
 * "/" separators and never contain "..": implementations reject such paths, resolve symlinks and
 * refuse any target outside the root. Missing entries are `undefined`, never an exception.
 */
export interface SysfsReader {
  /** Contents of a sysfs attribute with the trailing newline removed, or undefined. */
  readFile(path: string): string | undefined;
  /** Entry names of a directory, sorted, or undefined when it is not one. */
  readdir(path: string): string[] | undefined;
  /** The link target, resolved to a root-relative path, or undefined when it is not a symlink. */
  readlink(path: string): string | undefined;
  /** True when the path exists (after resolving links, inside the root). */
  exists(path: string): boolean;
}

export interface Host {
  /** "linux" or "sim:<profile name>": shown to users on the first line of human output. */
  readonly name: string;
  /** True for the simulated host. Only presentation may depend on it, never tracking logic. */
  readonly simulated: boolean;

  /** open(2). Returns an fd or -errno. */
  open(path: string, flags: number): number;
  /** close(2). Returns 0 or -errno. */
  close(fd: Fd): number;
  /** ioctl(2). Struct bytes are read and written in place. Returns the kernel's result (>= 0) or -errno. */
  ioctl(fd: Fd, request: number, arg: IoctlArg): number;
  /** pread(2) into `buf`. Returns bytes read or -errno. */
  pread(fd: Fd, buf: Uint8Array, offset: bigint): number;
  /** pwrite(2) from `buf`. Returns bytes written or -errno. */
  pwrite(fd: Fd, buf: Uint8Array, offset: bigint): number;
  /**
   * read(2) into `buf` at the file's own position: streams with no offsets, such as a migration
   * data fd (where pread is ESPIPE). Returns bytes read (0 at the end of the stream) or -errno.
   */
  read(fd: Fd, buf: Uint8Array): number;
  /** write(2) from `buf` at the file's own position (a migration data fd in RESUMING). */
  write(fd: Fd, buf: Uint8Array): number;

  /**
   * The address the kernel will see for the first byte of `view` (a typed array, a subarray of wasm
   * memory, a Buffer). Struct fields such as `data` and `ranges` carry these addresses; the kernel
   * then reads and writes that memory in place, with no copy. On the sim the address is in its own
   * address space and only memory handed to addressOf (or from mmapAnonymous) is valid; anything
   * else is EFAULT, as in the kernel.
   *
   * After WebAssembly `memory.grow()` old views are detached: derive views and addresses again.
   */
  addressOf(view: ArrayBufferView): bigint;

  /** Anonymous, zeroed, read-write memory (mmap MAP_PRIVATE|MAP_ANONYMOUS). Throws SyscallError on failure. */
  mmapAnonymous(length: bigint): MappedMemory;
  /** munmap(2) of memory from mmapAnonymous. Returns 0 or -errno. */
  munmap(mem: MappedMemory): number;

  /** The host's sysfs, read-only. */
  readonly sysfs: SysfsReader;

  /**
   * Other processes that hold `path` (a /dev/vfio group or cdev node) open, or undefined when the
   * host cannot tell (not allowed to look at other processes). Optional: a host without it cannot
   * tell either. Lets a tool refuse a device a VMM is using before it opens anything.
   */
  holders?(path: string): { pid: number; command: string }[] | undefined;
}

/** Builds a Host from backend options (cf. unstorage's DriverFactory). */
export type HostFactory<Opts> = (opts: Opts) => Host;

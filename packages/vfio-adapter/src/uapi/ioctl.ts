// ioctl request numbers, built the way the kernel's include/uapi/asm-generic/ioctl.h builds them.
//
// A request packs four fields: nr (8 bits), type (8 bits), argument size (14 bits) and direction
// (2 bits). VFIO and iommufd use plain _IO(';', nr) for every ioctl: the size and direction are
// carried inside the struct (argsz / size), so a request is just 0x3b00 + nr.
//
//   const VFIO_GET_API_VERSION = _IO(VFIO_TYPE, VFIO_BASE + 0); // 0x3b64
//
// Only the asm-generic layout is modelled (x86-64, arm64, riscv64); powerpc, mips and sparc use
// other bit widths, and vfio-dirty does not build for them.

/** Width of the nr field (asm-generic _IOC_NRBITS). */
export const IOC_NRBITS = 8;
/** Width of the type field (_IOC_TYPEBITS). */
export const IOC_TYPEBITS = 8;
/** Width of the size field (_IOC_SIZEBITS). */
export const IOC_SIZEBITS = 14;
/** Width of the direction field (_IOC_DIRBITS). */
export const IOC_DIRBITS = 2;

export const IOC_NRSHIFT = 0;
export const IOC_TYPESHIFT = IOC_NRSHIFT + IOC_NRBITS;
export const IOC_SIZESHIFT = IOC_TYPESHIFT + IOC_TYPEBITS;
export const IOC_DIRSHIFT = IOC_SIZESHIFT + IOC_SIZEBITS;

/** No data transfer (_IOC_NONE). */
export const IOC_NONE = 0;
/** Userspace writes, kernel reads (_IOC_WRITE). */
export const IOC_WRITE = 1;
/** Kernel writes, userspace reads (_IOC_READ). */
export const IOC_READ = 2;

/** _IOC(dir, type, nr, size): the raw encoder. Returns an unsigned 32-bit number. */
export function _IOC(dir: number, type: number, nr: number, size: number): number {
  checkField("dir", dir, IOC_DIRBITS);
  checkField("type", type, IOC_TYPEBITS);
  checkField("nr", nr, IOC_NRBITS);
  checkField("size", size, IOC_SIZEBITS);
  return (
    ((dir << IOC_DIRSHIFT) | (type << IOC_TYPESHIFT) | (nr << IOC_NRSHIFT) | (size << IOC_SIZESHIFT)) >>> 0
  );
}

/** _IO(type, nr): an ioctl with no size encoded in the request. */
export function _IO(type: number, nr: number): number {
  return _IOC(IOC_NONE, type, nr, 0);
}

/** _IOR(type, nr, sizeof(T)): the kernel writes a T. */
export function _IOR(type: number, nr: number, size: number): number {
  return _IOC(IOC_READ, type, nr, size);
}

/** _IOW(type, nr, sizeof(T)): the kernel reads a T. */
export function _IOW(type: number, nr: number, size: number): number {
  return _IOC(IOC_WRITE, type, nr, size);
}

/** _IOWR(type, nr, sizeof(T)): both directions. */
export function _IOWR(type: number, nr: number, size: number): number {
  return _IOC(IOC_READ | IOC_WRITE, type, nr, size);
}

/** The fields of a request number, for error messages and the simulated kernel's dispatch. */
export function decodeIoctlRequest(request: number): { dir: number; type: number; nr: number; size: number } {
  const r = request >>> 0;
  return {
    dir: (r >>> IOC_DIRSHIFT) & ((1 << IOC_DIRBITS) - 1),
    type: (r >>> IOC_TYPESHIFT) & ((1 << IOC_TYPEBITS) - 1),
    nr: (r >>> IOC_NRSHIFT) & ((1 << IOC_NRBITS) - 1),
    size: (r >>> IOC_SIZESHIFT) & ((1 << IOC_SIZEBITS) - 1),
  };
}

// --- Internal helpers ---

function checkField(name: string, value: number, bits: number): void {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** bits)
    throw new RangeError(`ioctl ${name} ${value} does not fit in ${bits} bits`);
}

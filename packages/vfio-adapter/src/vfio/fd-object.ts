// The base of every typed VFIO/iommufd object: one open fd, its lifetime, and the one way an
// ioctl is made (encode -> host.ioctl -> decode or throw).
//
// Subclasses add one method per ioctl. Each names its operation the way the kernel does
// ("VFIO_IOMMU_MAP_DMA", "VFIO_DEVICE_FEATURE(SET|DMA_LOGGING_START)") and passes the fields it
// sent as the error detail, so a failure reads
//   VFIO_IOMMU_MAP_DMA (container fd 5, iova 0x100000, length 0x200000): EINVAL (22): ...
// Codec errors become InvalidInputError (bad caller input) or ProtocolError (a kernel answer
// that breaks the uAPI), always with the CodecError as `cause`.
//
//   using container = Container.open(host);   // Symbol.dispose closes the fd on every exit path

import { InternalError, InvalidInputError, IoctlError, ProtocolError, SyscallError } from "../errors.ts";
import type { Fd, Host, IoctlArg } from "../host.ts";
import { O_CLOEXEC, O_RDWR } from "../host.ts";
import { CodecError } from "../uapi/codec.ts";
import { hex } from "../util/hex.ts";
import { isPowerOfTwoIn } from "../util/page-size.ts";

export abstract class FdObject {
  #fd: Fd;
  #closed = false;

  protected constructor(
    /** The host every call goes through. */
    readonly host: Host,
    fd: Fd,
    /** What this fd is, for messages: "container", "group 12", "device 0000:3b:00.1", "iommufd". */
    readonly label: string,
  ) {
    this.#fd = fd;
  }

  /** The fd; throws InternalError after close(), since using a closed fd is a bug. */
  get fd(): Fd {
    if (this.#closed) throw new InternalError(`${this.label}: used after close()`);
    return this.#fd;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Closes the fd once; later calls do nothing. Throws SyscallError if close(2) fails. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const rc = this.host.close(this.#fd);
    if (rc < 0) throw new SyscallError("close", -rc, `${this.label} fd ${this.#fd}`);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** "container fd 5" followed by the fields sent. */
  protected detail(...fields: string[]): string {
    return [`${this.label} fd ${this.#fd}`, ...fields].join(", ");
  }

  /** One ioctl: the kernel's non-negative result, or IoctlError naming `op` and `fields`. */
  protected ioctl(op: string, request: number, arg: IoctlArg, ...fields: string[]): number {
    const rc = this.host.ioctl(this.fd, request, arg);
    if (rc < 0) throw new IoctlError(op, -rc, this.detail(...fields));
    return rc;
  }

  /** Like ioctl() but returns -errno instead of throwing, for calls with a fallback. */
  protected tryIoctl(request: number, arg: IoctlArg): number {
    return this.host.ioctl(this.fd, request, arg);
  }

  /** Runs an encoder; a CodecError means the caller's input does not fit the struct. */
  protected encode<T>(op: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof CodecError)
        throw new InvalidInputError(`${op} (${this.detail()}): ${e.message}`, { cause: e });
      throw e;
    }
  }

  /** Runs a decoder on the kernel's answer; a CodecError means the answer breaks the uAPI. */
  protected decode<T>(op: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof CodecError)
        throw new ProtocolError(`${op} (${this.detail()}): the kernel's answer is malformed: ${e.message}`, {
          cause: e,
        });
      throw e;
    }
  }
}

/** open(2) with O_RDWR | O_CLOEXEC, or SyscallError naming the path. */
export function openPath(host: Host, path: string): Fd {
  const fd = host.open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) throw new SyscallError("open", -fd, path);
  return fd;
}

/** Checks a page size is a power of two, as every dirty-bitmap ioctl requires. */
export function checkPageSize(what: string, pageSize: bigint): void {
  if (typeof pageSize !== "bigint" || !isPowerOfTwoIn(pageSize))
    throw new InvalidInputError(`${what}: page size ${pageSize} is not a power of two`);
}

/**
 * Bytes of bitmap the kernel writes for `length` bytes of IOVA at `pageSize` per bit: whole u64
 * words (the kernel's DIRTY_BITMAP_BYTES). Throws InvalidInputError when `have` is smaller, since
 * the kernel would write past the caller's memory or refuse with EINVAL.
 */
export function checkBitmapRoom(what: string, length: bigint, pageSize: bigint, have: number): bigint {
  checkPageSize(what, pageSize);
  if (typeof length !== "bigint" || length <= 0n)
    throw new InvalidInputError(`${what}: length ${length} must be > 0`);
  const npages = (length + pageSize - 1n) / pageSize;
  const need = ((npages + 63n) / 64n) * 8n;
  if (BigInt(have) < need)
    throw new InvalidInputError(
      `${what}: bitmap of ${have} bytes is too small for ${npages} pages (needs ${need}, length ${hex(length)}, page size ${hex(pageSize)})`,
    );
  return need;
}

/** "iova 0x1000, length 0x2000": the range part of an error detail. */
export function rangeFields(iova: bigint, length: bigint): string[] {
  return [`iova ${hex(iova)}`, `length ${hex(length)}`];
}

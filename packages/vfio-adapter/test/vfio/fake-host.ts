// A tiny scripted Host for unit tests of the typed objects: it records every ioctl's bytes as
// sent and lets each test play the kernel with a handler that reads and writes those bytes.

import { Errno } from "../../src/errors.ts";
import type { Fd, Host, IoctlArg, MappedMemory, SysfsReader } from "../../src/host.ts";

export interface IoctlCall {
  fd: Fd;
  request: number;
  /** The argument as sent (a copy taken before the handler ran), or the integer. */
  sent: Uint8Array | number;
}

export type IoctlHandler = (fd: Fd, request: number, arg: IoctlArg, host: FakeHost) => number;

export class FakeHost implements Host {
  readonly name = "fake";
  readonly simulated = true;
  readonly calls: IoctlCall[] = [];
  readonly opened: string[] = [];
  readonly closedFds: Fd[] = [];
  /** Paths that open; anything else is ENOENT. */
  readonly paths = new Map<string, Fd>();
  onIoctl: IoctlHandler = () => -Errno.ENOTTY;
  /** Plays read(2) on streams (a migration data fd); unset, every read is EINVAL. */
  onRead: ((fd: Fd, buf: Uint8Array) => number) | undefined;
  closeResult = 0;
  /** Device memory behind pread/pwrite, at file offsets. */
  readonly file = new Uint8Array(0x10000);
  #views = new Map<bigint, Uint8Array>();
  #next = 0x10_0000n;

  open(path: string): number {
    this.opened.push(path);
    return this.paths.get(path) ?? -Errno.ENOENT;
  }

  close(fd: Fd): number {
    this.closedFds.push(fd);
    return this.closeResult;
  }

  ioctl(fd: Fd, request: number, arg: IoctlArg): number {
    this.calls.push({ fd, request, sent: typeof arg === "number" ? arg : arg.slice() });
    return this.onIoctl(fd, request, arg, this);
  }

  pread(_fd: Fd, buf: Uint8Array, offset: bigint): number {
    buf.set(this.file.subarray(Number(offset), Number(offset) + buf.length));
    return buf.length;
  }

  pwrite(_fd: Fd, buf: Uint8Array, offset: bigint): number {
    this.file.set(buf, Number(offset));
    return buf.length;
  }

  /** Reads of the stream `onRead` serves (none by default: EINVAL, as for a device fd). */
  read(fd: Fd, buf: Uint8Array): number {
    return this.onRead ? this.onRead(fd, buf) : -Errno.EINVAL;
  }

  write(_fd: Fd, _buf: Uint8Array): number {
    return -Errno.EINVAL;
  }

  addressOf(view: ArrayBufferView): bigint {
    const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
    for (const [addr, v] of this.#views)
      if (v.buffer === bytes.buffer && v.byteOffset === bytes.byteOffset) return addr;
    const addr = this.#next;
    this.#next += 0x10_0000n;
    this.#views.set(addr, bytes);
    return addr;
  }

  /** The memory the kernel would see at `addr` (only addresses handed out by addressOf). */
  memoryAt(addr: bigint): Uint8Array {
    const v = this.#views.get(addr);
    if (!v) throw new Error(`fake host: no memory at 0x${addr.toString(16)} (EFAULT)`);
    return v;
  }

  mmapAnonymous(): MappedMemory {
    throw new Error("not used by these tests");
  }

  munmap(): number {
    return 0;
  }

  readonly sysfs: SysfsReader = {
    readFile: () => undefined,
    readdir: () => undefined,
    readlink: () => undefined,
    exists: () => false,
  };
}

export const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at, true);
export const setU32 = (b: Uint8Array, at: number, x: number) =>
  new DataView(b.buffer, b.byteOffset).setUint32(at, x, true);
export const setU64 = (b: Uint8Array, at: number, x: bigint) =>
  new DataView(b.buffer, b.byteOffset).setBigUint64(at, x, true);
export const bytesOf = (c: IoctlCall | undefined): Uint8Array => {
  if (!c || typeof c.sent === "number") throw new Error("expected struct bytes");
  return c.sent;
};

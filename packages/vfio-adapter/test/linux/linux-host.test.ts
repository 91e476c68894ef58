// The Linux host against this machine's real kernel: /dev/null, /dev/zero, /dev/urandom, a temp
// file, anonymous memory and WebAssembly memory. No VFIO device is needed; real VFIO calls run in
// the VM tests.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import koffi from "koffi";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Errno, InvalidInputError, SyscallError, UnsupportedError } from "../../src/errors.ts";
import { O_CLOEXEC, O_RDONLY, O_RDWR } from "../../src/host.ts";
import { createLinuxHost, type LinuxHost } from "../../src/linux/index.ts";

// _IO(';', 100): VFIO_GET_API_VERSION; _IO(';', 101): VFIO_CHECK_EXTENSION.
const VFIO_GET_API_VERSION = 0x3b64;
const VFIO_CHECK_EXTENSION = 0x3b65;

let host: LinuxHost;
const fds: number[] = [];
let dir: string;

beforeAll(() => {
  host = createLinuxHost();
  dir = mkdtempSync(join(tmpdir(), "vfio-dirty-linux-"));
});
afterEach(() => {
  for (const fd of fds.splice(0)) host.close(fd);
});
afterAll(() => {
  host[Symbol.dispose]();
  rmSync(dir, { recursive: true, force: true });
});

function open(path: string, flags = O_RDWR): number {
  const fd = host.open(path, flags | O_CLOEXEC);
  expect(fd, `open ${path}`).toBeGreaterThanOrEqual(0);
  fds.push(fd);
  return fd;
}

describe("ioctl", () => {
  it("fails with ENOTTY on /dev/null, with a pointer argument and with an integer argument", () => {
    const fd = open("/dev/null");
    const arg = new Uint8Array(16).fill(0x77);
    expect(host.ioctl(fd, VFIO_GET_API_VERSION, arg)).toBe(-Errno.ENOTTY);
    expect(host.ioctl(fd, VFIO_CHECK_EXTENSION, 1)).toBe(-Errno.ENOTTY);
    // The kernel did not touch the bytes it rejected.
    expect(arg.every((b) => b === 0x77)).toBe(true);
  });

  it("passes struct bytes in place: FIONREAD on a regular file writes the count into the buffer", () => {
    // FIONREAD (0x541b) on a regular file writes an int: the bytes left to read. This shows the
    // kernel writes into our Uint8Array, at its byte offset, not into a copy.
    const path = join(dir, "fionread");
    writeFileSync(path, Buffer.alloc(1234, 1));
    const fd = open(path, O_RDONLY);
    const backing = new Uint8Array(16).fill(0xee);
    const arg = backing.subarray(4, 8);
    expect(host.ioctl(fd, 0x541b, arg)).toBe(0);
    expect(new DataView(backing.buffer).getInt32(4, true)).toBe(1234);
    expect(backing[3]).toBe(0xee);
    expect(backing[8]).toBe(0xee);
  });

  it("refuses an fd or request the FFI would coerce, without a syscall", () => {
    expect(host.ioctl(-1, VFIO_GET_API_VERSION, 0)).toBe(-Errno.EBADF);
    expect(host.ioctl(1.5, VFIO_GET_API_VERSION, 0)).toBe(-Errno.EBADF);
    const fd = open("/dev/null");
    expect(host.ioctl(fd, -1, 0)).toBe(-Errno.EINVAL);
    expect(host.ioctl(fd, 2 ** 32, 0)).toBe(-Errno.EINVAL);
    expect(host.ioctl(fd, VFIO_CHECK_EXTENSION, -1)).toBe(-Errno.EINVAL);
    expect(host.ioctl(fd, VFIO_CHECK_EXTENSION, 0.5)).toBe(-Errno.EINVAL);
  });

  it("becomes a typed error naming op, target, errno and hint", () => {
    const rc = host.ioctl(open("/dev/null"), VFIO_GET_API_VERSION, 0);
    const e = new SyscallError("ioctl VFIO_GET_API_VERSION", -rc, "/dev/null");
    expect(e.errno).toBe(Errno.ENOTTY);
    expect(e.message).toBe(
      "ioctl VFIO_GET_API_VERSION (/dev/null): ENOTTY (25): the kernel or the device's driver does not implement this call",
    );
  });
});

describe("open and close", () => {
  // This machine (and CI's) has no VFIO; on one that does, the VM tests cover the real open.
  it.skipIf(existsSync("/dev/vfio/vfio"))(
    "opening /dev/vfio/vfio without VFIO gives ENOENT and a message that says what to load",
    () => {
      const rc = host.open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
      expect(rc).toBe(-Errno.ENOENT);
      const e = new SyscallError("open", -rc, "/dev/vfio/vfio");
      expect(e.message).toMatch(/^open \(\/dev\/vfio\/vfio\): ENOENT \(2\): /);
      expect(e.message).toMatch(/modprobe vfio-pci/);
    },
  );

  it("hints differ for the iommufd node and a device cdev", () => {
    expect(new SyscallError("open", Errno.ENOENT, "/dev/iommu").message).toMatch(/CONFIG_IOMMUFD/);
    expect(new SyscallError("open", Errno.ENOENT, "/dev/vfio/devices/vfio0").message).toMatch(
      /CONFIG_VFIO_DEVICE_CDEV/,
    );
  });

  it("refuses a path with a NUL byte instead of letting C truncate it", () => {
    expect(host.open("/dev/null\0/etc/shadow", O_RDONLY)).toBe(-Errno.EINVAL);
  });

  it("closes once, then EBADF", () => {
    const fd = host.open("/dev/null", O_RDONLY | O_CLOEXEC);
    expect(fd).toBeGreaterThanOrEqual(0);
    expect(host.close(fd)).toBe(0);
    expect(host.close(fd)).toBe(-Errno.EBADF);
  });

  it("passes the kernel's errno through unchanged (EISDIR)", () => {
    expect(host.open("/", O_RDWR)).toBe(-Errno.EISDIR);
  });
});

describe("pread and pwrite", () => {
  it("read and write a file at offsets", () => {
    const path = join(dir, "rw");
    writeFileSync(path, Buffer.alloc(64));
    const fd = open(path);
    expect(host.pwrite(fd, new Uint8Array([1, 2, 3, 4]), 10n)).toBe(4);
    const out = new Uint8Array(6);
    expect(host.pread(fd, out, 9n)).toBe(6);
    expect([...out]).toEqual([0, 1, 2, 3, 4, 0]);
    expect(host.pread(fd, new Uint8Array(8), 60n)).toBe(4); // short read at end of file
    expect(host.pread(fd, new Uint8Array(8), 1000n)).toBe(0);
    expect([...readFileSync(path).subarray(10, 14)]).toEqual([1, 2, 3, 4]);
  });

  it("read into WebAssembly memory in place, at a subarray's offset", () => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const view = new Uint8Array(memory.buffer).fill(0xaa);
    const fd = open("/dev/zero", O_RDONLY);
    expect(host.pread(fd, view.subarray(100, 164), 0n)).toBe(64);
    expect(view[99]).toBe(0xaa);
    expect(view.subarray(100, 164).every((b) => b === 0)).toBe(true);
    expect(view[164]).toBe(0xaa);
  });

  it("read into shared WebAssembly memory (threads) the same way", () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true });
    const view = new Uint8Array(memory.buffer).fill(0xaa);
    const fd = open("/dev/zero", O_RDONLY);
    expect(host.pread(fd, view.subarray(8, 16), 0n)).toBe(8);
    expect([...view.subarray(6, 18)]).toEqual([0xaa, 0xaa, 0, 0, 0, 0, 0, 0, 0, 0, 0xaa, 0xaa]);
    expect(host.addressOf(view.subarray(8))).toBe(host.addressOf(view) + 8n);
  });

  it("write from WebAssembly memory, and a raw address is where the bytes are", () => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const view = new Uint8Array(memory.buffer);
    for (let i = 0; i < 256; i++) view[4096 + i] = i;
    const path = join(dir, "from-wasm");
    writeFileSync(path, "");
    const fd = open(path);
    expect(host.pwrite(fd, view.subarray(4096, 4096 + 256), 0n)).toBe(256);
    expect([...readFileSync(path)]).toEqual([...Array(256).keys()]);
    // The address the kernel sees for the subarray is the wasm base plus the offset.
    expect(host.addressOf(view.subarray(4096))).toBe(host.addressOf(view) + 4096n);
  });

  it("the kernel writes into wasm memory through a raw address carried inside a struct", () => {
    // VFIO bitmaps reach the kernel as a u64 `data` field holding an address. preadv's iovec is
    // the same shape ({ u64 iov_base; u64 iov_len }), so it shows that addressOf gives the address
    // the kernel really writes to, for a subarray in the middle of wasm memory.
    const libc = koffi.load("libc.so.6");
    const preadv = libc.func("intptr_t preadv(int fd, void *iov, int iovcnt, int64_t offset)");
    const memory = new WebAssembly.Memory({ initial: 2 });
    const view = new Uint8Array(memory.buffer).fill(0x11);
    const target = view.subarray(70_000, 70_000 + 48);
    const iov = new Uint8Array(16);
    new DataView(iov.buffer).setBigUint64(0, host.addressOf(target), true);
    new DataView(iov.buffer).setBigUint64(8, 48n, true);
    const path = join(dir, "preadv");
    writeFileSync(path, Buffer.from([...Array(64).keys()]));
    const fd = open(path, O_RDONLY);
    expect(Number(preadv(fd, iov, 1, 8))).toBe(48);
    expect([...target]).toEqual([...Array(48).keys()].map((i) => i + 8));
    expect(view[69_999]).toBe(0x11);
    expect(view[70_048]).toBe(0x11);
  });

  it("a view detached by memory.grow has no address: addressOf says so instead of giving 0", () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 4 });
    const view = new Uint8Array(memory.buffer);
    expect(host.addressOf(view)).toBeGreaterThan(0n);
    memory.grow(1);
    expect(() => host.addressOf(view)).toThrow(/detached/);
    expect(host.addressOf(new Uint8Array(memory.buffer))).toBeGreaterThan(0n);
  });

  it("refuses negative offsets and bad fds", () => {
    const fd = open("/dev/zero", O_RDONLY);
    expect(host.pread(fd, new Uint8Array(4), -1n)).toBe(-Errno.EINVAL);
    expect(host.pwrite(-3, new Uint8Array(4), 0n)).toBe(-Errno.EBADF);
    // pwrite to a read-only fd: the kernel's EBADF, unchanged.
    expect(host.pwrite(fd, new Uint8Array(4), 0n)).toBe(-Errno.EBADF);
  });
});

describe("loading", () => {
  it("a C library that cannot be loaded is an UnsupportedError naming it", () => {
    expect(() => createLinuxHost({ libc: "libvfio-dirty-none.so.9" })).toThrow(UnsupportedError);
    expect(() => createLinuxHost({ libc: "libvfio-dirty-none.so.9" })).toThrow(
      /libvfio-dirty-none\.so\.9.*glibc/,
    );
  });
});

describe("sysfs", () => {
  it("reads /sys by default, another root when asked, or an injected reader", () => {
    expect(host.sysfs.exists("bus")).toBe(existsSync("/sys/bus"));
    const root = join(dir, "fake-sys");
    mkdirSync(join(root, "kernel"), { recursive: true });
    writeFileSync(join(root, "kernel", "marker"), "fixture\n");
    using rooted = createLinuxHost({ sysfsRoot: root });
    expect(rooted.sysfs.readFile("kernel/marker")).toBe("fixture");
    const injected = {
      readFile: () => "injected",
      readdir: () => [],
      readlink: () => undefined,
      exists: () => true,
    };
    using withReader = createLinuxHost({ sysfs: injected, sysfsRoot: root });
    expect(withReader.sysfs.readFile("kernel/marker")).toBe("injected");
  });
});

describe("anonymous memory", () => {
  it("is page-rounded, zeroed, and the kernel reads and writes it through its address", () => {
    const mem = host.mmapAnonymous(1n);
    expect(mem.length).toBe(host.pageSize);
    expect(mem.address % host.pageSize).toBe(0n);
    expect(mem.bytes.every((b) => b === 0)).toBe(true);
    const fd = open("/dev/urandom", O_RDONLY);
    expect(host.pread(fd, mem.bytes.subarray(0, 32), 0n)).toBe(32);
    expect(mem.bytes.subarray(0, 32).some((b) => b !== 0)).toBe(true);
    expect(mem.bytes.subarray(32).every((b) => b === 0)).toBe(true);
    expect(host.munmap(mem)).toBe(0);
  });

  it("after munmap the memory cannot be reached through the MappedMemory and a second munmap is EINVAL", () => {
    const mem = host.mmapAnonymous(3n * 4096n);
    mem.bytes[0] = 1;
    expect(host.munmap(mem)).toBe(0);
    expect(() => mem.bytes).toThrow(InvalidInputError);
    expect(host.munmap(mem)).toBe(-Errno.EINVAL);
  });

  it("munmap refuses memory it did not map", () => {
    const forged = { address: 0x1000n, length: 4096n, bytes: new Uint8Array(4096) };
    expect(host.munmap(forged)).toBe(-Errno.EINVAL);
    const mem = host.mmapAnonymous(8192n);
    expect(host.munmap({ address: mem.address, length: 4096n, bytes: mem.bytes })).toBe(-Errno.EINVAL);
    expect(host.munmap(mem)).toBe(0);
  });

  it("rejects lengths that are not positive bigints, and reports a kernel refusal as SyscallError", () => {
    expect(() => host.mmapAnonymous(0n)).toThrow(InvalidInputError);
    expect(() => host.mmapAnonymous(-4096n)).toThrow(InvalidInputError);
    expect(() => host.mmapAnonymous(4096 as unknown as bigint)).toThrow(InvalidInputError);
    // Above 4 GiB koffi's view would abort the process: refused before any mmap.
    expect(() => host.mmapAnonymous((1n << 32n) + 1n)).toThrow(/between 1 and 4294967296 bytes/);
  });

  it("dispose unmaps what is still mapped", () => {
    const h = createLinuxHost();
    const mem = h.mmapAnonymous(4096n);
    h[Symbol.dispose]();
    expect(() => mem.bytes).toThrow(/unmapped/);
    expect(h.munmap(mem)).toBe(-Errno.EINVAL);
  });
});

// The contract every Host must keep, run against each backend: the Linux host here, the simulated
// host in the sim's tests, and the real kernel inside the VM tests. Only behaviour both a real
// kernel and the model can promise goes here (cf. unstorage's test/drivers/utils.ts testDriver()).
//
//   import { testHost } from "../host-contract.ts";
//   testHost("linux", () => createLinuxHost());
//
// Paths and fds below are chosen to be absent on any host: the sim must answer for them as Linux
// does. A malformed sysfs path ("..", absolute) must throw InvalidInputError: it is a caller's bug
// or an attack, not a missing entry (see src/sysfs-path.ts, checkSysfsPath, which backends share).

import { afterEach, describe, expect, it } from "vitest";
import { Errno, InvalidInputError } from "../src/errors.ts";
import type { Host, MappedMemory } from "../src/host.ts";
import { O_CLOEXEC, O_RDWR } from "../src/host.ts";

/** Registers the Host contract suite for the backend `make` builds (one fresh host per test). */
export function testHost(name: string, make: () => Host): void {
  describe(`Host contract: ${name}`, () => {
    let host: Host;
    const mapped: MappedMemory[] = [];
    const fresh = () => {
      host = make();
      return host;
    };
    afterEach(() => {
      // Unmap whatever a failing test left mapped, so one failure does not leak into the next.
      for (const m of mapped.splice(0)) host.munmap(m);
    });

    it("names itself and says whether it is simulated", () => {
      const h = fresh();
      expect(h.name).toMatch(/^(linux|sim:.+)$/);
      expect(h.simulated).toBe(h.name.startsWith("sim:"));
    });

    it("open of a missing path gives -ENOENT", () => {
      const h = fresh();
      expect(h.open("/dev/vfio-dirty-contract/no-such-node", O_RDWR | O_CLOEXEC)).toBe(-Errno.ENOENT);
    });

    it("close, ioctl, pread, pwrite, read and write of an fd that is not open give -EBADF", () => {
      const h = fresh();
      const fd = 1_000_000; // above any fd limit a test runner sets
      expect(h.close(fd)).toBe(-Errno.EBADF);
      expect(h.ioctl(fd, 0x3b64, 0)).toBe(-Errno.EBADF);
      expect(h.ioctl(fd, 0x3b64, new Uint8Array(8))).toBe(-Errno.EBADF);
      expect(h.pread(fd, new Uint8Array(4), 0n)).toBe(-Errno.EBADF);
      expect(h.pwrite(fd, new Uint8Array(4), 0n)).toBe(-Errno.EBADF);
      expect(h.read(fd, new Uint8Array(4))).toBe(-Errno.EBADF);
      expect(h.write(fd, new Uint8Array(4))).toBe(-Errno.EBADF);
    });

    it("addressOf gives distinct addresses for distinct buffers", () => {
      const h = fresh();
      const a = new Uint8Array(64);
      const b = new Uint8Array(64);
      const addrA = h.addressOf(a);
      const addrB = h.addressOf(b);
      expect(typeof addrA).toBe("bigint");
      expect(addrA).not.toBe(addrB);
      // Non-overlapping too: the kernel would otherwise write one buffer through the other.
      expect(addrA + 64n <= addrB || addrB + 64n <= addrA).toBe(true);
      // The same memory keeps its address.
      expect(h.addressOf(a)).toBe(addrA);
    });

    it("addressOf of a subarray is the parent's address plus its byte offset", () => {
      const h = fresh();
      const words = new BigUint64Array(32);
      const base = h.addressOf(words);
      expect(h.addressOf(words.subarray(5))).toBe(base + 40n);
      const bytes = new Uint8Array(words.buffer, 3, 17);
      expect(h.addressOf(bytes)).toBe(base + 3n);
      expect(h.addressOf(bytes.subarray(4, 8))).toBe(base + 7n);
      expect(h.addressOf(new DataView(words.buffer, 100))).toBe(base + 100n);
    });

    it("mmapAnonymous gives zeroed, writable, page-sized memory and munmap succeeds", () => {
      const h = fresh();
      const mem = h.mmapAnonymous(10_000n);
      mapped.push(mem);
      expect(mem.length >= 10_000n).toBe(true);
      expect(mem.length % 4096n).toBe(0n);
      expect(BigInt(mem.bytes.byteLength)).toBe(mem.length);
      expect(mem.bytes.every((b) => b === 0)).toBe(true);
      mem.bytes[0] = 0xa5;
      mem.bytes[mem.bytes.length - 1] = 0x5a;
      expect(mem.bytes[0]).toBe(0xa5);
      expect(mem.bytes[mem.bytes.length - 1]).toBe(0x5a);
      expect(h.addressOf(mem.bytes)).toBe(mem.address);
      expect(mem.address % 4096n).toBe(0n);
      mapped.pop();
      expect(h.munmap(mem)).toBe(0);
    });

    it("two live mappings do not overlap", () => {
      const h = fresh();
      const a = h.mmapAnonymous(8192n);
      mapped.push(a);
      const b = h.mmapAnonymous(8192n);
      mapped.push(b);
      expect(a.address + a.length <= b.address || b.address + b.length <= a.address).toBe(true);
      a.bytes.fill(1);
      expect(b.bytes.every((x) => x === 0)).toBe(true);
    });

    it("sysfs rejects paths with '..', absolute paths and NUL bytes", () => {
      const h = fresh();
      for (const bad of [
        "..",
        "../etc/passwd",
        "bus/pci/../../etc/passwd",
        "/etc/passwd",
        "bus/pci\0/devices",
      ]) {
        expect(() => h.sysfs.readFile(bad), bad).toThrow(InvalidInputError);
        expect(() => h.sysfs.readdir(bad), bad).toThrow(InvalidInputError);
        expect(() => h.sysfs.readlink(bad), bad).toThrow(InvalidInputError);
        expect(() => h.sysfs.exists(bad), bad).toThrow(InvalidInputError);
      }
    });

    it("sysfs reads a missing entry as undefined, never an exception", () => {
      const h = fresh();
      expect(h.sysfs.readFile("bus/pci/devices/ffff:ff:1f.7/vendor")).toBeUndefined();
      expect(h.sysfs.readdir("bus/pci/devices/ffff:ff:1f.7")).toBeUndefined();
      expect(h.sysfs.readlink("bus/pci/devices/ffff:ff:1f.7/driver")).toBeUndefined();
      expect(h.sysfs.exists("bus/pci/devices/ffff:ff:1f.7")).toBe(false);
    });
  });
}

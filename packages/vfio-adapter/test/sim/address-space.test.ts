// The sim's user address space: only memory the process owns is reachable; anything else EFAULT.

import { describe, expect, it } from "vitest";
import { Errno } from "../../src/errors.ts";
import { AddressSpace } from "../../src/sim/address-space.ts";

describe("AddressSpace", () => {
  it("gives each buffer a fixed base and subarrays their offset", () => {
    const s = new AddressSpace();
    const buf = new Uint8Array(100);
    const a = s.addressOf(buf);
    expect(s.addressOf(buf.subarray(10))).toBe(a + 10n);
    expect(s.addressOf(new Uint16Array(buf.buffer, 20, 4))).toBe(a + 20n);
    expect(s.addressOf(new Uint8Array(100))).not.toBe(a);
  });

  it("reads and writes registered memory; EFAULT outside it, including one byte past the end", () => {
    const s = new AddressSpace();
    const buf = new Uint8Array(16);
    const a = s.addressOf(buf);
    expect(s.write(a + 4n, new Uint8Array([1, 2]))).toBe(0);
    expect([...buf.subarray(4, 6)]).toEqual([1, 2]);
    expect(s.read(a + 15n, 2)).toBe(-Errno.EFAULT);
    expect(s.write(0x1000n, new Uint8Array(1))).toBe(-Errno.EFAULT);
    expect(s.read(a - 1n, 1)).toBe(-Errno.EFAULT);
  });

  it("after wasm memory.grow the old address is EFAULT and the new buffer gets a new one", () => {
    const s = new AddressSpace();
    const mem = new WebAssembly.Memory({ initial: 1, maximum: 4 });
    const old = s.addressOf(new Uint8Array(mem.buffer, 64, 8));
    mem.grow(1);
    expect(s.read(old, 8)).toBe(-Errno.EFAULT);
    const now = s.addressOf(new Uint8Array(mem.buffer, 64, 8));
    expect(now).not.toBe(old);
    expect(s.write(now, new Uint8Array([9]))).toBe(0);
    expect(new Uint8Array(mem.buffer)[64]).toBe(9);
  });

  it("munmap makes the memory unreachable; guest RAM is reachable and content-less", () => {
    const s = new AddressSpace();
    const buf = new Uint8Array(4096);
    const a = s.addressOf(buf);
    expect(s.unmap(buf)).toBe(0);
    expect(s.read(a, 1)).toBe(-Errno.EFAULT);
    expect(s.unmap(buf)).toBe(-Errno.EINVAL);
    const hva = s.reserveGuestRam(16n << 40n);
    expect(s.isMapped(hva + (8n << 40n), 4096n)).toBe(true);
    expect(s.isMapped(hva + (16n << 40n), 1n)).toBe(false);
    expect(s.read(hva, 4)).toEqual(new Uint8Array(4));
  });
});

// The simulated kernel's view of user memory: which addresses the "process" owns.
//
// The real kernel resolves a user pointer through the process page tables; an address that is
// not mapped is EFAULT. The sim has no page tables, so it hands out addresses itself: every
// ArrayBuffer passed to addressOf() (a typed array, a Buffer, a view of wasm memory) gets a fixed
// base in a fake 47-bit user address space, and guest RAM gets a content-less region of its own.
// copy_from_user / copy_to_user then become lookups here; anything outside a live region is EFAULT.
//
//   const space = new AddressSpace();
//   const addr = space.addressOf(bitmap.bytes);      // base of its ArrayBuffer + byteOffset
//   space.write(addr, new Uint8Array([1]));           // 0, or -EFAULT when unmapped
//
// Buffers are held through WeakRef: registering a buffer never keeps it alive. After a WebAssembly
// memory.grow() the old ArrayBuffer is detached (byteLength 0), so its region answers EFAULT and the
// caller must derive the address again from the new buffer, exactly as with the real kernel.

import { Errno } from "../errors.ts";
import { alignUp } from "../util/bigint.ts";

/** Where user buffers are placed: high in a 47-bit user address space, like mmap's top-down area. */
const BUFFER_AREA_BASE = 0x6000_0000_0000n;
/** Where guest RAM is placed (QEMU's RAMBlocks live in ordinary anonymous memory too). */
const GUEST_AREA_BASE = 0x1000_0000_0000n;
/** Every region starts 64 KiB aligned and keeps a 64 KiB unmapped guard after it. */
const REGION_ALIGN = 0x1_0000n;

/** A region of the fake address space. */
interface Region {
  /** First address of the region. */
  readonly base: bigint;
  /** Reserved length; the live length of a buffer region is its buffer's current byteLength. */
  readonly reserved: bigint;
  /** The backing buffer, weakly held; undefined for content-less guest RAM. */
  readonly buffer: WeakRef<ArrayBufferLike> | undefined;
  /** Set by munmap: the region answers EFAULT from then on. */
  unmapped: boolean;
}

/** A resolved address: bytes when backed by a buffer, or "guest" for content-less guest RAM. */
export type Resolved = { kind: "bytes"; bytes: Uint8Array } | { kind: "guest"; offset: bigint };

export class AddressSpace {
  /** Regions sorted by base (bases only grow, so pushes keep the order). */
  private readonly regions: Region[] = [];
  private readonly byBuffer = new WeakMap<ArrayBufferLike, Region>();
  private nextBuffer = BUFFER_AREA_BASE;
  private nextGuest = GUEST_AREA_BASE;

  /** The address of the first byte of `view`; registers its buffer on first use. */
  addressOf(view: ArrayBufferView): bigint {
    const buffer = view.buffer;
    let region = this.byBuffer.get(buffer);
    if (!region || region.unmapped) {
      const reserved = alignUp(BigInt(Math.max(buffer.byteLength, 1)), REGION_ALIGN);
      region = { base: this.nextBuffer, reserved, buffer: new WeakRef(buffer), unmapped: false };
      this.nextBuffer += reserved + REGION_ALIGN;
      this.byBuffer.set(buffer, region);
      this.regions.push(region);
    }
    return region.base + BigInt(view.byteOffset);
  }

  /** Reserves a content-less region for guest RAM and returns its base (its "HVA"). */
  reserveGuestRam(length: bigint): bigint {
    const reserved = alignUp(length, REGION_ALIGN);
    const region: Region = { base: this.nextGuest, reserved, buffer: undefined, unmapped: false };
    this.nextGuest += reserved + REGION_ALIGN;
    this.regions.push(region);
    this.regions.sort((a, b) => (a.base < b.base ? -1 : a.base > b.base ? 1 : 0));
    return region.base;
  }

  /** Forgets the region of `view`'s buffer (munmap). Returns 0 or -EINVAL when it was not mapped. */
  unmap(view: ArrayBufferView): number {
    const region = this.byBuffer.get(view.buffer);
    if (!region || region.unmapped) return -Errno.EINVAL;
    region.unmapped = true;
    this.byBuffer.delete(view.buffer);
    return 0;
  }

  /** Resolves [addr, addr+length) to one live region, or undefined (EFAULT). */
  resolve(addr: bigint, length: bigint): Resolved | undefined {
    if (addr < 0n || length < 0n) return undefined;
    const region = this.find(addr);
    if (!region || region.unmapped) return undefined;
    const offset = addr - region.base;
    if (!region.buffer) {
      return offset + length <= region.reserved ? { kind: "guest", offset } : undefined;
    }
    const buffer = region.buffer.deref();
    // A collected or detached buffer (wasm memory.grow) is no longer mapped.
    if (!buffer || buffer.byteLength === 0) return undefined;
    if (offset + length > BigInt(buffer.byteLength)) return undefined;
    return { kind: "bytes", bytes: new Uint8Array(buffer, Number(offset), Number(length)) };
  }

  /** True when [addr, addr+length) is user memory the process owns (for pinning: DMA map). */
  isMapped(addr: bigint, length: bigint): boolean {
    return this.resolve(addr, length) !== undefined;
  }

  /** copy_from_user: a copy of the bytes, or -EFAULT. Guest RAM reads as zeros (contents are not kept). */
  read(addr: bigint, length: number): Uint8Array | number {
    const r = this.resolve(addr, BigInt(length));
    if (!r) return -Errno.EFAULT;
    return r.kind === "bytes" ? r.bytes.slice() : new Uint8Array(length);
  }

  /** copy_to_user: 0 or -EFAULT. Writes to guest RAM succeed and are not kept. */
  write(addr: bigint, bytes: Uint8Array): number {
    const r = this.resolve(addr, BigInt(bytes.length));
    if (!r) return -Errno.EFAULT;
    if (r.kind === "bytes") r.bytes.set(bytes);
    return 0;
  }

  /** A live view of [addr, addr+length) for in-place bit updates, or undefined (EFAULT). */
  view(addr: bigint, length: number): Uint8Array | undefined {
    const r = this.resolve(addr, BigInt(length));
    if (!r) return undefined;
    return r.kind === "bytes" ? r.bytes : new Uint8Array(length);
  }

  // --- Internal helpers ---

  private find(addr: bigint): Region | undefined {
    let lo = 0;
    let hi = this.regions.length - 1;
    let found: Region | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.regions[mid]!;
      if (r.base <= addr) {
        found = r;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (!found || addr >= found.base + found.reserved) return undefined;
    return found;
  }
}

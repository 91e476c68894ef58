// The type1 IOMMU backend of a VFIO container: mappings, the entry limit, and dirty bookkeeping,
// with the checks and errnos of drivers/vfio/vfio_iommu_type1.c (v6.1..v6.12 behave alike here).
//
// Arguments arrive decoded (the ioctl layer in kernel.ts decodes with the uapi codecs); results
// that go back to user memory are written through the AddressSpace, so a bad pointer is EFAULT.
//
// Reporting rule, as the kernel does it: while dirty tracking is on, every page of every mapping
// is reported dirty on every read unless all groups in the container are in "pinned page dirty
// scope" (mdev-like devices that pin what they touch). Only then are the pages really written
// (recorded by the DMA path through markWritten) reported, and cleared on read.
//
//   const t1 = new Type1Iommu({ v2: true, ... });
//   t1.map({ flags: READ|WRITE, vaddr, iova, size });
//   t1.dirtyStart(); t1.getBitmap(iova, size, pgsize, data, bitmapSize);

import { Errno } from "../errors.ts";
import {
  U64_MAX,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_DMA_UNMAP_FLAG_VADDR,
} from "../uapi/index.ts";
import type { AddressSpace } from "./address-space.ts";
import type { PageSet } from "./page-set.ts";
import { PageSet as PageSetImpl } from "./page-set.ts";
import type { Range } from "./profile.ts";
import { bitmapBytes, setBitRange } from "./user-bits.ts";

/** DIRTY_BITMAP_PAGES_MAX = INT_MAX pages, so at most 256 MiB of bitmap per call. */
export const DIRTY_BITMAP_SIZE_MAX = bitmapBytes(0x7fff_ffffn);
const PAGE_SHIFT = 12n;

/** One vfio_dma: a contiguous IOVA range mapped to user memory. */
export interface DmaMapping {
  iova: bigint;
  length: bigint;
  vaddr: bigint;
  readable: boolean;
  writable: boolean;
  /** VADDR unmap: the mapping stays but its vaddr is invalid until remapped; DMA to it blocks. */
  vaddrInvalid: boolean;
  /** Pages (4 KiB, relative to iova) written by pinned-scope devices while tracking. */
  dirty: PageSet;
}

/** A user bitmap as struct vfio_bitmap gives it. */
export interface UserBitmap {
  pgsize: bigint;
  size: bigint;
  data: bigint;
}

export interface Type1Options {
  v2: boolean;
  pgsizeBitmap: bigint;
  dmaEntryLimit: number;
  iovaRanges: Range[];
  space: AddressSpace;
  /** True when every group of the container is in pinned-page dirty scope. */
  allPinnedScope: () => boolean;
}

export class Type1Iommu {
  readonly v2: boolean;
  readonly pgsizeBitmap: bigint;
  /** Mappings sorted by iova, never overlapping. */
  readonly mappings: DmaMapping[] = [];
  dmaAvail: number;
  dirtyTracking = false;

  constructor(private readonly opts: Type1Options) {
    this.v2 = opts.v2;
    this.pgsizeBitmap = opts.pgsizeBitmap;
    this.dmaAvail = opts.dmaEntryLimit;
  }

  /** The smallest IOMMU page size: 1 << __ffs(pgsize_bitmap). */
  get minPageSize(): bigint {
    return this.pgsizeBitmap & -this.pgsizeBitmap;
  }

  /** VFIO_IOMMU_MAP_DMA after the argsz/flags checks (vfio_dma_do_map). Returns 0 or -errno. */
  map(a: { flags: number; vaddr: bigint; iova: bigint; size: bigint }): number {
    const setVaddr = (a.flags & VFIO_DMA_MAP_FLAG_VADDR) !== 0;
    const prot = a.flags & (VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
    if (a.size === 0n) return -Errno.EINVAL;
    if ((prot && setVaddr) || (!prot && !setVaddr)) return -Errno.EINVAL;
    const pgsize = this.minPageSize;
    if ((a.size | a.iova | a.vaddr) & (pgsize - 1n)) return -Errno.EINVAL;
    if (a.iova + a.size - 1n > U64_MAX || a.vaddr + a.size - 1n > U64_MAX) return -Errno.EINVAL;
    const existing = this.findOverlap(a.iova, a.size);
    if (setVaddr) {
      if (!existing) return -Errno.ENOENT;
      if (!existing.vaddrInvalid || existing.iova !== a.iova || existing.length !== a.size)
        return -Errno.EINVAL;
      if (!this.opts.space.isMapped(a.vaddr, a.size)) return -Errno.EFAULT;
      existing.vaddr = a.vaddr;
      existing.vaddrInvalid = false;
      return 0;
    }
    if (existing) return -Errno.EEXIST;
    if (this.dmaAvail === 0) return -Errno.ENOSPC;
    const last = a.iova + a.size - 1n;
    if (!this.opts.iovaRanges.some((r) => a.iova >= r.start && last <= r.start + r.length - 1n))
      return -Errno.EINVAL;
    // vfio_pin_map_dma pins the pages now: memory the process does not own is EFAULT.
    if (!this.opts.space.isMapped(a.vaddr, a.size)) return -Errno.EFAULT;
    const m: DmaMapping = {
      iova: a.iova,
      length: a.size,
      vaddr: a.vaddr,
      readable: (a.flags & VFIO_DMA_MAP_FLAG_READ) !== 0,
      writable: (a.flags & VFIO_DMA_MAP_FLAG_WRITE) !== 0,
      vaddrInvalid: false,
      dirty: new PageSetImpl(),
    };
    this.mappings.splice(this.insertionIndex(a.iova), 0, m);
    this.dmaAvail--;
    return 0;
  }

  /**
   * VFIO_IOMMU_UNMAP_DMA after the ioctl-level checks (vfio_dma_do_unmap). Returns the errno and
   * the bytes unmapped, which the caller writes back into the struct's size field.
   */
  unmap(a: { flags: number; iova: bigint; size: bigint; bitmap?: UserBitmap }): {
    rc: number;
    unmapped: bigint;
  } {
    const pgsize = this.minPageSize;
    const unmapAll = (a.flags & VFIO_DMA_UNMAP_FLAG_ALL) !== 0;
    const invalidateVaddr = (a.flags & VFIO_DMA_UNMAP_FLAG_VADDR) !== 0;
    let size = a.size;
    const fail = { rc: -Errno.EINVAL, unmapped: 0n };
    if (a.iova & (pgsize - 1n)) return fail;
    if (unmapAll) {
      if (a.iova || a.size) return fail;
      size = U64_MAX;
    } else if (!size || size & (pgsize - 1n) || a.iova + size - 1n > U64_MAX) return fail;
    const wantBitmap = (a.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) !== 0;
    if (wantBitmap && (!this.dirtyTracking || a.bitmap?.pgsize !== pgsize)) return fail;
    if (this.v2 && !unmapAll) {
      const first = this.findOverlap(a.iova, 1n);
      if (first && first.iova !== a.iova) return fail;
      const last = this.findOverlap(a.iova + size - 1n, 1n);
      if (last && last.iova + last.length !== a.iova + size) return fail;
    }
    let unmapped = 0n;
    const end = unmapAll ? U64_MAX + 1n : a.iova + size;
    const removed = new Set<DmaMapping>();
    let rc = 0;
    for (const m of this.mappings) {
      if (m.iova + m.length <= a.iova) continue;
      if (m.iova >= end) break;
      if (!this.v2 && a.iova > m.iova) break;
      if (invalidateVaddr) {
        if (m.vaddrInvalid) {
          rc = -Errno.EINVAL;
          break;
        }
        m.vaddrInvalid = true;
        unmapped += m.length;
        continue;
      }
      if (wantBitmap && a.bitmap) {
        rc = this.updateUserBitmap(a.bitmap.data, m, a.iova, pgsize);
        if (rc) break;
      }
      unmapped += m.length;
      removed.add(m);
    }
    // One pass to drop what was unmapped: an UNMAP_ALL of 65535 mappings stays linear.
    if (removed.size) {
      const kept = this.mappings.filter((m) => !removed.has(m));
      this.mappings.length = 0;
      this.mappings.push(...kept);
      this.dmaAvail += removed.size;
    }
    return { rc, unmapped };
  }

  /** VFIO_IOMMU_DIRTY_PAGES_FLAG_START: idempotent; bitmaps start empty. */
  dirtyStart(): number {
    if (!this.dirtyTracking) {
      for (const m of this.mappings) m.dirty.clear();
      this.dirtyTracking = true;
    }
    return 0;
  }

  dirtyStop(): number {
    if (this.dirtyTracking) {
      this.dirtyTracking = false;
      for (const m of this.mappings) m.dirty.clear();
    }
    return 0;
  }

  /** VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP after verify_bitmap_size (vfio_iova_dirty_bitmap). */
  getBitmap(iova: bigint, size: bigint, bitmap: UserBitmap): number {
    const pgsize = this.minPageSize;
    if (bitmap.pgsize !== pgsize) return -Errno.EINVAL;
    if (iova & (pgsize - 1n)) return -Errno.EINVAL;
    if (!size || size & (pgsize - 1n)) return -Errno.EINVAL;
    if (!this.dirtyTracking) return -Errno.EINVAL;
    // The request must not bisect a mapping: it may club several whole ones, holes allowed.
    const first = this.findOverlap(iova, 1n);
    if (first && first.iova !== iova) return -Errno.EINVAL;
    const last = this.findOverlap(iova + size - 1n, 1n);
    if (last && last.iova + last.length !== iova + size) return -Errno.EINVAL;
    for (const m of this.mappings) {
      if (m.iova < iova) continue;
      if (m.iova > iova + size - 1n) break;
      const rc = this.updateUserBitmap(bitmap.data, m, iova, pgsize);
      if (rc) return rc;
      // Re-populate: only pinned pages stay dirty, and the sim's devices unpin after each write.
      m.dirty.clear();
    }
    return 0;
  }

  /** The mapping containing `iova`, or undefined. */
  lookup(iova: bigint): DmaMapping | undefined {
    return this.findOverlap(iova, 1n);
  }

  /** The DMA path: a pinned-scope device wrote the 4 KiB page at `iova` of mapping `m`. */
  markWritten(m: DmaMapping, iova: bigint): void {
    if (this.dirtyTracking) m.dirty.add(Number((iova - m.iova) >> PAGE_SHIFT));
  }

  // --- Internal helpers ---

  /** Index of the first mapping above `iova` (binary search: 65535 mappings stay cheap). */
  private insertionIndex(iova: bigint): number {
    let lo = 0;
    let hi = this.mappings.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.mappings[mid]!.iova < iova) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** vfio_find_dma: any mapping overlapping [start, start+size). */
  private findOverlap(start: bigint, size: bigint): DmaMapping | undefined {
    let lo = 0;
    let hi = this.mappings.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const m = this.mappings[mid]!;
      if (start + size <= m.iova) hi = mid - 1;
      else if (start >= m.iova + m.length) lo = mid + 1;
      else return m;
    }
    return undefined;
  }

  /**
   * update_user_bitmap(): copies the mapping's bits into user memory at their offset from
   * `baseIova`, whole u64 words, keeping only the low `shift` bits already in the first word.
   */
  private updateUserBitmap(data: bigint, m: DmaMapping, baseIova: bigint, pgsize: bigint): number {
    const nbits = m.length / pgsize;
    const bitOffset = (m.iova - baseIova) / pgsize;
    const copyOffset = bitOffset / 64n;
    const shift = Number(bitOffset % 64n);
    const nbytes = bitmapBytes(nbits + BigInt(shift));
    if (nbytes > BigInt(Number.MAX_SAFE_INTEGER)) return -Errno.EFAULT;
    const addr = data + copyOffset * 8n;
    // Written in place (copy_to_user of whole words): the cost is the words written, with no
    // bitmap-sized copy in between.
    const out = this.opts.space.view(addr, Number(nbytes));
    if (!out) return -Errno.EFAULT;
    // bitmap_or(..., &leftover, shift): keep the caller's bits below `shift` in the first word,
    // overwrite everything after them.
    const keep = shift >>> 3;
    if (shift & 7) out[keep]! &= (1 << (shift & 7)) - 1;
    out.fill(0, shift & 7 ? keep + 1 : keep);
    const allDirty = !this.opts.allPinnedScope();
    if (allDirty) {
      // Every page of a mapping is dirty: bits [shift, shift + nbits).
      setBitRange(out, shift, shift + Number(nbits) - 1);
    } else {
      const ratio = Number(pgsize >> PAGE_SHIFT);
      m.dirty.forEachIn(0, Number(nbits) * ratio, (page) => {
        const bit = shift + Math.floor(page / ratio);
        out[bit >>> 3]! |= 1 << (bit & 7);
      });
    }
    return 0;
  }
}

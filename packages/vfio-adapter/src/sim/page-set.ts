// A sparse set of page numbers: the one bitmap structure the simulated kernel uses.
//
// A 16 TiB guest has 2^32 pages of 4 KiB; a dense bitmap would be 512 MiB per tracker. The set is
// a two-level bitmap, so memory and time follow the pages that were really written, not the
// guest's size:
//
//   groups: Map<page / 2^20, Group>            (sorted keys cached for range walks)
//   Group:  summary   32 x u32, bit c = chunk c holds a page
//           slots     1024 x i32, where chunk c lives in the slab (0: nowhere; < 0: its one page)
//   slab:   chunks of 32 x u32 (bit i = page c * 1024 + i) + 1 u32 mask of their non-zero words
//
// A walk over [start, start + n) costs the groups in the range, their 32 summary words, and then
// only the non-zero words of the chunks present, so reading and clearing a scattered dirty page
// costs a few word operations. The 32768-page chunks this replaced (a 4 KiB Uint32Array each,
// whole-chunk scans on every walk and delete) cost 4 KiB of memory and work per scattered page:
// 1.6 s of REPORTs per sync of a 1 TiB guest. A Map of per-page entries was rejected: 50+ bytes
// of memory per dirty page, and no order.
//
//   const s = new PageSet();
//   s.addRange(10, 3);                              // pages 10, 11, 12
//   s.forEachIn(0, 100, (p) => ...);                // ascending
//   s.takeIn(0, 11, (p) => ...);                    // visit, then clear: a clear-on-read

const CHUNK_PAGES = 1024;
const CHUNK_WORDS = CHUNK_PAGES / 32;
/** A chunk's slot in the slab: its 32 words, then a mask of which of them are non-zero. */
const SLOT = CHUNK_WORDS + 1;
const GROUP_CHUNKS = 1024;
const GROUP_PAGES = CHUNK_PAGES * GROUP_CHUNKS;
/** Emptied groups kept for reuse, so a clear-on-read and the next writes do not churn memory. */
const SPARE_GROUPS = 64;
/** The slab of a set that never held two pages in one chunk: type1 keeps a set per mapping. */
const NO_SLAB = new Uint32Array(0);

/** The pages of one 2^20-page stretch. */
interface Group {
  /** Bit c set: chunk c holds at least one page. */
  readonly summary: Uint32Array;
  /**
   * Where each chunk is: 0 none; > 0 slab slot + 1; < 0 a chunk of one page, kept inline as
   * -(offset in the chunk) - 1. Scattered dirty pages are mostly alone in their chunk, and a walk
   * reads this array in order, so such pages cost no slab access at all (each one a cache miss
   * when the set is cold, as it is after the workloads and a garbage collection ran).
   */
  readonly slots: Int32Array;
  /** Pages held by the group. */
  count: number;
}

/** Called with each page of a walk, ascending. */
export type PageVisitor = (page: number) => void;

export class PageSet {
  private readonly groups = new Map<number, Group>();
  /**
   * The group keys in ascending order, rebuilt after a group came. A dropped group's key stays
   * until then and walks skip it: a REPORT that empties groups must not re-sort the keys for the
   * next REPORT.
   */
  private sortedKeys: number[] | undefined = [];
  private readonly spareGroups: Group[] = [];
  /**
   * Every chunk of the set lives in this one array, SLOT words each, reused through `freeSlots`:
   * one allocation per doubling instead of a typed array per chunk (which the garbage collector
   * would chase on every clear-on-read).
   */
  private slab = NO_SLAB;
  private readonly freeSlots: number[] = [];
  private slotsUsed = 0;
  private count = 0;
  private chunks = 0;

  /** Number of pages in the set. */
  get size(): number {
    return this.count;
  }

  /** Chunks holding pages: memory follows the pages held (one per 1024-page stretch in use). */
  get chunkCount(): number {
    return this.chunks;
  }

  has(page: number): boolean {
    const g = this.groups.get(Math.floor(page / GROUP_PAGES));
    if (!g) return false;
    const i = page % GROUP_PAGES;
    const slot = g.slots[i >>> 10]!;
    if (slot < 0) return -slot - 1 === (i & (CHUNK_PAGES - 1));
    return slot !== 0 && ((this.slab[(slot - 1) * SLOT + ((i >>> 5) & 31)]! >>> (i & 31)) & 1) === 1;
  }

  add(page: number): void {
    const key = Math.floor(page / GROUP_PAGES);
    let g = this.groups.get(key);
    if (!g) {
      g = this.spareGroups.pop() ?? newGroup();
      this.groups.set(key, g);
      this.sortedKeys = undefined;
    }
    const i = page % GROUP_PAGES;
    const ci = i >>> 10;
    const off = i & (CHUNK_PAGES - 1);
    let slot = g.slots[ci]!;
    if (slot === 0) {
      g.slots[ci] = -off - 1;
      g.summary[ci >>> 5]! |= 1 << (ci & 31);
      this.chunks++;
      g.count++;
      this.count++;
      return;
    }
    if (slot < 0) {
      const alone = -slot - 1;
      if (alone === off) return;
      // A second page: the chunk moves into the slab (a freed slot is all zeros).
      slot = this.allocSlot() + 1;
      g.slots[ci] = slot;
      const at = (slot - 1) * SLOT;
      this.slab[at + (alone >>> 5)]! |= 1 << (alone & 31);
      this.slab[at + CHUNK_WORDS]! |= 1 << (alone >>> 5);
    }
    const at = (slot - 1) * SLOT;
    const w = off >>> 5;
    const bit = 1 << (off & 31);
    const slab = this.slab;
    if ((slab[at + w]! & bit) === 0) {
      slab[at + w]! |= bit;
      slab[at + CHUNK_WORDS]! |= 1 << w;
      g.count++;
      this.count++;
    }
  }

  /** Adds pages [start, start+n). Large ranges are fine only when the set is meant to hold them. */
  addRange(start: number, n: number): void {
    for (let p = start; p < start + n; p++) this.add(p);
  }

  /** Removes every page in [start, start+n). Cost follows the chunks present, not n. */
  deleteRange(start: number, n: number): void {
    this.walk(start, n, undefined, true);
  }

  delete(page: number): void {
    this.deleteRange(page, 1);
  }

  clear(): void {
    this.groups.clear();
    this.sortedKeys = [];
    this.slab = NO_SLAB;
    this.freeSlots.length = 0;
    this.slotsUsed = 0;
    this.count = 0;
    this.chunks = 0;
  }

  /** Calls `visit` with each page of the set in [start, start+n), ascending. */
  forEachIn(start: number, n: number, visit: PageVisitor): void {
    this.walk(start, n, visit, false);
  }

  /**
   * Calls `visit` with each page of the set in [start, start+n), ascending, and removes them: a
   * log's read-and-clear in one walk. `visit` must not change the set.
   */
  takeIn(start: number, n: number, visit: PageVisitor): void {
    this.walk(start, n, visit, true);
  }

  /** Pages of the set in [start, start+n), ascending. */
  *pagesIn(start: number, n: number): Generator<number> {
    const pages: number[] = [];
    this.forEachIn(start, n, (p) => pages.push(p));
    yield* pages;
  }

  /** Every page in the set, ascending. */
  *all(): Generator<number> {
    const keys = this.keys();
    if (keys.length === 0) return;
    yield* this.pagesIn(keys[0]! * GROUP_PAGES, (keys[keys.length - 1]! + 1 - keys[0]!) * GROUP_PAGES);
  }

  // --- Internal helpers ---

  private keys(): number[] {
    if (!this.sortedKeys) this.sortedKeys = [...this.groups.keys()].sort((a, b) => a - b);
    return this.sortedKeys;
  }

  private allocSlot(): number {
    const reused = this.freeSlots.pop();
    if (reused !== undefined) return reused;
    if ((this.slotsUsed + 1) * SLOT > this.slab.length) {
      const bigger = new Uint32Array(Math.max(SLOT * 16, this.slab.length * 2));
      bigger.set(this.slab);
      this.slab = bigger;
    }
    return this.slotsUsed++;
  }

  /** The one range walk: visits (when `visit` is given) and clears (when `clear`) in page order. */
  private walk(start: number, n: number, visit: PageVisitor | undefined, clear: boolean): void {
    if (n <= 0 || this.count === 0) return;
    const end = start + n;
    const firstKey = Math.floor(start / GROUP_PAGES);
    const lastKey = Math.floor((end - 1) / GROUP_PAGES);
    const keys = this.keys();
    for (let k = lowerBound(keys, firstKey); k < keys.length && keys[k]! <= lastKey; k++) {
      const key = keys[k]!;
      const g = this.groups.get(key);
      if (!g) continue;
      const base = key * GROUP_PAGES;
      // The group-relative page range [lo, hi) this walk covers.
      const lo = Math.max(start - base, 0);
      const hi = Math.min(end - base, GROUP_PAGES);
      this.walkGroup(g, base, lo, hi, visit, clear);
      if (g.count === 0) {
        this.groups.delete(key);
        if (this.spareGroups.length < SPARE_GROUPS) this.spareGroups.push(g);
      }
    }
  }

  private walkGroup(
    g: Group,
    base: number,
    lo: number,
    hi: number,
    visit: PageVisitor | undefined,
    clear: boolean,
  ): void {
    const c0 = lo >>> 10;
    const c1 = (hi - 1) >>> 10;
    const slab = this.slab;
    for (let sw = c0 >>> 5; sw <= c1 >>> 5; sw++) {
      let s = g.summary[sw]!;
      while (s !== 0) {
        const ci = sw * 32 + (31 - Math.clz32(s & -s));
        s &= s - 1;
        if (ci < c0 || ci > c1) continue;
        const inline = g.slots[ci]!;
        if (inline < 0) {
          const page = ci * CHUNK_PAGES - inline - 1;
          if (page < lo || page >= hi) continue;
          if (clear) {
            g.slots[ci] = 0;
            g.summary[ci >>> 5]! &= ~(1 << (ci & 31));
            this.chunks--;
            this.count--;
            g.count--;
          }
          visit?.(base + page);
          continue;
        }
        const slot = inline - 1;
        const at = slot * SLOT;
        const cbase = ci * CHUNK_PAGES;
        // Only the chunk's non-zero words, clipped to [lo, hi).
        let mask = slab[at + CHUNK_WORDS]!;
        if (ci === c0) mask &= ~0 << ((lo - cbase) >>> 5);
        if (ci === c1 && (hi - 1 - cbase) >>> 5 < 31) mask &= (1 << (((hi - 1 - cbase) >>> 5) + 1)) - 1;
        let removed = 0;
        while (mask !== 0) {
          const w = 31 - Math.clz32(mask & -mask);
          mask &= mask - 1;
          let word = slab[at + w]!;
          const wbase = cbase + w * 32;
          if (wbase < lo) word &= ~0 << (lo - wbase);
          if (wbase + 32 > hi) word &= (1 << (hi - wbase)) - 1;
          if (word === 0) continue;
          if (clear) {
            const left = slab[at + w]! & ~word;
            slab[at + w] = left;
            if (left === 0) slab[at + CHUNK_WORDS]! &= ~(1 << w);
            removed += popcount32(word);
          }
          if (visit)
            while (word !== 0) {
              visit(base + wbase + (31 - Math.clz32(word & -word)));
              word &= word - 1;
            }
        }
        if (removed) {
          this.count -= removed;
          g.count -= removed;
          if (slab[at + CHUNK_WORDS] === 0) {
            g.slots[ci] = 0;
            g.summary[ci >>> 5]! &= ~(1 << (ci & 31));
            this.freeSlots.push(slot);
            this.chunks--;
          }
        }
      }
    }
  }
}

function newGroup(): Group {
  return { summary: new Uint32Array(GROUP_CHUNKS / 32), slots: new Int32Array(GROUP_CHUNKS), count: 0 };
}

/** Index of the first key >= x. */
function lowerBound(keys: readonly number[], x: number): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function popcount32(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

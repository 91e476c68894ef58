// A sparse set of page numbers: the one bitmap structure the simulated kernel uses.
//
// A 16 TiB guest has 2^32 pages of 4 KiB; a dense bitmap would be 512 MiB per tracker. Pages are
// grouped in chunks of 32768 (a 4 KiB bitmap each) kept in a Map, so memory follows the pages that
// were really written. A Map of per-page entries was rejected: 50+ bytes per dirty page.
//
//   const s = new PageSet();
//   s.addRange(10, 3);                 // pages 10, 11, 12
//   for (const p of s.pagesIn(0, 100)) ...
//   s.deleteRange(0, 11);              // clear-on-read of pages [0, 11)

const CHUNK_SHIFT = 15;
const CHUNK_PAGES = 1 << CHUNK_SHIFT;
const WORDS = CHUNK_PAGES / 32;

export class PageSet {
  private readonly chunks = new Map<number, Uint32Array>();
  private count = 0;

  /** Number of pages in the set. */
  get size(): number {
    return this.count;
  }

  has(page: number): boolean {
    const c = this.chunks.get(Math.floor(page / CHUNK_PAGES));
    if (!c) return false;
    const i = page % CHUNK_PAGES;
    return ((c[i >>> 5]! >>> (i & 31)) & 1) === 1;
  }

  add(page: number): void {
    const key = Math.floor(page / CHUNK_PAGES);
    let c = this.chunks.get(key);
    if (!c) {
      c = new Uint32Array(WORDS);
      this.chunks.set(key, c);
    }
    const i = page % CHUNK_PAGES;
    const bit = 1 << (i & 31);
    if ((c[i >>> 5]! & bit) === 0) {
      c[i >>> 5]! |= bit;
      this.count++;
    }
  }

  /** Adds pages [start, start+n). Large ranges are fine only when the set is meant to hold them. */
  addRange(start: number, n: number): void {
    for (let p = start; p < start + n; p++) this.add(p);
  }

  /** Removes every page in [start, start+n). Cost follows the chunks present, not n. */
  deleteRange(start: number, n: number): void {
    const touched = new Set<number>();
    for (const page of [...this.pagesIn(start, n)]) {
      this.deleteOne(page);
      touched.add(Math.floor(page / CHUNK_PAGES));
    }
    for (const key of touched) if (this.chunks.get(key)?.every((w) => w === 0)) this.chunks.delete(key);
  }

  delete(page: number): void {
    this.deleteRange(page, 1);
  }

  clear(): void {
    this.chunks.clear();
    this.count = 0;
  }

  /** Pages of the set in [start, start+n), ascending. */
  *pagesIn(start: number, n: number): Generator<number> {
    if (n <= 0 || this.count === 0) return;
    const end = start + n;
    const firstKey = Math.floor(start / CHUNK_PAGES);
    const lastKey = Math.floor((end - 1) / CHUNK_PAGES);
    const keys =
      lastKey - firstKey + 1 <= this.chunks.size
        ? range(firstKey, lastKey + 1).filter((k) => this.chunks.has(k))
        : [...this.chunks.keys()].filter((k) => k >= firstKey && k <= lastKey).sort((a, b) => a - b);
    for (const key of keys) {
      const c = this.chunks.get(key)!;
      const base = key * CHUNK_PAGES;
      for (let w = 0; w < WORDS; w++) {
        let word = c[w]!;
        while (word !== 0) {
          const bit = 31 - Math.clz32(word & -word);
          word &= word - 1;
          const page = base + w * 32 + bit;
          if (page >= start && page < end) yield page;
        }
      }
    }
  }

  /** Every page in the set, ascending. */
  *all(): Generator<number> {
    const keys = [...this.chunks.keys()].sort((a, b) => a - b);
    for (const key of keys) yield* this.pagesIn(key * CHUNK_PAGES, CHUNK_PAGES);
  }

  // --- Internal helpers ---

  private deleteOne(page: number): void {
    const key = Math.floor(page / CHUNK_PAGES);
    const c = this.chunks.get(key);
    if (!c) return;
    const i = page % CHUNK_PAGES;
    const bit = 1 << (i & 31);
    if ((c[i >>> 5]! & bit) !== 0) {
      c[i >>> 5]! &= ~bit;
      this.count--;
    }
  }
}

function range(a: number, b: number): number[] {
  const out: number[] = [];
  for (let i = a; i < b; i++) out.push(i);
  return out;
}

// An independent, deliberately naive model of dirty bitmaps: one boolean per page, every
// operation done page by page over byte addresses. The CLI's bitmap tools (bitmap-wasm inside)
// are checked against it.

/** Dirty page numbers of a raw bitmap file (bit i of LE u64 word i/64 = page i). */
export function dirtyPages(bytes: Uint8Array): number[] {
  const out: number[] = [];
  for (let byte = 0; byte < bytes.length; byte++)
    for (let bit = 0; bit < 8; bit++) if ((bytes[byte]! >> bit) & 1) out.push(byte * 8 + bit);
  return out;
}

/** A raw bitmap file of `nbits` (rounded up to whole u64 words) with `pages` set. */
export function bitmapBytes(nbits: number, pages: Iterable<number>): Uint8Array {
  const words = Math.max(1, Math.ceil(nbits / 64));
  const b = new Uint8Array(words * 8);
  for (const p of pages) b[p >> 3]! |= 1 << (p & 7);
  return b;
}

export interface Placed {
  bytes: Uint8Array;
  pageSize: bigint;
  base: bigint;
}

/**
 * Pages of a destination grid (dstPageSize, dstBase) touched by the dirty pages of `src`:
 * every destination page overlapping a dirty source byte range.
 */
export function placeInto(src: Placed, dstPageSize: bigint, dstBase: bigint): Set<number> {
  const out = new Set<number>();
  for (const p of dirtyPages(src.bytes)) {
    const start = src.base + BigInt(p) * src.pageSize;
    const end = start + src.pageSize; // exclusive
    const first = (start - dstBase) / dstPageSize;
    const last = (end - 1n - dstBase) / dstPageSize;
    for (let q = first; q <= last; q++) out.add(Number(q));
  }
  return out;
}

/** Runs of consecutive pages in a sorted list: [count, largest]. */
export function runStats(sorted: readonly number[]): { runs: number; largest: number } {
  let runs = 0;
  let largest = 0;
  let len = 0;
  for (let i = 0; i < sorted.length; i++) {
    if (i > 0 && sorted[i] === sorted[i - 1]! + 1) len++;
    else {
      runs++;
      len = 1;
    }
    largest = Math.max(largest, len);
  }
  return { runs, largest };
}

/** Translates dirty IOVA pages through mappings; pages on no mapping are returned apart. */
export function translatePages(
  src: Placed,
  maps: readonly { iova: bigint; gpa: bigint; length: bigint }[],
  dstBase: bigint,
): { gpaPages: Set<number>; unmapped: number } {
  const gpaPages = new Set<number>();
  let unmapped = 0;
  for (const p of dirtyPages(src.bytes)) {
    const iova = src.base + BigInt(p) * src.pageSize;
    const m = maps.find((x) => iova >= x.iova && iova < x.iova + x.length);
    if (!m) {
      unmapped++;
      continue;
    }
    gpaPages.add(Number((m.gpa + (iova - m.iova) - dstBase) / src.pageSize));
  }
  return { gpaPages, unmapped };
}

/** A small seeded PRNG (mulberry32), so a failing case can be replayed from its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random pages: a mix of single bits and runs (runs cross word edges). */
export function randomPages(rand: () => number, nbits: number, density: number): number[] {
  const set = new Set<number>();
  const target = Math.floor(nbits * density);
  while (set.size < target) {
    const start = Math.floor(rand() * nbits);
    const len = rand() < 0.3 ? 1 + Math.floor(rand() * 200) : 1;
    for (let i = start; i < Math.min(nbits, start + len); i++) set.add(i);
  }
  return [...set].sort((a, b) => a - b);
}

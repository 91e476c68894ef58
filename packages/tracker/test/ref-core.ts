// A naive, obviously-correct BitmapCore in plain TypeScript: the reference model the tests
// compare against, and a stand-in where the wasm core is not wanted. Test code only: the package
// itself does every bit operation through bitmap-wasm.

import type { Bitmap, BitmapCore, XlatTable } from "../src/bitmap.ts";

class RefBitmap implements Bitmap {
  readonly bits: Uint8Array;
  readonly ptr = 0;
  freed = false;
  constructor(
    readonly nbits: number,
    readonly pageSize: bigint,
    readonly base: bigint,
  ) {
    this.bits = new Uint8Array(nbits);
  }
  get byteLength(): number {
    return Math.ceil(this.nbits / 64) * 8;
  }
  /** Packed little-endian words, as the kernel writes them (a copy: tests only read it). */
  get bytes(): Uint8Array {
    const out = new Uint8Array(this.byteLength);
    for (let i = 0; i < this.nbits; i++) if (this.bits[i]) out[i >> 3]! |= 1 << (i & 7);
    return out;
  }
  #check(start: number, n: number): void {
    if (this.freed) throw new Error("use after free");
    if (start < 0 || n < 0 || start + n > this.nbits)
      throw new RangeError(`range ${start}+${n} of ${this.nbits}`);
  }
  set(start: number, n: number): void {
    this.#check(start, n);
    this.bits.fill(1, start, start + n);
  }
  clear(start: number, n: number): void {
    this.#check(start, n);
    this.bits.fill(0, start, start + n);
  }
  test(bit: number): boolean {
    this.#check(bit, 1);
    return this.bits[bit] === 1;
  }
  fill(value: boolean): void {
    this.bits.fill(value ? 1 : 0);
  }
  count(start = 0, n = this.nbits - start): number {
    this.#check(start, n);
    let c = 0;
    for (let i = start; i < start + n; i++) c += this.bits[i]!;
    return c;
  }
  nextSet(from: number): number {
    for (let i = from; i < this.nbits; i++) if (this.bits[i]) return i;
    return -1;
  }
  nextClear(from: number): number {
    for (let i = from; i < this.nbits; i++) if (!this.bits[i]) return i;
    return -1;
  }
  orFrom(src: Bitmap, srcStart: number, dstStart: number, n: number): void {
    this.#check(dstStart, n);
    const s = src as RefBitmap;
    for (let i = 0; i < n; i++) if (s.bits[srcStart + i]) this.bits[dstStart + i] = 1;
  }
  andNotFrom(src: Bitmap, srcStart: number, dstStart: number, n: number): void {
    this.#check(dstStart, n);
    const s = src as RefBitmap;
    for (let i = 0; i < n; i++) if (s.bits[srcStart + i]) this.bits[dstStart + i] = 0;
  }
  takeAndClear(into: Bitmap): void {
    const d = into as RefBitmap;
    d.bits.set(this.bits);
    this.bits.fill(0);
  }
  *runs(from = 0): Iterable<[number, number]> {
    let i = from;
    while (i < this.nbits) {
      if (!this.bits[i]) {
        i++;
        continue;
      }
      const s = i;
      while (i < this.nbits && this.bits[i]) i++;
      yield [s, i - s];
    }
  }
  /** Dirty addresses' page starts (for tests). */
  pagesSet(): bigint[] {
    const out: bigint[] = [];
    for (let i = 0; i < this.nbits; i++) if (this.bits[i]) out.push(this.base + BigInt(i) * this.pageSize);
    return out;
  }
  free(): void {
    this.freed = true;
  }
  [Symbol.dispose](): void {
    this.free();
  }
}

interface RefMapping {
  iova: bigint;
  gpa: bigint;
  length: bigint;
  removed: boolean;
}

class RefXlat implements XlatTable {
  mappings: RefMapping[] = [];
  constructor(readonly pageSize: bigint) {}
  map(iova: bigint, gpa: bigint, length: bigint): void {
    if (this.mappings.some((m) => !m.removed && m.iova < iova + length && iova < m.iova + m.length))
      throw new Error("overlap");
    this.mappings.push({ iova, gpa, length, removed: false });
  }
  unmap(iova: bigint, length: bigint): bigint {
    const end = iova + length;
    let moved = 0n;
    const next: RefMapping[] = [];
    for (const m of this.mappings) {
      const mEnd = m.iova + m.length;
      if (m.removed || mEnd <= iova || m.iova >= end) {
        next.push(m);
        continue;
      }
      const lo = m.iova > iova ? m.iova : iova;
      // biome-ignore lint/complexity/useMathMinMax: bigint
      const hi = mEnd < end ? mEnd : end;
      if (m.iova < lo) next.push({ ...m, length: lo - m.iova });
      next.push({ iova: lo, gpa: m.gpa + (lo - m.iova), length: hi - lo, removed: true });
      if (hi < mEnd) next.push({ iova: hi, gpa: m.gpa + (hi - m.iova), length: mEnd - hi, removed: false });
      moved += hi - lo;
    }
    this.mappings = next;
    return moved;
  }
  retire(): number {
    const n = this.mappings.filter((m) => m.removed).length;
    this.mappings = this.mappings.filter((m) => !m.removed);
    return n;
  }
  translate(
    src: Bitmap,
    dst: Bitmap,
    opts: { copy?: boolean } = {},
  ): { unmappedPages: number; outsidePages: number; copiedPages?: number } {
    const s = src as RefBitmap;
    const d = dst as RefBitmap;
    let copied = 0;
    if (opts.copy) {
      // Copy: every page of every mapping inside src's range takes the src bit (0 or 1).
      if (!this.#gpaDisjoint()) throw new Error("overlap");
      const sEnd = s.base + BigInt(s.nbits) * s.pageSize;
      for (const m of this.mappings)
        for (let iova = m.iova; iova < m.iova + m.length; iova += s.pageSize) {
          if (iova < s.base || iova >= sEnd) continue;
          const bit = (m.gpa + (iova - m.iova) - d.base) / d.pageSize;
          if (bit >= 0n && bit < BigInt(d.nbits)) {
            const v = s.bits[Number((iova - s.base) / s.pageSize)]!;
            d.bits[Number(bit)] = v;
            copied += v;
          }
        }
    }
    let unmapped = 0;
    for (let i = 0; i < s.nbits; i++) {
      if (!s.bits[i]) continue;
      const iova = s.base + BigInt(i) * s.pageSize;
      let hit = false;
      for (const m of this.mappings) {
        if (iova >= m.iova && iova < m.iova + m.length) {
          hit = true;
          const gpa = m.gpa + (iova - m.iova);
          const bit = (gpa - d.base) / d.pageSize;
          if (!opts.copy && gpa >= d.base && bit < BigInt(d.nbits)) d.bits[Number(bit)] = 1;
        }
      }
      if (!hit) unmapped++;
    }
    return { unmappedPages: unmapped, outsidePages: 0, ...(opts.copy ? { copiedPages: copied } : {}) };
  }
  clearUnmappedGpa(dst: Bitmap): void {
    const d = dst as RefBitmap;
    for (let i = 0; i < d.nbits; i++) {
      const gpa = d.base + BigInt(i) * d.pageSize;
      if (!this.mappings.some((m) => gpa >= m.gpa && gpa < m.gpa + m.length)) d.bits[i] = 0;
    }
  }
  #gpaDisjoint(): boolean {
    const byGpa = [...this.mappings].sort((a, b) => (a.gpa < b.gpa ? -1 : a.gpa > b.gpa ? 1 : 0));
    return byGpa.every((m, i) => i === 0 || m.gpa >= byGpa[i - 1]!.gpa + byGpa[i - 1]!.length);
  }
  free(): void {}
}

export function createRefCore(): BitmapCore & { live: Set<RefBitmap> } {
  const live = new Set<RefBitmap>();
  return {
    live,
    bitmap({ nbits, pageSize = 4096n, base = 0n }) {
      const b = new RefBitmap(nbits, pageSize, base);
      live.add(b);
      const free = b.free.bind(b);
      b.free = () => {
        live.delete(b);
        free();
      };
      return b;
    },
    convert(src: Bitmap, dst: Bitmap): { outsidePages: number } {
      const s = src as RefBitmap;
      const d = dst as RefBitmap;
      let outside = 0;
      const dEnd = d.base + BigInt(d.nbits) * d.pageSize;
      for (let i = 0; i < s.nbits; i++) {
        if (!s.bits[i]) continue;
        const lo = s.base + BigInt(i) * s.pageSize;
        const hi = lo + s.pageSize;
        if (lo < d.base || hi > dEnd) outside++;
        const a = lo > d.base ? lo : d.base;
        const b = hi < dEnd ? hi : dEnd;
        for (let p = (a - d.base) / d.pageSize; d.base + p * d.pageSize < b; p++) d.bits[Number(p)] = 1;
      }
      return { outsidePages: outside };
    },
    density(bitmap: Bitmap, buckets: number): number[] {
      const out: number[] = [];
      for (let k = 0; k < buckets; k++) {
        const a = Math.floor((k * bitmap.nbits) / buckets);
        const b = Math.floor(((k + 1) * bitmap.nbits) / buckets);
        out.push(bitmap.count(a, b - a));
      }
      return out;
    },
    xlatTable(pageSize = 4096n): XlatTable {
      return new RefXlat(pageSize);
    },
  };
}

export type { RefBitmap };

// IOVA -> GPA translation against a plain model: random mapping sets (adjacent, many-to-one,
// removed but not retired), random unmaps that split mappings, and dirty IOVA bitmaps whose pages
// land on the right guest pages, with unmapped pages counted and listed.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BitmapError, ErrorCode, type XlatMapping } from "../src/index.ts";
import { loadBitmapCoreSync } from "../src/node.ts";
import { bitsArb, expectBits, load, read, refRuns, runs } from "./reference.ts";

const core = loadBitmapCoreSync();

type Op =
  | { kind: "map"; iova: number; gpa: number; npages: number }
  | { kind: "unmap"; iova: number; npages: number }
  | { kind: "retire" };

/** Plain model of the table: a list of mappings, in pages. */
class ModelTable {
  maps: { iova: number; gpa: number; n: number; removed: boolean }[] = [];

  map(iova: number, gpa: number, n: number): boolean {
    if (this.maps.some((m) => !m.removed && m.iova < iova + n && iova < m.iova + m.n)) return false;
    this.maps.push({ iova, gpa, n, removed: false });
    return true;
  }

  unmap(iova: number, n: number): number {
    let moved = 0;
    const next: typeof this.maps = [];
    for (const m of this.maps) {
      if (m.removed || m.iova + m.n <= iova || m.iova >= iova + n) {
        next.push(m);
        continue;
      }
      const lo = Math.max(m.iova, iova);
      const hi = Math.min(m.iova + m.n, iova + n);
      if (lo > m.iova) next.push({ iova: m.iova, gpa: m.gpa, n: lo - m.iova, removed: false });
      if (hi < m.iova + m.n)
        next.push({ iova: hi, gpa: m.gpa + (hi - m.iova), n: m.iova + m.n - hi, removed: false });
      next.push({ iova: lo, gpa: m.gpa + (lo - m.iova), n: hi - lo, removed: true });
      moved += hi - lo;
    }
    this.maps = next;
    return moved;
  }

  /** No two mappings, active or removed, share a GPA page. */
  gpaDisjoint(): boolean {
    const byGpa = [...this.maps].sort((a, b) => a.gpa - b.gpa);
    return byGpa.every((m, i) => i === 0 || m.gpa >= byGpa[i - 1]!.gpa + byGpa[i - 1]!.n);
  }

  retire(): number {
    const before = this.maps.length;
    this.maps = this.maps.filter((m) => !m.removed);
    return before - this.maps.length;
  }

  sorted(ps: bigint): XlatMapping[] {
    return this.maps
      .map((m) => ({
        iova: BigInt(m.iova) * ps,
        gpa: BigInt(m.gpa) * ps,
        length: BigInt(m.n) * ps,
        removed: m.removed,
      }))
      .sort((a, b) => cmp(a.iova, b.iova) || cmp(a.gpa, b.gpa) || Number(a.removed) - Number(b.removed));
  }
}

const cmp = (a: bigint, b: bigint): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * A stream of pseudo-random bits (about one in three set) from an LCG: sources of tens of
 * thousands of pages that fast-check would be slow to draw and shrink bit by bit.
 */
function lcgBit(seed: number): () => number {
  let s = seed;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) | 0;
    return (s >>> 16) % 3 === 0 ? 1 : 0;
  };
}

// Small page-number spaces so mappings are often adjacent, overlapping (rejected) or many-to-one.
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("map" as const),
      iova: fc.nat(150),
      gpa: fc.nat(120),
      npages: fc.integer({ min: 1, max: 40 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("unmap" as const),
      iova: fc.nat(150),
      npages: fc.integer({ min: 1, max: 60 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("retire" as const) }) },
);

describe("xlat table", () => {
  it("map / unmap / retire follow the model, and translate puts every dirty page where it belongs", () => {
    fc.assert(
      fc.property(
        fc
          .record({
            log: fc.constantFrom(9, 12, 16, 21),
            ops: fc.array(opArb, { maxLength: 25 }),
            sOff: fc.integer({ min: 0, max: 40 }),
            sBits: fc.integer({ min: 0, max: 220 }),
            dOff: fc.integer({ min: 0, max: 40 }),
            dBits: fc.integer({ min: 0, max: 200 }),
          })
          .chain((g) => fc.tuple(fc.constant(g), bitsArb(g.sBits), bitsArb(g.dBits))),
        ([g, sref, dref]) => {
          const ps = 1n << BigInt(g.log);
          const t = core.xlatTable(ps);
          const model = new ModelTable();
          // Translating between ops makes the table cache what it derives from its mappings (the
          // longest mapping, the GPA order); every op must drop those caches.
          const probe = core.bitmap({ nbits: 64, pageSize: ps, base: BigInt(g.sOff) * ps });
          probe.set(0, 64);
          const probeDst = core.bitmap({ nbits: 64, pageSize: ps });
          for (const op of g.ops) {
            t.translate(probe, probeDst);
            expect(t.gpaDisjoint()).toBe(model.gpaDisjoint());
            if (op.kind === "map") {
              const ok = model.map(op.iova, op.gpa, op.npages);
              const call = (): void =>
                t.map(BigInt(op.iova) * ps, BigInt(op.gpa) * ps, BigInt(op.npages) * ps);
              if (ok) call();
              else expect(call).toThrow(expect.objectContaining({ code: ErrorCode.OVERLAP }));
            } else if (op.kind === "unmap") {
              expect(t.unmap(BigInt(op.iova) * ps, BigInt(op.npages) * ps)).toBe(
                BigInt(model.unmap(op.iova, op.npages)) * ps,
              );
            } else {
              expect(t.retire()).toBe(model.retire());
            }
          }
          expect(t.mappings()).toEqual(model.sorted(ps));

          // Source in IOVA space from page sOff, destination in GPA space from page dOff.
          const src = load(core, sref, ps, BigInt(g.sOff) * ps);
          const dst = load(core, dref, ps, BigInt(g.dOff) * ps);
          const got = t.translate(src, dst);
          const want = dref.slice();
          let unmapped = 0;
          let outside = 0;
          const unmappedBits = new Uint8Array(sref.length);
          for (let i = 0; i < sref.length; i++) {
            if (!sref[i]) continue;
            const iova = g.sOff + i;
            const hits = model.maps.filter((m) => m.iova <= iova && iova < m.iova + m.n);
            if (hits.length === 0) {
              unmapped++;
              unmappedBits[i] = 1;
            }
            for (const m of hits) {
              const j = m.gpa + (iova - m.iova) - g.dOff;
              if (j >= 0 && j < dref.length) want[j] = 1;
              else outside++;
            }
          }
          expectBits(read(dst), want);
          expect(got).toEqual({ unmappedPages: unmapped, outsidePages: outside });
          expect([...t.unmappedRuns(src)]).toEqual(refRuns(unmappedBits));
          const from = Math.floor(sref.length / 3);
          expect([...t.unmappedRuns(src, from)]).toEqual(refRuns(unmappedBits, from));
          expectBits(read(src), sref);

          // Copying: with no GPA page shared, every mapped page of dst inside src's range takes
          // the src bit (set or clear); clearUnmappedGpa clears what no mapping covers.
          expect(t.gpaDisjoint()).toBe(model.gpaDisjoint());
          const dst2 = load(core, dref, ps, BigInt(g.dOff) * ps);
          if (model.gpaDisjoint()) {
            const cleared = dref.slice();
            for (let j = 0; j < cleared.length; j++) {
              const gpa = g.dOff + j;
              if (!model.maps.some((m) => m.gpa <= gpa && gpa < m.gpa + m.n)) cleared[j] = 0;
            }
            t.clearUnmappedGpa(dst2);
            expectBits(read(dst2), cleared);
            const copied = cleared.slice();
            for (const m of model.maps) {
              for (let k = 0; k < m.n; k++) {
                const i = m.iova + k - g.sOff;
                const j = m.gpa + k - g.dOff;
                if (i >= 0 && i < sref.length && j >= 0 && j < copied.length) copied[j] = sref[i]!;
              }
            }
            let copiedPages = 0;
            for (const m of model.maps) {
              for (let k = 0; k < m.n; k++) {
                const i = m.iova + k - g.sOff;
                const j = m.gpa + k - g.dOff;
                if (i >= 0 && i < sref.length && j >= 0 && j < copied.length) copiedPages += sref[i]!;
              }
            }
            expect(t.translate(src, dst2, { copy: true })).toEqual({ ...got, copiedPages });
            expectBits(read(dst2), copied);
          } else {
            expect(() => t.translate(src, dst2, { copy: true })).toThrow(
              expect.objectContaining({ code: ErrorCode.OVERLAP }),
            );
            expectBits(read(dst2), dref);
          }
          expectBits(read(src), sref);
          for (const b of [src, dst, dst2, probe, probeDst]) b.free();
          t.free();
        },
      ),
      runs(300),
    );
  });

  it("a removed mapping keeps translating until retired (late device bits land on the old GPA)", () => {
    const t = core.xlatTable(4096n);
    t.map(0x10000n, 0x80000n, 0x4000n);
    expect(t.unmap(0x10000n, 0x4000n)).toBe(0x4000n);
    // The IOVA is re-used for another guest page while the old mapping awaits retirement.
    t.map(0x10000n, 0x40000n, 0x4000n);
    const src = core.bitmap({ nbits: 32, base: 0x10000n });
    src.set(1, 1);
    const dst = core.bitmap({ nbits: 256 });
    expect(t.translate(src, dst)).toEqual({ unmappedPages: 0, outsidePages: 0 });
    expect([...dst.runs()]).toEqual([
      [0x41, 1],
      [0x81, 1],
    ]);
    expect(t.retire()).toBe(1);
    dst.fill(false);
    t.translate(src, dst);
    expect([...dst.runs()]).toEqual([[0x41, 1]]);
    t.free();
    src.free();
    dst.free();
  });

  it("translates shifted, many-to-one and adjacent mappings over long word runs", () => {
    const t = core.xlatTable(4096n);
    // Two IOVA ranges onto the same guest range, and an adjacent third, at odd page offsets.
    t.map(3n * 4096n, 1001n * 4096n, 700n * 4096n);
    t.map(703n * 4096n, 1001n * 4096n, 300n * 4096n);
    t.map(1003n * 4096n, 5n * 4096n, 200n * 4096n);
    const src = core.bitmap({ nbits: 1300 });
    src.set(0, 1300);
    const dst = core.bitmap({ nbits: 2000 });
    expect(t.translate(src, dst)).toEqual({ unmappedPages: 3 + 97, outsidePages: 0 });
    expect([...dst.runs()]).toEqual([
      [5, 200],
      [1001, 700],
    ]);
    expect([...t.unmappedRuns(src)]).toEqual([
      [0, 3],
      [1203, 97],
    ]);
    t.free();
    src.free();
    dst.free();
  });

  it("translates many long mappings (merged in lockstep) to random, overlapping and adjacent GPAs", () => {
    // Mappings of 1..5000 pages (most long enough to go in lockstep) tile the IOVA
    // space with gaps; GPAs are random page offsets, so destinations overlap, touch and share
    // words, and some run past the destination's end.
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            gap: fc.integer({ min: 0, max: 70 }),
            npages: fc.integer({ min: 1, max: 5000 }),
            gpa: fc.integer({ min: 0, max: 60_000 }),
            aligned: fc.boolean(),
          }),
          { minLength: 1, maxLength: 20 },
        ),
        fc.integer({ min: 1, max: 0x7fff_ffff }),
        (maps, seed) => {
          const t = core.xlatTable(4096n);
          let iova = 0;
          const placed: { iova: number; gpa: number; n: number }[] = [];
          for (const m of maps) {
            iova += m.gap;
            // aligned: the GPA at the same bit of a word as the IOVA (an unshifted merge); a mix of
            // both in one batch of queued merges
            const gpa = m.aligned ? m.gpa - (m.gpa % 64) + (iova % 64) : m.gpa;
            t.map(BigInt(iova) * 4096n, BigInt(gpa) * 4096n, BigInt(m.npages) * 4096n);
            placed.push({ iova, gpa, n: m.npages });
            iova += m.npages;
          }
          const sref = new Uint8Array(iova + 5).map(lcgBit(seed));
          const src = load(core, sref, 4096n, 0n);
          const dBits = 62_100;
          const dst = core.bitmap({ nbits: dBits });
          t.translate(src, dst);
          const want = new Uint8Array(dBits);
          for (const p of placed) {
            for (let i = 0; i < p.n; i++) if (sref[p.iova + i] && p.gpa + i < dBits) want[p.gpa + i] = 1;
          }
          expectBits(read(dst), want);
          t.free();
          src.free();
          dst.free();
        },
      ),
      runs(40),
    );
  });

  it("copies many long mappings (in lockstep) to shuffled, adjacent GPAs over stale bits", () => {
    // Disjoint GPA destinations laid out in a shuffled order with random gaps, at any page offset
    // (shifted and unshifted copies, head and tail words shared by neighbours); the destination
    // starts full of stale bits that only the copy and clearUnmappedGpa may replace.
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            gap: fc.integer({ min: 0, max: 70 }),
            gpaGap: fc.integer({ min: 0, max: 70 }),
            npages: fc.integer({ min: 1, max: 5000 }),
            key: fc.nat(),
          }),
          { minLength: 1, maxLength: 20 },
        ),
        fc.integer({ min: 0, max: 3000 }),
        fc.integer({ min: 1, max: 0x7fff_ffff }),
        fc.constantFrom("shuffled", "same order", "aligned"),
        (maps, sOff, seed, layout) => {
          const t = core.xlatTable(4096n);
          let iova = 0;
          const placed: { iova: number; gpa: number; n: number }[] = [];
          for (const m of maps) {
            iova += m.gap;
            placed.push({ iova, gpa: 0, n: m.npages });
            iova += m.npages;
          }
          // "same order": GPAs in IOVA order with the IOVA gaps, so mappings after a 0 gap carry
          // on in both spaces (merged into one copy); "aligned": every GPA at the IOVA's bit of a
          // word (unshifted copies).
          let gpa = layout === "same order" ? placed[0]!.iova : 0;
          const order = maps
            .map((m, i) => ({ i, key: layout === "same order" ? i : m.key }))
            .sort((a, b) => a.key - b.key || a.i - b.i);
          for (const { i } of order) {
            gpa += layout === "same order" ? (i > 0 ? maps[i]!.gap : 0) : maps[i]!.gpaGap;
            if (layout === "aligned") gpa += (((placed[i]!.iova - gpa) % 64) + 64) % 64;
            placed[i]!.gpa = gpa;
            gpa += maps[i]!.npages;
          }
          for (const p of placed) t.map(BigInt(p.iova) * 4096n, BigInt(p.gpa) * 4096n, BigInt(p.n) * 4096n);
          expect(t.gpaDisjoint()).toBe(true);
          const rnd = lcgBit(seed);
          // The source window starts at sOff pages, so some mappings are cut at its edges.
          const sref = new Uint8Array(Math.max(1, iova - sOff + 5)).map(rnd);
          const dref = new Uint8Array(gpa + 9).map(() => 1 - rnd());
          const src = load(core, sref, 4096n, BigInt(sOff) * 4096n);
          const dst = load(core, dref, 4096n, 0n);
          t.clearUnmappedGpa(dst);
          const { copiedPages } = t.translate(src, dst, { copy: true });
          const want = new Uint8Array(dref.length);
          let copiedWant = 0;
          for (const p of placed) {
            for (let k = 0; k < p.n; k++) {
              const i = p.iova + k - sOff;
              want[p.gpa + k] = i >= 0 && i < sref.length ? sref[i]! : dref[p.gpa + k]!;
              if (i >= 0 && i < sref.length) copiedWant += sref[i]!;
            }
          }
          expectBits(read(dst), want);
          expect(copiedPages).toBe(copiedWant);
          t.free();
          src.free();
          dst.free();
        },
      ),
      runs(60),
    );
  });

  it("rejects bad mappings and mismatched page sizes with their codes", () => {
    const t = core.xlatTable(4096n);
    const code = (f: () => unknown): number => {
      try {
        f();
      } catch (e) {
        if (e instanceof BitmapError) return e.code;
        throw e;
      }
      return 0;
    };
    expect(code(() => t.map(0x1001n, 0n, 0x1000n))).toBe(ErrorCode.ALIGN);
    expect(code(() => t.map(0x1000n, 0x10n, 0x1000n))).toBe(ErrorCode.ALIGN);
    expect(code(() => t.map(0x1000n, 0n, 0x1800n))).toBe(ErrorCode.ALIGN);
    expect(code(() => t.map(0x1000n, 0n, 0n))).toBe(ErrorCode.BAD_ARGUMENT);
    expect(code(() => t.map(0xffff_ffff_ffff_f000n, 0n, 0x2000n))).toBe(ErrorCode.OVERFLOW);
    expect(code(() => t.map(0n, 0xffff_ffff_ffff_f000n, 0x2000n))).toBe(ErrorCode.OVERFLOW);
    expect(code(() => t.map(0xffff_ffff_ffff_e000n, 0n, 0x1000n))).toBe(0);
    expect(code(() => t.map(0n, 0n, 0x2000n))).toBe(0);
    expect(code(() => t.map(0x1000n, 0x9000n, 0x1000n))).toBe(ErrorCode.OVERLAP);
    expect(code(() => t.unmap(0x1000n, 0n))).toBe(ErrorCode.BAD_ARGUMENT);
    expect(code(() => t.unmap(0x800n, 0x1000n))).toBe(ErrorCode.ALIGN);
    expect(code(() => core.xlatTable(3000n))).toBe(ErrorCode.PAGE_SIZE);
    const src = core.bitmap({ nbits: 8, pageSize: 8192n });
    const dst = core.bitmap({ nbits: 8 });
    expect(code(() => t.translate(src, dst))).toBe(ErrorCode.PAGE_SIZE);
    expect(code(() => t.translate(dst, dst))).toBe(ErrorCode.OVERLAP);
    expect(code(() => t.translate(src, dst, { copy: true }))).toBe(ErrorCode.PAGE_SIZE);
    expect(code(() => t.clearUnmappedGpa(src))).toBe(ErrorCode.PAGE_SIZE);
    const other = core.bitmap({ nbits: 8 });
    // Two IOVA ranges onto one guest page: a copy would have to pick one; it refuses instead.
    t.map(0x10000n, 0x1000n, 0x1000n);
    expect(t.gpaDisjoint()).toBe(false);
    expect(code(() => t.translate(other, dst, { copy: true }))).toBe(ErrorCode.OVERLAP);
    expect(code(() => t.translate(other, dst))).toBe(0);
    other.free();
    t.free();
    expect(code(() => t.clearUnmappedGpa(dst))).toBe(ErrorCode.BAD_HANDLE);
    expect(code(() => t.gpaDisjoint())).toBe(ErrorCode.BAD_HANDLE);
    expect(code(() => t.map(0n, 0n, 0x1000n))).toBe(ErrorCode.BAD_HANDLE);
    src.free();
    dst.free();
  });
});

// The oracle's own model, against a page-by-page reference: a wrong model would report losses
// that are not there, or hide real ones.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DmaModel, OwedPages } from "./oracle-model.ts";

const P = 4096n;

describe("DmaModel", () => {
  it("cuts mappings at an unmap's edges and translates what is left", () => {
    const m = new DmaModel();
    m.map(0n, 0x10_0000n, 4n * P); // IOVA 0 -> GPA 1M
    m.map(8n * P, 0n, 2n * P); // IOVA 32K -> GPA 0
    expect(m.translate(0n)).toBe(0x10_0000n);
    expect(m.translate(9n * P + 5n)).toBe(P + 5n);
    expect(m.translate(5n * P)).toBeUndefined();
    // One unmap over the end of the first, the hole and the start of the second.
    expect(m.unmap(2n * P, 7n * P)).toEqual([
      { iova: 2n * P, gpa: 0x10_0000n + 2n * P, length: 2n * P },
      { iova: 8n * P, gpa: 0n, length: P },
    ]);
    expect(m.mappings).toEqual([
      { iova: 0n, gpa: 0x10_0000n, length: 2n * P },
      { iova: 9n * P, gpa: P, length: P },
    ]);
    expect(m.translate(2n * P)).toBeUndefined();
    expect(() => m.map(P, 0n, P)).toThrow(/overlaps/);
  });

  it("agrees with a page table under random maps and unmaps", () => {
    const op = fc.record({
      map: fc.boolean(),
      iova: fc.nat(63),
      gpa: fc.nat(63),
      n: fc.integer({ min: 1, max: 16 }),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        const m = new DmaModel();
        const ref = new Map<number, number>(); // IOVA page -> GPA page
        for (const o of ops) {
          const pages = Array.from({ length: o.n }, (_, k) => o.iova + k);
          if (o.map) {
            if (pages.some((p) => ref.has(p))) continue;
            m.map(BigInt(o.iova) * P, BigInt(o.gpa) * P, BigInt(o.n) * P);
            for (const [k, p] of pages.entries()) ref.set(p, o.gpa + k);
          } else {
            const removed = m.unmap(BigInt(o.iova) * P, BigInt(o.n) * P);
            const gone = removed.reduce((s, r) => s + Number(r.length / P), 0);
            expect(gone).toBe(pages.filter((p) => ref.has(p)).length);
            for (const p of pages) ref.delete(p);
          }
        }
        for (let p = 0; p < 96; p++) {
          const gpa = m.translate(BigInt(p) * P);
          expect(gpa === undefined ? undefined : Number(gpa / P)).toBe(ref.get(p));
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("OwedPages", () => {
  it("owes a page until a report holds it, and owes it again after a new write", () => {
    const o = new OwedPages();
    o.write("d", 7, { iovaPage: 70, t: 1, seq: 0 });
    o.write("d", 8, { iovaPage: 80, t: 2, seq: 1 });
    expect(o.settle("d", (p) => p === 7)).toBe(1);
    expect([...o.owed("d").keys()]).toEqual([8]);
    o.write("d", 7, { iovaPage: 71, t: 3, seq: 2 });
    expect(o.settle("d", () => false)).toBe(2);
    expect(o.writtenSince("d", 2, "gpa")).toEqual([7, 8]);
    expect(o.writtenSince("d", 3, "iova")).toEqual([71]);
    expect(o.owed("other").size).toBe(0);
  });
});

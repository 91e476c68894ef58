// PageSet, property-tested against a plain Set<number>: random adds, range deletes, walks and
// read-and-clear over pages that sit near chunk (1024) and group (2^20) edges and far up in a
// 64-bit IOVA space, where the structure's clipping and bookkeeping can go wrong.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PageSet } from "../../src/sim/page-set.ts";

const GROUP = 1 << 20;
/** Pages clustered around a few edges, so words, chunks and groups are cut in every way. */
const pageArb = fc
  .tuple(
    fc.constantFrom(0, 1023, 1024, GROUP - 1, GROUP, 3 * GROUP + 517, 2 ** 40, 2 ** 52 - GROUP),
    fc.integer({ min: -70, max: 2100 }),
  )
  .map(([edge, d]) => Math.max(0, edge + d));

const opArb = fc.oneof(
  fc.record({ op: fc.constant("add" as const), page: pageArb }),
  fc.record({ op: fc.constant("addRange" as const), page: pageArb, n: fc.integer({ min: 0, max: 200 }) }),
  fc.record({ op: fc.constant("delete" as const), page: pageArb }),
  fc.record({
    op: fc.constantFrom("deleteRange" as const, "take" as const, "walk" as const),
    page: pageArb,
    n: fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.constant(5 * GROUP)),
  }),
);

/** The model's pages in [start, start + n), ascending. */
function modelIn(model: Set<number>, start: number, n: number): number[] {
  return [...model].filter((p) => p >= start && p < start + n).sort((a, b) => a - b);
}

describe("PageSet against a Set<number>", () => {
  it("agrees after any sequence of adds, deletes, walks and takes", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
        const set = new PageSet();
        const model = new Set<number>();
        for (const o of ops) {
          switch (o.op) {
            case "add":
              set.add(o.page);
              model.add(o.page);
              break;
            case "addRange":
              set.addRange(o.page, o.n);
              for (let p = o.page; p < o.page + o.n; p++) model.add(p);
              break;
            case "delete":
              set.delete(o.page);
              model.delete(o.page);
              break;
            case "deleteRange":
              set.deleteRange(o.page, o.n);
              for (const p of modelIn(model, o.page, o.n)) model.delete(p);
              break;
            case "take": {
              const seen: number[] = [];
              set.takeIn(o.page, o.n, (p) => seen.push(p));
              const want = modelIn(model, o.page, o.n);
              expect(seen).toEqual(want);
              for (const p of want) model.delete(p);
              break;
            }
            case "walk": {
              const seen: number[] = [];
              set.forEachIn(o.page, o.n, (p) => seen.push(p));
              expect(seen).toEqual(modelIn(model, o.page, o.n));
              expect([...set.pagesIn(o.page, o.n)]).toEqual(seen);
              break;
            }
          }
          expect(set.size).toBe(model.size);
          expect(set.chunkCount).toBe(new Set([...model].map((p) => Math.floor(p / 1024))).size);
        }
        expect([...set.all()]).toEqual([...model].sort((a, b) => a - b));
        for (const p of model) expect(set.has(p)).toBe(true);
        for (const o of ops) expect(set.has(o.page)).toBe(model.has(o.page));
      }),
      { numRuns: 300 },
    );
  });

  it("drops emptied chunks and groups: a walk after a take finds nothing", () => {
    const set = new PageSet();
    for (let p = 0; p < 5 * GROUP; p += 999) set.add(p);
    set.takeIn(0, 5 * GROUP, () => {});
    expect(set.size).toBe(0);
    expect(set.chunkCount).toBe(0);
    expect([...set.all()]).toEqual([]);
    set.add(GROUP + 5);
    expect([...set.all()]).toEqual([GROUP + 5]);
  });
});

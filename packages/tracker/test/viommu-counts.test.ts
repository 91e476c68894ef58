// vIOMMU counts: per device (pages first reported by that device, in IOVA pages), per section
// and in total, whether the report was copied into (the copy counts what it writes, standing in
// for the last pass over each window) or ORed into (a count pass after every unit).

import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import { describe, expect, it } from "vitest";
import { createTracker } from "../src/tracker.ts";
import { FakeLogStrategy } from "./fake-strategy.ts";

const core = loadBitmapCoreSync();
const P = 4096n;
const memory = [
  { iova: 0n, length: 256n * P, kind: "ram" as const },
  { iova: 512n * P, length: 256n * P, kind: "ram" as const },
];

describe.each([
  ["copied (one-to-one mappings)", false],
  ["ORed (two IOVAs on one guest page)", true],
])("vIOMMU counts, report %s", (_name, manyToOne) => {
  it.each([true, false])("perDeviceCounts %s: per device, per section and in total", (perDeviceCounts) => {
    const a = new FakeLogStrategy("device", P);
    const b = new FakeLogStrategy("device", P);
    const tracker = createTracker({
      core,
      units: [
        { id: "a", devices: ["a"], strategy: a },
        { id: "b", devices: ["b"], strategy: b },
      ],
      memory,
      viommu: { aperture: [{ iova: 0n, length: 1024n * P }] },
      windowBytes: 128n * P, // several windows
      perDeviceCounts,
    });
    // IOVA [0, 192) -> GPA [64, 256) (section 0); IOVA [256, 448) -> GPA [512, 704) (section 1).
    tracker.map(0n, 64n * P, 192n * P);
    tracker.map(256n * P, 512n * P, 192n * P);
    if (manyToOne) tracker.map(600n * P, 64n * P, 4n * P); // onto GPA 64..67 as well
    tracker.start();
    tracker.setPhase("pre-copy");
    for (const p of [1n, 2n, 130n, 300n]) a.write(p * P);
    for (const p of [2n, 130n, 131n, 440n]) b.write(p * P); // 2 and 130 already a's
    const r = tracker.sync();
    // GPA: IOVA 1, 2, 130, 131 -> 65, 66, 194, 195; IOVA 300, 440 -> 556, 696.
    expect([...r.bitmap!.runs()]).toEqual([
      [65, 2],
      [194, 2],
      [556, 1],
      [696, 1],
    ]);
    expect(r.dirtyPages).toBe(6);
    expect(r.perSection.map((s) => s.pages)).toEqual([4, 2]);
    expect(r.perDevice.a!.pages).toBe(perDeviceCounts ? 4 : undefined);
    expect(r.perDevice.b!.pages).toBe(perDeviceCounts ? 2 : undefined);
    tracker.close();
  });
});

describe("sync({ onWindow }) behind a vIOMMU", () => {
  it("hands over GPA windows of at most windowBytes that together hold the report; a throwing callback re-reports", () => {
    const a = new FakeLogStrategy("device", P);
    const tracker = createTracker({
      core,
      units: [{ id: "a", devices: ["a"], strategy: a }],
      memory,
      viommu: { aperture: [{ iova: 0n, length: 1024n * P }] },
      windowBytes: 128n * P,
    });
    tracker.map(0n, 64n * P, 192n * P); // IOVA [0, 192) -> GPA [64, 256)
    tracker.map(256n * P, 512n * P, 192n * P); // IOVA [256, 448) -> GPA [512, 704)
    tracker.start();
    tracker.setPhase("pre-copy");
    const collect = () => {
      const pages: bigint[] = [];
      let widest = 0n;
      const r = tracker.sync({
        onWindow: (w) => {
          widest = BigInt(w.nbits) * w.pageSize > widest ? BigInt(w.nbits) * w.pageSize : widest;
          for (const [s, n] of w.runs()) for (let i = 0; i < n; i++) pages.push(w.base / P + BigInt(s + i));
        },
      });
      return { r, pages, widest };
    };
    for (const p of [1n, 130n, 300n, 447n]) a.write(p * P);
    const { r, pages, widest } = collect();
    expect(r.bitmap).toBeUndefined();
    expect(pages).toEqual([65n, 194n, 556n, 703n]);
    expect(r.dirtyPages).toBe(4);
    expect(widest).toBeLessThanOrEqual(128n * P);
    // A callback that throws: everything read is reported again at the next sync.
    a.write(2n * P);
    expect(() =>
      tracker.sync({
        onWindow: () => {
          throw new Error("callback failed");
        },
      }),
    ).toThrow("callback failed");
    expect(collect().pages).toContain(66n);
    tracker.close();
  });
});

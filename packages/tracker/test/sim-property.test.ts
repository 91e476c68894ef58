// The never-lose property on the simulated host: TRACKER_SCENARIOS random scenarios (default
// 2,000; `npm run test:long` runs 100,000), in batches of BATCH so that no single test runs for
// long on a loaded machine. A failure prints fast-check's seed and path; replay with
// TRACKER_SEED=<seed> (and TRACKER_PATH=<path>), which runs that one batch.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { arbScenario, runScenario, type ScenarioResult } from "./scenario.ts";

const RUNS = Number(process.env.TRACKER_SCENARIOS ?? 2000);
const SEED = process.env.TRACKER_SEED !== undefined ? Number(process.env.TRACKER_SEED) : undefined;
const PATH = process.env.TRACKER_PATH;
const BATCH = SEED !== undefined ? RUNS : 200;

describe("never lose a dirty page (simulated host)", () => {
  const by = new Map<string, { n: number; syncs: number; written: number; reported: number }>();
  let events = 0;
  const batches = Math.ceil(RUNS / BATCH);
  for (let b = 0; b < batches; b++) {
    const n = Math.min(BATCH, RUNS - b * BATCH);
    it(`random scenarios ${b * BATCH + 1}-${b * BATCH + n} of ${RUNS}: every page written is reported by the first sync that reads its unit`, () => {
      fc.assert(
        fc.property(arbScenario, (s) => {
          const r: ScenarioResult = runScenario(s);
          const k = `${s.backend}/${r.strategy}${s.viommu ? "+viommu" : ""}`;
          const e = by.get(k) ?? { n: 0, syncs: 0, written: 0, reported: 0 };
          e.n++;
          e.syncs += r.syncs;
          e.written += r.written;
          e.reported += r.reported;
          by.set(k, e);
          events += r.events;
        }),
        { numRuns: n, ...(SEED !== undefined ? { seed: SEED } : {}), ...(PATH ? { path: PATH } : {}) },
      );
    });
  }

  // Runs after the batches (a file's tests run in order), over what they all drew.
  it("the scenarios covered every strategy, with and without a vIOMMU", (ctx) => {
    console.log(
      [...by]
        .sort()
        .map(
          ([k, e]) =>
            `${k}: ${e.n} scenarios, ${e.syncs} syncs, ${e.written} pages written, ${e.reported} reported`,
        )
        .join("\n"),
    );
    // The scenarios really covered every strategy, with and without a vIOMMU (not when replaying one).
    if (PATH !== undefined || RUNS < 500) return ctx.skip("a replay or a short run");
    for (const k of [
      "type1/device",
      "type1/type1",
      "iommufd/iommufd",
      "iommufd/all-dirty",
      "type1/device+viommu",
      "iommufd/iommufd+viommu",
    ])
      expect(by.get(k)?.n ?? 0, `${k}: ${JSON.stringify([...by])}`).toBeGreaterThan(0);
    expect(events).toBeGreaterThan(0);
  });
});

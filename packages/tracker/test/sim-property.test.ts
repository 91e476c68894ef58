// The never-lose property on the simulated host: TRACKER_SCENARIOS random scenarios (default
// 2,000; `npm run test:long` runs 100,000) drawn by oracle-scenario.ts and checked by the test's
// own oracle (oracle-run.ts), in batches of BATCH so that no single test runs for long on a loaded
// machine. A failure prints fast-check's seed and path, the shrunk scenario and the trace of what
// ran; replay with TRACKER_SEED=<seed> TRACKER_PATH=<path>, which runs that one batch.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type OracleResult, runOracleScenario } from "./oracle-run.ts";
import { arbOracleScenario } from "./oracle-scenario.ts";

const RUNS = Number(process.env.TRACKER_SCENARIOS ?? 2000);
const SEED = process.env.TRACKER_SEED !== undefined ? Number(process.env.TRACKER_SEED) : undefined;
const PATH = process.env.TRACKER_PATH;
const BATCH = SEED !== undefined ? RUNS : 100;

describe("never lose a dirty page (simulated host, the test's own oracle)", () => {
  const by = new Map<string, { n: number; syncs: number; written: number; reported: number }>();
  const features = new Map<string, number>();
  let events = 0;
  const batches = Math.ceil(RUNS / BATCH);
  for (let b = 0; b < batches; b++) {
    const n = Math.min(BATCH, RUNS - b * BATCH);
    it(`random scenarios ${b * BATCH + 1}-${b * BATCH + n} of ${RUNS}: every page written is reported, host and oracle agree, tracking stops`, () => {
      fc.assert(
        fc.property(arbOracleScenario, (s) => {
          const r: OracleResult = runOracleScenario(s);
          const e = by.get(r.key) ?? { n: 0, syncs: 0, written: 0, reported: 0 };
          e.n++;
          e.syncs += r.syncs;
          e.written += r.written;
          e.reported += r.reported;
          by.set(r.key, e);
          for (const f of r.features) features.set(f, (features.get(f) ?? 0) + 1);
          events += r.events;
        }),
        { numRuns: n, ...(SEED !== undefined ? { seed: SEED } : {}), ...(PATH ? { path: PATH } : {}) },
      );
    });
  }

  // Runs after the batches (a file's tests run in order), over what they all drew.
  it("the scenarios covered every strategy, with and without a vIOMMU, and every drawn hazard", (ctx) => {
    const lines = [...by]
      .sort()
      .map(
        ([k, e]) =>
          `${k}: ${e.n} scenarios, ${e.syncs} syncs, ${e.written} pages written, ${e.reported} reported`,
      );
    const seen = [...features].sort().map(([f, n]) => `${f}: ${n}`);
    console.log(`${lines.join("\n")}\n${seen.join(", ")}`);
    if (PATH !== undefined || RUNS < 500) return ctx.skip("a replay or a short run");
    for (const k of [
      "type1/device",
      "iommufd/device",
      "type1/type1",
      "iommufd/iommufd",
      "iommufd/all-dirty",
      "type1/device+viommu",
      "iommufd/device+viommu",
      "type1/type1+viommu",
      "iommufd/iommufd+viommu",
      "iommufd/all-dirty+viommu",
    ])
      expect(by.get(k)?.n ?? 0, `${k}: ${lines.join("; ")}`).toBeGreaterThan(0);
    for (const f of [
      "no-mapping-at-start",
      "mapped-at-start",
      "aperture",
      "no-aperture",
      "map-inside-logged",
      "map-straddles-logged",
      "map-outside-logged",
      "map-refused",
      "unmap-holes",
      "unmap-cut",
      "unmap-all",
      "remap-write-both-sides",
      "iova0",
      "gpa0",
      "alias",
      "not-identity",
      "device-page>window",
      "window-not-multiple-of-device-page",
      "edge-inside-device-page",
      "fault:error-state",
      "untracked:default",
      "untracked:report-dirty",
      "untracked:re-arm",
      "untracked:adaptive",
    ])
      expect(features.get(f) ?? 0, `${f}: ${seen.join(", ")}`).toBeGreaterThan(0);
    for (const op of [
      "DMA_LOGGING_REPORT",
      "DMA_LOGGING_STOP",
      "DMA_LOGGING_START",
      "VFIO_IOMMU_DIRTY_PAGES(GET_BITMAP)",
      "IOMMU_HWPT_GET_DIRTY_BITMAP",
      "VFIO_IOMMU_UNMAP_DMA",
      "IOMMU_IOAS_UNMAP",
    ])
      expect(
        [...features.keys()].some((f) => f.startsWith("fired:") && f.includes(op)),
        `a ${op} fault fired: ${seen.join(", ")}`,
      ).toBe(true);
    expect(events).toBeGreaterThan(0);
  });
});

// The rule table itself: ids, levels and sources as the issue defines them, every scenario named
// exists, every judge can fail (on outcomes a broken kernel would give), the exit code policy,
// and the document for driver authors lists every rule with its level and source.

import { readFileSync } from "node:fs";
import { allScenarios, type ScenarioOutcome } from "@vfio-dirty/vfio-adapter/scenarios";
import { LOG_QUIRKS } from "@vfio-dirty/vfio-adapter/sim";
import { describe, expect, it } from "vitest";
import { exitCodeOf } from "../../src/check/document.ts";
import type { CheckRule } from "../../src/check/rule.ts";
import { ALL_RULES } from "../../src/check/rules/index.ts";
import { summarize } from "../../src/check/run.ts";
import { checkSim, simWithQuirks } from "./sim-check.ts";

const byId = new Map(ALL_RULES.map((r) => [r.id, r]));
const outcome = (errno: string | null, result?: unknown): ScenarioOutcome => ({
  id: "x",
  rule: "x",
  expected: { errno: null },
  errno,
  ...(result !== undefined ? { result } : {}),
});
const judge = (id: string, o: ScenarioOutcome) => byId.get(id)!.judge(o);

describe("the rules", () => {
  it("have unique ids of the form area.subject.case, in their area", () => {
    expect(new Set(ALL_RULES.map((r) => r.id)).size).toBe(ALL_RULES.length);
    for (const r of ALL_RULES) {
      expect(r.id).toMatch(/^(device|iommufd|type1)\.[a-z0-9-]+(\.[a-z0-9-]+)?$/);
      expect(r.id.split(".")[0]).toBe(r.area);
    }
  });

  it("each judge a scenario the adapter has (per-page-size ones at @4K)", () => {
    const ids = new Set(allScenarios.map((s) => s.id));
    for (const r of ALL_RULES)
      expect(ids.has(r.perPageSize ? `${r.scenario}@4K` : r.scenario), r.id).toBe(true);
  });

  it("give a source by level: MUST the uAPI text or a kernel function, SHOULD QEMU or the tracker", () => {
    const kernel = /vfio\.h|iommufd\.h|\.c [a-z_]+|[a-z_]+\.c\b/;
    for (const r of ALL_RULES) {
      expect(r.title.length, r.id).toBeGreaterThan(10);
      if (r.level === "MUST") expect(r.source, r.id).toMatch(kernel);
      if (r.level === "SHOULD") expect(r.source, r.id).toMatch(/QEMU|tracker/);
      if (r.level === "INFO") expect(r.source.length, r.id).toBeGreaterThan(5);
    }
    // Quotes are the header's words: spot-check one per header.
    expect(byId.get("device.report.only-sets-bits")!.source).toContain(
      "The LOGGING_REPORT will only set bits in the bitmap and never clear or perform any initialization of the user provided bitmap.",
    );
    expect(byId.get("iommufd.get-dirty.no-clear")!.source).toContain(
      "Just read the PTEs without clearing any dirty bits metadata.",
    );
  });

  it("cover what the issue asks for, in every area, at every level", () => {
    const levels = (area: string) => new Set(ALL_RULES.filter((r) => r.area === area).map((r) => r.level));
    expect(levels("device")).toEqual(new Set(["MUST", "SHOULD", "INFO"]));
    expect(levels("type1")).toEqual(new Set(["MUST", "INFO"]));
    expect(levels("iommufd")).toEqual(new Set(["MUST"]));
    expect(ALL_RULES.length).toBeGreaterThan(55);
  });
});

describe("the judges fail on what a broken kernel or driver answers", () => {
  // Rules without a driver bug of the test driver behind them: judged here on crafted outcomes.
  it.each<[string, ScenarioOutcome, RegExp]>([
    [
      "device.probe",
      outcome(null, { start: "OK", stop: "ENOTTY", report: "OK", startGet: "EINVAL" }),
      /disagree/,
    ],
    ["device.start.page-size", outcome(null, { asked: "0x1000", granted: "0x3000" }), /not a power of two/],
    [
      "device.start.256-ranges",
      outcome(null, { largest: 4, refused256: "E2BIG" }),
      /256 ranges refused: E2BIG/,
    ],
    ["device.start.qemu-ranges", outcome("EOPNOTSUPP"), /refused: EOPNOTSUPP/],
    [
      "device.report.coarser",
      outcome(null, { granted: "0x2000", coarse: [0], fine: null }),
      /should be bit 1/,
    ],
    ["device.report.finer", outcome(null, { granted: "0x2000", coarse: [1], fine: [10] }), /bits 10 and 11/],
    ["device.report.before-start", outcome(null), /succeeded; it must be refused/],
    ["device.start.zero-ranges", outcome(null), /accepted; must be refused with EINVAL/],
    ["device.report.exact", outcome("EIO", { failedStep: "REPORT" }), /REPORT failed: EIO/],
    ["type1.migration-capability", outcome(null, { iovaPgsizes: "0x40201000" }), /no migration capability/],
    [
      "type1.migration-capability",
      outcome(null, {
        iovaPgsizes: "0x40201000",
        migration: { pgsizeBitmap: "0x200000", maxDirtyBitmapSize: "0x1000" },
      }),
      /lacks the smallest IOMMU page 4K/,
    ],
    ["type1.get-bitmap.after-dma", outcome(null, { bitmap: ["0x4"] }), /reported bit 2/],
    ["type1.get-bitmap.holes", outcome(null, { bitmap: ["0xe7"] }), /bit 2 set for unmapped pages/],
    ["type1.get-bitmap.holes", outcome(null, { bitmap: ["0xe1"] }), /bit 1 of mapped pages not set/],
    [
      "type1.unmap.dirty-bitmap",
      outcome(null, { unmapped: "0x5000", bitmap: ["0xf"] }),
      /reported bits 0, 1, 2, 3/,
    ],
    ["type1.dirty-pages.start-stop-twice", outcome("EINVAL", [0, -22, 0, 0]), /failed: EINVAL/],
    ["type1.get-bitmap.bisect", outcome(null), /accepted; must be refused/],
    [
      "iommufd.dirty.capability",
      outcome(null, { capability: true, alloc: "EOPNOTSUPP" }),
      /capability reported, but/,
    ],
    ["iommufd.dirty.capability", outcome(null, { capability: false, alloc: "OK" }), /capability absent, but/],
    [
      "iommufd.get-dirty.contains-written",
      outcome(null, { kept: "0x0", cleared: "0x0", after: "0x0", stale: "0x0" }),
      /page 2/,
    ],
    [
      "iommufd.get-dirty.no-clear",
      outcome(null, { kept: "0x4", cleared: "0x0", after: "0x0", stale: "0x0" }),
      /cleared by a NO_CLEAR read/,
    ],
    [
      "iommufd.get-dirty.clears",
      outcome(null, { kept: "0x4", cleared: "0x4", after: "0x4", stale: "0x0" }),
      /again/,
    ],
    [
      "iommufd.set-dirty.enable-clears",
      outcome(null, { kept: "0x4", cleared: "0x4", after: "0x0", stale: "0x80" }),
      /bit 7/,
    ],
    ["iommufd.get-dirty.only-sets-bits", outcome(null, { bitmap: ["0x4"] }), /came back 0x4/],
    ["iommufd.get-dirty.unaligned", outcome("EOPNOTSUPP"), /EOPNOTSUPP; must be EINVAL/],
  ])("%s", (id, o, detail) => {
    const v = judge(id, o);
    expect(v).toMatchObject({ pass: false });
    expect((v as { detail: string }).detail).toMatch(detail);
  });

  it("an INFO rule never fails: what its judge saw is shown as info, even a failed step", async () => {
    const sim = simWithQuirks("edu-logging");
    const rule: CheckRule = {
      ...byId.get("device.start.span")!,
      id: "device.start.span-test",
      judge: () => ({ pass: false, detail: "START failed: EIO" }),
    };
    const [result] = await checkSim(sim, { areas: ["device"], rules: [rule] });
    expect(result).toMatchObject({
      id: "device.start.span-test",
      level: "INFO",
      result: "info",
      detail: "START failed: EIO",
    });
  });
});

describe("the exit code", () => {
  const r = (level: CheckRule["level"], result: "pass" | "fail" | "error" | "skip" | "info") =>
    ({ level, result }) as Parameters<typeof summarize>[0][number];
  it.each([
    [[r("MUST", "pass"), r("INFO", "info"), r("MUST", "skip")], 0],
    [[r("MUST", "pass"), r("SHOULD", "fail")], 0],
    [[r("MUST", "fail"), r("MUST", "error")], 3],
    [[r("MUST", "pass"), r("MUST", "error")], 1],
  ] as const)("%j -> %d", (results, code) => {
    expect(exitCodeOf(summarize(results))).toBe(code);
  });
});

describe("the document for driver authors", () => {
  it("lists every rule with its level and source, and every bug of the table", () => {
    const doc = readFileSync(new URL("../../docs/check.md", import.meta.url), "utf8");
    for (const r of ALL_RULES) {
      // Cells are padded (the formatter aligns the table's columns).
      const cells = doc
        .split("\n")
        .map((l) => l.split(/(?<!\\)\|/).map((c) => c.trim()))
        .find((c) => c[1] === `\`${r.id}\``);
      expect(cells, r.id).toBeDefined();
      expect(cells![2]).toBe(r.level);
      const row = cells!.join("|");
      expect(row).toContain(r.source.replaceAll("|", "\\|"));
    }
    for (const bug of LOG_QUIRKS) expect(doc).toContain(`\`${bug}\``);
  });

  it("is linked from the README", () => {
    const readme = readFileSync(new URL("../../../../README.md", import.meta.url), "utf8");
    expect(readme).toContain("packages/cli/docs/check.md");
  });
});

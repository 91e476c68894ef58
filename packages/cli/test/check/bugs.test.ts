// The bug table on the simulated host: each driver quirk makes check fail exactly the rules the
// table names, on every path the device has, and a driver without quirks fails none. The same
// table is asserted against the real-kernel test driver in tests/vm/scenarios/check.test.ts.

import { createSimHost, LOG_QUIRKS, loadProfile, parseProfile } from "@vfio-dirty/vfio-adapter/sim";
import { describe, expect, it } from "vitest";
import { BUG_TABLE, type Bug, expectedFailures, failedRules } from "./bug-table.ts";
import { checkSim, simWithQuirks } from "./sim-check.ts";

it("the table has a row for every quirk the simulated host and the test driver know", () => {
  expect(Object.keys(BUG_TABLE).sort()).toEqual([...LOG_QUIRKS].sort());
});

// edu-logging: the test driver as the sim models it (group path only, no limits); mlx5-vf: a
// driver with range and span limits, through its group and its cdev.
describe.each([
  ["edu-logging", ["group"]],
  ["mlx5-vf", ["group", "cdev"]],
] as const)("bug table on sim:%s", (profile, paths) => {
  it("a driver without bugs fails no rule", async () => {
    const results = await checkSim(simWithQuirks(profile), { areas: ["device"] });
    for (const path of paths) expect(failedRules(results, path)).toEqual([]);
    expect(results.filter((r) => r.result === "pass").length).toBeGreaterThan(20 * paths.length);
  });

  it.each(Object.keys(BUG_TABLE) as Bug[])("%s fails exactly its rules", async (bug) => {
    const results = await checkSim(simWithQuirks(profile, [bug]), {
      areas: ["device"],
      pageSizes: [4096n, 2n << 20n],
    });
    for (const path of paths)
      expect(failedRules(results, path), path).toEqual(expectedFailures(bug, ["4K", "2M"]));
    // Every rule a bug breaks is a MUST: check exits 3 for each.
    for (const r of results.filter((x) => x.result === "fail")) expect(r.level).toBe("MUST");
  });
});

// A correct driver whose logging pages are larger than the tracking page (mlx5 clamps to what its
// firmware offers; the test driver's min_page_size) passes too: no rule mistakes coarse logging
// for a bug, and no REPORT of check's cuts a logging page it does not mean to.
it.each(["64KiB", "2MiB"])("a driver that logs at %s fails no rule", async (min) => {
  const json = structuredClone(loadProfile("edu-logging").json);
  json.devices[0]!.dmaLogging = { minPageSize: min };
  const results = await checkSim(createSimHost(parseProfile(json)), {
    areas: ["device"],
    pageSizes: [4096n, 2n << 20n],
  });
  expect(failedRules(results)).toEqual([]);
  expect(results.find((r) => r.id === "device.report.finer")!.result).toBe("pass");
});

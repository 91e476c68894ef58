// The device scenarios through the cdev path (has.deviceVia "cdev": the device bound to an
// iommufd, its memory mapped in an IOAS) answer as through the group path: `vfio-dirty check`
// runs them on both paths where a device has both.

import { expect, it } from "vitest";
import {
  deviceScenarios,
  loggingScenarios,
  pageSizeScenarios,
  runScenarios,
} from "../../src/scenarios/index.ts";
import { createSimHost, simScenarioTarget } from "../../src/sim/index.ts";

it("every device scenario gives the same outcome through the cdev as through the group (mlx5-vf)", async () => {
  const list = [...deviceScenarios, ...loggingScenarios, ...pageSizeScenarios(4096n)];
  const viaGroup = await runScenarios(simScenarioTarget(createSimHost("mlx5-vf")), list);
  const sim = createSimHost("mlx5-vf");
  const t = simScenarioTarget(sim);
  const viaCdev = await runScenarios({ ...t, has: { ...t.has, deviceVia: "cdev" } }, list);
  expect(viaCdev.filter((o) => o.setupError)).toEqual([]);
  expect(viaCdev.filter((o) => !o.skipped).length).toBeGreaterThan(25);
  const outcome = (o: (typeof viaGroup)[number]) => ({
    id: o.id,
    errno: o.errno,
    result: o.result,
    skipped: o.skipped,
  });
  expect(viaCdev.map(outcome)).toEqual(viaGroup.map(outcome));
  // The group path was never taken: the group can be opened, and nothing is left tracking.
  expect(sim.trackingActive()).toBe(false);
});

it("a cdev-path target without iommufd skips the device scenarios, saying why", async () => {
  const t = simScenarioTarget(createSimHost("edu-logging"));
  const out = await runScenarios({ ...t, has: { ...t.has, deviceVia: "cdev" } }, loggingScenarios);
  expect(new Set(out.map((o) => o.skipped))).toEqual(
    new Set(["no iommufd with device cdev", "needs a DMA-logging device on iommufd"]),
  );
});

// @vfio-dirty/vfio-adapter/scenarios: the simulated host's rule scenarios, parameterised by Host,
// so the real-kernel tests run the very same ones and compare errno for errno.
//
//   import { allScenarios, runScenarios } from "@vfio-dirty/vfio-adapter/scenarios";
//   const outcomes = await runScenarios({ host, bdf, group, has, dma }, allScenarios);

import { deviceScenarios } from "./device.ts";
import { iommuDirtyScenarios } from "./iommu-dirty.ts";
import { iommufdScenarios } from "./iommufd.ts";
import { loggingScenarios, pageSizeName, pageSizeScenarios } from "./logging.ts";
import { migrationScenarios } from "./migration.ts";
import type { Scenario } from "./scenario.ts";
import { type1Scenarios } from "./type1.ts";

export type {
  DmaMapper,
  Expected,
  IommufdDevice,
  Outcome,
  Scenario,
  ScenarioOutcome,
  ScenarioTarget,
  Session,
  TargetCapabilities,
} from "./scenario.ts";
export { bitmapWords, errnoOf, jsonable, runScenarios } from "./scenario.ts";
export {
  deviceScenarios,
  iommuDirtyScenarios,
  iommufdScenarios,
  loggingScenarios,
  migrationScenarios,
  pageSizeName,
  pageSizeScenarios,
  type1Scenarios,
};

/**
 * Every scenario: type1, device features, migration data, iommufd and the cdev, then the
 * conformance scenarios `vfio-dirty check` judges (the per-page-size ones at 4 KiB).
 */
export const allScenarios: readonly Scenario[] = [
  ...type1Scenarios,
  ...deviceScenarios,
  ...migrationScenarios,
  ...iommufdScenarios,
  ...loggingScenarios,
  ...pageSizeScenarios(4096n),
  ...iommuDirtyScenarios,
];

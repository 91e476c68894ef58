// @vfio-dirty/vfio-adapter/scenarios: the simulated host's rule scenarios, parameterised by Host,
// so the real-kernel tests run the very same ones and compare errno for errno.
//
//   import { allScenarios, runScenarios } from "@vfio-dirty/vfio-adapter/scenarios";
//   const outcomes = await runScenarios({ host, bdf, group, has, dma }, allScenarios);

import { deviceScenarios } from "./device.ts";
import { iommufdScenarios } from "./iommufd.ts";
import { migrationScenarios } from "./migration.ts";
import type { Scenario } from "./scenario.ts";
import { type1Scenarios } from "./type1.ts";

export type {
  Expected,
  Outcome,
  Scenario,
  ScenarioOutcome,
  ScenarioTarget,
  TargetCapabilities,
} from "./scenario.ts";
export { bitmapWords, errnoOf, jsonable, runScenarios } from "./scenario.ts";
export { deviceScenarios, iommufdScenarios, migrationScenarios, type1Scenarios };

/** Every scenario: type1, device features, migration data, then iommufd and the cdev. */
export const allScenarios: readonly Scenario[] = [
  ...type1Scenarios,
  ...deviceScenarios,
  ...migrationScenarios,
  ...iommufdScenarios,
];

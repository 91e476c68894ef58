// @vfio-dirty/vfio-adapter/sim: the simulated VFIO host. Loading it never loads koffi.
//
//   import { createSimHost, listProfiles } from "@vfio-dirty/vfio-adapter/sim";
//   const sim = createSimHost("mlx5-vf");

export type { ClockMode, SimTime } from "./clock.ts";
export { SimClock } from "./clock.ts";
export type { LogQuirk } from "./dma-log.ts";
export { combineIovaRanges, LOG_QUIRKS } from "./dma-log.ts";
export type { TruthQuery } from "./ground-truth.ts";
export type { DeviceJson, FaultSpec, Profile, ProfileJson, WorkloadJson } from "./profile.ts";
export { listProfiles, loadProfile, parseProfile } from "./profile.ts";
export { simScenarioTarget } from "./scenario-target.ts";
export type { SimDeviceInfo, SimHost, SimHostOptions } from "./sim-host.ts";
export { createSimHost } from "./sim-host.ts";

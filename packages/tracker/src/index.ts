// @vfio-dirty/tracker: the public surface, nothing else.

export type { Bitmap, BitmapCore, XlatTable } from "./bitmap.ts";
export type { CriticalState, CriticalStateInput } from "./critical-state.ts";
export { criticalState, maxConvergingDirtyRate } from "./critical-state.ts";
export type { OpenOptions } from "./open.ts";
export { MigrationBlockedError, openTracker } from "./open.ts";
export type { PrecopyDeviceData, PrecopyReading } from "./precopy-device.ts";
export type {
  DeviceMigrationData,
  DirtyTraceSample,
  PrecopyCritical,
  PrecopyInput,
  PrecopyPrediction,
  PrecopyRound,
} from "./predict.ts";
export { predictPrecopy } from "./predict.ts";
export type { IommuTarget, ProbedDevice, TrackingTarget } from "./probe.ts";
export { probeCaps, readDeviceStateBytes } from "./probe.ts";
export type { IovaRange, LoggingAttempt, LoggingPlan, MemorySection, RetryResult } from "./ranges.ts";
export { combineRanges, planLogging, startWithRetry } from "./ranges.ts";
export type { Rate, RateReading, RateSample } from "./rate.ts";
export { DirtyRateMeter } from "./rate.ts";
export type {
  Blocker,
  ContainerCaps,
  DeviceCaps,
  DeviceOptions,
  Probe,
  SelectionReason,
  SelectOptions,
  StrategyChoice,
  StrategyName,
} from "./select.ts";
export { chooseStrategy } from "./select.ts";
export { AllDirtyStrategy } from "./strategies/all-dirty.ts";
export type { DeviceLoggingOptions, LoggingDevice } from "./strategies/device.ts";
export { DeviceLoggingStrategy } from "./strategies/device.ts";
export type { DirtyIommufd } from "./strategies/iommufd.ts";
export { IommufdStrategy } from "./strategies/iommufd.ts";
export { StopFailedError } from "./strategies/stopping.ts";
export type { Type1Container } from "./strategies/type1.ts";
export { Type1Strategy } from "./strategies/type1.ts";
export type { DirtyStrategy, DmaMapper, TrackerEvent, TrackerEventKind } from "./strategy.ts";
export type {
  DeprecatedPhase,
  DirtyReport,
  Phase,
  SectionReport,
  SyncOptions,
  Tracker,
  TrackerConfig,
  UnitConfig,
  UnitReport,
} from "./tracker.ts";
export { createTracker, TrackerStateError, UnmapError } from "./tracker.ts";

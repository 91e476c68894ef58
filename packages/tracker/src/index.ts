// @vfio-dirty/tracker: the public surface, nothing else.
export type { DirtyTraceSample, PrecopyInput, PrecopyPrediction, PrecopyRound } from "./predict.ts";
export { predictPrecopy } from "./predict.ts";
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

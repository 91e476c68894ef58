// @vfio-dirty/tracker: the public surface, nothing else.
export type { DirtyTraceSample, PrecopyInput, PrecopyPrediction, PrecopyRound } from "./predict.ts";
export { predictPrecopy } from "./predict.ts";

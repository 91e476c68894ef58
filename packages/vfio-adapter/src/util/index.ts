// Small helpers shared by vfio-adapter, tracker and cli (`@vfio-dirty/vfio-adapter/util`): one
// copy of each, in the lowest package that all their users import.

export { alignDown, alignUp, bigMax, bigMin } from "./bigint.ts";
export { CleanupStack } from "./cleanup.ts";
export { hex } from "./hex.ts";
export { isPowerOfTwoIn } from "./page-size.ts";
export { mulberry32 } from "./prng.ts";

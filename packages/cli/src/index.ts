// @vfio-dirty/cli: the public surface, nothing else. The executable is bin.ts.

export { run, version } from "./cli.ts";
export type { Context, GlobalOptions, Io } from "./context.ts";
export {
  CheckFailedError,
  EXIT_CHECK,
  EXIT_OK,
  EXIT_RUNTIME,
  EXIT_USAGE,
  ExitError,
  UsageError,
} from "./errors.ts";
export type { WorkloadPlugin, WorkloadSession } from "./workloads/plugin.ts";

// Finding a workload plugin by name (shipped) or by path (a user's ES module).

import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { UsageError } from "../errors.ts";
import { eduPlugin } from "./edu.ts";
import { isWorkloadPlugin, type WorkloadPlugin } from "./plugin.ts";

/** Plugins shipped with vfio-dirty, by name. */
export const SHIPPED_PLUGINS: readonly WorkloadPlugin[] = [eduPlugin];

/** `--workload edu` or `--workload ./plugin.js`. */
export async function loadWorkloadPlugin(spec: string, cwd = process.cwd()): Promise<WorkloadPlugin> {
  const shipped = SHIPPED_PLUGINS.find((p) => p.name === spec);
  if (shipped) return shipped;
  const path = resolve(cwd, spec);
  if (!/\.(m?js)$/.test(spec) || !existsSync(path))
    throw new UsageError(
      `--workload '${spec}': no shipped plugin of that name (shipped: ${SHIPPED_PLUGINS.map((p) => p.name).join(", ")}) and no such .js module; give a name or a path`,
    );
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(path).href)) as { default?: unknown };
  } catch (err) {
    throw new UsageError(`--workload '${spec}': the module failed to load (${(err as Error).message})`, {
      cause: err,
    });
  }
  if (!isWorkloadPlugin(mod.default))
    throw new UsageError(
      `--workload '${spec}': its default export is not a workload plugin (name, supports, create); see packages/cli/README.md`,
    );
  return mod.default;
}

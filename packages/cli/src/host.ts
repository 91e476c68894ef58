// Choosing the host a command runs against: `--host linux | sim | sim:<profile name or path>`.
// The default is linux when /dev/vfio exists, else the simulated host with its default profile,
// so the tool does something useful on any machine. Backends are imported on demand: the sim
// never loads koffi, and linux never parses profiles.

import { existsSync } from "node:fs";
import type { Host } from "@vfio-dirty/vfio-adapter";
import { UsageError } from "./errors.ts";

/** The simulated host `--host sim` uses: one mlx5-like VF with DMA logging. */
export const DEFAULT_PROFILE = "mlx5-vf";

export interface HostChoice {
  kind: "linux" | "sim";
  /** Profile name or path for the sim. */
  profile?: string;
  /** True when --host was not given. */
  auto: boolean;
}

/** Parses --host (or picks the default). Pure apart from the /dev/vfio check. */
export function chooseHost(spec: string | undefined, devVfioExists = existsSync("/dev/vfio")): HostChoice {
  if (spec === undefined)
    return devVfioExists
      ? { kind: "linux", auto: true }
      : { kind: "sim", profile: DEFAULT_PROFILE, auto: true };
  if (spec === "linux") return { kind: "linux", auto: false };
  if (spec === "sim") return { kind: "sim", profile: DEFAULT_PROFILE, auto: false };
  if (spec.startsWith("sim:") && spec.length > 4) return { kind: "sim", profile: spec.slice(4), auto: false };
  throw new UsageError(`--host '${spec}': use linux, sim or sim:<profile name or path to a profile .json>`);
}

/** The first line of human output: which host is in use. */
export function hostLine(host: Host, choice: HostChoice): string {
  return `host: ${host.name}${host.simulated ? " (simulated)" : ""}${choice.auto ? " [default; choose with --host]" : ""}`;
}

/** A real host needs /dev/vfio (and usually root): say what is missing instead of failing later. */
export function checkLinuxHost(): void {
  if (!existsSync("/dev/vfio"))
    throw new UsageError(
      "--host linux: no /dev/vfio on this machine; load vfio-pci (modprobe vfio-pci) and bind a device to it, or use --host sim",
    );
}

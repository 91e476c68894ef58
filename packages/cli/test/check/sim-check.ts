// Running check's rules in-process against a simulated host: a shipped profile, optionally with
// driver quirks on its first device, the sim's own DMA doing the writes.

import { findPciDevice } from "@vfio-dirty/vfio-adapter";
import {
  createSimHost,
  type LogQuirk,
  loadProfile,
  parseProfile,
  type SimHost,
} from "@vfio-dirty/vfio-adapter/sim";
import type { Area, CheckRule } from "../../src/check/rule.ts";
import { checkTarget, type RuleResult } from "../../src/check/run.ts";
import { checkTargetFor } from "../../src/check/target.ts";

/** A shipped profile as a SimHost, its first device given `quirks`. */
export function simWithQuirks(profile: string, quirks: readonly LogQuirk[] = []): SimHost {
  const json = structuredClone(loadProfile(profile).json);
  const dev = json.devices[0]!;
  if (quirks.length > 0) dev.dmaLogging = { ...dev.dmaLogging, quirks: [...quirks] };
  return createSimHost(parseProfile(json, `${profile} with ${quirks.join(", ") || "no quirks"}`));
}

/** Every rule of `areas` on the sim's device `bdf` (default: its first). */
export function checkSim(
  sim: SimHost,
  opts: { areas?: Area[]; pageSizes?: bigint[]; bdf?: string; rules?: readonly CheckRule[] } = {},
): Promise<RuleResult[]> {
  const dev = findPciDevice(sim.sysfs, opts.bdf ?? sim.profile.devices[0]!.bdf)!;
  const target = checkTargetFor(sim, dev, { kind: "sim", write: (b, i, l) => sim.dmaWrite(b, i, l) });
  return checkTarget(target, {
    areas: opts.areas ?? ["device", "iommufd", "type1"],
    pageSizes: opts.pageSizes ?? [4096n],
    ...(opts.rules ? { rules: opts.rules } : {}),
  });
}

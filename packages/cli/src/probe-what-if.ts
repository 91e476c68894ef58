// What each of QEMU's dirty-tracking options would change for a probed set of devices: the
// tracker's choice made again with the option flipped. Pure: the probe's capabilities in, one
// line per option out ("with x-device-dirty-page-tracking=off: iommufd").

import {
  type ContainerCaps,
  chooseStrategy,
  type DeviceCaps,
  type StrategyChoice,
} from "@vfio-dirty/tracker";
import { QEMU_NAMES, type QemuOptions, selectOptions } from "./parse/qemu-options.ts";
import type { WhatIf } from "./probe-devices.ts";

export function whatIf(
  caps: { container: ContainerCaps; devices: readonly DeviceCaps[] },
  qemu: QemuOptions,
  current: StrategyChoice,
): WhatIf[] {
  const ids = caps.devices.map((d) => d.id);
  const choose = (q: QemuOptions) => chooseStrategy(caps, selectOptions(q, ids));
  const lines = (c: StrategyChoice) =>
    c.blockers.map((b) => `${b.device ? `${b.device}: ` : ""}${b.message}`);
  const out: WhatIf[] = [];

  // x-device-dirty-page-tracking: off for every device, or back on.
  const devOff = qemu.deviceDirtyPageTracking === "none";
  const dev = choose({ ...qemu, deviceDirtyPageTracking: devOff ? "all" : "none" });
  out.push({
    option: `${QEMU_NAMES.deviceDirtyPageTracking}=${devOff ? "off" : "on"}`,
    strategy: dev.strategy,
    blockers: lines(dev),
    change:
      dev.strategy === current.strategy
        ? `${dev.strategy} (no change)`
        : `${dev.strategy}${blockerNote(dev, current)}`,
  });

  // enable-migration: matters only when nothing tracks.
  const em = choose({ ...qemu, enableMigration: qemu.enableMigration === "auto" ? "on" : "auto" });
  out.push({
    option: `${QEMU_NAMES.enableMigration}=${qemu.enableMigration === "auto" ? "on" : "auto"}`,
    strategy: em.strategy,
    blockers: lines(em),
    change:
      em.strategy !== "all-dirty"
        ? `${em.strategy} (no change: it only matters when nothing tracks dirty pages)`
        : qemu.enableMigration === "auto"
          ? "all-dirty accepted: every page dirty on every sync, no longer a blocker"
          : "all-dirty becomes a migration blocker",
  });

  // x-pre-copy-dirty-page-tracking: the same strategy, read at a different time.
  const preOff = qemu.preCopyDirtyPageTracking === "none";
  const pre = choose({ ...qemu, preCopyDirtyPageTracking: preOff ? "all" : "none" });
  out.push({
    option: `${QEMU_NAMES.preCopyDirtyPageTracking}=${preOff ? "off" : "on"}`,
    strategy: pre.strategy,
    blockers: lines(pre),
    change:
      pre.strategy === "all-dirty"
        ? "all-dirty (no change: there is no log to read)"
        : preOff
          ? `${pre.strategy}, not read during pre-copy: everything the devices write is sent in stop-copy (longer downtime)`
          : `${pre.strategy}, read at every pre-copy sync`,
  });
  return out;
}

// --- Internal helpers ---

function blockerNote(c: StrategyChoice, before: StrategyChoice): string {
  const key = (b: StrategyChoice["blockers"][number]) => `${b.device ?? ""}|${b.message}`;
  const had = new Set(before.blockers.map(key));
  const added = c.blockers.find((b) => !had.has(key(b)));
  if (added?.kind === "no-tracking") return ", a migration blocker unless enable-migration=on";
  if (added) return `, a migration blocker: ${added.message}`;
  return c.blockers.length < before.blockers.length ? ", one blocker fewer" : "";
}

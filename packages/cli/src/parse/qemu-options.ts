// QEMU's options for VFIO dirty tracking, as `probe` and `track` take them, in QEMU's own words:
//
//   --enable-migration on|auto                 enable-migration (auto: no tracking blocks migration)
//   --device-dirty-page-tracking off[=BDF,..]  x-device-dirty-page-tracking=off (no DMA logging)
//   --pre-copy-dirty-page-tracking off[=BDF,..] x-pre-copy-dirty-page-tracking=off (not read in pre-copy)
//
// "off" alone is every device; "off=0000:3b:00.1,0000:3b:00.2" the named ones ("on" is the default).
// selectOptions() turns them into the tracker's options once the devices are known.

import type { SelectOptions } from "@vfio-dirty/tracker";
import type { Command } from "commander";
import { UsageError } from "../errors.ts";
import { parsePciAddress } from "./pci.ts";

/** Devices an option is off for: none, every one, or these PCI addresses. */
export type DeviceSet = "none" | "all" | readonly string[];

export interface QemuOptions {
  enableMigration: "on" | "auto";
  deviceDirtyPageTracking: DeviceSet;
  preCopyDirtyPageTracking: DeviceSet;
}

export const DEFAULT_QEMU_OPTIONS: QemuOptions = {
  enableMigration: "auto",
  deviceDirtyPageTracking: "none",
  preCopyDirtyPageTracking: "none",
};

/** QEMU's property names, for messages. */
export const QEMU_NAMES = {
  enableMigration: "enable-migration",
  deviceDirtyPageTracking: "x-device-dirty-page-tracking",
  preCopyDirtyPageTracking: "x-pre-copy-dirty-page-tracking",
} as const;

/** Adds the three options to a command (probe, track). */
export function addQemuOptions(cmd: Command): Command {
  return cmd
    .option(
      "--enable-migration <on|auto>",
      "QEMU enable-migration: auto blocks migration without dirty tracking, on accepts all-dirty",
      "auto",
    )
    .option(
      "--device-dirty-page-tracking <off[=BDF,...]>",
      "QEMU x-device-dirty-page-tracking=off: no device DMA logging (for every device, or those named)",
    )
    .option(
      "--pre-copy-dirty-page-tracking <off[=BDF,...]>",
      "QEMU x-pre-copy-dirty-page-tracking=off: logs not read during pre-copy, all sent at stop-copy",
    );
}

/** The options as commander hands them over. */
export interface QemuOptionFlags {
  enableMigration?: string;
  deviceDirtyPageTracking?: string;
  preCopyDirtyPageTracking?: string;
}

/** Checks the flags (exit 2, one line) before anything is opened. */
export function parseQemuOptions(flags: QemuOptionFlags): QemuOptions {
  const em = flags.enableMigration ?? "auto";
  if (em !== "on" && em !== "auto")
    throw new UsageError(
      `--enable-migration '${em}': use on (accept migration with every page dirty on every sync) or auto (QEMU's default: that is a blocker)`,
    );
  return {
    enableMigration: em,
    deviceDirtyPageTracking: deviceSet(flags.deviceDirtyPageTracking, "--device-dirty-page-tracking"),
    preCopyDirtyPageTracking: deviceSet(flags.preCopyDirtyPageTracking, "--pre-copy-dirty-page-tracking"),
  };
}

/**
 * The tracker's options for these devices. A device named in an option but not among `ids` is a
 * usage error: the user meant a device that is not there.
 */
export function selectOptions(
  q: QemuOptions,
  ids: readonly string[],
): Pick<SelectOptions, "enableMigration" | "devices"> {
  const offFor = (set: DeviceSet, flag: string): Set<string> => {
    if (set === "none") return new Set();
    if (set === "all") return new Set(ids);
    for (const bdf of set)
      if (!ids.includes(bdf))
        throw new UsageError(
          `${flag} names ${bdf}, which is not among the devices (${ids.join(", ") || "none"})`,
        );
    return new Set(set);
  };
  const dev = offFor(q.deviceDirtyPageTracking, "--device-dirty-page-tracking");
  const pre = offFor(q.preCopyDirtyPageTracking, "--pre-copy-dirty-page-tracking");
  const devices: Record<string, { deviceDirtyPageTracking?: boolean; preCopyDirtyPageTracking?: boolean }> =
    {};
  for (const id of ids)
    if (dev.has(id) || pre.has(id))
      devices[id] = {
        ...(dev.has(id) ? { deviceDirtyPageTracking: false } : {}),
        ...(pre.has(id) ? { preCopyDirtyPageTracking: false } : {}),
      };
  return { enableMigration: q.enableMigration, devices };
}

/** The settings in QEMU's spelling ("x-device-dirty-page-tracking=off (0000:3b:00.1)"), for output. */
export function describeQemuOptions(q: QemuOptions): string[] {
  const set = (name: string, s: DeviceSet) =>
    s === "none" ? [] : [`${name}=off${s === "all" ? "" : ` (${s.join(", ")})`}`];
  return [
    `${QEMU_NAMES.enableMigration}=${q.enableMigration}`,
    ...set(QEMU_NAMES.deviceDirtyPageTracking, q.deviceDirtyPageTracking),
    ...set(QEMU_NAMES.preCopyDirtyPageTracking, q.preCopyDirtyPageTracking),
  ];
}

// --- Internal helpers ---

function deviceSet(text: string | undefined, flag: string): DeviceSet {
  if (text === undefined || text === "on") return "none";
  if (text === "off") return "all";
  const m = /^off=(.+)$/.exec(text);
  if (!m)
    throw new UsageError(`${flag} '${text}': use off (every device), off=BDF[,BDF...] (those devices) or on`);
  const bdfs = m[1]!.split(",").map((a) => parsePciAddress(a.trim()));
  return [...new Set(bdfs)];
}

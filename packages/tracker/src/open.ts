// Opening a tracking session over already-opened devices: probe, choose, build the strategies,
// create the tracker. Opening fds and mapping guest memory stay with the caller (as in QEMU, where
// the memory listener tracks what others mapped).
//
//   const { tracker, choice } = openTracker(
//     { devices: [{ id: "0000:3b:00.1", device }], iommu: { kind: "type1", container } },
//     { core, memory: [{ iova: 0n, length: 1n << 30n, kind: "ram" }] },
//   );

import { UnsupportedError } from "@vfio-dirty/vfio-adapter";
import type { BitmapCore } from "./bitmap.ts";
import { probeCaps, type TrackingTarget } from "./probe.ts";
import type { IovaRange, MemorySection } from "./ranges.ts";
import {
  chooseStrategy,
  MigrationBlockedError,
  type SelectOptions,
  type StrategyChoice,
  type StrategyName,
} from "./select.ts";
import { AllDirtyStrategy } from "./strategies/all-dirty.ts";
import { DeviceLoggingStrategy } from "./strategies/device.ts";
import { IommufdStrategy } from "./strategies/iommufd.ts";
import { Type1Strategy } from "./strategies/type1.ts";
import type { DmaMapper } from "./strategy.ts";
import { createTracker, type Tracker, type UnitConfig, type UntrackedPolicy } from "./tracker.ts";

export interface OpenOptions extends SelectOptions {
  readonly core: BitmapCore;
  /** Guest memory (GPA). */
  readonly memory: readonly MemorySection[];
  /** Query window, bytes of guest memory; default 64 GiB. */
  readonly windowBytes?: bigint;
  /** With `viommu: true`: the IOVA space devices may use, and who makes the kernel's mappings. */
  readonly viommuAperture?: readonly IovaRange[];
  readonly mapper?: DmaMapper;
  /** With `viommu: true`: what to do with mappings device logging cannot see (TrackerConfig.viommu.untracked). */
  readonly viommuUntracked?: UntrackedPolicy;
  /** Create the tracker even when migration is blocked (the choice still lists the blockers). */
  readonly ignoreBlockers?: boolean;
  /** Force a strategy (tests, benchmarks); the choice still explains what would have been taken. */
  readonly forceStrategy?: StrategyChoice["strategy"];
  readonly now?: () => number;
}

// Kept here too: callers import it from open.ts (it now lives in select.ts, which start() shares).
export { MigrationBlockedError };

/**
 * Probe, choose and build, with the strategies of `choice.fallbacks` ready for start() to move the
 * container to if the chosen one cannot START. Throws MigrationBlockedError on blockers (unless
 * ignoreBlockers); start() throws it as well if only all-dirty could start under "auto".
 */
export function openTracker(
  target: TrackingTarget,
  opts: OpenOptions,
): { tracker: Tracker; choice: StrategyChoice } {
  const pageSize = opts.pageSize ?? 4096n;
  const choice = chooseStrategy(probeCaps(target), {
    ...opts,
    guestMemory: opts.viommu ? opts.viommuAperture : opts.memory,
  });
  if (choice.blockers.length > 0 && !opts.ignoreBlockers) throw new MigrationBlockedError(choice);
  const strategy = opts.forceStrategy ?? choice.strategy;
  const units = buildUnits(strategy, target, opts, pageSize);
  // If the strategy cannot START (only START can tell: a device's span limit is not probeable),
  // the tracker moves the whole container to the next usable one, down to all-dirty.
  const chain: UnitConfig[][] = [];
  const fallbackNames = opts.forceStrategy
    ? choice.fallbacks.filter((n) => ORDER.indexOf(n) > ORDER.indexOf(strategy))
    : choice.fallbacks;
  for (const name of fallbackNames) {
    try {
      chain.push(buildUnits(name, target, opts, pageSize));
    } catch (e) {
      // e.g. iommufd without a dirty-tracking HWPT the devices are attached to: not a fallback.
      if (!(e instanceof UnsupportedError)) throw e;
    }
  }
  const tracker = createTracker({
    core: opts.core,
    units,
    memory: opts.memory,
    pageSize,
    ...(opts.windowBytes ? { windowBytes: opts.windowBytes } : {}),
    ...(opts.viommu
      ? {
          viommu: {
            ...(opts.viommuAperture ? { aperture: opts.viommuAperture } : {}),
            ...(opts.mapper ? { mapper: opts.mapper } : {}),
            ...(opts.viommuUntracked ? { untracked: opts.viommuUntracked } : {}),
          },
        }
      : {}),
    ...(opts.now ? { now: opts.now } : {}),
    startFallback: {
      chain,
      enableMigration: opts.enableMigration ?? "auto",
      ignoreBlockers: opts.ignoreBlockers ?? false,
      choice,
    },
  });
  return { tracker, choice };
}

// --- Internal helpers ---

const ORDER: readonly StrategyName[] = ["device", "iommufd", "type1", "all-dirty"];

/** The tracking units of one strategy: one per device for device logging, else one for all. */
function buildUnits(
  strategy: StrategyName,
  target: TrackingTarget,
  opts: OpenOptions,
  pageSize: bigint,
): UnitConfig[] {
  const preCopyOf = (id: string) => opts.devices?.[id]?.preCopyDirtyPageTracking !== false;
  const ids = target.devices.map((d) => d.id);
  switch (strategy) {
    case "device":
      return target.devices.map(({ id, device }) => ({
        id,
        devices: [id],
        strategy: new DeviceLoggingStrategy(device, opts.core, pageSize),
        preCopy: preCopyOf(id),
      }));
    case "type1":
      if (target.iommu.kind !== "type1") throw new UnsupportedError("type1 strategy needs a type1 container");
      return [
        {
          id: "iommu",
          devices: ids,
          strategy: new Type1Strategy(target.iommu.container, opts.core, pageSize),
          preCopy: ids.every(preCopyOf),
        },
      ];
    case "iommufd": {
      const iommu = target.iommu;
      if (iommu.kind !== "iommufd") throw new UnsupportedError("iommufd strategy needs an iommufd");
      if (!iommu.hwptIds?.length)
        throw new UnsupportedError(
          "iommufd strategy: attach the devices to a HWPT allocated with DIRTY_TRACKING and pass its id",
        );
      return [
        {
          id: "iommu",
          devices: ids,
          strategy: new IommufdStrategy(iommu.iommufd, iommu.hwptIds, iommu.ioasId, opts.core, pageSize),
          preCopy: ids.every(preCopyOf),
        },
      ];
    }
    case "all-dirty":
      return [{ id: "all", devices: ids, strategy: new AllDirtyStrategy() }];
  }
}

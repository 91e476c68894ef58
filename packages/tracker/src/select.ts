// Strategy selection: which way of tracking dirty pages a set of devices sharing one container (or
// one iommufd) can use, why the better ways were not taken, and what blocks migration.
//
// Pure: it takes what was probed (capabilities, with the call and errno of each failed probe) and
// the caller's options, and decides. Probing lives in probe.ts. The order mirrors QEMU's
// `vfio_listener_log_global_start()` (hw/vfio/listener.c): device logging only when every device
// supports it, else the IOMMU's tracking, else nothing (every page dirty on every sync).
//
//   const choice = chooseStrategy(caps, { enableMigration: "auto" });
//   choice.strategy;   // "device" | "iommufd" | "type1" | "all-dirty"
//   choice.reasons;    // [{ device: "0000:3b:00.1", strategy: "device", call: "...", errno: 25, ... }]
//   choice.blockers;   // [] when migration may proceed

import { hex } from "@vfio-dirty/vfio-adapter/util";
import type { IovaRange } from "./ranges.ts";

export type StrategyName = "device" | "iommufd" | "type1" | "all-dirty";

/** The outcome of one probe: supported, or the call that said no and its errno. */
export type Probe =
  | { readonly ok: true }
  | { readonly ok: false; readonly call: string; readonly errno?: number };

/** What was probed for one device. */
export interface DeviceCaps {
  /** PCI address (or any stable name) used in reasons. */
  readonly id: string;
  /** VFIO_DEVICE_FEATURE(PROBE|SET|DMA_LOGGING_START). */
  readonly dmaLogging: Probe;
  /** IOMMU_GET_HW_INFO reports IOMMU_HW_CAP_DIRTY_TRACKING for this device's IOMMU (iommufd only). */
  readonly iommuDirtyCap?: Probe;
  /** VFIO_DEVICE_FEATURE(GET|MIGRATION): the migration flags, or undefined when the device cannot migrate. */
  readonly migration?: { readonly stopCopy: boolean; readonly p2p: boolean; readonly preCopy: boolean };
  /**
   * Largest address span the device's DMA logging is known to cover (learned from EOPNOTSUPP, or
   * from a profile). Undefined: not known, assumed sufficient.
   */
  readonly maxLoggingSpan?: bigint;
}

/** What was probed for the container (type1) or the iommufd the devices share. */
export interface ContainerCaps {
  readonly backend: "type1" | "iommufd";
  /** type1: VFIO_IOMMU_GET_INFO migration capability; undefined when absent (with the probe that said so). */
  readonly type1Migration?:
    | { readonly ok: true; readonly pgsizeBitmap: bigint; readonly maxDirtyBitmapSize: bigint }
    | { readonly ok: false; readonly call: string; readonly errno?: number };
  /** iommufd: IOMMU_HWPT_ALLOC with IOMMU_HWPT_ALLOC_DIRTY_TRACKING accepted. */
  readonly hwptDirtyAlloc?: Probe;
  /** Usable IOVA ranges of the IOMMU (type1 IOVA range capability, IOMMU_IOAS_IOVA_RANGES). */
  readonly iovaRanges?: readonly IovaRange[];
}

export interface DeviceOptions {
  /** QEMU x-device-dirty-page-tracking; default true. false (=off) forbids device logging for this device. */
  readonly deviceDirtyPageTracking?: boolean;
  /** QEMU x-pre-copy-dirty-page-tracking; default true. false: not queried during pre-copy. */
  readonly preCopyDirtyPageTracking?: boolean;
}

export interface SelectOptions {
  /** QEMU enable-migration: "auto" (default) makes all-dirty a blocker; "on" accepts it. */
  readonly enableMigration?: "auto" | "on";
  /** Options per device id. */
  readonly devices?: Readonly<Record<string, DeviceOptions>>;
  /** A vIOMMU is present (devices DMA in IOVA space). */
  readonly viommu?: boolean;
  /** "allow" (default): vfio-dirty tracks devices behind a vIOMMU. "block": QEMU's behaviour. */
  readonly viommuDeviceTracking?: "block" | "allow";
  /** Tracking page size in bytes; default 4096. */
  readonly pageSize?: bigint;
  /** Guest memory that must be tracked (GPA, or IOVA in use with a vIOMMU). */
  readonly guestMemory?: readonly IovaRange[];
}

export interface SelectionReason {
  /** The device concerned, or undefined for the container as a whole. */
  readonly device?: string;
  /** The strategy that was not taken. */
  readonly strategy: Exclude<StrategyName, "all-dirty">;
  readonly call?: string;
  readonly errno?: number;
  readonly option?: string;
  readonly message: string;
}

export interface Blocker {
  readonly kind: "no-tracking" | "viommu" | "p2p" | "no-migration" | "memory-coverage";
  readonly device?: string;
  readonly option?: string;
  readonly message: string;
}

export interface StrategyChoice {
  readonly strategy: StrategyName;
  /**
   * What to move the whole container to if `strategy` cannot START (a device refusing the span,
   * a HWPT refusing dirty tracking): the other strategies the probe found usable, best first,
   * always ending with "all-dirty" (which the tracker accepts only as enableMigration allows).
   */
  readonly fallbacks: readonly StrategyName[];
  readonly reasons: readonly SelectionReason[];
  readonly blockers: readonly Blocker[];
  readonly warnings: readonly string[];
}

/** Decide the strategy for devices sharing one container or iommufd. Throws RangeError on empty input. */
export function chooseStrategy(
  caps: { readonly container: ContainerCaps; readonly devices: readonly DeviceCaps[] },
  options: SelectOptions = {},
): StrategyChoice {
  if (caps.devices.length === 0) throw new RangeError("chooseStrategy: no devices");
  const pageSize = options.pageSize ?? 4096n;
  const reasons: SelectionReason[] = [];
  const blockers: Blocker[] = [];
  const warnings: string[] = [];
  const blockViommu = options.viommu === true && options.viommuDeviceTracking === "block";

  // 1. Device logging: every device must support it and none may have it turned off.
  let deviceOk = true;
  for (const d of caps.devices) {
    const opt = options.devices?.[d.id];
    if (opt?.deviceDirtyPageTracking === false) {
      deviceOk = false;
      reasons.push({
        device: d.id,
        strategy: "device",
        option: "x-device-dirty-page-tracking",
        message: "device dirty page tracking turned off (x-device-dirty-page-tracking=off)",
      });
    } else if (!d.dmaLogging.ok) {
      deviceOk = false;
      reasons.push(failed(d.id, "device", d.dmaLogging, "device does not support DMA logging"));
    } else if (blockViommu) {
      deviceOk = false;
      reasons.push({
        device: d.id,
        strategy: "device",
        option: "viommuDeviceTracking",
        message:
          "device dirty tracking behind a vIOMMU is blocked by viommuDeviceTracking=block (QEMU's behaviour)",
      });
    } else if (d.maxLoggingSpan !== undefined && options.guestMemory !== undefined) {
      const need = totalLength(options.guestMemory);
      if (need > d.maxLoggingSpan) {
        deviceOk = false;
        reasons.push({
          device: d.id,
          strategy: "device",
          message: `guest memory (${hex(need)} bytes) exceeds the span the device can log (${hex(d.maxLoggingSpan)})`,
        });
      }
    }
  }

  // 2./3. The IOMMU's own tracking.
  const { container } = caps;
  let iommuStrategy: "iommufd" | "type1" | undefined;
  if (container.backend === "iommufd") {
    let ok = true;
    for (const d of caps.devices) {
      const cap = d.iommuDirtyCap ?? { ok: false as const, call: "IOMMU_GET_HW_INFO" };
      if (!cap.ok) {
        ok = false;
        reasons.push(
          failed(d.id, "iommufd", cap, "the device's IOMMU reports no IOMMU_HW_CAP_DIRTY_TRACKING"),
        );
      }
    }
    const alloc = container.hwptDirtyAlloc ?? {
      ok: false as const,
      call: "IOMMU_HWPT_ALLOC(DIRTY_TRACKING)",
    };
    if (!alloc.ok) {
      ok = false;
      reasons.push(failed(undefined, "iommufd", alloc, "a HWPT with DIRTY_TRACKING was not accepted"));
    }
    if (ok) iommuStrategy = "iommufd";
    reasons.push({ strategy: "type1", message: "the devices use iommufd, not a type1 container" });
  } else {
    reasons.push({ strategy: "iommufd", message: "the devices use a type1 container, not iommufd" });
    const mig = container.type1Migration ?? { ok: false as const, call: "VFIO_IOMMU_GET_INFO" };
    if (!mig.ok) {
      reasons.push(failed(undefined, "type1", mig, "the container has no migration capability"));
    } else if ((mig.pgsizeBitmap & pageSize) === 0n) {
      reasons.push({
        strategy: "type1",
        call: "VFIO_IOMMU_GET_INFO",
        message: `the migration capability's pgsize_bitmap ${hex(mig.pgsizeBitmap)} lacks the tracking page size ${hex(pageSize)}`,
      });
    } else {
      iommuStrategy = "type1";
    }
  }

  // Best first: what the probe found usable, then the always-possible fallback. An IOMMU strategy
  // that cannot cover guest memory would be a blocker if chosen (below), so as a fallback behind
  // device logging it is left out.
  const iommuFallbackOk =
    iommuStrategy === undefined ||
    !deviceOk ||
    !container.iovaRanges ||
    !options.guestMemory ||
    options.guestMemory.every((r) => covered(r, container.iovaRanges!));
  if (!iommuFallbackOk)
    reasons.push({
      strategy: iommuStrategy!,
      message: "not a fallback for device logging: guest memory lies outside the IOMMU's usable IOVA ranges",
    });
  const usable: StrategyName[] = [
    ...(deviceOk ? (["device"] as const) : []),
    ...(iommuStrategy !== undefined && iommuFallbackOk ? [iommuStrategy] : []),
    "all-dirty",
  ];
  const strategy = usable[0]!;
  const fallbacks = usable.slice(1);

  if (strategy === "type1")
    warnings.push(
      "type1 reports every mapped page dirty unless all devices pin pages: expect the whole guest on every sync",
    );

  // Memory the chosen IOMMU strategy cannot cover.
  if ((strategy === "type1" || strategy === "iommufd") && container.iovaRanges && options.guestMemory) {
    for (const r of options.guestMemory) {
      if (!covered(r, container.iovaRanges))
        blockers.push({
          kind: "memory-coverage",
          message: `guest memory ${hex(r.iova)}+${hex(r.length)} lies outside the IOMMU's usable IOVA ranges`,
        });
    }
  }

  if (strategy === "all-dirty") {
    if (blockViommu) {
      blockers.push({
        kind: "viommu",
        option: "viommuDeviceTracking",
        message:
          "migration with a vIOMMU needs IOMMU dirty tracking when viommuDeviceTracking=block (QEMU's rule)",
      });
    }
    if ((options.enableMigration ?? "auto") === "auto") {
      blockers.push({
        kind: "no-tracking",
        option: "enable-migration",
        message:
          "no device or IOMMU dirty tracking: every page would be dirty on every sync; set enable-migration=on to accept that",
      });
    } else {
      warnings.push("no dirty tracking: every page is reported dirty on every sync (enable-migration=on)");
    }
  }

  for (const d of caps.devices) {
    if (!d.migration?.stopCopy)
      blockers.push({
        kind: "no-migration",
        device: d.id,
        message: "device does not support migration (STOP_COPY)",
      });
  }
  if (caps.devices.length > 1) {
    for (const d of caps.devices) {
      if (d.migration && !d.migration.p2p)
        blockers.push({
          kind: "p2p",
          device: d.id,
          message:
            "several devices migrate together but this one lacks P2P migration support (VFIO_MIGRATION_P2P)",
        });
    }
  }
  return { strategy, fallbacks, reasons, blockers, warnings };
}

/** Migration cannot proceed: the blockers, each with its reason (thrown by openTracker and start()). */
export class MigrationBlockedError extends Error {
  override name = "MigrationBlockedError";
  constructor(readonly choice: StrategyChoice) {
    super(
      `migration is blocked: ${choice.blockers.map((b) => (b.device ? `${b.device}: ` : "") + b.message).join("; ")}`,
    );
  }
}

// --- Internal helpers ---

function failed(
  device: string | undefined,
  strategy: SelectionReason["strategy"],
  probe: { readonly call: string; readonly errno?: number },
  message: string,
): SelectionReason {
  return {
    ...(device !== undefined ? { device } : {}),
    strategy,
    call: probe.call,
    ...(probe.errno !== undefined ? { errno: probe.errno } : {}),
    message,
  };
}

function totalLength(ranges: readonly IovaRange[]): bigint {
  return ranges.reduce((s, r) => s + r.length, 0n);
}

/** True when `r` lies inside the union of `within` (which may be unsorted and adjacent). */
function covered(r: IovaRange, within: readonly IovaRange[]): boolean {
  const sorted = [...within].sort((a, b) => (a.iova < b.iova ? -1 : a.iova > b.iova ? 1 : 0));
  let at = r.iova;
  const end = r.iova + r.length;
  for (const w of sorted) {
    if (w.iova > at) break;
    if (w.iova + w.length > at) at = w.iova + w.length;
    if (at >= end) return true;
  }
  return at >= end;
}

// Probing: ask the kernel what each strategy needs, recording the call and errno of every "no",
// so select.ts can decide and explain. Reads only; the one exception is iommufd, whose dirty
// capability is only proven by allocating a HWPT with DIRTY_TRACKING (freed again right away).
//
//   const caps = probeCaps({ devices: [{ id, device }], iommu: { kind: "type1", container } });
//   const choice = chooseStrategy(caps, options);

import { IoctlError, uapi } from "@vfio-dirty/vfio-adapter";
import type { IovaRange } from "./ranges.ts";
import type { ContainerCaps, DeviceCaps, Probe } from "./select.ts";
import type { LoggingDevice } from "./strategies/device.ts";
import type { DirtyIommufd } from "./strategies/iommufd.ts";
import type { Type1Container } from "./strategies/type1.ts";

/** What probing needs of a device (the adapter's Device has all of it). */
export interface ProbedDevice extends LoggingDevice {
  featureProbe(feature: number, ops?: number): boolean;
  /** 0 when supported, else the errno the PROBE was refused with (the adapter's Device has it). */
  featureProbeErrno?(feature: number, ops?: number): number;
  getMigrationFlags(): number;
  getMigDataSize(): bigint;
}

export type IommuTarget =
  | {
      readonly kind: "type1";
      readonly container: Type1Container & {
        getInfo(): {
          caps: {
            iovaRanges?: { start: bigint; end: bigint }[];
            migration?: { pgsizeBitmap: bigint; maxDirtyBitmapSize: bigint };
          };
        };
      };
    }
  | {
      readonly kind: "iommufd";
      readonly iommufd: DirtyIommufd & {
        getHwInfo(devId: number): { outCapabilities: bigint };
        hwptAlloc(a: { devId: number; ptId: number; flags?: number }): number;
        destroy(id: number): void;
        ioasIovaRanges?(ioasId: number): { ranges: { start: bigint; last: bigint }[] };
      };
      readonly ioasId: number;
      /** iommufd device id of each device (from VFIO_DEVICE_BIND_IOMMUFD), by device id. */
      readonly devIds: Readonly<Record<string, number>>;
      /** Dirty-tracking HWPTs the devices are already attached to, if any (then no trial alloc). */
      readonly hwptIds?: readonly number[];
    };

export interface TrackingTarget {
  readonly devices: readonly { readonly id: string; readonly device: ProbedDevice }[];
  readonly iommu: IommuTarget;
}

const LOG_PROBE_CALL = "VFIO_DEVICE_FEATURE(PROBE|SET|DMA_LOGGING_START)";

/** Probe every capability chooseStrategy() weighs. Kernel failures become reasons, never exceptions. */
export function probeCaps(target: TrackingTarget): { container: ContainerCaps; devices: DeviceCaps[] } {
  const devices: DeviceCaps[] = target.devices.map(({ id, device }) => {
    const dmaLogging = probeDmaLogging(device);
    let migration: DeviceCaps["migration"];
    try {
      const flags = device.getMigrationFlags();
      migration = {
        stopCopy: (flags & uapi.VFIO_MIGRATION_STOP_COPY) !== 0,
        p2p: (flags & uapi.VFIO_MIGRATION_P2P) !== 0,
        preCopy: (flags & uapi.VFIO_MIGRATION_PRE_COPY) !== 0,
      };
    } catch (e) {
      if (!(e instanceof IoctlError)) throw e;
      migration = undefined;
    }
    const caps: DeviceCaps = { id, dmaLogging, ...(migration ? { migration } : {}) };
    if (target.iommu.kind !== "iommufd") return caps;
    const { iommufd, devIds } = target.iommu;
    const devId = devIds[id];
    const iommuDirtyCap: Probe =
      devId === undefined
        ? { ok: false, call: "IOMMU_GET_HW_INFO (device not bound to the iommufd)" }
        : probe(
            "IOMMU_GET_HW_INFO",
            () =>
              (iommufd.getHwInfo(devId).outCapabilities & BigInt(uapi.IOMMU_HW_CAP_DIRTY_TRACKING)) !== 0n,
            // The call succeeded; the capability bit is simply absent.
            "IOMMU_GET_HW_INFO: out_capabilities lacks IOMMU_HW_CAP_DIRTY_TRACKING",
          );
    return { ...caps, iommuDirtyCap };
  });

  const iommu = target.iommu;
  if (iommu.kind === "type1") {
    try {
      const { caps } = iommu.container.getInfo();
      const iovaRanges: IovaRange[] | undefined = caps.iovaRanges?.map((r) => ({
        iova: r.start,
        length: r.end - r.start + 1n,
      }));
      const type1Migration: ContainerCaps["type1Migration"] = caps.migration
        ? {
            ok: true,
            pgsizeBitmap: caps.migration.pgsizeBitmap,
            maxDirtyBitmapSize: caps.migration.maxDirtyBitmapSize,
          }
        : { ok: false, call: "VFIO_IOMMU_GET_INFO (no VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION)" };
      return {
        container: { backend: "type1", type1Migration, ...(iovaRanges ? { iovaRanges } : {}) },
        devices,
      };
    } catch (e) {
      if (!(e instanceof IoctlError)) throw e;
      return {
        container: { backend: "type1", type1Migration: { ok: false, call: e.op, errno: e.errno } },
        devices,
      };
    }
  }

  let hwptDirtyAlloc: Probe;
  if (iommu.hwptIds && iommu.hwptIds.length > 0) hwptDirtyAlloc = { ok: true };
  else {
    const first = devices.find((d) => iommu.devIds[d.id] !== undefined);
    hwptDirtyAlloc =
      first === undefined
        ? { ok: false, call: "IOMMU_HWPT_ALLOC (no device bound)" }
        : probe("IOMMU_HWPT_ALLOC(DIRTY_TRACKING)", () => {
            const id = iommu.iommufd.hwptAlloc({
              devId: iommu.devIds[first.id]!,
              ptId: iommu.ioasId,
              flags: uapi.IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
            });
            iommu.iommufd.destroy(id);
            return true;
          });
  }
  let iovaRanges: IovaRange[] | undefined;
  try {
    iovaRanges = iommu.iommufd
      .ioasIovaRanges?.(iommu.ioasId)
      .ranges.map((r) => ({ iova: r.start, length: r.last - r.start + 1n }));
  } catch (e) {
    if (!(e instanceof IoctlError)) throw e;
  }
  return {
    container: { backend: "iommufd", hwptDirtyAlloc, ...(iovaRanges ? { iovaRanges } : {}) },
    devices,
  };
}

/**
 * Device state still to send at stop-copy, for predictPrecopy's `deviceStateBytes`: the sum of
 * each device's VFIO_DEVICE_FEATURE MIG_DATA_SIZE (Linux 6.2+). Devices that cannot answer
 * (ENOTTY on older kernels) are listed in `unknown` rather than counted as 0 silently.
 */
export function readDeviceStateBytes(
  devices: readonly { readonly id: string; readonly device: { getMigDataSize(): bigint } }[],
): {
  bytes: bigint;
  unknown: string[];
} {
  let bytes = 0n;
  const unknown: string[] = [];
  for (const { id, device } of devices) {
    try {
      bytes += device.getMigDataSize();
    } catch (e) {
      if (!(e instanceof IoctlError)) throw e;
      unknown.push(id);
    }
  }
  return { bytes, unknown };
}

// --- Internal helpers ---

/** The DMA logging PROBE, quoting the errno that said no (ENOTTY on plain vfio-pci) when the device can tell it. */
function probeDmaLogging(device: ProbedDevice): Probe {
  const ops = uapi.VFIO_DEVICE_FEATURE_SET;
  const feature = uapi.VFIO_DEVICE_FEATURE_DMA_LOGGING_START;
  if (!device.featureProbeErrno) return probe(LOG_PROBE_CALL, () => device.featureProbe(feature, ops));
  try {
    const errno = device.featureProbeErrno(feature, ops);
    return errno === 0 ? { ok: true } : { ok: false, call: LOG_PROBE_CALL, errno };
  } catch (e) {
    if (e instanceof IoctlError) return { ok: false, call: e.op, errno: e.errno };
    throw e;
  }
}

function probe(call: string, ask: () => boolean, whenNo?: string): Probe {
  try {
    // featureProbe folds ENOTTY (unknown feature) and EINVAL (operation unsupported) into false.
    return ask() ? { ok: true } : { ok: false, call: whenNo ?? `${call}: not supported (ENOTTY or EINVAL)` };
  } catch (e) {
    if (e instanceof IoctlError) return { ok: false, call: e.op, errno: e.errno };
    throw e;
  }
}

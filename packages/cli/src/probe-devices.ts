// Probing devices for `probe`: what sysfs says about each device (always), what the kernel says
// when --open is given, and the tracker's strategy choice over the set.
//
// sysfs alone cannot tell whether a device's driver implements DMA logging, nor its migration
// flags: those need the device opened. Without --open the choice is marked provisional, DMA
// logging counts as "not probed", and blockers that follow from not knowing are listed as
// possible rather than found (only --open makes probe exit 3 for them).

import {
  type Blocker,
  type ContainerCaps,
  chooseStrategy,
  type DeviceCaps,
  probeCaps,
  type SelectionReason,
  type StrategyName,
} from "@vfio-dirty/tracker";
import {
  type Device,
  Errno,
  errnoName,
  type Host,
  IoctlError,
  type PciDevice,
  SyscallError,
} from "@vfio-dirty/vfio-adapter";
import { UsageError } from "./errors.ts";
import { hex4 } from "./format/units.ts";
import {
  DEFAULT_QEMU_OPTIONS,
  describeQemuOptions,
  type QemuOptions,
  selectOptions,
} from "./parse/qemu-options.ts";
import type { PciIds } from "./pci-ids.ts";
import { whatIf } from "./probe-what-if.ts";
import { openVfio } from "./vfio-open.ts";

/** One device in `probe --json`. */
export interface DeviceProbe {
  address: string;
  vendorId: string;
  deviceId: string;
  /** Vendor and device name from the host's pci.ids; null when it is not there or lists neither. */
  name: string | null;
  driver: string | null;
  numaNode: number | null;
  iommuGroup: { id: number; members: string[]; others: string[]; viable: boolean; vfioPath: string } | null;
  cdev: string | null;
  iommu: {
    name: string;
    kind: string;
    dirtyTracking: boolean | null;
    kernelDirtyTracking: boolean | null;
    source: string;
  } | null;
  /** null = not probed (sysfs only). */
  dmaLogging: { supported: boolean | null; errno: number | null; why: string | null };
  /** null = not probed, or not migratable (see `busy`). */
  migration: {
    flags: ("stop-copy" | "p2p" | "pre-copy")[];
    /** VFIO_MIGRATION_PRE_COPY: the device has pre-copy data (VFIO_MIG_GET_PRECOPY_INFO). */
    preCopy: boolean;
    /**
     * Whether PROBE|SET of VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 (Linux 7.1+) succeeds, i.e. the
     * device can report REINIT (new initial data) during pre-copy; else the errno: ENOTTY on
     * kernels before 7.1, EINVAL on a device without PRE_COPY.
     */
    precopyInfoV2: { supported: boolean; errno: number | null };
  } | null;
  /** True when --open found the group or device held by another process. */
  busy: boolean | null;
}

/** The set's verdict in `probe --json`. */
export interface SetProbe {
  devices: DeviceProbe[];
  strategy: StrategyName;
  /**
   * What the tracker moves to, in order, if the kernel refuses the strategy's START (the probe
   * only asks what is supported; START itself can still fail, e.g. on a span the device cannot log).
   */
  fallbacks: StrategyName[];
  /** True when decided from sysfs alone (no --open). */
  provisional: boolean;
  reasons: string[];
  reasonDetails: SelectionReason[];
  blockers: string[];
  blockerDetails: Blocker[];
  /** Blockers that follow only from what sysfs cannot tell (without --open). */
  possibleBlockers: string[];
  warnings: string[];
  /** QEMU's options the choice was made with, in QEMU's spelling ("enable-migration=auto"). */
  qemuOptions: string[];
  /** What flipping each QEMU option would change ("with x-device-dirty-page-tracking=off: iommufd"). */
  whatIf: WhatIf[];
}

/** One QEMU option flipped, and the choice it would give. */
export interface WhatIf {
  /** QEMU's spelling: "x-device-dirty-page-tracking=off". */
  option: string;
  strategy: StrategyName;
  /** Blockers the choice would have (from the tracker's selection). */
  blockers: string[];
  /** One line: what changes. */
  change: string;
}

export async function probeDevices(
  host: Host,
  devices: readonly PciDevice[],
  opts: { open: boolean; names?: PciIds; qemu?: QemuOptions },
): Promise<SetProbe> {
  const qemu = opts.qemu ?? DEFAULT_QEMU_OPTIONS;
  // Before anything is opened: an option naming a device that is not probed is a usage error.
  const select = selectOptions(
    qemu,
    devices.map((d) => d.address),
  );
  const probes = devices.map((d) => sysfsFacts(d, opts.names));
  const caps: DeviceCaps[] = [];
  let container: ContainerCaps = { backend: "type1" };
  if (opts.open) {
    const opened = openAndProbe(host, devices, probes);
    caps.push(...opened.devices);
    container = opened.container;
  } else {
    // Plain vfio-pci implements neither DMA logging nor migration (only variant drivers such as
    // mlx5_vfio_pci do): certain. A variant driver is assumed to log until --open asks.
    for (const p of probes)
      caps.push({
        id: p.address,
        dmaLogging:
          p.driver === "vfio-pci"
            ? { ok: false, call: "driver vfio-pci (only variant drivers implement DMA logging)" }
            : { ok: true },
        iommuDirtyCap: p.iommu?.dirtyTracking
          ? { ok: true }
          : { ok: false, call: `IOMMU ${p.iommu?.name ?? "(none)"}: no dirty-tracking bits in sysfs` },
        // Migration flags are not in sysfs: left unknown, so they show up as a possible blocker.
      });
    // What track would use: iommufd when every device has a cdev, else type1 (whose migration
    // capability every kernel since 5.8 offers). Both are assumptions until --open asks.
    const hwDirty = probes.every((p) => p.iommu?.dirtyTracking === true);
    container = probes.every((p) => p.cdev !== null)
      ? {
          backend: "iommufd",
          hwptDirtyAlloc: hwDirty
            ? { ok: true }
            : { ok: false, call: "IOMMU hardware without dirty bits (sysfs)" },
        }
      : {
          backend: "type1",
          type1Migration: { ok: true, pgsizeBitmap: 0x1000n, maxDirtyBitmapSize: 256n << 20n },
        };
  }
  const choice = chooseStrategy({ container, devices: caps }, select);
  const blockers: string[] = [];
  const blockerDetails: Blocker[] = [];
  const possibleBlockers: string[] = [];
  for (const p of probes) {
    if (!p.iommuGroup) blockers.push(`${p.address}: not behind an IOMMU; VFIO cannot use it safely`);
    else if (!p.iommuGroup.viable)
      blockers.push(
        `${p.address}: IOMMU group ${p.iommuGroup.id} is not viable (a member is bound to another driver)`,
      );
  }
  for (const b of choice.blockers) {
    const line = `${b.device ? `${b.device}: ` : ""}${b.message}`;
    if (opts.open) {
      blockers.push(line);
      blockerDetails.push(b);
    } else if (
      b.kind === "no-migration" &&
      b.device &&
      probes.find((p) => p.address === b.device)?.driver !== "vfio-pci"
    )
      possibleBlockers.push(`${b.device}: migration support is not visible in sysfs; --open asks the device`);
    else possibleBlockers.push(line);
  }
  return {
    devices: probes,
    strategy: choice.strategy,
    fallbacks: [...choice.fallbacks],
    provisional: !opts.open,
    reasons: choice.reasons.map(reasonLine),
    reasonDetails: [...choice.reasons],
    blockers,
    blockerDetails,
    possibleBlockers,
    warnings: [...choice.warnings],
    qemuOptions: describeQemuOptions(qemu),
    whatIf: whatIf({ container, devices: caps }, qemu, choice),
  };
}

// --- Internal helpers ---

function sysfsFacts(d: PciDevice, names: PciIds | undefined): DeviceProbe {
  return {
    address: d.address,
    vendorId: hex4(d.vendorId),
    deviceId: hex4(d.deviceId),
    name: names?.name(d.vendorId, d.deviceId) ?? null,
    driver: d.driver ?? null,
    numaNode: d.numaNode ?? null,
    iommuGroup: d.iommuGroup
      ? {
          id: d.iommuGroup.id,
          members: [...d.iommuGroup.members],
          others: [...d.iommuGroup.others],
          viable: d.iommuGroup.viable,
          vfioPath: d.iommuGroup.vfioPath,
        }
      : null,
    cdev: d.vfioCdev?.path ?? null,
    iommu: d.iommu
      ? {
          name: d.iommu.name,
          kind: d.iommu.hardware.kind,
          dirtyTracking: d.iommu.hardware.dirtyTracking ?? null,
          kernelDirtyTracking: null,
          source: d.iommu.hardware.source,
        }
      : null,
    dmaLogging: { supported: null, errno: null, why: "use --open" },
    migration: null,
    busy: null,
  };
}

/**
 * Opens each device on its own (as track would: iommufd when it can, else type1, no memory
 * mapped) and asks the kernel through the tracker's probeCaps. A device held by another process
 * is marked busy and probed no further. Every fd is closed again before the next device.
 */
function openAndProbe(
  host: Host,
  devices: readonly PciDevice[],
  probes: DeviceProbe[],
): { devices: DeviceCaps[]; container: ContainerCaps } {
  const caps: DeviceCaps[] = [];
  let container: ContainerCaps | undefined;
  devices.forEach((dev, i) => {
    const p = probes[i]!;
    let opened: ReturnType<typeof openVfio>;
    try {
      opened = openVfio(host, [dev], { memory: [] });
    } catch (err) {
      const cause: unknown = err instanceof UsageError ? err.cause : err;
      const errno = cause instanceof SyscallError || cause instanceof IoctlError ? cause.errno : undefined;
      if (errno === undefined) throw err;
      p.busy = errno === Errno.EBUSY;
      p.dmaLogging = {
        supported: null,
        errno,
        why: p.busy ? "busy: held by another process (QEMU?)" : (cause as Error).message,
      };
      caps.push({
        id: dev.address,
        dmaLogging: { ok: false, call: (cause as { op?: string }).op ?? "open", errno },
      });
      return;
    }
    try {
      p.busy = false;
      const probed = probeCaps(opened.target);
      container ??= probed.container;
      const c = probed.devices[0]!;
      caps.push(c);
      p.dmaLogging = c.dmaLogging.ok
        ? { supported: true, errno: null, why: null }
        : { supported: false, errno: c.dmaLogging.errno ?? null, why: c.dmaLogging.call };
      if (c.migration) {
        const v2 = precopyInfoV2Errno(opened.devices.get(dev.address)!);
        p.migration = {
          flags: [
            ...(c.migration.stopCopy ? (["stop-copy"] as const) : []),
            ...(c.migration.p2p ? (["p2p"] as const) : []),
            ...(c.migration.preCopy ? (["pre-copy"] as const) : []),
          ],
          preCopy: c.migration.preCopy,
          precopyInfoV2: { supported: v2 === 0, errno: v2 === 0 ? null : v2 },
        };
      }
      if (p.iommu && c.iommuDirtyCap) p.iommu.kernelDirtyTracking = c.iommuDirtyCap.ok;
    } finally {
      opened.close();
    }
  });
  return {
    devices: caps,
    container: container ?? {
      backend: "type1",
      type1Migration: { ok: false, call: "no device could be opened" },
    },
  };
}

function reasonLine(r: SelectionReason): string {
  const where = r.device ? `${r.device}: ` : "";
  const errno = r.errno !== undefined ? ` (${errnoName(r.errno)})` : "";
  return `${where}not ${r.strategy}: ${r.message}${r.call ? ` [${r.call}${errno}]` : ""}`;
}

/** The v2 PROBE's answer: 0, or the errno that said no (any kernel failure counts as a no). */
function precopyInfoV2Errno(device: Device): number {
  try {
    return device.precopyInfoV2Errno();
  } catch (e) {
    if (e instanceof IoctlError) return e.errno;
    throw e;
  }
}

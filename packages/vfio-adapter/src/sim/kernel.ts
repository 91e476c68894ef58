// The simulated kernel's state: devices, groups, containers, iommufd contexts, the fd table and
// the DMA path that ties them to guest memory. The ioctl handlers live in vfio-ioctl.ts and
// iommufd-ioctl.ts; this file owns the objects they act on.
//
// DMA path (what a device write does):
//   device --iova--> [its IOMMU: type1 container mapping | iommufd HWPT/IOAS area] --vaddr-->
//   [user memory: a registered buffer gets the bytes | guest RAM: recorded at its GPA]
// and on the way it is logged by whatever tracks it: the device's DMA log (by IOVA, when a logged
// range covers it), the HWPT's dirty bits (when tracking is enabled), type1's pinned-page bitmap
// (pinned-scope devices only). A write with no translation is an IOMMU fault and dirties nothing.

import { Errno } from "../errors.ts";
import { VFIO_MIGRATION_P2P, VFIO_MIGRATION_PRE_COPY, VFIO_MIGRATION_STOP_COPY } from "../uapi/index.ts";
import { AddressSpace } from "./address-space.ts";
import { SimClock, type SimTime } from "./clock.ts";
import { DmaLog } from "./dma-log.ts";
import { FaultInjector } from "./faults.ts";
import { GroundTruth } from "./ground-truth.ts";
import type { BoundDevice, IommufdContext } from "./iommufd.ts";
import { MigrationFsm, type MigrationModel, type MigrationSession } from "./migration.ts";
import type { DeviceJson, Profile, Range } from "./profile.ts";
import { u64 } from "./profile.ts";
import { buildSysfs, type SimSysfs } from "./sysfs-tree.ts";
import type { Type1Iommu } from "./type1.ts";
import { createWorkload, type Workload } from "./workload.ts";

const PAGE = 4096n;
/** Region offsets on a device fd: index << 40, as vfio-pci (VFIO_PCI_OFFSET_SHIFT). */
export const REGION_SHIFT = 40n;

export interface SimDevice {
  readonly json: DeviceJson;
  readonly bdf: string;
  /** N of /dev/vfio/devices/vfioN. */
  readonly index: number;
  readonly group: SimGroup;
  /** Present when the device's driver implements log_ops. */
  readonly log: DmaLog | undefined;
  /** Present when the device's driver implements mig_ops. */
  readonly fsm: MigrationFsm | undefined;
  readonly pinnedScope: boolean;
  /** Its IOMMU can track dirty pages (IOMMU_HW_CAP_DIRTY_TRACKING). */
  readonly iommuDirty: boolean;
  readonly workload: Workload;
  /** PCI config space (4 KiB, PCIe). */
  readonly config: Uint8Array;
  /** Open device fds through the group path. */
  groupFds: number;
  /** The cdev file currently bound to an iommufd, if any. */
  cdev: CdevFile | undefined;
  /** The device's tracker failed (injected): REPORT answers EIO until logging restarts. */
  logBroken: boolean;
  /** VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 was SET (7.1+); the core clears it at the last close. */
  precopyInfoV2: boolean;
}

export interface SimGroup {
  readonly id: number;
  readonly devices: SimDevice[];
  /** Every member is bound to a VFIO driver (or a DMA-owner-friendly one). */
  readonly viable: boolean;
  /** The open group fd (a group opens once at a time). */
  openFd: number | undefined;
  /** The group fd was closed while device fds still hold it. */
  releasePending: boolean;
  container: SimContainer | undefined;
}

export interface SimContainer {
  readonly groups: Set<SimGroup>;
  iommu: Type1Iommu | undefined;
}

export interface CdevFile {
  readonly kind: "cdev";
  readonly device: SimDevice;
  bound: { ctx: IommufdContext; idev: BoundDevice } | undefined;
}

export type SimFile =
  | { readonly kind: "container"; readonly container: SimContainer }
  | { readonly kind: "group"; readonly group: SimGroup }
  | { readonly kind: "device"; readonly device: SimDevice }
  | CdevFile
  | { readonly kind: "iommufd"; readonly ctx: IommufdContext }
  | { readonly kind: "mig-data"; readonly device: SimDevice; readonly session: MigrationSession };

export class SimKernel {
  readonly space = new AddressSpace();
  readonly clock: SimClock;
  readonly truth = new GroundTruth();
  readonly faults: FaultInjector;
  readonly devices: SimDevice[] = [];
  readonly groups = new Map<number, SimGroup>();
  readonly files = new Map<number, SimFile>();
  readonly sysfs: SimSysfs;
  /** Guest memory sections with the user address ("HVA") QEMU would map them at. */
  readonly guestMemory: { name: string; kind: "ram" | "bar"; gpa: bigint; length: bigint; hva: bigint }[];

  constructor(
    readonly profile: Profile,
    clockMode: "virtual" | "wall",
  ) {
    this.clock = new SimClock(clockMode);
    this.faults = new FaultInjector(profile.seed);
    for (const f of profile.faults) this.faults.add(f);
    this.guestMemory = profile.memory.map((m) => ({ ...m, hva: this.space.reserveGuestRam(m.length) }));
    const region = this.defaultDmaRegion();
    const extraDrivers = new Map<number, (string | undefined)[]>();
    for (const g of profile.groups)
      extraDrivers.set(
        g.id,
        g.members.map((m) => m.driver),
      );
    profile.devices.forEach((d, i) => {
      let group = this.groups.get(d.group);
      if (!group) {
        const others = extraDrivers.get(d.group) ?? [];
        const viable = others.every(
          (drv) => drv === undefined || drv === "pci-stub" || drv === "pcieport" || /vfio/.test(drv),
        );
        group = {
          id: d.group,
          devices: [],
          viable,
          openFd: undefined,
          releasePending: false,
          container: undefined,
        };
        this.groups.set(d.group, group);
      }
      const migModel = migrationModel(d);
      const device: SimDevice = {
        json: d,
        bdf: d.bdf,
        index: i,
        group,
        log: d.dmaLogging
          ? new DmaLog({
              ...(d.dmaLogging.maxRanges !== undefined ? { maxRanges: d.dmaLogging.maxRanges } : {}),
              ...(d.dmaLogging.maxSpanLog2 !== undefined ? { maxSpanLog2: d.dmaLogging.maxSpanLog2 } : {}),
              ...(d.dmaLogging.restartErrno !== undefined ? { restartErrno: d.dmaLogging.restartErrno } : {}),
              ...(d.dmaLogging.quirks !== undefined ? { quirks: d.dmaLogging.quirks } : {}),
              minPageSize: u64(d.dmaLogging.minPageSize ?? 4096, "minPageSize"),
              maxPageSize: u64(d.dmaLogging.maxPageSize ?? "0x40000000", "maxPageSize"),
            })
          : undefined,
        fsm: migModel ? new MigrationFsm(migModel) : undefined,
        pinnedScope: d.pinnedPageScope ?? false,
        iommuDirty: d.iommuDirty ?? profile.iommu.dirtyTracking,
        workload: createWorkload(d.workload, region, profile.seed + i * 7919),
        config: pciConfig(d),
        groupFds: 0,
        cdev: undefined,
        logBroken: false,
        precopyInfoV2: false,
      };
      group.devices.push(device);
      this.devices.push(device);
    });
    this.sysfs = buildSysfs(profile, (bdf) => this.devices.find((d) => d.bdf === bdf)?.index ?? 0);
    this.clock.onAdvance((from, to) => this.runWorkloads(from, to));
  }

  /** Allocates the lowest free fd, as the kernel does. */
  install(file: SimFile): number {
    let fd = 3;
    while (this.files.has(fd)) fd++;
    this.files.set(fd, file);
    return fd;
  }

  deviceByBdf(bdf: string): SimDevice | undefined {
    return this.devices.find((d) => d.bdf === bdf);
  }

  /** The default region workloads write: vIOMMU IOVAs when there is one, else guest RAM at IOVA = GPA. */
  defaultDmaRegion(): Range[] {
    if (this.profile.viommu) return this.profile.viommu.map((m) => ({ start: m.iova, length: m.length }));
    return this.profile.memory
      .filter((m) => m.kind === "ram")
      .map((m) => ({ start: m.gpa, length: m.length }));
  }

  /** True while any dirty tracking is on: a device log, a type1 container, an iommufd HWPT. */
  trackingActive(): { device: string[]; type1: boolean; iommufd: number[] } {
    const device = this.devices.filter((d) => d.log?.active).map((d) => d.bdf);
    let type1 = false;
    const iommufd: number[] = [];
    const seenCtx = new Set<IommufdContext>();
    for (const f of this.files.values()) {
      if (f.kind === "container" && f.container.iommu?.dirtyTracking) type1 = true;
      if (f.kind === "iommufd") seenCtx.add(f.ctx);
    }
    for (const g of this.groups.values()) if (g.container?.iommu?.dirtyTracking) type1 = true;
    for (const d of this.devices) if (d.cdev?.bound) seenCtx.add(d.cdev.bound.ctx);
    for (const ctx of seenCtx)
      for (const o of ctx.objects.values()) if (o.kind === "hwpt" && o.trackingEnabled) iommufd.push(o.id);
    return { device, type1, iommufd };
  }

  /** Closes an fd and undoes what it held, as the kernel's release handlers do. */
  close(fd: number): number {
    const f = this.files.get(fd);
    if (!f) return -Errno.EBADF;
    this.files.delete(fd);
    switch (f.kind) {
      case "group":
        // Device fds hold a reference to the group file: the group is released (and leaves its
        // container, and may open again) only once the last of them closes.
        if (f.group.devices.every((d) => d.groupFds === 0)) this.releaseGroup(f.group);
        else f.group.releasePending = true;
        break;
      case "device":
        f.device.groupFds--;
        if (f.device.groupFds === 0) this.lastClose(f.device);
        if (f.device.group.releasePending && f.device.group.devices.every((d) => d.groupFds === 0))
          this.releaseGroup(f.device.group);
        break;
      case "cdev":
        if (f.bound) {
          f.bound.ctx.unbindDevice(f.bound.idev);
          f.device.cdev = undefined;
          this.lastClose(f.device);
        }
        break;
      default:
        break;
    }
    return 0;
  }

  /** vfio_group_fops_release: the group leaves its container and can be opened again. */
  releaseGroup(group: SimGroup): void {
    group.releasePending = false;
    group.openFd = undefined;
    this.unsetContainer(group);
  }

  /** Removes a group from its container; the last group out tears the IOMMU down (mappings, tracking). */
  unsetContainer(group: SimGroup): void {
    const c = group.container;
    if (!c) return;
    c.groups.delete(group);
    group.container = undefined;
    if (c.groups.size === 0) c.iommu = undefined;
  }

  /** Runs every device's workload for (from, to]. */
  runWorkloads(from: SimTime, to: SimTime): void {
    for (const d of this.devices) {
      for (const w of d.workload.writesBetween(from, to)) {
        if (d.fsm && !d.fsm.running) continue;
        this.dmaWrite(d, w.iova, w.length, w.t);
      }
    }
  }

  /** One DMA write by `device`; returns the bytes that landed (the rest faulted). */
  dmaWrite(device: SimDevice, iova: bigint, length: bigint, t: SimTime = this.clock.now()): bigint {
    let landed = 0n;
    let at = iova;
    const end = iova + length;
    while (at < end) {
      const pageEnd = (at / PAGE + 1n) * PAGE;
      const chunk = (pageEnd < end ? pageEnd : end) - at;
      const target = this.translate(device, at);
      if (target === undefined) {
        this.truth.recordFault(device.bdf, at, t);
      } else {
        this.land(device, at, target, chunk, t);
        landed += chunk;
      }
      at += chunk;
    }
    return landed;
  }

  // --- Internal helpers ---

  /** Where `iova` goes for this device: a user address, or undefined for an IOMMU fault. */
  private translate(device: SimDevice, iova: bigint): bigint | undefined {
    const bound = device.cdev?.bound;
    if (bound) {
      const hwpt = bound.idev.hwpt;
      if (!hwpt) return undefined;
      const area = bound.ctx.lookup(hwpt.ioas, iova);
      if (!area?.writable) return undefined;
      if (hwpt.trackingEnabled) hwpt.dirty.add(Number(iova / PAGE));
      return area.userVa + (iova - area.iova);
    }
    const t1 = device.group.container?.iommu;
    if (!t1) return undefined;
    const m = t1.lookup(iova);
    if (!m?.writable || m.vaddrInvalid) return undefined;
    if (device.pinnedScope) t1.markWritten(m, iova);
    return m.vaddr + (iova - m.iova);
  }

  private land(device: SimDevice, iova: bigint, vaddr: bigint, length: bigint, t: SimTime): void {
    device.log?.record(iova, length);
    const r = this.space.resolve(vaddr, length);
    let gpa: bigint | undefined;
    if (r?.kind === "bytes") r.bytes.fill(device.index + 1);
    else {
      const s = this.guestMemory.find((m) => vaddr >= m.hva && vaddr < m.hva + m.length);
      if (s) gpa = s.gpa + (vaddr - s.hva);
    }
    this.truth.record(device.bdf, Number(iova / PAGE), gpa === undefined ? undefined : Number(gpa / PAGE), t);
  }

  /** The device's last close: its driver stops logging and resets migration (mlx5 close_device). */
  private lastClose(device: SimDevice): void {
    device.log?.stop();
    device.fsm?.reset();
    device.precopyInfoV2 = false;
  }
}

function migrationModel(d: DeviceJson): MigrationModel | undefined {
  const m = d.migration;
  if (!m) return undefined;
  let flags = 0;
  for (const name of m.flags)
    flags |=
      name === "stop-copy"
        ? VFIO_MIGRATION_STOP_COPY
        : name === "p2p"
          ? VFIO_MIGRATION_P2P
          : VFIO_MIGRATION_PRE_COPY;
  return {
    flags,
    stateBytes: u64(m.stateBytes ?? 0, "stateBytes"),
    precopyInitialBytes: u64(m.precopyInitialBytes ?? 0, "precopyInitialBytes"),
    precopyDirtyBytes: u64(m.precopyDirtyBytes ?? 0, "precopyDirtyBytes"),
    reinitAfterMs: m.reinitAfterMs ?? [],
  };
}

function pciConfig(d: DeviceJson): Uint8Array {
  const c = new Uint8Array(4096);
  const v = new DataView(c.buffer);
  v.setUint16(0, Number.parseInt(d.vendor, 16), true);
  v.setUint16(2, Number.parseInt(d.device, 16), true);
  const cls = Number.parseInt(d.class ?? "0x020000", 16);
  c[9] = cls & 0xff;
  c[10] = (cls >> 8) & 0xff;
  c[11] = (cls >> 16) & 0xff;
  return c;
}

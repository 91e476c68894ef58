// createSimHost(profile): the simulated host. It implements the adapter's Host interface (the
// syscall surface the typed objects use unchanged) and adds the controls the tracker's tests and
// the CLI need: the clock, the devices' DMA, the ground truth, fault injection and inspection.
//
//   const sim = createSimHost("mlx5-vf");                 // a shipped profile, a path, or a Profile
//   const fd = sim.open("/dev/vfio/vfio", O_RDWR);         // then the typed objects as on Linux
//   sim.clock.advanceMs(100);                              // devices write guest memory
//   sim.writtenSince(t0);                                  // GPA pages really written since t0
//   sim.failNext("DMA_LOGGING_REPORT", "EIO");

import { Errno, SyscallError } from "../errors.ts";
import type { Host, IoctlArg, MappedMemory } from "../host.ts";
import {
  CodecError,
  deviceFeatureOpName,
  VFIO_DEVICE_FEATURE,
  VFIO_IOMMU_DIRTY_PAGES,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
} from "../uapi/index.ts";
import type { SimClock, SimTime } from "./clock.ts";
import type { TruthQuery } from "./ground-truth.ts";
import { IommufdContext } from "./iommufd.ts";
import { iommufdIoctl } from "./iommufd-ioctl.ts";
import { REGION_SHIFT, type SimFile, SimKernel } from "./kernel.ts";
import type { FaultSpec, Profile } from "./profile.ts";
import { loadProfile, parseProfile } from "./profile.ts";
import {
  containerIoctl,
  deviceIoctl,
  groupIoctl,
  MIG_DATA_PREAD_ERRNO,
  migDataIoctl,
  regionOf,
} from "./vfio-ioctl.ts";

export interface SimHostOptions {
  /** "virtual" (default from the profile): time moves only by clock.advance(); "wall": real time. */
  clock?: "virtual" | "wall";
}

/** What the simulated host shows about one device. */
export interface SimDeviceInfo {
  bdf: string;
  group: number;
  groupPath: string;
  cdevPath: string | undefined;
  driver: string;
  /** VFIO_DEVICE_STATE_* or undefined without migration support. */
  migrationState: number | undefined;
  dmaLogging: {
    supported: boolean;
    active: boolean;
    pageSize: bigint | undefined;
    ranges: { start: bigint; last: bigint }[];
  };
  /** DMA writes the IOMMU refused so far. */
  iommuFaults: number;
}

export interface SimHost extends Host {
  readonly simulated: true;
  /** The process a device's profile says holds it (heldBy), for its group and cdev paths. */
  holders(path: string): { pid: number; command: string }[];
  readonly profile: Profile;
  /** The clock: now() in ns; advance()/advanceMs() on the virtual clock run the workloads. */
  readonly clock: SimClock;
  /** Runs the workloads for `ms` of virtual time (advanceMs). */
  run(ms: number): void;
  /** Makes a device write [iova, iova+length) now, through its IOMMU. Returns the bytes that landed. */
  dmaWrite(bdf: string, iova: bigint, length: bigint): bigint;
  /** 4 KiB pages (GPA by default) written at or after `since`, ascending. The never-lose oracle. */
  writtenSince(since: SimTime, query?: TruthQuery): number[];
  devices(): SimDeviceInfo[];
  /** Guest memory sections and the user address (HVA) each is mapped at, for DMA map calls. */
  guestMemory(): { name: string; kind: "ram" | "bar"; gpa: bigint; length: bigint; hva: bigint }[];
  /** The vIOMMU's IOVA -> GPA mappings, when the profile has one. */
  viommuMappings(): { iova: bigint; gpa: bigint; length: bigint }[] | undefined;
  /**
   * The DMA mappings QEMU would make for this guest: every RAM and BAR section at IOVA = GPA, or
   * with a vIOMMU the guest's IOVA mappings, each with the user address (hva) to map.
   */
  dmaMappings(): { iova: bigint; gpa: bigint; length: bigint; hva: bigint }[];
  /** Arms a fault (see FaultSpec). */
  injectFault(spec: FaultSpec): void;
  /** Shorthand: the next call of `op` fails with `errno` ("EIO"). */
  failNext(op: string, errno: string, device?: string): void;
  clearFaults(): void;
  /** Faults that fired so far. */
  faultLog(): readonly { op: string; device?: string; t: SimTime; effect: string; errno?: string }[];
  /** Puts a device into the ERROR migration state (and breaks its tracker: REPORT gives EIO). */
  setDeviceError(bdf: string): void;
  /** Forgets a device's logged pages without telling anyone (what a device reset does). */
  resetDeviceLog(bdf: string): void;
  /**
   * The device's guest-visible state changes (a reconfiguration): its pre-copy session must send
   * the initial data again (REINIT after the 7.1 PRECOPY_INFOv2 opt-in, dirty bytes without it).
   */
  reconfigureDevice(bdf: string): void;
  /** True while any dirty tracking runs on the host (device log, type1 container, iommufd HWPT). */
  trackingActive(): boolean;
  trackingState(): { device: string[]; type1: boolean; iommufd: number[] };
}

/** Builds a simulated host from a Profile, a shipped profile name or a profile file path. */
export function createSimHost(profile: Profile | string, opts: SimHostOptions = {}): SimHost {
  const p = typeof profile === "string" ? loadProfile(profile) : profile;
  const k = new SimKernel(p, opts.clock ?? p.clock);
  const devByBdf = (bdf: string) => {
    const d = k.deviceByBdf(bdf);
    if (!d) throw new Error(`no simulated device ${bdf} (have ${k.devices.map((x) => x.bdf).join(", ")})`);
    return d;
  };

  const host: SimHost = {
    name: `sim:${p.name}`,
    simulated: true,
    profile: p,
    clock: k.clock,
    sysfs: k.sysfs,

    open(path, _flags) {
      k.clock.catchUp();
      return openPath(k, path);
    },
    holders(path) {
      return k.devices
        .filter(
          (d) =>
            d.json.heldBy &&
            (path === `/dev/vfio/${d.group.id}` ||
              (p.iommu.cdev && path === `/dev/vfio/devices/vfio${d.index}`)),
        )
        .map((d) => ({ ...d.json.heldBy! }));
    },
    close(fd) {
      k.clock.catchUp();
      return k.close(fd);
    },
    ioctl(fd, request, arg) {
      k.clock.catchUp();
      const f = k.files.get(fd);
      if (!f) return -Errno.EBADF;
      const op = opName(f, request, arg);
      const device = "device" in f ? f.device : undefined;
      const hit = k.faults.check(op, device?.bdf, k.clock.now());
      if (hit) {
        if (hit.effect === "errno") return hit.rc;
        if (hit.effect === "log-reset") device?.log?.reset();
        if (hit.effect === "error-state" && device) {
          // The device broke before this call: the call itself sees it (REPORT answers EIO,
          // GET MIG_DEVICE_STATE answers ERROR) unless the spec names an errno to fail with.
          device.fsm?.fail();
          device.logBroken = true;
          if (hit.spec.errno !== undefined) return hit.rc;
        }
      }
      try {
        return dispatch(k, f, request, arg);
      } catch (e) {
        // A struct shorter than the codec needs is memory the kernel could not copy: EFAULT.
        if (e instanceof CodecError) return -Errno.EFAULT;
        throw e;
      }
    },
    pread(fd, buf, offset) {
      k.clock.catchUp();
      return regionAccess(k, fd, buf, offset, false);
    },
    pwrite(fd, buf, offset) {
      k.clock.catchUp();
      return regionAccess(k, fd, buf, offset, true);
    },
    read(fd, buf) {
      k.clock.catchUp();
      return streamAccess(k, fd, buf, false);
    },
    write(fd, buf) {
      k.clock.catchUp();
      return streamAccess(k, fd, buf, true);
    },
    addressOf(view) {
      return k.space.addressOf(view);
    },
    mmapAnonymous(length) {
      if (length <= 0n || length > 1n << 31n)
        throw new SyscallError("mmap", Errno.ENOMEM, `anonymous ${length} bytes`);
      const rounded = ((length + 4095n) / 4096n) * 4096n;
      const bytes = new Uint8Array(Number(rounded));
      return { address: k.space.addressOf(bytes), length: rounded, bytes };
    },
    munmap(mem: MappedMemory) {
      return k.space.unmap(mem.bytes);
    },

    run(ms) {
      k.clock.advanceMs(ms);
    },
    dmaWrite(bdf, iova, length) {
      return k.dmaWrite(devByBdf(bdf), iova, length);
    },
    writtenSince(since, query) {
      k.clock.catchUp();
      return k.truth.writtenSince(since, query);
    },
    devices() {
      return k.devices.map((d) => ({
        bdf: d.bdf,
        group: d.group.id,
        groupPath: `/dev/vfio/${d.group.id}`,
        cdevPath: p.iommu.cdev ? `/dev/vfio/devices/vfio${d.index}` : undefined,
        driver: d.json.driver,
        migrationState: d.fsm?.state,
        dmaLogging: {
          supported: d.log !== undefined,
          active: d.log?.active ?? false,
          pageSize: d.log?.active ? d.log.pageSize : undefined,
          ranges: d.log?.ranges.map((r) => ({ ...r })) ?? [],
        },
        iommuFaults: k.truth.faults.get(d.bdf)?.count ?? 0,
      }));
    },
    guestMemory() {
      return k.guestMemory.map((m) => ({ ...m }));
    },
    viommuMappings() {
      return p.viommu?.map((m) => ({ ...m }));
    },
    dmaMappings() {
      const sections = k.guestMemory;
      const hvaOf = (gpa: bigint) => {
        const m = sections.find((s) => gpa >= s.gpa && gpa < s.gpa + s.length)!;
        return m.hva + (gpa - m.gpa);
      };
      if (p.viommu) return p.viommu.map((m) => ({ ...m, hva: hvaOf(m.gpa) }));
      return sections.map((m) => ({ iova: m.gpa, gpa: m.gpa, length: m.length, hva: m.hva }));
    },
    injectFault(spec) {
      k.faults.add(spec);
    },
    failNext(op, errno, device) {
      k.faults.add({ op, errno, nth: 1, ...(device ? { device } : {}) });
    },
    clearFaults() {
      k.faults.clear();
    },
    faultLog() {
      return k.faults.log;
    },
    setDeviceError(bdf) {
      const d = devByBdf(bdf);
      d.fsm?.fail();
      d.logBroken = true;
    },
    resetDeviceLog(bdf) {
      devByBdf(bdf).log?.reset();
    },
    reconfigureDevice(bdf) {
      devByBdf(bdf).fsm?.reconfigure();
    },
    trackingActive() {
      const s = k.trackingActive();
      return s.device.length > 0 || s.type1 || s.iommufd.length > 0;
    },
    trackingState() {
      return k.trackingActive();
    },
  };
  return host;
}

export { parseProfile };

// --- Internal helpers ---

function openPath(k: SimKernel, path: string): number {
  const p = k.profile;
  if (path === "/dev/vfio/vfio") {
    if (!p.iommu.type1) return -Errno.ENOENT;
    return k.install({ kind: "container", container: { groups: new Set(), iommu: undefined } });
  }
  if (path === "/dev/iommu") {
    if (!p.iommu.iommufd) return -Errno.ENOENT;
    return k.install({ kind: "iommufd", ctx: new IommufdContext(k.space, p.iommu.iovaRanges) });
  }
  const cdev = /^\/dev\/vfio\/devices\/vfio(\d{1,6})$/.exec(path);
  if (cdev) {
    const d = k.devices[Number(cdev[1])];
    if (!p.iommu.cdev || !d) return -Errno.ENOENT;
    return k.install({ kind: "cdev", device: d, bound: undefined });
  }
  const grp = /^\/dev\/vfio\/(\d{1,9})$/.exec(path);
  if (grp) {
    const g = k.groups.get(Number(grp[1]));
    if (!g) return -Errno.ENOENT;
    // A group opens once; a device bound through its cdev blocks the group path; so does another
    // process holding it (heldBy: that process has the group open).
    if (g.openFd !== undefined || g.devices.some((d) => d.cdev || d.json.heldBy)) return -Errno.EBUSY;
    const fd = k.install({ kind: "group", group: g });
    g.openFd = fd;
    return fd;
  }
  return -Errno.ENOENT;
}

function dispatch(k: SimKernel, f: SimFile, request: number, arg: IoctlArg): number {
  switch (f.kind) {
    case "container":
      return containerIoctl(k, f.container, request, arg);
    case "group":
      return groupIoctl(k, f.group, request, arg);
    case "device":
    case "cdev":
      return deviceIoctl(k, f, request, arg);
    case "iommufd":
      return iommufdIoctl(k, f.ctx, request, arg);
    case "mig-data":
      return migDataIoctl(k, f.device, f.session, request, arg);
  }
}

const IOCTL_NAMES: Record<number, string> = {
  15204: "VFIO_GET_API_VERSION",
  15205: "VFIO_CHECK_EXTENSION",
  15206: "VFIO_SET_IOMMU",
  15207: "VFIO_GROUP_GET_STATUS",
  15208: "VFIO_GROUP_SET_CONTAINER",
  15209: "VFIO_GROUP_UNSET_CONTAINER",
  15210: "VFIO_GROUP_GET_DEVICE_FD",
  15211: "VFIO_DEVICE_GET_INFO",
  15212: "VFIO_DEVICE_GET_REGION_INFO",
  15215: "VFIO_DEVICE_RESET",
  15216: "VFIO_IOMMU_GET_INFO",
  15217: "VFIO_IOMMU_MAP_DMA",
  15218: "VFIO_IOMMU_UNMAP_DMA",
  15222: "VFIO_DEVICE_BIND_IOMMUFD",
  15223: "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
  15224: "VFIO_DEVICE_DETACH_IOMMUFD_PT",
  15225: "VFIO_MIG_GET_PRECOPY_INFO",
  15232: "IOMMU_DESTROY",
  15233: "IOMMU_IOAS_ALLOC",
  15236: "IOMMU_IOAS_IOVA_RANGES",
  15237: "IOMMU_IOAS_MAP",
  15238: "IOMMU_IOAS_UNMAP",
  15241: "IOMMU_HWPT_ALLOC",
  15242: "IOMMU_GET_HW_INFO",
  15243: "IOMMU_HWPT_SET_DIRTY_TRACKING",
  15244: "IOMMU_HWPT_GET_DIRTY_BITMAP",
};

/** The operation name faults match on: the ioctl's kernel name, with the feature or sub-op. */
function opName(f: SimFile, request: number, arg: IoctlArg): string {
  const flags =
    typeof arg !== "number" && arg.byteLength >= 8
      ? new DataView(arg.buffer, arg.byteOffset).getUint32(4, true)
      : 0;
  if (request === VFIO_DEVICE_FEATURE && (f.kind === "device" || f.kind === "cdev"))
    return deviceFeatureOpName(flags);
  if (request === VFIO_IOMMU_DIRTY_PAGES) {
    const sub =
      flags === VFIO_IOMMU_DIRTY_PAGES_FLAG_START
        ? "START"
        : flags === VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP
          ? "STOP"
          : flags === VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP
            ? "GET_BITMAP"
            : `flags ${flags}`;
    return `VFIO_IOMMU_DIRTY_PAGES(${sub})`;
  }
  return IOCTL_NAMES[request] ?? `ioctl 0x${request.toString(16)}`;
}

/**
 * read/write(2) on the fd's own position: a migration data fd streams its session (the bytes are
 * zeros: only their count is modelled); other files are EINVAL, as a VFIO device fd is.
 */
function streamAccess(k: SimKernel, fd: number, buf: Uint8Array, write: boolean): number {
  const f = k.files.get(fd);
  if (!f) return -Errno.EBADF;
  if (f.kind !== "mig-data") return -Errno.EINVAL;
  const fsm = f.device.fsm!;
  if (write) return fsm.write(f.session, buf.byteLength);
  const n = fsm.read(f.session, buf.byteLength);
  if (n > 0) buf.fill(0, 0, n);
  return n;
}

function regionAccess(k: SimKernel, fd: number, buf: Uint8Array, offset: bigint, write: boolean): number {
  const f = k.files.get(fd);
  if (!f) return -Errno.EBADF;
  if (f.kind === "mig-data") return MIG_DATA_PREAD_ERRNO;
  if (f.kind === "cdev" && !f.bound) return -Errno.EINVAL;
  if (f.kind !== "device" && f.kind !== "cdev") return -Errno.EINVAL;
  const index = Number(offset >> REGION_SHIFT);
  const at = offset & ((1n << REGION_SHIFT) - 1n);
  const r = regionOf(index);
  if (!r || r.length === 0n || at >= r.length) return -Errno.EINVAL;
  const n = Number(at + BigInt(buf.byteLength) > r.length ? r.length - at : BigInt(buf.byteLength));
  if (index === 7) {
    const cfg = f.device.config;
    // Config space: the command register (offset 4, 2 bytes) is writable; the rest reads back.
    if (write) {
      for (let i = 0; i < n; i++)
        if (Number(at) + i === 4 || Number(at) + i === 5) cfg[Number(at) + i] = buf[i]!;
    } else buf.set(cfg.subarray(Number(at), Number(at) + n));
    return n;
  }
  if (!write) buf.fill(0, 0, n);
  return n;
}

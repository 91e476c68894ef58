// Rule scenarios: one kernel validation rule each, runnable against any Host.
//
// A scenario sets up through the adapter's typed objects (src/vfio/), then sends one good or bad
// input through the uapi encoders and host.ioctl, and records what came back: an errno name, or
// (for a good input) the result bytes in a JSON-able form. The sim's tests run every scenario
// against the simulated host and check the expectation; the VM tests run the very same scenarios
// against a real kernel and compare outcome for outcome (errno for errno, result for result).
//
//   const outcomes = await runScenarios(target);              // every scenario target.has allows
//   outcomes.filter((o) => o.errno !== o.expected.errno);     // differences from the kernel source
//
// Every scenario closes what it opened and unmaps what it mapped, on every path, so the next one
// starts from a clean host (a real group can be opened only once at a time).

import { Errno, IoctlError } from "../errors.ts";
import type { Fd, Host, IoctlArg, MappedMemory } from "../host.ts";
import { VFIO_TYPE1v2_IOMMU } from "../uapi/index.ts";
import { Container, type Device, DeviceCdev, Group, IommuFd } from "../vfio/index.ts";

/**
 * A device bound to an iommufd, however the target binds it: the device cdev
 * (VFIO_DEVICE_BIND_IOMMUFD) by default, or a test harness's own device (the IOMMUFD_TEST mock
 * device, which has no cdev) through ScenarioTarget.iommufdDevice.
 */
export interface IommufdDevice {
  /** The device id within the iommufd. */
  readonly devId: number;
  /** Attaches to an IOAS or HWPT; returns the HWPT id attached. */
  attach(ptId: number): number;
  detach(): void;
}

/** What the host under test offers; scenarios that need more are skipped, with the reason. */
export interface TargetCapabilities {
  /** /dev/vfio/vfio with type1. */
  type1: boolean;
  /** /dev/iommu. */
  iommufd: boolean;
  /** /dev/vfio/devices/vfioN (or ScenarioTarget.iommufdDevice binds the device another way). */
  cdev: boolean;
  /** The device under test implements DMA logging (log_ops). */
  dmaLogging: boolean;
  /** The device implements migration (mig_ops). */
  migration: boolean;
  /** Migration with PRE_COPY (6.2+ and the device). */
  preCopy: boolean;
  /** The device's IOMMU tracks dirty pages (IOMMU_HW_CAP_DIRTY_TRACKING). */
  iommuDirty: boolean;
  /** target.dma can make the device write memory. */
  dma: boolean;
  /** The kernel has VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 (7.1+). */
  precopyInfoV2: boolean;
  /** type1 answers a wrapping iova + size with EOVERFLOW, not EINVAL (6.19+). */
  type1Overflow: boolean;
  /** target.changeDeviceState can change the device's guest-visible state. */
  deviceState: boolean;
  /**
   * How Session.device() opens the device under test: through its group in a type1 container
   * (default), or through its cdev bound to an iommufd with one IOAS. The device scenarios run
   * unchanged either way (`vfio-dirty check` runs them on both paths where both exist).
   */
  deviceVia?: "group" | "cdev";
}

export interface ScenarioTarget {
  host: Host;
  /** PCI address of the device under test ("0000:00:03.0"). */
  bdf: string;
  /** Its IOMMU group number. */
  group: number;
  /** Its cdev path when there is one ("/dev/vfio/devices/vfio0"). */
  cdevPath?: string;
  has: TargetCapabilities;
  /**
   * Makes the device write [iova, iova + length) through its IOMMU and waits until done (sim:
   * dmaWrite; VM: an edu DMA). Lengths are kept below 4 KiB for edu. `opened` is what the running
   * scenario opened last (its Device, or its IommufdDevice), for targets that drive the device
   * through its own fd.
   */
  dma?: (iova: bigint, length: bigint, opened?: Device | IommufdDevice) => void | Promise<void>;
  /**
   * Binds the device to an iommufd some other way than its cdev (a test harness's mock device).
   * Session.iommufdDevice() uses it when given.
   */
  iommufdDevice?: (s: Session, iommufd: IommuFd) => IommufdDevice;
  /** IOVA base scenarios map at: below 256 MiB for edu's 28-bit DMA mask. Default 0x100000. */
  iovaBase?: bigint;
  /**
   * Changes the device's guest-visible state while it runs (a reconfiguration its pre-copy data
   * must send again). Sim: reconfigureDevice; VM: a write to an edu register the driver migrates.
   */
  changeDeviceState?: () => void | Promise<void>;
}

/** The answer the kernel gives, from reading its source (cited in `kernel`). */
export interface Expected {
  /** Errno name ("EINVAL") or null for success. */
  errno: string | null;
}

export interface Scenario {
  /** "type1.map.unaligned": area.subject.case. */
  id: string;
  /** The rule, in one line. */
  rule: string;
  /** Where the kernel decides it (file and function). */
  kernel: string;
  expected: Expected;
  /** Why the scenario cannot run on this target, or undefined when it can. */
  skip?: (has: TargetCapabilities) => string | undefined;
  run(t: ScenarioTarget, s: Session): Promise<Outcome> | Outcome;
}

/** What a scenario observed. */
export interface Outcome {
  errno: string | null;
  /** JSON-able result of a good input (bigints as 0x strings, bitmaps as hex words). */
  result?: unknown;
}

export interface ScenarioOutcome extends Outcome {
  id: string;
  rule: string;
  expected: Expected;
  /** Set when the scenario did not run (capability missing) or its setup failed. */
  skipped?: string;
  setupError?: string;
}

/** Runs scenarios one after the other; `filter` selects by id. */
export async function runScenarios(
  t: ScenarioTarget,
  list: readonly Scenario[],
  filter: (s: Scenario) => boolean = () => true,
): Promise<ScenarioOutcome[]> {
  const out: ScenarioOutcome[] = [];
  for (const s of list) {
    if (!filter(s)) continue;
    const base = { id: s.id, rule: s.rule, expected: s.expected };
    const why = s.skip?.(t.has);
    if (why) {
      out.push({ ...base, errno: null, skipped: why });
      continue;
    }
    const session = new Session(t);
    // The DMA hook learns what this scenario opened (a target may drive the device through it).
    const bound: ScenarioTarget = t.dma
      ? { ...t, dma: (iova, length) => t.dma!(iova, length, session.opened) }
      : t;
    try {
      out.push({ ...base, ...(await s.run(bound, session)) });
    } catch (e) {
      out.push({ ...base, errno: null, setupError: e instanceof Error ? e.message : String(e) });
    } finally {
      session.cleanup();
    }
  }
  return out;
}

/** errno name of a raw result: null for success. */
export function errnoOf(rc: number): string | null {
  if (rc >= 0) return null;
  const name = Object.entries(Errno).find(([, v]) => v === -rc)?.[0];
  return name ?? `errno ${-rc}`;
}

/** Outcome of a raw ioctl. */
export function ioctl(t: ScenarioTarget, fd: Fd, request: number, arg: IoctlArg): Outcome {
  return { errno: errnoOf(t.host.ioctl(fd, request, arg)) };
}

/** Outcome of a typed-object call: IoctlError becomes its errno, anything else propagates. */
export function attempt(fn: () => unknown): Outcome {
  try {
    const result = fn();
    return { errno: null, ...(result !== undefined ? { result: jsonable(result) } : {}) };
  } catch (e) {
    if (e instanceof IoctlError) return { errno: errnoOf(-e.errno) };
    throw e;
  }
}

/** bigints as hex strings, Uint8Arrays as little-endian u64 words in hex: stable JSON. */
export function jsonable(x: unknown): unknown {
  if (typeof x === "bigint") return `0x${x.toString(16)}`;
  if (x instanceof Uint8Array) return bitmapWords(x);
  if (Array.isArray(x)) return x.map(jsonable);
  if (x && typeof x === "object")
    return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, jsonable(v)]));
  return x;
}

export function bitmapWords(bytes: Uint8Array): string[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const words: string[] = [];
  for (let i = 0; i + 8 <= bytes.byteLength; i += 8) words.push(`0x${v.getBigUint64(i, true).toString(16)}`);
  return words;
}

/**
 * What a scenario opened: typed objects and mappings, released in reverse order by cleanup().
 * Setup helpers throw on failure; runScenarios reports that as a setup error, not an outcome.
 */
export class Session {
  private readonly closers: (() => void)[] = [];
  /** The device (or iommufd device) the scenario opened last: what target.dma drives. */
  opened: Device | IommufdDevice | undefined;

  constructor(readonly t: ScenarioTarget) {}

  /** Remembers something to undo at the end (runs last-in, first-out). */
  defer(fn: () => void): void {
    this.closers.push(fn);
  }

  cleanup(): void {
    for (const fn of this.closers.splice(0).reverse()) {
      try {
        fn();
      } catch {
        // Cleanup keeps going: one failed close must not leave the rest open.
      }
    }
  }

  /** Anonymous memory for DMA, unmapped at the end. */
  memory(length: bigint): MappedMemory {
    const m = this.t.host.mmapAnonymous(length);
    this.defer(() => this.t.host.munmap(m));
    return m;
  }

  container(): Container {
    const c = Container.open(this.t.host);
    this.defer(() => c.close());
    return c;
  }

  group(): Group {
    const g = Group.open(this.t.host, this.t.group);
    this.defer(() => g.close());
    return g;
  }

  /** Container + group attached (+ type1v2 IOMMU unless `setIommu` is false). */
  type1(opts: { iommuType?: number; setIommu?: boolean } = {}): { container: Container; group: Group } {
    const container = this.container();
    const group = this.group();
    group.setContainer(container);
    if (opts.setIommu !== false) container.setIommu(opts.iommuType ?? VFIO_TYPE1v2_IOMMU);
    return { container, group };
  }

  /**
   * The device under test, opened the way the target says (has.deviceVia): through its group in
   * a type1v2 container (default), or through its cdev bound to a fresh iommufd and attached to
   * one IOAS. `container.mapDma` maps memory for its DMA on either path.
   */
  device(): { container: DmaMapper; group?: Group; device: Device } {
    if (this.t.has.deviceVia === "cdev") {
      const { iommufd, cdev } = this.cdev();
      const ioasId = iommufd.ioasAlloc();
      cdev.attachIommufdPt(ioasId);
      const container: DmaMapper = {
        mapDma: (a) => void iommufd.ioasMap({ ioasId, userVa: a.vaddr, length: a.length, iova: a.iova }),
      };
      return { container, device: cdev };
    }
    return this.groupDevice();
  }

  /** The device through its group, in a type1v2 container set up first (whatever has.deviceVia says). */
  groupDevice(): { container: Container; group: Group; device: Device } {
    const { container, group } = this.type1();
    const device = group.getDevice(this.t.bdf);
    this.defer(() => device.close());
    this.opened = device;
    return { container, group, device };
  }

  iommufd(): IommuFd {
    const i = IommuFd.open(this.t.host);
    this.defer(() => i.close());
    return i;
  }

  /** The device's cdev bound to a fresh iommufd. */
  cdev(): { iommufd: IommuFd; cdev: DeviceCdev; devId: number } {
    const iommufd = this.iommufd();
    const cdev = DeviceCdev.open(this.t.host, this.t.cdevPath!, this.t.bdf);
    this.defer(() => cdev.close());
    const devId = cdev.bindIommufd(iommufd);
    this.opened = cdev;
    return { iommufd, cdev, devId };
  }

  /**
   * The device bound to a fresh iommufd: through the target's own binding when it has one
   * (ScenarioTarget.iommufdDevice), else through its cdev. For the IOMMU dirty-tracking
   * scenarios, which need a device id and an attach, not the device's fd.
   */
  iommufdDevice(): { iommufd: IommuFd; device: IommufdDevice } {
    if (this.t.iommufdDevice) {
      const iommufd = this.iommufd();
      const device = this.t.iommufdDevice(this, iommufd);
      this.opened = device;
      return { iommufd, device };
    }
    const { iommufd, cdev, devId } = this.cdev();
    return {
      iommufd,
      device: { devId, attach: (ptId) => cdev.attachIommufdPt(ptId), detach: () => cdev.detachIommufdPt() },
    };
  }

  /** IOVA base for mappings on this target. */
  get iova(): bigint {
    return this.t.iovaBase ?? 0x10_0000n;
  }
}

/** The part of a Container that maps memory for DMA (an IOAS map on the cdev path). */
export interface DmaMapper {
  mapDma(a: { vaddr: bigint; iova: bigint; length: bigint }): void;
}

/** Why Session.device() cannot open the device on this target, or undefined when it can. */
function cannotOpenDevice(h: TargetCapabilities): string | undefined {
  if (h.deviceVia === "cdev") return h.iommufd && h.cdev ? undefined : "no iommufd with device cdev";
  return h.type1 ? undefined : "no type1 container on this host";
}

/** Skip helpers: each returns the reason or undefined. */
export const needs = {
  type1: (h: TargetCapabilities) => (h.type1 ? undefined : "no type1 container on this host"),
  /** The device can be opened (on the path has.deviceVia names). */
  device: cannotOpenDevice,
  logging: (h: TargetCapabilities) =>
    cannotOpenDevice(h) ?? (h.dmaLogging ? undefined : "the device has no DMA logging"),
  noLogging: (h: TargetCapabilities) =>
    cannotOpenDevice(h) ?? (h.dmaLogging ? "the device has DMA logging" : undefined),
  loggingDma: (h: TargetCapabilities) =>
    cannotOpenDevice(h) !== undefined || !h.dmaLogging
      ? `needs a DMA-logging device on ${h.deviceVia === "cdev" ? "iommufd" : "type1"}`
      : h.dma
        ? undefined
        : "cannot drive DMA",
  migration: (h: TargetCapabilities) =>
    !h.type1
      ? "no type1 container on this host"
      : h.migration
        ? undefined
        : "the device has no migration support",
  migrationNoPreCopy: (h: TargetCapabilities) =>
    !h.type1 || !h.migration
      ? "needs a migratable device"
      : h.preCopy
        ? "the device supports PRE_COPY"
        : undefined,
  type1Dma: (h: TargetCapabilities) =>
    !h.type1 ? "no type1 container" : h.dma ? undefined : "cannot drive DMA",
  iommufd: (h: TargetCapabilities) => (h.iommufd && h.cdev ? undefined : "no iommufd with device cdev"),
  iommuDirty: (h: TargetCapabilities) =>
    !h.iommufd || !h.cdev
      ? "no iommufd with device cdev"
      : h.iommuDirty
        ? undefined
        : "the IOMMU has no dirty tracking",
  noIommuDirty: (h: TargetCapabilities) =>
    !h.iommufd || !h.cdev
      ? "no iommufd with device cdev"
      : h.iommuDirty
        ? "the IOMMU tracks dirty pages"
        : undefined,
  iommuDirtyDma: (h: TargetCapabilities) =>
    !h.iommufd || !h.cdev || !h.iommuDirty
      ? "needs an IOMMU with dirty tracking"
      : h.dma
        ? undefined
        : "cannot drive DMA",
};

/** A little-endian u64 bitmap of `words` words, every byte `fill`. */
export function bitmap(words: number, fill = 0): Uint8Array {
  return new Uint8Array(words * 8).fill(fill);
}

// Opening devices the way a VMM does before tracking starts: the groups into one type1 container
// (or the device cdevs into one iommufd, with a dirty-tracking HWPT when the IOMMU offers one),
// guest memory mapped for DMA at IOVA = GPA (or through vIOMMU mappings). The tracker then only
// tracks what is mapped here, as QEMU's memory listener does.
//
//   using opened = openVfio(host, devices, { memory, viommu });
//   openTracker(opened.target, { core, memory: opened.sections, ... });
//
// Everything opened is closed by close(), in reverse order, on every path (an error half-way
// closes what was already opened before rethrowing).

import type { MemorySection, TrackingTarget } from "@vfio-dirty/tracker";
import {
  Container,
  type Device,
  DeviceCdev,
  Errno,
  Group,
  type Host,
  IoctlError,
  IommuFd,
  O_CLOEXEC,
  O_RDWR,
  type PciDevice,
  SyscallError,
  uapi,
} from "@vfio-dirty/vfio-adapter";
import { CleanupStack } from "@vfio-dirty/vfio-adapter/util";
import { UsageError } from "./errors.ts";

/** Guest memory as a VMM holds it: GPA, length, and the user address backing it. */
export interface GuestMemory {
  gpa: bigint;
  length: bigint;
  hva: bigint;
  kind: "ram" | "pci-bar";
}

export interface VfioMapping {
  iova: bigint;
  gpa: bigint;
  length: bigint;
}

export interface OpenedVfio {
  target: TrackingTarget;
  /** "type1" or "iommufd": the kernel interface used. */
  backend: "type1" | "iommufd";
  sections: MemorySection[];
  /** The adapter Device of each address (for workload plugins). */
  devices: Map<string, Device>;
  close(): void;
  [Symbol.dispose](): void;
}

/**
 * Opens `devices` and maps `memory` for their DMA. `prefer` picks the kernel interface:
 * "iommufd" when every device has a cdev and /dev/iommu opens, else type1.
 */
export function openVfio(
  host: Host,
  devices: readonly PciDevice[],
  opts: { memory: readonly GuestMemory[]; viommu?: readonly VfioMapping[]; prefer?: "type1" | "iommufd" },
): OpenedVfio {
  const closers = new CleanupStack();
  // Best effort: the kernel releases whatever is left when the process exits.
  const closeAll = () => void closers.run();
  try {
    const useIommufd =
      opts.prefer !== "type1" &&
      devices.every((d) => d.vfioCdev !== undefined) &&
      canOpen(host, "/dev/iommu");
    return useIommufd
      ? openIommufd(host, devices, opts, closers, closeAll)
      : openType1(host, devices, opts, closers, closeAll);
  } catch (err) {
    closeAll();
    throw translateOpenError(err);
  }
}

// --- Internal helpers ---

function canOpen(host: Host, path: string): boolean {
  const fd = host.open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  host.close(fd);
  return true;
}

function ramSections(memory: readonly GuestMemory[]): MemorySection[] {
  return memory
    .filter((m) => m.kind === "ram")
    .map((m) => ({ iova: m.gpa, length: m.length, kind: "ram" as const }));
}

/** DMA mappings to make: IOVA = GPA for RAM, or the vIOMMU's mappings onto RAM. */
function dmaMappings(opts: {
  memory: readonly GuestMemory[];
  viommu?: readonly VfioMapping[];
}): { iova: bigint; vaddr: bigint; length: bigint }[] {
  const ram = opts.memory.filter((m) => m.kind === "ram");
  if (!opts.viommu) return ram.map((m) => ({ iova: m.gpa, vaddr: m.hva, length: m.length }));
  return opts.viommu.map((v) => {
    const m = ram.find((r) => v.gpa >= r.gpa && v.gpa + v.length <= r.gpa + r.length);
    if (!m)
      throw new UsageError(
        `vIOMMU mapping of GPA 0x${v.gpa.toString(16)} is outside guest RAM; fix the profile`,
      );
    return { iova: v.iova, vaddr: m.hva + (v.gpa - m.gpa), length: v.length };
  });
}

function openType1(
  host: Host,
  devices: readonly PciDevice[],
  opts: { memory: readonly GuestMemory[]; viommu?: readonly VfioMapping[] },
  closers: CleanupStack,
  closeAll: () => void,
): OpenedVfio {
  const container = Container.open(host);
  closers.push(() => container.close());
  const groups = new Map<number, Group>();
  const opened = new Map<string, Device>();
  for (const dev of devices) {
    const g0 = dev.iommuGroup;
    if (!g0) throw new UsageError(`${dev.address} is not in an IOMMU group; VFIO cannot use it`);
    let group = groups.get(g0.id);
    if (!group) {
      group = Group.open(host, g0.id, g0.vfioPath);
      const g = group;
      closers.push(() => g.close());
      group.setContainer(container);
      closers.push(() => g.unsetContainer());
      if (groups.size === 0) container.setIommu(uapi.VFIO_TYPE1v2_IOMMU);
      groups.set(g0.id, group);
    }
    const device = group.getDevice(dev.address);
    closers.push(() => device.close());
    opened.set(dev.address, device);
  }
  for (const m of dmaMappings(opts)) {
    container.mapDma({ vaddr: m.vaddr, iova: m.iova, length: m.length });
    closers.push(() => container.unmapDma({ iova: m.iova, length: m.length }));
  }
  return {
    backend: "type1",
    target: {
      devices: [...opened].map(([id, device]) => ({ id, device })),
      iommu: { kind: "type1", container },
    },
    sections: ramSections(opts.memory),
    devices: opened,
    close: closeAll,
    [Symbol.dispose]: closeAll,
  };
}

function openIommufd(
  host: Host,
  devices: readonly PciDevice[],
  opts: { memory: readonly GuestMemory[]; viommu?: readonly VfioMapping[] },
  closers: CleanupStack,
  closeAll: () => void,
): OpenedVfio {
  const iommufd = IommuFd.open(host);
  closers.push(() => iommufd.close());
  const ioasId = iommufd.ioasAlloc();
  const opened = new Map<string, Device>();
  const devIds: Record<string, number> = {};
  const cdevs: DeviceCdev[] = [];
  for (const dev of devices) {
    const cdev = DeviceCdev.open(host, dev.vfioCdev!.path, dev.address);
    closers.push(() => cdev.close());
    devIds[dev.address] = cdev.bindIommufd(iommufd);
    opened.set(dev.address, cdev);
    cdevs.push(cdev);
  }
  // A dirty-tracking HWPT when the IOMMU can (QEMU allocates one per IOMMU instance; one here,
  // which every device of a single-IOMMU host shares). Otherwise the devices attach to the IOAS.
  let hwptId: number | undefined;
  const first = devices[0];
  if (first) {
    try {
      const info = iommufd.getHwInfo(devIds[first.address]!);
      if ((info.outCapabilities & BigInt(uapi.IOMMU_HW_CAP_DIRTY_TRACKING)) !== 0n) {
        hwptId = iommufd.hwptAlloc({
          devId: devIds[first.address]!,
          ptId: ioasId,
          flags: uapi.IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
        });
        const id = hwptId;
        closers.push(() => iommufd.destroy(id));
      }
    } catch (err) {
      if (!(err instanceof IoctlError)) throw err;
      hwptId = undefined; // probeCaps records why when it asks again
    }
  }
  for (const cdev of cdevs) {
    cdev.attachIommufdPt(hwptId ?? ioasId);
    closers.push(() => cdev.detachIommufdPt());
  }
  for (const m of dmaMappings(opts)) {
    iommufd.ioasMap({ ioasId, userVa: m.vaddr, length: m.length, iova: m.iova });
    closers.push(() => iommufd.ioasUnmap({ ioasId, iova: m.iova, length: m.length }));
  }
  return {
    backend: "iommufd",
    target: {
      devices: [...opened].map(([id, device]) => ({ id, device })),
      iommu: {
        kind: "iommufd",
        iommufd,
        ioasId,
        devIds,
        ...(hwptId !== undefined ? { hwptIds: [hwptId] } : {}),
      },
    },
    sections: ramSections(opts.memory),
    devices: opened,
    close: closeAll,
    [Symbol.dispose]: closeAll,
  };
}

/** EBUSY / EACCES on open are the user's situation, not a bug: say what to do. */
function translateOpenError(err: unknown): unknown {
  if (err instanceof SyscallError || err instanceof IoctlError) {
    if (err.errno === Errno.EBUSY)
      return new UsageError(
        `${err.message.split(":")[0]}: busy; another process (QEMU?) holds the device or group; stop it or pick a free device`,
        { cause: err },
      );
    if (err.errno === Errno.EACCES || err.errno === Errno.EPERM)
      return new UsageError(
        `${err.message.split(":")[0]}: permission denied; run as root (or grant access to /dev/vfio and raise RLIMIT_MEMLOCK)`,
        { cause: err },
      );
  }
  return err;
}

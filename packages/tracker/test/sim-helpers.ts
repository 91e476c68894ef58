// Opening the devices of a simulated host the way QEMU would, for the tracker's tests and bench:
// type1 (group -> container -> TYPE1v2 -> device fds, guest memory DMA-mapped at its GPA, or at
// the vIOMMU's IOVAs) or iommufd (cdev bind, IOAS, a DIRTY_TRACKING HWPT when the IOMMU can).

import { Container, DeviceCdev, Group, IommuFd, uapi } from "@vfio-dirty/vfio-adapter";
import { createSimHost, type ProfileJson, parseProfile, type SimHost } from "@vfio-dirty/vfio-adapter/sim";
import type { TrackingTarget } from "../src/probe.ts";
import type { MemorySection } from "../src/ranges.ts";
import type { DmaMapper } from "../src/strategy.ts";

export interface SimSession {
  readonly sim: SimHost;
  readonly target: TrackingTarget;
  readonly memory: MemorySection[];
  readonly mapper: DmaMapper;
  /** Closes every fd (devices, groups, container or iommufd). */
  close(): void;
}

export function simProfile(json: ProfileJson): SimHost {
  return createSimHost(parseProfile(json, json.name));
}

/** Open every device of `sim` through `backend` and map guest memory (or the vIOMMU's mappings). */
export function openSim(sim: SimHost, backend: "type1" | "iommufd"): SimSession {
  const guest = sim.guestMemory();
  const memory: MemorySection[] = guest.map((m) => ({
    iova: m.gpa,
    length: m.length,
    kind: m.kind === "bar" ? "pci-bar" : "ram",
  }));
  const hvaOf = (gpa: bigint, length: bigint): bigint => {
    const m = guest.find((g) => gpa >= g.gpa && gpa + length <= g.gpa + g.length);
    if (!m) throw new Error(`gpa 0x${gpa.toString(16)} is not guest memory`);
    return m.hva + (gpa - m.gpa);
  };
  const closers: (() => void)[] = [];
  const close = () => {
    for (const c of closers.reverse()) c();
    closers.length = 0;
  };
  try {
    const devs = sim.devices();
    let target: TrackingTarget;
    let mapper: DmaMapper;
    if (backend === "type1") {
      const container = Container.open(sim);
      closers.push(() => container.close());
      const groups = new Map<number, Group>();
      for (const d of devs) {
        if (groups.has(d.group)) continue;
        const g = Group.open(sim, d.group);
        closers.push(() => g.close());
        g.setContainer(container);
        if (groups.size === 0) container.setIommu(uapi.VFIO_TYPE1v2_IOMMU);
        groups.set(d.group, g);
      }
      const devices = devs.map((d) => {
        const device = groups.get(d.group)!.getDevice(d.bdf);
        closers.push(() => device.close());
        return { id: d.bdf, device };
      });
      mapper = {
        map: (iova, gpa, length) => container.mapDma({ vaddr: hvaOf(gpa, length), iova, length }),
        unmap: (iova, length) => void container.unmapDma({ iova, length }),
      };
      target = { devices, iommu: { kind: "type1", container } };
    } else {
      const iommufd = IommuFd.open(sim);
      closers.push(() => iommufd.close());
      const ioasId = iommufd.ioasAlloc();
      const devIds: Record<string, number> = {};
      const hwptIds: number[] = [];
      const devices = devs.map((d) => {
        if (!d.cdevPath) throw new Error(`${d.bdf}: no cdev on this profile`);
        const device = DeviceCdev.open(sim, d.cdevPath, d.bdf);
        closers.push(() => device.close());
        devIds[d.bdf] = device.bindIommufd(iommufd);
        return { id: d.bdf, device };
      });
      // One DIRTY_TRACKING HWPT when the IOMMU can track; else attach to the IOAS directly.
      let hwpt: number | undefined;
      try {
        hwpt = iommufd.hwptAlloc({
          devId: devIds[devs[0]!.bdf]!,
          ptId: ioasId,
          flags: uapi.IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
        });
        hwptIds.push(hwpt);
      } catch {
        hwpt = undefined;
      }
      for (const { device } of devices) device.attachIommufdPt(hwpt ?? ioasId);
      mapper = {
        map: (iova, gpa, length) =>
          void iommufd.ioasMap({ ioasId, userVa: hvaOf(gpa, length), iova, length }),
        unmap: (iova, length) => void iommufd.ioasUnmap({ ioasId, iova, length }),
      };
      target = { devices, iommu: { kind: "iommufd", iommufd, ioasId, devIds, hwptIds } };
    }
    // Without a vIOMMU, guest RAM is mapped at its GPA. With one, the caller maps the vIOMMU's
    // mappings through tracker.map() (which calls `mapper`), so the tracker's table and the
    // kernel's agree.
    if (!sim.viommuMappings())
      for (const m of memory) if (m.kind === "ram") mapper.map(m.iova, m.iova, m.length);
    return { sim, target, memory, mapper, close };
  } catch (e) {
    close();
    throw e;
  }
}

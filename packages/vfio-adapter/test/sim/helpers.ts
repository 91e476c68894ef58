// Shared set-up for the simulated host's tests: small profiles and the typed objects over them.

import { createSimHost, parseProfile, type SimHost } from "../../src/sim/index.ts";
import type { DeviceJson, ProfileJson } from "../../src/sim/profile.ts";
import { VFIO_TYPE1v2_IOMMU } from "../../src/uapi/index.ts";
import { Container, type Device, DeviceCdev, Group, IommuFd } from "../../src/vfio/index.ts";

export const PAGE = 4096n;
export const BDF = "0000:3b:00.1";

/** A one-device profile: mlx5-like, logging without limits unless overridden. */
export function profileJson(over: Partial<ProfileJson> = {}, dev: Partial<DeviceJson> = {}): ProfileJson {
  return {
    name: "test",
    kernel: "6.12",
    iommu: { vendor: "intel", dirtyTracking: true },
    memory: [
      { gpa: "0x0", length: "1GiB", kind: "ram" },
      { gpa: "4GiB", length: "1GiB", kind: "ram" },
    ],
    devices: [
      {
        bdf: BDF,
        vendor: "0x15b3",
        device: "0x101e",
        driver: "mlx5_vfio_pci",
        group: 12,
        migration: {
          flags: ["stop-copy", "p2p", "pre-copy"],
          stateBytes: "8MiB",
          precopyInitialBytes: "4MiB",
          precopyDirtyBytes: 4096,
        },
        dmaLogging: {},
        ...dev,
      },
    ],
    ...over,
  };
}

export function sim(over: Partial<ProfileJson> = {}, dev: Partial<DeviceJson> = {}): SimHost {
  return createSimHost(parseProfile(profileJson(over, dev)));
}

/** Container + group + type1v2 + device, with guest RAM mapped at IOVA = GPA. */
export function type1Device(host: SimHost): { container: Container; group: Group; device: Device } {
  const container = Container.open(host);
  const group = Group.open(host, host.profile.devices[0]!.group);
  group.setContainer(container);
  container.setIommu(VFIO_TYPE1v2_IOMMU);
  for (const m of host.guestMemory()) container.mapDma({ vaddr: m.hva, iova: m.gpa, length: m.length });
  const device = group.getDevice(host.profile.devices[0]!.bdf);
  return { container, group, device };
}

/** iommufd + bound cdev + IOAS with guest RAM at IOVA = GPA; attached to a dirty HWPT when asked. */
export function iommufdDevice(host: SimHost, dirty: boolean) {
  const iommufd = IommuFd.open(host);
  const info = host.devices()[0]!;
  const cdev = DeviceCdev.open(host, info.cdevPath!, info.bdf);
  const devId = cdev.bindIommufd(iommufd);
  const ioasId = iommufd.ioasAlloc();
  for (const m of host.guestMemory())
    iommufd.ioasMap({ ioasId, userVa: m.hva, length: m.length, iova: m.gpa });
  const hwptId = dirty ? iommufd.hwptAlloc({ devId, ptId: ioasId, flags: 2 }) : cdev.attachIommufdPt(ioasId);
  if (dirty) cdev.attachIommufdPt(hwptId);
  return { iommufd, cdev, devId, ioasId, hwptId };
}

/** Bit numbers set in a little-endian bitmap. */
export function setBits(bytes: Uint8Array): number[] {
  const out: number[] = [];
  bytes.forEach((b, i) => {
    for (let k = 0; k < 8; k++) if ((b >> k) & 1) out.push(i * 8 + k);
  });
  return out;
}

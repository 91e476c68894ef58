// The adapter's typed objects opened on edu in the guest: a type1v2 container, edu's group and
// its Device, plus an Edu driver over the device fd. What the tracker scenarios start from.
//
//   using s = openTyped(host);   // closes device, group and container on every exit path

import { Container, type Device, Group, type Host, uapi } from "@vfio-dirty/vfio-adapter";
import { Edu } from "./edu.ts";
import { eduBdf, enableBusMaster } from "./vfio.ts";

export interface TypedSession extends Disposable {
  readonly bdf: string;
  readonly container: Container;
  readonly group: Group;
  readonly device: Device;
  readonly edu: Edu;
  close(): void;
}

export function openTyped(host: Host): TypedSession {
  const bdf = eduBdf();
  const groupId = Number(host.sysfs.readlink(`bus/pci/devices/${bdf}/iommu_group`)?.split("/").pop());
  const container = Container.open(host);
  let group: Group | undefined;
  let device: Device | undefined;
  try {
    group = Group.open(host, groupId);
    group.setContainer(container);
    container.setIommu(uapi.VFIO_TYPE1v2_IOMMU);
    device = group.getDevice(bdf);
    const bar0 = device.getRegionInfo(uapi.VFIO_PCI_BAR0_REGION_INDEX).info.offset;
    enableBusMaster(host, device.fd);
    const edu = new Edu(host, device.fd, bar0);
    const close = () => {
      device?.close();
      group?.close();
      container.close();
    };
    return { bdf, container, group, device, edu, close, [Symbol.dispose]: close };
  } catch (e) {
    device?.close();
    group?.close();
    container.close();
    throw e;
  }
}

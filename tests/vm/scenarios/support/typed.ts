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

/**
 * The CLI's shipped edu workload plugin (packages/cli/src/workloads/edu.ts, loaded from the
 * built dist as `--workload edu` loads it) driving the session's device over `buffer`.
 * Its `run()` returns the ranges edu wrote: the ground truth a tracker must cover.
 */
export async function eduWorkload(
  host: Host,
  s: TypedSession,
  buffer: { iova: bigint; length: bigint; bytes: Uint8Array },
  seed = 1,
) {
  const plugin = (await import("../../../../packages/cli/dist/workloads/edu.js")).default;
  const bar0 = s.device.getRegionInfo(uapi.VFIO_PCI_BAR0_REGION_INDEX).info.offset;
  const config = s.device.getRegionInfo(uapi.VFIO_PCI_CONFIG_REGION_INDEX).info.offset;
  const io = (at: bigint, bytes: number, value?: number) => {
    const b = new Uint8Array(bytes);
    const v = new DataView(b.buffer);
    if (value === undefined) {
      if (host.pread(s.device.fd, b, at) !== bytes) throw new Error(`read at 0x${at.toString(16)}`);
      return bytes === 4 ? v.getUint32(0, true) : v.getUint16(0, true);
    }
    if (bytes === 4) v.setUint32(0, value >>> 0, true);
    else v.setUint16(0, value, true);
    if (host.pwrite(s.device.fd, b, at) !== bytes) throw new Error(`write at 0x${at.toString(16)}`);
    return 0;
  };
  const device = {
    address: s.bdf,
    vendorId: 0x1234,
    deviceId: 0x11e8,
    readBar32: (_bar: number, offset: number) => io(bar0 + BigInt(offset), 4),
    writeBar32: (_bar: number, offset: number, value: number) => void io(bar0 + BigInt(offset), 4, value),
    readConfig16: (offset: number) => io(config + BigInt(offset), 2),
    writeConfig16: (offset: number, value: number) => void io(config + BigInt(offset), 2, value),
  };
  if (!plugin.supports(device)) throw new Error("the edu plugin does not support edu");
  return plugin.create({ device, buffer, seed, pageSize: 4096n });
}

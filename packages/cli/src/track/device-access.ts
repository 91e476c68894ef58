// The workload plugins' DeviceAccess over an opened adapter Device: BAR and config-space reads
// and writes through the device's regions (vfio-pci region offsets), 4 and 2 bytes at a time.

import type { Device, PciDevice } from "@vfio-dirty/vfio-adapter";
import type { DeviceAccess } from "../workloads/plugin.ts";

const VFIO_PCI_CONFIG_REGION_INDEX = 7;

export function deviceAccess(device: Device, dev: PciDevice): DeviceAccess {
  const regions = new Map<number, ReturnType<Device["getRegionInfo"]>["info"]>();
  const region = (index: number) => {
    let r = regions.get(index);
    if (!r) {
      r = device.getRegionInfo(index).info;
      regions.set(index, r);
    }
    return r;
  };
  const read = (index: number, offset: number, n: number) => {
    const buf = new Uint8Array(n);
    device.regionRead(region(index), BigInt(offset), buf);
    return new DataView(buf.buffer);
  };
  const write = (index: number, offset: number, bytes: Uint8Array) => {
    device.regionWrite(region(index), BigInt(offset), bytes);
  };
  return {
    address: dev.address,
    vendorId: dev.vendorId,
    deviceId: dev.deviceId,
    readBar32: (bar, offset) => read(bar, offset, 4).getUint32(0, true),
    writeBar32: (bar, offset, value) => {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, value >>> 0, true);
      write(bar, offset, b);
    },
    readConfig16: (offset) => read(VFIO_PCI_CONFIG_REGION_INDEX, offset, 2).getUint16(0, true),
    writeConfig16: (offset, value) => {
      const b = new Uint8Array(2);
      new DataView(b.buffer).setUint16(0, value, true);
      write(VFIO_PCI_CONFIG_REGION_INDEX, offset, b);
    },
  };
}

// What `check` decides before it opens anything: the devices it may touch. It refuses, with a
// usage error (exit 2, one line), any device that is not bound to vfio-pci or a VFIO variant
// driver, that sits in a group VFIO cannot take, or that another process (a running VMM) holds
// through its group or its cdev. On a real host it never picks devices by itself.
//
//   const devices = preflight(host, ["0000:3b:00.1"]);   // PciDevice[], or throws UsageError
//   openingLine(devices[0], "edu");                      // "will open 0000:3b:00.1 (...) through ..."

import { findPciDevice, type Host, listVfioDevices, type PciDevice } from "@vfio-dirty/vfio-adapter";
import { UsageError } from "../errors.ts";
import { DMA_WINDOW } from "./target.ts";

/**
 * The devices to check, each one safe to open: `addresses` (already parsed), or on the simulated
 * host every VFIO-bound device of the profile when none is named.
 */
export function preflight(host: Host, addresses: readonly string[]): PciDevice[] {
  if (addresses.length === 0 && !host.simulated)
    throw new UsageError(
      "name the devices to check by PCI address (vfio-dirty check 0000:3b:00.1); check opens them and makes them write by DMA, so it never picks devices by itself",
    );
  const devices =
    addresses.length === 0
      ? listVfioDevices(host.sysfs)
      : addresses.map((a) => {
          const d = findPciDevice(host.sysfs, a);
          if (!d)
            throw new UsageError(
              `PCI address ${a}: no such device on ${host.name}; list devices with 'lspci -D' (or 'vfio-dirty probe --all')`,
            );
          return d;
        });
  if (devices.length === 0)
    throw new UsageError(
      `no VFIO-bound devices on ${host.name}; bind a device to vfio-pci or use another profile`,
    );
  for (const d of devices) refuseUnsafe(host, d);
  return devices;
}

/** The line `check` prints before it starts, per device: what it will open and where DMA goes. */
export function openingLine(d: PciDevice, dma: string): string {
  const nodes = [d.iommuGroup?.vfioPath, d.vfioCdev?.path].filter((p) => p !== undefined).join(" and ");
  const end = DMA_WINDOW.iova + DMA_WINDOW.length;
  return `will open ${d.address} (${d.driver}) through ${nodes}; the device writes only into memory check maps for it at IOVA 0x${DMA_WINDOW.iova.toString(16)}-0x${end.toString(16)} (${dma})`;
}

// --- Internal helpers ---

function refuseUnsafe(host: Host, d: PciDevice): void {
  if (!d.vfio)
    throw new UsageError(
      `${d.address} is bound to ${d.driver ?? "no driver"}, not vfio-pci or a VFIO variant driver; check opens only devices VFIO owns (echo vfio-pci > /sys/bus/pci/devices/${d.address}/driver_override, then rebind)`,
    );
  const g = d.iommuGroup;
  if (!g)
    throw new UsageError(`${d.address} is in no IOMMU group; VFIO cannot use it safely, so check does not`);
  if (!g.viable)
    throw new UsageError(
      `${d.address}: IOMMU group ${g.id} is not viable (${g.blockers.join(", ")} bound to a host driver); check does not take the group`,
    );
  for (const node of [g.vfioPath, d.vfioCdev?.path]) {
    if (node === undefined) continue;
    const who = host.holders?.(node) ?? [];
    if (who.length > 0)
      throw new UsageError(
        `${d.address} is in use: ${who.map((h) => `${h.command} (pid ${h.pid})`).join(", ")} holds ${node}; check never opens a device another process uses`,
      );
  }
}

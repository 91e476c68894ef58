// The adapter's discovery (src/sysfs.ts) on the simulated sysfs finds what the profile describes.

import { describe, expect, it } from "vitest";
import { createSimHost } from "../../src/sim/index.ts";
import { findPciDevice, listIommuUnits, listVfioDevices } from "../../src/sysfs.ts";
import { sim } from "./helpers.ts";

describe("discovery on the simulated host", () => {
  it("lists the VFIO devices with group, cdev, driver and NUMA node", () => {
    const h = createSimHost("mlx5-p2p");
    const devs = listVfioDevices(h.sysfs);
    expect(devs.map((d) => d.address)).toEqual(["0000:3b:00.1", "0000:3b:00.2"]);
    const d = devs[0]!;
    expect(d).toMatchObject({
      vendorId: 0x15b3,
      deviceId: 0x101e,
      driver: "mlx5_vfio_pci",
      vfio: true,
      numaNode: 0,
    });
    expect(d.iommuGroup).toMatchObject({
      id: 12,
      viable: true,
      vfioPath: "/dev/vfio/12",
      members: ["0000:3b:00.1"],
    });
    expect(d.vfioCdev).toEqual({ name: "vfio0", path: "/dev/vfio/devices/vfio0" });
    expect(devs[1]!.vfioCdev?.path).toBe("/dev/vfio/devices/vfio1");
  });

  it("reports the IOMMU's dirty-tracking hardware as the profile says", () => {
    expect(findPciDevice(createSimHost("gpu-iommufd").sysfs, "65:00.0")?.iommu?.hardware.dirtyTracking).toBe(
      true,
    );
    expect(findPciDevice(createSimHost("mlx5-vf").sysfs, "3b:00.1")?.iommu?.hardware.dirtyTracking).toBe(
      false,
    );
    const amd = sim({ iommu: { vendor: "amd", dirtyTracking: true } });
    expect(listIommuUnits(amd.sysfs).map((u) => [u.name, u.hardware.kind, u.hardware.dirtyTracking])).toEqual(
      [["ivhd0", "amd-vi", true]],
    );
  });

  it("has no cdev before Linux 6.6 and a non-viable group when a member has a host driver", () => {
    const h = createSimHost("legacy-type1");
    expect(listVfioDevices(h.sysfs)[0]!.vfioCdev).toBeUndefined();
    const shared = sim({ groups: [{ id: 12, members: [{ bdf: "0000:3b:00.0", driver: "mlx5_core" }] }] });
    const g = findPciDevice(shared.sysfs, "0000:3b:00.1")!.iommuGroup!;
    expect(g.viable).toBe(false);
    expect(g.blockers).toEqual(["0000:3b:00.0 (mlx5_core)"]);
  });
});

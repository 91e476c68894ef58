// Discovery (src/sysfs.ts) on the simulated host's in-memory sysfs finds what the profile
// describes: specific hosts checked value by value (a P2P pair, dirty-tracking IOMMUs, a kernel
// without cdevs, a shared group), then every shipped profile against its own description. This
// keeps the sim's sysfs tree and the discovery code honest with each other (the real layout is
// checked by the fixture tests in discovery.test.ts).

import { describe, expect, it } from "vitest";
import { createSimHost, listProfiles, loadProfile } from "../../src/sim/index.ts";
import { findPciDevice, listIommuUnits, listVfioDevices } from "../../src/sysfs.ts";
import { sim } from "../sim/helpers.ts";

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

describe.each(listProfiles().map((p) => p.name))("sim profile %s", (name) => {
  const profile = loadProfile(name);
  const host = createSimHost(profile);

  it("lists every profile device as VFIO-bound, with its ids, driver, group and NUMA node", () => {
    const found = listVfioDevices(host.sysfs).map((d) => d.address);
    expect(found).toEqual(expect.arrayContaining(profile.devices.map((d) => d.bdf)));
    for (const d of profile.devices) {
      const dev = findPciDevice(host.sysfs, d.bdf)!;
      expect(dev, d.bdf).toBeDefined();
      expect(dev.vendorId).toBe(Number.parseInt(d.vendor, 16));
      expect(dev.deviceId).toBe(Number.parseInt(d.device, 16));
      expect(dev.driver).toBe(d.driver);
      expect(dev.vfio).toBe(true);
      expect(dev.iommuGroup?.id).toBe(d.group);
      expect(dev.iommuGroup?.members).toContain(d.bdf);
      expect(dev.numaNode).toBe(d.numaNode ?? 0);
      // The cdev exists exactly when the profile's kernel has it.
      expect(dev.vfioCdev !== undefined, `${d.bdf} cdev`).toBe(profile.iommu.cdev);
    }
  });

  it("shows the IOMMU's dirty-tracking hardware as the profile sets it", () => {
    for (const d of profile.devices) {
      const hw = findPciDevice(host.sysfs, d.bdf)!.iommu?.hardware;
      if (profile.iommu.vendor === "arm-smmuv3") {
        expect(hw?.dirtyTracking).toBeUndefined();
        continue;
      }
      expect(hw?.kind).toBe(profile.iommu.vendor === "intel" ? "intel-vt-d" : "amd-vi");
      expect(hw?.dirtyTracking, d.bdf).toBe(profile.iommu.dirtyTracking);
    }
  });
});

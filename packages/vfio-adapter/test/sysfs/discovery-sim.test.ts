// Discovery on the simulated host's in-memory sysfs: for every shipped profile, what discovery
// reports is what the profile describes. This keeps the sim's sysfs tree and the discovery code
// honest with each other (the real layout is checked by the fixture tests).

import { describe, expect, it } from "vitest";
import { createSimHost, listProfiles, loadProfile } from "../../src/sim/index.ts";
import { findPciDevice, listVfioDevices } from "../../src/sysfs.ts";

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

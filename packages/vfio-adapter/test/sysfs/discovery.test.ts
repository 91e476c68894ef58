// Host discovery over fixture trees written as real directories and symlinks, and over this
// machine's own /sys.

import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { InvalidInputError } from "../../src/errors.ts";
import type { SysfsReader } from "../../src/host.ts";
import { createDirSysfsReader } from "../../src/linux/dir-sysfs.ts";
import {
  findPciDevice,
  isVfioPciDriver,
  listIommuUnits,
  listPciDevices,
  listVfioDevices,
} from "../../src/sysfs.ts";
import { memorySysfs } from "../fixtures/memory-sysfs.ts";
import {
  AMD_EFR_WITH_HD,
  amdHost,
  ECAP_WITH_DIRTY,
  intelMlx5Host,
  noIommuHost,
  type SysfsTree,
  sharedGroupHost,
  writeSysfsTree,
} from "../fixtures/sysfs-trees.ts";

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

// Each fixture runs on real directories and on the in-memory reader: discovery must not care.
const readers: [string, (tree: SysfsTree) => SysfsReader][] = [
  ["directory", (tree) => mount(tree)],
  ["in-memory", (tree) => memorySysfs(tree)],
];

function mount(tree: SysfsTree, tweak?: (root: string) => void): SysfsReader {
  const root = mkdtempSync(join(tmpdir(), "vfio-dirty-fixture-"));
  roots.push(root);
  writeSysfsTree(tree, root);
  tweak?.(root);
  return createDirSysfsReader(root);
}

describe.each(readers)("%s reader", (_kind, load) => {
  describe("Intel host with an mlx5 VF on mlx5_vfio_pci", () => {
    const sysfs = load(intelMlx5Host());

    it("lists every PCI device, sorted, and only the VF as VFIO", () => {
      expect(listPciDevices(sysfs).map((d) => d.address)).toEqual([
        "0000:00:01.0",
        "0000:3b:00.0",
        "0000:3b:00.2",
        "0000:5e:00.0",
      ]);
      expect(listVfioDevices(sysfs).map((d) => d.address)).toEqual(["0000:3b:00.2"]);
    });

    it("describes the VF completely", () => {
      const vf = findPciDevice(sysfs, "3b:00.2");
      expect(vf).toEqual({
        address: "0000:3b:00.2",
        vendorId: 0x15b3,
        deviceId: 0x101e,
        subsystemVendorId: 0x15b3,
        subsystemDeviceId: 0x0001,
        classCode: 0x020000,
        driver: "mlx5_vfio_pci",
        vfio: true,
        driverOverride: "mlx5_vfio_pci",
        physfn: "0000:3b:00.0",
        numaNode: 1,
        iommuGroup: {
          id: 40,
          type: "DMA",
          noiommu: false,
          members: ["0000:3b:00.2"],
          others: [],
          vfioPath: "/dev/vfio/40",
          viable: true,
          blockers: [],
        },
        vfioCdev: { name: "vfio0", path: "/dev/vfio/devices/vfio0" },
        iommu: {
          name: "dmar0",
          sysfsPath: "devices/virtual/iommu/dmar0",
          hardware: {
            kind: "intel-vt-d",
            dirtyTracking: true,
            source: `ecap 0x${ECAP_WITH_DIRTY.toString(16)}`,
            bits: { SMTS: true, SLADS: true, SMPWC: true },
          },
        },
      });
    });

    it("reports a device on a non-VFIO driver as such, behind a unit without dirty tracking", () => {
      const nvme = findPciDevice(sysfs, "0000:5e:00.0")!;
      expect(nvme.driver).toBe("nvme");
      expect(nvme.vfio).toBe(false);
      expect(nvme.vfioCdev).toBeUndefined();
      expect(nvme.driverOverride).toBeUndefined();
      expect(nvme.numaNode).toBe(0);
      expect(nvme.iommu?.name).toBe("dmar1");
      expect(nvme.iommu?.hardware.dirtyTracking).toBe(false);
      expect(nvme.iommu?.hardware.bits.SLADS).toBe(false);
    });

    it("lists both VT-d units, only one with dirty tracking", () => {
      expect(listIommuUnits(sysfs).map((u) => [u.name, u.sysfsPath, u.hardware.dirtyTracking])).toEqual([
        ["dmar0", "devices/virtual/iommu/dmar0", true],
        ["dmar1", "devices/virtual/iommu/dmar1", false],
      ]);
    });

    it("gives undefined for an absent device and throws for a malformed address", () => {
      expect(findPciDevice(sysfs, "0000:3b:00.7")).toBeUndefined();
      expect(() => findPciDevice(sysfs, "0000:3b:00.2/../../..")).toThrow(InvalidInputError);
      expect(() => findPciDevice(sysfs, "../../etc")).toThrow(InvalidInputError);
    });
  });

  describe("AMD host", () => {
    it("finds the vfio-pci NVMe drive, its group and HDSup on its IVHD unit", () => {
      const sysfs = load(amdHost());
      const [dev, ...rest] = listVfioDevices(sysfs);
      expect(rest).toEqual([]);
      expect(dev?.address).toBe("0000:41:00.0");
      expect(dev?.driver).toBe("vfio-pci");
      expect(dev?.iommuGroup?.vfioPath).toBe("/dev/vfio/12");
      expect(dev?.numaNode).toBe(0);
      expect(dev?.iommu?.name).toBe("ivhd0");
      expect(dev?.iommu?.sysfsPath).toBe("devices/pci0000:00/0000:00:00.2/iommu/ivhd0");
      expect(dev?.iommu?.hardware).toEqual({
        kind: "amd-vi",
        dirtyTracking: true,
        source: `EFR 0x${AMD_EFR_WITH_HD.toString(16)}, EFR2 0x0`,
        bits: { HASup: true, HDSup: true },
      });
    });

    it("lists the IVHD unit under its PCI function", () => {
      expect(
        listIommuUnits(load(amdHost())).map((u) => [u.name, u.hardware.kind, u.hardware.dirtyTracking]),
      ).toEqual([["ivhd0", "amd-vi", true]]);
    });

    it("a 6.1-style vfio-dev without a dev attribute means no cdev", () => {
      const dev = findPciDevice(load(amdHost()), "41:00.0");
      expect(dev?.vfio).toBe(true);
      expect(dev?.vfioCdev).toBeUndefined();
    });

    it("an older IOMMU without HDSup, in the single-EFR format", () => {
      const dev = findPciDevice(load(amdHost("58f77ef22294ade")), "41:00.0");
      expect(dev?.iommu?.hardware.dirtyTracking).toBe(false);
    });

    it("a garbled features register is unknown, not 'no'", () => {
      const dev = findPciDevice(load(amdHost("garbage")), "41:00.0");
      expect(dev?.iommu?.hardware.kind).toBe("amd-vi");
      expect(dev?.iommu?.hardware.dirtyTracking).toBeUndefined();
      expect(dev?.iommu?.hardware.source).toMatch(/amd-iommu\/features/);
    });
  });

  describe("shared IOMMU group", () => {
    it("lists the other members and says which one keeps VFIO from the group", () => {
      const sysfs = load(sharedGroupHost());
      const gpu = findPciDevice(sysfs, "05:00.0")!;
      expect(gpu.vfio).toBe(true);
      expect(gpu.iommuGroup).toMatchObject({
        id: 7,
        members: ["0000:00:1c.0", "0000:05:00.0", "0000:05:00.1"],
        others: ["0000:00:1c.0", "0000:05:00.1"],
        viable: false,
        blockers: ["0000:05:00.1 (snd_hda_intel)"],
      });
      // The same group seen from the audio function.
      expect(findPciDevice(sysfs, "05:00.1")!.iommuGroup?.others).toEqual(["0000:00:1c.0", "0000:05:00.0"]);
    });

    it("becomes viable once the audio function is on vfio-pci too (pcieport does not block)", () => {
      const gpu = findPciDevice(load(sharedGroupHost("vfio-pci")), "05:00.0")!;
      expect(gpu.iommuGroup?.viable).toBe(true);
      expect(gpu.iommuGroup?.blockers).toEqual([]);
    });
  });
});

describe("odd and hostile trees", () => {
  it("a no-IOMMU group gets the noiommu node and no IOMMU unit", () => {
    const dev = findPciDevice(mount(noIommuHost()), "00:04.0")!;
    expect(dev.iommuGroup?.noiommu).toBe(true);
    expect(dev.iommuGroup?.vfioPath).toBe("/dev/vfio/noiommu-0");
    expect(dev.iommu).toBeUndefined();
  });

  it("ignores entries that are not PCI addresses and devices without an identity", () => {
    const sysfs = mount(intelMlx5Host(), (root) => {
      symlinkSync("../../../devices/pci0000:00/0000:3b:00.2", join(root, "bus/pci/devices/not-an-address"));
      symlinkSync("../../../devices/pci0000:00/nothing", join(root, "bus/pci/devices/0000:7f:00.0"));
    });
    expect(listPciDevices(sysfs).map((d) => d.address)).toEqual([
      "0000:00:01.0",
      "0000:3b:00.0",
      "0000:3b:00.2",
      "0000:5e:00.0",
    ]);
  });

  it("a driver link that leaves the root reads as no driver", () => {
    const sysfs = mount(intelMlx5Host(), (root) => {
      const dev = join(root, "devices/pci0000:00/0000:5e:00.0");
      rmSync(join(dev, "driver"));
      symlinkSync("../../../../../../../../../../usr/bin", join(dev, "driver"));
    });
    const dev = findPciDevice(sysfs, "5e:00.0")!;
    expect(dev.driver).toBeUndefined();
    expect(dev.vfio).toBe(false);
  });

  it("a malformed group link or cdev name is ignored", () => {
    const sysfs = mount(intelMlx5Host(), (root) => {
      const dev = join(root, "devices/pci0000:00/0000:3b:00.2");
      rmSync(join(dev, "iommu_group"));
      symlinkSync("../../../kernel/iommu_groups/40x", join(dev, "iommu_group"));
      rmSync(join(dev, "vfio-dev"), { recursive: true });
    });
    const dev = findPciDevice(sysfs, "3b:00.2")!;
    expect(dev.iommuGroup).toBeUndefined();
    expect(dev.vfioCdev).toBeUndefined();
    expect(dev.vfio).toBe(true); // still bound to mlx5_vfio_pci
  });
});

describe("isVfioPciDriver", () => {
  it.each([
    "vfio-pci",
    "mlx5_vfio_pci",
    "pds_vfio_pci",
    "hisi_acc_vfio_pci",
    "virtio_vfio_pci",
    "nvgrace_gpu_vfio_pci",
  ])("%s is VFIO", (d) => expect(isVfioPciDriver(d)).toBe(true));
  it.each(["mlx5_core", "nvme", "pcieport", "vfio", "vfio_pci_core", "pci-stub", "", undefined])(
    "%s is not",
    (d) => expect(isVfioPciDriver(d)).toBe(false),
  );
});

describe("this machine's /sys", () => {
  const sysfs = createDirSysfsReader("/sys");
  const sysDevices = existsSync("/sys/bus/pci/devices") ? readdirSync("/sys/bus/pci/devices").sort() : [];

  it("lists the same PCI devices as the kernel, with their drivers", () => {
    const devices = listPciDevices(sysfs);
    expect(devices.map((d) => d.address)).toEqual(sysDevices);
    for (const d of devices) {
      const link = join("/sys/bus/pci/devices", d.address, "driver");
      expect(d.driver, d.address).toBe(existsSync(link) ? basename(readlinkSync(link)) : undefined);
    }
  });

  it("lists the IOMMU units the kernel registered (none on this machine), without an error", () => {
    const units = existsSync("/sys/class/iommu") ? readdirSync("/sys/class/iommu").sort() : [];
    expect(listIommuUnits(sysfs).map((u) => u.name)).toEqual(units);
  });

  it("lists exactly the devices bound to a VFIO driver (none here), without an error", () => {
    const bound = sysDevices.filter((a) => {
      const link = join("/sys/bus/pci/devices", a, "driver");
      return existsSync(link) && isVfioPciDriver(basename(readlinkSync(link)));
    });
    expect(listVfioDevices(sysfs).map((d) => d.address)).toEqual(bound);
  });
});

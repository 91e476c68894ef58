// Host discovery: which PCI devices a host has, which are bound to VFIO, and what stands behind
// them (IOMMU group and its other members, the device cdev, NUMA node, the IOMMU unit and its
// dirty-tracking hardware). Read-only, and only through a SysfsReader, so the same code inspects
// /sys, a fixture tree and the simulated host's in-memory sysfs.
//
// Names from outside (a PCI address typed by a user) are validated with parsePciAddress before
// they become part of a path; names read from sysfs (group numbers, cdev names, link targets) are
// matched against the shapes the kernel gives them and ignored otherwise.
//
//   const devices = listVfioDevices(host.sysfs);
//   const dev = findPciDevice(host.sysfs, "3b:00.1");   // PciDevice | undefined
//   dev?.iommuGroup?.vfioPath;                           // "/dev/vfio/12"
//   dev?.iommu?.hardware.dirtyTracking;                  // true on VT-d with SLADS, AMD with HDSup

import type { SysfsReader } from "./host.ts";
import { decodeAmdFeatures, decodeIntelEcap, type IommuHardware } from "./iommu-hw.ts";
import { isPciAddress, parsePciAddress } from "./pci-address.ts";

/** One PCI device as sysfs describes it. */
export interface PciDevice {
  /** Normalised "dddd:bb:ss.f". */
  readonly address: string;
  readonly vendorId: number;
  readonly deviceId: number;
  readonly subsystemVendorId: number | undefined;
  readonly subsystemDeviceId: number | undefined;
  /** 24-bit class code (0x020000 is an Ethernet controller). */
  readonly classCode: number;
  /** Name of the bound driver ("mlx5_vfio_pci"), undefined when unbound. */
  readonly driver: string | undefined;
  /** Bound to vfio-pci or a vfio-pci variant driver: usable through VFIO. */
  readonly vfio: boolean;
  /** The driver_override attribute, when set. */
  readonly driverOverride: string | undefined;
  /** For an SR-IOV virtual function: the address of its physical function. */
  readonly physfn: string | undefined;
  /** NUMA node, undefined when the kernel reports none (-1). */
  readonly numaNode: number | undefined;
  /** The IOMMU group, undefined when the device is not behind an IOMMU. */
  readonly iommuGroup: IommuGroup | undefined;
  /** The VFIO device cdev (/dev/vfio/devices/vfioN), when the kernel created one. */
  readonly vfioCdev: VfioCdev | undefined;
  /** The IOMMU unit translating for the device, undefined when sysfs names none. */
  readonly iommu: IommuUnit | undefined;
}

/** An IOMMU group: the smallest set of devices the IOMMU can isolate from each other. */
export interface IommuGroup {
  readonly id: number;
  /** Default domain type ("DMA", "DMA-FQ", "identity"...), when the kernel exposes it. */
  readonly type: string | undefined;
  /** A no-IOMMU group (vfio's unsafe mode): no isolation, no IOMMU dirty tracking. */
  readonly noiommu: boolean;
  /** Every member's address, sorted, including the device itself. */
  readonly members: readonly string[];
  /** Members other than the device itself. */
  readonly others: readonly string[];
  /** The group's VFIO node ("/dev/vfio/12", "/dev/vfio/noiommu-12"); present only while bound to VFIO. */
  readonly vfioPath: string;
  /**
   * True when VFIO can take the group: every member is bound to a VFIO driver, to a driver that
   * leaves DMA to its owner (pci-stub, pcieport) or to none. Otherwise opening the group fails.
   */
  readonly viable: boolean;
  /** Members that make the group unviable, as "address (driver)". */
  readonly blockers: readonly string[];
}

/** The per-device VFIO node of the cdev interface (kernel 6.6+, CONFIG_VFIO_DEVICE_CDEV). */
export interface VfioCdev {
  /** "vfio0" */
  readonly name: string;
  /** "/dev/vfio/devices/vfio0" */
  readonly path: string;
}

/** The IOMMU unit behind a device. */
export interface IommuUnit {
  /** "dmar0", "ivhd0", "smmu3.0x..." */
  readonly name: string;
  /** Root-relative sysfs path of the unit ("devices/virtual/iommu/dmar0"). */
  readonly sysfsPath: string;
  readonly hardware: IommuHardware;
}

/** True for vfio-pci and its variant drivers (mlx5_vfio_pci, pds_vfio_pci, hisi_acc_vfio_pci...). */
export function isVfioPciDriver(driver: string | undefined): boolean {
  // Every in-tree variant driver registers as "<vendor>_vfio_pci" (KBUILD_MODNAME).
  return driver !== undefined && (driver === "vfio-pci" || /^[a-z0-9_]+_vfio_pci$/.test(driver));
}

/** All PCI devices, sorted by address. A host without PCI (or without sysfs) gives []. */
export function listPciDevices(sysfs: SysfsReader): PciDevice[] {
  const names = sysfs.readdir(PCI_DEVICES) ?? [];
  const out: PciDevice[] = [];
  for (const name of names) {
    // Entries are kernel-named, but a fixture or a broken host may hold anything: only real
    // addresses become paths.
    if (!isPciAddress(name)) continue;
    const dev = readDevice(sysfs, parsePciAddress(name).text);
    if (dev) out.push(dev);
  }
  return out.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
}

/** PCI devices bound to vfio-pci or a variant driver. A host without VFIO gives []. */
export function listVfioDevices(sysfs: SysfsReader): PciDevice[] {
  return listPciDevices(sysfs).filter((d) => d.vfio);
}

/**
 * The device at `address` ("0000:3b:00.1" or "3b:00.1"), or undefined when the host has none.
 * Throws InvalidInputError for a malformed address.
 */
export function findPciDevice(sysfs: SysfsReader, address: string): PciDevice | undefined {
  return readDevice(sysfs, parsePciAddress(address).text);
}

/** Every IOMMU unit the host registered (class/iommu), sorted by name; [] without an IOMMU. */
export function listIommuUnits(sysfs: SysfsReader): IommuUnit[] {
  const out: IommuUnit[] = [];
  for (const name of sysfs.readdir("class/iommu") ?? []) {
    const link = sysfs.readlink(`class/iommu/${name}`);
    if (link) out.push(readIommuUnit(sysfs, link));
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** What sysfs tells of the IOMMU unit at a root-relative path ("devices/virtual/iommu/dmar0"). */
export function readIommuUnit(sysfs: SysfsReader, sysfsPath: string): IommuUnit {
  const name = sysfsPath.slice(sysfsPath.lastIndexOf("/") + 1);
  return { name, sysfsPath, hardware: readIommuHardware(sysfs, sysfsPath) };
}

// --- Internal helpers ---

const PCI_DEVICES = "bus/pci/devices";
const GROUPS = "kernel/iommu_groups";
// Drivers that set driver_managed_dma, so a group holding them can still be claimed by VFIO.
const DMA_OWNER_FRIENDLY_DRIVERS = new Set(["pci-stub", "pcieport"]);

function readDevice(sysfs: SysfsReader, address: string): PciDevice | undefined {
  const dir = `${PCI_DEVICES}/${address}`;
  const vendorId = readHexAttr(sysfs, `${dir}/vendor`, 4);
  const deviceId = readHexAttr(sysfs, `${dir}/device`, 4);
  const classCode = readHexAttr(sysfs, `${dir}/class`, 6);
  // Without its identity a directory is not a PCI device we can describe honestly.
  if (vendorId === undefined || deviceId === undefined || classCode === undefined) return undefined;
  const driver = driverOf(sysfs, address);
  const vfioCdev = readCdev(sysfs, dir);
  const vfio = isVfioBound(sysfs, address, driver);
  const override = sysfs.readFile(`${dir}/driver_override`);
  const physfnLink = sysfs.readlink(`${dir}/physfn`);
  const physfn = physfnLink ? lastSegment(physfnLink) : undefined;
  const iommuLink = sysfs.readlink(`${dir}/iommu`);
  return {
    address,
    vendorId,
    deviceId,
    subsystemVendorId: readHexAttr(sysfs, `${dir}/subsystem_vendor`, 4),
    subsystemDeviceId: readHexAttr(sysfs, `${dir}/subsystem_device`, 4),
    classCode,
    driver,
    vfio,
    driverOverride: override && override !== "(null)" ? override : undefined,
    physfn: physfn && isPciAddress(physfn) ? physfn : undefined,
    numaNode: readNumaNode(sysfs, `${dir}/numa_node`),
    iommuGroup: readGroup(sysfs, address),
    vfioCdev,
    iommu: iommuLink ? readIommuUnit(sysfs, iommuLink) : undefined,
  };
}

function driverOf(sysfs: SysfsReader, address: string): string | undefined {
  const link = sysfs.readlink(`${PCI_DEVICES}/${address}/driver`);
  return link ? lastSegment(link) : undefined;
}

// A driver name of the vfio-pci family, or a vfio-dev/ child: every VFIO-bound device has one
// (6.1+), which also catches a future variant driver named some other way.
function isVfioBound(sysfs: SysfsReader, address: string, driver: string | undefined): boolean {
  return (
    driver !== undefined && (isVfioPciDriver(driver) || sysfs.exists(`${PCI_DEVICES}/${address}/vfio-dev`))
  );
}

function readGroup(sysfs: SysfsReader, address: string): IommuGroup | undefined {
  const link = sysfs.readlink(`${PCI_DEVICES}/${address}/iommu_group`);
  const idText = link ? lastSegment(link) : undefined;
  if (idText === undefined || !/^\d{1,9}$/.test(idText)) return undefined;
  const id = Number(idText);
  const dir = `${GROUPS}/${id}`;
  const members = (sysfs.readdir(`${dir}/devices`) ?? [address])
    .filter(isPciAddress)
    .map((a) => parsePciAddress(a).text)
    .sort();
  if (!members.includes(address)) {
    members.push(address);
    members.sort();
  }
  const noiommu = sysfs.readFile(`${dir}/name`) === "vfio-noiommu";
  const blockers: string[] = [];
  for (const m of members) {
    const driver = driverOf(sysfs, m);
    if (driver !== undefined && !isVfioBound(sysfs, m, driver) && !DMA_OWNER_FRIENDLY_DRIVERS.has(driver))
      blockers.push(`${m} (${driver})`);
  }
  return {
    id,
    type: sysfs.readFile(`${dir}/type`),
    noiommu,
    members,
    others: members.filter((m) => m !== address),
    vfioPath: `/dev/vfio/${noiommu ? "noiommu-" : ""}${id}`,
    viable: blockers.length === 0,
    blockers,
  };
}

// The vfio_device's struct device sits under the PCI device as vfio-dev/vfioN (6.1+); it has a
// `dev` (major:minor) attribute only when the kernel also created the /dev/vfio/devices cdev.
function readCdev(sysfs: SysfsReader, dir: string): VfioCdev | undefined {
  const names = sysfs.readdir(`${dir}/vfio-dev`) ?? [];
  for (const name of names) {
    if (!/^vfio\d{1,9}$/.test(name)) continue;
    if (sysfs.exists(`${dir}/vfio-dev/${name}/dev`)) return { name, path: `/dev/vfio/devices/${name}` };
  }
  return undefined;
}

function readIommuHardware(sysfs: SysfsReader, unit: string): IommuHardware {
  const ecap = sysfs.readFile(`${unit}/intel-iommu/ecap`);
  const features = ecap === undefined ? sysfs.readFile(`${unit}/amd-iommu/features`) : undefined;
  try {
    if (ecap !== undefined) return decodeIntelEcap(ecap);
    if (features !== undefined) return decodeAmdFeatures(features);
  } catch (e) {
    // An unreadable register is "unknown", never "no": the tracker asks the kernel anyway.
    return {
      kind: ecap !== undefined ? "intel-vt-d" : "amd-vi",
      dirtyTracking: undefined,
      source: (e as Error).message,
      bits: {},
    };
  }
  return { kind: "other", dirtyTracking: undefined, source: "no capability register in sysfs", bits: {} };
}

function readHexAttr(sysfs: SysfsReader, path: string, digits: number): number | undefined {
  const text = sysfs.readFile(path);
  if (text === undefined) return undefined;
  const m = /^0x([0-9a-fA-F]+)$/.exec(text.trim());
  if (!m || m[1]!.length > digits) return undefined;
  return Number.parseInt(m[1]!, 16);
}

function readNumaNode(sysfs: SysfsReader, path: string): number | undefined {
  const text = sysfs.readFile(path)?.trim();
  if (text === undefined || !/^-?\d{1,6}$/.test(text)) return undefined;
  const node = Number(text);
  return node < 0 ? undefined : node;
}

function lastSegment(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

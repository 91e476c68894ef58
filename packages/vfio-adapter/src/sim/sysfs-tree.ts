// The simulated host's sysfs: an in-memory tree shaped like Linux's, built from the profile, so
// the adapter's discovery (src/sysfs.ts) finds the simulated devices exactly as it finds real ones.
//
//   bus/pci/devices/0000:3b:00.1            -> devices/pci0000:00/0000:3b:00.1
//   devices/pci0000:00/0000:3b:00.1/{vendor,device,class,numa_node,driver,iommu_group,iommu,vfio-dev/vfio0/dev}
//   kernel/iommu_groups/12/devices/0000:3b:00.1
//   devices/virtual/iommu/dmar0/intel-iommu/ecap  (amd: ivhd0/amd-iommu/features)
//
// Symlink targets are root-relative, as SysfsReader.readlink promises.

import type { SysfsReader } from "../host.ts";
import { checkSysfsPath } from "../sysfs-path.ts";
import type { Profile } from "./profile.ts";

type Node = { kind: "file"; text: string } | { kind: "dir" } | { kind: "link"; target: string };

/** VT-d ecap bits (SMTS 43, SLADS 45, SMPWC 48) and AMD EFR HDSup (52), HASup (49). */
const VTD_ECAP_BASE = 0xf0_0000_0000_0f5en;
const VTD_ECAP_DIRTY = (1n << 43n) | (1n << 45n) | (1n << 48n);
const AMD_EFR_BASE = 0x58f7_7ef2_2294_ade7n & ~((1n << 49n) | (1n << 52n));
const AMD_EFR_DIRTY = (1n << 49n) | (1n << 52n);

export class SimSysfs implements SysfsReader {
  private readonly nodes = new Map<string, Node>();

  file(path: string, text: string): void {
    this.ensureDir(parent(path));
    this.nodes.set(path, { kind: "file", text });
  }

  link(path: string, target: string): void {
    this.ensureDir(parent(path));
    this.nodes.set(path, { kind: "link", target });
  }

  readFile(path: string): string | undefined {
    const n = this.lookup(path);
    return n?.node.kind === "file" ? n.node.text.replace(/\n$/, "") : undefined;
  }

  readdir(path: string): string[] | undefined {
    const n = this.lookup(path);
    if (n?.node.kind !== "dir") return undefined;
    const prefix = n.path === "" ? "" : `${n.path}/`;
    const names = new Set<string>();
    for (const key of this.nodes.keys()) {
      if (key.startsWith(prefix) && key !== n.path) {
        const rest = key.slice(prefix.length);
        if (rest && !rest.includes("/")) names.add(rest);
      }
    }
    return [...names].sort();
  }

  readlink(path: string): string | undefined {
    checkSysfsPath(path);
    const dir = parent(path);
    const base = dir === "" ? "" : this.lookup(dir)?.path;
    if (base === undefined) return undefined;
    const node = this.nodes.get(base === "" ? basename(path) : `${base}/${basename(path)}`);
    return node?.kind === "link" ? node.target : undefined;
  }

  exists(path: string): boolean {
    return this.lookup(path) !== undefined;
  }

  // --- Internal helpers ---

  private ensureDir(path: string): void {
    if (path === "" || this.nodes.get(path)?.kind === "dir") return;
    this.ensureDir(parent(path));
    this.nodes.set(path, { kind: "dir" });
  }

  /** Resolves every component, following links (at most 16 hops, like a tiny ELOOP guard). */
  private lookup(path: string): { path: string; node: Node } | undefined {
    // Malformed paths are a caller's bug or an attack: InvalidInputError, as on every backend.
    checkSysfsPath(path);
    if (path === "") return { path: "", node: { kind: "dir" } };
    let cur = "";
    let hops = 0;
    for (const part of path.split("/")) {
      let next = cur === "" ? part : `${cur}/${part}`;
      let node = this.nodes.get(next);
      while (node?.kind === "link") {
        if (++hops > 16) return undefined;
        next = node.target;
        node = this.nodes.get(next);
      }
      if (!node) return undefined;
      cur = next;
    }
    const node = this.nodes.get(cur);
    return node ? { path: cur, node } : undefined;
  }
}

/** The sysfs tree of a profile. `cdevIndex` gives each device's vfioN number. */
export function buildSysfs(profile: Profile, cdevIndex: (bdf: string) => number): SimSysfs {
  const fs = new SimSysfs();
  const intel = profile.iommu.vendor === "intel";
  const unit = intel ? "devices/virtual/iommu/dmar0" : "devices/virtual/iommu/ivhd0";
  if (intel)
    fs.file(
      `${unit}/intel-iommu/ecap`,
      hex64(VTD_ECAP_BASE | (profile.iommu.dirtyTracking ? VTD_ECAP_DIRTY : 0n)),
    );
  else if (profile.iommu.vendor === "amd")
    fs.file(
      `${unit}/amd-iommu/features`,
      `${hex64(AMD_EFR_BASE | (profile.iommu.dirtyTracking ? AMD_EFR_DIRTY : 0n))}:0`,
    );
  else fs.file(`devices/virtual/iommu/smmu3.0/uevent`, "");
  const unitPath = intel || profile.iommu.vendor === "amd" ? unit : "devices/virtual/iommu/smmu3.0";
  fs.link(`class/iommu/${basename(unitPath)}`, unitPath);

  const addDevice = (
    bdf: string,
    ids: { vendor: string; device: string; cls: string },
    driver: string | undefined,
    group: number,
    numa: number,
  ) => {
    const dir = `devices/pci0000:00/${bdf}`;
    fs.link(`bus/pci/devices/${bdf}`, dir);
    fs.file(`${dir}/vendor`, ids.vendor);
    fs.file(`${dir}/device`, ids.device);
    fs.file(`${dir}/class`, ids.cls);
    fs.file(`${dir}/subsystem_vendor`, ids.vendor);
    fs.file(`${dir}/subsystem_device`, ids.device);
    fs.file(`${dir}/numa_node`, String(numa));
    fs.file(`${dir}/driver_override`, "(null)");
    if (driver) {
      fs.file(`bus/pci/drivers/${driver}/uevent`, "");
      fs.link(`${dir}/driver`, `bus/pci/drivers/${driver}`);
    }
    fs.link(`${dir}/iommu_group`, `kernel/iommu_groups/${group}`);
    fs.link(`${dir}/iommu`, unitPath);
    fs.link(`kernel/iommu_groups/${group}/devices/${bdf}`, dir);
    fs.file(`kernel/iommu_groups/${group}/type`, "DMA-FQ");
    return dir;
  };

  for (const d of profile.devices) {
    const dir = addDevice(
      d.bdf,
      { vendor: d.vendor, device: d.device, cls: d.class ?? "0x020000" },
      d.driver,
      d.group,
      d.numaNode ?? 0,
    );
    // Every VFIO-bound device has vfio-dev/vfioN; `dev` exists only with the cdev (6.6+).
    const n = cdevIndex(d.bdf);
    fs.file(`${dir}/vfio-dev/vfio${n}/uevent`, `MAJOR=511\nMINOR=${n}\nDEVNAME=vfio/devices/vfio${n}`);
    if (profile.iommu.cdev) fs.file(`${dir}/vfio-dev/vfio${n}/dev`, `511:${n}`);
  }
  for (const g of profile.groups)
    for (const m of g.members)
      addDevice(m.bdf, { vendor: "0x8086", device: "0x1234", cls: "0x060400" }, m.driver, g.id, 0);
  for (const [path, text] of Object.entries(profile.json.sysfs ?? {})) if (safe(path)) fs.file(path, text);
  return fs;
}

// --- Internal helpers ---

function safe(path: string): boolean {
  return (
    !path.startsWith("/") && !path.split("/").some((p) => p === ".." || p === ".") && !path.includes("\0")
  );
}

function parent(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "" : path.slice(0, i);
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

function hex64(x: bigint): string {
  return x.toString(16);
}

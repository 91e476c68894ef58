// Device names from the host's PCI ID database (pci.ids, as `lspci -nn` shows them): "Mellanox
// Technologies ConnectX Family mlx5Gen Virtual Function [15b3:101e]". Names are a convenience:
// without the file the ids alone are shown, never an error.
//
//   const names = readPciIds();            // the host's file, or an empty lookup
//   names.name(0x15b3, 0x101e);            // "Mellanox Technologies ConnectX Family ..." | null

import { readFileSync } from "node:fs";
import { UsageError } from "./errors.ts";

/** Where distributions install pci.ids (Debian's `pci.ids` package, hwdata, older pciutils). */
export const PCI_IDS_PATHS = ["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids", "/usr/share/pci.ids"];

export interface PciIds {
  /** "Vendor Device", or the vendor alone when the device is not listed; null when neither is. */
  name(vendorId: number, deviceId: number): string | null;
}

/**
 * The lookup of `path` (a usage error when it cannot be read: the user named it), or of the first
 * default path that exists (an empty lookup when none does).
 */
export function readPciIds(path?: string, defaults: readonly string[] = PCI_IDS_PATHS): PciIds {
  if (path !== undefined) {
    try {
      return parsePciIds(readFileSync(path, "latin1"));
    } catch (err) {
      throw new UsageError(
        `--pci-ids ${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? err}); give a pci.ids file`,
        { cause: err },
      );
    }
  }
  for (const p of defaults) {
    try {
      return parsePciIds(readFileSync(p, "latin1"));
    } catch {
      // not there: try the next place
    }
  }
  return { name: () => null };
}

/** `[15b3:101e]`, the way `lspci -nn` writes ids. */
export function pciIdText(vendorId: number, deviceId: number): string {
  const h = (v: number) => v.toString(16).padStart(4, "0");
  return `[${h(vendorId)}:${h(deviceId)}]`;
}

/** Parses pci.ids text: vendor lines at column 0, their devices one tab in; the class list ends it. */
export function parsePciIds(text: string): PciIds {
  const vendors = new Map<number, { name: string; devices: Map<number, string> }>();
  let vendor: { name: string; devices: Map<number, string> } | undefined;
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    if (line.startsWith("C ")) break; // device classes follow: no more vendors
    const v = /^([0-9a-f]{4}) {2}(.+)$/.exec(line);
    if (v) {
      vendor = { name: v[2]!.trim(), devices: new Map() };
      vendors.set(Number.parseInt(v[1]!, 16), vendor);
      continue;
    }
    const d = /^\t([0-9a-f]{4}) {2}(.+)$/.exec(line);
    if (d && vendor) vendor.devices.set(Number.parseInt(d[1]!, 16), d[2]!.trim());
  }
  return {
    name(vendorId, deviceId) {
      const v = vendors.get(vendorId);
      if (!v) return null;
      const d = v.devices.get(deviceId);
      return d ? `${v.name} ${d}` : v.name;
    },
  };
}

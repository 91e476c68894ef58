// A SysfsReader over a real directory: /sys on a host, or a fixture tree in tests.
//
// Every path is checked (checkSysfsPath), then resolved with realpath and refused when the result
// leaves the root, so a symlink planted in a fixture (or a hostile name) cannot read /etc/passwd.
// Reads that fail for any reason (missing, EACCES, EIO from a sysfs attribute that cannot be read)
// are `undefined`: discovery reports what it can see and never dies on one odd attribute.
//
//   const sysfs = createDirSysfsReader("/sys");
//   sysfs.readFile("bus/pci/devices/0000:3b:00.1/vendor");   // "0x15b3"
//   sysfs.readlink("bus/pci/devices/0000:3b:00.1/driver");   // "bus/pci/drivers/mlx5_vfio_pci"

import { lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import type { SysfsReader } from "../host.ts";
import { checkSysfsPath } from "../sysfs-path.ts";

/** A SysfsReader rooted at `root` (default "/sys"). A missing root reads as an empty tree. */
export function createDirSysfsReader(root = "/sys"): SysfsReader {
  const rootReal = realpathOrUndefined(root);

  // The real path of `path` when it exists and stays inside the root after resolving links.
  const resolveInside = (path: string): string | undefined => {
    const segments = checkSysfsPath(path);
    if (rootReal === undefined) return undefined;
    const real = realpathOrUndefined(join(rootReal, ...segments));
    return real !== undefined && isInside(rootReal, real) ? real : undefined;
  };

  return {
    readFile(path) {
      const real = resolveInside(path);
      if (real === undefined) return undefined;
      try {
        const text = readFileSync(real, "utf8");
        return text.endsWith("\n") ? text.slice(0, -1) : text;
      } catch {
        return undefined;
      }
    },
    readdir(path) {
      const real = resolveInside(path);
      if (real === undefined) return undefined;
      try {
        return readdirSync(real).sort();
      } catch {
        return undefined;
      }
    },
    readlink(path) {
      const segments = checkSysfsPath(path);
      if (rootReal === undefined || segments.length === 0) return undefined;
      // Resolve the directories above the link, but not the link itself: that is what we read.
      const parent = resolveInside(segments.slice(0, -1).join("/"));
      if (parent === undefined) return undefined;
      const linkPath = join(parent, segments[segments.length - 1]!);
      try {
        if (!lstatSync(linkPath).isSymbolicLink()) return undefined;
        const target = resolve(dirname(linkPath), readlinkSync(linkPath));
        // Follow further links when the target exists (sysfs links point at links, e.g. a driver's
        // module); a dangling link is still reported by where it points.
        const real = realpathOrUndefined(target) ?? target;
        if (!isInside(rootReal, real)) return undefined;
        return relative(rootReal, real).split(sep).join("/");
      } catch {
        return undefined;
      }
    },
    exists(path) {
      return resolveInside(path) !== undefined;
    },
  };
}

// --- Internal helpers ---

function realpathOrUndefined(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

// `relative` rather than a string prefix test, so "/sysfoo" is not inside "/sys".
function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === "" || (rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

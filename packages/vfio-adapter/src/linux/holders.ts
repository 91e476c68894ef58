// Which other processes hold a /dev/vfio node open, read from /proc: every /proc/<pid>/fd/<n>
// link that resolves to the node. `vfio-dirty check` refuses a device some other process (a VMM)
// holds before it opens anything, so it never disturbs a running guest.
//
//   findHolders("/dev/vfio/12");   // [{ pid: 4242, command: "qemu-system-x86" }], or undefined
//
// A device fd obtained through a group links to "anon_inode:[vfio-device]", which names no
// device; but the process that got it through the group keeps the group fd open too, and a cdev
// fd links to its /dev/vfio/devices/vfioN node, so the group and cdev paths cover both ways in.

import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";

export interface Holder {
  pid: number;
  /** /proc/<pid>/comm: the process name (at most 15 characters). */
  command: string;
}

/**
 * Processes other than `selfPid` with `path` open. undefined when some process's fds could not
 * be read (not root) and none was found holding it: the host cannot tell.
 */
export function findHolders(path: string, procRoot = "/proc", selfPid = process.pid): Holder[] | undefined {
  const found: Holder[] = [];
  let unreadable = false;
  for (const entry of readdirSafe(procRoot) ?? []) {
    if (!/^\d+$/.test(entry) || Number(entry) === selfPid) continue;
    const fds = readdirSafe(join(procRoot, entry, "fd"));
    if (fds === undefined) {
      // Gone since the listing (ENOENT) is not a doubt; a process we may not inspect is.
      unreadable ||= isAccessDenied(join(procRoot, entry, "fd"));
      continue;
    }
    if (fds.some((fd) => linkTarget(join(procRoot, entry, "fd", fd)) === path))
      found.push({ pid: Number(entry), command: commandOf(join(procRoot, entry)) });
  }
  return found.length === 0 && unreadable ? undefined : found;
}

// --- Internal helpers ---

function readdirSafe(dir: string): string[] | undefined {
  try {
    return readdirSync(dir);
  } catch {
    return undefined;
  }
}

function isAccessDenied(dir: string): boolean {
  try {
    readdirSync(dir);
    return false;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === "EACCES" || code === "EPERM";
  }
}

function linkTarget(link: string): string | undefined {
  try {
    return readlinkSync(link);
  } catch {
    return undefined;
  }
}

function commandOf(procDir: string): string {
  try {
    return readFileSync(join(procDir, "comm"), "utf8").trim() || "?";
  } catch {
    return "?";
  }
}

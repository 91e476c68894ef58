// findHolders against a fixture /proc tree: fd links that resolve to the node name their process,
// the caller's own pid is left out, entries that are not processes are ignored.

import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { findHolders } from "../../src/linux/holders.ts";

let root = "";
afterEach(() => {
  if (root) rmSync(root, { recursive: true, force: true });
  root = "";
});

/** A fake /proc: each process with its comm and its fd link targets. */
function proc(processes: Record<string, { comm: string; fds: string[] }>): string {
  root = mkdtempSync(join(tmpdir(), "vfio-dirty-proc-"));
  for (const [pid, p] of Object.entries(processes)) {
    mkdirSync(join(root, pid, "fd"), { recursive: true });
    writeFileSync(join(root, pid, "comm"), `${p.comm}\n`);
    for (const [i, target] of p.fds.entries()) symlinkSync(target, join(root, pid, "fd", String(i)));
  }
  mkdirSync(join(root, "sys"));
  writeFileSync(join(root, "uptime"), "1.0 1.0\n");
  return root;
}

describe("findHolders", () => {
  it("names every other process holding the node, by pid and command", () => {
    const r = proc({
      "4242": { comm: "qemu-system-x86", fds: ["/dev/null", "/dev/vfio/12", "anon_inode:[vfio-device]"] },
      "77": { comm: "bash", fds: ["/dev/pts/0"] },
      "5000": { comm: "cloud-hyperviso", fds: ["/dev/vfio/devices/vfio0"] },
    });
    expect(findHolders("/dev/vfio/12", r, 1)).toEqual([{ pid: 4242, command: "qemu-system-x86" }]);
    expect(findHolders("/dev/vfio/devices/vfio0", r, 1)).toEqual([{ pid: 5000, command: "cloud-hyperviso" }]);
    expect(findHolders("/dev/vfio/13", r, 1)).toEqual([]);
  });

  it("leaves out the calling process itself", () => {
    const r = proc({ "4242": { comm: "node", fds: ["/dev/vfio/12"] } });
    expect(findHolders("/dev/vfio/12", r, 4242)).toEqual([]);
  });

  it("finds this process's own open node on the real /proc when asked as someone else", async () => {
    const { openSync, closeSync } = await import("node:fs");
    const fd = openSync("/dev/null", "r");
    try {
      expect(findHolders("/dev/null", "/proc", -1)?.some((h) => h.pid === process.pid)).toBe(true);
    } finally {
      closeSync(fd);
    }
  });
});

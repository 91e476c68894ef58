// `vfio-dirty check` as users run it (the built CLI as a process): every shipped profile passes
// every MUST with a --json document its schema accepts and a JUnit file; a profile whose driver
// has a quirk exits 3; a device another process holds is refused with exit 2 and one line.

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cli, cliJson, expectShape, REPO, shippedProfiles, tempDir } from "./helpers.ts";

const tmp = tempDir();
afterAll(tmp.cleanup);

type Doc = {
  exitCode: number;
  summary: { failedMust: number; rules: number };
  devices: { address: string }[];
};

/** A shipped profile with its first device changed by `edit`, as a file. */
function profile(name: string, edit: (device: Record<string, unknown>) => void): string {
  const json = JSON.parse(
    readFileSync(join(REPO, "packages/vfio-adapter/sim/profiles/mlx5-vf.json"), "utf8"),
  );
  edit(json.devices[0]);
  const path = join(tmp.dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(json));
  return path;
}

describe.each(shippedProfiles())("check --host sim:%s", (name) => {
  it("passes every MUST: exit 0, a valid --json document, a JUnit file", async () => {
    const junit = join(tmp.dir, `${name}.xml`);
    const { code, doc, stderr } = await cliJson<Doc>(["check", "--host", `sim:${name}`, "--junit", junit]);
    expectShape("check", doc);
    expect(code, stderr).toBe(0);
    expect(doc.summary.failedMust).toBe(0);
    expect(readFileSync(junit, "utf8")).toMatch(
      new RegExp(`<testsuites name="vfio-dirty check \\(sim:${name}\\)" tests="${doc.summary.rules}"`),
    );
  });
});

describe("check exit codes", () => {
  it("a driver that does not clear on REPORT: exit 3, the rule named on stderr", async () => {
    const host = `sim:${profile("no-clear", (d) => {
      d.dmaLogging = { quirks: ["no-clear"] };
    })}`;
    const r = await cli(["check", "--host", host, "--only", "device"]);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/device\.report\.clears@4K\s+│ MUST\s+│ FAIL/);
    expect(r.stderr).toMatch(
      /^vfio-dirty: 2 MUST rules failed: 0000:3b:00.1 device.report.clears@4K, 0000:3b:00.1 device.report.clears@4K \(cdev\)$/m,
    );
  });

  it("a device a VMM holds: exit 2, one line, nothing opened", async () => {
    const host = `sim:${profile("held", (d) => {
      d.heldBy = { pid: 4242, command: "qemu-system-x86" };
    })}`;
    const r = await cli(["check", "--host", host, "--json"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(
      "vfio-dirty: 0000:3b:00.1 is in use: qemu-system-x86 (pid 4242) holds /dev/vfio/12; check never opens a device another process uses\n",
    );
  });
});

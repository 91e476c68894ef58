// Packaging: `npm pack` of the four packages gives tarballs that install offline into an empty
// folder, and the installed command runs: the .wasm and koffi's native part travel with them.

import { execFile } from "node:child_process";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO, tempDir } from "./helpers.ts";

const run = promisify(execFile);
const PACKAGES = ["bitmap-wasm", "vfio-adapter", "tracker", "cli"];
const tmp = tempDir("vfio-dirty-pack-");
afterAll(tmp.cleanup);
const tgz = join(tmp.dir, "tgz");
const app = join(tmp.dir, "app");
const bin = join(app, "node_modules/.bin/vfio-dirty");
// npm's own environment (npm_config_* set by a parent `npm test`) must not leak into the install.
const env = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith("npm_")),
);

beforeAll(async () => {
  await run("mkdir", ["-p", tgz, app]);
  for (const p of PACKAGES)
    await run("npm", ["pack", "-w", `packages/${p}`, "--pack-destination", tgz, "--silent"], {
      cwd: REPO,
      env,
    });
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true }));
  const tarballs = readdirSync(tgz).map((f) => join(tgz, f));
  await run("npm", ["install", "--offline", "--no-audit", "--no-fund", ...tarballs], { cwd: app, env });
}, 180_000);

describe("installed from packed tarballs", () => {
  it("has the four tarballs", () => {
    expect(readdirSync(tgz).sort()).toEqual(PACKAGES.map((p) => `vfio-dirty-${p}-0.1.0.tgz`).sort());
  });

  it("runs vfio-dirty --version", async () => {
    const { stdout } = await run(bin, ["--version"], { cwd: app, env });
    expect(stdout).toBe("0.1.0\n");
  });

  it("runs vfio-dirty probe --host sim", async () => {
    const { stdout } = await run(bin, ["probe", "--host", "sim"], {
      cwd: app,
      env: { ...env, NO_COLOR: "1" },
    });
    expect(stdout).toMatch(/^host: sim:mlx5-vf \(simulated\)\n/);
    expect(stdout).toMatch(/strategy: device/);
  });

  it("carries the .wasm (bitmap tools work)", async () => {
    const file = join(tmp.dir, "a.bin");
    writeFileSync(file, new Uint8Array([0x0f, 0, 0, 0, 0, 0, 0, 0x80]));
    const { stdout } = await run(bin, ["bitmap", "stats", file, "--json"], { cwd: app, env });
    expect(JSON.parse(stdout)).toMatchObject({ pages: 64, dirtyPages: 5, runs: 2 });
  });

  it("carries koffi's native part (the Linux host loads and maps memory)", async () => {
    const script =
      "const { createLinuxHost } = await import('@vfio-dirty/vfio-adapter/linux');" +
      "const h = createLinuxHost(); const m = h.mmapAnonymous(4096n);" +
      "console.log(typeof m.address, m.bytes.length, h.munmap(m));";
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], { cwd: app, env });
    expect(stdout).toBe("bigint 4096 0\n");
  });
});

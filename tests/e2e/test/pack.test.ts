// Packaging: `npm pack` of the four packages gives tarballs that install offline into an empty
// folder, and the installed command runs: the .wasm and koffi's native part travel with them.
//
// The install must work on a machine whose npm cache started empty: `npm ci` leaves tarballs
// but no packuments, and `npm install --offline` of a tarball asks for the packument of every
// dependency by name. So the test packs the dependency closure it finds in the workspace's own
// node_modules and points `overrides` at those tarballs, with an empty cache of its own. The
// app still depends only on the four tarballs: a dependency one of them forgot to declare is
// not installed, and the commands below fail.

import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO, tempDir } from "./helpers.ts";

const run = promisify(execFile);
const PACKAGES = ["bitmap-wasm", "vfio-adapter", "tracker", "cli"];
const tmp = tempDir("vfio-dirty-pack-");
afterAll(tmp.cleanup);
const tgz = join(tmp.dir, "tgz");
const deps = join(tmp.dir, "deps");
const app = join(tmp.dir, "app");
const bin = join(app, "node_modules/.bin/vfio-dirty");
// npm's own environment (npm_config_* set by a parent `npm test`) must not leak into the install,
// and neither may a warm cache: the install gets an empty one.
const env = {
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith("npm_"))),
  npm_config_cache: join(tmp.dir, "npm-cache"),
};

interface Manifest {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}
const manifest = (dir: string): Manifest => JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));

/** Where Node would find package `name` from `fromDir`: the nearest node_modules up to the repo. */
function installedDir(name: string, fromDir: string): string | undefined {
  for (let dir = fromDir; dir.startsWith(REPO.replace(/\/$/, "")); dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dir === dirname(dir)) break;
  }
  return undefined;
}

/**
 * The installed directories of every third-party package the four packages need at run time:
 * dependencies, and optional dependencies this machine has (koffi's native part for this
 * platform). A missing required dependency is an error: the workspace install is incomplete.
 */
function runtimeClosure(): Map<string, string> {
  const found = new Map<string, string>();
  const visit = (dir: string): void => {
    const m = manifest(dir);
    const wanted = [
      ...Object.keys(m.dependencies ?? {}).map((n) => ({ n, optional: false })),
      ...Object.keys(m.optionalDependencies ?? {}).map((n) => ({ n, optional: true })),
    ];
    for (const { n, optional } of wanted) {
      if (n.startsWith("@vfio-dirty/") || found.has(n)) continue;
      const at = installedDir(n, dir);
      if (!at) {
        if (optional) continue;
        throw new Error(`${m.name} depends on ${n}, which is not installed in the workspace`);
      }
      found.set(n, at);
      visit(at);
    }
  };
  for (const p of PACKAGES) visit(join(REPO, "packages", p));
  return found;
}

beforeAll(async () => {
  await run("mkdir", ["-p", tgz, deps, app]);
  for (const p of PACKAGES)
    await run("npm", ["pack", "-w", `packages/${p}`, "--pack-destination", tgz, "--silent"], {
      cwd: REPO,
      env,
    });
  const closure = runtimeClosure();
  await run(
    "npm",
    ["pack", "--ignore-scripts", "--silent", "--pack-destination", deps, ...closure.values()],
    {
      cwd: REPO,
      env,
    },
  );
  const overrides = Object.fromEntries(
    [...closure.values()].map((dir) => {
      const m = manifest(dir);
      return [m.name, `file:${join(deps, `${m.name.replace(/^@/, "").replace("/", "-")}-${m.version}.tgz`)}`];
    }),
  );
  const dependencies = Object.fromEntries(
    readdirSync(tgz).map((f) => [
      `@vfio-dirty/${f.replace(/^vfio-dirty-|-0\.1\.0\.tgz$/g, "")}`,
      `file:${join(tgz, f)}`,
    ]),
  );
  writeFileSync(
    join(app, "package.json"),
    JSON.stringify({ name: "app", private: true, dependencies, overrides }),
  );
  await run("npm", ["install", "--offline", "--no-audit", "--no-fund"], { cwd: app, env });
});

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

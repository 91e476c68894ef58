import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { UsageError } from "../src/errors.ts";
import { chooseHost } from "../src/host.ts";
import { loadWorkloadPlugin } from "../src/workloads/load.ts";

describe("chooseHost", () => {
  it("defaults to linux when /dev/vfio exists, else the simulated host", () => {
    expect(chooseHost(undefined, true)).toEqual({ kind: "linux", auto: true });
    expect(chooseHost(undefined, false)).toEqual({ kind: "sim", profile: "mlx5-vf", auto: true });
  });
  it("parses explicit hosts", () => {
    expect(chooseHost("linux", false)).toEqual({ kind: "linux", auto: false });
    expect(chooseHost("sim", true)).toEqual({ kind: "sim", profile: "mlx5-vf", auto: false });
    expect(chooseHost("sim:viommu", true)).toEqual({ kind: "sim", profile: "viommu", auto: false });
    expect(chooseHost("sim:./my/host.json", true)).toEqual({
      kind: "sim",
      profile: "./my/host.json",
      auto: false,
    });
  });
  it.each(["", "sim:", "qemu", "Linux"])("rejects %j", (spec) => {
    expect(() => chooseHost(spec, false)).toThrow(UsageError);
  });
});

describe("loadWorkloadPlugin", () => {
  const dir = mkdtempSync(join(tmpdir(), "vfio-dirty-plugin-"));

  it("finds the shipped edu plugin by name", async () => {
    expect((await loadWorkloadPlugin("edu")).name).toBe("edu");
  });

  it("loads a plugin module by path", async () => {
    const path = join(dir, "mine.mjs");
    writeFileSync(
      path,
      "export default { name: 'mine', description: 'd', supports: () => true, create: () => ({ run: async () => [], stop() {} }) };",
    );
    expect((await loadWorkloadPlugin(path)).name).toBe("mine");
  });

  it("rejects a module whose default export is not a plugin, and unknown names", async () => {
    const path = join(dir, "bad.mjs");
    writeFileSync(path, "export default 42;");
    await expect(loadWorkloadPlugin(path)).rejects.toThrow(/not a workload plugin/);
    await expect(loadWorkloadPlugin("nope")).rejects.toThrow(
      /no shipped plugin of that name \(shipped: edu\)/,
    );
  });
});

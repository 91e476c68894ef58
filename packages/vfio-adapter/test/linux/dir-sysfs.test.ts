// The directory-backed SysfsReader: real files and symlinks in a temp dir, including links that
// try to leave the root.

import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidInputError } from "../../src/errors.ts";
import type { SysfsReader } from "../../src/host.ts";
import { createDirSysfsReader } from "../../src/linux/dir-sysfs.ts";
import { checkSysfsPath } from "../../src/sysfs-path.ts";
import { intelMlx5Host, writeSysfsTree } from "../fixtures/sysfs-trees.ts";

let outer: string;
let root: string;
let sysfs: SysfsReader;

beforeAll(() => {
  outer = mkdtempSync(join(tmpdir(), "vfio-dirty-sysfs-"));
  root = join(outer, "sys");
  mkdirSync(root);
  writeSysfsTree(intelMlx5Host(), root);
  // Hostile or odd entries next to the fixture.
  writeFileSync(join(outer, "secret"), "outside the root\n");
  symlinkSync("../../../../secret", join(root, "devices/pci0000:00/0000:3b:00.2/escape"));
  symlinkSync(join(outer, "secret"), join(root, "absolute-escape"));
  symlinkSync("../secret", join(root, "escape-dir-link"));
  symlinkSync("nowhere/at/all", join(root, "dangling"));
  writeFileSync(join(root, "two-lines"), "a\nb\n\n");
  writeFileSync(join(root, "no-newline"), "x");
  mkdirSync(join(outer, "sysfoo"));
  writeFileSync(join(outer, "sysfoo", "attr"), "sibling with the root's name as prefix\n");
  symlinkSync("../sysfoo/attr", join(root, "prefix-escape"));
  sysfs = createDirSysfsReader(root);
});

afterAll(() => rmSync(outer, { recursive: true, force: true }));

describe("reads", () => {
  it("reads attributes with one trailing newline removed", () => {
    expect(sysfs.readFile("devices/pci0000:00/0000:3b:00.2/vendor")).toBe("0x15b3");
    expect(sysfs.readFile("two-lines")).toBe("a\nb\n");
    expect(sysfs.readFile("no-newline")).toBe("x");
  });

  it("follows the bus/pci/devices links into devices/", () => {
    expect(sysfs.readFile("bus/pci/devices/0000:3b:00.2/device")).toBe("0x101e");
    expect(sysfs.readdir("bus/pci/devices")).toEqual([
      "0000:00:01.0",
      "0000:3b:00.0",
      "0000:3b:00.2",
      "0000:5e:00.0",
    ]);
  });

  it("lists directories sorted, and gives undefined for files and missing paths", () => {
    expect(sysfs.readdir("kernel/iommu_groups/40/devices")).toEqual(["0000:3b:00.2"]);
    expect(sysfs.readdir("bus/pci/devices/0000:3b:00.2/vendor")).toBeUndefined();
    expect(sysfs.readdir("no/such/dir")).toBeUndefined();
    expect(sysfs.readFile("no/such/file")).toBeUndefined();
    expect(sysfs.readFile("bus/pci/devices")).toBeUndefined(); // a directory is not an attribute
    expect(sysfs.readdir("")).toContain("bus");
  });

  it("resolves links to root-relative paths, through linked parents", () => {
    expect(sysfs.readlink("bus/pci/devices/0000:3b:00.2")).toBe("devices/pci0000:00/0000:3b:00.2");
    expect(sysfs.readlink("bus/pci/devices/0000:3b:00.2/driver")).toBe("bus/pci/drivers/mlx5_vfio_pci");
    expect(sysfs.readlink("bus/pci/devices/0000:3b:00.2/iommu_group")).toBe("kernel/iommu_groups/40");
    expect(sysfs.readlink("bus/pci/devices/0000:3b:00.2/iommu")).toBe("devices/virtual/iommu/dmar0");
    expect(sysfs.readlink("bus/pci/devices/0000:3b:00.2/vendor")).toBeUndefined(); // not a link
    expect(sysfs.readlink("bus/pci/devices/0000:3b:00.2/nothing")).toBeUndefined();
    expect(sysfs.readlink("dangling")).toBe("nowhere/at/all");
  });

  it("exists follows links and stays inside the root", () => {
    expect(sysfs.exists("bus/pci/devices/0000:3b:00.2/vfio-dev/vfio0/dev")).toBe(true);
    expect(sysfs.exists("bus/pci/devices/0000:3b:00.2/vfio-dev/vfio9")).toBe(false);
    expect(sysfs.exists("dangling")).toBe(false);
  });
});

describe("confinement", () => {
  it("never reads through a link that leaves the root, relative or absolute", () => {
    for (const p of [
      "devices/pci0000:00/0000:3b:00.2/escape",
      "absolute-escape",
      "escape-dir-link",
      "prefix-escape",
    ]) {
      expect(sysfs.readFile(p), p).toBeUndefined();
      expect(sysfs.exists(p), p).toBe(false);
      expect(sysfs.readlink(p), p).toBeUndefined();
    }
  });

  it("throws InvalidInputError for '..', '.', empty segments, absolute paths, NUL and backslashes", () => {
    const bad = [
      "..",
      "../secret",
      "bus/../../secret",
      "bus/./pci",
      "bus//pci",
      "bus/pci/",
      "/etc/passwd",
      "bus\0",
      "bus\\pci",
      `${"a".repeat(256)}`,
      "a/".repeat(2100),
    ];
    for (const p of bad) {
      expect(() => sysfs.readFile(p), JSON.stringify(p)).toThrow(InvalidInputError);
      expect(() => checkSysfsPath(p), JSON.stringify(p)).toThrow(InvalidInputError);
    }
    expect(() => sysfs.readlink("../secret")).toThrow(/contains ".."/);
  });

  it("accepts names with dots that are not '.' or '..'", () => {
    expect(checkSysfsPath("devices/pci0000:00/0000:3b:00.2/..hidden")).toHaveLength(4);
    expect(checkSysfsPath("class/iommu/smmu3.0x0000000009050000")).toHaveLength(3);
  });

  it("a missing root reads as an empty tree", () => {
    const none = createDirSysfsReader(join(outer, "no-such-root"));
    expect(none.readdir("bus/pci/devices")).toBeUndefined();
    expect(none.readFile("x")).toBeUndefined();
    expect(none.exists("")).toBe(false);
  });
});

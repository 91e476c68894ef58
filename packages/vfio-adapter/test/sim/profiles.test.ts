import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../src/errors.ts";
import { createSimHost, listProfiles, loadProfile, parseProfile } from "../../src/sim/index.ts";
import type { ProfileJson } from "../../src/sim/profile.ts";
import { type1Device } from "./helpers.ts";

const SHIPPED = [
  "edu-iommufd",
  "edu-logging",
  "edu-migration",
  "edu-type1",
  "gpu-iommufd",
  "guest-16tib",
  "legacy-type1",
  "mixed-logging",
  "mlx5-p2p",
  "mlx5-vf",
  "viommu",
];

function minimal(): ProfileJson {
  return {
    name: "t",
    kernel: "6.8",
    iommu: { vendor: "intel" },
    memory: [{ gpa: "0x0", length: "1GiB", kind: "ram" }],
    devices: [{ bdf: "0000:01:00.0", vendor: "0x15b3", device: "0x101e", driver: "mlx5_vfio_pci", group: 1 }],
  };
}

function rejects(mutate: (p: ProfileJson) => void, field: RegExp): void {
  const p = minimal();
  mutate(p);
  expect(() => parseProfile(p, "bad.json")).toThrow(InvalidInputError);
  expect(() => parseProfile(p, "bad.json")).toThrow(field);
}

describe("shipped profiles", () => {
  it("lists every shipped profile with a one-line description", () => {
    const list = listProfiles();
    expect(list.map((p) => p.name)).toEqual(SHIPPED);
    for (const p of list) {
      expect(p.description.length).toBeGreaterThan(20);
      expect(p.description).not.toContain("\n");
    }
  });

  it.each(SHIPPED)("%s validates against the schema and boots a host", (name) => {
    const profile = loadProfile(name);
    expect(profile.name).toBe(name);
    const sim = createSimHost(profile);
    expect(sim.name).toBe(`sim:${name}`);
    expect(sim.simulated).toBe(true);
    expect(sim.devices().length).toBe(profile.devices.length);
    // Discovery works on the simulated sysfs: every device is listed under bus/pci/devices.
    for (const d of profile.devices) {
      expect(sim.sysfs.readFile(`bus/pci/devices/${d.bdf}/vendor`)).toBe(d.vendor);
      expect(sim.sysfs.readlink(`bus/pci/devices/${d.bdf}/iommu_group`)).toBe(
        `kernel/iommu_groups/${d.group}`,
      );
    }
  });

  it("the 16 TiB guest keeps memory bounded (sparse guest RAM, logs and dirty bits)", () => {
    const before = process.memoryUsage().heapUsed;
    const sim = createSimHost("guest-16tib");
    const ram = sim.guestMemory().reduce((n, m) => n + m.length, 0n);
    expect(ram).toBe(16n << 40n);
    // Map all 16 TiB, track 4 TiB with the device log, and let the device write for 100 ms.
    const { container, device } = type1Device(sim);
    container.startDirtyTracking();
    device.dmaLoggingStart([{ iova: 0n, length: 4n << 40n }], 4096n);
    sim.run(100);
    const written = sim.writtenSince(0);
    expect(written.length).toBeGreaterThan(1000);
    expect(written.at(-1)! * 4096).toBeGreaterThan(2 ** 40); // the hot set spans the whole guest
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(64 * 1024 * 1024);
  });

  it("an unknown shipped name lists the shipped ones", () => {
    expect(() => loadProfile("nope")).toThrow(/no shipped profile named nope \(shipped: edu-iommufd/);
  });
});

describe("invalid profiles are rejected naming the field", () => {
  it("missing required field", () =>
    rejects((p) => delete (p as Partial<ProfileJson>).kernel, /\/ is missing required field kernel/));
  it("unknown field", () =>
    rejects((p) => Object.assign(p.iommu, { dirty: true }), /\/iommu has unknown field dirty/));
  it("bad enum", () =>
    rejects((p) => Object.assign(p.iommu, { vendor: "via" }), /\/iommu\/vendor must be one of/));
  it("bad PCI address", () =>
    rejects((p) => Object.assign(p.devices[0]!, { bdf: "3b:00.1" }), /\/devices\/0\/bdf must match pattern/));
  it("bad u64", () =>
    rejects((p) => Object.assign(p.memory[0]!, { length: "12 GB" }), /\/memory\/0\/length/));
  it("unaligned memory", () =>
    rejects(
      (p) => Object.assign(p.memory[0]!, { gpa: "0x800" }),
      /\/memory\/0 gpa and length must be 4 KiB aligned/,
    ));
  it("overlapping memory", () =>
    rejects(
      (p) => p.memory.push({ gpa: "512MiB", length: "1GiB", kind: "ram" }),
      /\/memory\/1\/gpa overlaps \/memory\/0/,
    ));
  it("duplicate device", () =>
    rejects((p) => p.devices.push({ ...p.devices[0]! }), /\/devices\/1\/bdf duplicates 0000:01:00.0/));
  it("feature newer than the kernel", () =>
    rejects(
      (p) => Object.assign(p, { kernel: "6.6" }) && Object.assign(p.iommu, { dirtyTracking: true }),
      /\/iommu\/dirtyTracking needs kernel 6.7/,
    ));
  it("logging page size not a power of two", () =>
    rejects(
      (p) => Object.assign(p.devices[0]!, { dmaLogging: { minPageSize: 6000 } }),
      /\/devices\/0\/dmaLogging\/minPageSize must be a power of two/,
    ));
  it("workload without a rate", () =>
    rejects(
      (p) => Object.assign(p.devices[0]!, { workload: { kind: "uniform" } }),
      /\/devices\/0\/workload needs pagesPerSecond/,
    ));
  it("vIOMMU mapping outside RAM", () =>
    rejects(
      (p) => Object.assign(p, { viommu: { mappings: [{ iova: 0, gpa: "2GiB", length: 4096 }] } }),
      /\/viommu\/mappings\/0\/gpa must fall inside one ram section/,
    ));
  it("migration without stop-copy", () =>
    rejects(
      (p) => Object.assign(p.devices[0]!, { migration: { flags: ["p2p"] } }),
      /\/devices\/0\/migration\/flags/,
    ));
  it("the message names the source", () =>
    rejects((p) => Object.assign(p, { kernel: "six" }), /^bad\.json: \/kernel/));
});

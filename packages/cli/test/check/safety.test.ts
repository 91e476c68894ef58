// check on a production host: it refuses unsafe devices before it opens anything, the device
// writes only into memory check mapped for it, and it leaves nothing open or tracking.

import { findPciDevice, type Host } from "@vfio-dirty/vfio-adapter";
import { createSimHost, parseProfile } from "@vfio-dirty/vfio-adapter/sim";
import { describe, expect, it } from "vitest";
import { preflight } from "../../src/check/preflight.ts";
import { checkTargetFor, DMA_WINDOW } from "../../src/check/target.ts";
import { UsageError } from "../../src/errors.ts";
import { checkSim, simWithQuirks } from "./sim-check.ts";

/** A host that counts every syscall-level call made on it. */
function counting(host: Host) {
  const calls: string[] = [];
  const logged = <T>(what: string, call: () => T): T => {
    calls.push(what);
    return call();
  };
  const spy: Host = {
    ...host,
    name: host.name,
    simulated: host.simulated,
    sysfs: host.sysfs,
    holders: (p) => host.holders?.(p),
    open: (p, f) => logged(`open ${p}`, () => host.open(p, f)),
    ioctl: (fd, r, a) => logged(`ioctl ${r}`, () => host.ioctl(fd, r, a)),
    mmapAnonymous: (l) => logged("mmap", () => host.mmapAnonymous(l)),
  };
  return { spy, calls };
}

describe("preflight", () => {
  it("refuses a held device having opened nothing at all", () => {
    const json = structuredClone(createSimHost("mlx5-vf").profile.json);
    json.devices[0]!.heldBy = { pid: 77, command: "cloud-hyperviso" };
    const { spy, calls } = counting(createSimHost(parseProfile(json)));
    expect(() => preflight(spy, [])).toThrow(UsageError);
    expect(() => preflight(spy, [])).toThrow(/cloud-hyperviso \(pid 77\) holds \/dev\/vfio\/12/);
    expect(calls).toEqual([]);
  });

  it("on a real host never picks devices by itself", () => {
    const { spy, calls } = counting({ ...createSimHost("mlx5-vf"), simulated: false } as unknown as Host);
    expect(() => preflight(spy, [])).toThrow(/name the devices to check by PCI address/);
    expect(calls).toEqual([]);
  });

  it("lets a free VFIO device through, still without opening anything", () => {
    const { spy, calls } = counting(createSimHost("mlx5-vf"));
    expect(preflight(spy, ["0000:3b:00.1"]).map((d) => d.address)).toEqual(["0000:3b:00.1"]);
    expect(calls).toEqual([]);
  });
});

describe("DMA stays in check's own memory", () => {
  it("a whole check makes no IOMMU fault and writes no guest memory; nothing is left open or tracking", async () => {
    for (const profile of ["mlx5-vf", "gpu-iommufd", "edu-logging"]) {
      const sim = simWithQuirks(profile);
      const results = await checkSim(sim);
      expect(results.filter((r) => r.result === "pass").length).toBeGreaterThan(10);
      // Every write landed in a mapping a scenario made of its own memory: none faulted, none
      // reached the simulated guest's RAM (which check never maps).
      expect(sim.devices().map((d) => d.iommuFaults)).toEqual(sim.devices().map(() => 0));
      expect(sim.writtenSince(0)).toEqual([]);
      expect(sim.writtenSince(0, { space: "iova" }).length).toBeGreaterThan(0);
      for (const page of sim.writtenSince(0, { space: "iova" })) {
        expect(BigInt(page) * 4096n).toBeGreaterThanOrEqual(DMA_WINDOW.iova);
        expect(BigInt(page) * 4096n).toBeLessThan(DMA_WINDOW.iova + DMA_WINDOW.length);
      }
      expect(sim.trackingActive()).toBe(false);
      const group = sim.open(`/dev/vfio/${sim.profile.devices[0]!.group}`, 2);
      expect(group, "the group opens again: check closed it").toBeGreaterThanOrEqual(0);
    }
  });

  it("the DMA hook refuses an address outside the window before the device is told anything", async () => {
    const sim = createSimHost("edu-logging");
    const writes: bigint[] = [];
    const dev = findPciDevice(sim.sysfs, "0000:00:03.0")!;
    const t = checkTargetFor(sim, dev, { kind: "sim", write: (_b, iova) => writes.push(iova) });
    const end = DMA_WINDOW.iova + DMA_WINDOW.length;
    await t.dma!(DMA_WINDOW.iova, 64n);
    await t.dma!(end - 64n, 64n);
    for (const [iova, length] of [
      [DMA_WINDOW.iova - 4096n, 64n],
      [end - 32n, 64n],
      [0x1_0000_0000n, 64n],
      [DMA_WINDOW.iova, 0n],
    ] as const)
      await expect(Promise.resolve(t.dma!(iova, length))).rejects.toThrow(
        /outside the memory it maps|refused/,
      );
    expect(writes).toEqual([DMA_WINDOW.iova, end - 64n]);
  });
});

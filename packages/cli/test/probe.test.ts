import { Errno, findPciDevice, Group, listVfioDevices } from "@vfio-dirty/vfio-adapter";
import { createSimHost, loadProfile, parseProfile } from "@vfio-dirty/vfio-adapter/sim";
import { describe, expect, it } from "vitest";
import { probeDevices } from "../src/probe-devices.ts";

describe("probeDevices on the simulated host", () => {
  it("reports a device whose group another holder has open as busy, and keeps probing the rest", async () => {
    const host = createSimHost("mlx5-p2p");
    const devices = listVfioDevices(host.sysfs);
    expect(devices).toHaveLength(2);
    // Hold the first device's group the way a running QEMU would.
    const first = findPciDevice(host.sysfs, devices[0]!.address)!;
    const held = Group.open(host, first.iommuGroup!.id, first.iommuGroup!.vfioPath);
    try {
      const r = await probeDevices(host, devices, { open: true });
      const [busy, other] = r.devices;
      if (first.iommuGroup!.id === devices[1]!.iommuGroup!.id) {
        // One shared group: both are held.
        expect(busy!.busy && other!.busy).toBe(true);
      } else {
        expect(busy).toMatchObject({ busy: true, dmaLogging: { supported: null, errno: 16 } });
        expect(other).toMatchObject({ busy: false, dmaLogging: { supported: true } });
      }
      expect(busy!.dmaLogging.why).toMatch(/busy: held by another process/);
    } finally {
      held.close();
    }
    // Everything probe opened was closed again: nothing is left tracking or open.
    expect(host.trackingActive()).toBe(false);
  });

  it("without --open touches nothing but sysfs", async () => {
    const host = createSimHost("mlx5-vf");
    const opens: string[] = [];
    const spy = new Proxy(host, {
      get(target, prop, receiver) {
        if (prop === "open")
          return (path: string, flags: number) => {
            opens.push(path);
            return target.open(path, flags);
          };
        return Reflect.get(target, prop, receiver);
      },
    });
    const r = await probeDevices(spy, listVfioDevices(host.sysfs), { open: false });
    expect(opens).toEqual([]);
    expect(r.provisional).toBe(true);
    expect(r.strategy).toBe("device");
  });
});

describe("probe --open: PRE_COPY and the 7.1 PRECOPY_INFOv2 opt-in", () => {
  it("a 7.3 device with PRE_COPY takes the v2 PROBE; a 6.8 one answers ENOTTY", async () => {
    for (const [profile, v2] of [
      ["edu-migration", { supported: true, errno: null }],
      ["mlx5-vf", { supported: false, errno: Errno.ENOTTY }],
    ] as const) {
      const host = createSimHost(profile);
      const r = await probeDevices(host, listVfioDevices(host.sysfs), { open: true });
      expect(r.devices[0]!.migration, profile).toEqual({
        flags: ["stop-copy", "p2p", "pre-copy"],
        preCopy: true,
        precopyInfoV2: v2,
      });
    }
  });

  it("a 7.3 device without PRE_COPY is EINVAL; one without migration has no migration at all", async () => {
    const noPre = createSimHost(
      parseProfile({
        ...loadProfile("edu-migration").json,
        devices: [{ ...loadProfile("edu-migration").json.devices[0]!, migration: { flags: ["stop-copy"] } }],
      }),
    );
    const r = await probeDevices(noPre, listVfioDevices(noPre.sysfs), { open: true });
    expect(r.devices[0]!.migration).toEqual({
      flags: ["stop-copy"],
      preCopy: false,
      precopyInfoV2: { supported: false, errno: Errno.EINVAL },
    });
    const plain = createSimHost("edu-iommufd");
    const p = await probeDevices(plain, listVfioDevices(plain.sysfs), { open: true });
    expect(p.devices[0]!.migration).toBeNull();
  });
});

// probeCaps on the simulated host: what each kernel "no" becomes (the call and the errno).

import { Errno } from "@vfio-dirty/vfio-adapter";
import { loadProfile } from "@vfio-dirty/vfio-adapter/sim";
import { describe, expect, it } from "vitest";
import { probeCaps } from "../src/probe.ts";
import { chooseStrategy } from "../src/select.ts";
import { openSim, simProfile } from "./sim-helpers.ts";

describe("probeCaps on the sim", () => {
  it("gpu-iommufd: no DMA logging, IOMMU dirty cap, a trial DIRTY_TRACKING HWPT accepted", () => {
    const sim = simProfile(loadProfile("gpu-iommufd").json);
    const s = openSim(sim, "iommufd");
    try {
      if (s.target.iommu.kind !== "iommufd") throw new Error("expected iommufd");
      const caps = probeCaps({ ...s.target, iommu: { ...s.target.iommu, hwptIds: [] } }); // force the trial alloc
      expect(caps.container.hwptDirtyAlloc).toEqual({ ok: true });
      for (const d of caps.devices) {
        // The reason quotes the kernel: ENOTTY from the DMA logging PROBE, as plain vfio-pci answers.
        expect(d.dmaLogging).toEqual({
          ok: false,
          call: "VFIO_DEVICE_FEATURE(PROBE|SET|DMA_LOGGING_START)",
          errno: Errno.ENOTTY,
        });
        expect(d.iommuDirtyCap).toEqual({ ok: true });
      }
      const choice = chooseStrategy(caps);
      expect(choice.strategy).toBe("iommufd");
      expect(choice.reasons.some((r) => r.strategy === "device" && r.errno === Errno.ENOTTY)).toBe(true);
    } finally {
      s.close();
    }
  });

  it("mlx5-vf on iommufd without IOMMU dirty bits: HWPT alloc refused with EOPNOTSUPP, device logging chosen", () => {
    const sim = simProfile(loadProfile("mlx5-vf").json);
    const s = openSim(sim, "iommufd");
    try {
      const caps = probeCaps(s.target);
      expect(caps.container.hwptDirtyAlloc).toMatchObject({ ok: false, errno: Errno.EOPNOTSUPP });
      expect(caps.devices[0]!.dmaLogging).toEqual({ ok: true });
      expect(caps.devices[0]!.migration).toMatchObject({ stopCopy: true });
      const choice = chooseStrategy(caps);
      expect(choice.strategy).toBe("device");
      expect(choice.reasons.some((r) => r.strategy === "iommufd" && r.errno === Errno.EOPNOTSUPP)).toBe(true);
    } finally {
      s.close();
    }
  });

  it("legacy-type1: the migration capability read from VFIO_IOMMU_GET_INFO", () => {
    const sim = simProfile(loadProfile("legacy-type1").json);
    const s = openSim(sim, "type1");
    try {
      const caps = probeCaps(s.target);
      expect(caps.container.type1Migration).toMatchObject({ ok: true, maxDirtyBitmapSize: 1n << 28n });
      expect(caps.container.iovaRanges?.length).toBeGreaterThan(0);
    } finally {
      s.close();
    }
  });
});

// Fallback reasons must carry the kernel's answer: edu under plain vfio-pci answers ENOTTY to the
// DMA logging probe (vfio_ioctl_device_feature_logging_start: no log_ops), and the tracker's
// selection reason for not taking the device strategy must name that errno, not just the call.
import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import { openTracker } from "@vfio-dirty/tracker";
import { Errno } from "@vfio-dirty/vfio-adapter";
import { createLinuxHost } from "@vfio-dirty/vfio-adapter/linux";
import { describe, expect, it } from "vitest";
import { openTyped } from "./support/typed.ts";

const host = createLinuxHost();

describe.skipIf(process.env.VM_DRIVER !== "vfio-pci")("fallback reasons carry the probe's errno", () => {
  it("the reason for not taking the device strategy names the DMA logging probe's ENOTTY", () => {
    using s = openTyped(host);
    const { tracker, choice } = openTracker(
      { devices: [{ id: s.bdf, device: s.device }], iommu: { kind: "type1", container: s.container } },
      {
        core: loadBitmapCoreSync(),
        memory: [{ iova: 0x200000n, length: 0x8000n, kind: "ram" }],
        ignoreBlockers: true,
      },
    );
    tracker.close();
    const reason = choice.reasons.find((r) => r.strategy === "device" && r.device === s.bdf);
    expect(reason, JSON.stringify(choice.reasons)).toBeDefined();
    expect(reason?.call).toMatch(/DMA_LOGGING_START/);
    expect(reason?.errno, JSON.stringify(reason)).toBe(Errno.ENOTTY);
  });
});

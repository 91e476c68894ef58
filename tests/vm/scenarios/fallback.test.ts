// Fallback selection on a real kernel: edu under plain vfio-pci has no DMA logging, so the
// tracker must not take the device strategy, and its reason must name the call and the errno the
// kernel answered (ENOTTY: vfio_ioctl_device_feature_logging_start finds no log_ops); with
// type1's migration capability it takes type1 (and warns), and when forced to all-dirty nothing
// is lost: every page, every sync.
import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import { openTracker } from "@vfio-dirty/tracker";
import { Errno, type MappedMemory } from "@vfio-dirty/vfio-adapter";
import { createLinuxHost } from "@vfio-dirty/vfio-adapter/linux";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { guest } from "./support/guest.ts";
import { openTyped, type TypedSession } from "./support/typed.ts";

const PAGE = 4096n;
const IOVA = 0x200000n;
const LENGTH = 8n * PAGE;
const host = createLinuxHost();
const core = loadBitmapCoreSync();
let s: TypedSession;
let mem: MappedMemory;

describe.skipIf(guest.driver !== "vfio-pci")("fallback: edu under plain vfio-pci", () => {
  beforeAll(() => {
    s = openTyped(host);
    mem = host.mmapAnonymous(LENGTH);
    s.container.mapDma({ vaddr: mem.address, iova: IOVA, length: LENGTH });
  });
  afterAll(() => {
    s?.close();
    if (mem) host.munmap(mem);
  });

  const target = () => ({
    devices: [{ id: s.bdf, device: s.device }],
    iommu: { kind: "type1" as const, container: s.container },
  });
  const memory = [{ iova: IOVA, length: LENGTH, kind: "ram" as const }];

  it("takes type1, and the reason names the DMA logging probe's call and ENOTTY", () => {
    const { tracker, choice } = openTracker(target(), { core, memory, ignoreBlockers: true });
    tracker.close();
    expect(choice.strategy).toBe("type1");
    const reason = choice.reasons.find((r) => r.strategy === "device" && r.device === s.bdf);
    expect(reason, JSON.stringify(choice.reasons)).toBeDefined();
    expect(reason?.call).toMatch(/DMA_LOGGING_START/);
    expect(reason?.errno, JSON.stringify(reason)).toBe(Errno.ENOTTY);
    expect(choice.warnings.join("\n")).toMatch(/type1/);
  });

  it("with device tracking turned off too, the reason names the option", () => {
    const { tracker, choice } = openTracker(target(), {
      core,
      memory,
      ignoreBlockers: true,
      devices: { [s.bdf]: { deviceDirtyPageTracking: false } },
    });
    tracker.close();
    expect(choice.strategy).toBe("type1");
    const reasons = choice.reasons.filter((r) => r.device === s.bdf && r.strategy === "device");
    expect(
      reasons.some((r) => r.option === "x-device-dirty-page-tracking"),
      JSON.stringify(reasons),
    ).toBe(true);
  });

  it("all-dirty reports every page on every sync, so nothing is lost", () => {
    const { tracker } = openTracker(target(), {
      core,
      memory,
      ignoreBlockers: true,
      forceStrategy: "all-dirty",
    });
    try {
      tracker.start();
      tracker.setPhase("pre-copy");
      for (let i = 0; i < 2; i++) {
        const report = tracker.sync();
        expect(report.strategy).toBe("all-dirty");
        expect(report.dirtyPages).toBe(Number(LENGTH / PAGE));
      }
    } finally {
      tracker.close();
    }
  });
});

// Fallback selection on a real kernel: edu under plain vfio-pci has no DMA logging, so the
// tracker must not take the device strategy, and its reasons must name the call and the ENOTTY
// the kernel answered; with type1's migration capability it takes type1 (and warns), and with a
// policy that refuses type1 as well nothing is lost: all-dirty reports every page.
import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import { openTracker } from "@vfio-dirty/tracker";
import { Errno, type MappedMemory } from "@vfio-dirty/vfio-adapter";
import { createLinuxHost } from "@vfio-dirty/vfio-adapter/linux";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTyped, type TypedSession } from "./support/typed.ts";

const PAGE = 4096n;
const IOVA = 0x200000n;
const LENGTH = 8n * PAGE;
const host = createLinuxHost();
const core = loadBitmapCoreSync();
let s: TypedSession;
let mem: MappedMemory;

describe.skipIf(process.env.VM_DRIVER !== "vfio-pci")("fallback: edu under plain vfio-pci", () => {
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

  it("takes type1, and the reasons name the DMA logging probe's ENOTTY", () => {
    const { tracker, choice } = openTracker(target(), { core, memory, ignoreBlockers: true });
    tracker.close();
    expect(choice.strategy).toBe("type1");
    const reason = choice.reasons.find((r) => r.strategy === "device" && r.device === s.bdf);
    expect(reason, JSON.stringify(choice.reasons)).toBeDefined();
    expect(reason?.errno).toBe(Errno.ENOTTY);
    expect(reason?.call).toMatch(/DMA_LOGGING_START/);
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
      reasons.some((r) => r.option === "deviceDirtyPageTracking"),
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
      tracker.setPhase("precopy");
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

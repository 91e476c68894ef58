// Fallback selection on a real kernel: edu under plain vfio-pci has no DMA logging, so the
// tracker must not take the device strategy and must say which call refused it (the errno it
// must carry is checked in fallback-errno.test.ts); with type1's migration capability it takes
// type1 (and warns), and when forced to all-dirty nothing is lost: every page, every sync.
import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import { openTracker } from "@vfio-dirty/tracker";
import type { MappedMemory } from "@vfio-dirty/vfio-adapter";
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

  it("takes type1, with a reason for not taking the device strategy", () => {
    const { tracker, choice } = openTracker(target(), { core, memory, ignoreBlockers: true });
    tracker.close();
    expect(choice.strategy).toBe("type1");
    const reason = choice.reasons.find((r) => r.strategy === "device" && r.device === s.bdf);
    expect(reason, JSON.stringify(choice.reasons)).toBeDefined();
    expect(reason?.call).toMatch(/DMA_LOGGING_START/);
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

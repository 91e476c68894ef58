import { Errno } from "@vfio-dirty/vfio-adapter";
import { describe, expect, it } from "vitest";
import { type ContainerCaps, chooseStrategy, type DeviceCaps, type SelectOptions } from "../src/select.ts";

const LOG_OK = { ok: true } as const;
const LOG_NO = {
  ok: false,
  call: "VFIO_DEVICE_FEATURE(PROBE|SET|DMA_LOGGING_START)",
  errno: Errno.ENOTTY,
} as const;
const MIG = { stopCopy: true, p2p: true, preCopy: true };

const dev = (id: string, extra: Partial<DeviceCaps> = {}): DeviceCaps => ({
  id,
  dmaLogging: LOG_OK,
  migration: MIG,
  ...extra,
});
const type1 = (pgsizeBitmap = 0x1000n): ContainerCaps => ({
  backend: "type1",
  type1Migration: { ok: true, pgsizeBitmap, maxDirtyBitmapSize: 1n << 28n },
});
const type1None: ContainerCaps = {
  backend: "type1",
  type1Migration: { ok: false, call: "VFIO_IOMMU_GET_INFO(cap VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION)" },
};
const iommufd = (alloc = true): ContainerCaps => ({
  backend: "iommufd",
  hwptDirtyAlloc: alloc
    ? { ok: true }
    : { ok: false, call: "IOMMU_HWPT_ALLOC(DIRTY_TRACKING)", errno: Errno.EOPNOTSUPP },
});
const HW_DIRTY = { iommuDirtyCap: { ok: true } as const };

interface Case {
  rule: string;
  container: ContainerCaps;
  devices: DeviceCaps[];
  options?: SelectOptions;
  strategy: string;
  blockers: string[];
  reason?: { device?: string; strategy: string; call?: RegExp; errno?: number; option?: string };
}

const cases: Case[] = [
  {
    rule: "1: device logging when every device supports it",
    container: type1(),
    devices: [dev("a"), dev("b")],
    strategy: "device",
    blockers: [],
  },
  {
    rule: "1: mixed devices: one without logging rules device out",
    container: type1(),
    devices: [dev("a"), dev("b", { dmaLogging: LOG_NO })],
    strategy: "type1",
    blockers: [],
    reason: { device: "b", strategy: "device", call: /DMA_LOGGING_START/, errno: Errno.ENOTTY },
  },
  {
    rule: "1: deviceDirtyPageTracking=false turns device logging off",
    container: iommufd(),
    devices: [dev("a", HW_DIRTY)],
    options: { devices: { a: { deviceDirtyPageTracking: false } } },
    strategy: "iommufd",
    blockers: [],
    reason: { device: "a", strategy: "device", option: "x-device-dirty-page-tracking" },
  },
  {
    rule: "2: iommufd when every IOMMU has the dirty cap and the HWPT alloc succeeds",
    container: iommufd(),
    devices: [dev("gpu", { dmaLogging: LOG_NO, ...HW_DIRTY })],
    strategy: "iommufd",
    blockers: [],
  },
  {
    rule: "2: iommufd refused: HWPT alloc with DIRTY_TRACKING fails",
    container: iommufd(false),
    devices: [dev("gpu", { dmaLogging: LOG_NO, ...HW_DIRTY })],
    options: { enableMigration: "on" },
    strategy: "all-dirty",
    blockers: [],
    reason: { strategy: "iommufd", call: /HWPT_ALLOC/, errno: Errno.EOPNOTSUPP },
  },
  {
    rule: "2: iommufd refused: one IOMMU lacks the cap",
    container: iommufd(),
    devices: [
      dev("a", { dmaLogging: LOG_NO, ...HW_DIRTY }),
      dev("b", { dmaLogging: LOG_NO, iommuDirtyCap: { ok: false, call: "IOMMU_GET_HW_INFO" } }),
    ],
    options: { enableMigration: "on" },
    strategy: "all-dirty",
    blockers: [],
    reason: { device: "b", strategy: "iommufd", call: /GET_HW_INFO/ },
  },
  {
    rule: "3: type1 with a migration capability that includes the page size",
    container: type1(0x1000n | 0x200000n),
    devices: [dev("old", { dmaLogging: LOG_NO })],
    strategy: "type1",
    blockers: [],
  },
  {
    rule: "3: type1 refused: pgsize_bitmap lacks the tracking page size",
    container: type1(0x200000n),
    devices: [dev("old", { dmaLogging: LOG_NO })],
    options: { enableMigration: "on" },
    strategy: "all-dirty",
    blockers: [],
    reason: { strategy: "type1", call: /GET_INFO/ },
  },
  {
    rule: "4: all-dirty is a blocker with enableMigration=auto",
    container: type1None,
    devices: [dev("old", { dmaLogging: LOG_NO })],
    strategy: "all-dirty",
    blockers: ["no-tracking"],
    reason: { strategy: "type1", call: /CAP_MIGRATION/ },
  },
  {
    rule: "4: all-dirty allowed with enableMigration=on",
    container: type1None,
    devices: [dev("old", { dmaLogging: LOG_NO })],
    options: { enableMigration: "on" },
    strategy: "all-dirty",
    blockers: [],
  },
  {
    rule: "blocker: vIOMMU with viommuDeviceTracking=block and no IOMMU tracking",
    container: type1None,
    devices: [dev("a")],
    options: { viommu: true, viommuDeviceTracking: "block", enableMigration: "on" },
    strategy: "all-dirty",
    blockers: ["viommu"],
    reason: { device: "a", strategy: "device", option: "viommuDeviceTracking" },
  },
  {
    rule: "vIOMMU with block falls back to IOMMU tracking without a blocker",
    container: iommufd(),
    devices: [dev("a", HW_DIRTY)],
    options: { viommu: true, viommuDeviceTracking: "block" },
    strategy: "iommufd",
    blockers: [],
  },
  {
    rule: "vIOMMU allowed by default: device logging",
    container: type1None,
    devices: [dev("a")],
    options: { viommu: true },
    strategy: "device",
    blockers: [],
  },
  {
    rule: "blocker: several devices, one without P2P",
    container: type1(),
    devices: [dev("a"), dev("b", { migration: { ...MIG, p2p: false } })],
    strategy: "device",
    blockers: ["p2p"],
  },
  {
    rule: "a single device needs no P2P",
    container: type1(),
    devices: [dev("a", { migration: { ...MIG, p2p: false } })],
    strategy: "device",
    blockers: [],
  },
  {
    rule: "blocker: a device that cannot migrate",
    container: type1(),
    devices: [dev("a", { migration: undefined })],
    strategy: "device",
    blockers: ["no-migration"],
  },
  {
    rule: "blocker: guest memory beyond the IOMMU's IOVA ranges",
    container: { ...type1(), iovaRanges: [{ iova: 0n, length: 1n << 39n }] },
    devices: [dev("a", { dmaLogging: LOG_NO })],
    options: { guestMemory: [{ iova: 1n << 39n, length: 1n << 30n }] },
    strategy: "type1",
    blockers: ["memory-coverage"],
  },
  {
    rule: "device logging span too small for the guest: falls back with the reason",
    container: type1(),
    devices: [dev("a", { maxLoggingSpan: 1n << 42n })],
    options: { guestMemory: [{ iova: 0n, length: 1n << 43n }] },
    strategy: "type1",
    blockers: [],
    reason: { device: "a", strategy: "device" },
  },
];

describe("chooseStrategy", () => {
  it.each(cases)("$rule", (c) => {
    const choice = chooseStrategy({ container: c.container, devices: c.devices }, c.options);
    expect(choice.strategy).toBe(c.strategy);
    expect(choice.blockers.map((b) => b.kind).sort()).toEqual([...c.blockers].sort());
    for (const b of choice.blockers) expect(b.message.length).toBeGreaterThan(10);
    if (c.reason) {
      const want = c.reason;
      const hit = choice.reasons.find(
        (r) =>
          r.strategy === want.strategy &&
          r.device === want.device &&
          (want.call === undefined || (r.call !== undefined && want.call.test(r.call))) &&
          (want.errno === undefined || r.errno === want.errno) &&
          (want.option === undefined || r.option === want.option),
      );
      expect(
        hit,
        JSON.stringify(choice.reasons, (_k, v) => (typeof v === "bigint" ? `${v}` : v)),
      ).toBeDefined();
    }
  });

  it("warns that type1 reports every mapped page dirty", () => {
    const choice = chooseStrategy({ container: type1(), devices: [dev("a", { dmaLogging: LOG_NO })] });
    expect(choice.warnings.join()).toMatch(/every mapped page/);
  });

  it.each([
    ["device, then the IOMMU's iommufd", iommufd(), [dev("a", HW_DIRTY)], ["iommufd", "all-dirty"]],
    ["device, then type1", type1(), [dev("a")], ["type1", "all-dirty"]],
    ["device with no IOMMU tracking", type1None, [dev("a")], ["all-dirty"]],
    ["iommufd without a dirty IOMMU", iommufd(), [dev("a")], ["all-dirty"]],
    ["type1 chosen", type1(), [dev("a", { dmaLogging: LOG_NO })], ["all-dirty"]],
    ["all-dirty chosen", type1None, [dev("a", { dmaLogging: LOG_NO })], []],
  ] as const)("fallbacks for a START refusal: %s", (_rule, container, devices, want) => {
    const choice = chooseStrategy({ container, devices: [...devices] }, { enableMigration: "on" });
    expect(choice.fallbacks).toEqual(want);
    expect(choice.fallbacks).not.toContain(choice.strategy);
  });

  it("leaves out an IOMMU fallback that cannot cover guest memory, with a reason", () => {
    const container = { ...type1(), iovaRanges: [{ iova: 0n, length: 1n << 39n }] };
    const guestMemory = [{ iova: 1n << 40n, length: 1n << 30n }];
    const choice = chooseStrategy({ container, devices: [dev("a")] }, { guestMemory });
    expect(choice.strategy).toBe("device");
    expect(choice.fallbacks).toEqual(["all-dirty"]);
    expect(choice.reasons.some((r) => r.strategy === "type1" && /not a fallback/.test(r.message))).toBe(true);
  });

  it("rejects an empty device set", () => {
    expect(() => chooseStrategy({ container: type1(), devices: [] })).toThrow(/no devices/);
  });
});

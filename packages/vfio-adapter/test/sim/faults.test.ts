// Fault injection: the Nth call, a seeded probability, from a virtual time; the ERROR state; a
// REPORT failing with EIO mid-migration; a log reset that reports success.

import { describe, expect, it } from "vitest";
import { Errno, InvalidInputError, IoctlError } from "../../src/errors.ts";
import { createSimHost, parseProfile } from "../../src/sim/index.ts";
import { BDF, PAGE, profileJson, setBits, sim, type1Device } from "./helpers.ts";

function report(
  h: ReturnType<typeof sim>,
  device: ReturnType<typeof type1Device>["device"],
): number[] | string {
  const bm = new Uint8Array(8);
  try {
    device.dmaLoggingReport({ iova: 0n, length: 64n * PAGE, pageSize: PAGE, bitmap: bm });
  } catch (e) {
    if (e instanceof IoctlError) return `errno ${e.errno}`;
    throw e;
  }
  void h;
  return setBits(bm);
}

function logging() {
  const h = sim();
  const t = type1Device(h);
  t.device.dmaLoggingStart([{ iova: 0n, length: 1n << 20n }], PAGE);
  return { h, ...t };
}

describe("fault injection", () => {
  it("failNext fails the next matching call once, with the errno, and logs it", () => {
    const { h, device } = logging();
    h.dmaWrite(BDF, 2n * PAGE, 1n);
    h.failNext("DMA_LOGGING_REPORT", "EIO");
    expect(report(h, device)).toBe(`errno ${Errno.EIO}`);
    // The failed call did not consume the log: the next report has the page.
    expect(report(h, device)).toEqual([2]);
    expect(h.faultLog()).toEqual([
      { op: "VFIO_DEVICE_FEATURE(GET|DMA_LOGGING_REPORT)", device: BDF, t: 0, effect: "errno", errno: "EIO" },
    ]);
  });

  it("nth fires on exactly the Nth matching call; other ops do not count", () => {
    const { h, device, container } = logging();
    h.injectFault({ op: "DMA_LOGGING_REPORT", errno: "EIO", nth: 3 });
    container.getInfo();
    const results = [0, 1, 2, 3].map(() => report(h, device));
    expect(results).toEqual([[], [], `errno ${Errno.EIO}`, []]);
  });

  it("a seeded probability gives the same failures for the same seed", () => {
    const run = () => {
      const { h, device } = logging();
      h.injectFault({ op: "*", errno: "EIO", probability: 0.3 });
      return Array.from({ length: 40 }, () => typeof report(h, device) === "string");
    };
    const a = run();
    expect(run()).toEqual(a);
    expect(a.filter(Boolean).length).toBeGreaterThan(4);
    expect(a.filter(Boolean).length).toBeLessThan(25);
  });

  it("fromMs fires only once virtual time has reached it", () => {
    const { h, device } = logging();
    h.injectFault({ op: "DMA_LOGGING_REPORT", errno: "EIO", fromMs: 5 });
    expect(report(h, device)).toEqual([]);
    h.clock.advanceMs(5);
    expect(report(h, device)).toBe(`errno ${Errno.EIO}`);
    expect(report(h, device)).toBe(`errno ${Errno.EIO}`); // no count limit from a time on
  });

  it("error-state puts the device in ERROR and breaks its log until logging restarts", () => {
    const { h, device } = logging();
    h.injectFault({ op: "DMA_LOGGING_REPORT", effect: "error-state", errno: "EIO", nth: 1 });
    expect(report(h, device)).toBe(`errno ${Errno.EIO}`);
    expect(h.devices()[0]!.migrationState).toBe(0);
    expect(report(h, device)).toBe(`errno ${Errno.EIO}`);
    device.dmaLoggingStop();
    device.dmaLoggingStart([{ iova: 0n, length: 1n << 20n }], PAGE);
    h.dmaWrite(BDF, 5n * PAGE, 1n);
    expect(report(h, device)).toEqual([5]);
  });

  it("log-reset: the report succeeds but the pages logged before are gone (a device reset)", () => {
    const { h, device } = logging();
    h.dmaWrite(BDF, 7n * PAGE, 1n);
    h.injectFault({ op: "DMA_LOGGING_REPORT", effect: "log-reset", nth: 1 });
    expect(report(h, device)).toEqual([]);
    // The ground truth still knows: this is exactly what the never-lose checks must catch.
    expect(h.writtenSince(0)).toEqual([7]);
  });

  it("error-state without an errno: the call itself observes the broken device", () => {
    const { h, device } = logging();
    h.injectFault({ op: "*", effect: "error-state", device: BDF, fromMs: 2, times: 1 });
    expect(device.getMigState()).toBe(2); // before 2 ms: RUNNING
    h.clock.advanceMs(2);
    expect(device.getMigState()).toBe(0); // the first call from 2 ms on sees ERROR
    expect(report(h, device)).toBe(`errno ${Errno.EIO}`);
  });

  it("a REPORT can fail with EIO in the middle of a migration (PRE_COPY)", () => {
    const { h, device } = logging();
    device.setMigState(6); // PRE_COPY
    h.injectFault({ op: "DMA_LOGGING_REPORT", errno: "EIO", device: BDF, nth: 2 });
    expect(report(h, device)).toEqual([]);
    expect(report(h, device)).toBe(`errno ${Errno.EIO}`);
  });

  it("faults in a profile are armed at start; bad specs are rejected naming the field", () => {
    const h = createSimHost(
      parseProfile(profileJson({ faults: [{ op: "VFIO_IOMMU_MAP_DMA", errno: "ENOMEM", nth: 1 }] })),
    );
    expect(() => type1Device(h)).toThrow(/VFIO_IOMMU_MAP_DMA.*ENOMEM/);
    expect(() => parseProfile(profileJson({ faults: [{ op: "x", effect: "errno" }] }))).toThrow(
      /\/faults\/0\/errno is required/,
    );
    expect(() => sim().injectFault({ op: "x", errno: "EWHAT" })).toThrow(InvalidInputError);
  });
});

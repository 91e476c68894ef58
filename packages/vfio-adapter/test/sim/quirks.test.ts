// Driver quirks: the simulated DMA log as a broken driver (LOG_QUIRKS), each bug on its own,
// through the device fd as a caller sees it; and a device another process holds (heldBy).
// `vfio-dirty check` must fail exactly the rules each bug breaks (packages/cli/test/check/).

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Errno, IoctlError } from "../../src/errors.ts";
import { createSimHost, LOG_QUIRKS, type LogQuirk, parseProfile } from "../../src/sim/index.ts";
import { DeviceCdev, Group, IommuFd } from "../../src/vfio/index.ts";
import { BDF, PAGE, profileJson, setBits, type1Device } from "./helpers.ts";

// Above the profile's first GiB of guest RAM, which type1Device maps at IOVA = GPA.
const BASE = 0x8000_0000n;
const SPAN = 64n * PAGE;

/** A device of a one-device profile with `quirks`, logging [BASE, BASE + SPAN) at `pageSize`. */
function logging(quirks: LogQuirk[], pageSize = PAGE) {
  const sim = createSimHost(parseProfile(profileJson({}, { dmaLogging: { quirks } })));
  const { container, device } = type1Device(sim);
  const mem = sim.mmapAnonymous(SPAN);
  container.mapDma({ vaddr: mem.address, iova: BASE, length: SPAN });
  const granted = device.dmaLoggingStart([{ iova: BASE, length: SPAN }], pageSize);
  const write = (...pages: number[]) => {
    for (const p of pages) sim.dmaWrite(BDF, BASE + BigInt(p) * PAGE + 0x40n, 64n);
  };
  /** REPORT [BASE + first pages, + n pages) at 4 KiB into a bitmap filled with `fill`. */
  const report = (first: number, n: number, fill = 0) => {
    const bitmap = new Uint8Array(Math.ceil(n / 64) * 8).fill(fill);
    device.dmaLoggingReport({
      iova: BASE + BigInt(first) * PAGE,
      length: BigInt(n) * PAGE,
      pageSize: PAGE,
      bitmap,
    });
    return setBits(bitmap);
  };
  return { sim, device, granted, write, report };
}

describe("driver quirks of the simulated DMA log", () => {
  it("the profile schema offers exactly LOG_QUIRKS", () => {
    const schema = JSON.parse(
      readFileSync(new URL("../../sim/profile.schema.json", import.meta.url), "utf8"),
    );
    expect(schema.definitions.device.properties.dmaLogging.properties.quirks.items.enum).toEqual([
      ...LOG_QUIRKS,
    ]);
  });

  it("without quirks: a REPORT clears what it reported and stays inside its range", () => {
    const d = logging([]);
    d.write(2, 5);
    expect(d.report(0, 5)).toEqual([2]);
    expect(d.report(0, 64)).toEqual([5]);
    expect(d.report(0, 64)).toEqual([]);
  });

  it("no-clear: a second REPORT reports the same pages again", () => {
    const d = logging(["no-clear"]);
    d.write(2);
    expect(d.report(0, 64)).toEqual([2]);
    expect(d.report(0, 64)).toEqual([2]);
  });

  it("drop-last-page: the range's last page is neither reported nor cleared", () => {
    const d = logging(["drop-last-page"]);
    d.write(0, 63);
    expect(d.report(0, 64)).toEqual([0]);
    // The same REPORT never sees page 63; one a page longer does, so it was kept.
    expect(d.report(0, 64)).toEqual([]);
    expect(d.report(0, 65)).toEqual([63]);
  });

  it("ignore-page-size: writes back the size asked for, clears whole 64 KiB pages", () => {
    const d = logging(["ignore-page-size"]);
    expect(d.granted).toBe(PAGE);
    d.write(0, 1);
    // A 4 KiB REPORT of page 0 takes the whole 64 KiB logging page (its 16 bits land past the
    // range, in the REPORT's word, where a caller reading its one bit never looks): page 1 is lost.
    expect(d.report(0, 1)).toEqual([...Array(16).keys()]);
    expect(d.report(0, 64)).toEqual([]);
  });

  it("zero-bitmap: the caller's bits are gone after a REPORT", () => {
    const d = logging(["zero-bitmap"]);
    d.write(3);
    expect(d.report(0, 64, 0xff)).toEqual([3]);
    expect(logging([]).report(0, 64, 0x01).length).toBe(8);
  });

  it("outside-range: the page past the range is reported into the caller's word and cleared", () => {
    const d = logging(["outside-range"]);
    d.write(3);
    expect(d.report(0, 3)).toEqual([3]);
    expect(d.report(0, 64)).toEqual([]);
  });

  it("drop-ranges: START accepts many ranges and logs only the first 4", () => {
    const sim = createSimHost(parseProfile(profileJson({}, { dmaLogging: { quirks: ["drop-ranges"] } })));
    const { container, device } = type1Device(sim);
    const mem = sim.mmapAnonymous(SPAN);
    container.mapDma({ vaddr: mem.address, iova: BASE, length: SPAN });
    const ranges = Array.from({ length: 8 }, (_, i) => ({
      iova: BASE + BigInt(i) * 8n * PAGE,
      length: PAGE,
    }));
    device.dmaLoggingStart(ranges, PAGE);
    for (const r of ranges) sim.dmaWrite(BDF, r.iova, 64n);
    const bitmap = new Uint8Array(8);
    device.dmaLoggingReport({ iova: BASE, length: SPAN, pageSize: PAGE, bitmap });
    expect(setBits(bitmap)).toEqual([0, 8, 16, 24]);
    expect(sim.devices()[0]!.dmaLogging.ranges.length).toBe(4);
  });

  it("stop-noop: STOP answers 0 and logging goes on; closing the device still stops it", () => {
    const d = logging(["stop-noop"]);
    d.device.dmaLoggingStop();
    d.write(4);
    expect(d.report(0, 64)).toEqual([4]);
    d.device.close();
    expect(d.sim.trackingActive()).toBe(false);
  });

  it("second-start: a START while logging succeeds and forgets what was logged", () => {
    const d = logging(["second-start"]);
    d.write(4);
    expect(d.device.dmaLoggingStart([{ iova: BASE, length: SPAN }], PAGE)).toBe(PAGE);
    expect(d.report(0, 64)).toEqual([]);
    const strict = logging([]);
    expect(() => strict.device.dmaLoggingStart([{ iova: BASE, length: SPAN }], PAGE)).toThrow(
      expect.objectContaining({ errno: Errno.EBUSY }),
    );
  });

  it("a profile naming an unknown quirk is refused, naming the field", () => {
    expect(() =>
      parseProfile(profileJson({}, { dmaLogging: { quirks: ["lose-everything" as LogQuirk] } })),
    ).toThrow(/\/devices\/0\/dmaLogging\/quirks\/0 must be one of/);
  });
});

describe("a device another process holds (heldBy)", () => {
  const held = () =>
    createSimHost(
      parseProfile(
        profileJson(
          { iommu: { vendor: "intel", cdev: true } },
          { heldBy: { pid: 4242, command: "qemu-system-x86" } },
        ),
      ),
    );

  it("holders() names the process for its group and its cdev, and nothing else", () => {
    const sim = held();
    const who = [{ pid: 4242, command: "qemu-system-x86" }];
    expect(sim.holders("/dev/vfio/12")).toEqual(who);
    expect(sim.holders(sim.devices()[0]!.cdevPath!)).toEqual(who);
    expect(sim.holders("/dev/vfio/13")).toEqual([]);
    expect(createSimHost("mlx5-vf").holders("/dev/vfio/12")).toEqual([]);
  });

  it("its group does not open and its cdev does not bind: EBUSY", () => {
    const sim = held();
    expect(() => Group.open(sim, 12)).toThrow(expect.objectContaining({ errno: Errno.EBUSY }));
    const iommufd = IommuFd.open(sim);
    const cdev = DeviceCdev.open(sim, sim.devices()[0]!.cdevPath!, BDF);
    let err: unknown;
    try {
      cdev.bindIommufd(iommufd);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IoctlError);
    expect((err as IoctlError).errno).toBe(Errno.EBUSY);
  });
});

import { describe, expect, it } from "vitest";
import { GuestDirtyRateError, parseGuestDirtyRate } from "../src/parse/guest-dirty-rate.ts";

const MiB = 2 ** 20;

describe("parseGuestDirtyRate: QEMU's query-dirty-rate reply", () => {
  it("reads the QMP reply (QEMU 7.2: calc-time in seconds, no unit)", () => {
    const g = parseGuestDirtyRate(
      '{"return": {"status": "measured", "sample-pages": 512, "dirty-rate": 108, "mode": "page-sampling", "start-time": 1693900000, "calc-time": 1}}',
    );
    expect(g).toEqual({
      bytesPerSecond: 108 * MiB,
      mebibytesPerSecond: 108,
      format: "query-dirty-rate",
      mode: "page-sampling",
      calcTimeMs: 1000,
    });
  });

  it("honours calc-time-unit (QEMU 8.2+) and takes the reply out of a saved QMP session", () => {
    const session = [
      '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 8}}, "capabilities": ["oob"]}}',
      '{"return": {}}',
      '{"return": {}}',
      '{"return": {"status": "measured", "dirty-rate": 3, "mode": "dirty-bitmap", "calc-time": 500, "calc-time-unit": "millisecond", "sample-pages": 0, "start-time": 5}}',
    ].join("\n");
    expect(parseGuestDirtyRate(session)).toMatchObject({
      bytesPerSecond: 3 * MiB,
      calcTimeMs: 500,
      mode: "dirty-bitmap",
    });
  });

  it("accepts the bare DirtyRateInfo (virsh qemu-monitor-command --pretty prints the return value)", () => {
    expect(
      parseGuestDirtyRate('{"status": "measured", "dirty-rate": 0, "calc-time": 2}').bytesPerSecond,
    ).toBe(0);
  });

  it.each([
    [
      '{"return": {"status": "measuring", "calc-time": 1, "sample-pages": 512}}',
      /'measuring', not 'measured'/,
    ],
    ['{"return": {"status": "unstarted", "calc-time": 0}}', /'unstarted'/],
    [
      '{"error": {"class": "GenericError", "desc": "Dirty rate measurement is already in progress"}}',
      /already in progress/,
    ],
    ['{"return": {"status": "measured", "dirty-rate": -1, "calc-time": 1}}', /not a measured rate/],
    ['{"return": {}}', /no query-dirty-rate reply/],
    ["{not json", /not JSON/],
    ["hello", /neither a QMP/],
  ])("refuses %s", (text, why) => {
    expect(() => parseGuestDirtyRate(text)).toThrow(GuestDirtyRateError);
    expect(() => parseGuestDirtyRate(text)).toThrow(why);
  });
});

describe("parseGuestDirtyRate: HMP and libvirt", () => {
  it("reads HMP 'info dirty_rate'", () => {
    const hmp = [
      "Status: measured",
      "Start Time: 1693900000 (ms)",
      "Sample Pages: 512 (per GB)",
      "Period: 1 (sec)",
      "Mode: page-sampling",
      "Dirty rate: 108 (MB/s)",
    ].join("\n");
    expect(parseGuestDirtyRate(hmp)).toEqual({
      bytesPerSecond: 108 * MiB,
      mebibytesPerSecond: 108,
      format: "info dirty_rate",
      mode: "page-sampling",
      calcTimeMs: 1000,
    });
    expect(() => parseGuestDirtyRate("Status: measuring\nDirty rate: (not ready)")).toThrow(/measuring/);
  });

  it("reads 'virsh domstats --dirtyrate' after 'virsh domdirtyrate-calc'", () => {
    const stats = [
      "Domain: 'vm1'",
      "  dirtyrate.calc_status=2",
      "  dirtyrate.calc_start_time=348414",
      "  dirtyrate.calc_period=1",
      "  dirtyrate.megabytes_per_second=108",
      "  dirtyrate.calc_mode=page-sampling",
      "",
    ].join("\n");
    expect(parseGuestDirtyRate(stats)).toEqual({
      bytesPerSecond: 108 * MiB,
      mebibytesPerSecond: 108,
      format: "domstats",
      mode: "page-sampling",
      calcTimeMs: 1000,
    });
    expect(() => parseGuestDirtyRate(stats.replace("calc_status=2", "calc_status=1"))).toThrow(
      /calc_status is 1/,
    );
    expect(() => parseGuestDirtyRate(`${stats}Domain: 'vm2'\n  dirtyrate.calc_status=2\n`)).toThrow(
      /2 domains/,
    );
  });
});

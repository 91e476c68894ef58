import { describe, expect, it } from "vitest";
import { expose, negotiate } from "../src/metrics/exposition.ts";
import { TrackMetrics } from "../src/metrics/track.ts";
import { parseListenAddress } from "../src/parse/listen.ts";

describe("exposition", () => {
  const families = [
    { name: "x_syncs", type: "counter" as const, help: 'Syncs "done"\\ok', samples: [{ value: 3 }] },
    {
      name: "x_rate_bytes_per_second",
      type: "gauge" as const,
      help: "Rate.",
      samples: [{ labels: { unit: 'a"b\\c\nd' }, value: Number.NaN }],
    },
    { name: "x_empty", type: "gauge" as const, help: "Never sampled.", samples: [] },
  ];

  it("names a counter's family by format, escapes labels and help, leaves out empty families", () => {
    expect(expose(families, "prometheus")).toBe(
      [
        '# HELP x_syncs_total Syncs "done"\\\\ok',
        "# TYPE x_syncs_total counter",
        "x_syncs_total 3",
        "# HELP x_rate_bytes_per_second Rate.",
        "# TYPE x_rate_bytes_per_second gauge",
        'x_rate_bytes_per_second{unit="a\\"b\\\\c\\nd"} NaN',
        "",
      ].join("\n"),
    );
    expect(expose(families, "openmetrics")).toBe(
      [
        '# HELP x_syncs Syncs \\"done\\"\\\\ok',
        "# TYPE x_syncs counter",
        "x_syncs_total 3",
        "# HELP x_rate_bytes_per_second Rate.",
        "# TYPE x_rate_bytes_per_second gauge",
        'x_rate_bytes_per_second{unit="a\\"b\\\\c\\nd"} NaN',
        "# EOF",
        "",
      ].join("\n"),
    );
    expect(() => expose([{ ...families[0]!, name: "x_total" }], "prometheus")).toThrow(
      /not a valid family name/,
    );
  });

  it("serves OpenMetrics only to scrapers that ask for it", () => {
    expect(negotiate("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")).toBe(
      "openmetrics",
    );
    expect(negotiate("text/plain")).toBe("prometheus");
    expect(negotiate(undefined)).toBe("prometheus");
  });
});

describe("TrackMetrics", () => {
  it("keeps the last sync per unit, sums counters, and maps an IOMMU unit to every device", () => {
    const m = new TrackMetrics({
      host: "sim",
      simulated: true,
      devices: ["0000:00:01.0", "0000:00:02.0"],
      strategy: "iommufd",
      pageSize: 4096,
    });
    const sample = (sync: number, dirtyPages: number) => ({
      sync,
      tMs: sync * 500,
      intervalMs: 500,
      phase: "pre-copy",
      dirtyPages,
      dirtyBytes: dirtyPages * 4096,
      dirtyRate: dirtyPages * 8192,
      syncMs: 2,
      bytesRead: 64,
    });
    m.onSync(sample(1, 10), "iommufd", { iommu: { strategy: "iommufd", pages: 10 } });
    m.onSync(sample(2, 4), "iommufd", { iommu: { strategy: "iommufd", pages: 4 } });
    m.onEvent("restarted");
    const text = m.text("prometheus");
    expect(text).toContain('vfio_dirty_unit_dirty_rate_bytes_per_second{unit="iommu"} 32768\n');
    expect(text).toContain('vfio_dirty_unit_dirty_pages_total{unit="iommu"} 14\n');
    expect(text).toContain("vfio_dirty_syncs_total 2\n");
    expect(text).toContain('vfio_dirty_unit_device_info{unit="iommu",device="0000:00:02.0"} 1\n');
    expect(text).toContain('vfio_dirty_strategy{strategy="iommufd"} 1\n');
    expect(text).toContain('vfio_dirty_events_total{kind="restarted"} 1\n');
    expect(text).toContain("vfio_dirty_sync_duration_seconds_total 0.004\n");
  });
});

describe("parseListenAddress", () => {
  it.each([
    ["127.0.0.1:9464", { host: "127.0.0.1", port: 9464 }],
    ["[::1]:0", { host: "::1", port: 0 }],
    [":9464", { host: undefined, port: 9464 }],
    ["localhost:80", { host: "localhost", port: 80 }],
  ])("%s", (text, want) => expect(parseListenAddress(text, "--metrics-listen")).toEqual(want));

  it.each([
    "9464",
    "127.0.0.1",
    "host.example:80",
    "1.2.3.4:65536",
    "[zz]:1",
    "999.1.1.1:1",
    "127.0.0.1:80/x",
  ])("refuses %s", (text) =>
    expect(() => parseListenAddress(text, "--metrics-listen")).toThrow(/--metrics-listen .*not HOST:PORT/),
  );
});

import { describe, expect, it } from "vitest";
import type { TrackReport } from "../src/report.ts";
import { percentile, summarizeRates } from "../src/report.ts";
import { esc, heatColor } from "../src/svg/document.ts";
import { densitySvg, trackSvg } from "../src/svg/pictures.ts";
import { checkPageSize } from "../src/track/loop.ts";

function report(over: Partial<TrackReport> = {}): TrackReport {
  return {
    schema: "vfio-dirty/track-report@1",
    command: "track",
    host: "sim:<x>&y",
    simulated: true,
    devices: ["0000:3b:00.1"],
    strategy: "device",
    strategyAtEnd: "device",
    reasons: [],
    pageSize: 4096,
    ramBytes: 1 << 30,
    startedAt: "2026-01-01T00:00:00.000Z",
    durationMs: 2000,
    interrupted: false,
    phaseSwitchMs: 1000,
    workload: "profile",
    seed: 1,
    syncs: 2,
    samples: [
      {
        sync: 1,
        tMs: 1000,
        intervalMs: 1000,
        phase: "pre-copy",
        dirtyPages: 10,
        dirtyBytes: 40960,
        dirtyRate: 40960,
        syncMs: 1,
        bytesRead: 8,
      },
      {
        sync: 2,
        tMs: 2000,
        intervalMs: 1000,
        phase: "stop-copy",
        dirtyPages: 4,
        dirtyBytes: 16384,
        dirtyRate: 16384,
        syncMs: 1,
        bytesRead: 8,
      },
    ],
    dirtyRate: { mean: 28672, p50: 16384, p99: 40960, max: 40960 },
    bytesReadFromKernel: 16,
    syncCost: { meanMs: 1, maxMs: 1 },
    events: [],
    groundTruth: null,
    trackingStopped: true,
    heatmap: {
      base: "0x0",
      bucketBytes: 1 << 20,
      columns: 3,
      rows: [
        [10, 0, 0],
        [0, 0, 4],
      ],
    },
    ...over,
  };
}

describe("track picture", () => {
  it("is one self-contained SVG with the rate chart, the phase switch and one cell per sync and bucket", () => {
    const svg = trackSvg(report());
    expect(
      svg.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"'),
    ).toBe(true);
    expect(svg).not.toMatch(/(href|src)=|<script|url\(/);
    expect(svg).toContain('class="rate-chart" data-points="2"');
    expect(svg).toContain("stop-copy");
    expect(svg).toContain('class="heatmap" data-rows="3" data-columns="2"');
    expect(svg).toContain("<title>sync 2, 0x200000..: 4 dirty pages</title>");
    // Text from outside (the host name) is escaped.
    expect(svg).toContain("sim:&lt;x&gt;&amp;y");
  });
});

describe("density picture", () => {
  it("labels each cell with its address and count", () => {
    const svg = densitySvg({
      file: "a.bin",
      base: 0x1000n,
      pageSize: 4096n,
      counts: [1, 0, 2],
      pagesPerBucket: 2,
      columns: 2,
    });
    expect(svg).toContain("<title>0x1000: 1/2 dirty</title>");
    expect(svg).toContain("<title>0x5000: 2/2 dirty</title>");
    // The short last row is padded with empty cells.
    expect(svg.match(/<rect x=[^>]*fill="#[0-9a-f]{6}"><title>/g)).toHaveLength(4);
  });

  it("colours zero differently from any dirt", () => {
    expect(heatColor(0)).not.toBe(heatColor(0.001));
    expect(heatColor(1)).toBe(heatColor(2));
    expect(esc(`<"&>`)).toBe("&lt;&quot;&amp;&gt;");
  });
});

describe("report helpers", () => {
  it("percentile by nearest rank", () => {
    expect(percentile([], 50)).toBe(0);
    expect(percentile([5, 1, 3], 50)).toBe(3);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99)).toBe(10);
    expect(summarizeRates(report().samples)).toEqual({ mean: 28672, p50: 16384, p99: 40960, max: 40960 });
  });

  it("keeps the ground-truth union bounded", () => {
    expect(checkPageSize(8n << 30n, 4096n)).toBe(4096n);
    expect(checkPageSize(8n << 30n, 512n)).toBe(4096n);
    expect(checkPageSize(8n << 30n, 2n << 20n)).toBe(2n << 20n);
    // 16 TiB: 2^44 / 2^28 = 64 KiB granularity at most 2^28 bits.
    expect(checkPageSize(16n << 40n, 4096n)).toBe(1n << 16n);
  });
});

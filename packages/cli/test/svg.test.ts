import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { TrackReport } from "../src/report.ts";
import { percentile, summarizeRates } from "../src/report.ts";
import { fractionColor } from "../src/svg/colors.ts";
import { esc } from "../src/svg/document.ts";
import { densitySvg, trackSvg } from "../src/svg/pictures.ts";
import { addressAxis, rateAxis, timeAxis } from "../src/svg/scales.ts";
import { DirtGrid } from "../src/track/dirt-grid.ts";
import { checkPageSize } from "../src/track/loop.ts";

const GIB = 2 ** 30;
const MIB = 2 ** 20;
const core = loadBitmapCoreSync();

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
    memory: [{ gpa: "0x0", length: 3 << 20, kind: "ram" }],
    startedAt: "2026-01-01T00:00:00.000Z",
    durationMs: 2000,
    wallMs: 2100,
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
    syncCost: { meanMs: 1, maxMs: 1, simulated: true, slowSyncs: 0 },
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
  it("is one self-contained SVG with the rate chart, the heat map on the same time axis and the phase switch", () => {
    const svg = trackSvg(report());
    expect(
      svg.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"'),
    ).toBe(true);
    // Nothing fetched: the only url() is the document's own hatch pattern.
    expect(svg).not.toMatch(/(href|src)=|<script|url\((?!#no-ram\))/);
    expect(svg).toContain('class="rate-chart" data-points="2"');
    expect(svg).toContain('class="heatmap" data-rows="3" data-columns="2"');
    // Text from outside (the host name) is escaped.
    expect(svg).toContain("sim:&lt;x&gt;&amp;y");
  });

  it("puts the stop-copy marker at the same x in the rate chart and the heat map, and labels time, not sync numbers", () => {
    const svg = trackSvg(report());
    const markers = [...svg.matchAll(/<line x1="([\d.]+)" x2="\1" [^>]*stroke-dasharray="5 3"/g)].map(
      (m) => m[1],
    );
    expect(markers).toHaveLength(2);
    expect(markers[0]).toBe(markers[1]);
    expect(svg).not.toMatch(/>#\d+</);
    expect(groupOf(svg, "heatmap")).toMatch(/>1(\.0)? s</);
  });

  it("labels the memory regions as bands and hatches the hole", () => {
    const svg = trackSvg(
      report({
        ramBytes: 6 * GIB,
        memory: [
          { gpa: "0x0", length: 2 * GIB, kind: "ram" },
          { gpa: "0x100000000", length: 4 * GIB, kind: "ram" },
        ],
        heatmap: {
          base: "0x0",
          bucketBytes: GIB / 8,
          columns: 64,
          rows: [new Array(64).fill(0), new Array(64).fill(0)],
        },
      }),
    );
    const map = groupOf(svg, "heatmap");
    for (const label of ["RAM below 4 GiB", "PCI hole", "RAM above 4 GiB"])
      expect(map).toContain(`>${label}<`);
    expect(map).toContain('fill="url(#no-ram)"');
    // Round ticks in GiB beside hex.
    expect(map).toContain(">2 GiB  0x80000000<");
    expect(map).toContain(">4 GiB  0x100000000<");
  });

  it("colours a bucket by the fraction of it that is dirty, the same in any run", () => {
    // 1 MiB buckets of 256 pages: 10 dirty pages is 3.9 % whatever the run's maximum is.
    const alone = trackSvg(report());
    const beside = trackSvg(
      report({
        heatmap: {
          ...report().heatmap,
          rows: [
            [10, 256, 0],
            [0, 0, 4],
          ],
        },
      }),
    );
    const colourOf = (svg: string, t: string) =>
      new RegExp(`fill="(#[0-9a-f]{6})"><title>${t}`).exec(svg)?.[1];
    expect(colourOf(alone, "0x0..: up to 3.9% dirty")).toBeDefined();
    expect(colourOf(beside, "0x0..: up to 3.9% dirty")).toBe(colourOf(alone, "0x0..: up to 3.9% dirty"));
    expect(colourOf(beside, "0x100000..: up to 100% dirty")).not.toBe(
      colourOf(alone, "0x0..: up to 3.9% dirty"),
    );
    expect(fractionColor(0.039)).not.toBe(fractionColor(1));
    expect(fractionColor(0)).not.toBe(fractionColor(1e-9));
  });

  it("says how far the reports exceed the writes where the ground truth is known", () => {
    const truth = { checkPageSize: 4096, pagesWritten: 100, pagesReported: 12_800, pagesLost: 0, ok: true };
    expect(trackSvg(report({ groundTruth: { ...truth, overReportRatio: 128 } }))).toMatch(
      /over-report 128x \(128 pages reported per page written\)/,
    );
    expect(trackSvg(report({ groundTruth: { ...truth, pagesReported: 100, overReportRatio: 1 } }))).toMatch(
      /over-report 1\.00x \(exact\)/,
    );
    expect(trackSvg(report())).toMatch(/no ground truth on this host/);
  });

  it("zooms on the hot range when it is a small part of the guest, and not when the dirt is spread", () => {
    const grid = new DirtGrid(16n * BigInt(GIB), 4096n);
    const hot = grid.newRow();
    for (let b = 1024; b < 1027; b++) hot[b] = 200; // 12 MiB at 4 GiB
    hot[3000] = 1; // a stray page elsewhere
    grid.push(hot, 0, 1000);
    const svg = trackSvg(
      report({ ramBytes: 16 * GIB, memory: [{ gpa: "0x0", length: 16 * GIB, kind: "ram" }] }),
      grid.snapshot(),
    );
    expect(svg).toMatch(
      /Zoom on the hot range: 0xffc00000\.\.0x101000000 \(20 MiB of 16 GiB RAM\) holds 100% of the dirty pages/,
    );
    expect(svg).toContain('class="heatmap-zoom"');
    const spread = new DirtGrid(16n * BigInt(GIB), 4096n);
    spread.push(spread.newRow().fill(5), 0, 1000);
    expect(trackSvg(report(), spread.snapshot())).not.toContain("heatmap-zoom");
  });

  it("gives round, distinct ticks, even for an all-zero run", () => {
    expect(rateAxis(12.4 * MIB).ticks.map((t) => t.label)).toEqual([
      "0 MiB/s",
      "2 MiB/s",
      "4 MiB/s",
      "6 MiB/s",
      "8 MiB/s",
      "10 MiB/s",
      "12 MiB/s",
      "14 MiB/s",
    ]);
    const zero = rateAxis(0).ticks.map((t) => t.label);
    expect(new Set(zero).size).toBe(zero.length);
    expect(zero.length).toBeGreaterThan(2);
    expect(addressAxis(0, 18 * GIB).map((t) => t.label)).toEqual([
      "0 GiB  0x0",
      "4 GiB  0x100000000",
      "8 GiB  0x200000000",
      "12 GiB  0x300000000",
      "16 GiB  0x400000000",
    ]);
    expect(
      timeAxis(86_400)
        .ticks.map((t) => t.label)
        .slice(0, 3),
    ).toEqual(["0 h", "2 h", "4 h"]);
    expect(
      timeAxis(20)
        .ticks.map((t) => t.label)
        .slice(0, 3),
    ).toEqual(["0 s", "2 s", "4 s"]);
  });

  it("stays small for a day of syncs (columns and points aggregated to a bounded count)", () => {
    const n = 8640; // a day at 10 s
    const samples = Array.from({ length: n }, (_, i) => ({
      sync: i + 1,
      tMs: (i + 1) * 10_000,
      intervalMs: 10_000,
      phase: i < n - 10 ? "pre-copy" : "stop-copy",
      dirtyPages: (i * 7919) % 1000,
      dirtyBytes: ((i * 7919) % 1000) * 4096,
      dirtyRate: ((i * 7919) % 1000) * 409.6,
      syncMs: 1,
      bytesRead: 8,
    }));
    const grid = new DirtGrid(16n * BigInt(GIB), 4096n);
    for (let i = 0; i < n; i++) {
      const row = grid.newRow();
      for (let b = 0; b < 4096; b += 1 + (i % 13)) row[b] = (b * i) % 300;
      grid.push(row, i * 10_000, (i + 1) * 10_000);
    }
    expect(grid.snapshot().columns.length).toBeLessThan(200);
    const r = report({
      samples,
      syncs: n,
      phaseSwitchMs: (n - 10) * 10_000,
      ramBytes: 16 * GIB,
      memory: [{ gpa: "0x0", length: 16 * GIB, kind: "ram" }],
    });
    const svg = trackSvg(r, grid.snapshot());
    expect(svg.length).toBeLessThan(1_500_000);
    expect(svg).toContain(`class="rate-chart" data-points="${n}"`);
    // And from the report alone (one row per sync), as a report file is drawn.
    const fromReport = trackSvg({
      ...r,
      heatmap: {
        base: "0x0",
        bucketBytes: GIB / 4,
        columns: 64,
        rows: samples.map((_, i) => new Array(64).fill(i % 50)),
      },
    });
    expect(fromReport.length).toBeLessThan(1_500_000);
  });
});

describe("DirtGrid", () => {
  it("counts each window's dirty pages into the right buckets, whatever the window's placement", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5000 }), // guest pages
        fc.integer({ min: 1, max: 64 }), // buckets wanted
        fc.array(
          fc.tuple(
            fc.integer({ min: 0, max: 4999 }),
            fc.integer({ min: 1, max: 600 }),
            fc.integer({ min: 0, max: 2 ** 31 }),
          ),
          { maxLength: 4 },
        ),
        (pages, buckets, windows) => {
          const grid = new DirtGrid(BigInt(pages) * 4096n, 4096n, { buckets });
          const per = Math.ceil(pages / buckets);
          const want = new Array<number>(grid.buckets).fill(0);
          const row = grid.newRow();
          for (const [start, len, seed] of windows) {
            const nbits = Math.ceil(Math.min(len, pages - Math.min(start, pages - 1)) / 64) * 64;
            const w = core.bitmap({ nbits, pageSize: 4096n, base: BigInt(start) * 4096n });
            for (let i = 0; i < nbits; i++)
              if (((seed >>> (i % 31)) ^ i) % 3 === 0) {
                w.set(i, 1);
                const b = Math.floor((start + i) / per);
                if (b < want.length) want[b]!++;
              }
            grid.addWindow(row, w, core as never);
            w.free();
          }
          expect([...row]).toEqual(want);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("keeps at most twice the wanted columns, each the most dirty of its syncs, covering the whole run", () => {
    const grid = new DirtGrid(64n * 4096n, 4096n, { buckets: 4, maxColumns: 3 });
    for (let i = 0; i < 13; i++) {
      const row = grid.newRow();
      row[i % 4] = i + 1;
      grid.push(row, i * 10, (i + 1) * 10);
    }
    const cols = grid.snapshot().columns;
    expect(cols.length).toBeLessThan(6);
    expect(cols[0]!.t0Ms).toBe(0);
    expect(cols.at(-1)!.t1Ms).toBe(130);
    expect(cols.reduce((a, c) => a + c.syncs, 0)).toBe(13);
    for (let i = 1; i < cols.length; i++) expect(cols[i]!.t0Ms).toBe(cols[i - 1]!.t1Ms);
    // Sync 12 (value 12, bucket 3) sits in the column that covers [110, 120].
    const c = cols.find((k) => k.t0Ms <= 110 && k.t1Ms >= 120)!;
    expect(c.counts[3]).toBeGreaterThanOrEqual(12);
  });
});

/** The elements of the `<g class="NAME"` group. */
function groupOf(svg: string, name: string): string {
  const start = svg.indexOf(`<g class="${name}"`);
  return svg.slice(start, svg.indexOf("</g>", start));
}

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
    expect(fractionColor(0)).not.toBe(fractionColor(0.001));
    expect(fractionColor(1)).toBe(fractionColor(2));
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

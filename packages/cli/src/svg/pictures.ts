// The two report pictures vfio-dirty draws:
// - trackSvg: dirty rate over time, and a heat map of guest-physical address against time;
// - densitySvg: dirty density across a bitmap's address range (bitmap render).

import { formatBytes, formatRate, hex } from "../format/units.ts";
import type { TrackReport } from "../report.ts";
import { svgDocument, text } from "./document.ts";
import { heatmap } from "./heatmap.ts";
import { rateChart } from "./rate-chart.ts";

const WIDTH = 900;

/** The picture of a track run. */
export function trackSvg(report: TrackReport): string {
  const title = `vfio-dirty track: ${report.host}, strategy ${report.strategy}, ${report.syncs} syncs`;
  const body: string[] = [text(20, 24, title, 'font-size="15" font-weight="bold"')];
  body.push(
    text(
      20,
      42,
      `dirty rate mean ${formatRate(report.dirtyRate.mean)}, p99 ${formatRate(report.dirtyRate.p99)}, max ${formatRate(report.dirtyRate.max)}` +
        (report.groundTruth ? ` · lost pages ${report.groundTruth.pagesLost}` : ""),
      'fill="#444"',
    ),
  );
  body.push(text(20, 70, "Dirty rate over time", 'font-size="13" font-weight="bold"'));
  append(
    body,
    rateChart(
      report.samples.map((s) => ({ t: s.tMs / 1000, rate: s.dirtyRate })),
      0,
      76,
      WIDTH,
      240,
      { phaseSwitchS: report.phaseSwitchMs === null ? null : report.phaseSwitchMs / 1000, formatRate },
    ),
  );
  body.push(
    text(20, 350, "Dirty pages by guest-physical address and time", 'font-size="13" font-weight="bold"'),
  );
  const h = report.heatmap;
  // Rows = address buckets (low addresses at the top), columns = syncs.
  const rows = Array.from({ length: h.columns }, (_, col) => h.rows.map((row) => row[col] ?? 0));
  const base = BigInt(h.base);
  const step = Math.max(1, Math.ceil(h.columns / 8));
  const rowLabels: [number, string][] = [];
  for (let i = 0; i < h.columns; i += step)
    rowLabels.push([i, hex(base + BigInt(i) * BigInt(h.bucketBytes))]);
  const colStep = Math.max(1, Math.ceil(h.rows.length / 10));
  const columnLabels: [number, string][] = [];
  for (let i = 0; i < h.rows.length; i += colStep) columnLabels.push([i, `#${i + 1}`]);
  append(
    body,
    heatmap(
      {
        rows,
        rowLabels,
        columnLabels,
        rowAxis: "guest-physical address",
        columnAxis: "sync",
        unit: `dirty pages per ${formatBytes(h.bucketBytes)}`,
        cellTitle: (ri, ci, v) =>
          `sync ${ci + 1}, ${hex(base + BigInt(ri) * BigInt(h.bucketBytes))}..: ${v} dirty pages`,
      },
      0,
      358,
      WIDTH,
      400,
    ),
  );
  return svgDocument(WIDTH, 780, title, body);
}

/** The density picture of one bitmap: `counts[k]` dirty pages in bucket k of `pagesPerBucket`. */
export function densitySvg(opts: {
  file: string;
  base: bigint;
  pageSize: bigint;
  counts: readonly number[];
  pagesPerBucket: number;
  columns: number;
}): string {
  const { counts, columns } = opts;
  const nrows = Math.ceil(counts.length / columns);
  const rows: number[][] = [];
  for (let i = 0; i < nrows; i++) {
    const row = counts.slice(i * columns, (i + 1) * columns).map(Number);
    while (row.length < columns) row.push(0);
    rows.push(row);
  }
  const bucketBytes = opts.pageSize * BigInt(opts.pagesPerBucket);
  const rowBytes = bucketBytes * BigInt(columns);
  const step = Math.max(1, Math.ceil(nrows / 16));
  const rowLabels: [number, string][] = [];
  for (let i = 0; i < nrows; i += step) rowLabels.push([i, hex(opts.base + BigInt(i) * rowBytes)]);
  const colStep = Math.max(1, Math.ceil(columns / 8));
  const columnLabels: [number, string][] = [];
  for (let i = 0; i < columns; i += colStep)
    columnLabels.push([i, `+${formatBytes(bucketBytes * BigInt(i))}`]);
  const title = `vfio-dirty bitmap render: ${opts.file}`;
  const height = Math.min(900, Math.max(260, 120 + nrows * 14));
  const body = [
    text(20, 24, title, 'font-size="15" font-weight="bold"'),
    text(
      20,
      42,
      `${counts.reduce((a, b) => a + b, 0)} dirty pages of ${formatBytes(opts.pageSize)} from ${hex(opts.base)}; one cell = ${formatBytes(bucketBytes)}`,
      'fill="#444"',
    ),
    ...heatmap(
      {
        rows,
        max: opts.pagesPerBucket,
        rowLabels,
        columnLabels,
        rowAxis: "address",
        columnAxis: "offset in row",
        unit: "dirty pages per cell",
        cellTitle: (ri, ci, v) =>
          `${hex(opts.base + BigInt(ri) * rowBytes + BigInt(ci) * bucketBytes)}: ${v}/${opts.pagesPerBucket} dirty`,
      },
      0,
      56,
      WIDTH,
      height - 60,
    ),
  ];
  return svgDocument(WIDTH, height, title, body);
}

/** Appends `items` to `to` one by one: push(...items) passes each as an argument and overflows the stack for long runs. */
function append(to: string[], items: readonly string[]): void {
  for (const item of items) to.push(item);
}

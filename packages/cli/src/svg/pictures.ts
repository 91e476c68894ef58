// The two report pictures vfio-dirty draws:
// - trackSvg: dirty rate over time, a heat map of guest-physical address against time on the
//   same time axis (memory regions as bands, the stop-copy marker on both), and a zoom on the
//   hot range when it is a small part of the guest;
// - densitySvg: dirty density across a bitmap's address range (bitmap render).

import { formatBytes, formatRate, hex } from "../format/units.ts";
import type { TrackReport } from "../report.ts";
import { foldColumns, type GridSnapshot } from "../track/dirt-grid.ts";
import { addressMap, type Region } from "./address-map.ts";
import { fractionLegend, HOLE_PATTERN } from "./colors.ts";
import { esc, svgDocument, text } from "./document.ts";
import { timeFrame } from "./frame.ts";
import { heatmap } from "./heatmap.ts";
import { rateChart } from "./rate-chart.ts";
import { sizeText } from "./scales.ts";

const WIDTH = 900;
/** Room left of the plots for address labels ("16 GiB  0x400000000") and right for the bands. */
const LEFT = 170;
const RIGHT = 130;

/** The picture of a track run, from its report and (finer, when given) the loop's grid. */
export function trackSvg(report: TrackReport, given: GridSnapshot = gridFromReport(report)): string {
  // At most 200 time columns are drawn (three pixels or more each), whatever the source.
  const grid = { ...given, columns: foldColumns(given.columns, 200) };
  const syncs = `${report.syncs} sync${report.syncs === 1 ? "" : "s"}`;
  const title = `vfio-dirty track: ${report.host}, strategy ${report.strategyAtEnd === report.strategy ? report.strategy : `${report.strategy} (at the end ${report.strategyAtEnd})`}, ${syncs}`;
  const body: string[] = [HOLE_PATTERN, text(20, 24, title, 'font-size="15" font-weight="bold"')];
  body.push(subtitle(report, 20, 42));
  const lastT = report.samples.at(-1)?.tMs ?? 0;
  const endMs = Math.max(lastT, grid.columns.at(-1)?.t1Ms ?? 0);
  const f = timeFrame(
    LEFT,
    WIDTH - LEFT - RIGHT,
    endMs / 1000,
    report.phaseSwitchMs === null ? null : report.phaseSwitchMs / 1000,
  );
  let y = 70;
  body.push(text(20, y, "Dirty rate over time", 'font-size="13" font-weight="bold"'));
  append(
    body,
    rateChart(
      report.samples.map((s) => ({ t: s.tMs / 1000, rate: s.dirtyRate })),
      f,
      y + 10,
      170,
    ),
  );
  y += 10 + 170 + 52;

  const ramPages = ramPagesPerBucket(grid, report);
  const regions = memoryRegions(report, grid.buckets * grid.bucketBytes);
  const perColumn = grid.columns.reduce((m, c) => Math.max(m, c.syncs), 1);
  const spanNote = perColumn > 1 ? ` (a column: the most dirty of up to ${perColumn} syncs)` : "";
  const end = usedBuckets(grid, regions);
  body.push(
    text(
      20,
      y,
      `Dirty pages by guest-physical address and time${spanNote}`,
      'font-size="13" font-weight="bold"',
    ),
  );
  append(
    body,
    addressMap({ grid, ramPages, first: 0, end, regions, maxRows: 96, className: "heatmap" }, f, y + 10, 250),
  );
  y += 10 + 250 + 30;

  const hot = hotRange(grid, 0, end);
  if (hot) {
    const share = `${Math.round(hot.share * 100)}%`;
    const lo = hot.first * grid.bucketBytes;
    const hi = hot.end * grid.bucketBytes;
    body.push(
      text(
        20,
        y,
        `Zoom on the hot range: ${hex(BigInt(lo))}..${hex(BigInt(hi))} (${sizeText(hi - lo)} of ${sizeText(report.ramBytes)} RAM) holds ${share} of the dirty pages`,
        'font-size="13" font-weight="bold"',
      ),
    );
    append(
      body,
      addressMap(
        { grid, ramPages, first: hot.first, end: hot.end, regions, maxRows: 64, className: "heatmap-zoom" },
        f,
        y + 10,
        200,
      ),
    );
    y += 10 + 200 + 30;
  }
  append(body, fractionLegend(LEFT, y, "colour: fraction of a bucket's RAM pages dirty"));
  return svgDocument(WIDTH, y + 36, title, body);
}

/**
 * The report's own heat map (64 buckets, one row per sync) as a grid, for a picture drawn from a
 * report file alone.
 */
export function gridFromReport(report: TrackReport): GridSnapshot {
  const h = report.heatmap;
  return {
    bucketBytes: h.bucketBytes,
    buckets: h.columns,
    pageSize: report.pageSize,
    columns: h.rows.map((row, i) => {
      const s = report.samples[i];
      return {
        t0Ms: s ? s.tMs - s.intervalMs : 0,
        t1Ms: s ? s.tMs : 0,
        syncs: 1,
        counts: Uint32Array.from(row),
      };
    }),
  };
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
  return svgDocument(WIDTH, height + 16, title, body); // room for the legend's labels
}

/** Appends `items` to `to` one by one: push(...items) passes each as an argument and overflows the stack for long runs. */
function append(to: string[], items: readonly string[]): void {
  for (const item of items) to.push(item);
}

/**
 * Rate summary and the ground-truth verdict; the over-report ratio stands out when reports are
 * far coarser than the writes (a type1 container reporting every mapped page).
 */
function subtitle(report: TrackReport, x: number, y: number): string {
  const rate = `dirty rate mean ${formatRate(report.dirtyRate.mean)}, p99 ${formatRate(report.dirtyRate.p99)}, max ${formatRate(report.dirtyRate.max)}`;
  const g = report.groundTruth;
  const parts = [`<tspan>${esc(rate)}</tspan>`];
  if (!g) parts.push(`<tspan> · no ground truth on this host</tspan>`);
  else {
    parts.push(
      g.pagesLost === 0
        ? `<tspan> · ground truth: no page lost</tspan>`
        : `<tspan fill="#c0392b" font-weight="bold"> · ground truth: ${g.pagesLost} pages LOST</tspan>`,
    );
    if (g.overReportRatio === null && g.pagesReported > 0)
      parts.push(
        `<tspan fill="#b35806" font-weight="bold"> · ${g.pagesReported} pages reported, none written: all over-report</tspan>`,
      );
    if (g.overReportRatio !== null) {
      const ratio = g.overReportRatio >= 10 ? g.overReportRatio.toFixed(0) : g.overReportRatio.toFixed(2);
      const loud = g.overReportRatio >= 2;
      parts.push(
        `<tspan${loud ? ' fill="#b35806" font-weight="bold"' : ""}> · over-report ${ratio}x${loud ? ` (${ratio} pages reported per page written)` : " (exact)"}</tspan>`,
      );
    }
  }
  // xml:space="preserve": the spaces around the separators are kept where one tspan meets the next.
  return `<text x="${x}" y="${y}" fill="#444" xml:space="preserve">${parts.join("")}</text>`;
}

/** RAM pages of the tracking page size in each bucket (every page, when the report has no layout). */
function ramPagesPerBucket(grid: GridSnapshot, report: TrackReport): Float64Array {
  const out = new Float64Array(grid.buckets);
  const ram = report.memory.filter((m) => m.kind === "ram");
  if (ram.length === 0) return out.fill(grid.bucketBytes / grid.pageSize);
  for (const m of ram) {
    const lo = Number(BigInt(m.gpa));
    const hi = lo + m.length;
    for (let b = Math.floor(lo / grid.bucketBytes); b < grid.buckets && b * grid.bucketBytes < hi; b++) {
      const a = Math.max(lo, b * grid.bucketBytes);
      const e = Math.min(hi, (b + 1) * grid.bucketBytes);
      if (e > a) out[b]! += (e - a) / grid.pageSize;
    }
  }
  return out;
}

/** The report's memory sections and the holes between them, named as QEMU's layout has them. */
function memoryRegions(report: TrackReport, span: number): Region[] {
  const FOUR_G = 2 ** 32;
  const sections = report.memory
    .map((m) => ({ lo: Number(BigInt(m.gpa)), hi: Number(BigInt(m.gpa)) + m.length, kind: m.kind }))
    .sort((a, b) => a.lo - b.lo);
  if (sections.length === 0) return [{ lo: 0, hi: span, kind: "ram", label: "guest memory" }];
  const out: Region[] = [];
  let at = 0;
  for (const s of sections) {
    if (s.lo > at)
      out.push({
        lo: at,
        hi: s.lo,
        kind: "hole",
        label: s.lo === FOUR_G && at < FOUR_G ? "PCI hole" : "no RAM",
      });
    const label =
      s.kind !== "ram"
        ? "PCI BAR (logged)"
        : s.hi <= FOUR_G
          ? "RAM below 4 GiB"
          : s.lo >= FOUR_G
            ? "RAM above 4 GiB"
            : "RAM";
    out.push({ lo: s.lo, hi: s.hi, kind: s.kind === "ram" ? "ram" : "pci-bar", label });
    at = Math.max(at, s.hi);
  }
  return out;
}

/** Buckets up to the end of the last RAM region (a BAR far above RAM would squash the map). */
function usedBuckets(grid: GridSnapshot, regions: readonly Region[]): number {
  const ramEnd = regions.filter((g) => g.kind === "ram").reduce((m, g) => Math.max(m, g.hi), 0);
  return Math.max(1, Math.min(grid.buckets, Math.ceil(ramEnd / grid.bucketBytes) || grid.buckets));
}

/**
 * The smallest run of buckets holding 90 % of the dirty pages (weighted by the syncs each column
 * spans), padded by an eighth on each side, when it is at most an eighth of the map and at least
 * 4 buckets can be shown: worth a zoom. Null otherwise (the dirt is spread out, or nothing is dirty).
 */
export function hotRange(
  grid: GridSnapshot,
  first: number,
  end: number,
): { first: number; end: number; share: number } | null {
  const weight = new Float64Array(end - first);
  let total = 0;
  for (const c of grid.columns)
    for (let b = first; b < end; b++) {
      const w = c.counts[b]! * c.syncs;
      weight[b - first]! += w;
      total += w;
    }
  if (total === 0) return null;
  let best: [number, number] | null = null;
  let sum = 0;
  let lo = 0;
  for (let hi = 0; hi < weight.length; hi++) {
    sum += weight[hi]!;
    while (lo < hi && sum - weight[lo]! >= 0.9 * total) sum -= weight[lo++]!;
    if (sum >= 0.9 * total && (!best || hi + 1 - lo < best[1] - best[0])) best = [lo, hi + 1];
  }
  if (!best) return null;
  const n = best[1] - best[0];
  if (n > (end - first) / 8) return null;
  const pad = Math.max(1, Math.ceil(n / 8));
  const a = Math.max(0, best[0] - pad);
  const b = Math.min(weight.length, best[1] + pad);
  if (b - a < 4 || b - a >= weight.length) return null;
  let share = 0;
  for (let i = a; i < b; i++) share += weight[i]!;
  return { first: first + a, end: first + b, share: share / total };
}

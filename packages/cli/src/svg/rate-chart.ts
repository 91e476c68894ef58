// Dirty rate over time, on the shared time frame: the first thing people look at to see whether
// a device settles down or keeps dirtying memory. A long run is drawn per pixel column (the mean
// as a line, the range of its syncs as a band), so a day of syncs stays a small picture.

import { r, text } from "./document.ts";
import { stopCopyMarker, type TimeFrame, timeTicks } from "./frame.ts";
import { rateAxis } from "./scales.ts";

export interface RatePoint {
  /** Seconds since tracking started (the end of the sync's interval). */
  t: number;
  /** Bytes per second. */
  rate: number;
}

/** Points kept as they are up to this many; above, one bin per two pixels. */
const MAX_POINTS = 400;

/** SVG elements of the chart: the plot occupies [frame.left, +frame.width] x [top, top + height]. */
export function rateChart(points: readonly RatePoint[], f: TimeFrame, top: number, height: number): string[] {
  let max = 0;
  for (const p of points) if (p.rate > max) max = p.rate;
  const axis = rateAxis(max);
  const y = (v: number) => top + height - (v / axis.top) * height;
  const out: string[] = [`<g class="rate-chart" data-points="${points.length}">`];
  out.push(
    `<rect x="${r(f.left)}" y="${r(top)}" width="${r(f.width)}" height="${r(height)}" fill="#fafafa" stroke="#444"/>`,
  );
  for (const t of axis.ticks) {
    out.push(
      `<line x1="${r(f.left)}" x2="${r(f.left + f.width)}" y1="${r(y(t.value))}" y2="${r(y(t.value))}" stroke="#ddd"/>`,
    );
    out.push(text(f.left - 6, y(t.value) + 4, t.label, 'text-anchor="end"'));
  }
  out.push(...timeTicks(f, top, top + height));
  if (max === 0)
    out.push(
      text(f.left + f.width / 2, top + height / 2, "no page was dirtied", 'text-anchor="middle" fill="#888"'),
    );
  const bins = points.length > MAX_POINTS ? binned(points, f, Math.floor(f.width / 2)) : null;
  if (bins) {
    const band = [
      ...bins.map((b) => `${r(b.x)},${r(y(b.max))}`),
      ...bins.reverse().map((b) => `${r(b.x)},${r(y(b.min))}`),
    ];
    out.push(`<polygon points="${band.join(" ")}" fill="#c0392b" fill-opacity="0.25"/>`);
    bins.reverse();
    out.push(
      `<path d="${bins.map((b, i) => `${i ? "L" : "M"}${r(b.x)},${r(y(b.mean))}`).join(" ")}" fill="none" stroke="#c0392b" stroke-width="1.5"/>`,
    );
  } else if (points.length > 0) {
    out.push(
      `<path d="${points.map((p, i) => `${i ? "L" : "M"}${r(f.x(p.t))},${r(y(p.rate))}`).join(" ")}" fill="none" stroke="#c0392b" stroke-width="1.5"/>`,
    );
    if (points.length <= 60)
      for (const p of points)
        out.push(`<circle cx="${r(f.x(p.t))}" cy="${r(y(p.rate))}" r="2" fill="#c0392b"/>`);
  }
  out.push(...stopCopyMarker(f, top, top + height, true));
  out.push("</g>");
  return out;
}

// --- Internal helpers ---

/** Mean, min and max of the points falling in each of `n` equal time bins (empty bins left out). */
function binned(points: readonly RatePoint[], f: TimeFrame, n: number) {
  const bins = Array.from({ length: n }, () => ({ sum: 0, count: 0, min: Number.POSITIVE_INFINITY, max: 0 }));
  for (const p of points) {
    const b = bins[Math.min(n - 1, Math.floor((p.t / f.endS) * n))]!;
    b.sum += p.rate;
    b.count++;
    if (p.rate < b.min) b.min = p.rate;
    if (p.rate > b.max) b.max = p.rate;
  }
  return bins.flatMap((b, i) =>
    b.count ? [{ x: f.left + ((i + 0.5) / n) * f.width, mean: b.sum / b.count, min: b.min, max: b.max }] : [],
  );
}

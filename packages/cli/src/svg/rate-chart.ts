// A line chart of dirty rate over time, with the phase switch marked: the first thing people look
// at to see whether a device settles down or keeps dirtying memory.

import { maxOf } from "../report.ts";
import { r, text } from "./document.ts";

export interface RatePoint {
  /** Seconds since tracking started. */
  t: number;
  /** Bytes per second. */
  rate: number;
}

/** SVG elements of the chart occupying [x, x+width] x [y, y+height]. */
export function rateChart(
  points: readonly RatePoint[],
  x: number,
  y: number,
  width: number,
  height: number,
  opts: { phaseSwitchS?: number | null; formatRate: (v: number) => string },
): string[] {
  const left = x + 110;
  const top = y + 10;
  const plotW = width - 130;
  const plotH = height - 40;
  const tMax = Math.max(1e-9, maxOf(points.map((p) => p.t)));
  const vMax = Math.max(1, maxOf(points.map((p) => p.rate))) * 1.1;
  const px = (t: number) => left + (t / tMax) * plotW;
  const py = (v: number) => top + plotH - (v / vMax) * plotH;
  const out: string[] = [`<g class="rate-chart" data-points="${points.length}">`];
  out.push(
    `<rect x="${r(left)}" y="${r(top)}" width="${r(plotW)}" height="${r(plotH)}" fill="#fafafa" stroke="#444"/>`,
  );
  for (let i = 0; i <= 4; i++) {
    const v = (vMax * i) / 4;
    out.push(
      `<line x1="${r(left)}" x2="${r(left + plotW)}" y1="${r(py(v))}" y2="${r(py(v))}" stroke="#ddd"/>`,
    );
    out.push(text(left - 4, py(v) + 4, opts.formatRate(v), 'text-anchor="end"'));
  }
  for (let i = 0; i <= 5; i++) {
    const t = (tMax * i) / 5;
    out.push(text(px(t), top + plotH + 14, `${t.toFixed(t < 10 ? 1 : 0)} s`, 'text-anchor="middle"'));
  }
  if (opts.phaseSwitchS != null && opts.phaseSwitchS <= tMax) {
    const sx = px(opts.phaseSwitchS);
    out.push(
      `<line x1="${r(sx)}" x2="${r(sx)}" y1="${r(top)}" y2="${r(top + plotH)}" stroke="#888" stroke-dasharray="4 3"/>`,
    );
    out.push(text(sx + 4, top + 12, "stop-copy", 'fill="#555"'));
  }
  if (points.length > 0) {
    const d = points.map((p, i) => `${i ? "L" : "M"}${r(px(p.t))},${r(py(p.rate))}`).join(" ");
    out.push(`<path d="${d}" fill="none" stroke="#c0392b" stroke-width="1.5"/>`);
    for (const p of points)
      out.push(`<circle cx="${r(px(p.t))}" cy="${r(py(p.rate))}" r="2" fill="#c0392b"/>`);
  }
  out.push(
    text(left + plotW / 2, top + plotH + 28, "time since start", 'text-anchor="middle" font-weight="bold"'),
  );
  out.push("</g>");
  return out;
}

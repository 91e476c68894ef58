// A heat map: a grid of cells coloured by value, with row and column labels and a colour legend.
// Used for "guest-physical address against time" (track) and "dirty density across the address
// range" (bitmap render).

import { maxOf } from "../report.ts";
import { fractionColor, fractionLegend } from "./colors.ts";
import { esc, r, text } from "./document.ts";

export interface HeatmapSpec {
  /** rows[y][x], any non-negative values; each row must have the same length. */
  rows: readonly (readonly number[])[];
  /** The value that is 100 % (default: the largest value); colour is the fraction of it. */
  max?: number;
  /** Labels for some rows: [rowIndex, label]. */
  rowLabels: readonly (readonly [number, string])[];
  /** Labels for some columns: [columnIndex, label]. */
  columnLabels: readonly (readonly [number, string])[];
  rowAxis: string;
  columnAxis: string;
  /** What a cell's value means, for the legend and tooltips ("dirty pages"). */
  unit: string;
  /** Tooltip text of a cell. */
  cellTitle?: (row: number, column: number, value: number) => string;
}

/** SVG elements of a heat map occupying [x, x+width] x [y, y+height]. */
export function heatmap(spec: HeatmapSpec, x: number, y: number, width: number, height: number): string[] {
  const out: string[] = [];
  const nrows = spec.rows.length;
  const ncols = spec.rows[0]?.length ?? 0;
  const left = x + 110;
  const top = y + 6;
  const plotW = width - 130;
  const plotH = height - 60;
  const max = spec.max ?? maxOf(spec.rows.flat());
  const cw = ncols ? plotW / ncols : plotW;
  const ch = nrows ? plotH / nrows : plotH;
  out.push(`<g class="heatmap" data-rows="${nrows}" data-columns="${ncols}">`);
  spec.rows.forEach((row, ri) => {
    row.forEach((v, ci) => {
      const title = spec.cellTitle ? `<title>${esc(spec.cellTitle(ri, ci, v))}</title>` : "";
      out.push(
        `<rect x="${r(left + ci * cw)}" y="${r(top + ri * ch)}" width="${r(cw + 0.05)}" height="${r(ch + 0.05)}" fill="${fractionColor(max > 0 ? v / max : 0)}">${title}</rect>`,
      );
    });
  });
  out.push(
    `<rect x="${r(left)}" y="${r(top)}" width="${r(plotW)}" height="${r(plotH)}" fill="none" stroke="#444"/>`,
  );
  for (const [ri, label] of spec.rowLabels)
    out.push(text(left - 4, top + (ri + 0.5) * ch + 4, label, 'text-anchor="end"'));
  for (const [ci, label] of spec.columnLabels)
    out.push(text(left + (ci + 0.5) * cw, top + plotH + 14, label, 'text-anchor="middle"'));
  out.push(
    text(left + plotW / 2, top + plotH + 30, spec.columnAxis, 'text-anchor="middle" font-weight="bold"'),
  );
  out.push(
    text(
      x + 10,
      top + plotH / 2,
      spec.rowAxis,
      `text-anchor="middle" font-weight="bold" transform="rotate(-90 ${r(x + 10)} ${r(top + plotH / 2)})"`,
    ),
  );
  // Legend: the fraction scale every picture shares.
  for (const e of fractionLegend(
    left,
    top + plotH + 40,
    `colour: ${spec.unit} as a fraction of ${formatCount(max)}`,
    false,
  ))
    out.push(e);
  out.push("</g>");
  return out;
}

function formatCount(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

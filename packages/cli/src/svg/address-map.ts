// A heat map of guest-physical address (down) against time (across, on the shared frame): each
// cell the fraction of its RAM pages one sync dirtied (the most dirty of the syncs a column
// spans). Buckets without RAM (the PCI hole) are hatched, the memory regions are labelled bands
// on the right, and cells of one colour in a row are one rectangle, so the document stays small.

import type { GridSnapshot } from "../track/dirt-grid.ts";
import { CLEAN, fractionStep, HOLE_FILL, stepColor } from "./colors.ts";
import { esc, r, text } from "./document.ts";
import { stopCopyMarker, type TimeFrame, timeTicks } from "./frame.ts";
import { addressAxis, sizeText } from "./scales.ts";

export interface Region {
  /** [lo, hi) in bytes. */
  lo: number;
  hi: number;
  kind: "ram" | "hole" | "pci-bar";
  label: string;
}

export interface AddressMapSpec {
  grid: GridSnapshot;
  /** RAM pages (of the tracking page size) in each bucket. */
  ramPages: Float64Array;
  /** Buckets shown: [first, end). */
  first: number;
  end: number;
  regions: readonly Region[];
  maxRows: number;
  className: string;
}

/** Above this many cells the rectangles carry no tooltip, to keep the document small. */
const MAX_TITLED = 1500;

export function addressMap(s: AddressMapSpec, f: TimeFrame, top: number, height: number): string[] {
  const { grid } = s;
  const lo = s.first * grid.bucketBytes;
  const hi = s.end * grid.bucketBytes;
  // Positions rounded once, so a cell ends exactly where its neighbour starts (no seams).
  const y = (addr: number) => round1(top + ((addr - lo) / (hi - lo)) * height);
  const x = (tMs: number) => round1(f.x(tMs / 1000));
  const nb = s.end - s.first;
  const nrows = Math.min(s.maxRows, nb);
  const rowBuckets = (i: number): [number, number] => [
    s.first + Math.floor((i * nb) / nrows),
    s.first + Math.floor(((i + 1) * nb) / nrows),
  ];
  const out: string[] = [
    // crispEdges: neighbouring rows meet without anti-aliased seams.
    `<g class="${s.className}" data-rows="${nrows}" data-columns="${grid.columns.length}" shape-rendering="crispEdges">`,
    `<rect x="${r(f.left)}" y="${r(top)}" width="${r(f.width)}" height="${r(height)}" fill="${CLEAN}"/>`,
  ];
  const cells: { x0: number; x1: number; y0: number; y1: number; step: number; title: string }[] = [];
  for (let i = 0; i < nrows; i++) {
    const [b0, b1] = rowBuckets(i);
    let ram = 0;
    for (let b = b0; b < b1; b++) ram += s.ramPages[b]!;
    const y0 = y(b0 * grid.bucketBytes);
    const y1 = y(b1 * grid.bucketBytes);
    if (ram === 0) {
      out.push(
        `<rect x="${r(f.left)}" y="${r(y0)}" width="${r(f.width)}" height="${r(y1 - y0)}" fill="${HOLE_FILL}"/>`,
      );
      continue;
    }
    let run: (typeof cells)[number] | undefined;
    for (const col of grid.columns) {
      let dirty = 0;
      for (let b = b0; b < b1; b++) dirty += col.counts[b]!;
      const step = fractionStep(dirty / ram);
      const x0 = x(col.t0Ms);
      const x1 = x(col.t1Ms);
      if (run && run.step === step && Math.abs(run.x1 - x0) < 0.01) {
        run.x1 = x1;
        continue;
      }
      if (run && run.step > 0) cells.push(run);
      run = {
        x0,
        x1,
        y0,
        y1,
        step,
        title: `${addressText(b0 * grid.bucketBytes)}..: up to ${pct(dirty / ram)} dirty`,
      };
    }
    if (run && run.step > 0) cells.push(run);
  }
  const titled = cells.length <= MAX_TITLED;
  for (const c of cells)
    out.push(
      `<rect x="${r(c.x0)}" y="${r(c.y0)}" width="${r(Math.max(0.1, c.x1 - c.x0))}" height="${r(Math.max(0.1, c.y1 - c.y0))}" fill="${stepColor(c.step)}"${titled ? `><title>${esc(c.title)}</title></rect>` : "/>"}`,
    );
  out.push(
    `<rect x="${r(f.left)}" y="${r(top)}" width="${r(f.width)}" height="${r(height)}" fill="none" stroke="#444"/>`,
  );
  for (const t of addressAxis(lo, hi)) {
    const ty = y(t.value);
    out.push(`<line x1="${r(f.left - 4)}" x2="${r(f.left)}" y1="${r(ty)}" y2="${r(ty)}" stroke="#444"/>`);
    out.push(text(f.left - 6, ty + 4, t.label, 'text-anchor="end"'));
  }
  out.push(...timeTicks(f, top, top + height, false));
  out.push(...stopCopyMarker(f, top, top + height, true));
  out.push(...bands(s.regions, lo, hi, f.left + f.width + 6, y));
  out.push("</g>");
  return out;
}

// --- Internal helpers ---

/** The memory regions as coloured bands right of the plot, labelled where there is room. */
function bands(
  regions: readonly Region[],
  lo: number,
  hi: number,
  x: number,
  y: (a: number) => number,
): string[] {
  const out: string[] = [];
  for (const g of regions) {
    const a = Math.max(g.lo, lo);
    const b = Math.min(g.hi, hi);
    if (b <= a) continue;
    const fill = g.kind === "ram" ? "#9ecae1" : g.kind === "pci-bar" ? "#c7b8e0" : HOLE_FILL;
    const y0 = y(a);
    const h = Math.max(1, y(b) - y0);
    out.push(
      `<rect x="${r(x)}" y="${r(y0)}" width="8" height="${r(h)}" fill="${fill}" stroke="#fff" stroke-width="0.5"><title>${esc(`${g.label}: ${addressText(g.lo)} .. ${addressText(g.hi)} (${sizeText(g.hi - g.lo)})`)}</title></rect>`,
    );
    if (h >= 24) {
      out.push(text(x + 12, y0 + h / 2 - 1, g.label, 'fill="#333"'));
      out.push(text(x + 12, y0 + h / 2 + 11, sizeText(g.hi - g.lo), 'fill="#777" font-size="10"'));
    } else if (h >= 11) out.push(text(x + 12, y0 + h / 2 + 4, g.label, 'fill="#333" font-size="10"'));
  }
  return out;
}

function round1(v: number): number {
  return Math.round(v * 10) / 10;
}

function addressText(bytes: number): string {
  return `0x${BigInt(Math.round(bytes)).toString(16)}`;
}

function pct(f: number): string {
  const p = f * 100;
  return `${p >= 10 ? p.toFixed(0) : p >= 1 ? p.toFixed(1) : p.toPrecision(2)}%`;
}

// The heat maps' colour: the fraction of a bucket's pages that were dirty, on a fixed log scale
// from 0.01 % to 100 %, so the same colour means the same thing in every run (a 4 %-dirty bucket
// never looks like a full one because it happens to be the run's maximum). Colours come in
// discrete steps, so neighbouring cells of one step draw as one rectangle.

import { scaleLog } from "d3-scale";
import { heatColor, r, text } from "./document.ts";

/** Colour of a bucket with nothing dirty: not the same as a little dirty. */
export const CLEAN = "#f4f4f4";

const STEPS = 12;
const scale = scaleLog().domain([1e-4, 1]).range([0, 1]).clamp(true);

/** Step 0 for a clean bucket, 1 .. STEPS by dirty fraction (anything above 0 is at least step 1). */
export function fractionStep(fraction: number): number {
  if (!(fraction > 0)) return 0;
  return 1 + Math.min(STEPS - 1, Math.floor(scale(fraction) * STEPS));
}

export function stepColor(step: number): string {
  return step === 0 ? CLEAN : heatColor((step - 0.5) / STEPS);
}

export function fractionColor(fraction: number): string {
  return stepColor(fractionStep(fraction));
}

/** The pattern a bucket without RAM (a PCI hole) is drawn with; add HOLE_PATTERN to the document once. */
export const HOLE_FILL = "url(#no-ram)";
export const HOLE_PATTERN =
  '<defs><pattern id="no-ram" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#e4e4e4"/><line x1="0" y1="0" x2="0" y2="6" stroke="#bbbbbb" stroke-width="2"/></pattern></defs>';

/** The legend: clean, the steps with their fractions, and the no-RAM pattern. */
export function fractionLegend(x: number, y: number, what: string, hole = true): string[] {
  const out: string[] = [text(x, y + 9, what)];
  let lx = x + Math.min(420, what.length * 5.6 + 12);
  out.push(`<rect x="${r(lx)}" y="${r(y)}" width="14" height="10" fill="${CLEAN}" stroke="#ccc"/>`);
  out.push(text(lx + 7, y + 22, "0", 'text-anchor="middle" font-size="9"'));
  lx += 34;
  for (let s = 1; s <= STEPS; s++)
    out.push(`<rect x="${r(lx + (s - 1) * 14)}" y="${r(y)}" width="14" height="10" fill="${stepColor(s)}"/>`);
  for (const [f, label] of [
    [1e-4, "0.01%"],
    [1e-3, "0.1%"],
    [1e-2, "1%"],
    [1e-1, "10%"],
    [1, "100%"],
  ] as const)
    out.push(text(lx + scale(f) * STEPS * 14, y + 22, label, 'text-anchor="middle" font-size="9"'));
  lx += STEPS * 14 + 24;
  if (!hole) return out;
  out.push(`<rect x="${r(lx)}" y="${r(y)}" width="14" height="10" fill="${HOLE_FILL}"/>`);
  out.push(text(lx + 18, y + 9, "no RAM"));
  return out;
}

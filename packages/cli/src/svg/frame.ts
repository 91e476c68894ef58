// The time frame every panel of the track picture shares: one x scale, one set of time ticks
// and the stop-copy marker at the same place in each panel, so the rate chart and the heat maps
// line up.

import { r, text } from "./document.ts";
import { timeAxis } from "./scales.ts";

export interface TimeFrame {
  left: number;
  width: number;
  /** Seconds the frame spans (the run's end). */
  endS: number;
  /** Seconds since start at which tracking switched to stop-copy, or null. */
  stopCopyS: number | null;
  x(tS: number): number;
}

export function timeFrame(left: number, width: number, endS: number, stopCopyS: number | null): TimeFrame {
  const end = Math.max(endS, 1e-3);
  return {
    left,
    width,
    endS: end,
    stopCopyS,
    x: (t) => left + (Math.min(Math.max(t, 0), end) / end) * width,
  };
}

/** Time ticks under a panel whose plot ends at `bottom`, and grid lines up to `top`. */
export function timeTicks(f: TimeFrame, top: number, bottom: number, title = true): string[] {
  const axis = timeAxis(f.endS);
  const out: string[] = [];
  for (const t of axis.ticks) {
    const x = f.x(t.value);
    out.push(
      `<line x1="${r(x)}" x2="${r(x)}" y1="${r(top)}" y2="${r(bottom + 4)}" stroke="#000" stroke-opacity="0.12"/>`,
    );
    out.push(text(x, bottom + 15, t.label, 'text-anchor="middle"'));
  }
  if (title)
    out.push(
      text(
        f.left + f.width / 2,
        bottom + 29,
        "time since tracking started",
        'text-anchor="middle" fill="#444"',
      ),
    );
  return out;
}

/** The stop-copy marker across a panel, labelled when `label`. */
export function stopCopyMarker(f: TimeFrame, top: number, bottom: number, label: boolean): string[] {
  if (f.stopCopyS === null || f.stopCopyS > f.endS) return [];
  const x = f.x(f.stopCopyS);
  const out = [
    `<line x1="${r(x)}" x2="${r(x)}" y1="${r(top)}" y2="${r(bottom)}" stroke="#222" stroke-width="1.2" stroke-dasharray="5 3"/>`,
  ];
  // A white halo keeps the label readable over any cell colour.
  if (label)
    out.push(
      text(
        x + 4,
        top + 12,
        "stop-copy",
        'fill="#222" font-weight="bold" stroke="#fff" stroke-width="3" paint-order="stroke"',
      ),
    );
  return out;
}

// The picture of a prediction: the data still pending after each pre-copy iteration against the
// downtime budget QEMU compares it with (its bandwidth estimate times downtime-limit). Pre-copy
// switches over at the first iteration whose bar falls below the budget line. Logarithmic (powers
// of 4): the first pass (all of RAM) and the last iterations differ by orders of magnitude.

import type { PrecopyRound } from "@vfio-dirty/tracker";
import { formatBytes } from "../format/units.ts";
import { r, svgDocument, text } from "./document.ts";

const WIDTH = 900;
const HEIGHT = 470;

export interface PredictPicture {
  title: string;
  subtitle: string;
  rounds: readonly PrecopyRound[];
  converges: boolean;
  /** bandwidth * downtime limit: the budget with no sync cost, for reference. */
  linkBudgetBytes: number;
}

export function predictSvg(p: PredictPicture): string {
  const left = 110;
  const top = 80;
  const plotW = WIDTH - left - 30;
  const plotH = HEIGHT - top - 80;
  const values = p.rounds.flatMap((x) => [x.remainingBytes, x.thresholdBytes]).concat(p.linkBudgetBytes);
  // Powers of 4 (binary sizes read well: 64 MiB, 256 MiB, 1 GiB) from the smallest to the largest
  // positive value: a loop, not Math.min(...spread), since there can be 10,000 iterations.
  let min = Number.POSITIVE_INFINITY;
  let max = 4;
  for (const v of values)
    if (v > 0) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
  const lo = Number.isFinite(min) ? Math.floor(Math.log(Math.max(1, min)) / Math.log(4)) : 0;
  const hi = Math.max(Math.ceil(Math.log(max) / Math.log(4)), lo + 1);
  const py = (v: number) =>
    top + plotH - ((Math.log(Math.max(v, 4 ** lo)) / Math.log(4) - lo) / (hi - lo)) * plotH;
  const n = Math.max(1, p.rounds.length);
  const slot = plotW / n;
  const px = (i: number) => left + slot * i + slot / 2;
  const body: string[] = [
    text(20, 24, p.title, 'font-size="15" font-weight="bold"'),
    text(20, 42, p.subtitle, 'fill="#444"'),
    text(
      20,
      60,
      p.converges
        ? `switches over after iteration ${p.rounds.length}: the first bar below the budget line`
        : `does not converge within ${p.rounds.length} iterations: no bar falls below the budget line`,
      `fill="${p.converges ? "#1e7d32" : "#b71c1c"}"`,
    ),
    `<g class="predict-chart" data-rounds="${p.rounds.length}">`,
    `<rect x="${left}" y="${top}" width="${r(plotW)}" height="${r(plotH)}" fill="#fafafa" stroke="#444"/>`,
  ];
  const every = Math.max(1, Math.ceil((hi - lo) / 8)); // at most about 8 tick labels
  for (let e = lo; e <= hi; e += every) {
    const y = py(4 ** e);
    body.push(`<line x1="${left}" x2="${r(left + plotW)}" y1="${r(y)}" y2="${r(y)}" stroke="#ddd"/>`);
    body.push(text(left - 4, y + 4, formatBytes(4 ** e), 'text-anchor="end"'));
  }
  const barW = Math.max(1, Math.min(40, slot * 0.6));
  p.rounds.forEach((x, i) => {
    const y = py(x.remainingBytes);
    const fits = x.remainingBytes < x.thresholdBytes;
    body.push(
      `<rect x="${r(px(i) - barW / 2)}" y="${r(y)}" width="${r(barW)}" height="${r(top + plotH - y)}" fill="${fits ? "#66bb6a" : "#90a4ae"}"><title>iteration ${x.iteration}: ${formatBytes(Math.round(x.remainingBytes))} pending, budget ${formatBytes(Math.round(x.thresholdBytes))}${x.reinit ? ", REINIT" : ""}${x.switchoverAckPending ? ", held by switchover-ack" : ""}</title></rect>`,
    );
    if (x.reinit) body.push(text(px(i), y - 4, "REINIT", 'text-anchor="middle" fill="#6a1b9a"'));
  });
  if (p.rounds.length > 0) {
    const d = p.rounds.map((x, i) => `${i ? "L" : "M"}${r(px(i))},${r(py(x.thresholdBytes))}`).join(" ");
    body.push(`<path d="${d}" fill="none" stroke="#c0392b" stroke-width="2"/>`);
  }
  const yl = py(p.linkBudgetBytes);
  body.push(
    `<line x1="${left}" x2="${r(left + plotW)}" y1="${r(yl)}" y2="${r(yl)}" stroke="#c0392b" stroke-dasharray="5 4" stroke-opacity="0.6"/>`,
  );
  const step = Math.max(1, Math.ceil(n / 15));
  for (let i = 0; i < p.rounds.length; i += step)
    body.push(text(px(i), top + plotH + 14, String(i + 1), 'text-anchor="middle"'));
  body.push(text(left + plotW / 2, top + plotH + 30, "iteration", 'text-anchor="middle" font-weight="bold"'));
  body.push(
    text(
      left,
      HEIGHT - 24,
      "bars: data pending after the iteration (RAM + device state); green: below the budget",
      'fill="#555"',
    ),
  );
  body.push(
    text(
      left,
      HEIGHT - 10,
      "solid line: QEMU's budget (its bandwidth estimate × downtime-limit); dashed: bandwidth × downtime-limit",
      'fill="#555"',
    ),
  );
  body.push("</g>");
  return svgDocument(WIDTH, HEIGHT, p.title, body);
}

// Self-contained SVG documents: inline styles, no fonts or images fetched, no scripts. Anyone can
// open the file in a browser or paste it into a bug report.

/** Escapes text for SVG content and attribute values. */
export function esc(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** A whole SVG document of `width` x `height` with `body` elements. */
export function svgDocument(width: number, height: number, title: string, body: string[]): string {
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<title>${esc(title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    ...body,
    "</svg>",
    "",
  ].join("\n");
}

/** Text element. */
export function text(x: number, y: number, content: string, attrs = ""): string {
  return `<text x="${r(x)}" y="${r(y)}"${attrs ? ` ${attrs}` : ""}>${esc(content)}</text>`;
}

/** Rounds coordinates so documents stay small and stable. */
export function r(v: number): string {
  return String(Math.round(v * 10) / 10);
}

/**
 * Colour of a heat-map cell for a value in [0, 1]: white for 0 (nothing dirty is not the same as
 * a little dirty), then a yellow-orange-red-purple ramp, perceptually ordered.
 */
export function heatColor(v: number): string {
  if (!(v > 0)) return "#f4f4f4";
  const stops: [number, number, number][] = [
    [255, 237, 160],
    [254, 178, 76],
    [240, 59, 32],
    [189, 0, 38],
    [84, 0, 95],
  ];
  const t = Math.min(1, v) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(t));
  const f = t - i;
  const a = stops[i]!;
  const b = stops[i + 1]!;
  const c = (k: number) =>
    Math.round(a[k]! + (b[k]! - a[k]!) * f)
      .toString(16)
      .padStart(2, "0");
  return `#${c(0)}${c(1)}${c(2)}`;
}

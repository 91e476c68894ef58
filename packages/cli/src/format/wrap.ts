// Fitting human output to the terminal: the width to fit, and word wrapping with a hanging
// indent. Widths are measured without colour codes.

import { stripVTControlCharacters } from "node:util";

/** Columns to fit: the terminal's, else $COLUMNS, else 80 (a pipe, a file, a log). */
export function outputWidth(stdout: { columns?: number }, env: NodeJS.ProcessEnv): number {
  if (stdout.columns && stdout.columns > 0) return stdout.columns;
  const fromEnv = Number(env.COLUMNS);
  return Number.isInteger(fromEnv) && fromEnv >= 20 ? fromEnv : 80;
}

/** Printed width of `s` (colour codes take no room). */
export function visibleWidth(s: string): number {
  return stripVTControlCharacters(s).length;
}

/**
 * `text` broken at spaces into lines of at most `width` columns; lines after the first start
 * with `indent`. A word longer than a line stays whole (a path or a call is not cut).
 */
export function wrapText(text: string, width: number, indent = ""): string {
  const lead = /^ */.exec(text)![0]; // the first line's own indent ("  - item")
  const words = text.slice(lead.length).split(" ");
  const lines: string[] = [];
  let line = "";
  for (const word of words) {
    const prefix = lines.length === 0 ? lead : indent;
    const candidate = line === "" ? `${prefix}${word}` : `${line} ${word}`;
    if (line !== "" && visibleWidth(candidate) > width) {
      lines.push(line);
      line = `${indent}${word}`;
    } else line = candidate;
  }
  lines.push(line);
  return lines.join("\n");
}

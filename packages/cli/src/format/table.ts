// Tables for human output (cli-table3), drawn without colour codes when colours are off so
// that piping to a file gives plain text.

import Table from "cli-table3";

/**
 * Two aligned columns, "  name   value", one row a line. No trailing spaces: the value is last
 * and never padded (a table library pads every cell to the widest one).
 */
export function keyValueTable(rows: readonly (readonly [string, string])[]): string {
  const width = rows.reduce((w, [k]) => Math.max(w, k.length), 0);
  return rows.map(([k, v]) => `  ${k.padEnd(width)}   ${v}`.trimEnd()).join("\n");
}

/** A table with a header row. */
export function gridTable(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const t = new Table({ head: [...head], style: { head: [], border: [] } });
  for (const r of rows) t.push([...r]);
  return t.toString();
}

/** A table with a header row and no lines between rows (long numeric listings). */
export function listTable(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const t = new Table({
    head: [...head],
    style: { head: [], border: [] },
    chars: { mid: "", "left-mid": "", "mid-mid": "", "right-mid": "" },
  });
  for (const r of rows) t.push([...r]);
  return t.toString();
}

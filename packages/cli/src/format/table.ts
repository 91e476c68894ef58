// Tables for human output (cli-table3), drawn without colour codes when colours are off so
// that piping to a file gives plain text.

import Table from "cli-table3";

/** A two-column "name: value" table. */
export function keyValueTable(rows: readonly (readonly [string, string])[]): string {
  const t = new Table({ style: { head: [], border: [] }, chars: compactChars() });
  for (const [k, v] of rows) t.push([k, v]);
  return t.toString();
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

// --- Internal helpers ---

function compactChars() {
  return {
    top: "",
    "top-mid": "",
    "top-left": "",
    "top-right": "",
    bottom: "",
    "bottom-mid": "",
    "bottom-left": "",
    "bottom-right": "",
    left: " ",
    "left-mid": "",
    mid: "",
    "mid-mid": "",
    right: "",
    "right-mid": "",
    middle: " ",
  };
}

// Presentation of benchmark results: the console table, the target verdicts and results.json.
//
//   printTable(rows); writeFileSync(path, resultsJson(rows));
import Table from "cli-table3";
import { type ImplName, pairedRatio, type ResultRow } from "./harness.ts";

/** A wasm operation must take at most this many times the C -O3 time. */
export const WASM_TO_C_TARGET = 1.1;
/** OR-merge must reach this fraction of memcpy bandwidth over the same bytes. */
export const MERGE_TO_MEMCPY_TARGET = 0.9;

/** Ops whose bandwidth is held against memcpy (the merge target). */
export const MERGE_OPS: readonly string[] = ["or-merge aligned", "or-merge unaligned"];

export interface Verdict {
  readonly op: string;
  readonly size: string;
  /** Paired (per-round) wasm/C ratio, see ResultRow.paired_ratio_to_c. */
  readonly wasmToC: number;
  /** memcpy time / wasm time: the fraction of memcpy bandwidth wasm reaches (merge ops only). */
  readonly ofMemcpy: number | undefined;
  readonly met: boolean;
}

export function verdicts(rows: readonly ResultRow[]): Verdict[] {
  return groups(rows).map(({ op, size, by }) => {
    const wasm = by.get("wasm");
    const memcpy = by.get("memcpy");
    const wasmToC = wasm?.paired_ratio_to_c ?? Number.NaN;
    // Same pairing for the bandwidth target: memcpy and wasm times of one round.
    const ofMemcpy =
      MERGE_OPS.includes(op) && wasm && memcpy ? pairedRatio(memcpy.samples_ms, wasm.samples_ms) : undefined;
    const met = wasmToC <= WASM_TO_C_TARGET && (ofMemcpy === undefined || ofMemcpy >= MERGE_TO_MEMCPY_TARGET);
    return { op, size, wasmToC, ofMemcpy, met };
  });
}

/** The table of medians and ratios, as printed and pasted into BENCHMARKS.md. */
export function renderTable(rows: readonly ResultRow[], plain = false): string {
  const head = [
    "op",
    "size",
    "wasm ms",
    "wasm2c ms",
    "C ms",
    "JS ms",
    "memcpy ms",
    "wasm/C",
    "wasm/C paired",
    "wasm2c/C paired",
    "JS/C",
    "memcpy/wasm paired",
    "target",
  ];
  const vs = verdicts(rows);
  const body = groups(rows).map(({ op, size, by }, i) => {
    const v = vs[i]!;
    const ms = (name: ImplName) => fmt(by.get(name)?.median_ms, 2);
    return [
      op,
      size,
      ms("wasm"),
      ms("wasm2c"),
      ms("c"),
      ms("js"),
      ms("memcpy"),
      `${fmt(by.get("wasm")?.ratio_to_c, 2)}x`,
      `${fmt(v.wasmToC, 2)}x`,
      by.has("wasm2c") ? `${fmt(by.get("wasm2c")?.paired_ratio_to_c, 2)}x` : "-",
      `${fmt(by.get("js")?.ratio_to_c, 1)}x`,
      v.ofMemcpy === undefined ? "" : `${Math.round(v.ofMemcpy * 100)}%`,
      v.met ? "met" : "MISSED",
    ];
  });
  if (plain) {
    const line = (cells: readonly string[]) => `| ${cells.join(" | ")} |`;
    return [line(head), line(head.map(() => "---")), ...body.map(line)].join("\n");
  }
  const table = new Table({ head, style: { head: [], border: [] } });
  table.push(...body);
  return table.toString();
}

/** results.json: one row per (op, size, impl). */
export function resultsJson(rows: readonly ResultRow[]): string {
  return `${JSON.stringify(rows, null, 2)}\n`;
}

// --- Internal helpers ---

function groups(rows: readonly ResultRow[]): { op: string; size: string; by: Map<ImplName, ResultRow> }[] {
  const out: { op: string; size: string; by: Map<ImplName, ResultRow> }[] = [];
  for (const row of rows) {
    let g = out.find((x) => x.op === row.op && x.size === row.size);
    if (!g) {
      g = { op: row.op, size: row.size, by: new Map() };
      out.push(g);
    }
    g.by.set(row.impl, row);
  }
  return out;
}

function fmt(x: number | undefined, digits: number): string {
  return x === undefined || Number.isNaN(x) ? "-" : x.toFixed(digits);
}

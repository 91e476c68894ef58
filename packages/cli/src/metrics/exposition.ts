// The Prometheus text exposition (format 0.0.4, what node_exporter's textfile collector and
// promtool read) and OpenMetrics 1.0 (what a Prometheus server asks for first), from one list of
// metric families. They differ only where the formats do: a counter's TYPE line names the family
// without `_total` in OpenMetrics and with it in the Prometheus format, and OpenMetrics ends with
// `# EOF`.
//
//   expose([{ name: "vfio_dirty_syncs", type: "counter", help: "Syncs done.", samples: [{ value: 3 }] }],
//          "openmetrics");
//   // # HELP vfio_dirty_syncs Syncs done.\n# TYPE vfio_dirty_syncs counter\nvfio_dirty_syncs_total 3\n# EOF\n

export type ExpositionFormat = "prometheus" | "openmetrics";

export const CONTENT_TYPES: Record<ExpositionFormat, string> = {
  prometheus: "text/plain; version=0.0.4; charset=utf-8",
  openmetrics: "application/openmetrics-text; version=1.0.0; charset=utf-8",
};

export interface Sample {
  labels?: Readonly<Record<string, string>>;
  value: number;
}

export interface MetricFamily {
  /** snake_case with the unit at the end (`_bytes`, `_seconds`); a counter's without `_total`. */
  name: string;
  type: "gauge" | "counter";
  help: string;
  samples: readonly Sample[];
}

/** The families as one exposition document. Families without samples are left out. */
export function expose(families: readonly MetricFamily[], format: ExpositionFormat): string {
  const lines: string[] = [];
  for (const f of families) {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(f.name) || f.name.endsWith("_total"))
      throw new Error(`metric name ${f.name}: not a valid family name`);
    if (f.samples.length === 0) continue;
    const sampleName = f.type === "counter" ? `${f.name}_total` : f.name;
    const typeName = f.type === "counter" && format === "prometheus" ? sampleName : f.name;
    lines.push(`# HELP ${typeName} ${escapeHelp(f.help, format)}`);
    lines.push(`# TYPE ${typeName} ${f.type}`);
    for (const s of f.samples) lines.push(`${sampleName}${labelText(s.labels)} ${valueText(s.value)}`);
  }
  if (format === "openmetrics") lines.push("# EOF");
  return `${lines.join("\n")}\n`;
}

/** The format a scraper asked for in its Accept header: OpenMetrics when it lists it. */
export function negotiate(accept: string | undefined): ExpositionFormat {
  return accept?.includes("application/openmetrics-text") ? "openmetrics" : "prometheus";
}

// --- Internal helpers ---

function labelText(labels: Readonly<Record<string, string>> | undefined): string {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return "";
  return `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function escapeHelp(v: string, format: ExpositionFormat): string {
  const s = v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
  return format === "openmetrics" ? s.replace(/"/g, '\\"') : s;
}

function valueText(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Number.POSITIVE_INFINITY) return "+Inf";
  if (v === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(v);
}

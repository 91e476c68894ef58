// The guest's own dirty rate, as QEMU measures it: the reply to the QMP command
// `query-dirty-rate` (after `calc-dirty-rate`), the HMP `info dirty_rate` text, or libvirt's
// `virsh domstats --dirtyrate` (after `virsh domdirtyrate-calc`). Pure: text in, rate out.
//
//   {"return": {"status": "measured", "dirty-rate": 108, "mode": "page-sampling", "calc-time": 1, ...}}
//   Dirty rate: 108 (MB/s)
//   dirtyrate.calc_status=2  dirtyrate.megabytes_per_second=108
//
// QEMU's "MB/s" is MiB per second (migration/dirtyrate.c shifts by 20), and libvirt passes the
// same number through.

/** One measurement of the guest's dirty rate. */
export interface GuestDirtyRate {
  /** Bytes per second. */
  bytesPerSecond: number;
  /** QEMU's number, in its unit (MiB/s, which QEMU calls MB/s). */
  mebibytesPerSecond: number;
  format: "query-dirty-rate" | "info dirty_rate" | "domstats";
  /** page-sampling, dirty-ring or dirty-bitmap, when the output says. */
  mode: string | null;
  /** How long QEMU measured, ms, when the output says. */
  calcTimeMs: number | null;
}

/** Why the text could not be read; `hint` says what to do. */
export class GuestDirtyRateError extends Error {
  override name = "GuestDirtyRateError";
}

const MiB = 2 ** 20;

/** Reads any of the three formats (detected from the text). */
export function parseGuestDirtyRate(text: string): GuestDirtyRate {
  const trimmed = text.trim();
  if (trimmed.startsWith("{")) return fromQmp(trimmed);
  if (/^\s*dirtyrate\./m.test(text)) return fromDomstats(text);
  if (/^\s*Dirty rate:/im.test(text)) return fromHmp(text);
  throw new GuestDirtyRateError(
    "neither a QMP query-dirty-rate reply, 'info dirty_rate' output nor 'virsh domstats --dirtyrate' output",
  );
}

// --- Internal helpers ---

/** QMP: one JSON object per line (a saved session may hold the greeting and other replies too). */
function fromQmp(text: string): GuestDirtyRate {
  const objects: unknown[] = [];
  try {
    objects.push(JSON.parse(text));
  } catch {
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      try {
        objects.push(JSON.parse(line));
      } catch {
        throw new GuestDirtyRateError("not JSON: give the reply of query-dirty-rate as QMP printed it");
      }
    }
  }
  // The last object that carries a DirtyRateInfo: {"return": {...}} or the bare info.
  let info: Record<string, unknown> | undefined;
  for (const o of objects) {
    const candidate = isObject(o) && isObject(o.return) ? o.return : o;
    if (
      isObject(candidate) &&
      "status" in candidate &&
      ("dirty-rate" in candidate || "calc-time" in candidate)
    )
      info = candidate;
  }
  if (!info) {
    const error = objects.find((o) => isObject(o) && isObject(o.error)) as
      | { error: { desc?: unknown } }
      | undefined;
    throw new GuestDirtyRateError(
      error
        ? `QEMU answered with an error: ${String(error.error.desc ?? "no description")}`
        : "no query-dirty-rate reply in it (a DirtyRateInfo has 'status' and 'dirty-rate')",
    );
  }
  if (info.status !== "measured")
    throw new GuestDirtyRateError(
      `the measurement is '${String(info.status)}', not 'measured'; run calc-dirty-rate, wait calc-time, then query-dirty-rate`,
    );
  const rate = info["dirty-rate"];
  const unit = info["calc-time-unit"] === "millisecond" ? 1 : 1000;
  return result(
    rate,
    "query-dirty-rate",
    typeof info.mode === "string" ? info.mode : null,
    typeof info["calc-time"] === "number" ? info["calc-time"] * unit : null,
  );
}

/** HMP `info dirty_rate`: "Status: measured", "Period: 1 (sec)", "Mode: page-sampling", "Dirty rate: 108 (MB/s)". */
function fromHmp(text: string): GuestDirtyRate {
  const field = (name: string) => new RegExp(`^\\s*${name}:\\s*(.+?)\\s*$`, "im").exec(text)?.[1];
  const status = field("Status");
  if (status !== undefined && status !== "measured")
    throw new GuestDirtyRateError(
      `the measurement is '${status}', not 'measured'; wait for calc-dirty-rate to finish`,
    );
  const m = /^\s*Dirty rate:\s*(\d+)\s*\(MB\/s\)/im.exec(text);
  if (!m) throw new GuestDirtyRateError("'Dirty rate:' has no number in MB/s (not measured yet?)");
  const period = /^(\d+)\s*\((sec|ms)\)/.exec(field("Period") ?? "");
  return result(
    Number(m[1]),
    "info dirty_rate",
    field("Mode") ?? null,
    period ? Number(period[1]) * (period[2] === "ms" ? 1 : 1000) : null,
  );
}

/** `virsh domstats --dirtyrate`: key=value lines; calc_status 2 means measured. */
function fromDomstats(text: string): GuestDirtyRate {
  const domains = text.match(/^Domain:/gm)?.length ?? 0;
  if (domains > 1)
    throw new GuestDirtyRateError(
      `it holds ${domains} domains; run 'virsh domstats --dirtyrate DOMAIN' for one`,
    );
  const field = (name: string) => new RegExp(`^\\s*dirtyrate\\.${name}=(\\S+)\\s*$`, "m").exec(text)?.[1];
  const status = field("calc_status");
  if (status !== "2")
    throw new GuestDirtyRateError(
      `dirtyrate.calc_status is ${status ?? "missing"}, not 2 (measured); run 'virsh domdirtyrate-calc' and wait`,
    );
  const rate = field("megabytes_per_second");
  if (rate === undefined || !/^\d+$/.test(rate))
    throw new GuestDirtyRateError("no dirtyrate.megabytes_per_second in it");
  const period = field("calc_period");
  return result(Number(rate), "domstats", field("calc_mode") ?? null, period ? Number(period) * 1000 : null);
}

function result(
  rate: unknown,
  format: GuestDirtyRate["format"],
  mode: string | null,
  calcTimeMs: number | null,
): GuestDirtyRate {
  if (typeof rate !== "number" || !Number.isFinite(rate) || rate < 0)
    throw new GuestDirtyRateError(`dirty-rate ${JSON.stringify(rate)} is not a measured rate (MB/s, >= 0)`);
  return { bytesPerSecond: rate * MiB, mebibytesPerSecond: rate, format, mode, calcTimeMs };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

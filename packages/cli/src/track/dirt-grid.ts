// The data behind the track picture's heat maps: dirty pages per guest-physical bucket per span
// of time, in bounded memory however long the run. Addresses are cut into a fixed number of
// buckets (4096: fine enough to zoom on a hot range); time into columns of whole syncs, and when
// there are twice as many columns as wanted, neighbours merge, so a day of syncs keeps at most
// 2 x maxColumns columns (200: three pixels or more each in the picture). A merged column keeps, per bucket, the most dirty pages any of its
// syncs reported: a burst is never averaged away.
//
//   const grid = new DirtGrid(gpaEnd, pageSize);
//   const row = grid.newRow();
//   tracker.sync({ onWindow: (w) => grid.addWindow(row, w, core) });
//   grid.push(row, syncStartMs, syncEndMs);
//   grid.snapshot();   // for trackSvg

import type { Bitmap, BitmapCore } from "@vfio-dirty/tracker";

/**
 * bitmap-wasm's density over part of a bitmap. The tracker's BitmapCore type lists only the
 * whole-bitmap form, but the core every backend hands out is bitmap-wasm's, which has this one.
 */
type RangeDensity = (w: Bitmap, buckets: number, start: number, n: number) => number[];

export interface GridColumn {
  /** Start and end of the time it covers, ms since tracking started. */
  t0Ms: number;
  t1Ms: number;
  /** Syncs merged into it. */
  syncs: number;
  /** Per bucket, the most dirty pages one of its syncs reported. */
  counts: Uint32Array;
}

export interface GridSnapshot {
  /** Bytes each address bucket covers (whole pages); bucket i starts at i x bucketBytes. */
  bucketBytes: number;
  buckets: number;
  /** Tracking page size: a bucket holds bucketBytes / pageSize pages. */
  pageSize: number;
  columns: readonly GridColumn[];
}

export class DirtGrid {
  readonly buckets: number;
  readonly #perBucket: bigint; // pages per bucket
  readonly #pageSize: bigint;
  readonly #maxColumns: number;
  #columns: GridColumn[] = [];
  #syncsPerColumn = 1;

  constructor(gpaEnd: bigint, pageSize: bigint, opts: { buckets?: number; maxColumns?: number } = {}) {
    const wanted = BigInt(opts.buckets ?? 4096);
    const pages = (gpaEnd + pageSize - 1n) / pageSize || 1n;
    this.#perBucket = (pages + wanted - 1n) / wanted;
    this.buckets = Number((pages + this.#perBucket - 1n) / this.#perBucket);
    this.#pageSize = pageSize;
    this.#maxColumns = opts.maxColumns ?? 100;
  }

  /** An empty row for one sync. */
  newRow(): Uint32Array {
    return new Uint32Array(this.buckets);
  }

  /** Adds a report window's dirty pages to `row`: the inner buckets in one wasm call, the two ends apart. */
  addWindow(row: Uint32Array, w: Bitmap, core: BitmapCore): void {
    if (w.nbits === 0) return;
    const per = this.#perBucket;
    const first = w.base / w.pageSize; // page number of the window's bit 0
    const end = first + BigInt(w.nbits);
    const add = (bucket: bigint, from: bigint, to: bigint) => {
      if (bucket < BigInt(this.buckets))
        row[Number(bucket)]! += w.count(Number(from - first), Number(to - from));
    };
    const b0 = first / per;
    const b1 = (end - 1n) / per; // last bucket the window touches
    if (b0 === b1) {
      add(b0, first, end);
      return;
    }
    add(b0, first, (b0 + 1n) * per);
    add(b1, b1 * per, end);
    const inner = Number(b1 - b0 - 1n);
    if (inner === 0) return;
    const density = core.density.bind(core) as unknown as RangeDensity;
    const counts = density(w, inner, Number((b0 + 1n) * per - first), inner * Number(per));
    const at = Number(b0) + 1;
    for (let i = 0; i < inner && at + i < this.buckets; i++) row[at + i]! += counts[i]!;
  }

  /** Ends one sync's row: it covers [t0Ms, t1Ms]. */
  push(row: Uint32Array, t0Ms: number, t1Ms: number): void {
    // A window handed over twice (a read failed later in the sync) counts twice; a bucket never
    // holds more pages than it spans.
    const cap = Number(this.#perBucket);
    for (let i = 0; i < row.length; i++) if (row[i]! > cap) row[i] = cap;
    const last = this.#columns.at(-1);
    if (last && last.syncs < this.#syncsPerColumn) mergeInto(last, { t0Ms, t1Ms, syncs: 1, counts: row });
    else this.#columns.push({ t0Ms, t1Ms, syncs: 1, counts: row });
    if (this.#columns.length >= 2 * this.#maxColumns) {
      const merged: GridColumn[] = [];
      for (let i = 0; i < this.#columns.length; i += 2) {
        const a = this.#columns[i]!;
        const b = this.#columns[i + 1];
        if (b) mergeInto(a, b);
        merged.push(a);
      }
      this.#columns = merged;
      this.#syncsPerColumn *= 2;
    }
  }

  snapshot(): GridSnapshot {
    return {
      bucketBytes: Number(this.#perBucket * this.#pageSize),
      buckets: this.buckets,
      pageSize: Number(this.#pageSize),
      columns: this.#columns,
    };
  }
}

// --- Internal helpers ---

function mergeInto(a: GridColumn, b: GridColumn): void {
  a.t1Ms = b.t1Ms;
  a.syncs += b.syncs;
  for (let i = 0; i < a.counts.length; i++) if (b.counts[i]! > a.counts[i]!) a.counts[i] = b.counts[i]!;
}

/**
 * `columns` merged pairwise (the most dirty per bucket) until there are at most `max`: for a grid
 * of one column per sync, such as a report's own heat map. The input is left as it was.
 */
export function foldColumns(columns: readonly GridColumn[], max: number): GridColumn[] {
  let out = columns.map((c) => ({ ...c }));
  while (out.length > max) {
    const next: GridColumn[] = [];
    for (let i = 0; i < out.length; i += 2) {
      const a = { ...out[i]!, counts: Uint32Array.from(out[i]!.counts) };
      const b = out[i + 1];
      if (b) mergeInto(a, b);
      next.push(a);
    }
    out = next;
  }
  return out;
}

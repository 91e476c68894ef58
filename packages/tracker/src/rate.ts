// Dirty rate from successive syncs: pages and bytes per second, per device and in total, with a
// moving average over the last few syncs.
//
// The rate of one sync is what it reported divided by the time since the previous sync. A page
// written twice between syncs counts once (the bitmap deduplicates), so the rate is a lower bound
// of the write rate and exactly the rate pre-copy has to keep up with.
//
//   const meter = new DirtyRateMeter({ window: 5 });
//   meter.record({ atMs: 1000, pages: 512, pageSize: 4096n, perDevice: { a: 500, b: 12 } });
//   meter.current()?.average.bytesPerSecond;   // also .last and .perDevice[id]

export interface RateSample {
  /** When the sync finished, in ms on any monotonic clock. */
  readonly atMs: number;
  /** Dirty pages this sync reported (total, deduplicated across devices). */
  readonly pages: number;
  readonly pageSize: bigint;
  /** Dirty pages per device, as each device reported them. */
  readonly perDevice?: Readonly<Record<string, number>>;
}

export interface Rate {
  readonly pagesPerSecond: number;
  readonly bytesPerSecond: number;
}

export interface RateReading {
  /** Rate over the last interval only. */
  readonly last: Rate;
  /** Moving average over the window: pages summed over time summed (so short intervals weigh less). */
  readonly average: Rate;
  readonly perDevice: Readonly<Record<string, { readonly last: Rate; readonly average: Rate }>>;
}

/** Collects sync samples; the first sample only sets the clock. */
export class DirtyRateMeter {
  readonly #window: number;
  #lastAt: number | undefined;
  readonly #intervals: {
    seconds: number;
    pages: number;
    pageSize: bigint;
    perDevice: Record<string, number>;
  }[] = [];

  constructor(opts: { window?: number } = {}) {
    const window = opts.window ?? 5;
    if (!Number.isInteger(window) || window < 1) throw new RangeError("DirtyRateMeter: window must be >= 1");
    this.#window = window;
  }

  /** Start the clock (tracking start) without a sample. */
  start(atMs: number): void {
    this.#lastAt = atMs;
  }

  record(s: RateSample): void {
    if (!Number.isFinite(s.atMs) || !Number.isInteger(s.pages) || s.pages < 0)
      throw new RangeError("DirtyRateMeter.record: atMs must be finite and pages a non-negative integer");
    if (this.#lastAt !== undefined && s.atMs > this.#lastAt) {
      this.#intervals.push({
        seconds: (s.atMs - this.#lastAt) / 1000,
        pages: s.pages,
        pageSize: s.pageSize,
        perDevice: { ...s.perDevice },
      });
      if (this.#intervals.length > this.#window) this.#intervals.shift();
    }
    this.#lastAt = s.atMs;
  }

  /** Record a tracker's sync report (skipped syncs count as an interval with nothing dirty). */
  recordReport(
    r: {
      dirtyPages: number;
      pageSize: bigint;
      perDevice: Readonly<Record<string, { pages?: number | undefined }>>;
    },
    atMs: number,
  ): void {
    const perDevice: Record<string, number> = {};
    for (const [id, u] of Object.entries(r.perDevice)) if (u.pages !== undefined) perDevice[id] = u.pages;
    this.record({ atMs, pages: r.dirtyPages, pageSize: r.pageSize, perDevice });
  }

  /** The rates, or undefined before the first full interval. */
  current(): RateReading | undefined {
    const last = this.#intervals[this.#intervals.length - 1];
    if (!last) return undefined;
    const ids = new Set(this.#intervals.flatMap((i) => Object.keys(i.perDevice)));
    const perDevice: Record<string, { last: Rate; average: Rate }> = {};
    for (const id of ids) {
      perDevice[id] = {
        last: rate(last.perDevice[id] ?? 0, last.pageSize, last.seconds),
        average: averageOf(this.#intervals, (i) => i.perDevice[id] ?? 0),
      };
    }
    return {
      last: rate(last.pages, last.pageSize, last.seconds),
      average: averageOf(this.#intervals, (i) => i.pages),
      perDevice,
    };
  }
}

// --- Internal helpers ---

interface Interval {
  seconds: number;
  pages: number;
  pageSize: bigint;
  perDevice: Record<string, number>;
}

function rate(pages: number, pageSize: bigint, seconds: number): Rate {
  const pagesPerSecond = pages / seconds;
  return { pagesPerSecond, bytesPerSecond: pagesPerSecond * Number(pageSize) };
}

function averageOf(intervals: readonly Interval[], pagesOf: (i: Interval) => number): Rate {
  let seconds = 0;
  let pages = 0;
  let bytes = 0;
  for (const i of intervals) {
    const p = pagesOf(i);
    seconds += i.seconds;
    pages += p;
    bytes += p * Number(i.pageSize);
  }
  return { pagesPerSecond: pages / seconds, bytesPerSecond: bytes / seconds };
}

// A device's own DMA dirty log (VFIO_DEVICE_FEATURE_DMA_LOGGING_START/STOP/REPORT), as a device
// driver's log_ops implement it behind drivers/vfio/vfio_main.c.
//
// The core checks (range count, alignment, overlap, overflow) happen in kernel.ts like in
// vfio_main.c; this file is the driver part, modelled on mlx5_vfio_pci: it combines ranges beyond
// what the device can track (vfio_combine_iova_ranges, smallest gap first), refuses an address span
// above its limit with EOPNOTSUPP, clamps the page size to what it supports and writes that back.
// The log is kept per logging page; REPORT replicates or coarsens bits to the page size asked for,
// clears every logging page it touches (a page cut by the range's edge too), and only ever sets
// bits in the caller's bitmap: the whole of each page it reported, even past the range's end.
//
// Quirks (`quirks`) make it a broken driver, one way real drivers get log_ops wrong, so that
// `vfio-dirty check` and a VMM's own code can be tested against one: see LOG_QUIRKS. The test
// driver of the real-kernel tests takes the same names (tests/vm/module/edu_log_vfio.c, bug=).
//
//   const log = new DmaLog({ maxRanges: 4, maxSpanLog2: 42 });
//   const r = log.start([{ start: 0n, last: 0xfffffn }], 4096n);   // { rc: 0, pageSize: 4096n }
//   log.record(0x2000n, 0x1000n);
//   log.report(0n, 0x100000n, 4096n, bytes);                       // ORs bit 2, clears it

import { Errno } from "../errors.ts";
import { PageSet } from "./page-set.ts";
import { orRange } from "./user-bits.ts";

/** An inclusive IOVA interval, as the kernel's interval tree holds it. */
export interface Interval {
  start: bigint;
  last: bigint;
}

/**
 * Driver bugs the simulated log can have, by the names the test driver's `bug=` parameter takes:
 * - no-clear: REPORT does not clear what it reported;
 * - drop-last-page: REPORT skips the last logging page of its range (neither reported nor cleared);
 * - ignore-page-size: START writes back the page size asked for but the device logs at 64 KiB;
 * - zero-bitmap: REPORT writes zeros over the caller's bitmap before setting its bits;
 * - outside-range: REPORT also reports and clears the logging page just past its range;
 * - drop-ranges: START accepts any number of ranges but logs only the first 4 (no combining);
 * - stop-noop: STOP answers 0 but logging goes on (the device's close still stops it);
 * - second-start: a START while logging succeeds and starts the log afresh.
 */
export const LOG_QUIRKS = [
  "no-clear",
  "drop-last-page",
  "ignore-page-size",
  "zero-bitmap",
  "outside-range",
  "drop-ranges",
  "stop-noop",
  "second-start",
] as const;
export type LogQuirk = (typeof LOG_QUIRKS)[number];

/** What the ignore-page-size quirk logs at, whatever START asked for. */
const QUIRK_LOG_PAGE = 64n * 1024n;
/** Ranges the drop-ranges quirk keeps. */
const QUIRK_RANGES = 4;

export interface DmaLogLimits {
  /** Ranges the device can track at once; more are combined. Unlimited when undefined. */
  maxRanges?: number;
  /**
   * log2 of the largest address space the device tracks: mlx5 sums the lengths of the ranges
   * after combining (gaps swallowed by combining count) and rounds up to a power of two.
   */
  maxSpanLog2?: number;
  /** What START answers while logging: mlx5 says EINVAL, the real-kernel test driver EBUSY. */
  restartErrno?: "EBUSY" | "EINVAL";
  minPageSize?: bigint;
  maxPageSize?: bigint;
  /** Driver bugs to have (none by default). */
  quirks?: readonly LogQuirk[];
}

export class DmaLog {
  active = false;
  /** Logging page size the device chose at START (what it wrote back). */
  pageSize = 4096n;
  /** The page size it really logs at: pageSize, except with the ignore-page-size quirk. */
  private logPageSize = 4096n;
  /** Tracked ranges after combining. */
  ranges: Interval[] = [];
  /** Dirty logging pages (iova / pageSize). */
  private readonly dirty = new PageSet();

  constructor(private readonly limits: DmaLogLimits) {}

  /** log_start: returns the errno and the page size written back to the caller. */
  start(ranges: Interval[], requestedPageSize: bigint): { rc: number; pageSize: bigint } {
    if (this.active && !this.has("second-start"))
      return { rc: -Errno[this.limits.restartErrno ?? "EBUSY"], pageSize: requestedPageSize };
    const sorted = [...ranges].sort((a, b) => (a.start < b.start ? -1 : 1));
    const combined = this.has("drop-ranges")
      ? sorted.slice(0, QUIRK_RANGES)
      : combineIovaRanges(sorted, this.limits.maxRanges ?? sorted.length);
    // mlx5vf_create_tracker: ilog2(roundup_pow_of_two(total_ranges_len)) against the device's limit.
    const total = combined.reduce((n, r) => n + (r.last - r.start + 1n), 0n);
    if (this.limits.maxSpanLog2 !== undefined && log2RoundUp(total) > this.limits.maxSpanLog2)
      return { rc: -Errno.EOPNOTSUPP, pageSize: requestedPageSize };
    // mlx5: log2 of the requested size, clamped to the device's range, written back.
    let shift = ilog2(requestedPageSize > 0n ? requestedPageSize : 1n);
    const minShift = ilog2(this.limits.minPageSize ?? 4096n);
    const maxShift = ilog2(this.limits.maxPageSize ?? 1n << 30n);
    shift = Math.min(Math.max(shift, minShift), maxShift);
    this.pageSize = 1n << BigInt(shift);
    this.logPageSize = this.has("ignore-page-size") ? QUIRK_LOG_PAGE : this.pageSize;
    this.ranges = combined;
    this.dirty.clear();
    this.active = true;
    return { rc: 0, pageSize: this.pageSize };
  }

  /** log_stop, as the device's close calls it: always stops. */
  stop(): number {
    this.active = false;
    this.ranges = [];
    this.dirty.clear();
    return 0;
  }

  /** DMA_LOGGING_STOP from user space: stops, unless the stop-noop quirk ignores it. */
  stopRequested(): number {
    return this.has("stop-noop") ? 0 : this.stop();
  }

  /** The DMA path: the device wrote [iova, iova+length); logged when inside a tracked range. */
  record(iova: bigint, length: bigint): void {
    if (!this.active || length <= 0n) return;
    const end = iova + length - 1n;
    for (const r of this.ranges) {
      const a = iova > r.start ? iova : r.start;
      const b = end < r.last ? end : r.last;
      if (a > b) continue;
      const firstPage = a / this.logPageSize;
      const lastPage = b / this.logPageSize;
      for (let p = firstPage; p <= lastPage; p++) this.dirty.add(Number(p));
    }
  }

  /** Forgets everything logged (a device reset): the log "reports success but was reset". */
  reset(): void {
    this.dirty.clear();
  }

  /**
   * log_read_and_clear over [iova, iova+length) into `bytes` (bit 0 = iova, `pageSize` per bit, the
   * whole u64 words the kernel maps). Every logging page the range touches is reported whole and
   * cleared, also one that straddles an edge: that is what real drivers do (mlx5's firmware clears
   * at its own granularity; the test driver's edu_log_read_and_clear clears each touched page and
   * hands iova_bitmap_set the whole page). iova_bitmap_set does not clamp to the REPORT's range:
   * on Debian's 6.1 a REPORT of half a 64 KiB logging page sets all 16 of its bits, up to the end
   * of the mapped words (the fidelity scenario device.report.partial-page), so bits past the range
   * are set here too. A page starting before `iova` makes the kernel's offset underflow (nothing
   * a model can mimic); its bits are set from `iova` on. A caller must never cut a logging page.
   */
  report(iova: bigint, length: bigint, pageSize: bigint, nbits: bigint, bytes: Uint8Array): number {
    if (!this.active) return -Errno.EINVAL;
    const lps = this.logPageSize;
    const firstPage = iova / lps;
    let lastPage = (iova + length - 1n) / lps;
    // The broken drivers' loops (LOG_QUIRKS): one page short, one page past.
    if (this.has("drop-last-page")) lastPage--;
    if (this.has("outside-range")) lastPage++;
    if (this.has("zero-bitmap")) bytes.fill(0);
    if (lastPage < firstPage) return 0;
    const first = Number(firstPage);
    const npages = Number(lastPage - firstPage + 1n);
    // iova_bitmap_set stops at the mapped words, not at nbits.
    const mappedBits = BigInt(bytes.length) * 8n;
    const limit = nbits > mappedBits ? nbits : mappedBits;
    // When the REPORT's pages are the log's and start on one, bit (page - first) is the page: no
    // bigint per page. Any other geometry goes through orRange.
    const end = Math.min(npages, Number(limit));
    const set =
      pageSize === lps && iova % lps === 0n
        ? (p: number) => {
            const bit = p - first;
            if (bit < end) bytes[bit >>> 3]! |= 1 << (bit & 7);
          }
        : (p: number) => orRange(bytes, iova, pageSize, limit, BigInt(p) * lps, lps);
    // One walk reads and clears (no-clear: reads only).
    if (this.has("no-clear")) for (const p of this.dirty.pagesIn(first, npages)) set(p);
    else this.dirty.takeIn(first, npages, set);
    return 0;
  }

  /** Logging pages currently dirty (for tests and the sim's inspection API). */
  dirtyPages(): number[] {
    return [...this.dirty.all()];
  }

  private has(q: LogQuirk): boolean {
    return this.limits.quirks?.includes(q) === true;
  }
}

/**
 * vfio_combine_iova_ranges(): merges neighbours with the smallest gap until `max` remain (the
 * first such pair wins a tie); with max 1 everything becomes one range. `ranges` must be sorted.
 */
export function combineIovaRanges(ranges: Interval[], max: number): Interval[] {
  const out = ranges.map((r) => ({ ...r }));
  if (out.length <= max) return out;
  if (max === 1) return [{ start: out[0]!.start, last: out[out.length - 1]!.last }];
  while (out.length > max) {
    let best = 1;
    let minGap: bigint | undefined;
    for (let i = 1; i < out.length; i++) {
      const gap = out[i]!.start - out[i - 1]!.last;
      if (minGap === undefined || gap < minGap) {
        minGap = gap;
        best = i;
      }
    }
    out[best - 1]!.last = out[best]!.last;
    out.splice(best, 1);
  }
  return out;
}

// --- Internal helpers ---

function ilog2(x: bigint): number {
  return x.toString(2).length - 1;
}

function log2RoundUp(x: bigint): number {
  const l = ilog2(x);
  return 1n << BigInt(l) === x ? l : l + 1;
}

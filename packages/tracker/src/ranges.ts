// Range planning for device DMA logging: which IOVA ranges to hand to DMA_LOGGING_START.
//
// A device cannot say how many ranges or how wide a span it can log, so the plan starts from
// QEMU's three ranges and learns from the errno (hw/vfio/listener.c
// `vfio_dirty_tracking_update()` and `vfio_device_feature_dma_logging_start_create()`):
//
//   sections:  [0, 3G) RAM   [4G, 68G) RAM   [8T, 8T+1G) RAM (hotplug)   [32T, 32T+256M) PCI BAR
//   QEMU:      below-4G [0,3G)   above-4G [4G, 8T+1G)   pci64 [32T, 32T+256M)      (3 ranges)
//   E2BIG:     halve the count, merging the closest neighbours first (the kernel's
//              vfio_combine_iova_ranges smallest-gap rule)
//   EOPNOTSUPP (span too wide, mlx5 beyond 2^42): narrow to the sections themselves, holes left out
//              and the PCI window split out, then combined down to the count already learned
//
//   const r = startWithRetry(planLogging(sections, 4096n), (ranges) => device.tryStart(ranges));
//   r.ok; r.ranges; r.attempts  // each attempt: ranges, errno, what was changed and why
//
// Pure: the start call is a callback returning 0 or an errno.

import { Errno } from "@vfio-dirty/vfio-adapter";
import { alignDown, alignUp, bigMax, bigMin, isPowerOfTwoIn } from "@vfio-dirty/vfio-adapter/util";

/** A range of IOVA (or GPA) space in bytes. */
export interface IovaRange {
  readonly iova: bigint;
  readonly length: bigint;
}

/** A piece of guest memory as the memory listener sees it. */
export interface MemorySection extends IovaRange {
  /** "ram" for guest RAM; "pci-bar" for a device BAR mapped for P2P. */
  readonly kind: "ram" | "pci-bar";
}

/** The two plans the retry moves between: QEMU's coarse ranges and the exact sections. */
export interface LoggingPlan {
  /** QEMU's below-4G / above-4G / pci64 ranges (empty ones left out). */
  readonly coarse: readonly IovaRange[];
  /** The sections themselves, page aligned, adjacent ones joined, sorted. */
  readonly fine: readonly IovaRange[];
}

export interface LoggingAttempt {
  readonly ranges: readonly IovaRange[];
  /** 0 on success, else the errno of DMA_LOGGING_START. */
  readonly errno: number;
  /** Why these ranges: "QEMU's ranges", "E2BIG: halved to 2 ranges", ... */
  readonly note: string;
}

export interface RetryResult {
  readonly ok: boolean;
  /** The ranges that were accepted (ok) or last tried. */
  readonly ranges: readonly IovaRange[];
  readonly attempts: readonly LoggingAttempt[];
  /** The last errno when not ok. */
  readonly errno?: number;
}

const FOUR_GIB = 1n << 32n;

/** QEMU's split plus the exact sections. Throws RangeError on a section of length 0 or a bad page size. */
export function planLogging(sections: readonly MemorySection[], pageSize: bigint): LoggingPlan {
  if (!isPowerOfTwoIn(pageSize))
    throw new RangeError(`planLogging: pageSize ${pageSize} is not a power of two`);
  const slots: (IovaRange | undefined)[] = [undefined, undefined, undefined];
  for (const s of sections) {
    if (s.length <= 0n || s.iova < 0n) throw new RangeError(`planLogging: bad section ${s.iova}+${s.length}`);
    const end = s.iova + s.length;
    // QEMU: a section ending at or below 4 GiB goes to ranges32; a vfio-pci BAR above it to pci64.
    const slot = s.kind === "pci-bar" && s.iova >= FOUR_GIB ? 2 : end <= FOUR_GIB ? 0 : 1;
    const cur = slots[slot];
    slots[slot] = cur
      ? {
          iova: bigMin(cur.iova, s.iova),
          length: bigMax(cur.iova + cur.length, end) - bigMin(cur.iova, s.iova),
        }
      : { iova: s.iova, length: s.length };
  }
  const coarse = mergeOverlapping(
    slots.filter((r): r is IovaRange => r !== undefined).map((r) => align(r, pageSize)),
  );
  const fine = mergeOverlapping(sections.map((s) => align(s, pageSize)));
  return { coarse, fine };
}

/**
 * Merge sorted-or-not ranges down to at most `maxRanges`, joining overlapping and adjacent ranges
 * first, then repeatedly the pair with the smallest gap (leftmost on ties), exactly as the kernel's
 * `vfio_combine_iova_ranges()` (drivers/vfio/vfio_main.c) does. The result covers every input byte.
 */
export function combineRanges(ranges: readonly IovaRange[], maxRanges: number): IovaRange[] {
  if (!Number.isInteger(maxRanges) || maxRanges < 1)
    throw new RangeError("combineRanges: maxRanges must be >= 1");
  const out = mergeOverlapping(ranges).map((r) => ({ start: r.iova, last: r.iova + r.length - 1n }));
  while (out.length > maxRanges) {
    let best = 1;
    let minGap = -1n;
    for (let i = 1; i < out.length; i++) {
      const gap = out[i]!.start - out[i - 1]!.last;
      if (minGap < 0n || gap < minGap) {
        minGap = gap;
        best = i;
      }
    }
    out[best - 1]!.last = out[best]!.last;
    out.splice(best, 1);
  }
  return out.map((r) => ({ iova: r.start, length: r.last - r.start + 1n }));
}

/**
 * Try DMA_LOGGING_START with the plan, learning the device's limits from its errnos:
 * E2BIG halves the number of ranges (smallest gaps merged first); EOPNOTSUPP narrows the span to
 * the exact sections, combined to the largest count not refused; it ends when that changes nothing. Any other errno, or `maxAttempts` attempts, ends the retry. Every
 * attempt is recorded.
 */
export function startWithRetry(
  plan: LoggingPlan,
  tryStart: (ranges: readonly IovaRange[]) => number,
  maxAttempts = 8,
): RetryResult {
  const attempts: LoggingAttempt[] = [];
  let ranges: readonly IovaRange[] = plan.coarse;
  let note = "QEMU's ranges (below 4 GiB, above 4 GiB, 64-bit PCI)";
  // The smallest count refused with E2BIG: narrowing may use up to one less.
  let tooMany = Number.POSITIVE_INFINITY;
  for (;;) {
    const errno = tryStart(ranges);
    attempts.push({ ranges, errno, note });
    if (errno === 0) return { ok: true, ranges, attempts };
    if (attempts.length >= maxAttempts) return { ok: false, ranges, attempts, errno };
    let next: readonly IovaRange[] | undefined;
    if (errno === Errno.E2BIG && ranges.length > 1) {
      tooMany = Math.min(tooMany, ranges.length);
      next = combineRanges(ranges, Math.floor(ranges.length / 2));
      note = `E2BIG: halved to ${next.length} range(s), closest neighbours merged`;
    } else if (errno === Errno.EOPNOTSUPP && plan.fine.length > 0) {
      // More, narrower ranges leave more holes out. The first time this drops the coarse plan; after
      // a halving overshot, it grows back to the largest count not refused.
      next = combineRanges(plan.fine, Math.min(tooMany - 1, plan.fine.length));
      note = `EOPNOTSUPP: narrowed to the memory sections (${next.length} range(s), holes left out)`;
    }
    if (next === undefined || sameRanges(next, ranges)) return { ok: false, ranges, attempts, errno };
    ranges = next;
  }
}

// --- Internal helpers ---

function align(r: IovaRange, pageSize: bigint): IovaRange {
  const start = alignDown(r.iova, pageSize);
  const end = alignUp(r.iova + r.length, pageSize);
  return { iova: start, length: end - start };
}

/** Sort, drop empty ranges and join ranges that overlap or touch. */
export function mergeOverlapping(ranges: readonly IovaRange[]): IovaRange[] {
  const sorted = [...ranges]
    .filter((r) => r.length > 0n)
    .sort((a, b) => (a.iova < b.iova ? -1 : a.iova > b.iova ? 1 : 0));
  const out: { iova: bigint; length: bigint }[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.iova <= last.iova + last.length) {
      const end = bigMax(last.iova + last.length, r.iova + r.length);
      last.length = end - last.iova;
    } else {
      out.push({ iova: r.iova, length: r.length });
    }
  }
  return out;
}

function sameRanges(a: readonly IovaRange[], b: readonly IovaRange[]): boolean {
  return a.length === b.length && a.every((r, i) => r.iova === b[i]!.iova && r.length === b[i]!.length);
}

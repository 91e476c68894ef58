// Steps of a sync that need none of the tracker's state beyond what they are handed: the health
// check before any read, the report of a skipped sync, marking and counting bits in a window,
// and handing a finished vIOMMU report over window by window.

import { bigMax as max } from "@vfio-dirty/vfio-adapter/util";
import type { Bitmap } from "./bitmap.ts";
import type { EventLog } from "./events.ts";
import type { IovaRange, MemorySection } from "./ranges.ts";
import { setRange } from "./strategies/all-dirty.ts";
import type { DirtyReport } from "./types.ts";
import type { Unit, UnitSet } from "./units.ts";
import type { Window, WindowPlanner } from "./window-plan.ts";

/** QEMU does no sync during setup: a report of nothing, every unit not queried. */
export function skippedReport(
  seq: number,
  strategy: DirtyReport["strategy"],
  pageSize: bigint,
  units: readonly Unit[],
  memory: readonly MemorySection[],
  elapsedMs: () => number,
): DirtyReport {
  return {
    seq,
    phase: "setup",
    strategy,
    pageSize,
    bitmap: undefined,
    dirtyPages: 0,
    perDevice: Object.fromEntries(
      units.map((u) => [u.id, { strategy: u.strategy.name, queried: false, pages: 0 }]),
    ),
    perSection: memory.map((s) => ({ iova: s.iova, length: s.length, kind: s.kind, pages: 0 })),
    durationMs: elapsedMs(),
    kernelBytes: 0,
    events: [],
    skipped: "setup",
  };
}

/**
 * Before any read: which units' logs are corrupt this sync (everything they cover is reported)
 * and which to restart after it (an unhealthy device; failed reads are added as they happen).
 */
export function checkUnits(
  set: UnitSet,
  eligible: ReadonlySet<Unit>,
  events: EventLog,
): { corrupt: Set<Unit>; restart: Set<Unit> } {
  const corrupt = new Set<Unit>();
  const restart = new Set<Unit>();
  // Every running unit is checked, skipped ones too: a device reset while it is skipped in
  // pre-copy may no longer show by stop-copy (the device strategy sees state transitions).
  for (const u of set.units) {
    const why = u.running ? u.strategy.check?.() : undefined;
    if (why !== undefined) events.record("unhealthy", u.id, why);
    if (!eligible.has(u)) {
      // Not read this sync: restart now; its next read reports everything it covers.
      if (why !== undefined) set.restart(u);
      continue;
    }
    if (why !== undefined) {
      corrupt.add(u);
      restart.add(u);
    }
    if (u.allDirtyNext) corrupt.add(u);
  }
  return { corrupt, restart };
}

/** [start, n] of the bits of `b` that window `w` covers. */
export function bitSpan(b: Bitmap, w: IovaRange): [number, number] {
  const lo = max(w.iova, b.base);
  const end = b.base + BigInt(b.nbits) * b.pageSize;
  const hi = w.iova + w.length < end ? w.iova + w.length : end;
  if (hi <= lo) return [0, 0];
  const first = Number((lo - b.base) / b.pageSize);
  return [first, Number((hi - b.base + b.pageSize - 1n) / b.pageSize) - first];
}

/** Report everything a unit covers in window `w` (its pieces; with a vIOMMU, in IOVA space). */
export function markAll(w: Window, target: Bitmap): void {
  for (const piece of w.pieces) setRange(target, piece.iova, piece.length);
}

/** Add the dirty pages of `b` in each section to `into` (by section index). */
export function countSections(memory: readonly MemorySection[], b: Bitmap, into: number[]): void {
  for (const [i, s] of memory.entries()) {
    const [first, n] = bitSpan(b, s);
    if (n > 0) into[i]! += b.count(first, n);
  }
}

/**
 * vIOMMU with onWindow: the finished GPA report, handed over window by window (guest RAM cut
 * into windows of windowBytes, as without a vIOMMU), each a fresh bitmap freed after the call.
 */
export function handOverGpaWindows(
  report: Bitmap,
  planner: WindowPlanner,
  onWindow: (window: Bitmap) => void,
): void {
  const pageSize = report.pageSize;
  for (const w of planner.gpaWindows()) {
    const win = planner.bitmap(w);
    try {
      const [first, n] = bitSpan(report, w);
      win.orFrom(report, first, Number((BigInt(first) * pageSize - w.iova) / pageSize), n);
      onWindow(win);
    } finally {
      win.free();
    }
  }
}

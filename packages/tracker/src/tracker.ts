// The Tracker: one migration's dirty tracking, from log_global_start to log_global_stop.
//
// It plays the part of QEMU's hw/vfio/listener.c: it owns the state (started or not, the phase,
// the vIOMMU translation table, pending bits) and the policy (which units to query when, what to
// do when a query fails), and leaves the kernel to the strategies (strategy.ts).
//
//   await using tracker = createTracker({ core, units, memory });
//   tracker.start();                       // setup: logging on, no sync work yet
//   tracker.setPhase("pre-copy");
//   const r = tracker.sync();              // r.bitmap: GPA space, tracking page size
//   r.dirtyPages; r.perDevice; r.perSection; r.kernelBytes; r.durationMs
//   tracker.setPhase("stop-copy");
//   tracker.sync();                        // devices with preCopy=false are read now
//   tracker.stop();                        // idempotent; disposal stops too
//
// The rule above all: a dirty page is never lost. A failed read, an unhealthy device, a mapping
// the log cannot see: the affected pages are reported dirty and an event says why.
//
// Memory stays bounded for huge guests: queries go window by window (64 GiB of guest memory by
// default). The full report bitmap is kept only when the caller asks for it (the default);
// `sync({ onWindow })` hands each window to a callback instead, so a 16 TiB guest needs one window
// bitmap at a time.

import type { Bitmap, BitmapCore } from "./bitmap.ts";
import { resolveConfig } from "./config.ts";
import { EventLog } from "./events.ts";
import type { IovaRange, MemorySection } from "./ranges.ts";
import type { StrategyName } from "./select.ts";
import type { TrackerEvent } from "./strategy.ts";
import {
  bitSpan,
  checkUnits,
  countSections,
  handOverGpaWindows,
  markAll,
  skippedReport,
} from "./sync-steps.ts";
import { errnoOf, message, sum } from "./tracker-helpers.ts";
import {
  type DeprecatedPhase,
  type DirtyReport,
  type Phase,
  type SyncOptions,
  type Tracker,
  type TrackerConfig,
  TrackerStateError,
  UnmapError,
} from "./types.ts";
import { type Unit, UnitSet } from "./units.ts";
import { ViommuState } from "./viommu-state.ts";
import { clearRange, singleSection, type WindowPlan, WindowPlanner } from "./window-plan.ts";

export type {
  DeprecatedPhase,
  DirtyReport,
  Phase,
  SectionReport,
  StartFallback,
  SyncOptions,
  Tracker,
  TrackerConfig,
  UnitConfig,
  UnitReport,
  UntrackedPolicy,
} from "./types.ts";
export { TrackerStateError, UnmapError };

const PHASES: readonly Phase[] = ["setup", "pre-copy", "stop-copy"];

/** Build a tracker over already-opened strategies. Validates the configuration; starts nothing. */
export function createTracker(config: TrackerConfig): Tracker {
  return new TrackerImpl(config);
}

// --- Internal helpers ---

class TrackerImpl implements Tracker {
  readonly #core: BitmapCore;
  readonly #set: UnitSet;
  readonly #events: EventLog;
  readonly #memory: readonly MemorySection[];
  readonly #pageSize: bigint;
  readonly #now: () => number;
  readonly #perDeviceCounts: boolean;
  /** GPA span of the report bitmap: [0, #gpaEnd). */
  readonly #gpaEnd: bigint;
  #started = false;
  #closed = false;
  #phase: Phase = "setup";
  #seq = 0;
  #report: Bitmap | undefined;
  /** With a vIOMMU: its mappings, translation and what was read at unmap time. */
  #vi: ViommuState | undefined;
  readonly #planner: WindowPlanner;

  constructor(c: TrackerConfig) {
    const r = resolveConfig(c);
    this.#core = c.core;
    this.#pageSize = r.pageSize;
    this.#now = r.now;
    this.#events = new EventLog(r.now);
    this.#memory = r.memory;
    this.#gpaEnd = r.gpaEnd;
    this.#perDeviceCounts = r.perDeviceCounts;
    // Sections keep their kind for range planning.
    this.#set = new UnitSet(c.units, c.viommu?.aperture ?? r.sections, c.startFallback, this.#events);
    this.#planner = new WindowPlanner(c.core, r.pageSize, r.windowBytes, r.memory);
    if (c.viommu) this.#vi = new ViommuState(c.core, c.viommu, r, this.#set, this.#events, this.#planner);
  }

  get started(): boolean {
    return this.#started;
  }

  get phase(): Phase {
    return this.#phase;
  }

  get events(): readonly TrackerEvent[] {
    return this.#events.all;
  }

  get strategies(): Readonly<Record<string, StrategyName>> {
    return Object.fromEntries(this.#set.units.map((u) => [u.id, u.strategy.name]));
  }

  start(): void {
    this.#assertOpen();
    if (this.#started) return; // like dirty_pages_started in QEMU: a second start does nothing
    if (this.#vi) this.#set.startRanges = this.#vi.startRanges();
    this.#set.start();
    this.#started = true;
    this.#phase = "setup";
    this.#vi?.refreshUntracked();
  }

  setPhase(spelled: Phase | DeprecatedPhase): void {
    this.#assertOpen();
    const phase: Phase = spelled === "precopy" ? "pre-copy" : spelled;
    if (!PHASES.includes(phase)) throw new RangeError(`setPhase: unknown phase ${String(phase)}`);
    if (PHASES.indexOf(phase) < PHASES.indexOf(this.#phase))
      throw new TrackerStateError(`setPhase: cannot go back from ${this.#phase} to ${phase}`);
    this.#phase = phase;
  }

  sync(opts: SyncOptions = {}): DirtyReport {
    this.#assertOpen();
    if (!this.#started) throw new TrackerStateError("sync: tracking is not started");
    const t0 = this.#now();
    const vi = this.#vi;
    const firstEvent = this.#events.all.length;
    const seq = ++this.#seq;
    const strategy = this.#set.overallStrategy();
    if (this.#phase === "setup")
      return skippedReport(
        seq,
        strategy,
        this.#pageSize,
        this.#set.units,
        this.#memory,
        () => this.#now() - t0,
      );

    const eligible = this.#set.units.filter((u) => u.preCopy || this.#phase === "stop-copy");
    const kernelBefore = this.#set.units.reduce((s, u) => s + u.strategy.kernelBytes, 0);
    const pages = new Map<string, number>(this.#set.units.map((u) => [u.id, 0]));
    const eligibleSet = new Set(eligible);
    const { corrupt, restart } = checkUnits(this.#set, eligibleSet, this.#events);

    // A sync that throws part-way has read (and so cleared) kernel logs whose bits the caller never
    // got: every queried unit then reports everything it covers at the next sync.
    let committed = false;
    let restarted = false;
    try {
      // With a vIOMMU a window of IOVA space translates anywhere in GPA space: the GPA report is
      // built whole, then handed to onWindow in GPA windows (gpaWindows below).
      const full = opts.onWindow === undefined || vi !== undefined;
      const plan = this.#plan();
      const windows = plan.windows;
      // vIOMMU: translate by copying (no clear of the report first) when the cut allows it.
      const copy = vi !== undefined && plan.copy;
      if (full) this.#report = this.#reportBitmap(copy);
      // With a vIOMMU, the GPA report's counts come from the IOVA windows' piece counts when that is
      // exact (see #windows): this saves a pass over the whole report after translation.
      let xlatCounted = vi !== undefined && plan.exact && vi.untracked === 0;
      let dirtyPages = 0;
      const sectionPages = this.#memory.map(() => 0);
      let notMerged = 0;
      const failedAt = new Map<Unit, number>();
      // onWindow: each window's piece counts as handed over (a window handed over again replaces them).
      const handedOver: number[][] = [];

      // Counting is the tracker's main cost after the kernel's: one pass over each window's pieces
      // after each unit (the previous unit's "after" is the next one's "before"); the last pass
      // also gives the window's and, without a vIOMMU, the sections' totals.
      const sectionOf = (p: IovaRange) =>
        this.#memory.findIndex((m) => p.iova >= m.iova && p.iova < m.iova + m.length);
      for (const [wi, w] of windows.entries()) {
        const dst = full ? this.#report! : this.#windowBitmap(w);
        try {
          // With a vIOMMU the kernel reports IOVA space: query a window of it, then translate.
          const target = vi ? this.#windowBitmap(w) : dst;
          try {
            // Pieces are disjoint and start empty (cleared here, or a fresh window bitmap).
            if (target === this.#report) for (const p of w.pieces) target.clear(...bitSpan(target, p));
            let counts = w.pieces.map(() => 0);
            // A copying translation counts what it copies: when the window's mappings all lie in
            // one section, that count stands in for the last pass over the window (vIOMMU).
            const fusedSection = copy && xlatCounted ? singleSection(w) : -1;
            for (const [ui, u] of eligible.entries()) {
              if (corrupt.has(u)) markAll(w, target);
              else {
                try {
                  for (const piece of w.pieces) u.strategy.query(piece.iova, piece.length, target);
                } catch (e) {
                  this.#events.record(
                    "query-failed",
                    u.id,
                    `dirty log read failed: ${message(e)}`,
                    errnoOf(e),
                    w,
                  );
                  corrupt.add(u);
                  restart.add(u);
                  failedAt.set(u, wi);
                  markAll(w, target);
                } finally {
                  // Widened queries' bits outside the pieces (no memory or mapping there), also
                  // those of pieces read before one failed.
                  for (const r of w.slack ?? []) clearRange(target, r);
                }
              }
              // Without per-device counts only the last pass is needed, and only without a vIOMMU
              // (the GPA report is counted after translation instead).
              const last = ui === eligible.length - 1;
              if ((this.#perDeviceCounts && !(last && fusedSection >= 0)) || (last && !vi)) {
                const after = w.pieces.map((p) => target.count(...bitSpan(target, p)));
                pages.set(u.id, pages.get(u.id)! + sum(after) - sum(counts));
                counts = after;
              }
            }
            if (vi) {
              vi.markUntracked(target);
              if (xlatCounted && fusedSection < 0) {
                // The last unit's counts are the pieces' totals; without per-device counts, count
                // them now, while the window is in cache.
                if (!this.#perDeviceCounts) counts = w.pieces.map((p) => target.count(...bitSpan(target, p)));
                for (const [i, si] of w.pieceSections!.entries()) sectionPages[si]! += counts[i]!;
              }
              const t = vi.translate(target, dst, copy);
              if (!t.exact) xlatCounted = false;
              if (fusedSection >= 0) {
                // Every dirty page of the window was copied into the report, or fell outside it.
                sectionPages[fusedSection]! += t.copiedPages;
                const lastUnit = eligible[eligible.length - 1];
                if (this.#perDeviceCounts && lastUnit)
                  pages.set(lastUnit.id, pages.get(lastUnit.id)! + t.windowPages - sum(counts));
              }
            } else {
              dirtyPages += sum(counts);
              for (const [i, p] of w.pieces.entries()) {
                const si = sectionOf(p);
                if (si >= 0) sectionPages[si]! += counts[i]!;
              }
              if (!full) handedOver[wi] = counts;
            }
          } finally {
            if (target !== dst) target.free();
          }
          if (!full) {
            if (opts.into) notMerged += this.#core.convert(dst, opts.into).outsidePages;
            opts.onWindow?.(dst);
          }
        } finally {
          if (!full) dst.free();
        }
      }

      // A unit that failed in a later window: the windows before it were read from a log now
      // known to be corrupt, so everything they cover is reported again (units query every piece
      // of a window). A full report gets it marked in. With onWindow each such window is handed
      // over a second time, all dirty: the caller ORs it into its bitmap (or passes `into`), so
      // the second call adds what the first lacked, and the counts then hold its pages once.
      const upTo = Math.max(0, ...failedAt.values());
      for (const [wi, w] of windows.slice(0, upTo).entries()) {
        const again = full && !vi ? this.#report! : this.#windowBitmap(w);
        try {
          markAll(w, again);
          if (full) {
            if (vi) vi.translate(again, this.#report!);
            continue;
          }
          for (const [i, p] of w.pieces.entries()) {
            const added = bitSpan(again, p)[1] - (handedOver[wi]?.[i] ?? 0);
            dirtyPages += added;
            const si = sectionOf(p);
            if (si >= 0) sectionPages[si]! += added;
          }
          if (opts.into) notMerged += this.#core.convert(again, opts.into).outsidePages;
          opts.onWindow?.(again);
        } finally {
          if (again !== this.#report) again.free();
        }
      }
      if (upTo > 0 && !full) {
        const units = [...failedAt.keys()].map((u) => u.id).join(", ");
        this.#events.record(
          "re-emitted",
          "tracker",
          `${upTo} window(s) handed over again all dirty: ${units} failed in a later window, so the log they were read from is corrupt`,
        );
      }

      if (full) {
        // Bits read at vIOMMU unmap time since the last sync (cleared once the report is complete).
        if (vi?.mergeCarry(this.#report!)) xlatCounted = false; // they may land on pages already counted
      }

      // The piece counts are exact unless bits were added outside the window loop (re-marking after
      // a late failure, unmap-time bits) or translation is not one-to-one (placeInSections): then
      // count the report once more.
      if (full && (failedAt.size > 0 || (vi && !xlatCounted))) {
        // Bits only ever land inside sections (map() keeps GPAs inside them), so the sections' sum
        // is the total.
        sectionPages.fill(0);
        countSections(this.#memory, this.#report!, sectionPages);
        dirtyPages = sum(sectionPages);
      } else if (vi) dirtyPages = sum(sectionPages);
      if (full && opts.into) notMerged += this.#core.convert(this.#report!, opts.into).outsidePages;
      if (full && opts.onWindow) handOverGpaWindows(this.#report!, this.#planner, opts.onWindow);
      if (notMerged > 0)
        this.#events.record(
          "not-merged",
          "tracker",
          `${notMerged} dirty page(s) lie outside the \`into\` bitmap: only the report holds them`,
        );

      // The report is complete: only now drop what fed it (unmap-time bits, retired mappings).
      if (full) vi?.clearCarry();

      // Re-arm policy: logs that cannot see every mapping move over the space mapped now, once
      // they have been read (units skipped this sync keep their log until a sync reads it).
      if (vi && vi.untracked > 0 && vi.rearmDue()) vi.rearm(eligible.filter((u) => !restart.has(u)));
      // Restart what failed; degrade what cannot restart. The next sync then reports all of it once
      // more: writes between the failed read and the restart were in no log.
      restarted = true;
      for (const u of corrupt) {
        if (restart.has(u)) this.#set.restart(u);
        else if (!u.rearmed) u.allDirtyNext = false;
      }
      for (const u of this.#set.units) u.rearmed = false;
      // Which mappings a log cannot see changes only when a log's ranges did.
      if (vi && this.#set.changed) vi.refreshUntracked();

      // Retired vIOMMU mappings translate until every unit has read its log past their removal.
      if (vi && eligible.length === this.#set.units.length) vi.retireRead();

      const kernelAfter = this.#set.units.reduce((s, u) => s + u.strategy.kernelBytes, 0);
      const report: DirtyReport = {
        seq,
        phase: this.#phase,
        strategy,
        pageSize: this.#pageSize,
        bitmap: full && !opts.onWindow ? this.#report : undefined,
        dirtyPages,
        perDevice: Object.fromEntries(
          this.#set.units.map((u) => [
            u.id,
            {
              strategy: u.strategy.name,
              queried: eligibleSet.has(u),
              pages: this.#perDeviceCounts ? pages.get(u.id)! : undefined,
            },
          ]),
        ),
        perSection: this.#memory.map((s, i) => ({
          iova: s.iova,
          length: s.length,
          kind: s.kind,
          pages: sectionPages[i]!,
        })),
        durationMs: this.#now() - t0,
        kernelBytes: Math.max(0, kernelAfter - kernelBefore),
        events: this.#events.since(firstEvent),
        ...(opts.into ? { notMerged } : {}),
      };
      committed = true;
      return report;
    } finally {
      if (!committed) this.#syncFailed(eligible, restarted ? new Set() : restart);
    }
  }

  /** sync() threw part-way: restart what failed and report every queried unit whole next time. */
  #syncFailed(eligible: readonly Unit[], restart: ReadonlySet<Unit>): void {
    for (const u of restart) this.#set.restart(u);
    for (const u of eligible) u.allDirtyNext = true;
    this.#events.record(
      "sync-failed",
      "tracker",
      "sync threw before its report was complete: everything the queried units cover is reported at the next sync",
    );
  }

  map(iova: bigint, gpa: bigint, length: bigint): void {
    this.#assertOpen();
    this.#requireViommu("map").map(iova, gpa, length, this.#started);
  }

  unmap(iova: bigint, length: bigint): void {
    this.#assertOpen();
    this.#requireViommu("unmap").unmap(iova, length, this.#started);
  }

  stop(): void {
    this.#set.stopAll(this.#started);
    this.#started = false;
  }

  close(): void {
    if (this.#closed) return;
    this.stop();
    this.#closed = true;
    this.#report?.free();
    this.#report = undefined;
    this.#vi?.free();
    this.#vi = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new TrackerStateError("tracker is closed");
  }

  #requireViommu(op: string): ViommuState {
    if (!this.#vi) throw new TrackerStateError(`${op}: the tracker was created without a vIOMMU`);
    return this.#vi;
  }

  /**
   * The report bitmap, reused from sync to sync. Without a vIOMMU only the windows' pieces ever
   * get bits, so each piece is cleared in the window loop, right before its queries, while the
   * window is in cache. With a vIOMMU translation can land anywhere: the report is cleared whole
   * here, or, when the windows' translations will copy into every page a mapping covers
   * (`copy`), only where no mapping does.
   */
  #reportBitmap(copy: boolean): Bitmap {
    const nbits = Number((this.#gpaEnd + this.#pageSize - 1n) / this.#pageSize);
    if (this.#report && this.#report.nbits === nbits) {
      if (copy) this.#vi?.xlat.clearUnmappedGpa(this.#report);
      else if (this.#vi) this.#report.fill(false);
      return this.#report;
    }
    this.#report?.free();
    return this.#core.bitmap({ nbits, pageSize: this.#pageSize, base: 0n });
  }

  #windowBitmap(w: IovaRange): Bitmap {
    return this.#planner.bitmap(w);
  }

  /** The windows to query (see WindowPlanner): over the vIOMMU's mappings, active and retired. */
  #plan(): WindowPlan {
    return this.#planner.plan(this.#set.units, this.#vi?.planSource());
  }
}

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

import type { Bitmap, BitmapCore, XlatTable } from "./bitmap.ts";
import { resolveConfig } from "./config.ts";
import { EventLog } from "./events.ts";
import { type IovaRange, type MemorySection, mergeOverlapping } from "./ranges.ts";
import type { StrategyName } from "./select.ts";
import { setRange } from "./strategies/all-dirty.ts";
import type { TrackerEvent } from "./strategy.ts";
import { checkAligned, cmp, covers, errnoOf, hexRange, max, message, min, sum } from "./tracker-helpers.ts";
import {
  type DeprecatedPhase,
  type DirtyReport,
  type Phase,
  type SyncOptions,
  type Tracker,
  type TrackerConfig,
  TrackerStateError,
  UnmapError,
  type UntrackedPolicy,
} from "./types.ts";
import { type Unit, UnitSet } from "./units.ts";
import { clearRange, singleSection, type Window, type WindowPlan, WindowPlanner } from "./window-plan.ts";

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

interface Mapping {
  readonly iova: bigint;
  readonly gpa: bigint;
  readonly length: bigint;
  /** Outside what device logging was started on: always reported dirty. */
  readonly untracked: boolean;
}

class TrackerImpl implements Tracker {
  readonly #core: BitmapCore;
  readonly #set: UnitSet;
  readonly #events: EventLog;
  readonly #memory: readonly MemorySection[];
  readonly #pageSize: bigint;
  readonly #windowBytes: bigint;
  readonly #now: () => number;
  readonly #viommu: TrackerConfig["viommu"];
  readonly #perDeviceCounts: boolean;
  /** Guest memory as given (RAM and PCI BARs, kinds kept for range planning). */
  readonly #sections: readonly MemorySection[];
  readonly #untrackedPolicy: UntrackedPolicy;
  /** GPA span of the report bitmap: [0, #gpaEnd). */
  readonly #gpaEnd: bigint;
  #started = false;
  #closed = false;
  #phase: Phase = "setup";
  #seq = 0;
  #report: Bitmap | undefined;
  /** vIOMMU state: the wasm table and our own list of the ranges (ranges, never bits). */
  #xlat: XlatTable | undefined;
  /** Active vIOMMU mappings, sorted by IOVA (map() inserts in order; cuts keep it). */
  #mappings: Mapping[] = [];
  /** Removed mappings still translating until every unit has read its log. */
  readonly #retired: Mapping[] = [];
  /** GPA-space bits read at unmap time, reported at the next sync. */
  #carry: Bitmap | undefined;
  /** Bumped whenever the set of mappings (active or retired) changes. */
  #mapGen = 0;
  /** How many active mappings some unit's log cannot see (see #refreshUntracked). */
  #untracked = 0;
  /** "adaptive": bytes of untracked mappings reported dirty since the last re-arm (#rearmDue). */
  #untrackedRent = 0n;
  /** The carry bitmap got bits since the last sync (else the sync skips merging it: 2 passes). */
  #carryDirty = false;
  readonly #planner: WindowPlanner;

  constructor(c: TrackerConfig) {
    const r = resolveConfig(c);
    this.#core = c.core;
    this.#pageSize = r.pageSize;
    this.#windowBytes = r.windowBytes;
    this.#now = r.now;
    this.#events = new EventLog(r.now);
    this.#memory = r.memory;
    this.#gpaEnd = r.gpaEnd;
    this.#viommu = c.viommu;
    this.#perDeviceCounts = r.perDeviceCounts;
    this.#sections = r.sections;
    this.#untrackedPolicy = r.untrackedPolicy;
    // Sections keep their kind for range planning.
    this.#set = new UnitSet(c.units, c.viommu?.aperture ?? r.sections, c.startFallback, this.#events);
    if (c.viommu) this.#xlat = c.core.xlatTable(r.pageSize);
    this.#planner = new WindowPlanner(c.core, r.pageSize, r.windowBytes, r.memory);
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
    if (this.#viommu) this.#set.startRanges = this.#viommuStartRanges();
    this.#set.start();
    this.#started = true;
    this.#phase = "setup";
    this.#refreshUntracked();
  }

  /**
   * vIOMMU: what device logging starts on. The aperture when given, widened by any mapping made
   * before start() outside it; else the IOVA space mapped now; else, with nothing mapped yet, the
   * guest memory. Mappings made later outside it are handled by the untracked policy.
   */
  #viommuStartRanges(): readonly IovaRange[] {
    const mapped = this.#mappings.map((m) => ({ iova: m.iova, length: m.length }));
    const aperture = this.#viommu?.aperture;
    if (aperture)
      return mapped.every((m) => covers(aperture, m)) ? aperture : mergeOverlapping([...aperture, ...mapped]);
    return mapped.length > 0 ? mergeOverlapping(mapped) : this.#sections;
  }

  /** Index of the first active mapping at or above `iova` (#mappings is sorted by IOVA). */
  #insertionPoint(iova: bigint): number {
    let lo = 0;
    let hi = this.#mappings.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#mappings[mid]!.iova < iova) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Whether some running unit's log cannot see DMA writes in `r` (device logging outside its ranges). */
  #unseen(r: IovaRange): boolean {
    return this.#set.units.some((u) => u.running && u.strategy.covers !== undefined && !u.strategy.covers(r));
  }

  /** Recompute which active mappings are untracked (after a start, restart, fallback or re-arm). */
  #refreshUntracked(): void {
    this.#set.changed = false;
    let n = 0;
    for (const [i, m] of this.#mappings.entries()) {
      const untracked = this.#unseen(m);
      if (untracked !== m.untracked) this.#mappings[i] = { ...m, untracked };
      if (untracked) n++;
    }
    this.#untracked = n;
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
    const firstEvent = this.#events.all.length;
    const seq = ++this.#seq;
    const strategy = this.#set.overallStrategy();
    if (this.#phase === "setup") {
      return {
        seq,
        phase: "setup",
        strategy,
        pageSize: this.#pageSize,
        bitmap: undefined,
        dirtyPages: 0,
        perDevice: Object.fromEntries(
          this.#set.units.map((u) => [u.id, { strategy: u.strategy.name, queried: false, pages: 0 }]),
        ),
        perSection: this.#memory.map((s) => ({ iova: s.iova, length: s.length, kind: s.kind, pages: 0 })),
        durationMs: this.#now() - t0,
        kernelBytes: 0,
        events: [],
        skipped: "setup",
      };
    }

    const eligible = this.#set.units.filter((u) => u.preCopy || this.#phase === "stop-copy");
    const kernelBefore = this.#set.units.reduce((s, u) => s + u.strategy.kernelBytes, 0);
    const pages = new Map<string, number>(this.#set.units.map((u) => [u.id, 0]));
    // Units whose log must be treated as corrupt this sync: everything they cover is reported.
    const corrupt = new Set<Unit>();
    // Units to restart after this sync (an unhealthy device, a failed read).
    const restart = new Set<Unit>();
    const eligibleSet = new Set(eligible);
    // Every running unit is checked, skipped ones too: a device reset while it is skipped in
    // pre-copy may no longer show by stop-copy (the device strategy sees state transitions).
    for (const u of this.#set.units) {
      const why = u.running ? u.strategy.check?.() : undefined;
      if (why !== undefined) this.#events.record("unhealthy", u.id, why);
      if (!eligibleSet.has(u)) {
        // Not read this sync: restart now; its next read reports everything it covers.
        if (why !== undefined) this.#set.restart(u);
        continue;
      }
      if (why !== undefined) {
        corrupt.add(u);
        restart.add(u);
      }
      if (u.allDirtyNext) corrupt.add(u);
    }

    // A sync that throws part-way has read (and so cleared) kernel logs whose bits the caller never
    // got: every queried unit then reports everything it covers at the next sync.
    let committed = false;
    let restarted = false;
    try {
      // With a vIOMMU a window of IOVA space translates anywhere in GPA space: the GPA report is
      // built whole, then handed to onWindow in GPA windows (gpaWindows below).
      const full = opts.onWindow === undefined || this.#xlat !== undefined;
      const plan = this.#plan();
      const windows = plan.windows;
      // vIOMMU: translate by copying (no clear of the report first) when the cut allows it.
      const copy = this.#xlat !== undefined && plan.copy;
      if (full) this.#report = this.#reportBitmap(copy);
      // With a vIOMMU, the GPA report's counts come from the IOVA windows' piece counts when that is
      // exact (see #windows): this saves a pass over the whole report after translation.
      let xlatCounted = this.#xlat !== undefined && plan.exact && this.#untracked === 0;
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
          const target = this.#xlat ? this.#windowBitmap(w) : dst;
          try {
            // Pieces are disjoint and start empty (cleared here, or a fresh window bitmap).
            if (target === this.#report) for (const p of w.pieces) target.clear(...this.#bitSpan(target, p));
            let counts = w.pieces.map(() => 0);
            // A copying translation counts what it copies: when the window's mappings all lie in
            // one section, that count stands in for the last pass over the window (vIOMMU).
            const fusedSection = copy && xlatCounted ? singleSection(w) : -1;
            for (const [ui, u] of eligible.entries()) {
              if (corrupt.has(u)) this.#markAll(w, target);
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
                  this.#markAll(w, target);
                } finally {
                  // Widened queries' bits outside the pieces (no memory or mapping there), also
                  // those of pieces read before one failed.
                  for (const r of w.slack ?? []) clearRange(target, r);
                }
              }
              // Without per-device counts only the last pass is needed, and only without a vIOMMU
              // (the GPA report is counted after translation instead).
              const last = ui === eligible.length - 1;
              if ((this.#perDeviceCounts && !(last && fusedSection >= 0)) || (last && !this.#xlat)) {
                const after = w.pieces.map((p) => target.count(...this.#bitSpan(target, p)));
                pages.set(u.id, pages.get(u.id)! + sum(after) - sum(counts));
                counts = after;
              }
            }
            if (this.#xlat) {
              this.#markUntracked(target);
              if (xlatCounted && fusedSection < 0) {
                // The last unit's counts are the pieces' totals; without per-device counts, count
                // them now, while the window is in cache.
                if (!this.#perDeviceCounts)
                  counts = w.pieces.map((p) => target.count(...this.#bitSpan(target, p)));
                for (const [i, si] of w.pieceSections!.entries()) sectionPages[si]! += counts[i]!;
              }
              const t = this.#translate(target, dst, copy);
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
        const again = full && !this.#xlat ? this.#report! : this.#windowBitmap(w);
        try {
          this.#markAll(w, again);
          if (full) {
            if (this.#xlat) this.#translate(again, this.#report!);
            continue;
          }
          for (const [i, p] of w.pieces.entries()) {
            const added = this.#bitSpan(again, p)[1] - (handedOver[wi]?.[i] ?? 0);
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
        if (this.#carry && this.#carryDirty) {
          this.#core.convert(this.#carry, this.#report!);
          xlatCounted = false; // they may land on pages already counted
        }
      }

      // The piece counts are exact unless bits were added outside the window loop (re-marking after
      // a late failure, unmap-time bits) or translation is not one-to-one (placeInSections): then
      // count the report once more.
      if (full && (failedAt.size > 0 || (this.#xlat && !xlatCounted))) {
        // Bits only ever land inside sections (map() keeps GPAs inside them), so the sections' sum
        // is the total.
        sectionPages.fill(0);
        this.#countSections(this.#report!, sectionPages);
        dirtyPages = sum(sectionPages);
      } else if (this.#xlat) dirtyPages = sum(sectionPages);
      if (full && opts.into) notMerged += this.#core.convert(this.#report!, opts.into).outsidePages;
      if (full && opts.onWindow) this.#handOverGpaWindows(opts.onWindow);
      if (notMerged > 0)
        this.#events.record(
          "not-merged",
          "tracker",
          `${notMerged} dirty page(s) lie outside the \`into\` bitmap: only the report holds them`,
        );

      // The report is complete: only now drop what fed it (unmap-time bits, retired mappings).
      if (full && this.#carryDirty) {
        this.#carry!.fill(false);
        this.#carryDirty = false;
      }

      // Re-arm policy: logs that cannot see every mapping move over the space mapped now, once
      // they have been read (units skipped this sync keep their log until a sync reads it).
      if (this.#untracked > 0 && this.#rearmDue()) this.#rearm(eligible.filter((u) => !restart.has(u)));
      // Restart what failed; degrade what cannot restart. The next sync then reports all of it once
      // more: writes between the failed read and the restart were in no log.
      restarted = true;
      for (const u of corrupt) {
        if (restart.has(u)) this.#set.restart(u);
        else if (!u.rearmed) u.allDirtyNext = false;
      }
      for (const u of this.#set.units) u.rearmed = false;
      // Which mappings a log cannot see changes only when a log's ranges did.
      if (this.#xlat && this.#set.changed) this.#refreshUntracked();

      // Retired vIOMMU mappings translate until every unit has read its log past their removal.
      if (this.#xlat && eligible.length === this.#set.units.length && this.#retired.length > 0) {
        this.#xlat.retire();
        this.#retired.length = 0;
        this.#mapGen++;
      }

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

  /**
   * Re-arm (viommu.untracked "re-arm"): each of `read` whose log cannot see every mapping is
   * STOPped and STARTed over the IOVA space mapped now. Its log was just read; whatever the device
   * writes between the STOP and the START is in no log, so everything the unit covers is reported
   * at the next sync. If the kernel refuses the new ranges (a span or range limit), logging goes
   * back onto the old ones and the mappings outside them stay reported dirty.
   */
  #rearm(read: readonly Unit[]): void {
    const wanted = mergeOverlapping(this.#mappings);
    const before = this.#set.startRanges;
    for (const u of read) {
      const c = u.strategy.covers;
      if (!u.running || !c || this.#mappings.every((m) => c.call(u.strategy, m))) continue;
      this.#set.stopUnit(u);
      try {
        u.strategy.start(wanted);
        u.running = true;
        u.allDirtyNext = true;
        u.rearmed = true;
        this.#set.startRanges = wanted;
        this.#events.record(
          "re-armed",
          u.id,
          `logging re-armed over the ${wanted.length} IOVA range(s) mapped now; everything it covers is reported at the next sync`,
        );
      } catch (e) {
        this.#events.record(
          "re-arm-refused",
          u.id,
          `re-arming over the mapped IOVA space was refused (${message(e)}): back on the old ranges; mappings outside them stay reported dirty`,
          errnoOf(e),
        );
        const now = this.#set.startRanges;
        this.#set.startRanges = before;
        this.#set.restart(u);
        this.#set.startRanges = now;
        u.rearmed = true;
      }
    }
  }

  /**
   * vIOMMU with onWindow: the finished GPA report, handed over window by window (guest RAM cut
   * into windows of #windowBytes, as without a vIOMMU), each a fresh bitmap freed after the call.
   */
  #handOverGpaWindows(onWindow: (window: Bitmap) => void): void {
    const report = this.#report!;
    for (const w of this.#planner.gpaWindows()) {
      const win = this.#windowBitmap(w);
      try {
        const [first, n] = this.#bitSpan(report, w);
        win.orFrom(report, first, Number((BigInt(first) * this.#pageSize - w.iova) / this.#pageSize), n);
        onWindow(win);
      } finally {
        win.free();
      }
    }
  }

  /**
   * Whether untracked mappings should be re-armed over now. "re-arm": always. "adaptive": ski
   * rental. Reporting untracked mappings dirty costs their pages on every sync (the rent); a re-arm
   * costs every mapped page once (the purchase). Keep renting until the rent paid since the last
   * re-arm reaches the purchase price, then buy: never more than twice what the better of the
   * other two policies reports, whatever the mappings' lifetimes (bench/untracked-policy.ts).
   */
  #rearmDue(): boolean {
    if (this.#untrackedPolicy === "report-dirty") return false;
    if (this.#untrackedPolicy === "re-arm") return true;
    let mapped = 0n;
    for (const m of this.#mappings) {
      mapped += m.length;
      if (m.untracked) this.#untrackedRent += m.length;
    }
    if (this.#untrackedRent < mapped) return false;
    this.#untrackedRent = 0n;
    return true;
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
    const xlat = this.#requireViommu("map");
    checkAligned("map", this.#pageSize, iova, gpa, length);
    if (!this.#memory.some((m) => gpa >= m.iova && gpa + length <= m.iova + m.length))
      throw new RangeError("map: the gpa range is not inside one guest RAM section");
    // Overlap is refused before the kernel sees it; then the kernel, then the table, so that a map
    // the kernel refuses leaves no trace (xlat.unmap would retire it, not delete it: it would
    // keep translating, and a later IOVA onto the same guest page would break the copy).
    // Mappings are kept sorted by IOVA (and disjoint): the neighbours of the insertion point are
    // the only ones that can overlap. A scan would make 10,000 maps quadratic.
    const at = this.#insertionPoint(iova);
    const clash = [this.#mappings[at - 1], this.#mappings[at]].find(
      (m) => m !== undefined && m.iova < iova + length && iova < m.iova + m.length,
    );
    if (clash)
      throw new RangeError(
        `map: ${hexRange(iova, length)} overlaps the mapping ${hexRange(clash.iova, clash.length)}`,
      );
    this.#viommu?.mapper?.map(iova, gpa, length);
    try {
      xlat.map(iova, gpa, length);
    } catch (e) {
      this.#viommu?.mapper?.unmap(iova, length); // the table refused (out of memory): undo the kernel's
      throw e;
    }
    // Before start() nothing logs yet: start() takes every mapping into what it logs.
    const untracked = this.#started && this.#unseen({ iova, length });
    if (untracked)
      this.#events.record(
        "untracked-mapping",
        "viommu",
        this.#untrackedPolicy === "re-arm"
          ? "mapping outside the logged IOVA space: reported dirty until logging is re-armed over it at the next sync"
          : "mapping outside the logged IOVA space: reported dirty on every sync, and once more after it is unmapped",
        undefined,
        { iova, length },
      );
    this.#mappings.splice(at, 0, { iova, gpa, length, untracked });
    this.#mapGen++;
    if (untracked) this.#untracked++;
  }

  unmap(iova: bigint, length: bigint): void {
    this.#assertOpen();
    this.#requireViommu("unmap");
    checkAligned("unmap", this.#pageSize, iova, 0n, length);
    const end = iova + length;
    const hits = this.#mappings
      .filter((m) => m.iova < end && iova < m.iova + m.length)
      .sort((a, b) => cmp(a.iova, b.iova));
    if (hits.length === 0) return;
    // IOMMU strategies read a mapping's bits as part of its unmap (still after degrading to
    // all-dirty: the kernel unmap stays theirs); otherwise the mapper unmaps.
    const reader = this.#started ? this.#set.units.find((u) => u.running && u.origin.unmapDirty) : undefined;
    if (reader || this.#viommu?.mapper) {
      // The kernel unmaps whole mappings only (type1 v2: EINVAL; iommufd: ENOENT, perhaps after
      // unmapping others): refuse before anything changes, so tracker and kernel keep agreeing.
      const cut = hits.find((m) => m.iova < iova || m.iova + m.length > end);
      if (cut)
        throw new RangeError(
          `unmap: ${hexRange(iova, length)} cuts the mapping ${hexRange(cut.iova, cut.length)}; the kernel unmaps whole mappings only`,
        );
      // Whole mappings, in chunks spanning at most a window: a whole-address-space unmap becomes
      // bounded UNMAPs (type1's bitmap is limited to 256 MiB, 8 TiB at 4 KiB) and bounded
      // scratch bitmaps. Each chunk that succeeds is recorded before the next is tried.
      const done: IovaRange[] = [];
      for (const chunk of chunksOf(hits, this.#windowBytes)) {
        try {
          this.#unmapWhole(chunk, reader);
        } catch (e) {
          if (done.length === 0) throw e;
          throw new UnmapError(iova, length, done, e);
        }
        done.push(...chunk.map((m) => ({ iova: m.iova, length: m.length })));
      }
      return;
    }
    // The caller unmaps in the kernel itself (device logging without a mapper): bookkeeping only.
    this.#forget(iova, length, hits, this.#started);
  }

  /** Unmap `hits` (whole mappings, sorted) in the kernel, keeping their dirty bits; then forget them. */
  #unmapWhole(hits: readonly Mapping[], reader: Unit | undefined): void {
    const lo = hits[0]!.iova;
    const last = hits[hits.length - 1]!;
    const length = last.iova + last.length - lo;
    if (reader?.origin.unmapDirty) {
      const scratch = this.#windowBitmap({ iova: lo, length });
      try {
        let r: { unmapped: bigint; read: boolean; error?: unknown };
        try {
          r = reader.origin.unmapDirty(lo, length, hits, scratch);
        } catch (e) {
          // The unmap itself failed: the mappings stay, and stay tracked.
          this.#events.record(
            "unmap-failed",
            reader.id,
            `unmap failed, mappings kept: ${message(e)}`,
            errnoOf(e),
            {
              iova: lo,
              length,
            },
          );
          throw e;
        }
        if (r.read)
          this.#translate(scratch, this.#carryBitmap()); // while the mappings still translate
        else {
          this.#events.record(
            "unmap-failed",
            reader.id,
            `reading the dirty bits with the unmap failed (${message(r.error)}): unmapped without them, every page of the mappings reported dirty`,
            errnoOf(r.error),
            { iova: lo, length },
          );
          for (const m of hits) setRange(this.#carryBitmap(), m.gpa, m.length);
          reader.allDirtyNext = true;
        }
        this.#carryDirty = true;
        const mapped = hits.reduce((n, m) => n + m.length, 0n);
        if (r.unmapped !== mapped)
          this.#events.record(
            "unmap-mismatch",
            reader.id,
            `the kernel unmapped 0x${r.unmapped.toString(16)} bytes where the tracker had 0x${mapped.toString(16)} mapped: something else maps there`,
            undefined,
            { iova: lo, length },
          );
      } finally {
        scratch.free();
      }
    } else {
      // Throws with nothing changed: the mappings are still there and still tracked.
      this.#viommu?.mapper?.unmap(lo, length);
    }
    // Bits read with the unmap are in the carry already: nothing left to translate later.
    this.#forget(lo, length, hits, this.#started && !reader);
  }

  /**
   * The kernel no longer maps [iova, iova + length) (`hits` are the mappings it touched): drop them
   * from the table. With `keepTranslating` (device logs may still hold bits for these IOVAs) the
   * mappings keep translating (retired) until every unit has read its log; else (not started, or
   * an IOMMU strategy read the bits with the unmap) they go now, unless older retired mappings
   * still wait (retire() drops them all at once). What no log saw (untracked) is reported at the
   * next sync.
   */
  #forget(iova: bigint, length: bigint, hits: readonly Mapping[], keepTranslating: boolean): void {
    for (const m of hits) {
      if (!m.untracked) continue;
      const lo = max(m.iova, iova);
      const hi = min(m.iova + m.length, iova + length);
      setRange(this.#carryBitmap(), m.gpa + (lo - m.iova), hi - lo);
      this.#carryDirty = true;
    }
    const removed = this.#cutMappings(iova, length);
    this.#mapGen++;
    this.#xlat!.unmap(iova, length);
    if (keepTranslating) this.#retired.push(...removed);
    else if (this.#retired.length === 0) this.#xlat!.retire();
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
    this.#carry?.free();
    this.#carry = undefined;
    this.#carryDirty = false;
    this.#xlat?.free();
    this.#xlat = undefined;
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

  #requireViommu(op: string): XlatTable {
    if (!this.#xlat) throw new TrackerStateError(`${op}: the tracker was created without a vIOMMU`);
    return this.#xlat;
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
      if (copy) this.#xlat!.clearUnmappedGpa(this.#report);
      else if (this.#xlat) this.#report.fill(false);
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
    const viommu = this.#xlat
      ? { gen: this.#mapGen, mappings: () => [...this.#mappings, ...this.#retired] }
      : undefined;
    return this.#planner.plan(this.#set.units, viommu);
  }

  #carryBitmap(): Bitmap {
    this.#carry ??= this.#core.bitmap({
      nbits: Number((this.#gpaEnd + this.#pageSize - 1n) / this.#pageSize),
      pageSize: this.#pageSize,
      base: 0n,
    });
    return this.#carry;
  }

  /** [start, n] of the bits of `b` that window `w` covers. */
  #bitSpan(b: Bitmap, w: IovaRange): [number, number] {
    const lo = max(w.iova, b.base);
    const end = b.base + BigInt(b.nbits) * b.pageSize;
    const hi = w.iova + w.length < end ? w.iova + w.length : end;
    if (hi <= lo) return [0, 0];
    const first = Number((lo - b.base) / b.pageSize);
    return [first, Number((hi - b.base + b.pageSize - 1n) / b.pageSize) - first];
  }

  /** Report everything unit `u` covers in window `w` (its pieces; with a vIOMMU, in IOVA space). */
  #markAll(w: Window, target: Bitmap): void {
    for (const piece of w.pieces) setRange(target, piece.iova, piece.length);
  }

  /** Mappings outside the logged space are always dirty. */
  #markUntracked(target: Bitmap): void {
    if (this.#untracked === 0) return; // the usual case: no scan of thousands of mappings
    for (const m of this.#mappings) if (m.untracked) setRange(target, m.iova, m.length);
  }

  /**
   * Translate into GPA space (ORing, or with `copy` writing the mapped pages). `exact`: no dirty
   * page fell on no mapping or outside gpaBits. With `copy`, `copiedPages` are the dirty pages
   * written and `windowPages` all dirty pages of iovaBits (copied, outside or on no mapping).
   */
  #translate(
    iovaBits: Bitmap,
    gpaBits: Bitmap,
    copy = false,
  ): { exact: boolean; copiedPages: number; windowPages: number } {
    const { unmappedPages, outsidePages, copiedPages } = this.#xlat!.translate(iovaBits, gpaBits, { copy });
    // A dirty IOVA on no mapping has no guest page behind it: the IOMMU faulted that DMA.
    if (unmappedPages > 0)
      this.#events.record(
        "unmapped-dirty",
        "viommu",
        `${unmappedPages} dirty IOVA page(s) on no mapping (IOMMU faults; no guest page)`,
      );
    const copied = Number(copiedPages ?? 0);
    return {
      exact: Number(unmappedPages) === 0 && Number(outsidePages ?? 0) === 0,
      copiedPages: copied,
      windowPages: copied + Number(unmappedPages) + Number(outsidePages ?? 0),
    };
  }

  #countSections(b: Bitmap, into: number[]): void {
    for (const [i, s] of this.#memory.entries()) {
      const [first, n] = this.#bitSpan(b, s);
      if (n > 0) into[i]! += b.count(first, n);
    }
  }

  /** Split our list of mappings at [iova, iova + length) and remove the inside parts. */
  #cutMappings(iova: bigint, length: bigint): Mapping[] {
    const end = iova + length;
    const removed: Mapping[] = [];
    const keep: Mapping[] = [];
    for (const m of this.#mappings) {
      const mEnd = m.iova + m.length;
      if (mEnd <= iova || m.iova >= end) {
        keep.push(m);
        continue;
      }
      const lo = m.iova > iova ? m.iova : iova;
      const hi = min(mEnd, end);
      removed.push({ iova: lo, gpa: m.gpa + (lo - m.iova), length: hi - lo, untracked: m.untracked });
      if (m.iova < lo) keep.push({ ...m, length: lo - m.iova });
      if (hi < mEnd)
        keep.push({ iova: hi, gpa: m.gpa + (hi - m.iova), length: mEnd - hi, untracked: m.untracked });
    }
    this.#mappings = keep; // still sorted by IOVA: pieces replace their mapping in place
    this.#untracked = keep.filter((m) => m.untracked).length;
    return removed;
  }
}

/**
 * Consecutive whole mappings (sorted) grouped so that each group spans at most `span` bytes; a
 * mapping larger than that is a group of its own.
 */
function chunksOf<T extends IovaRange>(sorted: readonly T[], span: bigint): T[][] {
  const out: T[][] = [];
  for (const m of sorted) {
    const cur = out[out.length - 1];
    if (cur && m.iova + m.length - cur[0]!.iova <= span) cur.push(m);
    else out.push([m]);
  }
  return out;
}

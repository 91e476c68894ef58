// The vIOMMU state: the guest's IOVA -> GPA mappings (active, and retired ones that still
// translate until every log has been read past their removal), the translation table, the carry
// bitmap of bits read at unmap time, and the mappings a device log cannot see (untracked) with
// the policy for them (report dirty, re-arm, adaptive). Nothing here may lose a page: what no log
// saw is reported dirty.

import { hex, bigMax as max, bigMin as min } from "@vfio-dirty/vfio-adapter/util";
import type { Bitmap, BitmapCore, XlatTable } from "./bitmap.ts";
import type { ResolvedConfig } from "./config.ts";
import type { EventLog } from "./events.ts";
import type { IovaRange, MemorySection } from "./ranges.ts";
import { rearmUnits } from "./rearm.ts";
import { setRange } from "./strategies/all-dirty.ts";
import type { DmaMapper } from "./strategy.ts";
import { checkAligned, cmp, errnoOf, hexRange, message } from "./tracker-helpers.ts";
import { type TrackerConfig, UnmapError, type UntrackedPolicy } from "./types.ts";
import type { Unit, UnitSet } from "./units.ts";
import { chunksOf, cutMappings, insertionPoint, type Mapping, viommuStartRanges } from "./viommu-mappings.ts";
import type { PlannedMapping, WindowPlanner } from "./window-plan.ts";

export class ViommuState {
  /** The wasm translation table (ranges; our own list below keeps the mappings, never bits). */
  readonly xlat: XlatTable;
  readonly #core: BitmapCore;
  readonly #pageSize: bigint;
  readonly #windowBytes: bigint;
  readonly #memory: readonly MemorySection[];
  readonly #sections: readonly MemorySection[];
  readonly #gpaEnd: bigint;
  readonly #untrackedPolicy: UntrackedPolicy;
  readonly #aperture: readonly IovaRange[] | undefined;
  readonly #mapper: DmaMapper | undefined;
  readonly #set: UnitSet;
  readonly #events: EventLog;
  readonly #planner: WindowPlanner;
  /** Active vIOMMU mappings, sorted by IOVA (map() inserts in order; cuts keep it). */
  #mappings: Mapping[] = [];
  /** Removed mappings still translating until every unit has read its log. */
  readonly #retired: Mapping[] = [];
  /** GPA-space bits read at unmap time, reported at the next sync. */
  #carry: Bitmap | undefined;
  /** The carry bitmap got bits since the last sync (else the sync skips merging it: 2 passes). */
  #carryDirty = false;
  /** Bumped whenever the set of mappings (active or retired) changes. */
  #mapGen = 0;
  /** How many active mappings some unit's log cannot see (see refreshUntracked). */
  #untracked = 0;
  /** "adaptive": bytes of untracked mappings reported dirty since the last re-arm (rearmDue). */
  #untrackedRent = 0n;

  constructor(
    core: BitmapCore,
    viommu: NonNullable<TrackerConfig["viommu"]>,
    config: ResolvedConfig,
    set: UnitSet,
    events: EventLog,
    planner: WindowPlanner,
  ) {
    this.#core = core;
    this.#pageSize = config.pageSize;
    this.#windowBytes = config.windowBytes;
    this.#memory = config.memory;
    this.#sections = config.sections;
    this.#gpaEnd = config.gpaEnd;
    this.#untrackedPolicy = config.untrackedPolicy;
    this.#aperture = viommu.aperture;
    this.#mapper = viommu.mapper;
    this.#set = set;
    this.#events = events;
    this.#planner = planner;
    this.xlat = core.xlatTable(config.pageSize);
  }

  /** How many active mappings some running unit's log cannot see. */
  get untracked(): number {
    return this.#untracked;
  }

  /** What the window plan is cut from: every mapping that translates, and its generation. */
  planSource(): { readonly gen: number; readonly mappings: () => readonly PlannedMapping[] } {
    return { gen: this.#mapGen, mappings: () => [...this.#mappings, ...this.#retired] };
  }

  /** OR the bits read at unmap time since the last sync into `report`; false when there were none. */
  mergeCarry(report: Bitmap): boolean {
    if (!this.#carry || !this.#carryDirty) return false;
    this.#core.convert(this.#carry, report);
    return true;
  }

  /** The report is complete: drop the unmap-time bits that fed it. */
  clearCarry(): void {
    if (!this.#carryDirty) return;
    this.#carry!.fill(false);
    this.#carryDirty = false;
  }

  /** Every unit has read its log past the retired mappings' removal: they stop translating. */
  retireRead(): void {
    if (this.#retired.length === 0) return;
    this.xlat.retire();
    this.#retired.length = 0;
    this.#mapGen++;
  }

  free(): void {
    this.#carry?.free();
    this.#carry = undefined;
    this.#carryDirty = false;
    this.xlat.free();
  }

  /** What device logging starts on (see viommuStartRanges). */
  startRanges(): readonly IovaRange[] {
    return viommuStartRanges(this.#mappings, this.#aperture, this.#sections);
  }

  /** Whether some running unit's log cannot see DMA writes in `r` (device logging outside its ranges). */
  #unseen(r: IovaRange): boolean {
    return this.#set.units.some((u) => u.running && u.strategy.covers !== undefined && !u.strategy.covers(r));
  }

  /** Recompute which active mappings are untracked (after a start, restart, fallback or re-arm). */
  refreshUntracked(): void {
    this.#set.changed = false;
    let n = 0;
    for (const [i, m] of this.#mappings.entries()) {
      const untracked = this.#unseen(m);
      if (untracked !== m.untracked) this.#mappings[i] = { ...m, untracked };
      if (untracked) n++;
    }
    this.#untracked = n;
  }

  /** Re-arm what `read` logs over the space mapped now (see rearmUnits in rearm.ts). */
  rearm(read: readonly Unit[]): void {
    rearmUnits(read, this.#mappings, this.#set, this.#events);
  }

  /**
   * Whether untracked mappings should be re-armed over now. "re-arm": always. "adaptive": ski
   * rental. Reporting untracked mappings dirty costs their pages on every sync (the rent); a re-arm
   * costs every mapped page once (the purchase). Keep renting until the rent paid since the last
   * re-arm reaches the purchase price, then buy: never more than twice what the better of the
   * other two policies reports, whatever the mappings' lifetimes (bench/untracked-policy.ts).
   */
  rearmDue(): boolean {
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

  /** A new mapping iova -> gpa (Tracker.map). */
  map(iova: bigint, gpa: bigint, length: bigint, started: boolean): void {
    const xlat = this.xlat;
    checkAligned("map", this.#pageSize, iova, gpa, length);
    if (!this.#memory.some((m) => gpa >= m.iova && gpa + length <= m.iova + m.length))
      throw new RangeError("map: the gpa range is not inside one guest RAM section");
    // Overlap is refused before the kernel sees it; then the kernel, then the table, so that a map
    // the kernel refuses leaves no trace (xlat.unmap would retire it, not delete it: it would
    // keep translating, and a later IOVA onto the same guest page would break the copy).
    // Mappings are kept sorted by IOVA (and disjoint): the neighbours of the insertion point are
    // the only ones that can overlap. A scan would make 10,000 maps quadratic.
    const at = insertionPoint(this.#mappings, iova);
    const clash = [this.#mappings[at - 1], this.#mappings[at]].find(
      (m) => m !== undefined && m.iova < iova + length && iova < m.iova + m.length,
    );
    if (clash)
      throw new RangeError(
        `map: ${hexRange(iova, length)} overlaps the mapping ${hexRange(clash.iova, clash.length)}`,
      );
    this.#mapper?.map(iova, gpa, length);
    try {
      xlat.map(iova, gpa, length);
    } catch (e) {
      this.#mapper?.unmap(iova, length); // the table refused (out of memory): undo the kernel's
      throw e;
    }
    // Before start() nothing logs yet: start() takes every mapping into what it logs.
    const untracked = started && this.#unseen({ iova, length });
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

  /** Remove mappings in [iova, iova + length), keeping their dirty bits (Tracker.unmap). */
  unmap(iova: bigint, length: bigint, started: boolean): void {
    checkAligned("unmap", this.#pageSize, iova, 0n, length);
    const end = iova + length;
    const hits = this.#mappings
      .filter((m) => m.iova < end && iova < m.iova + m.length)
      .sort((a, b) => cmp(a.iova, b.iova));
    if (hits.length === 0) return;
    // IOMMU strategies read a mapping's bits as part of its unmap (still after degrading to
    // all-dirty: the kernel unmap stays theirs); otherwise the mapper unmaps.
    const reader = started ? this.#set.units.find((u) => u.running && u.origin.unmapDirty) : undefined;
    if (reader || this.#mapper) {
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
          this.#unmapWhole(chunk, reader, started);
        } catch (e) {
          if (done.length === 0) throw e;
          throw new UnmapError(iova, length, done, e);
        }
        done.push(...chunk.map((m) => ({ iova: m.iova, length: m.length })));
      }
      return;
    }
    // The caller unmaps in the kernel itself (device logging without a mapper): bookkeeping only.
    this.#forget(iova, length, hits, started);
  }

  /** Unmap `hits` (whole mappings, sorted) in the kernel, keeping their dirty bits; then forget them. */
  #unmapWhole(hits: readonly Mapping[], reader: Unit | undefined, started: boolean): void {
    const lo = hits[0]!.iova;
    const last = hits[hits.length - 1]!;
    const length = last.iova + last.length - lo;
    if (reader?.origin.unmapDirty) {
      const scratch = this.#planner.bitmap({ iova: lo, length });
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
          this.translate(scratch, this.#carryBitmap()); // while the mappings still translate
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
            `the kernel unmapped ${hex(r.unmapped)} bytes where the tracker had ${hex(mapped)} mapped: something else maps there`,
            undefined,
            { iova: lo, length },
          );
      } finally {
        scratch.free();
      }
    } else {
      // Throws with nothing changed: the mappings are still there and still tracked.
      this.#mapper?.unmap(lo, length);
    }
    // Bits read with the unmap are in the carry already: nothing left to translate later.
    this.#forget(lo, length, hits, started && !reader);
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
    const { keep, removed } = cutMappings(this.#mappings, iova, length);
    this.#mappings = keep; // still sorted by IOVA: pieces replace their mapping in place
    this.#untracked = keep.filter((m) => m.untracked).length;
    this.#mapGen++;
    this.xlat.unmap(iova, length);
    if (keepTranslating) this.#retired.push(...removed);
    else if (this.#retired.length === 0) this.xlat.retire();
  }

  #carryBitmap(): Bitmap {
    this.#carry ??= this.#core.bitmap({
      nbits: Number((this.#gpaEnd + this.#pageSize - 1n) / this.#pageSize),
      pageSize: this.#pageSize,
      base: 0n,
    });
    return this.#carry;
  }

  /** Mappings outside the logged space are always dirty. */
  markUntracked(target: Bitmap): void {
    if (this.#untracked === 0) return; // the usual case: no scan of thousands of mappings
    for (const m of this.#mappings) if (m.untracked) setRange(target, m.iova, m.length);
  }

  /**
   * Translate into GPA space (ORing, or with `copy` writing the mapped pages). `exact`: no dirty
   * page fell on no mapping or outside gpaBits. With `copy`, `copiedPages` are the dirty pages
   * written and `windowPages` all dirty pages of iovaBits (copied, outside or on no mapping).
   */
  translate(
    iovaBits: Bitmap,
    gpaBits: Bitmap,
    copy = false,
  ): { exact: boolean; copiedPages: number; windowPages: number } {
    const { unmappedPages, outsidePages, copiedPages } = this.xlat.translate(iovaBits, gpaBits, { copy });
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
}

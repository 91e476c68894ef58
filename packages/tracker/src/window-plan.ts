// The window plan: the IOVA space a sync reads, cut into windows of bounded size, each listing
// the pieces to query. Like the kernel's iova_bitmap.c, the window is an object its callers
// iterate, never an index; the plan is cut once and reused until the mappings or units change.

import { alignUp, bigMax as max, bigMin as min } from "@vfio-dirty/vfio-adapter/util";
import type { Bitmap, BitmapCore } from "./bitmap.ts";
import { type IovaRange, type MemorySection, mergeOverlapping } from "./ranges.ts";
import type { DirtyStrategy } from "./strategy.ts";
import { bitsOf, cmp } from "./tracker-helpers.ts";

/** A cut of the IOVA space to read, with what the cut allows (iterate it for the windows). */
export interface WindowPlan extends Iterable<Window> {
  readonly windows: readonly Window[];
  /** vIOMMU: translation is one-to-one and each piece's mappings lie in one section (placeInSections). */
  readonly exact: boolean;
  /** vIOMMU: translation may copy (no clear of the report first): exact, and windows disjoint. */
  readonly copy: boolean;
}

/** What a vIOMMU plan is cut from: every mapping that translates (active and retired). */
export interface PlannedMapping extends IovaRange {
  readonly gpa: bigint;
}

/**
 * Plans the windows to query: IOVA space in use (guest memory, or the vIOMMU's mappings), cut into
 * windows of at most windowBytes aligned to whole bitmap words. Each window lists the pieces to
 * query (whole ranges when a strategy refuses to cut one). Also makes each window's bitmap.
 */
export class WindowPlanner {
  readonly #core: BitmapCore;
  readonly #pageSize: bigint;
  readonly #windowBytes: bigint;
  readonly #memory: readonly MemorySection[];
  #cache:
    | {
        gen: number;
        whole: boolean;
        align: bigint;
        strategies: readonly { readonly strategy: DirtyStrategy }[];
        plan: WindowPlan;
      }
    | undefined;

  constructor(core: BitmapCore, pageSize: bigint, windowBytes: bigint, memory: readonly MemorySection[]) {
    this.#core = core;
    this.#pageSize = pageSize;
    this.#windowBytes = windowBytes;
    this.#memory = memory;
  }

  /** Drop the cached cut (the unit set was replaced). */
  invalidate(): void {
    this.#cache = undefined;
  }

  /**
   * The plan for `units` over guest memory, or with a vIOMMU over `mappings` (`gen` changes
   * whenever they do).
   */
  plan(
    units: readonly { readonly strategy: DirtyStrategy }[],
    viommu: { readonly gen: number; readonly mappings: () => readonly PlannedMapping[] } | undefined,
  ): WindowPlan {
    const whole = units.some((u) => u.strategy.wholeRanges);
    // Windows start and end on whole bitmap words and on whole pages of every unit's clear
    // granule (a device's logging page): a page the kernel clears whole never straddles two
    // windows, whose queries would each clear it and keep only their own part.
    const align = units.reduce((a, u) => max(a, u.strategy.clearGranule ?? 0n), 64n * this.#pageSize);
    // Cutting 10,000 vIOMMU mappings into windows costs more than a sync's bit work: reuse the
    // cut until the mappings change.
    const gen = viommu?.gen ?? 0;
    const c = this.#cache;
    if (c && c.gen === gen && c.whole === whole && c.align === align && c.strategies === units) return c.plan;
    const all = viommu ? viommu.mappings() : [];
    const space: IovaRange[] = viommu
      ? all.map((m) => ({ iova: m.iova, length: m.length }))
      : this.#memory.map((s) => ({ iova: s.iova, length: s.length }));
    // Sections are disjoint (checked at creation) and kept apart, so a piece lies in one section.
    const windows = cutWindows(
      viommu ? mergeOverlapping(space) : space,
      alignUp(this.#windowBytes, align),
      align,
      whole,
    );
    const widen = units.reduce(
      (a, u) => (u.strategy.widensQueries ? max(a, u.strategy.clearGranule ?? 0n) : a),
      0n,
    );
    // Any widening past a tracking page can set bits outside the pieces (a section's last logging
    // page), however the windows are aligned.
    if (widen > this.#pageSize) for (const w of windows) w.slack = slackOf(w, widen);
    const exact = viommu !== undefined && placeInSections(windows, all, this.#memory);
    // Copying translation writes every mapped GPA page from the one window its IOVA lies in, so
    // windows must not overlap: a page in two windows' bitmaps would be copied twice, the second
    // time from a window that did not query it (a zero: a lost page). `exact` means no two
    // mappings share a GPA page, which copying needs too.
    const copy = exact && windowsDisjoint(windows);
    const plan: WindowPlan = { windows, exact, copy, [Symbol.iterator]: () => windows[Symbol.iterator]() };
    this.#cache = { gen, whole, align, strategies: units, plan };
    return plan;
  }

  /**
   * Guest RAM cut into windows of windowBytes, as without a vIOMMU (a vIOMMU report handed over
   * window by window).
   */
  gpaWindows(): Window[] {
    return cutWindows(this.#memory, this.#windowBytes, 64n * this.#pageSize, false);
  }

  /** A fresh, empty bitmap for `w` (any range); the caller frees it. */
  bitmap(w: IovaRange): Bitmap {
    return this.#core.bitmap({ nbits: bitsOf(w, this.#pageSize), pageSize: this.#pageSize, base: w.iova });
  }
}

export interface Window extends IovaRange {
  readonly pieces: readonly IovaRange[];
  /**
   * What queries widened to whole clear granules may set outside the pieces (the rest of a
   * logging page a piece only partly covers): cleared after the queries, so no bit lands where
   * no memory (or, with a vIOMMU, no mapping) is. Undefined when nothing widens.
   */
  slack?: IovaRange[];
  /** vIOMMU: the GPA section every mapping under each piece lies in (set by placeInSections). */
  pieceSections?: number[];
}

/**
 * vIOMMU: can the GPA report's per-section counts be summed from the IOVA pieces' counts? Yes
 * when translation is one-to-one (no two mappings, active or retired, share an IOVA page or a GPA
 * page: then every dirty IOVA page on a mapping is exactly one GPA page) and the mappings under
 * each piece all lie in one RAM section. Sets each window's pieceSections when it returns true.
 * Run when the mappings change, not per sync.
 */
export function placeInSections(
  windows: readonly Window[],
  mappings: readonly { readonly iova: bigint; readonly gpa: bigint; readonly length: bigint }[],
  sections: readonly IovaRange[],
): boolean {
  const byGpa = [...mappings].sort((a, b) => cmp(a.gpa, b.gpa));
  for (let i = 1; i < byGpa.length; i++)
    if (byGpa[i]!.gpa < byGpa[i - 1]!.gpa + byGpa[i - 1]!.length) return false;
  const byIova = [...mappings].sort((a, b) => cmp(a.iova, b.iova));
  for (let i = 1; i < byIova.length; i++)
    if (byIova[i]!.iova < byIova[i - 1]!.iova + byIova[i - 1]!.length) return false;
  const sectionOf = byIova.map((m) =>
    sections.findIndex((s) => m.gpa >= s.iova && m.gpa + m.length <= s.iova + s.length),
  );
  // Pieces come in IOVA order, as do the mappings: one sweep.
  let j = 0;
  const placed: number[][] = [];
  for (const w of windows) {
    const out: number[] = [];
    for (const p of w.pieces) {
      const end = p.iova + p.length;
      while (j < byIova.length && byIova[j]!.iova + byIova[j]!.length <= p.iova) j++;
      let section = -1;
      for (let k = j; k < byIova.length && byIova[k]!.iova < end; k++) {
        const sk = sectionOf[k]!;
        if (sk < 0 || (section >= 0 && sk !== section)) return false;
        section = sk;
      }
      if (section < 0) return false;
      out.push(section);
    }
    placed.push(out);
  }
  for (const [i, w] of windows.entries()) w.pieceSections = placed[i]!;
  return true;
}

/**
 * The parts of `align`-sized pages that a window's pieces touch but do not cover: where a query
 * widened to whole pages sets bits no piece asked for. Pieces come sorted and disjoint.
 */
export function slackOf(w: Window, align: bigint): IovaRange[] {
  const out: IovaRange[] = [];
  const add = (lo: bigint, hi: bigint) => {
    if (hi > lo) out.push({ iova: lo, length: hi - lo });
  };
  const ps = w.pieces;
  for (const [i, p] of ps.entries()) {
    const prevEnd = i > 0 ? ps[i - 1]!.iova + ps[i - 1]!.length : w.iova;
    add(max((p.iova / align) * align, prevEnd), p.iova);
    const end = p.iova + p.length;
    const next = i + 1 < ps.length ? ps[i + 1]!.iova : w.iova + w.length;
    add(end, min(alignUp(end, align), next));
  }
  return out;
}

/** The one section all of a window's mappings lie in (placeInSections), else -1. */
export function singleSection(w: Window): number {
  const s = w.pieceSections;
  if (!s || s.length === 0) return -1;
  return s.every((x) => x === s[0]) ? s[0]! : -1;
}

/** Whether no two windows' bitmaps cover a common IOVA (windows come in IOVA order). */
export function windowsDisjoint(windows: readonly Window[]): boolean {
  for (let i = 1; i < windows.length; i++)
    if (windows[i]!.iova < windows[i - 1]!.iova + windows[i - 1]!.length) return false;
  return true;
}

/**
 * Cut sorted, disjoint ranges into windows of at most `windowBytes` starting on `align`. With
 * `whole`, a range is never cut: it joins a window only if it fits, else it opens its own (which
 * may then be wider than `windowBytes`).
 */
export function cutWindows(
  space: readonly IovaRange[],
  windowBytes: bigint,
  align: bigint,
  whole: boolean,
): Window[] {
  const out: { iova: bigint; length: bigint; pieces: IovaRange[] }[] = [];
  for (const r of space) {
    let at = r.iova;
    const end = r.iova + r.length;
    while (at < end) {
      const cur = out[out.length - 1];
      if (cur && at < cur.iova + windowBytes) {
        const pieceEnd = whole ? end : min(end, cur.iova + windowBytes);
        if (pieceEnd <= cur.iova + windowBytes) {
          cur.pieces.push({ iova: at, length: pieceEnd - at });
          cur.length = alignUp(pieceEnd, align) - cur.iova;
          at = pieceEnd;
          continue;
        }
      }
      const start = (at / align) * align;
      const pieceEnd = whole ? end : min(end, start + windowBytes);
      out.push({
        iova: start,
        length: alignUp(pieceEnd, align) - start,
        pieces: [{ iova: at, length: pieceEnd - at }],
      });
      at = pieceEnd;
    }
  }
  return out;
}

/** Clear the bits of `b` inside [r.iova, r.iova + r.length) (whole pages only: r is page aligned). */
export function clearRange(b: Bitmap, r: IovaRange): void {
  const end = b.base + BigInt(b.nbits) * b.pageSize;
  const lo = max(r.iova, b.base);
  const hi = min(r.iova + r.length, end);
  if (hi > lo) b.clear(Number((lo - b.base) / b.pageSize), Number((hi - lo) / b.pageSize));
}

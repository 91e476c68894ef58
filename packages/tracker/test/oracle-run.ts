// Runs one oracle scenario (oracle-scenario.ts) on the simulated host through the public API and
// checks the never-lose rule against the test's own record (oracle-model.ts), never against the
// tracker's accounting:
//
// - The test issues every DMA write itself (sim.dmaWrite) and translates it through its own model
//   of what is mapped at that instant: a write to an unmapped IOVA faults and writes no guest page.
//   The bytes the host says landed must be what the model says.
// - After every sync, every guest page written before it must be in that report or an earlier one
//   after the write; a unit whose devices opted out of pre-copy tracking may defer it to the first
//   sync in stop-copy. Every scenario ends with a stop-copy sync, which must hold everything owed.
// - The host's ground truth (sim.writtenSince, GPA and IOVA pages per device) must agree with the
//   model at every sync: a disagreement is a failure too (the model, the host or the tracker's
//   map/unmap contract is wrong).
// - Report counts agree with the bitmap (total and per section, nothing outside RAM), `into`
//   holds what the report holds, windows OR up to the counts; tracking is stopped in the kernel
//   right after close(), before the test closes any fd.
//
// A failure throws OracleFailure with the kind, the detail and the trace of what ran (addresses in
// hex), which fast-check prints beside the shrunk scenario.

import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import type { SimHost } from "@vfio-dirty/vfio-adapter/sim";
import type { Bitmap, BitmapCore } from "../src/bitmap.ts";
import { type OpenOptions, openTracker } from "../src/open.ts";
import type { TrackingTarget } from "../src/probe.ts";
import type { IovaRange } from "../src/ranges.ts";
import { type DirtyReport, type Tracker, UnmapError } from "../src/tracker.ts";
import { hugeIoptes } from "./oracle-hardware.ts";
import { DmaModel, type ModelMapping, OwedPages, pageOf } from "./oracle-model.ts";
import {
  bdfOf,
  type FaultKind,
  type GpaDraw,
  type MapDraw,
  type Op,
  type OracleScenario,
  oracleProfile,
  ramOf,
  type SyncMode,
  type UnmapDraw,
  type WriteTarget,
  ZONES,
} from "./oracle-scenario.ts";
import { openSim, type SimSession, simProfile } from "./sim-helpers.ts";

const PAGE = 4096n;
const MIB = 1n << 20n;
/** What the sim's IOMMU (VT-d like) maps: everything below 2^48 except the MSI window. */
const USABLE_IOVA: readonly IovaRange[] = [
  { iova: 0n, length: 0xfee0_0000n },
  { iova: 0xfef0_0000n, length: (1n << 48n) - 0xfef0_0000n },
];

export type FailureKind =
  | "lost-page"
  | "host-disagrees"
  | "counts"
  | "contract"
  | "tracking-left-running"
  | "threw";

export class OracleFailure extends Error {
  override name = "OracleFailure";
  constructor(
    readonly kind: FailureKind,
    readonly detail: string,
    readonly trace: readonly string[],
  ) {
    super(`${kind}: ${detail}\n--- trace ---\n${trace.join("\n")}`);
  }
}

export interface RunOptions {
  /** Wrap what the tracker is given (self-tests: a device or an IOMMU that drops bits). */
  readonly wrapTarget?: (target: TrackingTarget) => TrackingTarget;
  /** Wrap the tracker the checks talk to (self-tests: a report whose counts lie). */
  readonly wrapTracker?: (tracker: Tracker) => Tracker;
  /** Called once the session is open: act behind the tracker's back (self-test of the second opinion). */
  readonly tamper?: (session: SimSession, model: DmaModel) => void;
}

export interface OracleResult {
  /** backend/strategy[+viommu], for the coverage summary. */
  readonly key: string;
  readonly syncs: number;
  /** Page writes that landed, and pages the reports held, summed over syncs. */
  readonly written: number;
  readonly reported: number;
  readonly events: number;
  /** What the scenario really did (a straddling map, an unmap with holes, ...), for coverage. */
  readonly features: ReadonlySet<string>;
  /** What ran, one line per step (addresses in hex). */
  readonly trace: readonly string[];
}

let sharedCore: BitmapCore | undefined;

/** Run one scenario; throws OracleFailure on a lost page or any broken check. */
export function runOracleScenario(s: OracleScenario, opts: RunOptions = {}): OracleResult {
  sharedCore ??= loadBitmapCoreSync();
  return new Run(s, sharedCore, opts).run();
}

/** Whether report bitmap `b` holds 4 KiB guest page `page4k`. */
export function holds(b: Bitmap, page4k: number): boolean {
  const addr = BigInt(page4k) * PAGE;
  if (addr < b.base) return false;
  const bit = (addr - b.base) / b.pageSize;
  return bit < BigInt(b.nbits) && b.test(Number(bit));
}

// --- Internal helpers ---

class Run {
  readonly #s: OracleScenario;
  readonly #core: BitmapCore;
  readonly #opts: RunOptions;
  readonly #ps: bigint;
  readonly #sim: SimHost;
  readonly #ram: IovaRange[];
  readonly #gpaEnd: bigint;
  readonly #model = new DmaModel();
  readonly #owed = new OwedPages();
  readonly #trace: string[] = [];
  readonly #features = new Set<string>();
  readonly #aperture: IovaRange[] | undefined;
  #tracker: Tracker | undefined;
  #started = false;
  #startedAt = 0;
  #lastSync = 0;
  #writes = 0;
  #lastUnmapped: ModelMapping[] = [];
  #mappedAtStart: IovaRange[] | undefined;
  /** Kernel calls the test armed a fault for (one entry per fault), to tell a fair refusal from a broken one. */
  readonly #armed: string[] = [];
  #syncs = 0;
  #written = 0;
  #reported = 0;

  constructor(s: OracleScenario, core: BitmapCore, opts: RunOptions) {
    this.#s = s;
    this.#core = core;
    this.#opts = opts;
    this.#ps = BigInt(s.pageSize);
    const { low, high } = ramOf(s);
    this.#ram = [{ iova: 0n, length: low }];
    if (high > 0n) this.#ram.push({ iova: 4n << 30n, length: high });
    this.#gpaEnd = high > 0n ? (4n << 30n) + high : low;
    this.#sim = simProfile(oracleProfile(s));
    this.#aperture = s.viommu?.aperture ? this.#normalize(s.viommu.aperture) : undefined;
  }

  run(): OracleResult {
    const s = this.#s;
    const session = openSim(this.#sim, s.backend);
    let failure: unknown;
    try {
      // Without a vIOMMU openSim mapped RAM at IOVA = GPA: so does the model.
      if (!s.viommu) for (const r of this.#ram) this.#model.map(r.iova, r.iova, r.length);
      this.#opts.tamper?.(session, this.#model);
      // The IOMMU behind iommufd is a VT-d with superpages: a dirty read that cuts one clears it.
      const vtd = hugeIoptes(
        session.target,
        () => this.#model.mappings,
        () => this.#features.add("iopte-cut"),
      );
      const target = this.#opts.wrapTarget ? this.#opts.wrapTarget(vtd) : vtd;
      const options: OpenOptions = {
        core: this.#core,
        memory: session.memory,
        pageSize: this.#ps,
        enableMigration: "on",
        ignoreBlockers: true,
        devices: Object.fromEntries(
          s.devices.map((d, i) => [
            bdfOf(i),
            { deviceDirtyPageTracking: d.deviceTracking, preCopyDirtyPageTracking: d.preCopy },
          ]),
        ),
        windowBytes: BigInt(s.windowWords) * 64n * this.#ps,
        ...(s.viommu
          ? {
              viommu: true,
              mapper: session.mapper,
              ...(this.#aperture ? { viommuAperture: this.#aperture } : {}),
              ...(s.viommu.untracked ? { viommuUntracked: s.viommu.untracked } : {}),
            }
          : {}),
      };
      const { tracker: opened, choice } = openTracker(target, options);
      const tracker = this.#opts.wrapTracker ? this.#opts.wrapTracker(opened) : opened;
      this.#tracker = tracker;
      this.#log(
        `open ${s.backend}, ${s.viommu ? `vIOMMU, aperture ${this.#aperture ? ranges(this.#aperture) : "none"}, untracked ${s.viommu.untracked ?? "default"}` : "no vIOMMU"}, page 0x${this.#ps.toString(16)}, window 0x${(BigInt(s.windowWords) * 64n * this.#ps).toString(16)}, RAM ${ranges(this.#ram)}: ${choice.strategy}`,
      );
      for (const o of s.before) this.#op(o);
      this.#start();
      for (const o of s.ops) this.#op(o);
      // A migration ends in stop-copy: its sync must hold everything still owed.
      if (tracker.phase !== "stop-copy") this.#phase("stop-copy");
      this.#sync("full");
      this.#compareTruth(this.#startedAt);
    } catch (e) {
      failure = e;
    } finally {
      try {
        this.#tracker?.close();
      } catch (e) {
        failure ??= this.#fail("threw", `close() threw: ${message(e)}`);
      }
      // Checked before the test closes any fd: closing a device fd stops its log in the kernel.
      const active = this.#sim.trackingActive();
      const state = JSON.stringify(this.#sim.trackingState());
      const left = this.#sim.trackingState();
      session.close();
      for (const f of this.#sim.faultLog()) this.#features.add(`fired:${f.op}`);
      // An IOMMU whose STOP kept failing has no last resort the tracker may take (closing the
      // container or iommufd would end a possibly running guest's DMA): it may stay on only with
      // an event that says so. A device log must never stay on: closing its fd stops it.
      const owned = this.#tracker?.events.some(
        (e) =>
          e.kind === "stop-failed" &&
          /still tracking; closing the (container|iommufd) ends it/.test(e.message),
      );
      const iommuOnly = left.device.length === 0;
      if (active && owned && iommuOnly) this.#features.add("iommu-left-tracking-said");
      if (active && !(owned && iommuOnly) && failure === undefined)
        failure = this.#fail(
          "tracking-left-running",
          `after close(): ${state} (events: ${this.#tracker?.events
            .filter((e) => e.kind.includes("stop"))
            .map((e) => `${e.kind} ${e.unit}: ${e.message}`)
            .join("; ")})`,
        );
    }
    if (failure !== undefined) {
      if (failure instanceof OracleFailure) throw failure;
      throw this.#fail("threw", `${message(failure)}\n${(failure as Error)?.stack ?? ""}`);
    }
    const strategies = [...new Set(Object.values(this.#tracker!.strategies))].join("+");
    return {
      key: `${s.backend}/${strategies}${s.viommu ? "+viommu" : ""}`,
      syncs: this.#syncs,
      written: this.#written,
      reported: this.#reported,
      events: this.#tracker!.events.length,
      features: this.#features,
      trace: this.#trace,
    };
  }

  #start(): void {
    const t = this.#tracker!;
    if (this.#s.viommu) {
      this.#features.add(this.#model.mappings.length === 0 ? "no-mapping-at-start" : "mapped-at-start");
      this.#features.add(this.#aperture ? "aperture" : "no-aperture");
      this.#features.add(`untracked:${this.#s.viommu.untracked ?? "default"}`);
    }
    // Without an aperture the tracker logs what is mapped at start(), or guest RAM when nothing is.
    this.#mappedAtStart = this.#model.mappings.length
      ? this.#model.mappings.map((m) => ({ iova: m.iova, length: m.length }))
      : this.#ram;
    try {
      t.start();
    } catch (e) {
      throw this.#fail("threw", `start() threw: ${message(e)}`);
    }
    this.#started = true;
    if (this.#s.startPhase !== "setup") t.setPhase(this.#s.startPhase);
    const logged = this.#sim
      .devices()
      .filter((d) => d.dmaLogging.active)
      .map(
        (d) =>
          `${d.bdf} logs ${d.dmaLogging.ranges.map((r) => `[0x${r.start.toString(16)}, 0x${r.last.toString(16)}]`).join(" ")} at 0x${d.dmaLogging.pageSize!.toString(16)}`,
      );
    this.#log(
      `start(): ${JSON.stringify(t.strategies)}; phase ${t.phase}${logged.length ? `; ${logged.join("; ")}` : ""}`,
    );
    const windowBytes = BigInt(this.#s.windowWords) * 64n * this.#ps;
    for (const d of this.#sim.devices()) {
      const p = d.dmaLogging.pageSize;
      if (!p) continue;
      if (p > windowBytes) this.#features.add("device-page>window");
      if (windowBytes % p !== 0n) this.#features.add("window-not-multiple-of-device-page");
      if (p > this.#ps) this.#features.add("device-page>tracking-page");
      const edges = [...this.#ram, ...this.#model.mappings].flatMap((r) => [r.iova, r.iova + r.length]);
      if (edges.some((e) => e % p !== 0n)) this.#features.add("edge-inside-device-page");
    }
    this.#sim.clock.advance(1);
    this.#startedAt = this.#sim.clock.now();
    this.#lastSync = this.#startedAt;
  }

  #op(o: Op): void {
    switch (o.op) {
      case "write":
        this.#write(o.dev, this.#writeAddress(o.target), BigInt(o.npages) * PAGE);
        break;
      case "burst": {
        let x = o.seed >>> 0;
        const landed: string[] = [];
        for (let i = 0; i < o.n; i++) {
          x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
          const iova = this.#writeAddress({ kind: "mapped", of: x >>> 24, page: (x >>> 8) & 0xffff });
          const gpa = this.#write(o.dev, iova, PAGE, true);
          landed.push(
            `0x${iova.toString(16)}${gpa.length ? `->0x${(BigInt(gpa[0]!) * PAGE).toString(16)}` : "(fault)"}`,
          );
        }
        this.#log(`dev${o.dev} burst of ${o.n} page writes: ${landed.join(" ")}`);
        break;
      }
      case "sync":
        this.#sync(o.mode);
        break;
      case "phase":
        if (o.to === "pre-copy" && this.#tracker!.phase !== "setup") break;
        this.#phase(o.to);
        break;
      case "map":
        this.#map(o.at);
        break;
      case "unmap":
        this.#unmap(o.at, o.probe);
        break;
      case "remap":
        this.#remap(o);
        break;
      case "passthrough":
        for (const r of this.#ram) this.#mapAt(r.iova, r.iova, r.length, "passthrough");
        break;
      case "fault":
        this.#fault(o.kind, o.dev, o.nth);
        break;
    }
  }

  #phase(to: "pre-copy" | "stop-copy"): void {
    this.#tracker!.setPhase(to);
    this.#log(`setPhase(${to})`);
  }

  // --- DMA writes ---

  #writeAddress(t: WriteTarget): bigint {
    const maps = this.#s.viommu ? this.#model.mappings : this.#ram;
    if (t.kind === "anywhere") return (BigInt(ZONES[t.zone]!.basePage) + BigInt(t.page)) * PAGE;
    if (t.kind === "unmapped" && this.#lastUnmapped.length > 0) {
      const m = this.#lastUnmapped[t.page % this.#lastUnmapped.length]!;
      return m.iova + ((BigInt(t.page) * PAGE) % m.length);
    }
    if (maps.length === 0) return (BigInt(ZONES[1]!.basePage) + BigInt(t.page)) * PAGE;
    const m = maps[(t.kind === "mapped" ? t.of : t.page) % maps.length]!;
    return m.iova + ((BigInt(t.page) * PAGE) % m.length);
  }

  /**
   * A DMA write by device `dev`: through the model, checked against what the host says landed.
   * Returns the GPA pages written.
   */
  #write(dev: number, iova: bigint, length: bigint, quiet = false): number[] {
    const bdf = bdfOf(dev);
    this.#sim.clock.advance(1);
    const t = this.#sim.clock.now();
    const pages: { iovaPage: number; gpaPage: number }[] = [];
    for (let at = iova; at < iova + length; at += PAGE) {
      const gpa = this.#model.translate(at);
      if (gpa !== undefined) pages.push({ iovaPage: pageOf(at), gpaPage: pageOf(gpa) });
    }
    const landed = this.#sim.dmaWrite(bdf, iova, length);
    const expected = BigInt(pages.length) * PAGE;
    const where = `dev${dev} writes iova 0x${iova.toString(16)}+0x${length.toString(16)}`;
    if (!quiet || landed !== expected)
      this.#log(
        `${where}: ${pages.length ? `gpa ${pages.map((p) => `0x${(BigInt(p.gpaPage) * PAGE).toString(16)}`).join(" ")}` : "faults"}`,
      );
    if (landed !== expected)
      throw this.#fail(
        "host-disagrees",
        `${where}: the model says 0x${expected.toString(16)} bytes land, the host landed 0x${landed.toString(16)} (mapped per model: ${ranges(this.#model.within(iova, length))})`,
      );
    if (this.#started) {
      const logged = this.#loggedSpace();
      for (const p of pages) {
        const at = BigInt(p.iovaPage) * PAGE;
        const outsideLogged =
          logged !== undefined && !logged.some((r) => at >= r.iova && at < r.iova + r.length);
        this.#owed.write(bdf, p.gpaPage, { iovaPage: p.iovaPage, t, seq: this.#writes, outsideLogged });
      }
      this.#writes++;
      this.#written += pages.length;
    }
    return pages.map((p) => p.gpaPage);
  }

  // --- vIOMMU map / unmap ---

  #map(d: MapDraw): void {
    const maps = this.#model.mappings;
    let iova: bigint;
    switch (d.kind) {
      case "aperture": {
        const ap = this.#aperture ?? [{ iova: BigInt(ZONES[1]!.basePage) * PAGE, length: 32n * MIB }];
        const r = ap[d.range % ap.length]!;
        iova = r.iova + ((BigInt(d.page) * PAGE) % r.length);
        break;
      }
      case "zone":
        iova = (BigInt(ZONES[d.zone]!.basePage) + BigInt(d.page)) * PAGE;
        break;
      case "after": {
        const m = maps.length ? maps[d.of % maps.length]! : undefined;
        iova = m ? m.iova + m.length : BigInt(ZONES[1]!.basePage) * PAGE;
        break;
      }
      case "zero":
        iova = 0n;
        break;
    }
    const length = this.#alignUp(BigInt(d.npages) * PAGE);
    const { gpa, length: fitted } = this.#gpa(d.gpa, length);
    this.#mapAt(this.#alignDown(iova), gpa, fitted, d.kind);
  }

  /** The GPA a draw names, and the length shortened so that the mapping stays in one RAM section. */
  #gpa(d: GpaDraw, length: bigint): { gpa: bigint; length: bigint } {
    const maps = this.#model.mappings;
    let gpa: bigint;
    if (d.kind === "alias" && maps.length > 0) {
      gpa = maps[d.of % maps.length]!.gpa;
      this.#features.add("alias");
    } else {
      const sec = this.#ram[(d.kind === "ram" ? d.section : 0) % this.#ram.length]!;
      gpa = sec.iova + this.#alignDown((BigInt(d.kind === "ram" ? d.page : 0) * PAGE) % sec.length);
    }
    const sec = this.#ram.find((r) => gpa >= r.iova && gpa < r.iova + r.length)!;
    const room = sec.iova + sec.length - gpa;
    if (length <= room) return { gpa, length };
    // Keep the length and move down when the section has room for it, else shorten.
    if (length <= sec.length && d.kind === "ram") return { gpa: sec.iova + sec.length - length, length };
    return { gpa, length: room };
  }

  #mapAt(iova: bigint, gpa: bigint, length: bigint, why: string): void {
    const t = this.#tracker!;
    const what = `map(iova 0x${iova.toString(16)}, gpa 0x${gpa.toString(16)}, 0x${length.toString(16)}) [${why}]`;
    const overlaps = this.#model.overlaps(iova, length);
    const faulty = this.#pending(this.#s.backend === "type1" ? "VFIO_IOMMU_MAP_DMA" : "IOMMU_IOAS_MAP");
    try {
      t.map(iova, gpa, length);
    } catch (e) {
      this.#log(`${what}: refused: ${message(e)}`);
      this.#features.add("map-refused");
      // The IOMMU would have taken it: nothing overlaps, the IOVAs are usable, no fault was armed.
      const usable = USABLE_IOVA.some((r) => iova >= r.iova && iova + length <= r.iova + r.length);
      if (!overlaps && usable && !faulty)
        throw this.#fail("contract", `${what} refused, though the IOMMU takes it: ${message(e)}`);
      return;
    }
    if (overlaps)
      throw this.#fail(
        "contract",
        `${what} accepted although it overlaps ${ranges(this.#model.within(iova, length))}`,
      );
    this.#model.map(iova, gpa, length);
    this.#log(`${what}`);
    if (iova === 0n) this.#features.add("iova0");
    if (gpa === 0n) this.#features.add("gpa0");
    if (iova !== gpa) this.#features.add("not-identity");
    const logged = this.#loggedSpace();
    if (logged && this.#started) {
      const inside = logged.some((r) => iova >= r.iova && iova + length <= r.iova + r.length);
      const meets = logged.some((r) => iova < r.iova + r.length && r.iova < iova + length);
      this.#features.add(
        inside ? "map-inside-logged" : meets ? "map-straddles-logged" : "map-outside-logged",
      );
    }
  }

  /** The IOVA space logging was started on, as the caller knows it: the aperture, or what was mapped at start. */
  #loggedSpace(): IovaRange[] | undefined {
    if (!this.#s.viommu) return undefined;
    return this.#aperture ?? this.#mappedAtStart;
  }

  #unmap(d: UnmapDraw, probe: boolean): void {
    const maps = this.#model.mappings;
    let iova: bigint;
    let length: bigint;
    switch (d.kind) {
      case "exact":
      case "span":
      case "cut": {
        if (maps.length === 0) {
          this.#log(`unmap ${d.kind}: nothing mapped`);
          return;
        }
        const i = d.of % maps.length;
        const m = maps[i]!;
        if (d.kind === "exact") [iova, length] = [m.iova, m.length];
        else if (d.kind === "span") {
          const last = maps[Math.min(i + d.count - 1, maps.length - 1)]!;
          const slack = BigInt(d.slack) * PAGE;
          iova = this.#alignDown(m.iova > slack ? m.iova - slack : 0n);
          length = this.#alignUp(last.iova + last.length + slack) - iova;
        } else {
          iova = m.iova + this.#alignDown((BigInt(d.from) * PAGE) % m.length);
          length = this.#alignUp(BigInt(d.npages) * PAGE);
        }
        break;
      }
      case "zone":
        iova = this.#alignDown((BigInt(ZONES[d.zone]!.basePage) + BigInt(d.page)) * PAGE);
        length = this.#alignUp(BigInt(d.npages) * PAGE);
        break;
      case "all":
        iova = 0n;
        length = d.bits === 48 ? 1n << 48n : (1n << 64n) - this.#ps;
        break;
    }
    this.#unmapAt(iova, length, d.kind, probe);
  }

  /** tracker.unmap; on success the model drops the range. Returns whether it succeeded. */
  #unmapAt(iova: bigint, length: bigint, why: string, probe: boolean): boolean {
    const what = `unmap(iova 0x${iova.toString(16)}, 0x${length.toString(16)}) [${why}]`;
    const before = this.#model.within(iova, length);
    const cuts = before.some((m) => m.iova < iova || m.iova + m.length > iova + length);
    if (cuts && this.#started) this.#features.add("unmap-cut");
    const faulty = this.#pending(this.#s.backend === "type1" ? "VFIO_IOMMU_UNMAP_DMA" : "IOMMU_IOAS_UNMAP");
    let ok = true;
    try {
      this.#tracker!.unmap(iova, length);
    } catch (e) {
      ok = false;
      this.#log(`${what}: refused: ${message(e)}`);
      // Failed part-way (several kernel calls): the error names what was unmapped before.
      if (e instanceof UnmapError) {
        for (const r of e.unmapped) this.#model.unmap(r.iova, r.length);
        this.#features.add("unmap-partial");
      }
      this.#features.add("unmap-refused");
      // Both IOMMUs unmap a range that cuts no mapping, holes or not (type1 v2 refuses to bisect
      // one, iommufd to cut one): refusing it leaves the caller no way to follow its vIOMMU.
      if (!cuts && !faulty)
        throw this.#fail("contract", `${what} refused, though it cuts no mapping: ${message(e)}`);
    }
    if (ok) {
      const removed = this.#model.unmap(iova, length);
      const bytes = removed.reduce((n, m) => n + m.length, 0n);
      this.#log(`${what}: removes ${removed.length ? ranges(removed) : "nothing"}`);
      if (removed.length > 0) this.#lastUnmapped = removed;
      if (this.#started && removed.length > 0) {
        if (why === "all") this.#features.add("unmap-all");
        if (removed.length > 1 || (bytes < length && why !== "all")) this.#features.add("unmap-holes");
      }
    }
    // The device tries what was there: still mapped or not, the host must agree with the model.
    if (probe && this.#started) {
      for (const m of before.slice(0, 4)) {
        const at = m.iova > iova ? m.iova : iova;
        this.#write(0, at, PAGE);
      }
    }
    return ok;
  }

  #remap(o: Extract<Op, { op: "remap" }>): void {
    const maps = this.#model.mappings;
    if (maps.length === 0) {
      this.#log("remap: nothing mapped");
      return;
    }
    const m = maps[o.of % maps.length]!;
    const at = m.iova + this.#alignDown((BigInt(o.page) * PAGE) % m.length);
    if (o.writeBefore) this.#write(0, at, PAGE);
    if (!this.#unmapAt(m.iova, m.length, "remap", false)) return;
    const { gpa, length } = this.#gpa(o.gpa, m.length);
    this.#mapAt(m.iova, gpa, length, "remap");
    if (gpa !== m.gpa && this.#started)
      this.#features.add(o.writeBefore && o.writeAfter ? "remap-write-both-sides" : "remap");
    if (o.writeAfter) this.#write(0, at, PAGE);
  }

  // --- Faults ---

  #fault(kind: FaultKind, dev: number, nth: number): void {
    const bdf = bdfOf(dev);
    const t1 = this.#s.backend === "type1";
    if (kind === "error-state") {
      this.#sim.setDeviceError(bdf);
      this.#log(`${bdf} -> ERROR state`);
      this.#features.add("fault:error-state");
      return;
    }
    const [op, device] = (
      {
        report: ["DMA_LOGGING_REPORT", bdf],
        "get-bitmap": ["VFIO_IOMMU_DIRTY_PAGES(GET_BITMAP)", undefined],
        "get-dirty-bitmap": ["IOMMU_HWPT_GET_DIRTY_BITMAP", undefined],
        unmap: [t1 ? "VFIO_IOMMU_UNMAP_DMA" : "IOMMU_IOAS_UNMAP", undefined],
        map: [t1 ? "VFIO_IOMMU_MAP_DMA" : "IOMMU_IOAS_MAP", undefined],
        "logging-stop": ["DMA_LOGGING_STOP", bdf],
        "logging-start": ["DMA_LOGGING_START", bdf],
        "set-dirty-tracking": ["IOMMU_HWPT_SET_DIRTY_TRACKING", undefined],
        "dirty-pages-stop": ["VFIO_IOMMU_DIRTY_PAGES(STOP)", undefined],
      } as const
    )[kind];
    this.#sim.injectFault({ op, errno: "EIO", nth, ...(device ? { device } : {}) });
    this.#armed.push(op);
    this.#log(`fault armed: call ${nth} of ${op}${device ? ` on ${device}` : ""} fails with EIO`);
  }

  // --- Syncs and the checks ---

  #sync(mode: SyncMode): void {
    const t = this.#tracker!;
    this.#sim.clock.advance(1);
    const now = this.#sim.clock.now();
    this.#compareTruth(this.#lastSync);
    const into =
      mode === "into"
        ? this.#core.bitmap({ nbits: Number(this.#gpaEnd / (2n * MIB)) + 1, pageSize: 2n * MIB, base: 0n })
        : undefined;
    const union =
      mode === "window"
        ? this.#core.bitmap({
            nbits: Number((this.#gpaEnd + this.#ps - 1n) / this.#ps),
            pageSize: this.#ps,
            base: 0n,
          })
        : undefined;
    try {
      let r: DirtyReport;
      try {
        r =
          mode === "window"
            ? t.sync({ onWindow: (w) => void this.#core.convert(w, union!) })
            : mode === "into"
              ? t.sync({ into: into! })
              : t.sync();
      } catch (e) {
        throw this.#fail("threw", `sync(${mode}) threw: ${message(e)}`);
      }
      const fired = this.#sim.faultLog().length;
      if (r.skipped) {
        this.#log(`sync #${r.seq} (${mode}): skipped (${r.skipped})`);
        return;
      }
      const bm = union ?? r.bitmap;
      if (!bm) throw this.#fail("contract", `sync #${r.seq} (${mode}): no bitmap`);
      this.#checkCounts(r, bm, mode);
      if (into) {
        if (r.notMerged !== 0)
          throw this.#fail(
            "counts",
            `sync #${r.seq}: notMerged ${r.notMerged} with an \`into\` covering all RAM`,
          );
      }
      this.#syncs++;
      this.#reported += r.dirtyPages;
      const events = r.events.map((e) => `${e.kind}(${e.unit})`).join(" ");
      this.#log(
        `sync #${r.seq} (${mode}, ${r.phase}): ${r.dirtyPages} pages${events ? `; events ${events}` : ""}${fired ? `; faults fired so far ${fired}` : ""}`,
      );
      for (const [i, d] of this.#s.devices.entries()) {
        const bdf = bdfOf(i);
        if (into) {
          for (const page of this.#owed.owed(bdf).keys())
            if (holds(bm, page) && !holds(into, page))
              throw this.#fail(
                "counts",
                `sync #${r.seq}: gpa 0x${(BigInt(page) * PAGE).toString(16)} is in the report but not in \`into\``,
              );
        }
        this.#owed.settle(bdf, (page) => holds(bm, page));
        const owed = this.#owed.owed(bdf);
        if (owed.size === 0 || !this.#due(r.phase, i, d.preCopy)) continue;
        const [page, note] = owed.entries().next().value!;
        throw this.#fail(
          "lost-page",
          `gpa 0x${(BigInt(page) * PAGE).toString(16)} (iova 0x${(BigInt(note.iovaPage) * PAGE).toString(16)}${note.outsideLogged ? ", outside the IOVA space logging started on" : ""}, write #${note.seq}) written by ${bdf} is not in sync #${r.seq} (${r.phase}, unit ${this.#unitOf(bdf)} ${JSON.stringify(r.perDevice[this.#unitOf(bdf)])}) nor in any report since the write; ${owed.size} page(s) owed: ${[
            ...owed.keys(),
          ]
            .slice(0, 8)
            .map((p) => `0x${(BigInt(p) * PAGE).toString(16)}`)
            .join(" ")}`,
        );
      }
    } finally {
      into?.free();
      union?.free();
      this.#lastSync = now;
    }
  }

  /** The tracker's unit holding device `bdf` (tracker.strategies is keyed by unit). */
  #unitOf(bdf: string): string {
    const ids = Object.keys(this.#tracker!.strategies);
    return ids.includes(bdf) ? bdf : ids[0]!;
  }

  /**
   * Whether this sync must hold every page device i wrote: always in stop-copy; in pre-copy unless
   * its unit is one the caller let skip pre-copy (the device itself, or a shared unit in which
   * some device opted out).
   */
  #due(phase: string, i: number, preCopy: boolean): boolean {
    if (phase === "stop-copy") return true;
    if (phase !== "pre-copy") return false;
    const unit = this.#unitOf(bdfOf(i));
    return unit === bdfOf(i) ? preCopy : this.#s.devices.every((d) => d.preCopy);
  }

  #checkCounts(r: DirtyReport, bm: Bitmap, mode: SyncMode): void {
    const total = bm.count();
    if (r.dirtyPages !== total)
      throw this.#fail(
        "counts",
        `sync #${r.seq} (${mode}): dirtyPages ${r.dirtyPages} but the bitmap holds ${total}`,
      );
    let sum = 0;
    for (const sec of r.perSection) {
      const first = Number(sec.iova / bm.pageSize);
      const n = Number(sec.length / bm.pageSize);
      const got = bm.count(first, n);
      sum += got;
      if (sec.pages !== got)
        throw this.#fail(
          "counts",
          `sync #${r.seq} (${mode}): section 0x${sec.iova.toString(16)} says ${sec.pages} pages, the bitmap ${got}`,
        );
    }
    if (sum !== total)
      throw this.#fail("counts", `sync #${r.seq} (${mode}): ${total - sum} dirty page(s) outside guest RAM`);
  }

  /** The second opinion: the host's ground truth must match the model for writes since `since`. */
  #compareTruth(since: number): void {
    for (const [i] of this.#s.devices.entries()) {
      const bdf = bdfOf(i);
      for (const space of ["gpa", "iova"] as const) {
        const host = this.#sim.writtenSince(since, { device: bdf, space });
        const mine = this.#owed.writtenSince(bdf, since, space);
        if (host.length !== mine.length || host.some((p, k) => p !== mine[k])) {
          const onlyHost = host.filter((p) => !mine.includes(p)).slice(0, 8);
          const onlyMine = mine.filter((p) => !host.includes(p)).slice(0, 8);
          const hex = (ps: number[]) =>
            ps.map((p) => `0x${(BigInt(p) * PAGE).toString(16)}`).join(" ") || "-";
          throw this.#fail(
            "host-disagrees",
            `${bdf}, ${space} pages written since t=${since}: only the host has ${hex(onlyHost)}; only the model has ${hex(onlyMine)}`,
          );
        }
      }
    }
  }

  // --- Small helpers ---

  #normalize(draws: readonly { zone: number; page: number; npages: number }[]): IovaRange[] {
    const rs = draws
      .map((d) => {
        const iova = this.#alignDown((BigInt(ZONES[d.zone]!.basePage) + BigInt(d.page)) * PAGE);
        return { iova, length: this.#alignUp(BigInt(d.npages) * PAGE) };
      })
      .sort((a, b) => (a.iova < b.iova ? -1 : a.iova > b.iova ? 1 : 0));
    const out: IovaRange[] = [];
    for (const r of rs) {
      const last = out[out.length - 1];
      if (last && r.iova <= last.iova + last.length) {
        const end = bigMax(r.iova + r.length, last.iova + last.length);
        out[out.length - 1] = { iova: last.iova, length: end - last.iova };
      } else out.push(r);
    }
    return out;
  }

  /** A fault armed on kernel call `op` has not fired yet (it may fire on the call being made). */
  #pending(op: string): boolean {
    const armed = this.#armed.filter((a) => a === op).length;
    return armed > this.#sim.faultLog().filter((f) => f.op === op).length;
  }

  #alignDown(v: bigint): bigint {
    return (v / this.#ps) * this.#ps;
  }

  #alignUp(v: bigint): bigint {
    const a = ((v + this.#ps - 1n) / this.#ps) * this.#ps;
    return a === 0n ? this.#ps : a;
  }

  #log(line: string): void {
    this.#trace.push(line);
  }

  #fail(kind: FailureKind, detail: string): OracleFailure {
    return new OracleFailure(kind, detail, this.#trace);
  }
}

function ranges(rs: readonly { iova: bigint; length: bigint; gpa?: bigint }[]): string {
  return rs
    .map(
      (r) =>
        `[0x${r.iova.toString(16)}, +0x${r.length.toString(16)})${r.gpa !== undefined ? `->0x${r.gpa.toString(16)}` : ""}`,
    )
    .join(" ");
}

function bigMax(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

function message(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

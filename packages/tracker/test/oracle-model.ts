// The never-lose oracle's own record of the world, kept apart from the code under test: what is
// DMA-mapped at each instant (IOVA -> GPA, updated on every map/unmap the test performs and the
// tracker accepted), which guest pages each device wrote through it, and which of those no report
// has held yet. Nothing here imports the tracker; the sim's ground truth is compared with it as a
// second opinion (oracle-run.ts).
//
//   const model = new DmaModel();
//   model.map(0x1000_0000n, 0n, 0x2000n);       // IOVA 256M -> GPA 0, two pages
//   model.translate(0x1000_1000n);              // 0x1000n
//   const owed = new OwedPages();
//   owed.write("dev", 1, { iovaPage: 0x10001, t: 7, seq: 3 });   // device "dev" wrote GPA page 1
//   owed.settle("dev", (page) => reported(page)); // drop what a report held; what remains is owed

const PAGE = 4096n;

/** One DMA mapping as the test made it: [iova, iova + length) -> [gpa, gpa + length). */
export interface ModelMapping {
  readonly iova: bigint;
  readonly gpa: bigint;
  readonly length: bigint;
}

/** What the test believes the IOMMU maps: disjoint mappings, kept sorted by IOVA. */
export class DmaModel {
  readonly #mappings: ModelMapping[] = [];

  get mappings(): readonly ModelMapping[] {
    return this.#mappings;
  }

  /** True when [iova, iova + length) meets a mapping. */
  overlaps(iova: bigint, length: bigint): boolean {
    return this.#mappings.some((m) => m.iova < iova + length && iova < m.iova + m.length);
  }

  /** Record a mapping the tracker accepted. Throws if it overlaps one (a bug in the test). */
  map(iova: bigint, gpa: bigint, length: bigint): void {
    if (this.overlaps(iova, length)) throw new Error(`model: map 0x${iova.toString(16)} overlaps`);
    const at = this.#mappings.findIndex((m) => m.iova > iova);
    this.#mappings.splice(at < 0 ? this.#mappings.length : at, 0, { iova, gpa, length });
  }

  /** Remove [iova, iova + length), cutting mappings at its edges. Returns the removed pieces. */
  unmap(iova: bigint, length: bigint): ModelMapping[] {
    const end = iova + length;
    const removed: ModelMapping[] = [];
    const keep: ModelMapping[] = [];
    for (const m of this.#mappings) {
      const mEnd = m.iova + m.length;
      if (mEnd <= iova || m.iova >= end) {
        keep.push(m);
        continue;
      }
      const lo = bigMax(m.iova, iova);
      const hi = bigMin(mEnd, end);
      removed.push({ iova: lo, gpa: m.gpa + (lo - m.iova), length: hi - lo });
      if (m.iova < lo) keep.push({ iova: m.iova, gpa: m.gpa, length: lo - m.iova });
      if (hi < mEnd) keep.push({ iova: hi, gpa: m.gpa + (hi - m.iova), length: mEnd - hi });
    }
    this.#mappings.splice(0, this.#mappings.length, ...keep);
    return removed;
  }

  /** The GPA `iova` reaches now, or undefined: an IOMMU fault, no guest page written. */
  translate(iova: bigint): bigint | undefined {
    for (const m of this.#mappings)
      if (iova >= m.iova && iova < m.iova + m.length) return m.gpa + (iova - m.iova);
    return undefined;
  }

  /** The mappings that meet [iova, iova + length), as they are now. */
  within(iova: bigint, length: bigint): ModelMapping[] {
    return this.#mappings.filter((m) => m.iova < iova + length && iova < m.iova + m.length);
  }
}

/** One page write as the oracle recorded it (for messages: where it came from and when). */
export interface WriteNote {
  readonly iovaPage: number;
  /** The sim clock at the write (ns). */
  readonly t: number;
  /** Index of the write in the scenario's sequence of writes. */
  readonly seq: number;
  /** The IOVA lay outside the space logging was started on (as the caller knows it). */
  readonly outsideLogged?: boolean;
}

/**
 * Per device: the 4 KiB GPA pages written and not yet held by a report, and, for the comparison
 * with the host's ground truth, the last write time of every GPA and IOVA page.
 */
export class OwedPages {
  readonly #owed = new Map<string, Map<number, WriteNote>>();
  readonly #lastGpa = new Map<string, Map<number, number>>();
  readonly #lastIova = new Map<string, Map<number, number>>();

  /** A write through the IOMMU landed on GPA page `gpaPage`. */
  write(device: string, gpaPage: number, note: WriteNote): void {
    mapOf(this.#owed, device).set(gpaPage, note);
    mapOf(this.#lastGpa, device).set(gpaPage, note.t);
    mapOf(this.#lastIova, device).set(note.iovaPage, note.t);
  }

  /** Drop the pages `held` says a report holds; returns how many remain owed. */
  settle(device: string, held: (gpaPage: number) => boolean): number {
    const owed = mapOf(this.#owed, device);
    for (const page of owed.keys()) if (held(page)) owed.delete(page);
    return owed.size;
  }

  owed(device: string): ReadonlyMap<number, WriteNote> {
    return mapOf(this.#owed, device);
  }

  /** Pages (GPA or the device's IOVA) last written at or after `since`, ascending: sim.writtenSince's shape. */
  writtenSince(device: string, since: number, space: "gpa" | "iova"): number[] {
    const m = mapOf(space === "gpa" ? this.#lastGpa : this.#lastIova, device);
    const out: number[] = [];
    for (const [page, t] of m) if (t >= since) out.push(page);
    return out.sort((a, b) => a - b);
  }
}

/** 4 KiB page number of an address (addresses here stay below 2^64, page numbers below 2^52). */
export function pageOf(addr: bigint): number {
  return Number(addr / PAGE);
}

// --- Internal helpers ---

function bigMax(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

function bigMin(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

function mapOf<K, V>(m: Map<string, Map<K, V>>, key: string): Map<K, V> {
  let v = m.get(key);
  if (!v) {
    v = new Map();
    m.set(key, v);
  }
  return v;
}

// Ground truth: every page every device really wrote, and when. The never-lose rule is checked
// against this, never against what a tracker reports.
//
// Pages are 4 KiB (the kernel's PAGE_SIZE), keyed by guest physical address (GPA) and, per device,
// by the IOVA the device used (with a vIOMMU the two differ). Only the time of the LAST write of a
// page is kept: "written since T" is exactly "last write >= T", and memory follows distinct pages.
//
//   truth.record({ device: "0000:3b:00.1", iovaPage, gpaPage, t });
//   truth.writtenSince(t0)                       // GPA pages (numbers), ascending
//   truth.writtenSince(t0, { device, space: "iova" })

import type { SimTime } from "./clock.ts";

export interface TruthQuery {
  /** Only this device's writes (PCI address). */
  device?: string;
  /** "gpa" (default): guest physical pages; "iova": the device's IOVA pages. */
  space?: "gpa" | "iova";
}

export class GroundTruth {
  private readonly gpa = new Map<number, SimTime>();
  private readonly perDevice = new Map<string, { gpa: Map<number, SimTime>; iova: Map<number, SimTime> }>();
  /** DMA writes the IOMMU refused (unmapped or read-only IOVA), per device. */
  readonly faults = new Map<string, { count: number; last?: { iova: bigint; t: SimTime } }>();
  private writes = 0;

  /** Number of page writes recorded (a write covering 3 pages counts 3). */
  get pageWrites(): number {
    return this.writes;
  }

  record(device: string, iovaPage: number, gpaPage: number | undefined, t: SimTime): void {
    this.writes++;
    let d = this.perDevice.get(device);
    if (!d) {
      d = { gpa: new Map(), iova: new Map() };
      this.perDevice.set(device, d);
    }
    // Devices run one after the other within an advance, so a page can be recorded with an older
    // time after a newer one: keep the latest, or "written since T" would lose the newer write.
    setLatest(d.iova, iovaPage, t);
    if (gpaPage !== undefined) {
      setLatest(d.gpa, gpaPage, t);
      setLatest(this.gpa, gpaPage, t);
    }
  }

  recordFault(device: string, iova: bigint, t: SimTime): void {
    const f = this.faults.get(device) ?? { count: 0 };
    f.count++;
    f.last = { iova, t };
    this.faults.set(device, f);
  }

  /** 4 KiB pages written at or after `since`, ascending. */
  writtenSince(since: SimTime, q: TruthQuery = {}): number[] {
    const space = q.space ?? "gpa";
    let map: Map<number, SimTime> | undefined;
    if (q.device) map = this.perDevice.get(q.device)?.[space];
    else if (space === "gpa") map = this.gpa;
    else {
      // IOVA spaces of different devices are only comparable without a vIOMMU; merge them.
      map = new Map();
      for (const d of this.perDevice.values())
        for (const [p, t] of d.iova) map.set(p, Math.max(t, map.get(p) ?? t));
    }
    if (!map) return [];
    const out: number[] = [];
    for (const [page, t] of map) if (t >= since) out.push(page);
    return out.sort((a, b) => a - b);
  }

  /** The time of the last write of a GPA page, or undefined. */
  lastWrite(gpaPage: number): SimTime | undefined {
    return this.gpa.get(gpaPage);
  }
}

// --- Internal helpers ---

function setLatest(map: Map<number, SimTime>, page: number, t: SimTime): void {
  const prev = map.get(page);
  if (prev === undefined || t > prev) map.set(page, t);
}

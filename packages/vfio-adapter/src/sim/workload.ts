// Seeded, deterministic DMA workloads: what a device writes, where, and when.
//
// A workload turns a time interval into a list of writes (iova, length, time). Write k of a workload
// with rate r happens at start + k/r seconds and draws its address from a PRNG in sequence, so the
// writes are the same however the interval is chopped by advance() calls. Patterns imitate real
// devices: a hot working set (a GPU's render targets), a sequential ring (a NIC receive ring), uniform
// random, on/off bursts, and the replay of a recorded trace.
//
//   const w = createWorkload(spec, region, seed);
//   for (const write of w.writesBetween(0, 1e9)) device.dmaWrite(write.iova, write.length, write.t);

import { mulberry32 } from "../util/prng.ts";
import type { SimTime } from "./clock.ts";
import type { Range, WorkloadJson } from "./profile.ts";
import { u64 } from "./profile.ts";

/** One DMA write issued by a device. */
export interface DmaWrite {
  iova: bigint;
  length: bigint;
  t: SimTime;
}

export interface Workload {
  /** Writes due in [from, to), in time order. */
  writesBetween(from: SimTime, to: SimTime): Generator<DmaWrite>;
}

const PAGE = 4096n;
const NS_PER_S = 1e9;

/** Builds the workload of a device; `region` is the IOVA space it writes when the spec names none. */
export function createWorkload(spec: WorkloadJson | undefined, region: Range[], seed: number): Workload {
  if (!spec || spec.kind === "idle") return { *writesBetween() {} };
  const ranges = spec.region
    ? spec.region.map((r, i) => ({
        start: u64(r.iova, `region/${i}/iova`),
        length: u64(r.length, `region/${i}/length`),
      }))
    : region;
  if (spec.kind === "trace") return traceWorkload(spec);
  const space = new PageSpace(ranges);
  const rng = mulberry32(spec.seed ?? seed);
  const writeBytes = spec.bytesPerSecond !== undefined ? BigInt(spec.writeBytes ?? 4096) : PAGE;
  const perSecond =
    spec.bytesPerSecond !== undefined ? spec.bytesPerSecond / Number(writeBytes) : spec.pagesPerSecond!;
  const hot = hotPages(spec, space, rng);
  let ringPos = 0;
  let issued = 0;

  const pick = (): bigint => {
    switch (spec.kind) {
      case "ring": {
        const n = Math.min(spec.ringPages ?? space.npages, space.npages);
        const page = ringPos % n;
        ringPos++;
        return space.address(page);
      }
      case "hot-set": {
        const frac = spec.hotFraction ?? 0.9;
        if (rng() < frac) return space.address(hot[Math.floor(rng() * hot.length)]!);
        return space.address(Math.floor(rng() * space.npages));
      }
      default:
        return space.address(Math.floor(rng() * space.npages));
    }
  };
  // Bursts: writes happen only during the "on" part of each period, at the burst rate.
  const onNs = (spec.burstMs ?? 0) * 1e6;
  const periodNs = onNs + (spec.idleMs ?? 0) * 1e6;
  const activeTime = (t: SimTime): number => {
    if (spec.kind !== "bursts" || periodNs === 0) return t;
    const full = Math.floor(t / periodNs);
    return full * onNs + Math.min(t - full * periodNs, onNs);
  };
  // Bursts are half-open, [k * period, k * period + on): active time exactly k * on is the start
  // of burst k, which keeps write times inside the interval that runs them.
  const timeOfActive = (a: number): SimTime => {
    if (spec.kind !== "bursts" || onNs === 0) return a;
    const full = Math.floor(a / onNs);
    return full * periodNs + (a - full * onNs);
  };

  return {
    *writesBetween(_from, to) {
      // Writes are numbered from the start of time; `issued` remembers how many already ran. An
      // interval runs the writes due in [from, to): one due exactly at `to` runs in the next
      // interval, after whatever the caller does at `to` (a tracker's sync), so "written since T"
      // is exact at interval edges.
      const due = Math.ceil((activeTime(to) * perSecond) / NS_PER_S) - 1;
      while (issued < due) {
        issued++;
        // floor: never later than the interval's end, so the time does not depend on chopping.
        const t = timeOfActive(Math.floor((issued * NS_PER_S) / perSecond));
        const addr = pick();
        // A sub-page write lands at a pseudo-random offset inside the chosen page (it may cross it).
        const offset =
          writeBytes < PAGE ? BigInt(Math.floor(rng() * Number(PAGE / writeBytes))) * writeBytes : 0n;
        yield { iova: addr + offset, length: writeBytes, t };
      }
    },
  };
}

// --- Internal helpers ---

/** The pages of a list of ranges, numbered 0..npages-1 across the ranges in order. */
class PageSpace {
  readonly npages: number;
  private readonly starts: number[] = [];
  constructor(private readonly ranges: Range[]) {
    let n = 0;
    for (const r of ranges) {
      this.starts.push(n);
      n += Number(r.length / PAGE);
    }
    this.npages = Math.max(n, 1);
  }
  address(page: number): bigint {
    let i = this.starts.length - 1;
    while (i > 0 && this.starts[i]! > page) i--;
    const r = this.ranges[i];
    if (!r) return 0n;
    return (r.start & ~(PAGE - 1n)) + BigInt(page - this.starts[i]!) * PAGE;
  }
}

function hotPages(spec: WorkloadJson, space: PageSpace, rng: () => number): number[] {
  if (spec.kind !== "hot-set") return [];
  const n = Math.min(spec.hotPages ?? 64, space.npages);
  const set = new Set<number>();
  while (set.size < n) set.add(Math.floor(rng() * space.npages));
  return [...set];
}

function traceWorkload(spec: WorkloadJson): Workload {
  const events = (spec.events ?? [])
    .map((e, i) => ({
      t: e.atMs * 1e6,
      iova: u64(e.iova, `events/${i}/iova`),
      length: u64(e.length, `events/${i}/length`),
    }))
    .sort((a, b) => a.t - b.t);
  const loopNs = spec.loopMs !== undefined ? spec.loopMs * 1e6 : undefined;
  return {
    *writesBetween(from, to) {
      if (events.length === 0) return;
      const firstLoop = loopNs ? Math.floor(from / loopNs) : 0;
      const lastLoop = loopNs ? Math.floor(to / loopNs) : 0;
      for (let k = firstLoop; k <= lastLoop; k++) {
        const base = loopNs ? k * loopNs : 0;
        for (const e of events) {
          const t = base + e.t;
          // Loops start at k * loopMs; an event beyond loopMs would overlap the next loop.
          if (t >= from && t < to && (!loopNs || e.t < loopNs)) yield { iova: e.iova, length: e.length, t };
        }
      }
    },
  };
}

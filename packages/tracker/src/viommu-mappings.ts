// The vIOMMU's list of mappings, as plain functions over sorted, disjoint ranges: where a new
// mapping goes, how an unmap cuts the list, how unmaps are chunked, and what logging starts on.

import { bigMin as min } from "@vfio-dirty/vfio-adapter/util";
import { type IovaRange, type MemorySection, mergeOverlapping } from "./ranges.ts";
import { covers } from "./tracker-helpers.ts";

export interface Mapping {
  readonly iova: bigint;
  readonly gpa: bigint;
  readonly length: bigint;
  /** Outside what device logging was started on: always reported dirty. */
  readonly untracked: boolean;
}

/**
 * vIOMMU: what device logging starts on. The aperture when given, widened by any mapping made
 * before start() outside it; else the IOVA space mapped now; else, with nothing mapped yet, the
 * guest memory. Mappings made later outside it are handled by the untracked policy.
 */
export function viommuStartRanges(
  mappings: readonly Mapping[],
  aperture: readonly IovaRange[] | undefined,
  sections: readonly MemorySection[],
): readonly IovaRange[] {
  const mapped = mappings.map((m) => ({ iova: m.iova, length: m.length }));
  if (aperture)
    return mapped.every((m) => covers(aperture, m)) ? aperture : mergeOverlapping([...aperture, ...mapped]);
  return mapped.length > 0 ? mergeOverlapping(mapped) : sections;
}

/** Index of the first mapping at or above `iova` in `mappings`, sorted by IOVA. */
export function insertionPoint(mappings: readonly IovaRange[], iova: bigint): number {
  let lo = 0;
  let hi = mappings.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (mappings[mid]!.iova < iova) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Split `mappings` at [iova, iova + length): `keep` the outside parts (still sorted by IOVA: pieces
 * replace their mapping in place), `removed` the inside ones.
 */
export function cutMappings(
  mappings: readonly Mapping[],
  iova: bigint,
  length: bigint,
): { keep: Mapping[]; removed: Mapping[] } {
  const end = iova + length;
  const removed: Mapping[] = [];
  const keep: Mapping[] = [];
  for (const m of mappings) {
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
  return { keep, removed };
}

/**
 * Consecutive whole mappings (sorted) grouped so that each group spans at most `span` bytes; a
 * mapping larger than that is a group of its own.
 */
export function chunksOf<T extends IovaRange>(sorted: readonly T[], span: bigint): T[][] {
  const out: T[][] = [];
  for (const m of sorted) {
    const cur = out[out.length - 1];
    if (cur && m.iova + m.length - cur[0]!.iova <= span) cur.push(m);
    else out.push([m]);
  }
  return out;
}

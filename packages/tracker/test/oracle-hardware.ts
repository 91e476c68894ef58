// Hardware behaviour the simulated host leaves out, emulated through the uAPI itself so that the
// oracle does not depend on the sim (or the tracker) getting it right.
//
// VT-d superpages: intel_iommu_read_and_clear_dirty tests and clears a 2 MiB IOPTE's dirty bit
// when an IOMMU_HWPT_GET_DIRTY_BITMAP covers part of it, and reports only the part inside the
// query, so a query that cuts a 2 MiB IOPTE loses the rest of it. The sim tracks 4 KiB pages;
// hugeIoptes() makes it behave like VT-d by reading the cut remainder of each such IOPTE into a
// throwaway bitmap right after the query. An IOPTE is any 2 MiB-aligned IOVA block inside one
// kernel mapping whose GPA is 2 MiB-aligned too (what a guest backed by huge pages gets).
//
//   const target = hugeIoptes(session.target, () => model.mappings, () => features.add("cut"));

import type { TrackingTarget } from "../src/probe.ts";
import type { DirtyIommufd } from "../src/strategies/iommufd.ts";
import type { ModelMapping } from "./oracle-model.ts";

const HUGE = 2n << 20n;

type DirtyRead = Parameters<DirtyIommufd["getDirtyBitmap"]>[0];

/** `target` with iommufd dirty reads that clear every 2 MiB IOPTE they cut (type1 is left alone). */
export function hugeIoptes(
  target: TrackingTarget,
  mappings: () => readonly ModelMapping[],
  onCut: () => void,
): TrackingTarget {
  const iommu = target.iommu;
  if (iommu.kind !== "iommufd") return target;
  const real = iommu.iommufd;
  const read = (a: DirtyRead) => real.getDirtyBitmap(a);
  const vtd = new Proxy(real, {
    get(obj, key) {
      const v = Reflect.get(obj, key, obj);
      if (key !== "getDirtyBitmap") return typeof v === "function" ? v.bind(obj) : v;
      return (a: DirtyRead) => {
        read(a);
        if (a.noClear) return;
        for (const part of cutRemainders(a.iova, a.length, a.pageSize, mappings())) {
          onCut();
          const nbits = part.length / a.pageSize;
          read({ ...a, ...part, bitmap: new Uint8Array(Number(((nbits + 63n) / 64n) * 8n)) });
        }
      };
    },
  });
  return { ...target, iommu: { ...iommu, iommufd: vtd } };
}

// --- Internal helpers ---

/** The parts of 2 MiB IOPTEs that [iova, iova + length) cuts off, outside the query. */
function cutRemainders(
  iova: bigint,
  length: bigint,
  pageSize: bigint,
  mappings: readonly ModelMapping[],
): { iova: bigint; length: bigint }[] {
  const end = iova + length;
  const out: { iova: bigint; length: bigint }[] = [];
  for (const edge of [iova, end]) {
    if (edge % HUGE === 0n) continue;
    const block = edge - (edge % HUGE);
    const m = mappings.find((x) => x.iova <= block && block + HUGE <= x.iova + x.length);
    if (!m || (m.gpa - m.iova) % HUGE !== 0n) continue;
    // The part of the block on the other side of this edge, if the query does not cover it.
    const [lo, hi] = edge === iova ? [block, iova] : [end, block + HUGE];
    const a = lo - (lo % pageSize);
    if (hi > a && !(a >= iova && hi <= end)) out.push({ iova: a, length: hi - a });
  }
  return out;
}

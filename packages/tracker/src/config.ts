// createTracker's input, checked at the boundary: everything is refused before any work starts,
// and what the tracker runs on is resolved here once (defaults, sorted sections, the RAM span).

import { hex, isPowerOfTwoIn, bigMax as max } from "@vfio-dirty/vfio-adapter/util";
import type { MemorySection } from "./ranges.ts";
import { cmp, hexRange } from "./tracker-helpers.ts";
import type { TrackerConfig, UntrackedPolicy } from "./types.ts";

const GIB = 1n << 30n;

/** A checked TrackerConfig, defaults filled in. */
export interface ResolvedConfig {
  readonly pageSize: bigint;
  /** Rounded down to whole bitmap words. */
  readonly windowBytes: bigint;
  readonly now: () => number;
  /** Guest RAM, sorted by GPA: what reports cover. */
  readonly memory: readonly MemorySection[];
  /** Guest memory as given (RAM and PCI BARs, kinds kept for range planning), sorted by GPA. */
  readonly sections: readonly MemorySection[];
  /** GPA span of the report bitmap: [0, gpaEnd). */
  readonly gpaEnd: bigint;
  readonly perDeviceCounts: boolean;
  readonly untrackedPolicy: UntrackedPolicy;
}

/** Check a configuration (RangeError naming what is wrong) and fill in its defaults. */
export function resolveConfig(c: TrackerConfig): ResolvedConfig {
  if (c.units.length === 0) throw new RangeError("createTracker: no units");
  const ids = new Set<string>();
  for (const u of c.units) {
    if (ids.has(u.id)) throw new RangeError(`createTracker: duplicate unit id ${u.id}`);
    ids.add(u.id);
  }
  const pageSize = c.pageSize ?? 4096n;
  if (!isPowerOfTwoIn(pageSize, 512n))
    throw new RangeError(`createTracker: pageSize ${pageSize} is not a power of two >= 512`);
  if (c.memory.length === 0) throw new RangeError("createTracker: no guest memory");
  for (const s of c.memory) {
    if (s.length <= 0n || s.iova < 0n || s.iova % pageSize !== 0n || s.length % pageSize !== 0n)
      throw new RangeError(`createTracker: section ${hexRange(s.iova, s.length)} not page aligned`);
  }
  const sorted = [...c.memory].sort((a, b) => cmp(a.iova, b.iova));
  for (let i = 1; i < sorted.length; i++)
    if (sorted[i]!.iova < sorted[i - 1]!.iova + sorted[i - 1]!.length)
      throw new RangeError(`createTracker: sections overlap at ${hex(sorted[i]!.iova)}`);
  const wordBytes = 64n * pageSize;
  const windowBytes = c.windowBytes ?? 64n * GIB;
  if (windowBytes < wordBytes) throw new RangeError("createTracker: windowBytes below 64 pages");
  // Reports cover guest RAM: that is what migration copies. PCI BAR sections (P2P targets) are
  // logged, as QEMU's pci64 range is, but their contents move with their device's own state.
  const memory = sorted.filter((m) => m.kind === "ram");
  if (memory.length === 0) throw new RangeError("createTracker: no RAM section");
  const untrackedPolicy = c.viommu?.untracked ?? "adaptive";
  if (!["report-dirty", "re-arm", "adaptive"].includes(untrackedPolicy))
    throw new RangeError(
      `createTracker: viommu.untracked ${String(untrackedPolicy)} is not report-dirty, re-arm or adaptive`,
    );
  for (const set of c.startFallback?.chain ?? [])
    if (set.length === 0) throw new RangeError("createTracker: empty fallback unit set");
  return {
    pageSize,
    windowBytes: (windowBytes / wordBytes) * wordBytes,
    now: c.now ?? (() => performance.now()),
    memory,
    sections: sorted,
    gpaEnd: memory.reduce((m, s) => max(m, s.iova + s.length), 0n),
    perDeviceCounts: c.perDeviceCounts ?? true,
    untrackedPolicy,
  };
}

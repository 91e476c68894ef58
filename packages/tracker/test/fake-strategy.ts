// A fake kernel log behind the DirtyStrategy ops, for testing the tracker's policy without a
// kernel: it records page writes in IOVA space and can be told to fail in every way the uAPI allows.

import type { Bitmap } from "../src/bitmap.ts";
import type { IovaRange } from "../src/ranges.ts";
import type { StrategyName } from "../src/select.ts";
import type { DirtyStrategy } from "../src/strategy.ts";

export class FakeLogStrategy implements DirtyStrategy {
  kernelBytes = 0;
  running = false;
  startCalls = 0;
  stopCalls = 0;
  ranges: readonly IovaRange[] = [];
  readonly log = new Set<bigint>();
  /** Fault injection. */
  failQueries = 0;
  /** When >= 0: that many more queries succeed, then one fails (a failure in a later window). */
  failAfterQueries = -1;
  failStarts = 0;
  unhealthy: string | undefined;
  failUnmap = 0;

  /**
   * `granule`: the log clears in pages of this size, the harsh way. An IOMMU ("iommufd", "type1")
   * clears a huge IOPTE whole when a query starts or ends inside it but reports only the part
   * inside the query; an IOPTE never crosses the edge of a kernel mapping, which `mapped()` gives
   * (sections or vIOMMU mappings). A device logging page spans mappings; the device strategy
   * widens its REPORTs to whole pages, so a device fake reports every page it clears, whole.
   * Either way the tracker must never end a window inside a granule.
   */
  constructor(
    readonly name: StrategyName,
    readonly pageSize: bigint,
    readonly withUnmapDirty = false,
    readonly granule = pageSize,
    readonly mapped: () => readonly IovaRange[] = () => [],
  ) {
    if (withUnmapDirty) this.unmapDirty = this.#unmapDirty;
    if (granule > pageSize) {
      this.clearGranule = granule;
      this.widensQueries = name === "device";
    }
  }

  readonly clearGranule: bigint | undefined;
  readonly widensQueries: boolean | undefined;

  unmapDirty?: (
    iova: bigint,
    length: bigint,
    mapped: readonly IovaRange[],
    into: Bitmap,
  ) => { unmapped: bigint; read: boolean; error?: unknown };
  /** The unmap itself fails (the mappings stay). */
  failUnmapItself = 0;

  /** A device write at an IOVA: recorded when logging covers it. */
  write(iova: bigint): void {
    if (!this.running) return;
    if (this.ranges.some((r) => iova >= r.iova && iova < r.iova + r.length))
      this.log.add(iova - (iova % this.pageSize));
  }

  /** The device was reset: the log is gone, and nothing says so but the device's state. */
  resetLog(): void {
    this.log.clear();
  }

  start(ranges: readonly IovaRange[]): void {
    this.startCalls++;
    if (this.failStarts > 0) {
      this.failStarts--;
      throw Object.assign(new Error("start failed"), { errno: 5 });
    }
    if (this.running) throw Object.assign(new Error("EBUSY"), { errno: 16 });
    this.ranges = ranges;
    this.log.clear();
    this.running = true;
  }

  stop(): void {
    this.stopCalls++;
    this.running = false;
    this.log.clear();
  }

  check(): string | undefined {
    return this.unhealthy;
  }

  query(iova: bigint, length: bigint, into: Bitmap): void {
    if (!this.running) throw Object.assign(new Error("EINVAL: not started"), { errno: 22 });
    if (this.failAfterQueries === 0) {
      this.failAfterQueries = -1;
      this.failQueries++;
    } else if (this.failAfterQueries > 0) this.failAfterQueries--;
    if (this.failQueries > 0) {
      this.failQueries--;
      // A failed REPORT may have cleared part of the log already: drop it all, the worst case.
      this.log.clear();
      throw Object.assign(new Error("REPORT failed"), { errno: 5 });
    }
    this.kernelBytes += Math.ceil(Number(length / this.pageSize) / 64) * 8;
    const g = this.granule;
    let lo = (iova / g) * g;
    let hi = ((iova + length + g - 1n) / g) * g;
    if (this.name !== "device") {
      // An IOPTE ends where the kernel mapping holding the query's edge ends.
      const at = (a: bigint) => this.mapped().find((m) => a >= m.iova && a < m.iova + m.length);
      const first = at(iova);
      const last = at(iova + length - 1n);
      if (first && first.iova > lo) lo = first.iova;
      if (last && last.iova + last.length < hi) hi = last.iova + last.length;
    }
    for (const p of [...this.log]) {
      if (p < lo || p >= hi) continue;
      this.log.delete(p); // the whole granule goes
      // An IOMMU reports only the query's part; a widening device strategy all it cleared.
      if (!this.widensQueries && (p < iova || p >= iova + length)) continue;
      const bit = (p - into.base) / into.pageSize;
      if (p >= into.base && bit < BigInt(into.nbits)) into.set(Number(bit), 1);
    }
  }

  #unmapDirty(
    iova: bigint,
    length: bigint,
    mapped: readonly IovaRange[],
    into: Bitmap,
  ): { unmapped: bigint; read: boolean; error?: unknown } {
    if (this.failUnmapItself > 0) {
      this.failUnmapItself--;
      throw Object.assign(new Error("UNMAP_DMA failed"), { errno: 5 });
    }
    const unmapped = mapped.reduce((n, m) => n + m.length, 0n);
    if (this.failUnmap > 0) {
      // The read with the unmap failed; the strategy unmapped without it. The log is lost.
      this.failUnmap--;
      this.log.clear();
      return {
        unmapped,
        read: false,
        error: Object.assign(new Error("GET_DIRTY_BITMAP failed"), { errno: 5 }),
      };
    }
    try {
      this.query(iova, length, into);
    } catch (error) {
      return { unmapped, read: false, error }; // a failed read: unmapped without it, as the real ones do
    }
    return { unmapped, read: true };
  }
}

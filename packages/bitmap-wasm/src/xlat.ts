// An IOVA -> GPA translation table in wasm memory (xlat_* exports). Removed mappings keep
// translating until retire(), so bits a device reports late for an unmapped IOVA range still land
// on the right guest page.
//
//   using t = core.xlatTable(4096n);
//   t.map(0x10_0000n, 0x8000_0000n, 0x20_0000n);
//   const { unmappedPages } = t.translate(iovaDirty, gpaDirty);   // ORs into gpaDirty
//   t.unmap(0x10_0000n, 0x20_0000n); ...; t.retire();

import { type BitmapExports, check, checkBig, hex, u64 } from "./abi.ts";
import type { Bitmap, Scratch } from "./bitmap.ts";
import { BitmapError, ErrorCode } from "./errors.ts";

export interface XlatMapping {
  iova: bigint;
  gpa: bigint;
  length: bigint;
  /** Unmapped but not yet retired: still translates. */
  removed: boolean;
}

export interface TranslateResult {
  /** Dirty source pages on no mapping (active or removed); list them with unmappedRuns(). */
  unmappedPages: number;
  /** Dirty pages whose GPA falls outside the destination bitmap (per mapping). */
  outsidePages: number;
  /** With `copy`: the dirty pages written into the destination (counted during the copy). */
  copiedPages?: number;
}

const RUNS_BATCH = 1024;

export class XlatTable implements Disposable {
  readonly pageSize: bigint;
  readonly handle: number;
  #freed = false;

  /** @internal Created by BitmapCore.xlatTable(). */
  constructor(
    private readonly x: BitmapExports,
    private readonly scratch: Scratch,
    handle: number,
    pageSize: bigint,
  ) {
    this.handle = handle;
    this.pageSize = pageSize;
  }

  /** Add an active mapping; throws OVERLAP if the IOVA range overlaps an active one. */
  map(iova: bigint, gpa: bigint, length: bigint): void {
    const op = "xlat.map";
    const r = this.x.xlat_map(
      this.#h(op),
      u64(iova, op, "iova"),
      u64(gpa, op, "gpa"),
      u64(length, op, "length"),
    );
    check(
      r,
      op,
      () => `iova ${hex(iova)}, gpa ${hex(gpa)}, length ${hex(length)}, pageSize ${this.pageSize}`,
    );
  }

  /** Move the active mappings in [iova, iova + length) to removed (splitting at the edges); returns bytes moved. */
  unmap(iova: bigint, length: bigint): bigint {
    const op = "xlat.unmap";
    const r = this.x.xlat_unmap(this.#h(op), u64(iova, op, "iova"), u64(length, op, "length"));
    return BigInt(
      checkBig(r, op, () => `iova ${hex(iova)}, length ${hex(length)}, pageSize ${this.pageSize}`),
    );
  }

  /** Drop the removed mappings; returns how many. */
  retire(): number {
    const op = "xlat.retire";
    return check(this.x.xlat_retire(this.#h(op)), op, () => "");
  }

  /** Every mapping, active and removed, ordered by iova then gpa. */
  mappings(): XlatMapping[] {
    const op = "xlat.mappings";
    const n = check(this.x.xlat_mapping_count(this.#h(op)), op, () => "");
    const out: XlatMapping[] = [];
    const buf = this.scratch.get(32);
    for (let i = 0; i < n; i++) {
      check(this.x.xlat_mapping_get(this.handle, i, buf), op, () => `index ${i}`);
      const v = new BigUint64Array(this.x.memory.buffer, buf, 4);
      out.push({ iova: v[0]!, gpa: v[1]!, length: v[2]!, removed: (v[3]! & 1n) === 1n });
    }
    return out;
  }

  /**
   * OR the dirty pages of `src` (IOVA space) into `dst` (GPA space); both in this table's page size.
   * With `copy: true` each mapping's GPA pages are overwritten with its IOVA pages' bits instead,
   * so `dst` needs no clearing first where mappings cover it, and the result also says how many
   * dirty pages went in (`copiedPages`); that needs mappings that share no GPA page (see
   * gpaDisjoint(); OVERLAP otherwise). Pages of `dst` that no mapping inside `src`'s range covers
   * are left as they are either way.
   */
  translate(src: Bitmap, dst: Bitmap, opts: { copy?: boolean } = {}): TranslateResult {
    const op = opts.copy ? "xlat.translateCopy" : "xlat.translate";
    const stats = this.scratch.get(24);
    const fn = opts.copy ? this.x.xlat_translate_copy : this.x.xlat_translate;
    const r = fn(this.#h(op), src._handle(op), dst._handle(op), stats);
    check(
      r,
      op,
      () => `src pageSize ${src.pageSize}, dst pageSize ${dst.pageSize}, table pageSize ${this.pageSize}`,
    );
    const v = new BigUint64Array(this.x.memory.buffer, stats, 3);
    const result: TranslateResult = { unmappedPages: Number(v[0]), outsidePages: Number(v[1]) };
    if (opts.copy) result.copiedPages = Number(v[2]);
    return result;
  }

  /** Whether no two mappings (active or removed) share a GPA page: the condition of a copying translate. */
  gpaDisjoint(): boolean {
    const op = "xlat.gpaDisjoint";
    return check(this.x.xlat_gpa_disjoint(this.#h(op)), op, () => "") === 1;
  }

  /**
   * Clear the pages of `dst` (GPA space) that no mapping, active or removed, maps to. With a
   * copying translate over every mapping afterwards, all of `dst` is rewritten without a clear.
   */
  clearUnmappedGpa(dst: Bitmap): void {
    const op = "xlat.clearUnmappedGpa";
    check(
      this.x.xlat_clear_unmapped_gpa(this.#h(op), dst._handle(op)),
      op,
      () => `dst pageSize ${dst.pageSize}`,
    );
  }

  /** Runs [start, length] (bits of `src`) of dirty pages that lie on no mapping. */
  *unmappedRuns(src: Bitmap, from = 0): Generator<[start: number, length: number], void, undefined> {
    const op = "xlat.unmappedRuns";
    let pos = BigInt(from);
    for (;;) {
      const out = this.scratch.get(RUNS_BATCH * 16);
      const got = check(
        this.x.xlat_unmapped_runs(this.#h(op), src._handle(op), pos, out, RUNS_BATCH),
        op,
        () => `from ${pos}`,
      );
      const batch = new BigUint64Array(this.x.memory.buffer, out, got * 2).slice();
      for (let i = 0; i < got; i++) yield [Number(batch[2 * i]), Number(batch[2 * i + 1])];
      if (got < RUNS_BATCH) return;
      pos = batch[2 * got - 2]! + batch[2 * got - 1]!;
    }
  }

  free(): void {
    if (this.#freed) return;
    check(this.x.xlat_free(this.handle), "xlat.free", () => "");
    this.#freed = true;
  }

  [Symbol.dispose](): void {
    this.free();
  }

  #h(op: string): number {
    if (this.#freed) throw new BitmapError(ErrorCode.BAD_HANDLE, op, "table was freed");
    return this.handle;
  }
}

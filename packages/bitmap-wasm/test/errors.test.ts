// Every bad-argument case of the raw ABI returns its documented code (ABI.md), leaves wasm
// memory byte-for-byte unchanged and never traps; the typed wrappers turn the codes into
// BitmapError with a clear message.

import { describe, expect, it } from "vitest";
import { BITMAP_MAX_NBITS, BitmapError, ErrorCode, errorCodeName } from "../src/index.ts";
import { loadBitmapCoreSync } from "../src/node.ts";

const core = loadBitmapCoreSync();
const x = core.exports;
const E = ErrorCode;
const U64_MAX = 0xffff_ffff_ffff_ffffn;
const i64 = (v: bigint): bigint => BigInt.asIntN(64, v);

// Fixtures: two bitmaps, a table, a caller buffer, a freed bitmap and a freed buffer.
const bm = x.bitmap_new(100n, 4096n, 0n);
const other = x.bitmap_new(70n, 4096n, 0n);
const big = x.bitmap_new(1000n, 8192n, 0n);
const table = x.xlat_new(4096n);
const buf = x.mem_alloc(64) >>> 0;
const freedBm = x.bitmap_new(10n, 4096n, 0n);
x.bitmap_free(freedBm);
const freedBuf = x.mem_alloc(32);
x.mem_free(freedBuf);
x.xlat_map(table, 0n, 0n, 0x10000n);
const data = x.bitmap_data(bm) >>> 0;

/** [name, call, expected code]; each call must return the code and change no byte of memory. */
const cases: [string, () => number | bigint, number][] = [
  // memory
  ["mem_alloc above 4 GiB - 64 KiB", () => x.mem_alloc(-1), 0],
  ["mem_free(0)", () => x.mem_free(0), E.BAD_HANDLE],
  ["mem_free(unaligned)", () => x.mem_free(buf + 4), E.BAD_HANDLE],
  ["mem_free(double)", () => x.mem_free(freedBuf), E.BAD_HANDLE],
  ["mem_free(bitmap handle)", () => x.mem_free(bm), E.BAD_HANDLE],
  ["mem_free(table handle)", () => x.mem_free(table), E.BAD_HANDLE],
  ["mem_free(past memory)", () => x.mem_free(0x7fff_fff0), E.BAD_HANDLE],
  // bitmap_new
  ["bitmap_new nbits < 0", () => x.bitmap_new(-1n, 4096n, 0n), 0],
  ["bitmap_new nbits too large", () => x.bitmap_new(1n << 35n, 4096n, 0n), 0],
  ["bitmap_new page 0", () => x.bitmap_new(1n, 0n, 0n), 0],
  ["bitmap_new page 3000", () => x.bitmap_new(1n, 3000n, 0n), 0],
  ["bitmap_new page 256", () => x.bitmap_new(1n, 256n, 0n), 0],
  ["bitmap_new page 2 GiB", () => x.bitmap_new(1n, 1n << 31n, 0n), 0],
  ["bitmap_new page negative", () => x.bitmap_new(1n, -4096n, 0n), 0],
  ["bitmap_new base unaligned", () => x.bitmap_new(1n, 4096n, 512n), 0],
  ["bitmap_new span past 2^64", () => x.bitmap_new(2n, 4096n, i64(U64_MAX - 4095n)), 0],
  // handles
  ["bitmap_count(0)", () => x.bitmap_count(0, 0n, 0n), E.BAD_HANDLE],
  ["bitmap_count(freed)", () => x.bitmap_count(freedBm, 0n, 0n), E.BAD_HANDLE],
  ["bitmap_count(buffer)", () => x.bitmap_count(buf, 0n, 0n), E.BAD_HANDLE],
  ["bitmap_count(table)", () => x.bitmap_count(table, 0n, 0n), E.BAD_HANDLE],
  ["bitmap_count(words)", () => x.bitmap_count(data, 0n, 0n), E.BAD_HANDLE],
  ["bitmap_count(wild)", () => x.bitmap_count(0x7fff_0000, 0n, 0n), E.BAD_HANDLE],
  ["bitmap_free(freed)", () => x.bitmap_free(freedBm), E.BAD_HANDLE],
  ["bitmap_data(buffer)", () => x.bitmap_data(buf), 0],
  ["bitmap_nbits(table)", () => x.bitmap_nbits(table), E.BAD_HANDLE],
  ["bitmap_page_size(0)", () => x.bitmap_page_size(0), E.BAD_HANDLE],
  ["bitmap_base(0)", () => x.bitmap_base(0), E.BAD_HANDLE],
  // ranges
  ["set start < 0", () => x.bitmap_set_range(bm, -1n, 1n), E.RANGE],
  ["set n < 0", () => x.bitmap_set_range(bm, 0n, -1n), E.RANGE],
  ["set past end", () => x.bitmap_set_range(bm, 90n, 11n), E.RANGE],
  ["set start past end", () => x.bitmap_set_range(bm, 101n, 0n), E.RANGE],
  ["set huge n", () => x.bitmap_set_range(bm, 1n, i64(U64_MAX)), E.RANGE],
  ["clear past end", () => x.bitmap_clear_range(bm, 0n, 101n), E.RANGE],
  ["test bit = nbits", () => x.bitmap_test(bm, 100n), E.RANGE],
  ["test bit < 0", () => x.bitmap_test(bm, -5n), E.RANGE],
  ["fill 2", () => x.bitmap_fill(bm, 2), E.BAD_ARGUMENT],
  ["count past end", () => x.bitmap_count(bm, 50n, 51n), E.RANGE],
  ["next_set from > nbits", () => x.bitmap_next_set(bm, 101n), E.RANGE],
  ["next_clear from < 0", () => x.bitmap_next_clear(bm, -1n), E.RANGE],
  // merges
  ["or_from src range past end", () => x.bitmap_or_from(bm, other, 60n, 0n, 11n), E.RANGE],
  ["or_from dst range past end", () => x.bitmap_or_from(other, bm, 0n, 60n, 11n), E.RANGE],
  ["or_from overlapping in place", () => x.bitmap_or_from(bm, bm, 0n, 10n, 20n), E.OVERLAP],
  ["or_from bad src", () => x.bitmap_or_from(bm, freedBm, 0n, 0n, 1n), E.BAD_HANDLE],
  ["andnot_from overlapping in place", () => x.bitmap_andnot_from(bm, bm, 5n, 0n, 6n), E.OVERLAP],
  ["andnot_from n < 0", () => x.bitmap_andnot_from(bm, other, 0n, 0n, -1n), E.RANGE],
  ["take_and_clear into itself", () => x.bitmap_take_and_clear(bm, bm, 0n, 10n), E.OVERLAP],
  ["take_and_clear into shorter", () => x.bitmap_take_and_clear(bm, other, 0n, 100n), E.RANGE],
  // caller buffers
  ["runs max < 0", () => x.bitmap_runs(bm, 0n, buf, -1), E.BAD_ARGUMENT],
  ["runs buffer too small", () => x.bitmap_runs(bm, 0n, buf, 5), E.BAD_POINTER],
  ["runs buffer at 0", () => x.bitmap_runs(bm, 0n, 0, 1), E.BAD_POINTER],
  ["runs buffer in bitmap words", () => x.bitmap_runs(bm, 0n, data, 1), E.BAD_POINTER],
  ["runs buffer freed", () => x.bitmap_runs(bm, 0n, freedBuf, 1), E.BAD_POINTER],
  ["runs buffer past memory", () => x.bitmap_runs(bm, 0n, 0x7fff_fff0, 1), E.BAD_POINTER],
  ["runs from past end", () => x.bitmap_runs(bm, 101n, buf, 1), E.RANGE],
  ["density 0 buckets", () => x.bitmap_density(bm, 0n, 100n, buf, 0), E.BAD_ARGUMENT],
  ["density too many buckets for buffer", () => x.bitmap_density(bm, 0n, 100n, buf, 9), E.BAD_POINTER],
  ["density range past end", () => x.bitmap_density(bm, 1n, 100n, buf, 1), E.RANGE],
  // convert
  ["convert into itself", () => x.bitmap_convert(bm, bm), E.OVERLAP],
  ["convert bad dst", () => x.bitmap_convert(bm, freedBm), E.BAD_HANDLE],
  // tables
  ["xlat_new page 1000", () => x.xlat_new(1000n), 0],
  ["xlat_new page 2^31", () => x.xlat_new(1n << 31n), 0],
  ["xlat_map bad handle", () => x.xlat_map(bm, 0n, 0n, 4096n), E.BAD_HANDLE],
  ["xlat_map iova unaligned", () => x.xlat_map(table, 0x10100n, 0n, 4096n), E.ALIGN],
  ["xlat_map gpa unaligned", () => x.xlat_map(table, 0x20000n, 1n, 4096n), E.ALIGN],
  ["xlat_map length unaligned", () => x.xlat_map(table, 0x20000n, 0n, 100n), E.ALIGN],
  ["xlat_map length 0", () => x.xlat_map(table, 0x20000n, 0n, 0n), E.BAD_ARGUMENT],
  ["xlat_map iova overflow", () => x.xlat_map(table, i64(U64_MAX - 4095n), 0n, 8192n), E.OVERFLOW],
  ["xlat_map gpa overflow", () => x.xlat_map(table, 0x20000n, i64(U64_MAX - 4095n), 8192n), E.OVERFLOW],
  ["xlat_map overlap", () => x.xlat_map(table, 0xf000n, 0n, 8192n), E.OVERLAP],
  ["xlat_unmap length 0", () => x.xlat_unmap(table, 0n, 0n), E.BAD_ARGUMENT],
  ["xlat_unmap unaligned", () => x.xlat_unmap(table, 1n, 4096n), E.ALIGN],
  ["xlat_unmap overflow", () => x.xlat_unmap(table, i64(U64_MAX - 4095n), 8192n), E.OVERFLOW],
  ["xlat_retire bad handle", () => x.xlat_retire(bm), E.BAD_HANDLE],
  ["xlat_mapping_count bad handle", () => x.xlat_mapping_count(0), E.BAD_HANDLE],
  ["xlat_mapping_get index < 0", () => x.xlat_mapping_get(table, -1, buf), E.BAD_ARGUMENT],
  ["xlat_mapping_get index = count", () => x.xlat_mapping_get(table, 1, buf), E.BAD_ARGUMENT],
  ["xlat_mapping_get bad buffer", () => x.xlat_mapping_get(table, 0, data), E.BAD_POINTER],
  ["xlat_translate page mismatch", () => x.xlat_translate(table, big, bm, 0), E.PAGE_SIZE],
  ["xlat_translate src = dst", () => x.xlat_translate(table, bm, bm, 0), E.OVERLAP],
  ["xlat_translate bad stats", () => x.xlat_translate(table, bm, other, data), E.BAD_POINTER],
  ["xlat_translate bad table", () => x.xlat_translate(bm, bm, other, 0), E.BAD_HANDLE],
  ["xlat_translate_copy page mismatch", () => x.xlat_translate_copy(table, big, bm, 0), E.PAGE_SIZE],
  ["xlat_translate_copy src = dst", () => x.xlat_translate_copy(table, bm, bm, 0), E.OVERLAP],
  ["xlat_translate_copy bad stats", () => x.xlat_translate_copy(table, bm, other, data), E.BAD_POINTER],
  ["xlat_translate_copy bad table", () => x.xlat_translate_copy(bm, bm, other, 0), E.BAD_HANDLE],
  ["xlat_gpa_disjoint bad table", () => x.xlat_gpa_disjoint(bm), E.BAD_HANDLE],
  ["xlat_clear_unmapped_gpa page mismatch", () => x.xlat_clear_unmapped_gpa(table, big), E.PAGE_SIZE],
  ["xlat_clear_unmapped_gpa bad bitmap", () => x.xlat_clear_unmapped_gpa(table, table), E.BAD_HANDLE],
  ["xlat_clear_unmapped_gpa bad table", () => x.xlat_clear_unmapped_gpa(bm, bm), E.BAD_HANDLE],
  ["xlat_unmapped_runs max < 0", () => x.xlat_unmapped_runs(table, bm, 0n, buf, -1), E.BAD_ARGUMENT],
  ["xlat_unmapped_runs from past end", () => x.xlat_unmapped_runs(table, bm, 101n, buf, 1), E.RANGE],
  ["xlat_unmapped_runs page mismatch", () => x.xlat_unmapped_runs(table, big, 0n, buf, 1), E.PAGE_SIZE],
  ["xlat_free bitmap", () => x.xlat_free(bm), E.BAD_HANDLE],
];

// Codes recorded for pointer-returning calls (they return 0).
const lastError: Record<string, number> = {
  "mem_alloc above 4 GiB - 64 KiB": E.TOO_LARGE,
  "bitmap_new nbits < 0": E.RANGE,
  "bitmap_new nbits too large": E.TOO_LARGE,
  "bitmap_new page 0": E.PAGE_SIZE,
  "bitmap_new page 3000": E.PAGE_SIZE,
  "bitmap_new page 256": E.PAGE_SIZE,
  "bitmap_new page 2 GiB": E.PAGE_SIZE,
  "bitmap_new page negative": E.PAGE_SIZE,
  "bitmap_new base unaligned": E.ALIGN,
  "bitmap_new span past 2^64": E.OVERFLOW,
  "xlat_new page 1000": E.PAGE_SIZE,
  "xlat_new page 2^31": E.PAGE_SIZE,
};

describe("raw ABI bad arguments", () => {
  // Fill the bitmaps so a stray write of either polarity would show.
  x.bitmap_fill(bm, 1);
  x.bitmap_set_range(other, 3n, 40n);

  it.each(cases)("%s returns its code and changes no byte of memory", (name, call, code) => {
    const before = new Uint8Array(x.memory.buffer).slice();
    const got = call();
    expect(Number(got)).toBe(code);
    if (name in lastError) expect(x.abi_last_error()).toBe(lastError[name]);
    const after = new Uint8Array(x.memory.buffer);
    expect(after.length).toBe(before.length);
    expect(Buffer.compare(after, before)).toBe(0);
  });

  it("a successful pointer-returning call resets abi_last_error", () => {
    expect(x.bitmap_new(-1n, 4096n, 0n)).toBe(0);
    expect(x.abi_last_error()).toBe(E.RANGE);
    const ok = x.bitmap_new(1n, 4096n, 0n);
    expect(ok).not.toBe(0);
    expect(x.abi_last_error()).toBe(0);
    expect(x.bitmap_free(ok)).toBe(0);
  });

  it("a span ending exactly at 2^64 - 1 is accepted, one page more is not", () => {
    const base = U64_MAX + 1n - 2n * 4096n;
    const h = x.bitmap_new(1n, 4096n, i64(base));
    expect(h).not.toBe(0);
    expect(BigInt.asUintN(64, x.bitmap_base(h))).toBe(base);
    expect(x.bitmap_free(h)).toBe(0);
    expect(x.bitmap_new(2n, 4096n, i64(base))).toBe(0);
    expect(x.abi_last_error()).toBe(E.OVERFLOW);
  });

  it("mem_alloc reports NOMEM when the request cannot fit below 4 GiB", () => {
    const block = x.mem_alloc(128 << 10);
    expect(block).not.toBe(0);
    expect(x.mem_alloc(0xffff_0000 | 0)).toBe(0);
    expect(x.abi_last_error()).toBe(E.NOMEM);
    expect(x.mem_free(block)).toBe(0);
  });
});

describe("BitmapError from the typed wrappers", () => {
  it("carries the code, the operation and a message naming the arguments", () => {
    const b = core.bitmap({ nbits: 100 });
    const err = (() => {
      try {
        b.set(90, 20);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(BitmapError);
    expect(err).toMatchObject({ code: E.RANGE, op: "bitmap.set", name: "BitmapError" });
    expect((err as Error).message).toBe(
      "bitmap.set(start 90, n 20 on bitmap of 100 bits, pageSize 4096, base 0x0): RANGE (-2): bit range is negative or runs past the end of the bitmap",
    );
    b.free();
  });

  it("rejects non-integer positions, bad geometry and use after free", () => {
    const b = core.bitmap({ nbits: 10 });
    expect(() => b.set(1.5, 1)).toThrow(expect.objectContaining({ code: E.BAD_ARGUMENT }));
    expect(() => b.count(Number.NaN)).toThrow(expect.objectContaining({ code: E.BAD_ARGUMENT }));
    expect(() => core.bitmap({ nbits: 10, pageSize: 1000n })).toThrow(
      expect.objectContaining({ code: E.PAGE_SIZE }),
    );
    expect(() => core.bitmap({ nbits: 10, base: 1n })).toThrow(expect.objectContaining({ code: E.ALIGN }));
    expect(() => core.bitmap({ nbits: 10, base: -4096n })).toThrow(
      expect.objectContaining({ code: E.OVERFLOW }),
    );
    expect(() => core.bitmap({ nbits: -1 })).toThrow(expect.objectContaining({ code: E.RANGE }));
    expect(() => core.bitmap({ nbits: 2 ** 36 })).toThrow(expect.objectContaining({ code: E.TOO_LARGE }));
    expect(() => core.bitmap({ nbits: BITMAP_MAX_NBITS + 1 })).toThrow(
      expect.objectContaining({ code: E.TOO_LARGE }),
    );
    expect(() => core.density(b, 0)).toThrow(expect.objectContaining({ code: E.BAD_ARGUMENT }));
    b.free();
    b.free(); // idempotent
    expect(() => b.count()).toThrow(expect.objectContaining({ code: E.BAD_HANDLE }));
    expect(() => b.bytes).toThrow(expect.objectContaining({ code: E.BAD_HANDLE }));
  });

  it("names every code", () => {
    expect(Object.entries(E).every(([name, code]) => errorCodeName(code) === name)).toBe(true);
    expect(errorCodeName(-99)).toBe("UNKNOWN(-99)");
  });
});

// The module itself: no imports, the exports of the ABI, and an allocator that does not grow
// memory over long alloc/free cycles (a tracker allocates and frees bitmaps for hours).

import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { loadBitmapCore } from "../src/index.ts";
import { loadBitmapCoreSync, wasmPath } from "../src/node.ts";
import { runs } from "./reference.ts";

describe("bitmap.wasm", () => {
  it("has zero imports and exports memory and abi_version", async () => {
    const module = await WebAssembly.compile(readFileSync(wasmPath()));
    expect(WebAssembly.Module.imports(module)).toEqual([]);
    const names = WebAssembly.Module.exports(module).map((e) => e.name);
    expect(names).toContain("memory");
    expect(names).toContain("abi_version");
    const { exports } = await WebAssembly.instantiate(module, {});
    expect((exports.abi_version as () => number)()).toBe(1);
  });

  it("loads from bytes, a Module, a Response and a file: URL", async () => {
    const bytes = readFileSync(wasmPath());
    const url = new URL(`file://${wasmPath()}`);
    for (const source of [
      bytes,
      bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
      new WebAssembly.Module(bytes),
      new Response(bytes, { headers: { "content-type": "application/wasm" } }),
      url,
    ]) {
      const core = await loadBitmapCore(source);
      const bm = core.bitmap({ nbits: 70 });
      bm.set(60, 10);
      expect(bm.count()).toBe(10);
      bm.free();
    }
  });
});

describe("allocator", () => {
  it("random alloc/free cycles of bitmaps, tables and buffers do not grow memory", () => {
    const core = loadBitmapCoreSync();
    const x = core.exports;
    const baseline = core.usedBytes;
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.constantFrom("bitmap", "table", "buffer"),
            fc.integer({ min: 0, max: 200_000 }),
            fc.nat(),
          ),
          {
            minLength: 1,
            maxLength: 40,
          },
        ),
        (steps) => {
          // At most 40 live blocks of at most ~200 KB: 8 MiB would always do.
          const live: (() => void)[] = [];
          for (const [kind, n, pick] of steps) {
            if (kind === "bitmap") {
              const bm = core.bitmap({ nbits: n * 8 });
              bm.set(0, Math.min(5, bm.nbits));
              live.push(() => bm.free());
            } else if (kind === "table") {
              const t = core.xlatTable();
              for (let i = 0; i < n % 100; i++) t.map(BigInt(i) * 8192n, 0n, 4096n);
              live.push(() => t.free());
            } else {
              const p = x.mem_alloc(n);
              expect(p).not.toBe(0);
              // A reused block comes back zeroed.
              expect(new Uint8Array(x.memory.buffer, p >>> 0, n).every((b) => b === 0)).toBe(true);
              new Uint8Array(x.memory.buffer, p >>> 0, n).fill(0xa5);
              live.push(() => expect(x.mem_free(p)).toBe(0));
            }
            if (live.length > 1 && pick % 3 === 0) live.splice(pick % live.length, 1)[0]!();
          }
          for (const free of live.splice(0)) free();
          expect(core.usedBytes).toBe(baseline);
        },
      ),
      runs(60),
    );
    const grownTo = x.memory.buffer.byteLength;
    // Hours of a tracker's life, compressed: the same pattern again many times must not grow memory.
    for (let round = 0; round < 2000; round++) {
      const a = core.bitmap({ nbits: 1 << (10 + (round % 8)) });
      const t = core.xlatTable();
      t.map(0n, 0n, 4096n * BigInt(1 + (round % 50)));
      const b = core.bitmap({ nbits: 1 << (10 + ((round * 7) % 8)) });
      a.free();
      t.free();
      b.free();
    }
    expect(x.memory.buffer.byteLength).toBe(grownTo);
    expect(grownTo).toBeLessThanOrEqual(16 << 20);
    expect(core.usedBytes).toBe(baseline);
  });

  it("zero-byte blocks are real allocations that free cleanly, also at the top of the heap", () => {
    const core = loadBitmapCoreSync();
    const x = core.exports;
    const before = core.usedBytes;
    const a = x.mem_alloc(0);
    const b = x.mem_alloc(0);
    expect(a).not.toBe(0);
    expect(b).not.toBe(a);
    expect(x.mem_free(b)).toBe(0); // the topmost block
    expect(x.mem_free(a)).toBe(0);
    expect(x.mem_free(a)).toBe(-1); // double free
    expect(core.usedBytes).toBe(before);
  });

  it("a new bitmap is zeroed even where a freed one had bits set", () => {
    const core = loadBitmapCoreSync();
    const a = core.bitmap({ nbits: 4096 });
    a.fill(true);
    const ptr = a.ptr;
    a.free();
    const b = core.bitmap({ nbits: 4096 });
    expect(b.ptr).toBe(ptr);
    expect(b.count()).toBe(0);
    b.free();
  });

  it("views taken before memory.grow are detached; fresh ones see the same bits", () => {
    const core = loadBitmapCoreSync();
    const a = core.bitmap({ nbits: 256 });
    a.set(10, 5);
    const old = a.bytes;
    const before = core.memory.buffer.byteLength;
    const big = core.bitmap({ nbits: 64 << 20 }); // 8 MiB: forces memory.grow
    expect(core.memory.buffer.byteLength).toBeGreaterThan(before);
    expect(old.byteLength).toBe(0); // detached
    expect(a.bytes[1]).toBe(0b01111100);
    big.free();
    a.free();
  });
});

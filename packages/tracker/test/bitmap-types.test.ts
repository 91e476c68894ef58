import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import { describe, expect, it } from "vitest";
import type { BitmapCore } from "../src/bitmap.ts";

describe("bitmap-wasm satisfies the tracker's structural types", () => {
  it("the real core is a BitmapCore (checked by tsc) and works", () => {
    const core: BitmapCore = loadBitmapCoreSync();
    const b = core.bitmap({ nbits: 130, pageSize: 4096n, base: 0n });
    b.set(63, 3);
    expect(b.count()).toBe(3);
    const coarse = core.bitmap({ nbits: 2, pageSize: 1n << 20n, base: 0n });
    expect(core.convert(b, coarse).outsidePages).toBe(0);
    expect(coarse.count()).toBe(1);
    b.free();
    coarse.free();
  });
});

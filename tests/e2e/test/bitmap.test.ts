// The bitmap tools against the naive reference model, on random files (seeded, so a failure
// names the seed that reproduces it).

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  bitmapBytes,
  dirtyPages,
  placeInto,
  randomPages,
  rng,
  runStats,
  translatePages,
} from "./bitmap-reference.ts";
import { cli, cliJson, tempDir } from "./helpers.ts";

const tmp = tempDir();
afterAll(tmp.cleanup);
const file = (name: string) => join(tmp.dir, name);
const PAGE_SIZES = [512n, 4096n, 8192n, 65536n, 2n << 20n];
const pick = <T>(rand: () => number, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const sorted = (s: Set<number>) => [...s].sort((a, b) => a - b);

describe("bitmap stats", () => {
  for (const seed of [1, 2, 3, 4]) {
    it(`matches the reference (seed ${seed})`, async () => {
      const rand = rng(seed);
      const nbits = 64 * (1 + Math.floor(rand() * 400));
      const pages = randomPages(rand, nbits, rand() * 0.6);
      const pageSize = pick(rand, PAGE_SIZES);
      writeFileSync(file(`s${seed}.bin`), bitmapBytes(nbits, pages));
      const { code, doc } = await cliJson([
        "bitmap",
        "stats",
        file(`s${seed}.bin`),
        "--page-size",
        String(pageSize),
        "--base",
        `0x${(pageSize * 1000n).toString(16)}`,
      ]);
      expect(code).toBe(0);
      const { runs, largest } = runStats(pages);
      expect(doc).toMatchObject({
        pages: nbits,
        dirtyPages: pages.length,
        dirtyBytes: pages.length * Number(pageSize),
        runs,
        largestRun: largest,
        base: `0x${(pageSize * 1000n).toString(16)}`,
      });
      expect(doc.density).toBeCloseTo(pages.length / nbits, 12);
    });
  }
});

describe("bitmap convert", () => {
  for (const seed of [11, 12, 13, 14, 15, 16]) {
    it(`never loses a page and sets nothing extra (seed ${seed})`, async () => {
      const rand = rng(seed);
      const nbits = 64 * (1 + Math.floor(rand() * 100));
      const pageSize = pick(rand, PAGE_SIZES);
      const toPageSize = pick(rand, PAGE_SIZES);
      const base = pageSize * BigInt(Math.floor(rand() * 5000));
      const src = { bytes: bitmapBytes(nbits, randomPages(rand, nbits, rand() * 0.3)), pageSize, base };
      writeFileSync(file(`c${seed}.bin`), src.bytes);
      const { code, doc } = await cliJson([
        "bitmap",
        "convert",
        `${file(`c${seed}.bin`)},page-size=${pageSize},base=${base}`,
        file(`c${seed}.out`),
        "--to-page-size",
        String(toPageSize),
      ]);
      expect(code).toBe(0);
      const toBase = base - (base % toPageSize);
      const out = readFileSync(file(`c${seed}.out`));
      expect(out.length % 8).toBe(0);
      expect(dirtyPages(out)).toEqual(sorted(placeInto(src, toPageSize, toBase)));
      expect((doc.output as { base: string }).base).toBe(`0x${toBase.toString(16)}`);
    });
  }
});

describe("bitmap merge", () => {
  for (const seed of [21, 22, 23, 24]) {
    it(`ORs inputs placed by their own bases and page sizes (seed ${seed})`, async () => {
      const rand = rng(seed);
      const inputs = Array.from({ length: 2 + Math.floor(rand() * 2) }, (_, i) => {
        const nbits = 64 * (1 + Math.floor(rand() * 40));
        const pageSize = pick(rand, PAGE_SIZES);
        const base = pageSize * BigInt(Math.floor(rand() * 3000));
        const bytes = bitmapBytes(nbits, randomPages(rand, nbits, rand() * 0.3));
        writeFileSync(file(`m${seed}-${i}.bin`), bytes);
        return {
          bytes,
          pageSize,
          base,
          spec: `${file(`m${seed}-${i}.bin`)},page-size=${pageSize},base=0x${base.toString(16)}`,
        };
      });
      const outPageSize = inputs[0]!.pageSize;
      let lowest = inputs[0]!.base;
      for (const x of inputs) if (x.base < lowest) lowest = x.base;
      const outBase = lowest - (lowest % outPageSize);
      const { code } = await cliJson(["bitmap", "merge", file(`m${seed}.out`), ...inputs.map((x) => x.spec)]);
      expect(code).toBe(0);
      const want = new Set<number>();
      for (const x of inputs) for (const p of placeInto(x, outPageSize, outBase)) want.add(p);
      expect(dirtyPages(readFileSync(file(`m${seed}.out`)))).toEqual(sorted(want));
    });
  }
});

describe("bitmap translate", () => {
  for (const seed of [31, 32, 33, 34]) {
    it(`moves dirty IOVA pages to their GPAs (seed ${seed})`, async () => {
      const rand = rng(seed);
      const pageSize = 4096n;
      const nbits = 64 * 16;
      // Non-overlapping IOVA windows covering the whole bitmap, mapped to shuffled GPAs.
      const maps: { iova: bigint; gpa: bigint; length: bigint }[] = [];
      let at = 0;
      let gpaSlot = 0;
      while (at < nbits) {
        const len = Math.min(nbits - at, 1 + Math.floor(rand() * 200));
        maps.push({
          iova: BigInt(at) * pageSize,
          gpa: 0x40000000n + BigInt(gpaSlot) * 0x100000n,
          length: BigInt(len) * pageSize,
        });
        gpaSlot += 1 + Math.floor(rand() * 3);
        at += len;
      }
      const src = { bytes: bitmapBytes(nbits, randomPages(rand, nbits, 0.2)), pageSize, base: 0n };
      writeFileSync(file(`t${seed}.bin`), src.bytes);
      const { code, doc } = await cliJson([
        "bitmap",
        "translate",
        file(`t${seed}.bin`),
        file(`t${seed}.out`),
        ...maps.flatMap((m) => ["--map", `0x${m.iova.toString(16)}:0x${m.gpa.toString(16)}:${m.length}`]),
      ]);
      expect(code).toBe(0);
      const { gpaPages } = translatePages(src, maps, 0x40000000n);
      expect(dirtyPages(readFileSync(file(`t${seed}.out`)))).toEqual(sorted(gpaPages));
      expect(doc.unmappedDirtyPages).toBe(0);
    });
  }

  it("counts dirty pages on no mapping and exits 3, still writing the rest", async () => {
    writeFileSync(file("u.bin"), bitmapBytes(128, [0, 1, 70, 100]));
    writeFileSync(file("u.map"), "# iova gpa size\n0x0 0x100000 0x40000\n");
    const r = await cli(["bitmap", "translate", file("u.bin"), file("u.out"), "--map-file", file("u.map")]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/2 dirty IOVA pages lie on no mapping/);
    expect(dirtyPages(readFileSync(file("u.out")))).toEqual([0, 1]);
  });
});

describe("bitmap render", () => {
  it("draws a self-contained SVG whose cells add up to the dirty pages", async () => {
    const rand = rng(41);
    const pages = randomPages(rand, 64 * 64, 0.25);
    writeFileSync(file("r.bin"), bitmapBytes(64 * 64, pages));
    const { code, doc } = await cliJson([
      "bitmap",
      "render",
      file("r.bin"),
      "--svg",
      file("r.svg"),
      "--cells",
      "256",
    ]);
    expect(code).toBe(0);
    expect(doc).toMatchObject({ cells: 256, pagesPerCell: 16 });
    const svg = readFileSync(file("r.svg"), "utf8");
    expect(svg).toMatch(/^<\?xml[^>]*>\n<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg).not.toMatch(/(href|src)=|<script|@import|url\(/);
    const titles = [...svg.matchAll(/<title>0x[0-9a-f]+: (\d+)\/16 dirty<\/title>/g)].map((m) =>
      Number(m[1]),
    );
    expect(titles).toHaveLength(256);
    expect(titles.reduce((a, b) => a + b, 0)).toBe(pages.length);
  });
});

// `npm run bench`: the bitmap-wasm benchmark. For each bitmap size (32 MiB and 256 MiB of words,
// i.e. 1 TiB and 8 TiB of guest memory at 4 KiB pages) it times every operation in wasm, in native C
// (-O3 -march=native, through koffi on the very same wasm memory), the same wasm translated to C by
// wasm2c (compiled alike; on mirrored bitmaps in its own linear memory), in plain JS (Uint32Array
// views of the wasm memory) and a memcpy of the same bytes, interleaved, and reports medians and
// ratios to C.
// Before timing, every case checks that all implementations computed the same answer.
//
//   npm run bench                       # both sizes, writes bench/results.json
//   npm run bench -- --sizes=32         # one size only (a quick look; writes no results.json)
//   npm run bench -- --no-wasm          # baselines only, on a plain WebAssembly.Memory
//   npm run bench -- --markdown         # also print the table as Markdown (for BENCHMARKS.md)
//   npm run bench -- --ops=or-merge --rounds=15   # only ops whose name contains a filter, more rounds
//   npm run bench -- --ops=count --out=/tmp/count.json   # save a filtered run's rows elsewhere
import { readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import koffi from "koffi";
import { type BenchCase, type Impl, type ImplName, measureCase, type ResultRow } from "./harness.ts";
import * as js from "./js-ops.ts";
import { CC_FLAGS, loadNative, type NativeOps } from "./native.ts";
import { benchDir } from "./paths.ts";
import { renderTable, resultsJson, verdicts } from "./report.ts";
import { type CoreHelpers, loadRawCore, type RawCore } from "./wasm-core.ts";
import { loadWasm2cCore, type Wasm2cCore } from "./wasm2c-core.ts";

/** Runs listed per call: 64 Ki pairs = 1 MiB of output buffer, so call overhead is negligible. */
const RUNS_CAP = 65536;
/** Mappings in the translation case. */
const NMAPS = 10_000;
/** Bit offsets of the unaligned merge: different, and neither a multiple of 64 (nor of 32). */
const UNALIGNED_SRC = 3;
const UNALIGNED_DST = 17;
const PAGE_4K = 4096n;
const MiB = 1 << 20;

interface SizeSpec {
  readonly label: string;
  readonly bytes: number;
  readonly rounds: number;
}

const SIZES: readonly SizeSpec[] = [
  { label: "32 MiB", bytes: 32 * MiB, rounds: 15 },
  { label: "256 MiB", bytes: 256 * MiB, rounds: 9 },
];

/** Wall time of each implementation's call in the last answer check (serves as its warm-up). */
const lastCheckMs = new Map<ImplName, number>();
/** --ops= filters (substrings of op names); empty means every op. */
let opFilters: string[] = [];
/** --rounds= override of every size's round count. */
let roundsOverride = 0;

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  opFilters = (argValue(args, "ops") ?? "").split(",").filter(Boolean);
  roundsOverride = Number(argValue(args, "rounds") ?? 0);
  const sizesArg = argValue(args, "sizes");
  const sizes = sizesArg ? SIZES.filter((s) => sizesArg.split(",").includes(String(s.bytes / MiB))) : SIZES;
  const withWasm = !args.includes("--no-wasm");
  const started = performance.now();

  const native = loadNative();
  const core = withWasm ? await loadRawCore() : undefined;
  console.log(machineLine(native));
  if (core)
    console.log(`wasm: ${core.wasmPath} (${core.wasmBytes} bytes, abi ${core.exports.abi_version()})`);
  else console.log("wasm: skipped (--no-wasm); baselines run on a plain WebAssembly.Memory");
  const w2c = core && !args.includes("--no-wasm2c") ? loadWasm2cCore() : { skipped: "--no-wasm2c" };
  console.log(w2c.core ? `wasm2c: ${w2c.core.description}` : `wasm2c: skipped (${w2c.skipped})`);

  const arena = core ? coreArena(core) : plainArena();
  const w2cArena = w2c.core ? coreArena(w2c.core) : undefined;
  const rows: ResultRow[] = [];
  for (const size of sizes) {
    const t0 = performance.now();
    rows.push(
      ...runSize(
        size,
        arena,
        native,
        core,
        w2c.core && w2cArena ? { core: w2c.core, arena: w2cArena } : undefined,
      ),
    );
    console.log(`${size.label}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }

  console.log(renderTable(rows));
  if (args.includes("--markdown")) console.log(`\n${renderTable(rows, true)}\n`);
  console.log(
    `load average after the run: ${loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")} (other work on the machine skews medians)`,
  );
  for (const v of verdicts(rows).filter((x) => !x.met)) {
    const bw = v.ofMemcpy === undefined ? "" : `, ${Math.round(v.ofMemcpy * 100)}% of memcpy`;
    console.log(`missed: ${v.op} ${v.size}: wasm/C ${v.wasmToC.toFixed(2)}x (paired)${bw}`);
  }
  // results.json is the record of a full run; a filtered run writes only where --out= says.
  const partial = args.some((a) => /^--(sizes|ops|rounds|no-wasm)\b/.test(a));
  const out = argValue(args, "out") ?? (partial ? undefined : join(benchDir, "results.json"));
  const took = `${((performance.now() - started) / 1000).toFixed(1)} s`;
  if (out) {
    writeFileSync(out, resultsJson(rows));
    console.log(`wrote ${out} (${rows.length} rows) in ${took}`);
  } else {
    console.log(`partial run (${took}): results.json left as it was; pass --out=FILE to save these rows`);
  }
}

/** All cases of one bitmap size, on one set of buffers that is freed afterwards. */
function runSize(
  size: SizeSpec,
  arena: Arena,
  c: NativeOps,
  core: RawCore | undefined,
  w2c: { core: Wasm2cCore; arena: Arena } | undefined,
): ResultRow[] {
  const nbits = size.bytes * 8;
  const nwords = BigInt(size.bytes / 8);
  const bytes = BigInt(size.bytes);
  const maps = translationMaps(nbits);
  const m1 = allocSpace(arena, nbits);
  const table = core ? buildXlat(core, maps) : 0;
  // The wasm2c instance gets the same buffers in its own memory, and every input is written to both.
  const m2 = w2c ? allocSpace(w2c.arena, nbits) : undefined;
  const table2 = w2c ? buildXlat(w2c.core, maps) : 0;
  const { a, b, coarse, coarseSrc, runsBuf, mapsBuf } = m1;

  // Memory has stopped growing: derive addresses and views now (older ones would be detached).
  const memory = arena.memory!;
  const base = koffi.address(memory.buffer);
  const addr = (ptr: number) => base + BigInt(ptr);
  const base2 = w2c?.core.base() ?? 0n;
  /** The addresses an implementation works on: the wasm memory, or wasm2c's for its column. */
  const spaceOf = (impl: Impl) => (impl.name === "wasm2c" && m2 ? addresses(base2, m2) : addresses(base, m1));
  const S1 = addresses(base, m1);
  const S2 = m2 ? addresses(base2, m2) : undefined;
  const both = (f: (s: Addresses) => void) => {
    f(S1);
    if (S2) f(S2);
  };
  const u32 = (ptr: number, nbitsOf: number) => new Uint32Array(memory.buffer, ptr, Math.ceil(nbitsOf / 32));
  const [A, B, C, E] = [addr(a.ptr), addr(b.ptr), addr(coarse.ptr), addr(coarseSrc.ptr)];
  const [a32, b32, c32, e32] = [
    u32(a.ptr, nbits),
    u32(b.ptr, nbits),
    u32(coarse.ptr, nbits / 512),
    u32(coarseSrc.ptr, nbits / 16),
  ];
  const runsView = new BigUint64Array(memory.buffer, runsBuf, RUNS_CAP * 2);
  const mapsView = new BigUint64Array(memory.buffer, mapsBuf, NMAPS * 3);
  for (const [i, m] of maps.entries()) {
    mapsView.set([BigInt(m.iovaPage), BigInt(m.gpaPage), BigInt(m.npages)], i * 3);
  }
  const jsRunsOut = new Float64Array(RUNS_CAP * 2);
  const ex = core?.exports;
  const ex2 = w2c?.core.exports;
  const memcpy: Impl = { name: "memcpy", run: () => c.memcpy(B, A, bytes) };
  const hashOf = (ptr: bigint, nbitsOf: number) => c.hash(ptr, BigInt(Math.ceil(nbitsOf / 64)));
  const fillDense = () => both((s) => c.fillRandom(s.A, nwords, 1n));
  const rows: ResultRow[] = [];
  const bench = (op: string, impls: Impl[], extra: Partial<BenchCase> = {}) => {
    if (!selected(op)) return;
    const present = impls.filter((i) => (i.name !== "wasm" || core) && (i.name !== "wasm2c" || w2c));
    rows.push(
      ...measureCase({
        op,
        sizeLabel: size.label,
        bitmapBytes: size.bytes,
        rounds: roundsOverride || size.rounds,
        impls: present,
        warmedMs: lastCheckMs,
        ...extra,
      }),
    );
  };
  const wasm = (run: () => void): Impl[] => (ex ? [{ name: "wasm", run }] : []);
  /** The wasm2c column: `run` gets wasm2c's exports and its handles (m2). */
  const wasm2c = (run: (x: NonNullable<typeof ex2>, h: Space) => void): Impl[] =>
    ex2 && m2 ? [{ name: "wasm2c", run: () => run(ex2, m2) }] : [];

  // Pre-fault every page so no implementation pays first-touch costs inside a timed call.
  both((s) => c.memset(s.B, 0, bytes));
  fillDense();

  // --- Dense source (each bit set with probability 1/2) ---
  const orCase = (op: string, srcStart: number, dstStart: number) => {
    const n = nbits - Math.max(srcStart, dstStart);
    const impls: Impl[] = [
      ...wasm(() =>
        core!.check(
          op,
          ex!.bitmap_or_from(b.handle, a.handle, BigInt(srcStart), BigInt(dstStart), BigInt(n)),
        ),
      ),
      ...wasm2c((x, h) =>
        w2c!.core.check(
          op,
          x.bitmap_or_from(h.b.handle, h.a.handle, BigInt(srcStart), BigInt(dstStart), BigInt(n)),
        ),
      ),
      { name: "c", run: () => c.orRange(B, BigInt(dstStart), A, BigInt(srcStart), BigInt(n)) },
      { name: "js", run: () => js.orRange(b32, dstStart, a32, srcStart, n) },
    ];
    // Merge into a non-empty destination, so the check sees OR and not a copy.
    agree(
      op,
      size,
      impls,
      (i) => c.fillSparse(spaceOf(i).B, BigInt(nbits), BigInt(Math.floor(nbits / 1000)), 7n),
      (i) => hashOf(spaceOf(i).B, nbits),
    );
    bench(op, [...impls, memcpy]);
  };
  orCase("or-merge aligned", 0, 0);
  orCase("or-merge unaligned", UNALIGNED_SRC, UNALIGNED_DST);

  {
    let got = 0;
    const impls: Impl[] = [
      ...wasm(() => {
        got = Number(ex!.bitmap_count(a.handle, 0n, BigInt(nbits)));
      }),
      ...wasm2c((x, h) => {
        got = Number(x.bitmap_count(h.a.handle, 0n, BigInt(nbits)));
      }),
      {
        name: "c",
        run: () => {
          got = c.count(A, 0n, BigInt(nbits));
        },
      },
      {
        name: "js",
        run: () => {
          got = js.count(a32, 0, nbits);
        },
      },
    ];
    agree(
      "count",
      size,
      impls,
      () => {},
      () => got,
    );
    bench("count", [...impls, memcpy]);
  }

  const runsCase = (op: string) => {
    let got = 0;
    let totalLength = 0;
    const impls: Impl[] = [
      ...wasm(() => {
        got = wasmRunsAll(core!, a.handle, runsBuf, (n) => runsView[n]!);
      }),
      ...wasm2c((_x, h) => {
        got = wasmRunsAll(w2c!.core, h.a.handle, h.runsBuf, (n) => c.word(S2!.runsBuf, BigInt(n)));
      }),
      {
        name: "c",
        run: () => {
          const r = c.runsAll(A, BigInt(nbits), addr(runsBuf), BigInt(RUNS_CAP));
          got = r.runs;
          totalLength = r.totalLength;
        },
      },
      {
        name: "js",
        run: () => {
          got = js.runsAll(a32, nbits, jsRunsOut, RUNS_CAP);
        },
      },
    ];
    agree(
      op,
      size,
      impls,
      () => {},
      () => got,
    );
    // The C lister's run lengths must sum to the popcount: checked once here, outside the timed
    // calls (inside them it had added a whole count pass to C's time, a third of it when sparse).
    if (totalLength !== c.count(A, 0n, BigInt(nbits)))
      throw new Error(`${op}: C run lengths do not sum to the count`);
    bench(op, [...impls, memcpy]);
  };
  runsCase("runs dense 50%");

  {
    const impls: Impl[] = [
      ...wasm(() => core!.check("xlat_translate", ex!.xlat_translate(table, a.handle, b.handle, 0))),
      ...wasm2c((x, h) =>
        w2c!.core.check("xlat_translate", x.xlat_translate(table2, h.a.handle, h.b.handle, 0)),
      ),
      { name: "c", run: () => c.translate(A, B, addr(mapsBuf), BigInt(NMAPS)) },
      { name: "js", run: () => js.translate(a32, b32, maps) },
    ];
    agree(
      "translate 10k maps",
      size,
      impls,
      (i) => c.memset(spaceOf(i).B, 0, bytes),
      (i) => hashOf(spaceOf(i).B, nbits),
    );
    bench("translate 10k maps", [...impls, memcpy]);
  }

  {
    // Take-and-clear zeroes its source: refill it (untimed) before every call, for every impl.
    fillDense();
    const expected = hashOf(A, nbits);
    const impls: Impl[] = [
      ...wasm(() =>
        core!.check("take_and_clear", ex!.bitmap_take_and_clear(a.handle, b.handle, 0n, BigInt(nbits))),
      ),
      ...wasm2c((x, h) =>
        w2c!.core.check("take_and_clear", x.bitmap_take_and_clear(h.a.handle, h.b.handle, 0n, BigInt(nbits))),
      ),
      { name: "c", run: () => c.takeAndClear(A, B, nwords) },
      { name: "js", run: () => js.takeAndClear(a32, b32) },
    ];
    agree("take-and-clear", size, impls, fillDense, (i) => {
      const s = spaceOf(i);
      if (c.count(s.A, 0n, BigInt(nbits)) !== 0) return "source not cleared";
      return hashOf(s.B, nbits) === expected ? "copied" : "copy differs";
    });
    bench("take-and-clear", [...impls, memcpy], { before: fillDense });
  }

  // --- Sparse source (0.1 % of the bits) ---
  both((s) => c.fillSparse(s.A, BigInt(nbits), BigInt(Math.floor(nbits / 1000)), 11n));
  runsCase("runs sparse 0.1%");

  {
    const ncoarse = nbits / 512;
    const impls: Impl[] = [
      ...wasm(() => core!.check("convert", ex!.bitmap_convert(a.handle, coarse.handle))),
      ...wasm2c((x, h) => w2c!.core.check("convert", x.bitmap_convert(h.a.handle, h.coarse.handle))),
      { name: "c", run: () => c.coarsen4k2m(C, A, BigInt(ncoarse)) },
      { name: "js", run: () => js.coarsen4k2m(c32, a32, ncoarse) },
    ];
    agree(
      "coarsen 4K->2M",
      size,
      impls,
      (i) => c.memset(spaceOf(i).C, 0, BigInt(ncoarse / 8)),
      (i) => hashOf(spaceOf(i).C, ncoarse),
    );
    bench("coarsen 4K->2M", [...impls, memcpy]);
  }

  {
    // Into the 64 KiB-page bitmap (the expand case refills it afterwards).
    const ncoarse = nbits / 16;
    const impls: Impl[] = [
      ...wasm(() => core!.check("convert", ex!.bitmap_convert(a.handle, coarseSrc.handle))),
      ...wasm2c((x, h) => w2c!.core.check("convert", x.bitmap_convert(h.a.handle, h.coarseSrc.handle))),
      { name: "c", run: () => c.coarsen4k64k(E, A, BigInt(ncoarse)) },
      { name: "js", run: () => js.coarsen4k64k(e32, a32, ncoarse) },
    ];
    agree(
      "coarsen 4K->64K",
      size,
      impls,
      (i) => c.memset(spaceOf(i).E, 0, BigInt(ncoarse / 8)),
      (i) => hashOf(spaceOf(i).E, ncoarse),
    );
    bench("coarsen 4K->64K", [...impls, memcpy]);
  }

  {
    both((s) => c.fillRandom(s.E, BigInt(nbits / 16 / 64), 13n));
    const impls: Impl[] = [
      ...wasm(() => core!.check("convert", ex!.bitmap_convert(coarseSrc.handle, b.handle))),
      ...wasm2c((x, h) => w2c!.core.check("convert", x.bitmap_convert(h.coarseSrc.handle, h.b.handle))),
      { name: "c", run: () => c.expand64k4k(B, E, nwords) },
      { name: "js", run: () => js.expand64k4k(b32, e32, nbits / 32) },
    ];
    agree(
      "expand 64K->4K",
      size,
      impls,
      (i) => c.memset(spaceOf(i).B, 0, bytes),
      (i) => hashOf(spaceOf(i).B, nbits),
    );
    bench("expand 64K->4K", [...impls, memcpy]);
  }

  if (core && table) core.check("xlat_free", core.exports.xlat_free(table));
  if (w2c && table2) w2c.core.check("xlat_free", w2c.core.exports.xlat_free(table2));
  arena.release();
  w2c?.arena.release();
  return rows;
}

// --- Internal helpers ---

/** The buffers of one size's cases, allocated in one memory. */
interface Space {
  readonly a: { handle: number; ptr: number };
  readonly b: { handle: number; ptr: number };
  readonly coarse: { handle: number; ptr: number };
  readonly coarseSrc: { handle: number; ptr: number };
  readonly runsBuf: number;
  readonly mapsBuf: number;
}

/** A Space's buffers as absolute addresses, for the C helpers that fill, clear and hash them. */
interface Addresses {
  readonly A: bigint;
  readonly B: bigint;
  readonly C: bigint;
  readonly E: bigint;
  readonly runsBuf: bigint;
}

function allocSpace(arena: Arena, nbits: number): Space {
  // A: the source (dense, later sparse). B: the destination. Both 4 KiB pages, base 0.
  return {
    a: arena.bitmap(nbits, PAGE_4K),
    b: arena.bitmap(nbits, PAGE_4K),
    coarse: arena.bitmap(nbits / 512, 2n * BigInt(MiB)), // 4 KiB -> 2 MiB target
    coarseSrc: arena.bitmap(nbits / 16, 65536n), // 64 KiB pages expanded into B
    runsBuf: arena.alloc(RUNS_CAP * 16),
    mapsBuf: arena.alloc(NMAPS * 24),
  };
}

function addresses(base: bigint, s: Space): Addresses {
  const at = (ptr: number) => base + BigInt(ptr);
  return {
    A: at(s.a.ptr),
    B: at(s.b.ptr),
    C: at(s.coarse.ptr),
    E: at(s.coarseSrc.ptr),
    runsBuf: at(s.runsBuf),
  };
}

/** Where bitmaps live: a core's own allocator, or a bump allocator on a plain memory (--no-wasm). */
interface Arena {
  readonly memory?: WebAssembly.Memory;
  bitmap(nbits: number, pageSize: bigint): { handle: number; ptr: number };
  alloc(nbytes: number): number;
  /** Frees everything allocated since the last release. */
  release(): void;
}

function coreArena(core: CoreHelpers): Arena {
  const bitmaps: number[] = [];
  const blocks: number[] = [];
  return {
    ...("memory" in core.exports ? { memory: core.exports.memory as WebAssembly.Memory } : {}),
    bitmap(nbits, pageSize) {
      const handle = core.newBitmap(nbits, pageSize);
      bitmaps.push(handle);
      return { handle, ptr: core.dataPtr(handle) };
    },
    alloc(nbytes) {
      const ptr = core.alloc(nbytes);
      blocks.push(ptr);
      return ptr;
    },
    release() {
      for (const bm of bitmaps.splice(0)) core.check("bitmap_free", core.exports.bitmap_free(bm));
      for (const p of blocks.splice(0)) core.check("mem_free", core.exports.mem_free(p));
    },
  };
}

function plainArena(): Arena {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536 });
  let top = 0;
  const alloc = (nbytes: number) => {
    const ptr = (top + 63) & ~63;
    top = ptr + nbytes;
    const need = Math.ceil(top / 65536) - memory.buffer.byteLength / 65536;
    if (need > 0) memory.grow(need);
    return ptr;
  };
  return {
    memory,
    bitmap: (nbits) => ({ handle: 0, ptr: alloc(Math.ceil(nbits / 64) * 8) }),
    alloc,
    release: () => {
      top = 0;
    },
  };
}

/**
 * 10,000 adjacent IOVA mappings tiling the bitmap, each sent to a shuffled GPA slot. The mapping
 * length is not a multiple of 64 pages, so almost every mapping needs a shifted OR.
 */
function translationMaps(nbits: number): js.PageMapping[] {
  const npages = Math.floor(nbits / NMAPS);
  const slots = Array.from({ length: NMAPS }, (_, i) => i);
  let seed = 12345;
  for (let i = NMAPS - 1; i > 0; i--) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const j = seed % (i + 1);
    [slots[i], slots[j]] = [slots[j]!, slots[i]!];
  }
  return slots.map((slot, i) => ({ iovaPage: i * npages, gpaPage: slot * npages, npages }));
}

function buildXlat(core: CoreHelpers, maps: readonly js.PageMapping[]): number {
  const t = core.exports.xlat_new(PAGE_4K);
  if (t === 0) throw new Error(`xlat_new failed with ABI error ${core.exports.abi_last_error()}`);
  for (const m of maps) {
    const at = (page: number) => BigInt(page) * PAGE_4K;
    core.check("xlat_map", core.exports.xlat_map(t, at(m.iovaPage), at(m.gpaPage), at(m.npages)));
  }
  return t;
}

/**
 * The wasm run listing as a caller uses it: refill a RUNS_CAP buffer until done; returns the count.
 * `word(k)` reads u64 k of the buffer (a view of V8's memory, or wasm2c's through C).
 */
function wasmRunsAll(core: CoreHelpers, bm: number, buf: number, word: (k: number) => bigint): number {
  let from = 0n;
  let runs = 0;
  for (;;) {
    const n = core.exports.bitmap_runs(bm, from, buf, RUNS_CAP);
    core.check("bitmap_runs", n);
    runs += n;
    if (n < RUNS_CAP) return runs;
    from = word(2 * n - 2) + word(2 * n - 1);
  }
}

/**
 * Runs every implementation once after `reset` and checks that `observe` sees the same value for
 * all of them; a benchmark of a wrong answer is worthless, so a mismatch aborts the run.
 */
function agree(
  op: string,
  size: SizeSpec,
  impls: readonly Impl[],
  reset: (impl: Impl) => void,
  observe: (impl: Impl) => unknown,
): void {
  const seen = impls.map((impl) => {
    reset(impl);
    impl.run();
    return [impl.name, observe(impl)] as const;
  });
  const first = seen[0]?.[1];
  if (seen.some(([, v]) => v !== first)) {
    throw new Error(
      `${op} ${size.label}: implementations disagree: ${seen.map(([n, v]) => `${n}=${String(v)}`).join(", ")}`,
    );
  }
}

function selected(op: string): boolean {
  return opFilters.length === 0 || opFilters.some((f) => op.includes(f));
}

function argValue(args: readonly string[], name: string): string | undefined {
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

function machineLine(c: NativeOps): string {
  const cpuModel = cpus()[0]?.model ?? "unknown CPU";
  let thp = "unknown";
  try {
    thp = readFileSync("/sys/kernel/mm/transparent_hugepage/enabled", "utf8").trim();
  } catch {}
  const load = loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
  return `machine: ${cpuModel}, ${cpus().length} cpus; node ${process.version}; ${c.ccVersion} ${CC_FLAGS.slice(0, 2).join(" ")}; THP ${thp}; load ${load}`;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

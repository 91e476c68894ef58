// `npm run bench`: the bitmap-wasm benchmark. For each bitmap size (32 MiB and 256 MiB of words,
// i.e. 1 TiB and 8 TiB of guest memory at 4 KiB pages) it times every operation in wasm, in native C
// (-O3 -march=native, through koffi on the very same wasm memory), in plain JS (Uint32Array views of
// that memory) and a memcpy of the same bytes, interleaved, and reports medians and ratios to C.
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
import { loadRawCore, type RawCore } from "./wasm-core.ts";

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

  const arena = core ? coreArena(core) : plainArena();
  const rows: ResultRow[] = [];
  for (const size of sizes) {
    const t0 = performance.now();
    rows.push(...runSize(size, arena, native, core));
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
function runSize(size: SizeSpec, arena: Arena, c: NativeOps, core: RawCore | undefined): ResultRow[] {
  const nbits = size.bytes * 8;
  const nwords = BigInt(size.bytes / 8);
  const bytes = BigInt(size.bytes);
  // A: the source (dense, later sparse). B: the destination. Both 4 KiB pages, base 0.
  const a = arena.bitmap(nbits, PAGE_4K);
  const b = arena.bitmap(nbits, PAGE_4K);
  const coarse = arena.bitmap(nbits / 512, 2n * BigInt(MiB)); // 4 KiB -> 2 MiB target
  const coarseSrc = arena.bitmap(nbits / 16, 65536n); // 64 KiB pages expanded into B
  const runsBuf = arena.alloc(RUNS_CAP * 16);
  const mapsBuf = arena.alloc(NMAPS * 24);
  const maps = translationMaps(nbits);
  const table = core ? buildXlat(core, maps) : 0;

  // Memory has stopped growing: derive addresses and views now (older ones would be detached).
  const base = koffi.address(arena.memory.buffer);
  const addr = (ptr: number) => base + BigInt(ptr);
  const u32 = (ptr: number, nbitsOf: number) =>
    new Uint32Array(arena.memory.buffer, ptr, Math.ceil(nbitsOf / 32));
  const [A, B, C, E] = [addr(a.ptr), addr(b.ptr), addr(coarse.ptr), addr(coarseSrc.ptr)];
  const [a32, b32, c32, e32] = [
    u32(a.ptr, nbits),
    u32(b.ptr, nbits),
    u32(coarse.ptr, nbits / 512),
    u32(coarseSrc.ptr, nbits / 16),
  ];
  const runsView = new BigUint64Array(arena.memory.buffer, runsBuf, RUNS_CAP * 2);
  const mapsView = new BigUint64Array(arena.memory.buffer, mapsBuf, NMAPS * 3);
  for (const [i, m] of maps.entries()) {
    mapsView.set([BigInt(m.iovaPage), BigInt(m.gpaPage), BigInt(m.npages)], i * 3);
  }
  const jsRunsOut = new Float64Array(RUNS_CAP * 2);
  const ex = core?.exports;
  const memcpy: Impl = { name: "memcpy", run: () => c.memcpy(B, A, bytes) };
  const hashOf = (ptr: bigint, nbitsOf: number) => c.hash(ptr, BigInt(Math.ceil(nbitsOf / 64)));
  const fillDense = () => c.fillRandom(A, nwords, 1n);
  const rows: ResultRow[] = [];
  const bench = (op: string, impls: Impl[], extra: Partial<BenchCase> = {}) => {
    if (!selected(op)) return;
    const present = impls.filter((i) => i.name !== "wasm" || core);
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

  // Pre-fault every page so no implementation pays first-touch costs inside a timed call.
  c.memset(B, 0, bytes);
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
      { name: "c", run: () => c.orRange(B, BigInt(dstStart), A, BigInt(srcStart), BigInt(n)) },
      { name: "js", run: () => js.orRange(b32, dstStart, a32, srcStart, n) },
    ];
    // Merge into a non-empty destination, so the check sees OR and not a copy.
    agree(
      op,
      size,
      impls,
      () => c.fillSparse(B, BigInt(nbits), BigInt(Math.floor(nbits / 1000)), 7n),
      () => hashOf(B, nbits),
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
    const impls: Impl[] = [
      ...wasm(() => {
        got = wasmRunsAll(core!, a.handle, runsBuf, runsView);
      }),
      {
        name: "c",
        run: () => {
          const r = c.runsAll(A, BigInt(nbits), addr(runsBuf), BigInt(RUNS_CAP));
          if (r.totalLength !== c.count(A, 0n, BigInt(nbits)))
            throw new Error(`${op}: C run lengths do not sum to the count`);
          got = r.runs;
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
    bench(op, [...impls, memcpy]);
  };
  runsCase("runs dense 50%");

  {
    const impls: Impl[] = [
      ...wasm(() => core!.check("xlat_translate", ex!.xlat_translate(table, a.handle, b.handle, 0))),
      { name: "c", run: () => c.translate(A, B, addr(mapsBuf), BigInt(NMAPS)) },
      { name: "js", run: () => js.translate(a32, b32, maps) },
    ];
    agree(
      "translate 10k maps",
      size,
      impls,
      () => c.memset(B, 0, bytes),
      () => hashOf(B, nbits),
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
      { name: "c", run: () => c.takeAndClear(A, B, nwords) },
      { name: "js", run: () => js.takeAndClear(a32, b32) },
    ];
    agree("take-and-clear", size, impls, fillDense, () => {
      if (c.count(A, 0n, BigInt(nbits)) !== 0) return "source not cleared";
      return hashOf(B, nbits) === expected ? "copied" : "copy differs";
    });
    bench("take-and-clear", [...impls, memcpy], { before: fillDense });
  }

  // --- Sparse source (0.1 % of the bits) ---
  c.fillSparse(A, BigInt(nbits), BigInt(Math.floor(nbits / 1000)), 11n);
  runsCase("runs sparse 0.1%");

  {
    const ncoarse = nbits / 512;
    const impls: Impl[] = [
      ...wasm(() => core!.check("convert", ex!.bitmap_convert(a.handle, coarse.handle))),
      { name: "c", run: () => c.coarsen4k2m(C, A, BigInt(ncoarse)) },
      { name: "js", run: () => js.coarsen4k2m(c32, a32, ncoarse) },
    ];
    agree(
      "coarsen 4K->2M",
      size,
      impls,
      () => c.memset(C, 0, BigInt(ncoarse / 8)),
      () => hashOf(C, ncoarse),
    );
    bench("coarsen 4K->2M", [...impls, memcpy]);
  }

  {
    c.fillRandom(E, BigInt(nbits / 16 / 64), 13n);
    const impls: Impl[] = [
      ...wasm(() => core!.check("convert", ex!.bitmap_convert(coarseSrc.handle, b.handle))),
      { name: "c", run: () => c.expand64k4k(B, E, nwords) },
      { name: "js", run: () => js.expand64k4k(b32, e32, nbits / 32) },
    ];
    agree(
      "expand 64K->4K",
      size,
      impls,
      () => c.memset(B, 0, bytes),
      () => hashOf(B, nbits),
    );
    bench("expand 64K->4K", [...impls, memcpy]);
  }

  if (core && table) core.check("xlat_free", core.exports.xlat_free(table));
  arena.release();
  return rows;
}

// --- Internal helpers ---

/** Where bitmaps live: the core's own allocator, or a bump allocator on a plain memory (--no-wasm). */
interface Arena {
  readonly memory: WebAssembly.Memory;
  bitmap(nbits: number, pageSize: bigint): { handle: number; ptr: number };
  alloc(nbytes: number): number;
  /** Frees everything allocated since the last release. */
  release(): void;
}

function coreArena(core: RawCore): Arena {
  const bitmaps: number[] = [];
  const blocks: number[] = [];
  return {
    memory: core.exports.memory,
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

function buildXlat(core: RawCore, maps: readonly js.PageMapping[]): number {
  const t = core.exports.xlat_new(PAGE_4K);
  if (t === 0) throw new Error(`xlat_new failed with ABI error ${core.exports.abi_last_error()}`);
  for (const m of maps) {
    const at = (page: number) => BigInt(page) * PAGE_4K;
    core.check("xlat_map", core.exports.xlat_map(t, at(m.iovaPage), at(m.gpaPage), at(m.npages)));
  }
  return t;
}

/** The wasm run listing as a caller uses it: refill a RUNS_CAP buffer until done; returns the count. */
function wasmRunsAll(core: RawCore, bm: number, buf: number, view: BigUint64Array): number {
  let from = 0n;
  let runs = 0;
  for (;;) {
    const n = core.exports.bitmap_runs(bm, from, buf, RUNS_CAP);
    core.check("bitmap_runs", n);
    runs += n;
    if (n < RUNS_CAP) return runs;
    from = view[2 * n - 2]! + view[2 * n - 1]!;
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
  reset: () => void,
  observe: () => unknown,
): void {
  const seen = impls.map((impl) => {
    reset();
    impl.run();
    return [impl.name, observe()] as const;
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

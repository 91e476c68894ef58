// Raw-ABI correctness check for build/bitmap.wasm. Plain JavaScript with no imports at all, so the
// very same file runs unchanged in Node, Bun, Deno and a browser page (where it is inlined): it uses
// only WebAssembly.instantiate(bytes, {}) and the raw exports documented in ABI.md, never the
// AssemblyScript glue or src/. Every answer is compared with a bit-per-byte reference model, and
// the random cases are seeded, so every engine checks exactly the same operations.
//
//   const result = await checkAbi(wasmBytes);   // { ok, checks, failures: string[] }
//   const trace = [];
//   await checkAbi(wasmBytes, { trace });        // also records every call and memory access
//
// The trace is what other runtimes without a JavaScript engine replay (the wasm2c test): each
// export call with its arguments and answer, each write into memory and each read with the bytes
// this engine saw. Since every answer here is checked against the model, an engine that replays
// the trace and sees the same answers and bytes passes the same checks.
//
// The ranges are a few thousand bits long on purpose: long enough to reach the v128 bodies and
// 4x-unrolled loops, where engines most plausibly differ, and short enough to finish in well under
// a second in every runtime.

/** Runs all checks; never throws for a wrong answer (it lists it in `failures`). */
export async function checkAbi(bytes, opts = {}) {
  const failures = [];
  let checks = 0;
  const expect = (cond, what) => {
    checks++;
    if (!cond && failures.length < 50) failures.push(what);
  };
  const eq = (got, want, what) => expect(got === want, `${what}: got ${String(got)}, want ${String(want)}`);

  const { module, instance } = await WebAssembly.instantiate(bytes, {});
  eq(WebAssembly.Module.imports(module).length, 0, "import count");
  const x = opts.trace ? traced(instance.exports, opts.trace) : instance.exports;
  expect(x.memory instanceof WebAssembly.Memory, "exports memory");
  eq(x.abi_version(), 1, "abi_version()");
  const rng = prng(0x5eed);
  const usedAtStart = x.mem_used_bytes();

  // --- Error codes (ABI.md "Error codes") ---
  eq(x.bitmap_new(64n, 3000n, 0n), 0, "bitmap_new with page size 3000");
  eq(x.abi_last_error(), ERR_PAGE_SIZE, "abi_last_error after bad page size");
  eq(x.bitmap_new(64n, 4096n, 100n), 0, "bitmap_new with unaligned base");
  eq(x.abi_last_error(), ERR_ALIGN, "abi_last_error after unaligned base");
  {
    const bm = x.bitmap_new(64n, 4096n, 0n);
    expect(bm !== 0, "bitmap_new(64) succeeds");
    eq(x.abi_last_error(), 0, "abi_last_error after success");
    eq(x.bitmap_set_range(bm, 60n, 10n), ERR_RANGE, "set_range past the end");
    eq(x.bitmap_set_range(bm, -1n, 1n), ERR_RANGE, "set_range at a negative start");
    eq(x.bitmap_test(bm, 64n), ERR_RANGE, "test at nbits");
    eq(x.bitmap_fill(bm, 2), ERR_BAD_ARGUMENT, "fill with value 2");
    eq(x.bitmap_count(bm, 0n, 64n), 0n, "bad calls left the bitmap untouched");
    eq(x.bitmap_free(bm), 0, "bitmap_free");
    eq(x.bitmap_free(bm), ERR_BAD_HANDLE, "double bitmap_free");
  }

  // --- Fill and the header getters; tail bits past nbits stay zero ---
  {
    const bm = newBitmap(x, 130, 65536, 3 * 65536);
    eq(x.bitmap_nbits(bm), 130n, "bitmap_nbits");
    eq(x.bitmap_page_size(bm), 65536n, "bitmap_page_size");
    eq(x.bitmap_base(bm), 3n * 65536n, "bitmap_base");
    eq(x.bitmap_fill(bm, 1), 0, "fill(1)");
    sameBits(expect, load(x, bm), new Uint8Array(130).fill(1), "fill(1)");
    eq(x.bitmap_count(bm, 0n, 130n), 130n, "count after fill(1)");
    eq(x.bitmap_fill(bm, 0), 0, "fill(0)");
    eq(x.bitmap_next_set(bm, 0n), 130n, "next_set after fill(0)");
    eq(x.bitmap_free(bm), 0, "bitmap_free after fill");
  }

  // --- Bit kernels against the reference, random lengths and offsets ---
  for (let round = 0; round < 24; round++) {
    const na = 1 + rng(3000);
    const nb = 1 + rng(3000);
    const a = newBitmap(x, na, 4096, 0);
    const b = newBitmap(x, nb, 4096, 0);
    const refA = randomBits(rng, na, [0.02, 0.5, 0.97][round % 3]);
    const refB = randomBits(rng, nb, 0.3);
    store(x, a, refA);
    store(x, b, refB);
    const where = `round ${round} (na=${na}, nb=${nb})`;

    const [s1, n1] = range(rng, na);
    eq(x.bitmap_set_range(a, BigInt(s1), BigInt(n1)), 0, `${where} set_range`);
    refA.fill(1, s1, s1 + n1);
    const [s2, n2] = range(rng, na);
    eq(x.bitmap_clear_range(a, BigInt(s2), BigInt(n2)), 0, `${where} clear_range`);
    refA.fill(0, s2, s2 + n2);
    sameBits(expect, load(x, a), refA, `${where} set/clear_range`);

    const [s3, n3] = range(rng, na);
    eq(
      x.bitmap_count(a, BigInt(s3), BigInt(n3)),
      BigInt(sum(refA, s3, s3 + n3)),
      `${where} count [${s3}, +${n3})`,
    );
    const bit = rng(na);
    eq(x.bitmap_test(a, BigInt(bit)), refA[bit], `${where} test ${bit}`);
    const from = rng(na + 1);
    eq(x.bitmap_next_set(a, BigInt(from)), BigInt(nextIs(refA, from, 1)), `${where} next_set ${from}`);
    eq(x.bitmap_next_clear(a, BigInt(from)), BigInt(nextIs(refA, from, 0)), `${where} next_clear ${from}`);

    // Merge at independent, generally unaligned offsets (b into a and a into b alike).
    const n4 = rng(Math.min(na, nb) + 1);
    const src4 = rng(nb - n4 + 1);
    const dst4 = rng(na - n4 + 1);
    eq(x.bitmap_or_from(a, b, BigInt(src4), BigInt(dst4), BigInt(n4)), 0, `${where} or_from`);
    for (let i = 0; i < n4; i++) refA[dst4 + i] |= refB[src4 + i];
    sameBits(expect, load(x, a), refA, `${where} or_from src ${src4} dst ${dst4} n ${n4}`);
    const src5 = rng(na - n4 + 1);
    const dst5 = rng(nb - n4 + 1);
    eq(x.bitmap_andnot_from(b, a, BigInt(src5), BigInt(dst5), BigInt(n4)), 0, `${where} andnot_from`);
    for (let i = 0; i < n4; i++) refB[dst5 + i] &= 1 - refA[src5 + i];
    sameBits(expect, load(x, b), refB, `${where} andnot_from src ${src5} dst ${dst5} n ${n4}`);

    // Runs, through a small buffer so the resume protocol is exercised.
    const runsFrom = rng(na + 1);
    eq(
      JSON.stringify(allRuns(x, a, runsFrom, 1 + rng(4))),
      JSON.stringify(refRuns(refA, runsFrom)),
      `${where} runs from ${runsFrom}`,
    );

    // Take-and-clear between two bitmaps of one length.
    const c = newBitmap(x, na, 4096, 0);
    const refC = randomBits(rng, na, 0.5);
    store(x, c, refC);
    const [s6, n6] = range(rng, na);
    eq(x.bitmap_take_and_clear(a, c, BigInt(s6), BigInt(n6)), 0, `${where} take_and_clear`);
    for (let i = s6; i < s6 + n6; i++) {
      refC[i] = refA[i];
      refA[i] = 0;
    }
    sameBits(expect, load(x, a), refA, `${where} take_and_clear source [${s6}, +${n6})`);
    sameBits(expect, load(x, c), refC, `${where} take_and_clear copy [${s6}, +${n6})`);

    // Density.
    const buckets = 1 + rng(9);
    const out = alloc(x, buckets * 8);
    eq(x.bitmap_density(a, 0n, BigInt(na), out, buckets), 0, `${where} density`);
    const got = Array.from(readWords(x, out, buckets), Number);
    const want = Array.from({ length: buckets }, (_, k) =>
      sum(refA, Math.floor((k * na) / buckets), Math.floor(((k + 1) * na) / buckets)),
    );
    eq(JSON.stringify(got), JSON.stringify(want), `${where} density ${buckets} buckets`);

    for (const p of [a, b, c]) eq(x.bitmap_free(p), 0, `${where} bitmap_free`);
    eq(x.mem_free(out), 0, `${where} mem_free`);
  }

  // --- Page-size conversion by address, both directions, unaligned starts ---
  const KiB = 1024;
  const MiB = 1024 * KiB;
  const conversions = [
    [4 * KiB, 0x100000 + 4 * KiB, 3000, 2 * MiB, 0, 4], // coarsen 4K -> 2M, start inside a 2M page
    [64 * KiB, 64 * KiB, 200, 4 * KiB, 0, 3500], // expand 64K -> 4K, dst shorter than src
    [512, 3 * 512, 4000, 4 * KiB, 0, 300], // 512 B -> 4K
    [4 * KiB, 0, 1000, 4 * KiB, 40 * KiB, 900], // same size, shifted by 10 pages
    [1024 * MiB, 1024 * MiB, 3, 2 * MiB, 1024 * MiB - 2 * MiB, 1100], // 1G -> 2M
  ];
  for (const [sps, sbase, sn, dps, dbase, dn] of conversions) {
    const where = `convert ${sps}@${sbase}x${sn} -> ${dps}@${dbase}x${dn}`;
    const src = newBitmap(x, sn, sps, sbase);
    const dst = newBitmap(x, dn, dps, dbase);
    const refS = randomBits(rng, sn, 0.05);
    const refD = randomBits(rng, dn, 0.02);
    store(x, src, refS);
    store(x, dst, refD);
    const outside = refConvert(refS, sps, sbase, refD, dps, dbase);
    eq(x.bitmap_convert(src, dst), BigInt(outside), `${where} return`);
    sameBits(expect, load(x, dst), refD, where);
    eq(x.bitmap_free(src), 0, `${where} free src`);
    eq(x.bitmap_free(dst), 0, `${where} free dst`);
  }

  // --- IOVA -> GPA translation: adjacent, many-to-one, removed-not-retired, unmapped pages ---
  {
    const page = 4096;
    const t = x.xlat_new(BigInt(page));
    expect(t !== 0, "xlat_new");
    const maps = [
      [0, 700, 130], // [iova page, gpa page, npages]
      [130, 5, 77], // adjacent to the first
      [207, 5, 50], // many-to-one: overlaps the GPA of the previous one
      [400, 1000, 333],
      [900, 1500, 64],
    ];
    for (const [iova, gpa, n] of maps) {
      eq(x.xlat_map(t, BigInt(iova * page), BigInt(gpa * page), BigInt(n * page)), 0, `xlat_map ${iova}`);
    }
    eq(x.xlat_map(t, BigInt(100 * page), 0n, BigInt(page)), ERR_OVERLAP, "xlat_map over an active mapping");
    eq(x.xlat_map(t, 1n, 0n, BigInt(page)), ERR_ALIGN, "xlat_map unaligned");
    eq(
      x.xlat_unmap(t, BigInt(900 * page), BigInt(64 * page)),
      BigInt(64 * page),
      "xlat_unmap of the last mapping",
    );
    const src = newBitmap(x, 1100, page, 0);
    const dst = newBitmap(x, 2000, page, 0);
    const refS = randomBits(rng, 1100, 0.4);
    const refD = new Uint8Array(2000);
    store(x, src, refS);
    let unmapped = 0;
    for (let i = 0; i < 1100; i++) {
      if (!refS[i]) continue;
      const hits = maps.filter(([iova, , n]) => i >= iova && i < iova + n);
      if (hits.length === 0) unmapped++;
      for (const [iova, gpa] of hits) refD[gpa + i - iova] = 1;
    }
    const stats = alloc(x, 16);
    eq(x.xlat_translate(t, src, dst, stats), 0, "xlat_translate");
    sameBits(expect, load(x, dst), refD, "xlat_translate bits (removed mapping still translating)");
    eq(readWords(x, stats, 2)[0], BigInt(unmapped), "xlat_translate unmapped_pages");
    // The unmapped dirty pages themselves, as runs, through a 2-run buffer (resumed).
    const onNoMapping = refS.map((b, i) =>
      b && !maps.some(([iova, , n]) => i >= iova && i < iova + n) ? 1 : 0,
    );
    const unmappedRuns = allRuns(x, src, 0, 2, (bm, from, out, max) =>
      x.xlat_unmapped_runs(t, bm, from, out, max),
    );
    eq(JSON.stringify(unmappedRuns), JSON.stringify(refRuns(onNoMapping, 0)), "xlat_unmapped_runs");
    // Mappings come back ordered by iova; the unmapped one is flagged removed until retired.
    const rec = alloc(x, 32);
    eq(x.xlat_mapping_count(t), 5, "mappings before retire (removed included)");
    for (const [k, [iova, gpa, n]] of maps.entries()) {
      eq(x.xlat_mapping_get(t, k, rec), 0, `xlat_mapping_get ${k}`);
      const got = Array.from(readWords(x, rec, 4), Number);
      eq(
        JSON.stringify(got),
        JSON.stringify([iova * page, gpa * page, n * page, k === 4 ? 1 : 0]),
        `mapping ${k}`,
      );
    }
    eq(x.mem_free(rec), 0, "mem_free mapping record");
    eq(x.xlat_retire(t), 1, "xlat_retire drops the removed mapping");
    eq(x.xlat_mapping_count(t), 4, "mappings left after retire");
    // Copying needs mappings that share no GPA page: refused while two map onto GPA 5..54.
    eq(x.xlat_gpa_disjoint(t), 0, "xlat_gpa_disjoint with a many-to-one mapping");
    eq(x.xlat_translate_copy(t, src, dst, 0), ERR_OVERLAP, "xlat_translate_copy refused");
    eq(x.xlat_unmap(t, BigInt(207 * page), BigInt(50 * page)), BigInt(50 * page), "xlat_unmap many-to-one");
    eq(x.xlat_retire(t), 1, "xlat_retire it");
    eq(x.xlat_gpa_disjoint(t), 1, "xlat_gpa_disjoint after");
    // Over a destination full of stale bits: unmapped GPAs cleared, mapped ones take the src bit.
    const live = maps.slice(0, 2).concat([maps[3]]);
    const refC = new Uint8Array(2000);
    for (const [iova, gpa, n] of live) for (let k = 0; k < n; k++) refC[gpa + k] = refS[iova + k];
    eq(x.bitmap_fill(dst, 1), 0, "bitmap_fill stale");
    eq(x.xlat_clear_unmapped_gpa(t, dst), 0, "xlat_clear_unmapped_gpa");
    const stats3 = alloc(x, 24);
    eq(x.xlat_translate_copy(t, src, dst, stats3), 0, "xlat_translate_copy");
    sameBits(expect, load(x, dst), refC, "xlat_translate_copy bits");
    const copiedWant = refC.reduce((a, b) => a + b, 0);
    eq(readWords(x, stats3, 3)[2], BigInt(copiedWant), "xlat_translate_copy copied_pages");
    eq(x.mem_free(stats3), 0, "mem_free copy stats");
    for (const p of [src, dst]) eq(x.bitmap_free(p), 0, "bitmap_free after translate");
    eq(x.mem_free(stats), 0, "mem_free stats");
    eq(x.xlat_free(t), 0, "xlat_free");
  }

  eq(x.mem_used_bytes(), usedAtStart, "mem_used_bytes back to its start (no leak)");
  return { ok: failures.length === 0, checks, failures };
}

// --- Internal helpers ---

const ERR_BAD_HANDLE = -1;
const ERR_RANGE = -2;
const ERR_PAGE_SIZE = -3;
const ERR_ALIGN = -4;
const ERR_OVERLAP = -7;
const ERR_BAD_ARGUMENT = -9;

/** Deterministic xorshift32; rng(n) is an integer in [0, n). */
function prng(seed) {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return n <= 0 ? 0 : s % n;
  };
}

function newBitmap(x, nbits, pageSize, base) {
  const bm = x.bitmap_new(BigInt(nbits), BigInt(pageSize), BigInt(base));
  if (bm === 0) throw new Error(`bitmap_new(${nbits}, ${pageSize}, ${base}) failed: ${x.abi_last_error()}`);
  return bm;
}

function alloc(x, nbytes) {
  const p = x.mem_alloc(nbytes);
  if (p === 0) throw new Error(`mem_alloc(${nbytes}) failed: ${x.abi_last_error()}`);
  return p >>> 0;
}

/** The bitmap's bits as one byte per bit, read through memory like the kernel's consumer would. */
function load(x, bm) {
  const nbits = Number(x.bitmap_nbits(bm));
  const bytes = readBytes(x, x.bitmap_data(bm), Math.ceil(nbits / 64) * 8);
  const bits = new Uint8Array(nbits);
  for (let i = 0; i < nbits; i++) bits[i] = (bytes[i >>> 3] >>> (i & 7)) & 1;
  // Bits past nbits in the last word must stay zero.
  for (let i = nbits; i < bytes.length * 8; i++) if ((bytes[i >>> 3] >>> (i & 7)) & 1) bits.tail = true;
  return bits;
}

/** Writes bits straight into the words, as the kernel does through the data pointer. */
function store(x, bm, bits) {
  const bytes = new Uint8Array(Math.ceil(bits.length / 64) * 8);
  for (let i = 0; i < bits.length; i++) if (bits[i]) bytes[i >>> 3] |= 1 << (i & 7);
  writeBytes(x, x.bitmap_data(bm), bytes);
}

/** The exports with every call recorded in `trace` as ["call", name, args, result]. */
function traced(exports, trace) {
  const x = { memory: exports.memory, trace };
  for (const [name, f] of Object.entries(exports)) {
    if (typeof f !== "function") continue;
    x[name] = (...args) => {
      const result = f(...args);
      trace.push(["call", name, args, result]);
      return result;
    };
  }
  return x;
}

/** A copy of `nbytes` of memory at `ptr` (recorded as ["read", ptr, bytes] when tracing). */
function readBytes(x, ptr, nbytes) {
  const bytes = new Uint8Array(x.memory.buffer, ptr >>> 0, nbytes).slice();
  x.trace?.push(["read", ptr >>> 0, bytes]);
  return bytes;
}

/** `n` u64 words at `ptr`, read like readBytes. */
function readWords(x, ptr, n) {
  return new BigUint64Array(readBytes(x, ptr, n * 8).buffer);
}

/** Copies `bytes` into memory at `ptr` (recorded as ["write", ptr, bytes] when tracing). */
function writeBytes(x, ptr, bytes) {
  new Uint8Array(x.memory.buffer, ptr >>> 0, bytes.length).set(bytes);
  x.trace?.push(["write", ptr >>> 0, bytes.slice()]);
}

function sameBits(expect, got, want, what) {
  let first = -1;
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) {
      first = i;
      break;
    }
  }
  expect(first === -1 && got.length === want.length, `${what}: first differing bit ${first}`);
  expect(!got.tail, `${what}: bits past nbits were written`);
}

function randomBits(rng, n, density) {
  const bits = new Uint8Array(n);
  const threshold = Math.floor(density * 1e6);
  // Mix long runs with noise so both word-skipping and per-bit paths are taken.
  for (let i = 0; i < n; ) {
    const len = 1 + rng(rng(2) ? 200 : 8);
    const v = rng(1e6) < threshold ? 1 : 0;
    bits.fill(v, i, Math.min(n, i + len));
    i += len;
  }
  return bits;
}

/** A random [start, start + n) inside [0, nbits], zero-length and end-touching ones included. */
function range(rng, nbits) {
  const start = rng(nbits + 1);
  const n = rng(4) === 0 ? nbits - start : rng(nbits - start + 1);
  return [start, n];
}

function sum(bits, from, to) {
  let s = 0;
  for (let i = from; i < to; i++) s += bits[i];
  return s;
}

function nextIs(bits, from, v) {
  for (let i = from; i < bits.length; i++) if (bits[i] === v) return i;
  return bits.length;
}

function refRuns(bits, from) {
  const runs = [];
  for (let i = from; i < bits.length; ) {
    if (!bits[i]) {
      i++;
      continue;
    }
    let j = i;
    while (j < bits.length && bits[j]) j++;
    runs.push([i, j - i]);
    i = j;
  }
  return runs;
}

function allRuns(x, bm, from, maxRuns, list = (b, f, out, max) => x.bitmap_runs(b, f, out, max)) {
  const out = alloc(x, maxRuns * 16);
  const runs = [];
  let pos = BigInt(from);
  for (let guard = 0; guard < 100000; guard++) {
    const n = list(bm, pos, out, maxRuns);
    if (n < 0) {
      runs.push(["error", n]);
      break;
    }
    const v = readWords(x, out, maxRuns * 2);
    for (let k = 0; k < n; k++) runs.push([Number(v[2 * k]), Number(v[2 * k + 1])]);
    if (n < maxRuns) break;
    pos = v[2 * n - 2] + v[2 * n - 1];
  }
  x.mem_free(out);
  return runs;
}

/** Reference convert: ORs into refD in place; returns dirty src pages not wholly inside dst's span. */
function refConvert(refS, sps, sbase, refD, dps, dbase) {
  const dend = dbase + refD.length * dps;
  let outside = 0;
  for (let i = 0; i < refS.length; i++) {
    if (!refS[i]) continue;
    const a = sbase + i * sps;
    const e = a + sps;
    if (a < dbase || e > dend) outside++;
    const lo = Math.max(a, dbase);
    const hi = Math.min(e, dend);
    for (let j = Math.floor((lo - dbase) / dps); lo < hi && dbase + j * dps < hi; j++) refD[j] = 1;
  }
  return outside;
}

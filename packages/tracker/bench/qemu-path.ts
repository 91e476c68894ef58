// The real peer: QEMU's VFIO sync path (bench/native/qemu-sync.c, compiled with the system's
// `cc -O3 -march=native`) against vfio-dirty's tracker work for the same sync, on the same dirty
// pages, with a memcpy of the bitmap as the bandwidth ceiling.
//
// A 1 TiB guest (RAM [0, 3G) + [4G, 1T + 1G), 32.25 MiB of bitmap), 1 or 4 devices doing DMA
// logging, 40,000 or 4,000,000 dirty pages per sync (spread uniformly, each page dirtied by one
// device), without or behind a vIOMMU of 10,000 mappings (104 MiB each, IOVA order a permutation of
// GPA order). Both sides get the very same REPORT answers: each device's sorted page list, written
// by one C routine into whatever bitmap the REPORT names, and that time is left out of both
// (the kernel's share). What remains:
//   - QEMU: per section (per mapping behind a vIOMMU) a zeroed bitmap, the merge into the VGA and
//     migration dirty-memory clients with a popcount (physical_memory_set_dirty_lebitmap), free;
//   - vfio-dirty: tracker.sync() with perDeviceCounts false ("vfio-dirty") and true ("+counts").
// Rounds interleave the four in rotating order; the paired ratios are medians over rounds of the
// ratio within a round, the figure to judge on a shared machine.
//
//   const rows = benchQemuPath({ rounds: 7 });
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { BitmapCore } from "@vfio-dirty/bitmap-wasm";
import koffi from "koffi";
import { DeviceLoggingStrategy } from "../src/strategies/device.ts";
import { createTracker, type Tracker } from "../src/tracker.ts";

const GIB = 1n << 30n;
const TIB = 1n << 40n;
const PAGE = 4096n;
/** Guest RAM as QEMU lays it out for a 1 TiB guest: GPA and the ram_addr of each section. */
const SECTIONS = [
  { gpa: 0n, length: 3n * GIB, ramAddr: 0n },
  { gpa: 4n * GIB, length: TIB - 3n * GIB, ramAddr: 3n * GIB },
] as const;
const NMAPS = 10_000;
const CHUNK = 104n << 20n;
const APERTURE = { iova: 4n * GIB, length: BigInt(NMAPS) * CHUNK };

export interface QemuPathRow {
  scenario: string;
  devices: number;
  dirty_pages: number;
  viommu: boolean;
  /** Medians over rounds, ms. */
  vfio_dirty_ms: number;
  vfio_dirty_counts_ms: number;
  qemu_ms: number;
  memcpy_ms: number;
  /** One bitmap_count pass over the whole report (what each device's count costs at most). */
  count_pass_ms: number;
  /** Paired (per round) ratios. */
  vfio_dirty_to_qemu: number;
  vfio_dirty_counts_to_qemu: number;
  /** (vfio_dirty_counts - vfio_dirty) / (devices x count_pass): at most 1 is the target. */
  counts_in_passes_per_device: number;
  rounds: number;
  /** Per round, in ms: [vfio-dirty, +counts, qemu, memcpy, count pass]. */
  samples_ms: number[][];
}

interface Native {
  dirtyNew(npages: bigint): bigint;
  dirtyCount(h: bigint, client: number, first: bigint, n: bigint): number;
  sync(h: bigint, secs: bigint, nsec: bigint, devs: bigint, ndev: bigint, out: bigint): number;
  emulate(bitmap: bigint, first: bigint, npages: bigint, pages: bigint, n: bigint): void;
  memcpy(dst: bigint, src: bigint, n: bigint): void;
}

/** Every row: 1 and 4 devices, 40k and 4M dirty pages, without and with a vIOMMU. */
export function benchQemuPath(
  core: BitmapCore,
  opts: { rounds: number; want: (scenario: string) => boolean },
): QemuPathRow[] {
  const native = loadQemuSync();
  const rows: QemuPathRow[] = [];
  for (const viommu of [false, true])
    for (const devices of [1, 4])
      for (const dirty of [40_000, 4_000_000]) {
        const scenario = `qemu-path-1tib-${devices}dev-${dirty >= 1e6 ? `${dirty / 1e6}M` : `${dirty / 1e3}k`}${viommu ? "-viommu" : ""}`;
        if (!opts.want(scenario)) continue;
        rows.push(benchOne(core, native, { scenario, devices, dirty, viommu, rounds: opts.rounds }));
      }
  return rows;
}

// --- Internal helpers ---

function benchOne(
  core: BitmapCore,
  native: Native,
  c: { scenario: string; devices: number; dirty: number; viommu: boolean; rounds: number },
): QemuPathRow {
  const pages = dirtyPages(c.dirty, c.devices, c.viommu);
  const pageLists = pages.map((p) => ({ list: p, addr: koffi.address(p) as bigint }));
  const devTable = new BigUint64Array(c.devices * 2);
  for (const [k, p] of pageLists.entries()) devTable.set([p.addr, BigInt(p.list.length)], 2 * k);
  let kernelMs = 0;
  const makeTracker = (perDeviceCounts: boolean): Tracker => {
    const units = pageLists.map((p, k) => ({
      id: `d${k}`,
      devices: [`d${k}`],
      strategy: new DeviceLoggingStrategy(
        {
          label: `replay device ${k}`,
          dmaLoggingStart: (_r: unknown, pageSize: bigint) => pageSize,
          dmaLoggingStop() {},
          dmaLoggingReport(a: { iova: bigint; length: bigint; bitmap: Uint8Array }) {
            const t = performance.now();
            const at = koffi.address(a.bitmap) as bigint;
            native.emulate(at, a.iova / PAGE, a.length / PAGE, p.addr, BigInt(p.list.length));
            kernelMs += performance.now() - t;
          },
        },
        core,
        PAGE,
        { watchMigState: false },
      ),
    }));
    const t = createTracker({
      core,
      units,
      memory: SECTIONS.map((s) => ({ iova: s.gpa, length: s.length, kind: "ram" as const })),
      ...(c.viommu ? { viommu: { aperture: [APERTURE] } } : {}),
      perDeviceCounts,
    });
    if (c.viommu) for (const m of mappings()) t.map(m.iova, m.gpa, m.length);
    t.start();
    t.setPhase("precopy");
    return t;
  };
  const plain = makeTracker(false);
  const counted = makeTracker(true);
  // QEMU's pieces: sections at their ram_addr, or each mapping at the ram_addr of its GPA.
  const pieces = c.viommu
    ? mappings().map((m) => [m.iova, m.length, ramAddrOf(m.gpa)] as const)
    : SECTIONS.map((s) => [s.gpa, s.length, s.ramAddr] as const);
  const secs = new BigUint64Array(pieces.flat());
  const dirtyMem = native.dirtyNew((TIB + GIB) / PAGE);
  const out = new BigUint64Array(1);
  // The ceiling: memcpy of a bitmap the size of the report, in wasm memory like the report.
  const nbits = Number((TIB + GIB) / PAGE);
  const srcBm = core.bitmap({ nbits });
  const dstBm = core.bitmap({ nbits });
  const countBm = core.bitmap({ nbits });
  srcBm.fill(true);
  try {
    const vfio = (t: Tracker) => {
      kernelMs = 0;
      const t0 = performance.now();
      const r = t.sync();
      return { ms: performance.now() - t0 - kernelMs, dirty: r.dirtyPages };
    };
    // The same result on every side, checked before anything is timed (the pages are distinct).
    const union = c.dirty;
    const a = vfio(plain);
    const b = vfio(counted);
    native.sync(
      dirtyMem,
      koffi.address(secs),
      BigInt(pieces.length),
      koffi.address(devTable),
      BigInt(c.devices),
      koffi.address(out),
    );
    const migration = SECTIONS.reduce(
      (n, s) => n + native.dirtyCount(dirtyMem, 2, s.ramAddr / PAGE, s.length / PAGE),
      0,
    );
    if (a.dirty !== union || b.dirty !== union || Number(out[0]) !== union || migration !== union)
      throw new Error(
        `${c.scenario}: the sides disagree: vfio-dirty ${a.dirty} / ${b.dirty}, qemu ${out[0]} (migration client ${migration}), ${union} dirtied`,
      );
    const impls: (() => number)[] = [
      () => vfio(plain).ms,
      () => vfio(counted).ms,
      () =>
        native.sync(
          dirtyMem,
          koffi.address(secs),
          BigInt(pieces.length),
          koffi.address(devTable),
          BigInt(c.devices),
          koffi.address(out),
        ) / 1e6,
      () => {
        const [s, d] = [srcBm.bytes, dstBm.bytes]; // fresh views: memory may have grown
        const t0 = performance.now();
        native.memcpy(koffi.address(d) as bigint, koffi.address(s) as bigint, BigInt(s.byteLength));
        return performance.now() - t0;
      },
      () => {
        const t0 = performance.now();
        countBm.count();
        return performance.now() - t0;
      },
    ];
    const samples: number[][] = [];
    for (let round = 0; round < c.rounds; round++) {
      global.gc?.();
      const got = new Array<number>(impls.length);
      for (let k = 0; k < impls.length; k++) {
        const i = (round + k) % impls.length;
        got[i] = impls[i]!();
      }
      samples.push(got);
    }
    const col = (i: number) => median(samples.map((s) => s[i]!));
    const paired = (i: number, j: number) => median(samples.map((s) => s[i]! / s[j]!));
    return {
      scenario: c.scenario,
      devices: c.devices,
      dirty_pages: union,
      viommu: c.viommu,
      vfio_dirty_ms: round3(col(0)),
      vfio_dirty_counts_ms: round3(col(1)),
      qemu_ms: round3(col(2)),
      memcpy_ms: round3(col(3)),
      count_pass_ms: round3(col(4)),
      vfio_dirty_to_qemu: round3(paired(0, 2)),
      vfio_dirty_counts_to_qemu: round3(paired(1, 2)),
      counts_in_passes_per_device: round3(median(samples.map((s) => (s[1]! - s[0]!) / (c.devices * s[4]!)))),
      rounds: c.rounds,
      samples_ms: samples.map((s) => s.map(round3)),
    };
  } finally {
    plain.close();
    counted.close();
    srcBm.free();
    dstBm.free();
    countBm.free();
  }
}

/** The vIOMMU's mappings: IOVA chunk i -> GPA chunk (i * 7919) % NMAPS (a permutation). */
function mappings(): { iova: bigint; gpa: bigint; length: bigint }[] {
  return Array.from({ length: NMAPS }, (_, i) => ({
    iova: APERTURE.iova + BigInt(i) * CHUNK,
    gpa: APERTURE.iova + BigInt((i * 7919) % NMAPS) * CHUNK,
    length: CHUNK,
  }));
}

function ramAddrOf(gpa: bigint): bigint {
  const s = SECTIONS.find((x) => gpa >= x.gpa && gpa < x.gpa + x.length)!;
  return s.ramAddr + (gpa - s.gpa);
}

/**
 * `n` distinct pages drawn uniformly from the pages the devices report (guest RAM, or the vIOMMU's
 * IOVA aperture), each given to one of `devices` devices; per device a sorted list of page numbers.
 */
function dirtyPages(n: number, devices: number, viommu: boolean): BigUint64Array[] {
  const ranges = viommu
    ? [{ first: Number(APERTURE.iova / PAGE), n: Number(APERTURE.length / PAGE) }]
    : SECTIONS.map((s) => ({ first: Number(s.gpa / PAGE), n: Number(s.length / PAGE) }));
  const total = ranges.reduce((a, r) => a + r.n, 0);
  const end = Math.max(...ranges.map((r) => r.first + r.n));
  const taken = new Uint8Array(Math.ceil(end / 8));
  let seed = 0x9e3779b9;
  const rnd = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  for (let got = 0; got < n; ) {
    let k = Math.floor(((rnd() + rnd() / 2 ** 32) * total) % total);
    let page = 0;
    for (const r of ranges) {
      if (k < r.n) {
        page = r.first + k;
        break;
      }
      k -= r.n;
    }
    if (taken[page >>> 3]! & (1 << (page & 7))) continue;
    taken[page >>> 3]! |= 1 << (page & 7);
    got++;
  }
  const per: number[][] = Array.from({ length: devices }, () => []);
  let i = 0;
  for (let byte = 0; byte < taken.length; byte++) {
    let v = taken[byte]!;
    while (v) {
      const bit = 31 - Math.clz32(v & -v);
      v &= v - 1;
      per[i++ % devices]!.push(byte * 8 + bit);
    }
  }
  return per.map((p) => BigUint64Array.from(p, BigInt));
}

function loadQemuSync(): Native {
  const src = fileURLToPath(new URL("../../../../bench/native/qemu-sync.c", import.meta.url));
  const dir = fileURLToPath(new URL("../", import.meta.url));
  mkdirSync(dir, { recursive: true });
  const lib = `${dir}qemu-sync.so`;
  execFileSync("cc", ["-O3", "-march=native", "-shared", "-fPIC", "-Wall", "-Wextra", "-o", lib, src], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  const so = koffi.load(lib);
  const dirtyNew = so.func("uint64_t qemu_dirty_new(uint64_t)");
  const dirtyCount = so.func("uint64_t qemu_dirty_count(uint64_t, int, uint64_t, uint64_t)");
  const sync = so.func("uint64_t qemu_vfio_sync(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t)");
  const emulate = so.func("void emulate_report_into(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t)");
  const memcpy = so.func("void bench_memcpy(uint64_t, uint64_t, uint64_t)");
  return {
    dirtyNew: (n) => BigInt(dirtyNew(n)),
    dirtyCount: (h, cl, f, n) => Number(dirtyCount(h, cl, f, n)),
    sync: (h, s, n, d, nd, o) => Number(sync(h, s, n, d, nd, o)),
    emulate: (b, f, n, p, k) => emulate(b, f, n, p, k),
    memcpy: (d, s, n) => memcpy(d, s, n),
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)]!;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

// npm run bench: the tracker's own cost, apart from the (simulated) kernel's, as a ratio to a
// memcpy of the same 32 MiB bitmap measured in the same run; bounded memory for a 16 TiB guest;
// and the over-report ratio of each strategy on the shipped profiles.
//
// Scenarios (issue 5, section 8):
//   sync-1tib-4dev           a full sync of a 1 TiB guest (32 MiB bitmap), 4 devices with DMA
//                            logging reporting into one bitmap
//   sync-1tib-4dev-viommu    the same behind a vIOMMU of 10,000 mappings (IOVA order != GPA order)
//   windowed-16tib           a 16 TiB guest synced window by window; peak RSS growth
// The kernel's share is the time spent inside host.ioctl (the simulated kernel decoding structs,
// walking its logs and writing bits into wasm memory); tracker_ms is the rest of the sync.
//
// Writes packages/tracker/bench/results.json. Options: --rounds N (default 7), --quick.

import { writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import type { ProfileJson, SimHost } from "@vfio-dirty/vfio-adapter/sim";
import { createSimHost, listProfiles, loadProfile } from "@vfio-dirty/vfio-adapter/sim";
import { openTracker } from "../src/open.ts";
import type { StrategyName } from "../src/select.ts";
import { DeviceLoggingStrategy } from "../src/strategies/device.ts";
import { createTracker } from "../src/tracker.ts";
import { openSim, simProfile } from "../test/sim-helpers.ts";
import { benchQemuPath } from "./qemu-path.ts";
import { benchUntrackedPolicy } from "./untracked-policy.ts";

const args = process.argv.slice(2);
const QUICK = args.includes("--quick");
const ONLY = args.includes("--only") ? args[args.indexOf("--only") + 1] : undefined;
const want = (name: string) => ONLY === undefined || name.startsWith(ONLY);
const ROUNDS =
  (args.includes("--rounds") ? Number(args[args.indexOf("--rounds") + 1]) : 0) || (QUICK ? 3 : 7);
const GIB = 1n << 30n;
const TIB = 1n << 40n;

interface Row {
  scenario: string;
  tracker_ms: number;
  kernel_ms: number;
  memcpy_ms: number;
  ratio_to_memcpy: number;
  peak_rss_growth_mb?: number;
  median_ms?: number;
  dirty_pages?: number;
  /** Fastest and slowest clean sample of kernel_ms (the spread under the machine's load). */
  kernel_ms_range?: [number, number];
  /** Whole-sync wall time (tracker + kernel) and its spread, for the rows judged on it. */
  sync_ms?: number;
  sync_ms_range?: [number, number];
  /** The simulated-kernel targets (issue 16): kernel_ms, or sync_ms for the windowed 16 TiB profile. */
  target_ms?: number;
  target?: "met" | "MISSED";
  note?: string;
}

/** Simulated-kernel time of one sync of a 1 TiB guest with 4 devices and 40,000 dirty pages. */
const KERNEL_1TIB_TARGET_MS = 20;
/** A whole windowed sync of the guest-16tib profile: under the 100 ms interval `track` keeps. */
const SYNC_16TIB_TARGET_MS = 100;

const core = loadBitmapCoreSync();

/** Time spent inside host.ioctl, accumulated: the simulated kernel's share. */
function timeKernel(sim: SimHost): { ms: () => number; reset: () => void } {
  let total = 0;
  const ioctl = sim.ioctl.bind(sim);
  (sim as { ioctl: SimHost["ioctl"] }).ioctl = (fd, req, arg) => {
    const t = performance.now();
    try {
      return ioctl(fd, req, arg);
    } finally {
      total += performance.now() - t;
    }
  };
  return {
    ms: () => total,
    reset: () => {
      total = 0;
    },
  };
}

/** memcpy of `bytes` bytes between two buffers in wasm memory (the native copy V8 uses for set()). */
function memcpyMs(nbytes: number): number {
  const nbits = nbytes * 8;
  const a = core.bitmap({ nbits });
  const b = core.bitmap({ nbits });
  a.fill(true);
  try {
    const times: number[] = [];
    for (let i = 0; i < 23; i++) {
      const src = a.bytes;
      const dst = b.bytes;
      times.push(timed(() => dst.set(src)));
    }
    return Math.min(...times.slice(2)); // the copy's cost when nothing else runs
  } finally {
    a.free();
    b.free();
  }
}

/**
 * Time `f` on a shared machine: a sample during which this process got well under the wall
 * time in CPU (another job ran) is taken again, up to 5 times, as the bitmap-wasm bench does.
 */
function timed(f: () => void): number {
  let wall = 0;
  for (let attempt = 0; attempt < 6; attempt++) {
    const cpu0 = process.cpuUsage();
    const t = performance.now();
    f();
    wall = performance.now() - t;
    const cpu = process.cpuUsage(cpu0);
    if ((cpu.user + cpu.system) / 1000 >= 0.8 * wall || wall < 1) return wall;
  }
  return wall;
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)]!;
}

function guestProfile(
  name: string,
  ramEnd: bigint,
  devices: number,
  opts: { viommu?: ProfileJson["viommu"]; spanLog2?: number } = {},
): ProfileJson {
  return {
    name,
    kernel: "6.12",
    seed: 7,
    iommu: { vendor: "intel" },
    memory: [
      { gpa: "0", length: "3GiB", kind: "ram" },
      { gpa: "4GiB", length: `0x${(ramEnd - 4n * GIB).toString(16)}`, kind: "ram" },
    ],
    ...(opts.viommu ? { viommu: opts.viommu } : {}),
    devices: Array.from({ length: devices }, (_, i) => ({
      bdf: `0000:3b:00.${i}`,
      vendor: "0x15b3",
      device: "0x101e",
      driver: "mlx5_vfio_pci",
      group: 40 + i,
      migration: { flags: ["stop-copy", "p2p", "pre-copy"] as ("stop-copy" | "p2p" | "pre-copy")[] },
      dmaLogging: { maxRanges: 4, ...(opts.spanLog2 ? { maxSpanLog2: opts.spanLog2 } : {}) },
      workload: { kind: "uniform" as const, pagesPerSecond: 200_000, seed: 11 + i },
    })),
  };
}

/** Full syncs of a 1 TiB guest (bitmap 32 MiB + 32 MiB per TiB above), with or without a vIOMMU. */
function benchFullSync(scenario: string, viommu: boolean): Row {
  const ramEnd = TIB + GIB; // 1 TiB of RAM: [0, 3G) + [4G, 1T + 1G)
  let mappings: { iova: string; gpa: string; length: string }[] | undefined;
  if (viommu) {
    // 10,000 mappings of 26,624 pages (104 MiB) each, GPA chunks in a scrambled order.
    const n = 10_000;
    const chunk = 104n << 20n;
    const ram0 = 4n * GIB;
    mappings = Array.from({ length: n }, (_, i) => {
      const j = (i * 7919) % n; // a permutation (7919 is prime, coprime with n)
      return {
        iova: `0x${(ram0 + BigInt(i) * chunk).toString(16)}`,
        gpa: `0x${(ram0 + BigInt(j) * chunk).toString(16)}`,
        length: `0x${chunk.toString(16)}`,
      };
    });
  }
  const profile = guestProfile(scenario, ramEnd, 4, viommu ? { viommu: { mappings: mappings! } } : {});
  if (viommu)
    for (const d of profile.devices)
      d.workload = {
        ...d.workload!,
        kind: "uniform",
        region: [{ iova: "4GiB", length: `0x${(10_000n * (104n << 20n)).toString(16)}` }],
      };
  const sim = simProfile(profile);
  const session = openSim(sim, "type1");
  const kernel = timeKernel(sim);
  const { tracker } = openTracker(session.target, {
    core,
    memory: session.memory,
    ...(viommu
      ? {
          viommu: true,
          viommuAperture: [{ iova: 4n * GIB, length: 10_000n * (104n << 20n) }],
          mapper: session.mapper,
        }
      : {}),
  });
  try {
    if (viommu) for (const m of sim.viommuMappings()!) tracker.map(m.iova, m.gpa, m.length);
    tracker.start();
    tracker.setPhase("pre-copy");
    const totals: number[] = [];
    const kernels: number[] = [];
    const preempted: { total: number; kernel: number }[] = [];
    let dirty = 0;
    // A sync cannot be retaken (it consumes the logs), so a sample during which another job had
    // the CPU is dropped and another round run, up to three times the rounds.
    for (let i = 0; i < 3 * ROUNDS + 1 && totals.length < ROUNDS; i++) {
      sim.run(50); // 4 devices x 200k pages/s x 50 ms = 40k pages
      // Collect the simulated kernel's garbage first, so its GC pauses do not land in our share.
      global.gc?.();
      kernel.reset();
      const cpu0 = process.cpuUsage();
      const t = performance.now();
      const r = tracker.sync();
      const total = performance.now() - t;
      const cpu = process.cpuUsage(cpu0);
      dirty = r.dirtyPages;
      if (i === 0) continue; // warm-up
      const sample = { total, kernel: kernel.ms() };
      if ((cpu.user + cpu.system) / 1000 < 0.8 * total) preempted.push(sample);
      else {
        totals.push(sample.total);
        kernels.push(sample.kernel);
      }
    }
    // A machine this busy gives no clean sample: use the preempted ones and say so.
    const noisy = totals.length < 3;
    if (noisy)
      for (const p of preempted) {
        totals.push(p.total);
        kernels.push(p.kernel);
      }
    const kernelMs = median(kernels);
    const trackerMs = median(totals.map((t, i) => t - kernels[i]!));
    const memcpy = memcpyMs(Number((ramEnd / 4096n + 7n) / 8n));
    return {
      scenario,
      tracker_ms: round(trackerMs),
      kernel_ms: round(kernelMs),
      memcpy_ms: round(memcpy),
      ratio_to_memcpy: round(trackerMs / memcpy),
      dirty_pages: dirty,
      kernel_ms_range: [round(Math.min(...kernels)), round(Math.max(...kernels))],
      target_ms: KERNEL_1TIB_TARGET_MS,
      target: kernelMs < KERNEL_1TIB_TARGET_MS ? "met" : "MISSED",
      ...(noisy
        ? { note: `only ${totals.length - preempted.length} unpreempted samples: the machine was busy` }
        : {}),
    };
  } finally {
    tracker.close();
    session.close();
  }
}

/**
 * The same sync with the kernel's work taken out: the strategies make their calls (encode,
 * addressOf, the REPORT struct) against devices that report nothing. What remains is the tracker's
 * own work (clearing, counting, windows, translation) without the simulated kernel's garbage
 * collection landing in between.
 */
function benchTrackerOnly(scenario: string, viommu: boolean, perDeviceCounts = true): Row {
  const host = createSimHost("mlx5-vf");
  const device = {
    label: "no-op device",
    dmaLoggingStart: (_r: unknown, pageSize: bigint) => pageSize,
    dmaLoggingStop() {},
    dmaLoggingReport(a: { bitmap: Uint8Array }) {
      host.addressOf(a.bitmap);
    },
  };
  const chunk = 104n << 20n;
  const ram0 = 4n * GIB;
  const tracker = createTracker({
    core,
    units: [0, 1, 2, 3].map((i) => ({
      id: `d${i}`,
      devices: [`d${i}`],
      strategy: new DeviceLoggingStrategy(device, core, 4096n, { watchMigState: false }),
    })),
    memory: [
      { iova: 0n, length: 3n * GIB, kind: "ram" },
      { iova: ram0, length: TIB - 3n * GIB, kind: "ram" },
    ],
    ...(viommu ? { viommu: { aperture: [{ iova: ram0, length: 10_000n * chunk }] } } : {}),
    perDeviceCounts,
  });
  try {
    if (viommu)
      for (let i = 0; i < 10_000; i++)
        tracker.map(ram0 + BigInt(i) * chunk, ram0 + BigInt((i * 7919) % 10_000) * chunk, chunk);
    tracker.start();
    tracker.setPhase("pre-copy");
    // No kernel state changes between these syncs, so they can be repeated freely: take the
    // fastest of 3 x rounds (what the work costs when nothing else runs) and show the median too.
    const times: number[] = [];
    for (let i = 0; i < 3 * ROUNDS + 1; i++) {
      global.gc?.();
      const ms = timed(() => tracker.sync());
      if (i > 0) times.push(ms);
    }
    const trackerMs = Math.min(...times);
    const memcpy = memcpyMs(Number((TIB + GIB) / 4096n / 8n));
    return {
      scenario,
      tracker_ms: round(trackerMs),
      kernel_ms: 0,
      memcpy_ms: round(memcpy),
      ratio_to_memcpy: round(trackerMs / memcpy),
      median_ms: round(median(times)),
      note: `kernel replaced by devices that report nothing: the tracker's own work only (fastest of ${times.length}; median_ms is the median)${perDeviceCounts ? "" : "; perDeviceCounts: false"}`,
    };
  } finally {
    tracker.close();
  }
}

/** A 16 TiB guest synced in 64 GiB windows: the process's peak RSS growth stays bounded. */
function benchWindowed(): Row {
  const scenario = "windowed-16tib";
  const ramEnd = 16n * TIB;
  const sim = simProfile(guestProfile(scenario, ramEnd, 1));
  const session = openSim(sim, "type1");
  const kernel = timeKernel(sim);
  const { tracker } = openTracker(session.target, { core, memory: session.memory });
  try {
    tracker.start();
    tracker.setPhase("pre-copy");
    sim.run(20);
    global.gc?.();
    const base = process.memoryUsage().rss;
    let peak = base;
    const sample = () => {
      const rss = process.memoryUsage().rss;
      if (rss > peak) peak = rss;
    };
    kernel.reset();
    const t = performance.now();
    let dirty = 0;
    const r = tracker.sync({
      onWindow: (w) => {
        dirty += w.count();
        sample();
      },
    });
    const total = performance.now() - t;
    sample();
    const memcpy = memcpyMs(32 << 20);
    const trackerMs = total - kernel.ms();
    return {
      scenario,
      tracker_ms: round(trackerMs),
      kernel_ms: round(kernel.ms()),
      memcpy_ms: round(memcpy),
      ratio_to_memcpy: round(trackerMs / memcpy),
      peak_rss_growth_mb: round((peak - base) / 2 ** 20),
      dirty_pages: r.dirtyPages,
      note: `256 windows of 64 GiB (2 MiB bitmap each); ratio is per 32 MiB-equivalent memcpy (the full 16 TiB bitmap would be 512 MiB); ${dirty} dirty`,
    };
  } finally {
    tracker.close();
    session.close();
  }
}

/**
 * The shipped guest-16tib profile as `vfio-dirty track --host sim:guest-16tib` runs it: iommufd
 * (the VF cannot log 16 TiB, so START falls back), 100 ms of the profile's workload per sync, a
 * windowed sync whose windows are counted. Judged on the whole sync's wall time, which must stay
 * under the 100 ms interval; kernel_ms is the simulated kernel's share.
 */
function benchGuest16Tib(): Row {
  const scenario = "sync-guest-16tib-windowed";
  const sim = createSimHost("guest-16tib");
  const session = openSim(sim, "iommufd");
  const kernel = timeKernel(sim);
  const { tracker } = openTracker(session.target, { core, memory: session.memory });
  try {
    tracker.start();
    tracker.setPhase("precopy");
    const syncs: number[] = [];
    const kernels: number[] = [];
    let dirty = 0;
    let windows = 0;
    const preempted: [number, number][] = [];
    for (let i = 0; i < 3 * ROUNDS + 1 && syncs.length < ROUNDS; i++) {
      sim.run(100);
      global.gc?.();
      kernel.reset();
      windows = 0;
      const cpu0 = process.cpuUsage();
      const t = performance.now();
      const r = tracker.sync({
        onWindow: (w) => {
          windows++;
          w.count();
        },
      });
      const total = performance.now() - t;
      const cpu = process.cpuUsage(cpu0);
      dirty = r.dirtyPages;
      if (i === 0) continue; // warm-up
      if ((cpu.user + cpu.system) / 1000 < 0.8 * total) preempted.push([total, kernel.ms()]);
      else {
        syncs.push(total);
        kernels.push(kernel.ms());
      }
    }
    const clean = syncs.length;
    if (clean < 3)
      for (const [total, k] of preempted) {
        syncs.push(total);
        kernels.push(k);
      }
    const syncMs = median(syncs);
    const kernelMs = median(kernels);
    const memcpy = memcpyMs(32 << 20);
    return {
      scenario,
      tracker_ms: round(syncMs - kernelMs),
      kernel_ms: round(kernelMs),
      memcpy_ms: round(memcpy),
      ratio_to_memcpy: round((syncMs - kernelMs) / memcpy),
      dirty_pages: dirty,
      kernel_ms_range: [round(Math.min(...kernels)), round(Math.max(...kernels))],
      sync_ms: round(syncMs),
      sync_ms_range: [round(Math.min(...syncs)), round(Math.max(...syncs))],
      target_ms: SYNC_16TIB_TARGET_MS,
      target: syncMs < SYNC_16TIB_TARGET_MS ? "met" : "MISSED",
      note: `${windows} windows; ${clean} clean syncs of 100 ms of workload each${clean < 3 ? ` (too few: ${preempted.length} preempted ones used too, the machine was busy)` : ""}; ratio is per 32 MiB memcpy`,
    };
  } finally {
    tracker.close();
    session.close();
  }
}

interface Precision {
  profile: string;
  backend: "type1" | "iommufd";
  strategy: StrategyName | "mixed";
  written: number;
  reported: number;
  over_report_ratio: number | null;
}

/** Over-report ratio (reported / truly written, per sync interval) of each strategy on each shipped profile. */
function benchPrecision(): Precision[] {
  const out: Precision[] = [];
  for (const { name } of listProfiles()) {
    const p = loadProfile(name);
    let span = 0n;
    for (const s of p.memory) if (s.gpa + s.length > span) span = s.gpa + s.length;
    if (span > 64n * GIB) continue; // the 16 TiB profile is covered by windowed-16tib
    const backends: ("type1" | "iommufd")[] = [];
    if (p.iommu.type1) backends.push("type1");
    if (p.iommu.iommufd && p.iommu.cdev) backends.push("iommufd");
    for (const backend of backends) {
      for (const force of ["device", backend, "all-dirty"] as const) {
        const sim = simProfile(p.json);
        let session: ReturnType<typeof openSim>;
        try {
          session = openSim(sim, backend);
        } catch (e) {
          console.warn(`${name}/${backend}: cannot open (${(e as Error).message})`);
          continue;
        }
        try {
          const viommu = sim.viommuMappings();
          let opened: ReturnType<typeof openTracker>;
          try {
            opened = openTracker(session.target, {
              core,
              memory: session.memory,
              enableMigration: "on",
              ignoreBlockers: true,
              forceStrategy: force,
              ...(viommu
                ? {
                    viommu: true,
                    mapper: session.mapper,
                    viommuAperture: viommu.map((m) => ({ iova: m.iova, length: m.length })),
                  }
                : {}),
            });
          } catch {
            continue; // this strategy cannot be built on this host (no dirty-tracking HWPT)
          }
          using t = opened.tracker;
          if (viommu) for (const m of viommu) t.map(m.iova, m.gpa, m.length);
          t.start();
          if (Object.values(t.strategies).some((s) => s !== force)) continue; // not possible here
          t.setPhase("pre-copy");
          let written = 0;
          let reported = 0;
          let last = sim.clock.now();
          for (let i = 0; i < 10; i++) {
            sim.run(100);
            const r = t.sync();
            written += new Set(sim.writtenSince(last)).size * (4096 / Number(r.pageSize));
            last = sim.clock.now();
            reported += r.dirtyPages;
          }
          out.push({
            profile: name,
            backend,
            strategy: force,
            written,
            reported,
            // null: nothing was written (the edu profiles are driven by a workload plugin, not the sim).
            over_report_ratio: written === 0 ? null : round(reported / written),
          });
        } finally {
          session.close();
        }
      }
    }
  }
  return out;
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

const rows: Row[] = [];
// First, in a fresh process state, so earlier scenarios' wasm memory does not hide its growth.
if (want("windowed-16tib")) rows.push(benchWindowed());
if (want("sync-guest-16tib")) rows.push(benchGuest16Tib());
if (want("sync-1tib-4dev")) rows.push(benchFullSync("sync-1tib-4dev", false));
if (want("sync-1tib-4dev-viommu")) rows.push(benchFullSync("sync-1tib-4dev-viommu", true));
if (want("tracker-only")) {
  rows.push(benchTrackerOnly("tracker-only-1tib-4dev", false));
  rows.push(benchTrackerOnly("tracker-only-1tib-4dev-viommu", true));
  rows.push(benchTrackerOnly("tracker-only-1tib-4dev-viommu-no-per-device-counts", true, false));
}
console.table(rows.map(({ note: _n, ...r }) => r));
const qemuPath = benchQemuPath(core, {
  rounds: ROUNDS,
  want: (scenario) => ONLY === undefined || scenario.startsWith(ONLY) || ONLY === "qemu-path",
});
console.table(qemuPath.map(({ samples_ms: _s, rounds: _r, ...r }) => r));
const precision = want("precision") ? benchPrecision() : [];
console.table(precision);
const untrackedPolicy = want("untracked-policy") ? benchUntrackedPolicy() : [];
if (ONLY !== undefined) process.exit(0); // a partial run does not overwrite results.json
// Compiled to node_modules/.cache/tracker-bench/bench/run.js: the package root is four levels up.
const file = new URL("../../../../bench/results.json", import.meta.url);
writeFileSync(
  file,
  `${JSON.stringify({ date: new Date().toISOString(), node: process.version, load_average: loadavg(), rounds: ROUNDS, rows, qemu_path: qemuPath, precision, untracked_policy: untrackedPolicy }, null, 2)}\n`,
);
console.log(`wrote ${file.pathname}`);

import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import type { Bitmap, BitmapCore } from "@vfio-dirty/tracker";
import { describe, expect, it } from "vitest";
import { maxOf, summarizeRates } from "../src/report.ts";
import type { TrackBackend } from "../src/track/backend.ts";
import { runTrack } from "../src/track/loop.ts";

const core = loadBitmapCoreSync() as unknown as BitmapCore;
const MiB = 1n << 20n;

/**
 * A backend whose "tracker" reports `reportPages` (4 KiB pages) on every sync while the "host"
 * says `writtenPages` were written: the loop's ground-truth check must catch any difference.
 */
function fakeBackend(
  reportPages: number[],
  writtenPages: number[],
  opts: { abortAfter?: AbortController } = {},
) {
  let now = 0;
  let closed = 0;
  let syncs = 0;
  const backend: TrackBackend = {
    host: {} as TrackBackend["host"],
    hostName: "fake",
    simulated: true,
    devices: ["0000:00:01.0"],
    strategy: "device",
    reasons: [],
    pageSize: 4096n,
    ramBytes: 4n * MiB,
    gpaEnd: 4n * MiB,
    workload: "test",
    core,
    tracker: {
      start() {},
      setPhase() {},
      sync({ onWindow }) {
        syncs++;
        // Two windows of 2 MiB, as the tracker hands out for big guests.
        for (const base of [0n, 2n * MiB]) {
          const w: Bitmap = core.bitmap({ nbits: 512, pageSize: 4096n, base });
          for (const p of reportPages) {
            const off = p - Number(base / 4096n);
            if (off >= 0 && off < 512) w.set(off, 1);
          }
          onWindow(w);
          w.free();
        }
        if (opts.abortAfter) opts.abortAfter.abort();
        return {
          seq: syncs,
          phase: "pre-copy",
          strategy: "device",
          dirtyPages: reportPages.length,
          durationMs: 1,
          kernelBytes: 128,
          events: [],
        };
      },
      stop() {},
      close() {},
      events: [{ atMs: 1, kind: "restarted", unit: "0000:00:01.0", message: "log reset" }],
    },
    async advance(ms) {
      now += ms;
    },
    nowMs: () => now,
    writtenSinceStart: () => writtenPages,
    close() {
      closed++;
      return true;
    },
  };
  return { backend, closed: () => closed, syncs: () => syncs };
}

describe("runTrack", () => {
  it("passes the ground-truth check when every written page was reported, across windows", async () => {
    const f = fakeBackend([1, 2, 600, 1000], [1, 600, 1000]);
    const r = await runTrack(
      f.backend,
      { durationMs: 3000, intervalMs: 1000, phaseSwitchMs: null, seed: 1 },
      { signal: new AbortController().signal },
    );
    expect(r.syncs).toBe(3);
    expect(r.groundTruth).toEqual({
      checkPageSize: 4096,
      pagesWritten: 3,
      pagesReported: 4,
      pagesLost: 0,
      overReportRatio: 4 / 3,
      ok: true,
    });
    expect(r.heatmap.rows).toHaveLength(3);
    expect(r.heatmap.rows[0]!.reduce((a, b) => a + b, 0)).toBe(4);
    expect(r.events).toEqual([{ tMs: 1, kind: "restarted", message: "0000:00:01.0: log reset" }]);
    expect(r.trackingStopped).toBe(true);
    expect(f.closed()).toBe(1);
  });

  it("a window handed over twice in one sync (all dirty the second time) fills its columns, no more", async () => {
    const f = fakeBackend([1], [1]);
    const inner = f.backend.tracker.sync.bind(f.backend.tracker);
    f.backend.tracker.sync = ({ onWindow }) => {
      const r = inner({ onWindow });
      // As the tracker does when a read fails in a later window: window 0 again, every page dirty.
      const again = core.bitmap({ nbits: 512, pageSize: 4096n, base: 0n });
      again.set(0, 512);
      onWindow(again);
      again.free();
      return r;
    };
    const r = await runTrack(
      f.backend,
      { durationMs: 1000, intervalMs: 1000, phaseSwitchMs: null, seed: 1, heatmapColumns: 4 },
      { signal: new AbortController().signal },
    );
    // 4 MiB in 4 columns of 256 pages: window 0 is columns 0 and 1, whole; nothing counted twice.
    expect(r.heatmap.rows[0]).toEqual([256, 256, 0, 0]);
    expect(r.groundTruth).toMatchObject({ pagesReported: 512, pagesLost: 0 });
  });

  it("counts a written page no sync reported as lost", async () => {
    const f = fakeBackend([1], [1, 700]);
    const r = await runTrack(
      f.backend,
      { durationMs: 1000, intervalMs: 1000, phaseSwitchMs: null, seed: 1 },
      { signal: new AbortController().signal },
    );
    expect(r.groundTruth).toMatchObject({ pagesWritten: 2, pagesLost: 1, ok: false });
  });

  it("counts writes beyond tracked memory as lost", async () => {
    const f = fakeBackend([1], [1, 5000]);
    const r = await runTrack(
      f.backend,
      { durationMs: 1000, intervalMs: 1000, phaseSwitchMs: null, seed: 1 },
      { signal: new AbortController().signal },
    );
    expect(r.groundTruth).toMatchObject({ pagesLost: 1, ok: false });
  });

  it("after an interrupt does one final sync, then closes and still reports", async () => {
    const ac = new AbortController();
    const f = fakeBackend([3], [3], { abortAfter: ac });
    const r = await runTrack(
      f.backend,
      { durationMs: 60_000, intervalMs: 1000, phaseSwitchMs: null, seed: 1 },
      { signal: ac.signal },
    );
    expect(r.interrupted).toBe(true);
    // The interrupt landed during sync 1; the loop then reads the log once more and stops.
    expect(r.syncs).toBe(2);
    expect(f.closed()).toBe(1);
    expect(r.groundTruth?.ok).toBe(true);
  });

  it("closes the backend even when a sync throws", async () => {
    const f = fakeBackend([], []);
    f.backend.tracker.sync = () => {
      throw new Error("boom");
    };
    await expect(
      runTrack(
        f.backend,
        { durationMs: 1000, intervalMs: 1000, phaseSwitchMs: null, seed: 1 },
        { signal: new AbortController().signal },
      ),
    ).rejects.toThrow("boom");
    expect(f.closed()).toBe(1);
  });

  it("closes the backend even when allocating the report union fails (before tracking starts)", async () => {
    const f = fakeBackend([], []);
    let started = false;
    f.backend.tracker.start = () => {
      started = true;
    };
    (f.backend as { core: BitmapCore }).core = {
      ...core,
      bitmap: () => {
        throw new Error("out of wasm memory");
      },
    } as BitmapCore;
    await expect(
      runTrack(
        f.backend,
        { durationMs: 1000, intervalMs: 1000, phaseSwitchMs: null, seed: 1 },
        { signal: new AbortController().signal },
      ),
    ).rejects.toThrow("out of wasm memory");
    expect(started).toBe(false);
    expect(f.closed()).toBe(1);
  });
});

describe("runTrack on long and slow runs", () => {
  it("lets the event loop run between syncs, so a signal lands although the host never waits", async () => {
    // advance() resolves at once, as the simulated host's --fast does: only a turn of the event
    // loop lets the timer below (and so a real SIGINT handler) run before the run ends.
    const f = fakeBackend([1], [1]);
    const ac = new AbortController();
    setTimeout(() => ac.abort("SIGINT"), 0);
    const r = await runTrack(
      f.backend,
      { durationMs: 2_000_000, intervalMs: 1000, phaseSwitchMs: null, seed: 1 },
      { signal: ac.signal },
    );
    expect(r.interrupted).toBe(true);
    expect(r.syncs).toBeLessThan(2000);
    expect(f.closed()).toBe(1);
  });

  it("hands over start notes before the first sync, and warns of syncs longer than the interval", async () => {
    const f = fakeBackend([1], [1]);
    const inner = f.backend.tracker.sync.bind(f.backend.tracker);
    f.backend.tracker.sync = (o) => ({ ...inner(o), durationMs: 1500 });
    const seen: string[] = [];
    let wall = 0;
    const r = await runTrack(
      f.backend,
      { durationMs: 3000, intervalMs: 1000, phaseSwitchMs: null, seed: 1 },
      {
        signal: new AbortController().signal,
        onStarted: (events) => seen.push(`started ${events.length}`),
        onSample: (s) => seen.push(`sync ${s.sync}`),
        onSlowSync: (s, interval) => seen.push(`slow ${s.sync} ${interval}`),
        wallNow: () => (wall += 2500),
      },
    );
    expect(seen).toEqual([
      "started 1",
      "sync 1",
      "slow 1 1000",
      "sync 2",
      "slow 2 1000",
      "sync 3",
      "slow 3 1000",
    ]);
    expect(r.syncCost).toMatchObject({ maxMs: 1500, slowSyncs: 3, simulated: true });
    expect(r.durationMs).toBe(3000);
    // Wall time is measured apart from the host's clock (here one 2.5 s step from start to end).
    expect(r.wallMs).toBe(2500);
  });

  it("summarises and draws a day of syncs without overflowing the stack", () => {
    const samples = Array.from({ length: 200_000 }, (_, i) => ({
      sync: i + 1,
      tMs: (i + 1) * 10,
      intervalMs: 10,
      phase: "pre-copy",
      dirtyPages: i % 7,
      dirtyBytes: (i % 7) * 4096,
      dirtyRate: (i % 7) * 409_600,
      syncMs: i % 5,
      bytesRead: 8,
    }));
    expect(summarizeRates(samples).max).toBe(6 * 409_600);
    expect(maxOf(samples.map((s) => s.syncMs))).toBe(4);
    expect(maxOf([])).toBe(0);
    expect(maxOf([-3, -1])).toBe(-1);
  });
});

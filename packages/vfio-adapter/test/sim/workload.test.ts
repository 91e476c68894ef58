// Workloads are seeded and deterministic; the clock drives them; rates and patterns hold.

import { describe, expect, it } from "vitest";
import { createSimHost, parseProfile } from "../../src/sim/index.ts";
import type { WorkloadJson } from "../../src/sim/profile.ts";
import { createWorkload } from "../../src/sim/workload.ts";
import { profileJson, type1Device } from "./helpers.ts";

const REGION = [{ start: 0x100000n, length: 0x100000n }]; // 256 pages

function writes(spec: WorkloadJson, ms: number, steps = 1) {
  const w = createWorkload(spec, REGION, 1);
  const out = [];
  for (let i = 0; i < steps; i++)
    out.push(...w.writesBetween((ms * 1e6 * i) / steps, (ms * 1e6 * (i + 1)) / steps));
  return out;
}

describe("workloads", () => {
  it("are the same however time is chopped", () => {
    for (const kind of ["uniform", "hot-set", "ring", "bursts"] as const) {
      const spec: WorkloadJson = { kind, pagesPerSecond: 10_000, burstMs: 3, idleMs: 7 };
      expect(writes(spec, 50, 1), kind).toEqual(writes(spec, 50, 17));
    }
  });

  it("hold their rate in pages or bytes per second (writes due in [from, to): the one at `to` runs next)", () => {
    expect(writes({ kind: "uniform", pagesPerSecond: 10_000 }, 100).length).toBe(999);
    expect(writes({ kind: "uniform", pagesPerSecond: 10_000 }, 100.01).length).toBe(1000);
    const bytes = writes({ kind: "uniform", bytesPerSecond: 1_500_000, writeBytes: 1500 }, 100);
    expect(bytes.length).toBe(99);
    expect(bytes.every((w) => w.length === 1500n)).toBe(true);
  });

  it("a ring writes pages in order and wraps", () => {
    const w = writes({ kind: "ring", pagesPerSecond: 1000, ringPages: 4 }, 6.5);
    expect(w.map((x) => Number((x.iova - 0x100000n) / 4096n))).toEqual([0, 1, 2, 3, 0, 1]);
    expect(w.map((x) => x.t / 1e6)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("a hot set concentrates writes on a few pages", () => {
    const w = writes({ kind: "hot-set", pagesPerSecond: 100_000, hotPages: 8, hotFraction: 0.9 }, 20);
    const counts = new Map<bigint, number>();
    for (const x of w) counts.set(x.iova, (counts.get(x.iova) ?? 0) + 1);
    const top8 = [...counts.values()]
      .sort((a, b) => b - a)
      .slice(0, 8)
      .reduce((a, b) => a + b, 0);
    expect(top8 / w.length).toBeGreaterThan(0.85);
  });

  it("bursts write only during the on-phase", () => {
    const w = writes({ kind: "bursts", pagesPerSecond: 100_000, burstMs: 2, idleMs: 8 }, 50);
    expect(w.length).toBe(999);
    expect(w.every((x) => x.t % 10e6 <= 2e6)).toBe(true);
  });

  it("a trace replays its events, looping when asked", () => {
    const w = writes(
      {
        kind: "trace",
        events: [
          { atMs: 0, iova: "0x2000", length: 8 },
          { atMs: 3, iova: "0x5000", length: 4096 },
        ],
        loopMs: 5,
      },
      12,
      4,
    );
    expect(w.map((x) => [x.t / 1e6, x.iova])).toEqual([
      [0, 0x2000n],
      [3, 0x5000n],
      [5, 0x2000n],
      [8, 0x5000n],
      [10, 0x2000n],
    ]);
  });

  it("stay within their region", () => {
    const w = writes({ kind: "uniform", pagesPerSecond: 50_000 }, 20);
    expect(w.every((x) => x.iova >= 0x100000n && x.iova + x.length <= 0x200000n)).toBe(true);
  });
});

describe("the clock", () => {
  it("virtual time moves only by advance and drives the devices' DMA into the ground truth", () => {
    const h = createSimHost("mlx5-vf");
    type1Device(h);
    expect(h.clock.now()).toBe(0);
    h.run(5);
    expect(h.clock.now()).toBe(5e6);
    // 20000 pages/s: writes at 50 us steps; the one due at exactly 5 ms runs with the next advance.
    expect(h.writtenSince(0).length).toBe(99);
    h.run(5);
    expect(h.writtenSince(5e6).length).toBe(100);
    expect(h.writtenSince(0).length).toBe(199);
    expect(() => h.clock.advance(-1)).toThrow(RangeError);
  });

  it("the wall clock catches up before each syscall", async () => {
    const h = createSimHost(
      parseProfile(
        profileJson(
          { clock: "wall" },
          { workload: { kind: "uniform", pagesPerSecond: 100_000, region: [{ iova: 0, length: "16MiB" }] } },
        ),
      ),
    );
    type1Device(h);
    expect(() => h.clock.advance(1)).toThrow(/wall clock/);
    await new Promise((r) => setTimeout(r, 30));
    h.ioctl(3, 0x3b64, 0);
    expect(h.clock.now()).toBeGreaterThan(20e6);
    expect(h.writtenSince(0).length).toBeGreaterThan(100);
  });
});

describe("the ground truth", () => {
  it("keeps a page's latest write when devices are run one after the other", () => {
    // Two devices write the same page; the second device's write is earlier in time but is
    // recorded later (devices run in turn within one advance).
    const h = createSimHost(
      parseProfile(
        profileJson({
          devices: [
            {
              bdf: "0000:3b:00.1",
              vendor: "0x15b3",
              device: "0x101e",
              driver: "mlx5_vfio_pci",
              group: 12,
              workload: { kind: "trace", events: [{ atMs: 8, iova: "0x5000", length: 8 }] },
            },
            {
              bdf: "0000:3b:00.2",
              vendor: "0x15b3",
              device: "0x101e",
              driver: "mlx5_vfio_pci",
              group: 12,
              workload: { kind: "trace", events: [{ atMs: 2, iova: "0x5000", length: 8 }] },
            },
          ],
        }),
      ),
    );
    type1Device(h);
    h.run(10);
    expect(h.writtenSince(5e6)).toEqual([5]);
    expect(h.writtenSince(5e6, { device: "0000:3b:00.2" })).toEqual([]);
  });
});

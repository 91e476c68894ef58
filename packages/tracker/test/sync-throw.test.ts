// A sync that throws part-way (the caller's onWindow, a merge into a bad `into`) has already read,
// and so cleared, kernel logs: the bits must come back at the next sync, never vanish.

import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import { describe, expect, it } from "vitest";
import { createTracker } from "../src/tracker.ts";
import { FakeLogStrategy } from "./fake-strategy.ts";

const core = loadBitmapCoreSync();
const P = 4096n;
const memory = [{ iova: 0n, length: 256n * P, kind: "ram" as const }];

function setup() {
  const dev = new FakeLogStrategy("device", P);
  const tracker = createTracker({
    core,
    units: [{ id: "0000:01:00.0", devices: ["0000:01:00.0"], strategy: dev }],
    memory,
    windowBytes: 64n * P,
  });
  tracker.start();
  tracker.setPhase("pre-copy");
  return { dev, tracker };
}

describe("sync that throws part-way", () => {
  it("an onWindow callback that throws: the pages read are reported at the next sync", () => {
    const { dev, tracker } = setup();
    dev.write(3n * P); // first window
    dev.write(200n * P); // last window
    expect(() =>
      tracker.sync({
        onWindow: () => {
          throw new Error("caller failed");
        },
      }),
    ).toThrow("caller failed");
    const r = tracker.sync();
    expect(r.bitmap!.test(3)).toBe(true);
    expect(r.bitmap!.test(200)).toBe(true);
    expect(tracker.events.map((e) => e.kind)).toContain("sync-failed");
    tracker.close();
  });

  it("onWindow: a read that fails in a later window hands the earlier windows over again, all dirty", () => {
    const { dev, tracker } = setup(); // 4 windows of 64 pages
    dev.write(3n * P); // window 0
    dev.write(200n * P); // window 3
    dev.failAfterQueries = 2; // windows 0 and 1 read fine, window 2's read fails
    const handed: [base: bigint, runs: [number, number][]][] = [];
    const into = core.bitmap({ nbits: 256, pageSize: P });
    const r = tracker.sync({
      into,
      onWindow: (w) => {
        handed.push([w.base, [...w.runs()]]);
      },
    });
    // First pass: window 0 as read, window 1 clean, windows 2 and 3 whole (the log is corrupt).
    // Then windows 0 and 1 again, whole: they were read from that same corrupt log.
    expect(handed).toEqual([
      [0n, [[3, 1]]],
      [64n * P, []],
      [128n * P, [[0, 64]]],
      [192n * P, [[0, 64]]],
      [0n, [[0, 64]]],
      [64n * P, [[0, 64]]],
    ]);
    expect([...into.runs()]).toEqual([[0, 256]]);
    // Each page counted once, however often its window was handed over.
    expect(r.dirtyPages).toBe(256);
    expect(r.perSection.map((s) => s.pages)).toEqual([256]);
    expect(tracker.events.map((e) => e.kind)).toEqual(expect.arrayContaining(["query-failed", "re-emitted"]));
    into.free();
    tracker.close();
  });

  it("full report: a read that fails in a later window reports the earlier windows whole too", () => {
    const { dev, tracker } = setup(); // 4 windows of 64 pages
    dev.write(3n * P);
    dev.failAfterQueries = 2; // windows 0 and 1 read fine, window 2's read fails
    const r = tracker.sync();
    expect([...r.bitmap!.runs()]).toEqual([[0, 256]]);
    expect(r.dirtyPages).toBe(256);
    tracker.close();
  });

  it("full report behind a vIOMMU: the same, through the translation", () => {
    const dev = new FakeLogStrategy("device", P);
    const tracker = createTracker({
      core,
      units: [{ id: "0000:01:00.0", devices: ["0000:01:00.0"], strategy: dev }],
      memory,
      viommu: { aperture: [{ iova: 0n, length: 1024n * P }] },
      windowBytes: 64n * P,
    });
    // IOVA [512, 768) -> GPA [0, 256): four windows of 64 pages.
    tracker.map(512n * P, 0n, 256n * P);
    tracker.start();
    tracker.setPhase("pre-copy");
    dev.write(515n * P);
    dev.failAfterQueries = 2;
    const r = tracker.sync();
    expect([...r.bitmap!.runs()]).toEqual([[0, 256]]);
    expect(r.dirtyPages).toBe(256);
    tracker.close();
  });

  it("onWindow: a read that fails in the first window hands each window over once, all dirty", () => {
    const { dev, tracker } = setup();
    dev.failQueries = 1;
    const handed: bigint[] = [];
    const r = tracker.sync({
      onWindow: (w) => {
        expect(w.count()).toBe(64);
        handed.push(w.base);
      },
    });
    expect(handed).toEqual([0n, 64n * P, 128n * P, 192n * P]);
    expect(r.dirtyPages).toBe(256);
    expect(tracker.events.map((e) => e.kind)).not.toContain("re-emitted");
    tracker.close();
  });

  it("a merge into an unusable bitmap throws: the pages read are reported at the next sync", () => {
    const { dev, tracker } = setup();
    dev.write(5n * P);
    const into = core.bitmap({ nbits: 64, pageSize: P });
    into.free(); // a freed bitmap: convert refuses it after the logs were read
    expect(() => tracker.sync({ into })).toThrow();
    const r = tracker.sync();
    expect(r.bitmap!.test(5)).toBe(true);
    expect(tracker.events.some((e) => e.kind === "sync-failed")).toBe(true);
    tracker.close();
  });

  it("vIOMMU: bits read at unmap time survive a sync that throws", () => {
    const iommu = new FakeLogStrategy("iommufd", P, true);
    const tracker = createTracker({
      core,
      units: [{ id: "iommu", devices: ["0000:01:00.0"], strategy: iommu }],
      memory,
      viommu: { aperture: [{ iova: 0n, length: 1024n * P }] },
    });
    tracker.map(512n * P, 7n * P, 4n * P);
    tracker.start();
    tracker.setPhase("pre-copy");
    iommu.write(513n * P); // gpa page 8
    tracker.unmap(512n * P, 4n * P); // read now, held for the next report
    const into = core.bitmap({ nbits: 64, pageSize: P });
    into.free();
    expect(() => tracker.sync({ into })).toThrow();
    expect(tracker.sync().bitmap!.test(8)).toBe(true);
    tracker.close();
  });

  it("dirty pages outside `into` are counted and recorded, and stay in the report", () => {
    const { dev, tracker } = setup();
    dev.write(200n * P);
    const into = core.bitmap({ nbits: 64, pageSize: P });
    const r = tracker.sync({ into });
    expect(r.notMerged).toBe(1);
    expect(r.bitmap!.test(200)).toBe(true);
    expect(r.events.map((e) => e.kind)).toContain("not-merged");
    into.free();
    tracker.close();
  });

  it("a unit skipped in pre-copy is still health-checked: a log lost then is reported at stop-copy", () => {
    const dev = new FakeLogStrategy("device", P);
    const tracker = createTracker({
      core,
      units: [{ id: "0000:01:00.0", devices: ["0000:01:00.0"], strategy: dev, preCopy: false }],
      memory,
    });
    tracker.start();
    tracker.setPhase("pre-copy");
    dev.write(9n * P);
    dev.resetLog(); // the device was reset: its log is gone...
    dev.unhealthy = "device went back to RUNNING"; // ...which shows only until the next look
    tracker.sync();
    dev.unhealthy = undefined;
    tracker.setPhase("stop-copy");
    expect(tracker.sync().bitmap!.test(9)).toBe(true);
    expect(tracker.events.map((e) => e.kind)).toContain("unhealthy");
    tracker.close();
  });
});

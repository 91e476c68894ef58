// The tracker on a real kernel with device DMA logging: edu bound to the edu-log variant driver
// (tests/vm/module/), opened with the adapter's typed objects. The tracker must choose the device
// strategy, and each sync must equal, exactly at the tracking page size, the pages edu wrote:
// across several syncs, an unmap and remap, a stop and restart, and a tracker at 8 KiB pages.
import { writeFileSync } from "node:fs";
import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import { type DirtyReport, openTracker, type Tracker } from "@vfio-dirty/tracker";
import type { MappedMemory } from "@vfio-dirty/vfio-adapter";
import { createLinuxHost } from "@vfio-dirty/vfio-adapter/linux";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EDU_BUFFER } from "./support/edu.ts";
import { guest } from "./support/guest.ts";
import { eduWorkload, openTyped, type TypedSession } from "./support/typed.ts";

const PAGE = 4096n;
const A = 0x200000n;
const LENGTH = 64n * PAGE;
const host = createLinuxHost();
const core = loadBitmapCoreSync();
const memory = [{ iova: A, length: LENGTH, kind: "ram" as const }];
let s: TypedSession;
let mem: MappedMemory;
const extra: MappedMemory[] = [];
let tracker: Tracker | undefined;

describe.skipIf(guest.driver !== "edu-log")("tracker with device DMA logging (edu-log)", () => {
  beforeAll(() => {
    s = openTyped(host);
    mem = host.mmapAnonymous(LENGTH);
    s.container.mapDma({ vaddr: mem.address, iova: A, length: LENGTH });
  });
  afterAll(() => {
    tracker?.close();
    s?.close();
    for (const m of [mem, ...extra]) if (m) host.munmap(m);
  });

  const open = (pageSize = PAGE) =>
    openTracker(
      { devices: [{ id: s.bdf, device: s.device }], iommu: { kind: "type1", container: s.container } },
      { core, memory, pageSize, ignoreBlockers: true },
    );
  const write = (page: bigint, offset = 0n, count = 64) =>
    s.edu.dmaToRam(EDU_BUFFER, A + page * PAGE + offset, count);

  it("chooses the device strategy", () => {
    const opened = open();
    tracker = opened.tracker;
    expect(opened.choice.strategy).toBe("device");
    expect(opened.choice.reasons.filter((r) => r.strategy === "device")).toEqual([]);
    tracker.start();
    tracker.setPhase("pre-copy");
  });

  it("each sync reports exactly the pages edu wrote since the last one", () => {
    write(1n);
    write(5n, 0x800n, 4095); // crosses into page 6
    expect(pages(tracker!.sync())).toEqual([1, 5, 6]);
    expect(pages(tracker!.sync())).toEqual([]);
    write(9n);
    write(9n, 0x10n);
    write(63n, 0xff0n, 16);
    expect(pages(tracker!.sync())).toEqual([9, 63]);
  });

  it("reports exactly the pages the CLI's edu workload plugin wrote", async () => {
    const workload = await eduWorkload(host, s, { iova: A, length: LENGTH, bytes: mem.bytes }, 7);
    try {
      const written = await workload.run(400, new AbortController().signal);
      expect(written.length).toBeGreaterThan(0);
      // Each plugin DMA is at most 4095 bytes from a page start: one page each.
      const truth = [...new Set(written.map((w) => Number((w.iova - A) / PAGE)))].sort((x, y) => x - y);
      expect(pages(tracker!.sync())).toEqual(truth);
    } finally {
      workload.stop();
    }
  });

  it("an unmap and remap of the guest memory loses nothing and follows the new memory", () => {
    // A known pattern in edu's buffer (a device read: logs nothing), to find it in the new memory.
    mem.bytes.fill(0xa5, Number(62n * PAGE), Number(62n * PAGE) + 64);
    s.edu.dmaFromRam(A + 62n * PAGE, EDU_BUFFER, 64);
    write(2n);
    expect(s.container.unmapDma({ iova: A, length: LENGTH })).toBe(LENGTH);
    const fresh = host.mmapAnonymous(LENGTH);
    extra.push(fresh);
    s.container.mapDma({ vaddr: fresh.address, iova: A, length: LENGTH });
    write(3n);
    expect(pages(tracker!.sync())).toEqual([2, 3]);
    expect(fresh.bytes[Number(3n * PAGE)]).toBe(0xa5);
  });

  it("after stop and restart it tracks again from the restart", () => {
    tracker!.stop();
    expect(tracker!.started).toBe(false);
    tracker!.start();
    tracker!.setPhase("pre-copy");
    write(20n);
    const report = tracker!.sync();
    expect(report.strategy).toBe("device");
    expect(pages(report)).toEqual([20]);
    tracker!.close();
    tracker = undefined;
  });

  it("a tracker at 8 KiB pages gets 8 KiB bits from REPORT", () => {
    const opened = open(2n * PAGE);
    tracker = opened.tracker;
    tracker.start();
    tracker.setPhase("pre-copy");
    write(7n);
    write(30n);
    const report = tracker.sync();
    expect(report.pageSize).toBe(2n * PAGE);
    expect(pages(report)).toEqual([3, 15]);
    tracker.close();
    tracker = undefined;
  });

  // The driver clears a whole logging page on any REPORT that touches it (edu_log_read_and_clear),
  // so the tracker must never send a REPORT that cuts one. With the driver's min_page_size it logs
  // at 64 KiB or 2 MiB while the tracker tracks 4 KiB pages, in windows of 256 KiB (smaller than
  // a 2 MiB logging page), over two RAM sections that meet inside a logging page.
  for (const logPage of [16n * PAGE, 512n * PAGE]) {
    it(`logging pages of ${logPage / 1024n} KiB: windows and section edges inside a page lose nothing`, () => {
      setMinPageSize(logPage);
      try {
        const sections = [
          { iova: A, length: 40n * PAGE, kind: "ram" as const },
          { iova: A + 40n * PAGE, length: 24n * PAGE, kind: "ram" as const },
        ];
        tracker = openTracker(
          { devices: [{ id: s.bdf, device: s.device }], iommu: { kind: "type1", container: s.container } },
          { core, memory: sections, pageSize: PAGE, windowBytes: 64n * PAGE, ignoreBlockers: true },
        ).tracker;
        tracker.start();
        tracker.setPhase("pre-copy");
        expect(tracker.events.find((e) => e.kind === "start-notes")?.message).toMatch(
          new RegExp(`page size 0x${logPage.toString(16)}`),
        );
        for (const round of [
          [39n, 40n],
          [41n, 47n, 63n],
          [0n, 16n],
        ]) {
          for (const p of round) write(p, 0n, 64);
          // Exactly the logging pages written, inside RAM: whole pages, never less.
          const want = new Set<number>();
          for (const p of round) {
            const first = Number(((A + p * PAGE) / logPage) * logPage - A) / 4096;
            for (let q = Math.max(0, first); q < Math.min(64, first + Number(logPage / PAGE)); q++)
              want.add(q);
          }
          expect(pages(tracker.sync())).toEqual([...want].sort((x, y) => x - y));
          expect(pages(tracker.sync())).toEqual([]);
        }
      } finally {
        tracker?.close();
        tracker = undefined;
        setMinPageSize(PAGE);
      }
    });
  }
});

/** The test driver's smallest logging page (module parameter, writable at run time). */
function setMinPageSize(bytes: bigint): void {
  writeFileSync("/sys/module/edu_log_vfio/parameters/min_page_size", `${bytes}\n`);
}

// --- Internal helpers ---

/** Dirty pages of a report relative to A, in the report's page size. */
function pages(report: DirtyReport): number[] {
  const bits = report.bitmap!;
  const base = Number(A / report.pageSize); // GPA = IOVA here: no vIOMMU
  const out: number[] = [];
  for (const [start, length] of bits.runs()) for (let i = 0; i < length; i++) out.push(start + i - base);
  expect(out.length).toBe(report.dirtyPages);
  return out;
}

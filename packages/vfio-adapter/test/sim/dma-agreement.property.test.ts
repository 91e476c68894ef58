// DMA semantics, property-tested: for random mappings, writes, workloads and tracking windows,
// the device's DMA log, the IOMMU's dirty bits and the ground truth agree exactly at the logging
// page size; type1 reports every mapped page (or exactly the written ones in pinned-page scope).

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createSimHost, parseProfile, type SimHost } from "../../src/sim/index.ts";
import type { WorkloadJson } from "../../src/sim/profile.ts";
import { Container, DeviceCdev, Group, IommuFd } from "../../src/vfio/index.ts";
import { BDF, PAGE, profileJson, setBits } from "./helpers.ts";

const WINDOW_PAGES = 1024; // 4 MiB of IOVA under test
const WINDOW = BigInt(WINDOW_PAGES) * PAGE;

/** Non-overlapping page ranges inside the window: [startPage, npages]. */
const mappingsArb = fc
  .uniqueArray(fc.integer({ min: 0, max: WINDOW_PAGES / 16 - 1 }), { minLength: 1, maxLength: 12 })
  .chain((slots) =>
    fc.tuple(...slots.map((slot) => fc.integer({ min: 1, max: 16 }).map((n) => [slot * 16, n] as const))),
  );

const writeArb = fc.record({
  page: fc.integer({ min: 0, max: WINDOW_PAGES - 1 }),
  offset: fc.integer({ min: 0, max: 4095 }),
  length: fc.integer({ min: 1, max: 3 * 4096 }),
});

const logPageArb = fc.constantFrom(4096, 8192, 16384, 65536);

function hostWith(logPage: number, workload?: WorkloadJson): SimHost {
  return createSimHost(
    parseProfile(
      profileJson(
        { memory: [{ gpa: "0x0", length: "64MiB", kind: "ram" }] },
        { dmaLogging: { minPageSize: logPage }, ...(workload ? { workload } : {}) },
      ),
    ),
  );
}

/** cdev + dirty HWPT with the given mappings (IOVA = GPA), logging over the whole window. */
function iommufdSetup(h: SimHost, mappings: readonly (readonly [number, number])[], logPage: number) {
  const ram = h.guestMemory()[0]!;
  const iommufd = IommuFd.open(h);
  const cdev = DeviceCdev.open(h, "/dev/vfio/devices/vfio0", BDF);
  const devId = cdev.bindIommufd(iommufd);
  const ioasId = iommufd.ioasAlloc();
  for (const [p, n] of mappings)
    iommufd.ioasMap({
      ioasId,
      userVa: ram.hva + BigInt(p) * PAGE,
      length: BigInt(n) * PAGE,
      iova: BigInt(p) * PAGE,
    });
  const hwptId = iommufd.hwptAlloc({ devId, ptId: ioasId, flags: 2 });
  cdev.attachIommufdPt(hwptId);
  iommufd.setDirtyTracking(hwptId, true);
  expect(cdev.dmaLoggingStart([{ iova: 0n, length: WINDOW }], PAGE)).toBe(BigInt(logPage));
  return { iommufd, cdev, hwptId, runs: contiguousRuns(mappings) };
}

/** The mappings as contiguous runs [startPage, npages]: GET_DIRTY_BITMAP reads nothing past a hole. */
function contiguousRuns(mappings: readonly (readonly [number, number])[]): [number, number][] {
  const runs: [number, number][] = [];
  for (const [p, n] of [...mappings].sort((a, b) => a[0] - b[0])) {
    const last = runs[runs.length - 1];
    if (last && last[0] + last[1] === p) last[1] += n;
    else runs.push([p, n]);
  }
  return runs;
}

/** One tracking window's three answers, as sets of logging-page numbers. */
function sync(h: SimHost, s: ReturnType<typeof iommufdSetup>, since: number, logPage: number) {
  const lp = BigInt(logPage);
  const nbytes = Number((WINDOW / lp + 63n) / 64n) * 8;
  const log = new Uint8Array(nbytes);
  s.cdev.dmaLoggingReport({ iova: 0n, length: WINDOW, pageSize: lp, bitmap: log });
  // The IOMMU is read run by run at 4 KiB (runs need not be aligned to the logging page), then
  // placed at the logging page size for the comparison.
  const ratio = logPage / 4096;
  const iommuPages = new Set<number>();
  for (const [p, n] of s.runs) {
    const bm = new Uint8Array(Math.ceil(n / 64) * 8);
    s.iommufd.getDirtyBitmap({
      hwptId: s.hwptId,
      iova: BigInt(p) * PAGE,
      length: BigInt(n) * PAGE,
      pageSize: PAGE,
      bitmap: bm,
    });
    for (const b of setBits(bm)) iommuPages.add(Math.floor((p + b) / ratio));
  }
  const truth = [
    ...new Set(h.writtenSince(since, { device: BDF, space: "iova" }).map((p) => Math.floor(p / ratio))),
  ].sort((a, b) => a - b);
  return { log: setBits(log), iommu: [...iommuPages].sort((a, b) => a - b), truth };
}

describe("device log, IOMMU dirty bits and ground truth agree", () => {
  it("for random mappings, writes and tracking windows", () => {
    fc.assert(
      fc.property(
        logPageArb,
        mappingsArb,
        fc.array(fc.array(writeArb, { maxLength: 20 }), { minLength: 1, maxLength: 4 }),
        (logPage, mappings, rounds) => {
          const h = hostWith(logPage);
          const s = iommufdSetup(h, mappings, logPage);
          for (const writes of rounds) {
            h.clock.advanceMs(1);
            const since = h.clock.now();
            for (const w of writes)
              h.dmaWrite(BDF, BigInt(w.page) * PAGE + BigInt(w.offset), BigInt(w.length));
            const r = sync(h, s, since, logPage);
            expect(r.log).toEqual(r.truth);
            expect(r.iommu).toEqual(r.truth);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it("for random seeded workloads over random advance steps", () => {
    fc.assert(
      fc.property(
        logPageArb,
        fc.constantFrom<WorkloadJson["kind"]>("uniform", "hot-set", "ring", "bursts"),
        fc.integer({ min: 0, max: 1000 }),
        fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 5 }),
        (logPage, kind, seed, steps) => {
          // Map the whole window, but the workload also aims past it: those writes fault.
          const workload: WorkloadJson = {
            kind,
            seed,
            pagesPerSecond: 3000,
            hotPages: 32,
            ringPages: 300,
            burstMs: 2,
            idleMs: 3,
            region: [{ iova: 0, length: Number(WINDOW) + 64 * 4096 }],
          };
          const h = hostWith(logPage, workload);
          const s = iommufdSetup(h, [[0, WINDOW_PAGES]], logPage);
          for (const ms of steps) {
            const since = h.clock.now();
            h.clock.advanceMs(ms);
            const r = sync(h, s, since, logPage);
            expect(r.log).toEqual(r.truth);
            expect(r.iommu).toEqual(r.truth);
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe("type1 against the ground truth", () => {
  function type1(h: SimHost, mappings: readonly (readonly [number, number])[]) {
    const ram = h.guestMemory()[0]!;
    const container = Container.open(h);
    const group = Group.open(h, 12);
    group.setContainer(container);
    container.setIommu(3);
    for (const [p, n] of mappings)
      container.mapDma({
        vaddr: ram.hva + BigInt(p) * PAGE,
        iova: BigInt(p) * PAGE,
        length: BigInt(n) * PAGE,
      });
    group.getDevice(BDF);
    container.startDirtyTracking();
    return container;
  }

  it("reports every mapped page on every read (not in pinned-page scope): a superset of the truth", () => {
    fc.assert(
      fc.property(mappingsArb, fc.array(writeArb, { maxLength: 20 }), (mappings, writes) => {
        const h = hostWith(4096);
        const c = type1(h, mappings);
        for (const w of writes) h.dmaWrite(BDF, BigInt(w.page) * PAGE + BigInt(w.offset), BigInt(w.length));
        const bm = new Uint8Array(WINDOW_PAGES / 8);
        c.getDirtyBitmap({ iova: 0n, length: WINDOW, pageSize: PAGE, bitmap: bm });
        const mapped = mappings
          .flatMap(([p, n]) => Array.from({ length: n }, (_, i) => p + i))
          .sort((a, b) => a - b);
        expect(setBits(bm)).toEqual(mapped);
        const truth = h.writtenSince(0, { space: "iova" });
        expect(truth.every((p) => mapped.includes(p))).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it("reports exactly the written pages in pinned-page scope, window after window", () => {
    fc.assert(
      fc.property(
        mappingsArb,
        fc.array(fc.array(writeArb, { maxLength: 15 }), { minLength: 1, maxLength: 3 }),
        (mappings, rounds) => {
          const h = createSimHost(
            parseProfile(
              profileJson(
                { memory: [{ gpa: "0x0", length: "64MiB", kind: "ram" }] },
                { pinnedPageScope: true },
              ),
            ),
          );
          const c = type1(h, mappings);
          for (const writes of rounds) {
            h.clock.advanceMs(1);
            const since = h.clock.now();
            for (const w of writes)
              h.dmaWrite(BDF, BigInt(w.page) * PAGE + BigInt(w.offset), BigInt(w.length));
            const bm = new Uint8Array(WINDOW_PAGES / 8);
            c.getDirtyBitmap({ iova: 0n, length: WINDOW, pageSize: PAGE, bitmap: bm });
            expect(setBits(bm)).toEqual(h.writtenSince(since, { space: "iova" }));
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});

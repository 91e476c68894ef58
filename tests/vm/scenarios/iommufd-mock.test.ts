// iommufd dirty tracking for real, on the test kernels built here booted with intel_iommu=off:
// the IOMMUFD_TEST mock IOMMU supports dirty tracking, and its self-test command marks page-table
// entries dirty as a device's writes would, so each read can be checked against that truth:
// set-tracking, GET_DIRTY_BITMAP with and without NO_CLEAR, at the mock's page size and coarser.
// 6.19 moved the mock onto the generic AMDv1 page table (iommupt): a 4 KiB mapping is then a
// contiguous pair of 2 KiB entries, dirty as one, and the MOCK_IOMMUPT_HUGE format tracks dirty
// state per huge entry (MOCK_HUGE_PAGE_SIZE), read here at 4 KiB and at 2 MiB.
import { writeFileSync } from "node:fs";
import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import { createTracker, type DirtyReport, IommufdStrategy } from "@vfio-dirty/tracker";
import { Errno, IommuFd, type MappedMemory, O_CLOEXEC, O_RDWR, uapi } from "@vfio-dirty/vfio-adapter";
import { createLinuxHost } from "@vfio-dirty/vfio-adapter/linux";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { guest } from "./support/guest.ts";
import {
  getDirtyBitmap,
  hwInfo,
  hwptAlloc,
  hwptAllocMock,
  IOMMU_HW_INFO_TYPE_SELFTEST,
  ioasAlloc,
  ioasHugePages,
  ioasMapFixed,
  MOCK_APERTURE_START,
  MOCK_HUGE_PAGE_SIZE,
  MOCK_IO_PAGE_SIZE,
  MOCK_IOMMUPT_HUGE,
  mmapHuge,
  mockDomain,
  mockMarkDirty,
  setDirtyTracking,
} from "./support/iommufd.ts";

const PAGE = 4096n;
const IOVA = MOCK_APERTURE_START;
const LENGTH = 64n * PAGE;
const host = createLinuxHost();
const mockOnly = guest.driver === "none" && /intel_iommu=off/.test(guest.cmdline);
/** 6.19+: the mock is an iommupt (AMDv1) page table. */
const iommupt = guest.kernelVersion >= 6019;
let iommufd = -1;
let idevId = 0;
let ioasId = 0;
let hwptId = 0;
let mem: MappedMemory | undefined;

/** Marks whole 4 KiB pages dirty in the mock page table (two 2 KiB mock entries each, or one). */
function write4k(pages: number[], halves: "both" | "second" = "both"): number {
  const marks = pages.flatMap((p) => (halves === "both" ? [2 * p, 2 * p + 1] : [2 * p + 1]));
  return mockMarkDirty(host, iommufd, hwptId, IOVA, LENGTH, MOCK_IO_PAGE_SIZE, marks);
}
/** Dirty 4 KiB pages of a tracker report, relative to `base` (GPA). */
function pages(report: DirtyReport, base = IOVA): number[] {
  const out: number[] = [];
  for (const [start, n] of report.bitmap!.runs())
    for (let i = 0; i < n; i++) out.push(start + i - Number(base / PAGE));
  expect(out.length).toBe(report.dirtyPages);
  return out;
}
const read = (pageSize: bigint, flags = 0) =>
  getDirtyBitmap(host, iommufd, hwptId, IOVA, LENGTH, pageSize, flags);

describe.skipIf(!mockOnly)("iommufd dirty tracking on the IOMMUFD_TEST mock IOMMU", () => {
  beforeAll(() => {
    iommufd = host.open("/dev/iommu", O_RDWR | O_CLOEXEC);
    expect(iommufd).toBeGreaterThanOrEqual(0);
    ioasId = ioasAlloc(host, iommufd);
    // iommupt maps contiguous memory with entries as large as fit, each dirty as a whole: keep
    // PAGE_SIZE entries, as the kernel's own dirty selftests do on the default format.
    if (iommupt) ioasHugePages(host, iommufd, ioasId, false);
    idevId = mockDomain(host, iommufd, ioasId).idevId;
    mem = host.mmapAnonymous(LENGTH);
    ioasMapFixed(host, iommufd, ioasId, IOVA, mem.address, LENGTH);
  });
  afterAll(() => {
    if (iommufd >= 0) host.close(iommufd);
    if (mem) host.munmap(mem);
  });

  it("GET_HW_INFO of the mock device reports dirty tracking", () => {
    const info = hwInfo(host, iommufd, idevId);
    expect(info.outDataType).toBe(IOMMU_HW_INFO_TYPE_SELFTEST);
    expect(info.outCapabilities & BigInt(uapi.IOMMU_HW_CAP_DIRTY_TRACKING)).toBe(
      BigInt(uapi.IOMMU_HW_CAP_DIRTY_TRACKING),
    );
  });

  it("allocates a DIRTY_TRACKING HWPT and enables tracking on it", () => {
    const hwpt = hwptAlloc(host, iommufd, idevId, ioasId, uapi.IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
    expect(hwpt.errno).toBe(0);
    hwptId = hwpt.hwptId;
    expect(setDirtyTracking(host, iommufd, hwptId, true)).toBe(0);
    expect(read(PAGE)).toEqual({ errno: 0, pages: [] });
  });

  it("reads exactly the written pages; NO_CLEAR keeps them, a plain read clears them", () => {
    expect(write4k([1, 5, 40])).toBe(6);
    const noClear = uapi.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR;
    expect(read(PAGE, noClear)).toEqual({ errno: 0, pages: [1, 5, 40] });
    expect(read(PAGE, noClear)).toEqual({ errno: 0, pages: [1, 5, 40] });
    expect(read(PAGE)).toEqual({ errno: 0, pages: [1, 5, 40] });
    expect(read(PAGE)).toEqual({ errno: 0, pages: [] });
  });

  it("a write to half of a 4 KiB page still dirties it; at 2 KiB the mock shows its entries", () => {
    expect(write4k([7], "second")).toBe(1);
    // 6.12's mock has one entry per 2 KiB; iommupt's 4 KiB mapping is one contiguous pair.
    expect(read(MOCK_IO_PAGE_SIZE, uapi.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR)).toEqual({
      errno: 0,
      pages: iommupt ? [14, 15] : [15],
    });
    expect(read(PAGE)).toEqual({ errno: 0, pages: [7] });
  });

  it("reads at a coarser page size fold pages together", () => {
    write4k([2, 3, 17]);
    expect(read(4n * PAGE)).toEqual({ errno: 0, pages: [0, 4] });
    expect(read(PAGE)).toEqual({ errno: 0, pages: [] });
  });

  it("disabling tracking and enabling it again starts from a clean bitmap", () => {
    write4k([9]);
    expect(setDirtyTracking(host, iommufd, hwptId, false)).toBe(0);
    expect(setDirtyTracking(host, iommufd, hwptId, true)).toBe(0);
    expect(read(PAGE)).toEqual({ errno: 0, pages: [] });
  });

  it("unaligned ranges are EINVAL and unknown flags EOPNOTSUPP", () => {
    expect(getDirtyBitmap(host, iommufd, hwptId, IOVA + 512n, LENGTH - PAGE, PAGE).errno).toBe(Errno.EINVAL);
    expect(read(PAGE, 0x80).errno).toBe(Errno.EOPNOTSUPP);
  });

  it("the tracker's iommufd strategy reports exactly the marked pages at each sync", () => {
    const core = loadBitmapCoreSync();
    const typed = IommuFd.fromFd(host, iommufd);
    const tracker = createTracker({
      core,
      units: [
        {
          id: "iommu",
          devices: ["mock"],
          strategy: new IommufdStrategy(typed, [hwptId], ioasId, core, PAGE),
        },
      ],
      memory: [{ iova: IOVA, length: LENGTH, kind: "ram" }],
    });
    try {
      write4k([4]); // before start: enabling tracking clears it
      tracker.start();
      tracker.setPhase("pre-copy");
      write4k([0, 33]);
      write4k([63], "second");
      expect(pages(tracker.sync())).toEqual([0, 33, 63]);
      expect(pages(tracker.sync())).toEqual([]);
      write4k([12]);
      expect(pages(tracker.sync())).toEqual([12]);
    } finally {
      tracker.close();
    }
    // stop() switched tracking off: the mock refuses to mark pages of an untracked HWPT.
    expect(() => write4k([1])).toThrow(/EINVAL/);
  });

  it("with a vIOMMU, an unmap keeps the range's dirty bits (NO_CLEAR read, then IOAS unmap)", () => {
    const core = loadBitmapCoreSync();
    const typed = IommuFd.fromFd(host, iommufd);
    const GPA = 1n << 32n;
    const tracker = createTracker({
      core,
      units: [
        {
          id: "iommu",
          devices: ["mock"],
          strategy: new IommufdStrategy(typed, [hwptId], ioasId, core, PAGE),
        },
      ],
      memory: [{ iova: GPA, length: LENGTH, kind: "ram" }],
      viommu: { aperture: [{ iova: IOVA, length: LENGTH }] },
    });
    try {
      tracker.map(IOVA, GPA, LENGTH);
      tracker.start();
      tracker.setPhase("pre-copy");
      write4k([2, 50]);
      tracker.unmap(IOVA, LENGTH);
      // The IOAS mapping is gone: a second unmap of the range finds nothing.
      const again = uapi.encodeIoasUnmap({ ioasId, iova: IOVA, length: LENGTH });
      expect(host.ioctl(iommufd, uapi.IOMMU_IOAS_UNMAP, again)).toBe(-Errno.ENOENT);
      const report = tracker.sync();
      expect(pages(report, GPA)).toEqual([2, 50]);
    } finally {
      tracker.close();
    }
  });

  it("a read over a hole answers 0 with only the bits before it; the tracker unmaps a range with holes keeping every mapping's bits", () => {
    // Two mappings with a hole of LENGTH between them (a whole-range invalidation covers all three).
    const second = host.mmapAnonymous(LENGTH);
    try {
      ioasMapFixed(host, iommufd, ioasId, IOVA, mem!.address, LENGTH);
      ioasMapFixed(host, iommufd, ioasId, IOVA + 2n * LENGTH, second.address, LENGTH);
      // __iommu_read_and_clear_dirty stops at the hole with EINVAL, but iommu_read_and_clear_dirty
      // never looks at what iova_bitmap_for_each returns (6.12 and 7.3 alike): the ioctl answers 0
      // with the bits of the areas before the hole only; the areas after it are not read (nor
      // cleared). A caller reading over a hole must not take the answer as the whole range's.
      expect(setDirtyTracking(host, iommufd, hwptId, true)).toBe(0);
      write4k([5]);
      mockMarkDirty(host, iommufd, hwptId, IOVA + 2n * LENGTH, LENGTH, MOCK_IO_PAGE_SIZE, [2 * 9, 2 * 9 + 1]);
      expect(getDirtyBitmap(host, iommufd, hwptId, IOVA, 3n * LENGTH, PAGE)).toEqual({
        errno: 0,
        pages: [5],
      });
      expect(getDirtyBitmap(host, iommufd, hwptId, IOVA + 2n * LENGTH, LENGTH, PAGE)).toEqual({
        errno: 0,
        pages: [9],
      });
      expect(setDirtyTracking(host, iommufd, hwptId, false)).toBe(0);
      const core = loadBitmapCoreSync();
      const GPA = 1n << 32n;
      const tracker = createTracker({
        core,
        units: [
          {
            id: "iommu",
            devices: ["mock"],
            strategy: new IommufdStrategy(IommuFd.fromFd(host, iommufd), [hwptId], ioasId, core, PAGE),
          },
        ],
        memory: [{ iova: GPA, length: 2n * LENGTH, kind: "ram" }],
        viommu: { aperture: [{ iova: IOVA, length: 3n * LENGTH }] },
      });
      try {
        tracker.map(IOVA, GPA, LENGTH);
        tracker.map(IOVA + 2n * LENGTH, GPA + LENGTH, LENGTH);
        tracker.start();
        tracker.setPhase("pre-copy");
        write4k([3]);
        mockMarkDirty(host, iommufd, hwptId, IOVA + 2n * LENGTH, LENGTH, MOCK_IO_PAGE_SIZE, [
          2 * 9,
          2 * 9 + 1,
        ]);
        tracker.unmap(IOVA, 3n * LENGTH);
        expect(tracker.events.filter((e) => e.kind.startsWith("unmap"))).toEqual([]);
        // Both IOAS mappings are gone: the range maps again.
        ioasMapFixed(host, iommufd, ioasId, IOVA, mem!.address, LENGTH);
        ioasMapFixed(host, iommufd, ioasId, IOVA + 2n * LENGTH, second.address, LENGTH);
        expect(pages(tracker.sync(), GPA)).toEqual([3, 64 + 9]);
      } finally {
        tracker.close();
        const all = uapi.encodeIoasUnmap({ ioasId, iova: 0n, length: 0xffff_ffff_ffff_ffffn });
        host.ioctl(iommufd, uapi.IOMMU_IOAS_UNMAP, all);
      }
    } finally {
      host.munmap(second);
    }
  });
});

// Only kernels with iommupt have the format: registered there (a skipped test fails the harness).
const describeIommupt = iommupt ? describe.skipIf(!mockOnly) : () => undefined;
describeIommupt("iommufd dirty tracking on the mock's huge-page format", () => {
  const HUGE = 2n << 20n; // one hugetlbfs page
  const ENTRIES = Number(HUGE / MOCK_HUGE_PAGE_SIZE);
  const PER_ENTRY = Number(MOCK_HUGE_PAGE_SIZE / PAGE);
  let fd = -1;
  let hugeHwpt = 0;
  let hugeIoas = 0;
  let huge: ReturnType<typeof mmapHuge> | undefined;
  const readHuge = (pageSize: bigint, flags = 0) =>
    getDirtyBitmap(host, fd, hugeHwpt, IOVA, HUGE, pageSize, flags);
  /** Marks the mock entries holding these 2 KiB indexes, as a device write there would. */
  const mark = (indexes: number[]) =>
    mockMarkDirty(host, fd, hugeHwpt, IOVA, HUGE, MOCK_IO_PAGE_SIZE, indexes);
  const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

  beforeAll(() => {
    writeFileSync("/proc/sys/vm/nr_hugepages", "2");
    huge = mmapHuge(1);
    fd = host.open("/dev/iommu", O_RDWR | O_CLOEXEC);
    hugeIoas = ioasAlloc(host, fd);
    const dev = mockDomain(host, fd, hugeIoas).idevId;
    ioasMapFixed(host, fd, hugeIoas, IOVA, huge.address, HUGE);
    const hwpt = hwptAllocMock(
      host,
      fd,
      dev,
      hugeIoas,
      uapi.IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
      MOCK_IOMMUPT_HUGE,
    );
    expect(hwpt.errno).toBe(0);
    hugeHwpt = hwpt.hwptId;
    expect(setDirtyTracking(host, fd, hugeHwpt, true)).toBe(0);
  });
  afterAll(() => {
    if (fd >= 0) host.close(fd);
    huge?.unmap();
  });

  it(`2 MiB of hugetlbfs memory is ${ENTRIES} huge entries of ${MOCK_HUGE_PAGE_SIZE >> 10n} KiB`, () => {
    expect(readHuge(PAGE)).toEqual({ errno: 0, pages: [] });
    // One 2 KiB mark per entry; each entry's whole extent comes back.
    expect(mark([3, 512 + 7])).toBe(2);
    expect(readHuge(MOCK_HUGE_PAGE_SIZE, uapi.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR).pages).toEqual(
      range(0, ENTRIES),
    );
    expect(readHuge(MOCK_HUGE_PAGE_SIZE).pages).toEqual(range(0, ENTRIES));
    expect(readHuge(PAGE)).toEqual({ errno: 0, pages: [] });
  });

  it("read at 4 KiB, one 2 KiB write reports its whole huge entry; read at 2 MiB, one bit", () => {
    mark([100]);
    expect(readHuge(PAGE, uapi.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR).pages).toEqual(range(0, PER_ENTRY));
    expect(readHuge(HUGE, uapi.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR).pages).toEqual([0]);
    expect(readHuge(HUGE).pages).toEqual([0]);
    expect(readHuge(PAGE).pages, "the 2 MiB read cleared it").toEqual([]);
    mark([2 * 512 - 1]); // the last 2 KiB of the second entry
    expect(readHuge(PAGE).pages).toEqual(range(PER_ENTRY, PER_ENTRY));
  });

  it("the tracker's iommufd strategy at 4 KiB reports every page of the dirty entry, never fewer", () => {
    const core = loadBitmapCoreSync();
    const tracker = createTracker({
      core,
      units: [
        {
          id: "iommu",
          devices: ["mock"],
          strategy: new IommufdStrategy(IommuFd.fromFd(host, fd), [hugeHwpt], hugeIoas, core, PAGE),
        },
      ],
      memory: [{ iova: IOVA, length: HUGE, kind: "ram" }],
    });
    try {
      tracker.start();
      tracker.setPhase("pre-copy");
      mark([512 + 300]);
      expect(pages(tracker.sync())).toEqual(range(PER_ENTRY, PER_ENTRY));
      expect(pages(tracker.sync())).toEqual([]);
    } finally {
      tracker.close();
    }
  });
});

// iommufd dirty tracking for real, on the 6.12 test kernel booted with intel_iommu=off: the
// IOMMUFD_TEST mock IOMMU supports dirty tracking, and its self-test command marks page-table
// entries dirty as a device's writes would, so each read can be checked against that truth:
// set-tracking, GET_DIRTY_BITMAP with and without NO_CLEAR, at the mock's page size and coarser.
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
  IOMMU_HW_INFO_TYPE_SELFTEST,
  ioasAlloc,
  ioasMapFixed,
  MOCK_APERTURE_START,
  MOCK_IO_PAGE_SIZE,
  mockDomain,
  mockMarkDirty,
  setDirtyTracking,
} from "./support/iommufd.ts";

const PAGE = 4096n;
const IOVA = MOCK_APERTURE_START;
const LENGTH = 64n * PAGE;
const host = createLinuxHost();
const mockOnly = guest.driver === "none" && /intel_iommu=off/.test(guest.cmdline);
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

  it("a write to half of a 4 KiB page still dirties it; the mock's 2 KiB view is exact", () => {
    expect(write4k([7], "second")).toBe(1);
    expect(read(MOCK_IO_PAGE_SIZE, uapi.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR)).toEqual({
      errno: 0,
      pages: [15],
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

  it("a read over a hole is EINVAL; the tracker unmaps a range with holes keeping every mapping's bits", () => {
    // Two mappings with a hole of LENGTH between them (a whole-range invalidation covers all three).
    const second = host.mmapAnonymous(LENGTH);
    try {
      ioasMapFixed(host, iommufd, ioasId, IOVA, mem!.address, LENGTH);
      ioasMapFixed(host, iommufd, ioasId, IOVA + 2n * LENGTH, second.address, LENGTH);
      expect(getDirtyBitmap(host, iommufd, hwptId, IOVA, 3n * LENGTH, PAGE).errno).toBe(Errno.EINVAL);
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

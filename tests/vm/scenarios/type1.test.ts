// Legacy type1 dirty tracking against a real 6.1 kernel with the emulated VT-d: edu under plain
// vfio-pci in a type1v2 container opened with the adapter's typed objects, real DMA into two
// mapped buffers, and the tracker's type1 strategy, which must report a superset of what edu
// wrote (type1 reports every mapped page: a vfio-pci device is never in pinned-page scope).
// Also: unmap-with-dirty-bitmap keeps the bits, and the kernel's errno for each type1 rule the
// simulated host models.
import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import { openTracker } from "@vfio-dirty/tracker";
import { Container, Errno, Group, type MappedMemory, uapi } from "@vfio-dirty/vfio-adapter";
import { createLinuxHost } from "@vfio-dirty/vfio-adapter/linux";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EDU_BUFFER } from "./support/edu.ts";
import { guest } from "./support/guest.ts";
import { eduWorkload, openTyped, type TypedSession } from "./support/typed.ts";
import { eduBdf, ioctlErrno } from "./support/vfio.ts";

const PAGE = 4096n;
const A = 0x100000n; // 16 pages
const B = 0x800000n; // 8 pages
const A_LENGTH = 16n * PAGE;
const B_LENGTH = 8n * PAGE;
const C = 0x1000000n; // 1 page, for the unmap rules
const host = createLinuxHost();
const core = loadBitmapCoreSync();
let s: TypedSession;
let memA: MappedMemory;
let memB: MappedMemory;

describe.skipIf(guest.driver !== "vfio-pci")("type1 on a real kernel", () => {
  describe("kernel rules before the group has a usable container", () => {
    it("SET_IOMMU on a container without a group is EINVAL", () => {
      using c = Container.open(host);
      expect(ioctlErrno(host, c.fd, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe(Errno.EINVAL);
    });

    it("GET_DEVICE_FD before SET_IOMMU is EINVAL; DIRTY_PAGES on a type1 (v1) container is EACCES", () => {
      using c = Container.open(host);
      using g = Group.open(host, groupId());
      g.setContainer(c);
      const name = uapi.encodeDeviceName(eduBdf());
      expect(ioctlErrno(host, g.fd, uapi.VFIO_GROUP_GET_DEVICE_FD, name)).toBe(Errno.EINVAL);
      c.setIommu(uapi.VFIO_TYPE1_IOMMU);
      const start = uapi.encodeDirtyBitmap({ flags: uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START });
      expect(ioctlErrno(host, c.fd, uapi.VFIO_IOMMU_DIRTY_PAGES, start)).toBe(Errno.EACCES);
    });
  });

  describe("type1v2 with edu", () => {
    beforeAll(() => {
      s = openTyped(host);
      memA = host.mmapAnonymous(A_LENGTH);
      memB = host.mmapAnonymous(B_LENGTH);
      s.container.mapDma({ vaddr: memA.address, iova: A, length: A_LENGTH });
      s.container.mapDma({ vaddr: memB.address, iova: B, length: B_LENGTH });
    });
    afterAll(() => {
      s?.close();
      for (const m of [memA, memB]) if (m) host.munmap(m);
    });

    it("reads the IOMMU info and the migration capability", () => {
      const { info, caps } = s.container.getInfo();
      expect(info.iovaPgsizes & PAGE).toBe(PAGE);
      expect(caps.migration?.pgsizeBitmap).toBe(0x1000n);
      expect(caps.migration?.maxDirtyBitmapSize).toBe(256n << 20n);
      expect(caps.dmaAvail).toBe(65535 - 2);
      expect(caps.iovaRanges?.length).toBeGreaterThan(0);
    });

    it("the tracker's type1 strategy reports every page edu wrote (and every mapped page)", () => {
      const { tracker, choice } = openTracker(
        { devices: [{ id: s.bdf, device: s.device }], iommu: { kind: "type1", container: s.container } },
        { core, memory: sections(), ignoreBlockers: true },
      );
      try {
        expect(choice.strategy).toBe("type1");
        tracker.start();
        tracker.setPhase("pre-copy");
        s.edu.dmaToRam(EDU_BUFFER, A + 2n * PAGE, 64);
        s.edu.dmaToRam(EDU_BUFFER, B + 5n * PAGE + 0x100n, 64);
        for (let sync = 0; sync < 2; sync++) {
          const report = tracker.sync();
          expect(report.strategy).toBe("type1");
          const bits = report.bitmap!;
          expect(bits.test(Number((A + 2n * PAGE) / PAGE))).toBe(true);
          expect(bits.test(Number((B + 5n * PAGE) / PAGE))).toBe(true);
          // Real type1 rule: every page of every mapping, on every read.
          expect(report.dirtyPages).toBe(Number((A_LENGTH + B_LENGTH) / PAGE));
          expect(bits.count()).toBe(report.dirtyPages);
        }
      } finally {
        tracker.close();
      }
      expect(tracker.started).toBe(false);
    });

    it("every page the CLI's edu workload plugin wrote is reported (the plugin's ground truth)", async () => {
      const { tracker } = openTracker(
        { devices: [{ id: s.bdf, device: s.device }], iommu: { kind: "type1", container: s.container } },
        { core, memory: sections(), ignoreBlockers: true },
      );
      const workload = await eduWorkload(host, s, { iova: A, length: A_LENGTH, bytes: memA.bytes });
      try {
        tracker.start();
        tracker.setPhase("pre-copy");
        const written = await workload.run(400, new AbortController().signal);
        expect(written.length).toBeGreaterThan(0);
        const bits = tracker.sync().bitmap!;
        const missed = written.filter((w) => !bits.test(Number(w.iova / PAGE)));
        expect(missed).toEqual([]);
      } finally {
        workload.stop();
        tracker.close();
      }
    });

    it("unmap with GET_DIRTY_BITMAP returns the range's bits and unmaps it", () => {
      s.container.startDirtyTracking();
      try {
        s.edu.dmaToRam(EDU_BUFFER, B + 1n * PAGE, 64);
        const bitmap = new Uint8Array(8);
        expect(
          s.container.unmapDmaWithDirtyBitmap({ iova: B, length: B_LENGTH, pageSize: PAGE, bitmap }),
        ).toBe(B_LENGTH);
        expect(bitmap[0]).toBe(0xff);
        // Gone: the same unmap now finds nothing.
        expect(s.container.unmapDma({ iova: B, length: B_LENGTH })).toBe(0n);
      } finally {
        s.container.stopDirtyTracking();
      }
      s.container.mapDma({ vaddr: memB.address, iova: B, length: B_LENGTH });
    });

    it("answers each type1 dirty-bitmap rule the simulated host models with the same errno", () => {
      const c = s.container.fd;
      // Room for every page below 256 MiB (edu's DMA limit, so every mapping here): some rows
      // declare a larger bitmap than the one they test, and type1 writes 0xff words for every
      // mapped page it covers. A buffer smaller than what the kernel may write is heap corruption
      // (an earlier 64-byte buffer under a 512-byte claim crashed node with SIGSEGV later on).
      const bitmap = new Uint8Array(Number((256n << 20n) / PAGE / 8n));
      const dirty = (flags: number, get?: uapi.DirtyBitmapGet) =>
        ioctlErrno(
          host,
          c,
          uapi.VFIO_IOMMU_DIRTY_PAGES,
          uapi.encodeDirtyBitmap({ flags, ...(get ? { get } : {}) }),
        );
      const getBitmap = (iova: bigint, length: bigint, pageSize = PAGE, bytes = BigInt(bitmap.length)) =>
        dirty(uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, {
          iova,
          length,
          bitmap: { pageSize, bitmapLength: bytes, data: host.addressOf(bitmap) },
        });
      const unmapWithBitmap = (flags: number) =>
        ioctlErrno(
          host,
          c,
          uapi.VFIO_IOMMU_UNMAP_DMA,
          uapi.encodeDmaUnmap({
            flags: uapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | flags,
            iova: flags ? 0n : C,
            length: flags ? 0n : PAGE,
            bitmap: { pageSize: PAGE, bitmapLength: 8n, data: host.addressOf(bitmap) },
          }),
        );
      // A scratch mapping, so a kernel that wrongly accepted an unmap would not break the rest.
      s.container.mapDma({ vaddr: memB.address, iova: C, length: PAGE });
      const table: [string, number, number][] = [
        ["GET_BITMAP before START", getBitmap(A, A_LENGTH), Errno.EINVAL],
        ["UNMAP with GET_DIRTY_BITMAP while not tracking", unmapWithBitmap(0), Errno.EINVAL],
        ["DIRTY_PAGES with START|STOP", dirty(3), Errno.EINVAL],
      ];
      expect(dirty(uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START)).toBe(0);
      try {
        table.push(
          ["GET_BITMAP whole mapping", getBitmap(A, A_LENGTH), 0],
          ["GET_BITMAP at 8 KiB (not in pgsize_bitmap)", getBitmap(A, A_LENGTH, 2n * PAGE), Errno.EINVAL],
          ["GET_BITMAP with a bitmap too small", getBitmap(A, A_LENGTH, PAGE, 1n), Errno.EINVAL],
          ["GET_BITMAP cutting through a mapping", getBitmap(A + PAGE, PAGE), Errno.EINVAL],
          ["GET_BITMAP overflowing", getBitmap(0xfffffffffffff000n, 2n * PAGE), Errno.EINVAL],
          ["GET_BITMAP over both mappings and the hole", getBitmap(A, B + B_LENGTH - A, PAGE, 512n), 0],
          [
            "GET_BITMAP over more than 256 MiB of bitmap",
            getBitmap(0n, 1n << 44n, PAGE, 1n << 29n),
            Errno.EINVAL,
          ],
          ["UNMAP GET_DIRTY_BITMAP|ALL", unmapWithBitmap(uapi.VFIO_DMA_UNMAP_FLAG_ALL), Errno.EINVAL],
          ["UNMAP GET_DIRTY_BITMAP|VADDR", unmapWithBitmap(uapi.VFIO_DMA_UNMAP_FLAG_VADDR), Errno.EINVAL],
        );
      } finally {
        expect(dirty(uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP)).toBe(0);
      }
      const wrong = table.filter(([, got, want]) => got !== want);
      expect(wrong.map(([what, got, want]) => `${what}: kernel ${got}, expected ${want}`)).toEqual([]);
    });
  });
});

// --- Internal helpers ---

function groupId(): number {
  return Number(host.sysfs.readlink(`bus/pci/devices/${eduBdf()}/iommu_group`)?.split("/").pop());
}

function sections() {
  return [
    { iova: A, length: A_LENGTH, kind: "ram" as const },
    { iova: B, length: B_LENGTH, kind: "ram" as const },
  ];
}

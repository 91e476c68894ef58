// Kernel rules beyond the shared scenarios (those need a second device, a chosen kernel version
// or device limits the real test machine lacks): each with the bad input and the good one, sent
// through the adapter's typed objects and encoders.

import { describe, expect, it } from "vitest";
import { Errno, IoctlError } from "../../src/errors.ts";
import { combineIovaRanges, createSimHost } from "../../src/sim/index.ts";
import {
  decodeIommuType1Info,
  encodeDeviceFeature,
  encodeFdArg,
  encodeHwptAlloc,
  encodeHwptSetDirtyTracking,
  encodeIoasAlloc,
  encodeIommuType1InfoRequest,
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_SET_DIRTY_TRACKING,
  IOMMU_IOAS_ALLOC,
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
  VFIO_DEVICE_STATE_ERROR,
  VFIO_DEVICE_STATE_PRE_COPY,
  VFIO_DEVICE_STATE_RUNNING,
  VFIO_DEVICE_STATE_STOP,
  VFIO_DEVICE_STATE_STOP_COPY,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_INFO_CAPS,
} from "../../src/uapi/index.ts";
import { Container, DeviceCdev, Group, IommuFd } from "../../src/vfio/index.ts";
import { BDF, iommufdDevice, PAGE, setBits, sim, type1Device } from "./helpers.ts";

function errnoOf(fn: () => unknown): number {
  try {
    fn();
  } catch (e) {
    if (e instanceof IoctlError) return e.errno;
    throw e;
  }
  return 0;
}

describe("device DMA logging: the device's own limits", () => {
  it("combines ranges beyond maxRanges by the smallest gap and still logs every range", () => {
    const h = sim({}, { dmaLogging: { maxRanges: 2 } });
    const { device } = type1Device(h);
    const ranges = [
      { iova: 0x0n, length: 0x1000n },
      { iova: 0x10000n, length: 0x1000n }, // gap 0xf000 to the first
      { iova: 0x12000n, length: 0x1000n }, // gap 0x1000: the smallest, merged first
      { iova: 0x100000n, length: 0x1000n },
    ];
    expect(device.dmaLoggingStart(ranges, PAGE)).toBe(PAGE);
    expect(h.devices()[0]!.dmaLogging.ranges).toEqual([
      { start: 0x0n, last: 0x12fffn },
      { start: 0x100000n, last: 0x100fffn },
    ]);
    h.dmaWrite(BDF, 0x11000n, 8n); // in the gap that combining swallowed: logged (over-reporting is safe)
    h.dmaWrite(BDF, 0x100000n, 8n);
    const bm = new Uint8Array(64);
    device.dmaLoggingReport({ iova: 0n, length: 0x200000n, pageSize: PAGE, bitmap: bm });
    expect(setBits(bm)).toEqual([0x11, 0x100]);
  });

  it("combineIovaRanges: smallest gap first, first pair on a tie, one range when asked", () => {
    const r = (s: number, l: number) => ({ start: BigInt(s), last: BigInt(l) });
    expect(combineIovaRanges([r(0, 9), r(20, 29), r(40, 49), r(100, 109)], 3)).toEqual([
      r(0, 29),
      r(40, 49),
      r(100, 109),
    ]);
    expect(combineIovaRanges([r(0, 9), r(30, 39), r(50, 59)], 2)).toEqual([r(0, 9), r(30, 59)]);
    expect(combineIovaRanges([r(0, 9), r(30, 39), r(50, 59)], 1)).toEqual([r(0, 59)]);
  });

  it("refuses more tracked address space than 2^maxSpanLog2 with EOPNOTSUPP (mlx5's total length rule)", () => {
    const h = sim({}, { dmaLogging: { maxSpanLog2: 30 } });
    const { device } = type1Device(h);
    // Two far-apart small ranges: only their lengths count while they stay separate ranges.
    const far = [
      { iova: 0n, length: PAGE },
      { iova: 1n << 30n, length: PAGE },
    ];
    expect(device.dmaLoggingStart(far, PAGE)).toBe(PAGE);
    device.dmaLoggingStop();
    // 1 GiB + 4 KiB rounds up to 2^31.
    const big = [
      { iova: 0n, length: 1n << 30n },
      { iova: 2n << 30n, length: PAGE },
    ];
    expect(errnoOf(() => device.dmaLoggingStart(big, PAGE))).toBe(Errno.EOPNOTSUPP);
    expect(device.dmaLoggingStart([{ iova: 0n, length: 1n << 30n }], PAGE)).toBe(PAGE);
  });

  it("counts the gaps that combining swallows: one range over two far pages spans the gap", () => {
    const h = sim({}, { dmaLogging: { maxSpanLog2: 30, maxRanges: 1 } });
    const { device } = type1Device(h);
    const far = [
      { iova: 0n, length: PAGE },
      { iova: 1n << 30n, length: PAGE },
    ];
    expect(errnoOf(() => device.dmaLoggingStart(far, PAGE))).toBe(Errno.EOPNOTSUPP);
  });

  it("a second START while logging: EINVAL on mlx5 (log_active), EBUSY on the default driver", () => {
    const mlx5 = createSimHost("mlx5-vf");
    const a = type1Device(mlx5).device;
    a.dmaLoggingStart([{ iova: 0n, length: 1n << 20n }], PAGE);
    expect(errnoOf(() => a.dmaLoggingStart([{ iova: 0n, length: 1n << 20n }], PAGE))).toBe(Errno.EINVAL);
    const b = type1Device(sim()).device;
    b.dmaLoggingStart([{ iova: 0n, length: 1n << 20n }], PAGE);
    expect(errnoOf(() => b.dmaLoggingStart([{ iova: 0n, length: 1n << 20n }], PAGE))).toBe(Errno.EBUSY);
  });

  it("the 16 TiB guest's device cannot log the whole guest (span 2^44 > 2^42) but can log 4 TiB", () => {
    const h = createSimHost("guest-16tib");
    const { device } = type1Device(h);
    const all = h.guestMemory().map((m) => ({ iova: m.gpa, length: m.length }));
    expect(errnoOf(() => device.dmaLoggingStart(all, PAGE))).toBe(Errno.EOPNOTSUPP);
    expect(device.dmaLoggingStart([{ iova: 4n << 30n, length: 4n << 40n }], PAGE)).toBe(PAGE);
    h.dmaWrite(BDF, (4n << 30n) + (3n << 40n), 4096n);
    const bm = new Uint8Array(8);
    device.dmaLoggingReport({
      iova: (4n << 30n) + (3n << 40n),
      length: 64n * PAGE,
      pageSize: PAGE,
      bitmap: bm,
    });
    expect(setBits(bm)).toEqual([0]);
  });

  it("clamps the page size to what it supports and writes the choice back", () => {
    const h = sim({}, { dmaLogging: { minPageSize: 8192, maxPageSize: "2MiB" } });
    const { device } = type1Device(h);
    expect(device.dmaLoggingStart([{ iova: 0n, length: 1n << 30n }], PAGE)).toBe(8192n);
    device.dmaLoggingStop();
    expect(device.dmaLoggingStart([{ iova: 0n, length: 1n << 30n }], 1n << 30n)).toBe(2n << 20n);
  });

  it("replicates a coarse logging page into every finer bit and coarsens into one", () => {
    const h = sim({}, { dmaLogging: { minPageSize: 16384 } });
    const { device } = type1Device(h);
    device.dmaLoggingStart([{ iova: 0n, length: 1n << 20n }], PAGE);
    h.dmaWrite(BDF, 0x4000n + 10n, 4n); // logging page 1 (16 KiB)
    const fine = new Uint8Array(8);
    device.dmaLoggingReport({ iova: 0n, length: 64n * PAGE, pageSize: PAGE, bitmap: fine });
    expect(setBits(fine)).toEqual([4, 5, 6, 7]);
    h.dmaWrite(BDF, 0x4000n, 4n);
    const coarse = new Uint8Array(8);
    device.dmaLoggingReport({ iova: 0n, length: 64n * 16n * PAGE, pageSize: 16n * PAGE, bitmap: coarse });
    expect(setBits(coarse)).toEqual([0]);
  });

  it("reports and clears the whole logging page a report only partly covers, bits past the range too", () => {
    // The harsh real-driver behaviour: a report of [0x4000, 0x6000) touches the 16 KiB logging
    // page [0x4000, 0x8000): the whole page is cleared, and its bits are set whole, past the end of
    // the range (iova_bitmap_set does not clamp; Debian's 6.1 does this), so the rest is gone.
    const h = sim({}, { dmaLogging: { minPageSize: 16384 } });
    const { device } = type1Device(h);
    device.dmaLoggingStart([{ iova: 0n, length: 1n << 20n }], PAGE);
    h.dmaWrite(BDF, 0x5000n, 4n);
    h.dmaWrite(BDF, 0x9000n, 4n);
    const a = new Uint8Array(8);
    device.dmaLoggingReport({ iova: 0x4000n, length: 2n * PAGE, pageSize: PAGE, bitmap: a });
    expect(setBits(a)).toEqual([0, 1, 2, 3]);
    const b = new Uint8Array(8);
    device.dmaLoggingReport({ iova: 0n, length: 64n * PAGE, pageSize: PAGE, bitmap: b });
    expect(setBits(b)).toEqual([8, 9, 10, 11]);
    // A report that starts inside a logging page clears it too (the kernel's offset would
    // underflow there; the model sets the page's bits from the report's start on).
    h.dmaWrite(BDF, 0x10000n, 4n);
    const c = new Uint8Array(8);
    device.dmaLoggingReport({ iova: 0x12000n, length: 2n * PAGE, pageSize: PAGE, bitmap: c });
    expect(setBits(c)).toEqual([0, 1]);
    const d = new Uint8Array(8);
    device.dmaLoggingReport({ iova: 0n, length: 64n * PAGE, pageSize: PAGE, bitmap: d });
    expect(setBits(d)).toEqual([]);
  });

  it("two devices report into one bitmap: the union, nothing cleared", () => {
    const h = createSimHost("mlx5-p2p");
    const container = Container.open(h);
    const devices = [12, 13].map((g, i) => {
      const group = Group.open(h, g);
      group.setContainer(container);
      if (i === 0) {
        container.setIommu(3);
        for (const m of h.guestMemory()) container.mapDma({ vaddr: m.hva, iova: m.gpa, length: m.length });
      }
      return group.getDevice(h.profile.devices[i]!.bdf);
    });
    for (const d of devices) d.dmaLoggingStart([{ iova: 0n, length: 1n << 31n }], PAGE);
    h.dmaWrite("0000:3b:00.1", 2n * PAGE, 1n);
    h.dmaWrite("0000:3b:00.2", 9n * PAGE, 1n);
    const bm = new Uint8Array(8);
    for (const d of devices) d.dmaLoggingReport({ iova: 0n, length: 64n * PAGE, pageSize: PAGE, bitmap: bm });
    expect(setBits(bm)).toEqual([2, 9]);
  });

  it("a report into memory the process does not own is EFAULT and clears nothing", () => {
    const h = sim();
    const { device } = type1Device(h);
    device.dmaLoggingStart([{ iova: 0n, length: 1n << 20n }], PAGE);
    h.dmaWrite(BDF, 3n * PAGE, 1n);
    const raw = new Uint8Array(32);
    const view = new DataView(raw.buffer);
    view.setBigUint64(8, 64n * PAGE, true);
    view.setBigUint64(16, PAGE, true);
    view.setBigUint64(24, 0x1000n, true); // unmapped user address
    const flags = 8 | (1 << 16);
    expect(h.ioctl(device.fd, VFIO_DEVICE_FEATURE, encodeDeviceFeature(flags, raw))).toBe(-Errno.EFAULT);
    const bm = new Uint8Array(8);
    device.dmaLoggingReport({ iova: 0n, length: 64n * PAGE, pageSize: PAGE, bitmap: bm });
    expect(setBits(bm)).toEqual([3]);
  });

  it("stops logging when the device fd closes (the driver's close_device)", () => {
    const h = sim();
    const { device } = type1Device(h);
    device.dmaLoggingStart([{ iova: 0n, length: 1n << 20n }], PAGE);
    expect(h.trackingState().device).toEqual([BDF]);
    device.close();
    expect(h.trackingActive()).toBe(false);
  });
});

describe("vIOMMU", () => {
  it("the device writes guest IOVAs; the ground truth records the GPA behind them", () => {
    const h = createSimHost("viommu");
    const c = Container.open(h);
    const g = Group.open(h, 12);
    g.setContainer(c);
    c.setIommu(3);
    for (const m of h.dmaMappings()) c.mapDma({ vaddr: m.hva, iova: m.iova, length: m.length });
    g.getDevice(BDF);
    h.dmaWrite(BDF, 0x100000000n + 3n * PAGE, 1n);
    expect(h.writtenSince(0, { space: "iova" })).toEqual([Number(0x100003000n / PAGE)]);
    expect(h.writtenSince(0)).toEqual([Number(0x150003000n / PAGE)]);
    h.run(10); // the default workload writes inside the vIOMMU's IOVA windows only
    expect(h.devices()[0]!.iommuFaults).toBe(0);
    const gpas = h.writtenSince(0).map((p) => BigInt(p) * PAGE);
    expect(gpas.every((a) => h.viommuMappings()!.some((m) => a >= m.gpa && a < m.gpa + m.length))).toBe(true);
  });
});

describe("kernel version: features newer than the imitated kernel", () => {
  it("MIG_DATA_SIZE is ENOTTY on 6.1 and the state size on 6.2+", () => {
    const old = sim(
      { kernel: "6.1", iommu: { vendor: "intel", iommufd: false } },
      { migration: { flags: ["stop-copy", "p2p"], stateBytes: "8MiB" } },
    );
    const flags = VFIO_DEVICE_FEATURE_MIG_DATA_SIZE | VFIO_DEVICE_FEATURE_GET;
    expect(
      old.ioctl(
        type1Device(old).device.fd,
        VFIO_DEVICE_FEATURE,
        encodeDeviceFeature(flags, new Uint8Array(8)),
      ),
    ).toBe(-Errno.ENOTTY);
    expect(type1Device(sim()).device.getMigDataSize()).toBe(8n << 20n);
  });

  it("iommufd dirty ioctls are ENOTTY on 6.6, the DIRTY_TRACKING flag EOPNOTSUPP; /dev/iommu is absent on 6.1", () => {
    const h = sim({ kernel: "6.6", iommu: { vendor: "intel" } });
    const { iommufd, devId, ioasId } = iommufdDevice(h, false);
    expect(
      h.ioctl(iommufd.fd, IOMMU_HWPT_SET_DIRTY_TRACKING, encodeHwptSetDirtyTracking({ hwptId: 1, flags: 1 })),
    ).toBe(-Errno.ENOTTY);
    expect(
      h.ioctl(
        iommufd.fd,
        IOMMU_HWPT_ALLOC,
        encodeHwptAlloc({ devId, ptId: ioasId, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING }),
      ),
    ).toBe(-Errno.EOPNOTSUPP);
    expect(iommufd.hwptAlloc({ devId, ptId: ioasId })).toBeGreaterThan(0);
    const legacy = createSimHost("legacy-type1");
    expect(legacy.open("/dev/iommu", 2)).toBe(-Errno.ENOENT);
    expect(legacy.open("/dev/vfio/devices/vfio0", 2)).toBe(-Errno.ENOENT);
  });
});

describe("migration state machine", () => {
  it("walks RUNNING -> STOP_COPY through the kernel's arcs and returns a data fd", () => {
    const h = sim();
    const { device } = type1Device(h);
    const r = device.setMigState(VFIO_DEVICE_STATE_STOP_COPY);
    expect(r.dataFd).toBeGreaterThan(2);
    expect(device.getMigState()).toBe(VFIO_DEVICE_STATE_STOP_COPY);
    // STOP_COPY -> PRE_COPY is a blocked arc.
    expect(errnoOf(() => device.setMigState(VFIO_DEVICE_STATE_PRE_COPY))).toBe(Errno.EINVAL);
    expect(device.getMigState()).toBe(VFIO_DEVICE_STATE_STOP_COPY);
    expect(h.close(r.dataFd)).toBe(0);
  });

  it("answers PRE_COPY info only in a PRE_COPY state", () => {
    const h = sim();
    const { device } = type1Device(h);
    const r = device.setMigState(VFIO_DEVICE_STATE_PRE_COPY);
    expect(device.getPrecopyInfo(r.dataFd)).toMatchObject({ initialBytes: 4n << 20n, dirtyBytes: 4096n });
    device.setMigState(VFIO_DEVICE_STATE_RUNNING);
    expect(errnoOf(() => device.getPrecopyInfo(r.dataFd))).toBe(Errno.EINVAL);
  });

  it("a device in ERROR refuses every state; a device that does not DMA when stopped", () => {
    const h = sim();
    const { device } = type1Device(h);
    device.setMigState(VFIO_DEVICE_STATE_STOP);
    h.dmaWrite(BDF, 0n, 8n); // explicit writes still land: tests drive them on purpose
    h.setDeviceError(BDF);
    expect(device.getMigState()).toBe(VFIO_DEVICE_STATE_ERROR);
    expect(errnoOf(() => device.setMigState(VFIO_DEVICE_STATE_RUNNING))).toBe(Errno.EINVAL);
  });

  it("workloads pause while the device is stopped", () => {
    const h = createSimHost("mlx5-vf");
    const { device } = type1Device(h);
    device.setMigState(VFIO_DEVICE_STATE_STOP);
    h.run(10);
    expect(h.writtenSince(0)).toEqual([]);
    device.setMigState(VFIO_DEVICE_STATE_RUNNING);
    h.run(10);
    expect(h.writtenSince(0).length).toBe(200); // 20000 pages/s for 10 ms (writes 200..399)
  });
});

describe("type1 details", () => {
  it("pinned-page scope: only pages really written are reported, and cleared on read", () => {
    const h = sim({}, { pinnedPageScope: true });
    const { container } = type1Device(h);
    container.startDirtyTracking();
    h.dmaWrite(BDF, 5n * PAGE + 7n, 2n * PAGE);
    const bm = new Uint8Array(8);
    container.getDirtyBitmap({ iova: 0n, length: 1n << 30n, pageSize: PAGE, bitmap: new Uint8Array(32768) });
    h.dmaWrite(BDF, 9n * PAGE, 1n);
    const big = new Uint8Array(32768);
    container.getDirtyBitmap({ iova: 0n, length: 1n << 30n, pageSize: PAGE, bitmap: big });
    bm.set(big.subarray(0, 8));
    expect(setBits(bm)).toEqual([9]);
  });

  it("type1 copies whole u64 words: it overwrites the caller's bits except the low ones of a shared first word", () => {
    const h = sim();
    const c = Container.open(h);
    const g = Group.open(h, 12);
    g.setContainer(c);
    c.setIommu(3);
    const ram = h.guestMemory()[0]!;
    c.mapDma({ vaddr: ram.hva, iova: 0n, length: 3n * PAGE });
    c.mapDma({ vaddr: ram.hva + 70n * PAGE, iova: 70n * PAGE, length: 3n * PAGE });
    c.startDirtyTracking();
    const bm = new Uint8Array(24).fill(0xff);
    c.getDirtyBitmap({ iova: 0n, length: 128n * PAGE, pageSize: PAGE, bitmap: bm.subarray(0, 16) });
    const v = new DataView(bm.buffer);
    // Word 0: the first mapping alone (shift 0), the caller's 1s beyond it are gone.
    expect(v.getBigUint64(0, true)).toBe(0x7n);
    // Word 1: the second mapping starts at bit 6 of it: the caller's low 6 bits stay.
    expect(v.getBigUint64(8, true)).toBe(0x1ffn);
    // Word 2 is beyond the request: untouched.
    expect(v.getBigUint64(16, true)).toBe(0xffff_ffff_ffff_ffffn);
  });

  it("a device DMA to an unmapped IOVA is an IOMMU fault and dirties nothing", () => {
    const h = sim();
    const c = Container.open(h);
    const g = Group.open(h, 12);
    g.setContainer(c);
    c.setIommu(3);
    const d = g.getDevice(BDF);
    d.dmaLoggingStart([{ iova: 0n, length: 1n << 20n }], PAGE);
    expect(h.dmaWrite(BDF, 0x3000n, 16n)).toBe(0n);
    expect(h.devices()[0]!.iommuFaults).toBe(1);
    expect(h.writtenSince(0, { space: "iova" })).toEqual([]);
    const bm = new Uint8Array(8);
    d.dmaLoggingReport({ iova: 0n, length: 64n * PAGE, pageSize: PAGE, bitmap: bm });
    expect(setBits(bm)).toEqual([]);
  });

  it("GET_INFO with a short argsz raises argsz and sets CAPS (the retry protocol)", () => {
    const h = sim();
    const { container } = type1Device(h);
    const buf = encodeIommuType1InfoRequest();
    expect(h.ioctl(container.fd, VFIO_IOMMU_GET_INFO, buf)).toBe(0);
    const info = decodeIommuType1Info(buf);
    expect(info.flags & VFIO_IOMMU_INFO_CAPS).toBe(VFIO_IOMMU_INFO_CAPS);
    expect(info.capOffset).toBe(0);
    expect(info.argsz).toBeGreaterThan(24);
    const { caps } = container.getInfo();
    expect(caps.dmaAvail).toBe(65535 - 2);
    expect(caps.iovaRanges).toEqual([
      { start: 0n, end: 0xfedfffffn },
      { start: 0xfef00000n, end: 0xffffffffffffn },
    ]);
  });

  it("packs the capability chain before 6.6 and aligns it to 8 bytes from 6.6 on", () => {
    const offsets = (kernel: string) => {
      const h = sim(
        { kernel, iommu: { vendor: "intel", iommufd: false } },
        { migration: { flags: ["stop-copy"] } },
      );
      const { container } = type1Device(h);
      const buf = encodeIommuType1InfoRequest(512);
      expect(h.ioctl(container.fd, VFIO_IOMMU_GET_INFO, buf)).toBe(0);
      const v = new DataView(buf.buffer);
      const out: number[] = [];
      for (let at = v.getUint32(16, true); at; at = v.getUint32(at + 4, true)) out.push(at);
      return out;
    };
    expect(offsets("6.1")).toEqual([24, 56, 68]);
    expect(offsets("6.8")).toEqual([24, 56, 72]);
    // Both decode the same way.
    const h = sim(
      { kernel: "6.1", iommu: { vendor: "intel", iommufd: false } },
      { migration: { flags: ["stop-copy"] } },
    );
    expect(type1Device(h).container.getInfo().caps.migration?.pgsizeBitmap).toBe(4096n);
  });

  it("SET_CONTAINER: EBADF for a closed fd, EBADFD (EINVAL before 6.2) for a non-container, EBUSY for a non-viable group", () => {
    const old = sim(
      { kernel: "6.1", iommu: { vendor: "intel", iommufd: false } },
      { migration: { flags: ["stop-copy"] } },
    );
    const og = Group.open(old, 12);
    expect(old.ioctl(og.fd, VFIO_GROUP_SET_CONTAINER, encodeFdArg(og.fd))).toBe(-Errno.EINVAL);
    const h = sim({ groups: [{ id: 12, members: [{ bdf: "0000:3b:00.0", driver: "mlx5_core" }] }] });
    const g = Group.open(h, 12);
    expect(h.ioctl(g.fd, VFIO_GROUP_SET_CONTAINER, encodeFdArg(999))).toBe(-Errno.EBADF);
    expect(h.ioctl(g.fd, VFIO_GROUP_SET_CONTAINER, encodeFdArg(g.fd))).toBe(-77); // EBADFD
    const c = Container.open(h);
    expect(g.getStatus().viable).toBe(false);
    expect(h.ioctl(g.fd, VFIO_GROUP_SET_CONTAINER, encodeFdArg(c.fd))).toBe(-Errno.EBUSY);
    expect(h.open("/dev/vfio/12", 2)).toBe(-Errno.EBUSY); // a group opens once
  });

  it("a group closed while a device fd is open stays held until the device closes", () => {
    const h = sim();
    const { group, device } = type1Device(h);
    group.close();
    expect(h.open("/dev/vfio/12", 2)).toBe(-Errno.EBUSY);
    expect(device.getInfo().numRegions).toBe(9); // the device still works through its container
    device.close();
    const fd = h.open("/dev/vfio/12", 2);
    expect(fd).toBeGreaterThan(2);
  });

  it("closing the last group tears the container's IOMMU down (mappings and tracking)", () => {
    const h = sim();
    const { container, group, device } = type1Device(h);
    container.startDirtyTracking();
    expect(h.trackingState().type1).toBe(true);
    device.close();
    group.close();
    expect(h.trackingActive()).toBe(false);
    expect(errnoOf(() => container.getInfo())).toBe(Errno.EINVAL);
  });
});

describe("iommufd details", () => {
  it("attaching a device without dirty-capable IOMMU to a dirty-tracking HWPT is EINVAL", () => {
    const h = sim({
      devices: [
        { bdf: "0000:3b:00.1", vendor: "0x15b3", device: "0x101e", driver: "mlx5_vfio_pci", group: 12 },
        {
          bdf: "0000:3b:00.2",
          vendor: "0x15b3",
          device: "0x101e",
          driver: "mlx5_vfio_pci",
          group: 13,
          iommuDirty: false,
        },
      ],
    });
    const iommufd = IommuFd.open(h);
    const a = DeviceCdev.open(h, "/dev/vfio/devices/vfio0", "a");
    const b = DeviceCdev.open(h, "/dev/vfio/devices/vfio1", "b");
    const devA = a.bindIommufd(iommufd);
    const devB = b.bindIommufd(iommufd);
    const ioasId = iommufd.ioasAlloc();
    const hwpt = iommufd.hwptAlloc({ devId: devA, ptId: ioasId, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
    expect(a.attachIommufdPt(hwpt)).toBe(hwpt);
    expect(errnoOf(() => b.attachIommufdPt(hwpt))).toBe(Errno.EINVAL);
    expect(
      errnoOf(() => iommufd.hwptAlloc({ devId: devB, ptId: ioasId, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING })),
    ).toBe(Errno.EOPNOTSUPP);
    expect(b.attachIommufdPt(ioasId)).not.toBe(hwpt);
  });

  it("dirty tracking on a HWPT without dirty ops is EOPNOTSUPP; busy and unknown objects", () => {
    const h = sim();
    const { iommufd, hwptId, ioasId } = iommufdDevice(h, false);
    expect(errnoOf(() => iommufd.setDirtyTracking(hwptId, true))).toBe(Errno.EOPNOTSUPP);
    expect(errnoOf(() => iommufd.destroy(ioasId))).toBe(Errno.EBUSY);
    expect(errnoOf(() => iommufd.destroy(999))).toBe(Errno.ENOENT);
    expect(errnoOf(() => iommufd.ioasUnmap({ ioasId, iova: PAGE, length: PAGE }))).toBe(Errno.ENOENT);
  });

  it("the size protocol: below the minimum EINVAL, a non-zero tail E2BIG, a zero tail accepted", () => {
    const h = sim();
    const fd = IommuFd.open(h).fd;
    const short = encodeIoasAlloc();
    new DataView(short.buffer).setUint32(0, 8, true);
    expect(h.ioctl(fd, IOMMU_IOAS_ALLOC, short)).toBe(-Errno.EINVAL);
    const long = new Uint8Array(16);
    long.set(encodeIoasAlloc());
    new DataView(long.buffer).setUint32(0, 16, true);
    expect(h.ioctl(fd, IOMMU_IOAS_ALLOC, long)).toBe(0);
    expect(new DataView(long.buffer).getUint32(8, true)).toBeGreaterThan(0);
    long[12] = 1;
    expect(h.ioctl(fd, IOMMU_IOAS_ALLOC, long)).toBe(-Errno.E2BIG);
  });

  it("HW info carries the VT-d registers and the dirty capability", () => {
    const h = sim();
    const { iommufd, devId } = iommufdDevice(h, true);
    const data = new Uint8Array(32).fill(0xee);
    const info = iommufd.getHwInfo(devId, data);
    expect(info).toMatchObject({ outDataType: 1, dataLen: 24, outCapabilities: 1n });
    expect(new DataView(data.buffer).getBigUint64(16, true) & (1n << 45n)).toBe(1n << 45n);
    expect([...data.subarray(24)]).toEqual(new Array(8).fill(0)); // the rest of the caller's room is cleared
  });

  it("DMA through a dirty HWPT: bits at any page size, unmap drops them", () => {
    const h = sim();
    const { iommufd, hwptId, ioasId } = iommufdDevice(h, true);
    iommufd.setDirtyTracking(hwptId, true);
    h.dmaWrite(BDF, 0x3000n, 0x2000n);
    const bm = new Uint8Array(8);
    iommufd.getDirtyBitmap({
      hwptId,
      iova: 0n,
      length: 64n * 2n * PAGE,
      pageSize: 2n * PAGE,
      bitmap: bm,
      noClear: true,
    });
    expect(setBits(bm)).toEqual([1, 2]);
    iommufd.ioasUnmap({ ioasId, iova: 0n, length: 1n << 30n });
    // Unmapped IOVA cannot be read (a hole: EINVAL); mapped again, it has no bits left.
    const after = new Uint8Array(8);
    const read = () =>
      iommufd.getDirtyBitmap({ hwptId, iova: 0n, length: 64n * PAGE, pageSize: PAGE, bitmap: after });
    expect(errnoOf(read)).toBe(Errno.EINVAL);
    const ram = h.guestMemory()[0]!;
    iommufd.ioasMap({ ioasId, userVa: ram.hva, length: 64n * PAGE, iova: 0n });
    read();
    expect(setBits(after)).toEqual([]);
  });

  it("GET_DIRTY_BITMAP over a hole is EINVAL, after setting the bits of the areas before it", () => {
    const h = sim();
    const { iommufd, hwptId, ioasId } = iommufdDevice(h, true);
    const ram = h.guestMemory()[0]!;
    iommufd.ioasUnmap({ ioasId, iova: 0n, length: 1n << 30n });
    iommufd.ioasMap({ ioasId, userVa: ram.hva, length: 16n * PAGE, iova: 0n });
    iommufd.ioasMap({ ioasId, userVa: ram.hva, length: 16n * PAGE, iova: 32n * PAGE });
    iommufd.setDirtyTracking(hwptId, true);
    h.dmaWrite(BDF, 3n * PAGE, 8n);
    h.dmaWrite(BDF, 33n * PAGE, 8n);
    const bm = new Uint8Array(8);
    const hole = () =>
      iommufd.getDirtyBitmap({ hwptId, iova: 0n, length: 48n * PAGE, pageSize: PAGE, bitmap: bm });
    expect(errnoOf(hole)).toBe(Errno.EINVAL);
    expect(setBits(bm)).toEqual([3]);
    const each = new Uint8Array(8);
    iommufd.getDirtyBitmap({ hwptId, iova: 32n * PAGE, length: 16n * PAGE, pageSize: PAGE, bitmap: each });
    expect(setBits(each)).toEqual([1]);
  });

  it("rejects a second bind and a bind while the group is open", () => {
    const h = sim();
    const g = Group.open(h, 12);
    const iommufd = IommuFd.open(h);
    const cdev = DeviceCdev.open(h, "/dev/vfio/devices/vfio0", BDF);
    expect(errnoOf(() => cdev.bindIommufd(iommufd))).toBe(Errno.EBUSY);
    g.close();
    expect(cdev.bindIommufd(iommufd)).toBeGreaterThan(0);
    expect(errnoOf(() => cdev.bindIommufd(iommufd))).toBe(Errno.EINVAL);
    // A second cdev file of the same device: only the group path opens a device twice.
    const other = DeviceCdev.open(h, "/dev/vfio/devices/vfio0", BDF);
    expect(errnoOf(() => other.bindIommufd(iommufd))).toBe(Errno.EINVAL);
  });
});

// The typed objects against the simulated kernel: the same bytes a real kernel gets, decoded by
// the sim with the same codecs. A disagreement here is a codec, object or sim bug.

import { describe, expect, it } from "vitest";
import { Errno, IoctlError } from "../../src/errors.ts";
import { createSimHost } from "../../src/sim/index.ts";
import * as i from "../../src/uapi/iommufd.ts";
import * as v from "../../src/uapi/vfio.ts";
import { DeviceCdev } from "../../src/vfio/cdev.ts";
import { Container } from "../../src/vfio/container.ts";
import { Group } from "../../src/vfio/group.ts";
import { IommuFd } from "../../src/vfio/iommufd.ts";

const PAGE = 4096n;

/** Bit numbers set in a little-endian u64 bitmap. */
function setBits(bitmap: Uint8Array): number[] {
  const out: number[] = [];
  bitmap.forEach((byte, k) => {
    for (let b = 0; b < 8; b++) if (byte & (1 << b)) out.push(k * 8 + b);
  });
  return out;
}

describe("typed objects on the simulated host", () => {
  it("type1: info with migration capability, map, dirty tracking and unmap with bitmap", () => {
    const sim = createSimHost("edu-type1");
    const dev = sim.devices()[0]!;
    const ram = sim.guestMemory()[0]!;
    const group = Group.open(sim, dev.group, dev.groupPath);
    const container = Container.open(sim);
    try {
      expect(container.getApiVersion()).toBe(v.VFIO_API_VERSION);
      expect(container.checkExtension(v.VFIO_TYPE1v2_IOMMU)).toBe(true);
      expect(group.getStatus().viable).toBe(true);
      group.setContainer(container);
      expect(group.getStatus().containerSet).toBe(true);
      container.setIommu(v.VFIO_TYPE1v2_IOMMU);
      const { info, caps } = container.getInfo();
      expect(info.iovaPgsizes).toBe(0x40201000n);
      expect(caps.migration?.pgsizeBitmap).toBeDefined();
      expect((caps.migration!.pgsizeBitmap & PAGE) !== 0n).toBe(true);
      expect(caps.iovaRanges?.length).toBeGreaterThan(0);

      const length = 0x100000n; // 1 MiB = 256 pages
      container.mapDma({ vaddr: ram.hva, iova: 0n, length });
      container.startDirtyTracking();
      const t0 = sim.clock.now();
      expect(sim.dmaWrite(dev.bdf, 0x3000n, 0x2000n)).toBe(0x2000n);
      const bitmap = new Uint8Array(32);
      container.getDirtyBitmap({ iova: 0n, length, pageSize: PAGE, bitmap });
      const written = sim.writtenSince(t0);
      // Never lose a page: everything written is reported (type1 may report more).
      for (const p of written) expect(setBits(bitmap)).toContain(p);
      expect(written).toEqual([3, 4]);

      const device = group.getDevice(dev.bdf);
      expect(device.getInfo().flags & v.VFIO_DEVICE_FLAGS_PCI).toBeTruthy();
      expect(device.featureProbe(v.VFIO_DEVICE_FEATURE_DMA_LOGGING_START, v.VFIO_DEVICE_FEATURE_SET)).toBe(
        false,
      );
      device.close();

      const unmapBitmap = new Uint8Array(32);
      expect(
        container.unmapDmaWithDirtyBitmap({ iova: 0n, length, pageSize: PAGE, bitmap: unmapBitmap }),
      ).toBe(length);
      container.stopDirtyTracking();
    } finally {
      container.close();
      group.close();
    }
  });

  it("device DMA logging and migration through VFIO_DEVICE_FEATURE", () => {
    const sim = createSimHost("mlx5-vf");
    const dev = sim.devices()[0]!;
    const ram = sim.guestMemory()[0]!;
    const group = Group.open(sim, dev.group, dev.groupPath);
    const container = Container.open(sim);
    try {
      group.setContainer(container);
      container.setIommu(v.VFIO_TYPE1v2_IOMMU);
      container.mapDma({ vaddr: ram.hva, iova: ram.gpa, length: ram.length });
      const device = group.getDevice(dev.bdf);
      expect(device.featureProbe(v.VFIO_DEVICE_FEATURE_DMA_LOGGING_START, v.VFIO_DEVICE_FEATURE_SET)).toBe(
        true,
      );
      const flags = device.getMigrationFlags();
      expect(flags & v.VFIO_MIGRATION_STOP_COPY).toBeTruthy();
      expect(device.getMigState()).toBe(v.VFIO_DEVICE_STATE_RUNNING);

      const chosen = device.dmaLoggingStart([{ iova: 0n, length: 0x10000000n }], PAGE);
      expect(chosen).toBe(PAGE);
      const t0 = sim.clock.now();
      sim.dmaWrite(dev.bdf, 0x5000n, 0x1000n);
      const bitmap = new Uint8Array(8);
      device.dmaLoggingReport({ iova: 0n, length: 0x40000n, pageSize: PAGE, bitmap });
      expect(setBits(bitmap)).toContain(5);
      expect(sim.writtenSince(t0)).toContain(5);
      // Starting twice is EBUSY-like in the kernel (another start is not allowed).
      expect(() => device.dmaLoggingStart([{ iova: 0n, length: 0x1000n }], PAGE)).toThrow(IoctlError);
      device.dmaLoggingStop();

      const path = v.migStatePath(v.VFIO_DEVICE_STATE_RUNNING, v.VFIO_DEVICE_STATE_PRE_COPY, flags);
      expect(path).toEqual([v.VFIO_DEVICE_STATE_PRE_COPY]);
      const r = device.setMigState(v.VFIO_DEVICE_STATE_PRE_COPY);
      expect(r.deviceState).toBe(v.VFIO_DEVICE_STATE_PRE_COPY);
      expect(r.dataFd).toBeGreaterThanOrEqual(0);
      expect(device.getPrecopyInfo(r.dataFd).initialBytes).toBeGreaterThan(0n);
      expect(device.getMigDataSize()).toBeGreaterThan(0n);
      expect(sim.close(r.dataFd)).toBe(0);
      device.close();
    } finally {
      container.close();
      group.close();
    }
  });

  it("iommufd: cdev bind and attach, HWPT with dirty tracking, dirty bitmap", () => {
    const sim = createSimHost("gpu-iommufd");
    const dev = sim.devices()[0]!;
    const ram = sim.guestMemory()[0]!;
    const iommufd = IommuFd.open(sim);
    const cdev = DeviceCdev.open(sim, dev.cdevPath!, dev.bdf);
    try {
      const devId = cdev.bindIommufd(iommufd);
      const info = iommufd.getHwInfo(devId);
      expect(info.outCapabilities & BigInt(i.IOMMU_HW_CAP_DIRTY_TRACKING)).toBe(1n);
      const ioasId = iommufd.ioasAlloc();
      const hwptId = iommufd.hwptAlloc({ devId, ptId: ioasId, flags: i.IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
      expect(cdev.attachIommufdPt(hwptId)).toBe(hwptId);
      expect(iommufd.ioasMap({ ioasId, userVa: ram.hva, length: 0x200000n, iova: 0n })).toBe(0n);
      const { ranges } = iommufd.ioasIovaRanges(ioasId);
      expect(ranges.length).toBeGreaterThan(0);
      iommufd.setDirtyTracking(hwptId, true);
      const t0 = sim.clock.now();
      sim.dmaWrite(dev.bdf, 0x7000n, 0x1000n);
      const bitmap = new Uint8Array(64);
      iommufd.getDirtyBitmap({ hwptId, iova: 0n, length: 0x200000n, pageSize: PAGE, bitmap, noClear: true });
      expect(setBits(bitmap)).toContain(7);
      expect(sim.writtenSince(t0)).toContain(7);
      iommufd.setDirtyTracking(hwptId, false);
      cdev.detachIommufdPt();
      expect(iommufd.ioasUnmap({ ioasId, iova: 0n, length: 0x200000n })).toBe(0x200000n);
      iommufd.destroy(hwptId);
      iommufd.destroy(ioasId);
    } finally {
      cdev.close();
      iommufd.close();
    }
  });

  it("reports the sim kernel's errno through IoctlError with the fields sent", () => {
    const sim = createSimHost("edu-type1");
    const container = Container.open(sim);
    try {
      // No group attached: SET_IOMMU must fail as on Linux.
      let err: IoctlError | undefined;
      try {
        container.setIommu(v.VFIO_TYPE1v2_IOMMU);
      } catch (e) {
        err = e as IoctlError;
      }
      expect(err).toBeInstanceOf(IoctlError);
      expect(err!.op).toBe("VFIO_SET_IOMMU");
      expect(err!.message).toContain("container fd");
      expect(err!.message).toContain("type 3");
      expect([Errno.EINVAL, Errno.ENODEV, Errno.EBUSY]).toContain(err!.errno);
    } finally {
      container.close();
    }
  });
});

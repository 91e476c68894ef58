// iommufd and device cdev rules (drivers/iommu/iommufd/{main,ioas,hw_pagetable,io_pagetable}.c,
// drivers/vfio/device_cdev.c).

import {
  encodeAttachIommufdPt,
  encodeDeviceFeature,
  encodeHwptAlloc,
  encodeHwptGetDirtyBitmap,
  encodeHwptSetDirtyTracking,
  encodeIoasIovaRanges,
  encodeIoasMap,
  IOMMU_HW_CAP_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_GET_DIRTY_BITMAP,
  IOMMU_HWPT_SET_DIRTY_TRACKING,
  IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_MIGRATION,
  VFIO_DEVICE_FEATURE_PROBE,
} from "../uapi/index.ts";
import { DeviceCdev, Group } from "../vfio/index.ts";
import {
  attempt,
  bitmap,
  bitmapWords,
  errnoOf,
  ioctl,
  needs,
  type Scenario,
  type Session,
} from "./scenario.ts";

const PAGE = 4096n;
const RW = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;

/** Bound device (cdev, or the target's own) with a new IOAS holding `pages` fresh pages at the IOVA base. */
export function attached(s: Session, pages = 16n) {
  const { iommufd, device } = s.iommufdDevice();
  const ioasId = iommufd.ioasAlloc();
  const mem = s.memory(pages * PAGE);
  iommufd.ioasMap({ ioasId, userVa: mem.address, length: pages * PAGE, iova: s.iova });
  return { iommufd, device, devId: device.devId, ioasId, mem };
}

/** A dirty-tracking HWPT over a fresh IOAS, the device attached to it. */
export function dirtyHwpt(s: Session, pages = 16n) {
  const a = attached(s, pages);
  const hwptId = a.iommufd.hwptAlloc({
    devId: a.devId,
    ptId: a.ioasId,
    flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  });
  a.device.attach(hwptId);
  return { ...a, hwptId };
}

export const iommufdScenarios: Scenario[] = [
  {
    id: "cdev.ioctl-before-bind",
    rule: "A device cdev answers EINVAL to everything but BIND until it is bound",
    kernel: "vfio_main.c vfio_device_fops_unl_ioctl: !df->access_granted",
    expected: { errno: "EINVAL" },
    skip: needs.iommufd,
    run: (t, s) => {
      const cdev = DeviceCdev.open(t.host, t.cdevPath!, t.bdf);
      s.defer(() => cdev.close());
      return ioctl(
        t,
        cdev.fd,
        VFIO_DEVICE_FEATURE,
        encodeDeviceFeature(VFIO_DEVICE_FEATURE_MIGRATION | VFIO_DEVICE_FEATURE_PROBE),
      );
    },
  },
  {
    id: "cdev.bind-attach-detach",
    rule: "BIND gives a device id, ATTACH to an IOAS gives the auto HWPT id, DETACH succeeds",
    kernel: "device_cdev.c vfio_df_ioctl_bind_iommufd, vfio_df_ioctl_attach_pt, vfio_df_ioctl_detach_pt",
    expected: { errno: null },
    skip: needs.iommufd,
    run: (_t, s) =>
      attempt(() => {
        const { iommufd, cdev, devId } = s.cdev();
        const ioasId = iommufd.ioasAlloc();
        const hwptId = cdev.attachIommufdPt(ioasId);
        cdev.detachIommufdPt();
        return { devIdPositive: devId > 0, hwptDiffersFromIoas: hwptId !== ioasId };
      }),
  },
  {
    id: "cdev.group-busy-while-bound",
    rule: "Opening the group of a device bound through its cdev is EBUSY",
    kernel: "group.c vfio_group_fops_open / vfio_device_block_group",
    expected: { errno: "EBUSY" },
    skip: (h) => needs.iommufd(h) ?? needs.type1(h),
    run: (t, s) => {
      s.cdev();
      const fd = t.host.open(`/dev/vfio/${t.group}`, 2);
      if (fd >= 0) s.defer(() => t.host.close(fd));
      return { errno: errnoOf(fd) };
    },
  },
  {
    id: "cdev.attach-flags",
    rule: "ATTACH_IOMMUFD_PT with unknown flags is EINVAL",
    kernel: "device_cdev.c vfio_df_ioctl_attach_pt: attach.flags",
    expected: { errno: "EINVAL" },
    skip: needs.iommufd,
    run: (t, s) => {
      const { iommufd, cdev } = s.cdev();
      const ioasId = iommufd.ioasAlloc();
      return ioctl(
        t,
        cdev.fd,
        VFIO_DEVICE_ATTACH_IOMMUFD_PT,
        encodeAttachIommufdPt({ ptId: ioasId, flags: 0x80 }),
      );
    },
  },
  {
    id: "iommufd.map.fixed-and-kernel-chosen",
    rule: "IOAS_MAP places a FIXED_IOVA mapping where asked and a kernel-chosen one at an aligned free IOVA",
    kernel: "io_pagetable.c iopt_map_user_pages, iopt_alloc_iova",
    expected: { errno: null },
    skip: needs.iommufd,
    run: (_t, s) => {
      const iommufd = s.iommufd();
      const ioasId = iommufd.ioasAlloc();
      const mem = s.memory(4n * PAGE);
      return attempt(() => {
        const fixed = iommufd.ioasMap({ ioasId, userVa: mem.address, length: 4n * PAGE, iova: s.iova });
        const chosen = iommufd.ioasMap({ ioasId, userVa: mem.address, length: 2n * PAGE });
        return {
          fixed,
          chosenAligned: chosen % PAGE === 0n,
          chosenDisjoint: chosen + 2n * PAGE <= fixed || chosen >= fixed + 4n * PAGE,
        };
      });
    },
  },
  {
    id: "iommufd.map.overlap",
    rule: "IOAS_MAP with FIXED_IOVA over an existing mapping is EEXIST",
    kernel: "io_pagetable.c iopt_check_iova: iopt_area_iter_first found one",
    expected: { errno: "EEXIST" },
    skip: needs.iommufd,
    run: (t, s) => {
      const iommufd = s.iommufd();
      const ioasId = iommufd.ioasAlloc();
      const mem = s.memory(4n * PAGE);
      iommufd.ioasMap({ ioasId, userVa: mem.address, length: 4n * PAGE, iova: s.iova });
      return ioctl(
        t,
        iommufd.fd,
        IOMMU_IOAS_MAP,
        encodeIoasMap({
          flags: RW | IOMMU_IOAS_MAP_FIXED_IOVA,
          ioasId,
          userVa: mem.address,
          length: PAGE,
          iova: s.iova + PAGE,
        }),
      );
    },
  },
  {
    id: "iommufd.map.unknown-flags",
    rule: "IOAS_MAP with unknown flags is EOPNOTSUPP",
    kernel: "ioas.c iommufd_ioas_map: cmd->flags & ~(FIXED_IOVA|WRITEABLE|READABLE)",
    expected: { errno: "EOPNOTSUPP" },
    skip: needs.iommufd,
    run: (t, s) => {
      const iommufd = s.iommufd();
      const ioasId = iommufd.ioasAlloc();
      const mem = s.memory(PAGE);
      return ioctl(
        t,
        iommufd.fd,
        IOMMU_IOAS_MAP,
        encodeIoasMap({ flags: RW | 0x100, ioasId, userVa: mem.address, length: PAGE, iova: s.iova }),
      );
    },
  },
  {
    id: "iommufd.unmap.all",
    rule: "IOAS_UNMAP of iova 0, length U64_MAX unmaps everything and reports the bytes",
    kernel: "ioas.c iommufd_ioas_unmap: iopt_unmap_all",
    expected: { errno: null },
    skip: needs.iommufd,
    run: (_t, s) => {
      const iommufd = s.iommufd();
      const ioasId = iommufd.ioasAlloc();
      const mem = s.memory(3n * PAGE);
      iommufd.ioasMap({ ioasId, userVa: mem.address, length: 3n * PAGE, iova: s.iova });
      iommufd.ioasMap({ ioasId, userVa: mem.address, length: PAGE, iova: s.iova + 16n * PAGE });
      return attempt(() => iommufd.ioasUnmap({ ioasId, iova: 0n, length: 0xffff_ffff_ffff_ffffn }));
    },
  },
  {
    id: "iommufd.iova-ranges.short-array",
    rule: "IOAS_IOVA_RANGES with no room answers EMSGSIZE and writes the count needed",
    kernel: "ioas.c iommufd_ioas_iova_ranges: num_iovas > max_iovas",
    expected: { errno: "EMSGSIZE" },
    skip: needs.iommufd,
    run: (t, s) => {
      const iommufd = s.iommufd();
      const ioasId = iommufd.ioasAlloc();
      const buf = encodeIoasIovaRanges({ ioasId, numIovas: 0, allowedIovas: 0n });
      const out = ioctl(t, iommufd.fd, IOMMU_IOAS_IOVA_RANGES, buf);
      return { ...out, result: { countWritten: new DataView(buf.buffer).getUint32(8, true) > 0 } };
    },
  },
  {
    id: "iommufd.hw-info.dirty-capability",
    rule: "GET_HW_INFO says whether the device's IOMMU tracks dirty pages",
    kernel: "device.c iommufd_get_hw_info: IOMMU_HW_CAP_DIRTY_TRACKING",
    expected: { errno: null },
    skip: needs.iommufd,
    run: (_t, s) => {
      const { iommufd, devId } = s.cdev();
      return attempt(() => ({
        dirtyTracking:
          (iommufd.getHwInfo(devId).outCapabilities & BigInt(IOMMU_HW_CAP_DIRTY_TRACKING)) !== 0n,
      }));
    },
  },
  {
    id: "iommufd.hwpt-alloc.dirty-unsupported",
    rule: "HWPT_ALLOC with DIRTY_TRACKING on an IOMMU that cannot track is EOPNOTSUPP",
    kernel: "hw_pagetable.c iommufd_hwpt_paging_alloc: !device_iommu_capable(IOMMU_CAP_DIRTY_TRACKING)",
    expected: { errno: "EOPNOTSUPP" },
    skip: needs.noIommuDirty,
    run: (t, s) => {
      const { iommufd, devId } = s.cdev();
      const ioasId = iommufd.ioasAlloc();
      return ioctl(
        t,
        iommufd.fd,
        IOMMU_HWPT_ALLOC,
        encodeHwptAlloc({ devId, ptId: ioasId, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING }),
      );
    },
  },
  {
    id: "iommufd.set-dirty.unknown-flags",
    rule: "HWPT_SET_DIRTY_TRACKING with unknown flags is EOPNOTSUPP",
    kernel: "hw_pagetable.c iommufd_hwpt_set_dirty_tracking: flags & ~ENABLE",
    expected: { errno: "EOPNOTSUPP" },
    skip: needs.iommuDirty,
    run: (t, s) => {
      const { iommufd, hwptId } = dirtyHwpt(s);
      return ioctl(
        t,
        iommufd.fd,
        IOMMU_HWPT_SET_DIRTY_TRACKING,
        encodeHwptSetDirtyTracking({ hwptId, flags: 2 }),
      );
    },
  },
  {
    id: "iommufd.get-dirty.unaligned",
    rule: "HWPT_GET_DIRTY_BITMAP with an IOVA not aligned to page_size is EINVAL",
    kernel: "io_pagetable.c iommufd_check_iova_range: iova & (page_size - 1)",
    expected: { errno: "EINVAL" },
    skip: needs.iommuDirty,
    run: (t, s) => {
      const { iommufd, hwptId } = dirtyHwpt(s);
      iommufd.setDirtyTracking(hwptId, true);
      const bm = bitmap(1);
      return ioctl(
        t,
        iommufd.fd,
        IOMMU_HWPT_GET_DIRTY_BITMAP,
        encodeHwptGetDirtyBitmap({
          hwptId,
          flags: 0,
          iova: s.iova + PAGE,
          length: 4n * PAGE,
          pageSize: 2n * PAGE,
          data: t.host.addressOf(bm),
        }),
      );
    },
  },
  {
    id: "iommufd.get-dirty.hole",
    rule: "HWPT_GET_DIRTY_BITMAP over a hole between two mappings answers 0: the walk stops at the hole and its EINVAL is dropped",
    kernel:
      "io_pagetable.c __iommu_read_and_clear_dirty: !iopt_area_contig_done -> EINVAL, ignored by iommu_read_and_clear_dirty",
    expected: { errno: null },
    skip: needs.iommuDirty,
    run: (t, s) => {
      const { iommufd, hwptId, ioasId } = dirtyHwpt(s);
      // A second mapping 16 pages after the first one ends: [16, 32) is a hole.
      const mem = s.memory(16n * PAGE);
      iommufd.ioasMap({ ioasId, userVa: mem.address, length: 16n * PAGE, iova: s.iova + 32n * PAGE });
      iommufd.setDirtyTracking(hwptId, true);
      const bm = bitmap(1);
      return ioctl(
        t,
        iommufd.fd,
        IOMMU_HWPT_GET_DIRTY_BITMAP,
        encodeHwptGetDirtyBitmap({
          hwptId,
          flags: 0,
          iova: s.iova,
          length: 48n * PAGE,
          pageSize: PAGE,
          data: t.host.addressOf(bm),
        }),
      );
    },
  },
  {
    id: "iommufd.get-dirty.unknown-flags",
    rule: "HWPT_GET_DIRTY_BITMAP with unknown flags is EOPNOTSUPP",
    kernel: "hw_pagetable.c iommufd_hwpt_get_dirty_bitmap: flags & ~NO_CLEAR",
    expected: { errno: "EOPNOTSUPP" },
    skip: needs.iommuDirty,
    run: (t, s) => {
      const { iommufd, hwptId } = dirtyHwpt(s);
      const bm = bitmap(1);
      return ioctl(
        t,
        iommufd.fd,
        IOMMU_HWPT_GET_DIRTY_BITMAP,
        encodeHwptGetDirtyBitmap({
          hwptId,
          flags: 4,
          iova: s.iova,
          length: 4n * PAGE,
          pageSize: PAGE,
          data: t.host.addressOf(bm),
        }),
      );
    },
  },
  {
    id: "iommufd.get-dirty.no-clear",
    rule: "GET_DIRTY_BITMAP with NO_CLEAR keeps the bits; without it the next read is empty; enabling clears stale bits",
    kernel: "io_pagetable.c iopt_read_and_clear_dirty_data, iopt_set_dirty_tracking -> iopt_clear_dirty_data",
    expected: { errno: null },
    skip: needs.iommuDirtyDma,
    run: async (t, s) => {
      const { iommufd, hwptId } = dirtyHwpt(s);
      iommufd.setDirtyTracking(hwptId, true);
      await t.dma!(s.iova + 2n * PAGE, 64n);
      const read = (noClear: boolean) => {
        const bm = bitmap(1);
        iommufd.getDirtyBitmap({
          hwptId,
          iova: s.iova,
          length: 16n * PAGE,
          pageSize: PAGE,
          bitmap: bm,
          noClear,
        });
        return bitmapWords(bm)[0];
      };
      const kept = read(true);
      const cleared = read(false);
      const after = read(false);
      await t.dma!(s.iova + 7n * PAGE, 64n);
      iommufd.setDirtyTracking(hwptId, false);
      iommufd.setDirtyTracking(hwptId, true);
      const stale = read(false);
      return attempt(() => ({ kept, cleared, after, stale }));
    },
  },
  {
    id: "iommufd.attach-group-and-cdev",
    rule: "The group path and the cdev path reach the same device, one at a time",
    kernel: "group.c / device_cdev.c: vfio_device_block_group",
    expected: { errno: null },
    skip: (h) => needs.iommufd(h) ?? needs.type1(h),
    run: (t, s) => {
      const g = Group.open(t.host, t.group);
      const status = g.getStatus();
      g.close();
      return attempt(() => {
        const { devId } = s.cdev();
        return { groupViable: status.viable, boundDevId: devId > 0 };
      });
    },
  },
];

// IOMMU dirty-tracking conformance: what `vfio-dirty check` asks of type1 and iommufd beyond the
// errno rules of type1.ts and iommufd.ts (the device written through a real DMA, a bitmap the
// caller already filled, the HW info capability against what HWPT allocation does).

import {
  encodeHwptAlloc,
  IOMMU_HW_CAP_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
} from "../uapi/index.ts";
import { decodeHwptAlloc } from "../uapi/iommufd.ts";
import { dirtyHwpt } from "./iommufd.ts";
import { attempt, bitmap, bitmapWords, errnoOf, needs, type Scenario } from "./scenario.ts";

const PAGE = 4096n;

export const iommuDirtyScenarios: Scenario[] = [
  {
    id: "type1.get-bitmap.after-dma",
    rule: "GET_BITMAP after the device wrote two pages of a 16-page mapping reports both",
    kernel: "vfio_iommu_type1.c vfio_iova_dirty_bitmap -> update_user_bitmap",
    expected: { errno: null },
    skip: needs.type1Dma,
    run: async (t, s) => {
      const { container } = s.groupDevice();
      const mem = s.memory(16n * PAGE);
      container.mapDma({ vaddr: mem.address, iova: s.iova, length: 16n * PAGE });
      container.startDirtyTracking();
      await t.dma!(s.iova + 2n * PAGE + 0x40n, 64n);
      await t.dma!(s.iova + 9n * PAGE + 0x40n, 64n);
      const bm = bitmap(1);
      return attempt(() => {
        container.getDirtyBitmap({ iova: s.iova, length: 16n * PAGE, pageSize: PAGE, bitmap: bm });
        return { bitmap: bitmapWords(bm) };
      });
    },
  },
  {
    id: "type1.get-bitmap.prefilled",
    rule: "GET_BITMAP into a bitmap the caller already filled: which of the caller's bits survive",
    kernel: "vfio_iommu_type1.c update_user_bitmap: copy_to_user of whole words",
    expected: { errno: null },
    skip: needs.type1,
    run: (_t, s) => {
      const { container } = s.type1();
      const mem = s.memory(4n * PAGE);
      container.mapDma({ vaddr: mem.address, iova: s.iova, length: 4n * PAGE });
      container.startDirtyTracking();
      const bm = bitmap(1, 0xa0);
      return attempt(() => {
        container.getDirtyBitmap({ iova: s.iova, length: 4n * PAGE, pageSize: PAGE, bitmap: bm });
        return { bitmap: bitmapWords(bm) };
      });
    },
  },
  {
    id: "iommufd.dirty.capability-and-alloc",
    rule: "GET_HW_INFO's IOMMU_HW_CAP_DIRTY_TRACKING and HWPT_ALLOC with DIRTY_TRACKING agree",
    kernel: "iommufd.h IOMMU_HW_CAP_DIRTY_TRACKING; hw_pagetable.c iommufd_hwpt_paging_alloc",
    expected: { errno: null },
    skip: needs.iommufd,
    run: (t, s) => {
      const { iommufd, device } = s.iommufdDevice();
      const capability =
        (iommufd.getHwInfo(device.devId).outCapabilities & BigInt(IOMMU_HW_CAP_DIRTY_TRACKING)) !== 0n;
      const ioasId = iommufd.ioasAlloc();
      const buf = encodeHwptAlloc({
        devId: device.devId,
        ptId: ioasId,
        flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
      });
      const errno = errnoOf(t.host.ioctl(iommufd.fd, IOMMU_HWPT_ALLOC, buf));
      if (errno === null) {
        const hwptId = decodeHwptAlloc(buf).outHwptId;
        s.defer(() => iommufd.destroy(hwptId));
      }
      return { errno: null, result: { capability, alloc: errno ?? "OK" } };
    },
  },
  {
    id: "iommufd.get-dirty.only-sets-bits",
    rule: "GET_DIRTY_BITMAP never clears bits already set in the caller's bitmap",
    kernel: "io_pagetable.c iopt_read_and_clear_dirty_data -> iova_bitmap_set: only sets bits",
    expected: { errno: null },
    skip: needs.iommuDirty,
    run: (_t, s) => {
      const { iommufd, hwptId } = dirtyHwpt(s);
      iommufd.setDirtyTracking(hwptId, true);
      const bm = bitmap(1, 0xa5);
      return attempt(() => {
        iommufd.getDirtyBitmap({ hwptId, iova: s.iova, length: 16n * PAGE, pageSize: PAGE, bitmap: bm });
        return { bitmap: bitmapWords(bm) };
      });
    },
  },
];

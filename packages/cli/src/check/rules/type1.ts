// Type1 dirty tracking rules: VFIO_IOMMU_DIRTY_PAGES and UNMAP with GET_DIRTY_BITMAP on a type1v2
// container, as include/uapi/linux/vfio.h and drivers/vfio/vfio_iommu_type1.c define them.

import { formatSizeShort } from "../../parse/size.ts";
import { bitList, type CheckRule, errnoIs, fail, ok, pass, wordBits } from "../rule.ts";

const T1 = "vfio_iommu_type1.c";
const DIRTY_PAGES = "vfio.h VFIO_IOMMU_DIRTY_PAGES";

/** The GET_BITMAP argument rules: each an EINVAL the kernel gives, by scenario suffix. */
const GET_BITMAP_EINVAL: readonly [string, string, string][] = [
  [
    "before-start",
    "GET_BITMAP before START is EINVAL",
    `${DIRTY_PAGES}: "If dirty pages logging is not enabled, an error will be returned."`,
  ],
  [
    "wrong-page-size",
    "GET_BITMAP at a page size other than the smallest IOMMU page is EINVAL",
    `${DIRTY_PAGES}: "This interface supports getting a bitmap of the smallest supported pgsize only"`,
  ],
  [
    "bitmap-too-small",
    "GET_BITMAP with a bitmap smaller than the range needs is EINVAL",
    `${T1} verify_bitmap_size: bitmap_size < DIRTY_BITMAP_BYTES(npages)`,
  ],
  [
    "bitmap-over-256mib",
    "GET_BITMAP asking for more than 256 MiB of bitmap is EINVAL",
    `${T1} verify_bitmap_size: bitmap_size > DIRTY_BITMAP_SIZE_MAX`,
  ],
  [
    "bisect",
    "GET_BITMAP over a range that cuts through a mapping is EINVAL",
    `${T1} vfio_iova_dirty_bitmap: dma->iova != iova`,
  ],
  [
    "overflow",
    "GET_BITMAP whose iova + size wraps is EINVAL",
    `${T1} vfio_iommu_type1_dirty_pages: range.iova + range.size < range.iova`,
  ],
  [
    "unaligned-iova",
    "GET_BITMAP at an IOVA not aligned to the smallest IOMMU page is EINVAL",
    `${T1} vfio_iommu_type1_dirty_pages: range.iova & (iommu_pgsize - 1)`,
  ],
];

export const type1Rules: readonly CheckRule[] = [
  {
    id: "type1.migration-capability",
    area: "type1",
    level: "MUST",
    title: "GET_INFO has the migration capability, with the smallest IOMMU page among its page sizes",
    source: `vfio.h VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION: "The existence of this capability indicates that IOMMU kernel driver supports dirty page logging."; ${T1} vfio_iommu_migration_build_caps`,
    scenario: "type1.info.capabilities",
    judge: ok((r) => {
      const m = r.migration;
      if (!m) return fail("no migration capability: this type1 has no dirty page logging");
      const sizes = BigInt(r.iovaPgsizes);
      const smallest = sizes & -sizes;
      return (BigInt(m.pgsizeBitmap) & smallest) !== 0n
        ? pass(
            `pgsize_bitmap ${m.pgsizeBitmap}, max_dirty_bitmap_size ${formatSizeShort(BigInt(m.maxDirtyBitmapSize))}${r.dmaAvail !== undefined ? `, ${r.dmaAvail} DMA mappings available` : ""}`,
          )
        : fail(`pgsize_bitmap ${m.pgsizeBitmap} lacks the smallest IOMMU page ${formatSizeShort(smallest)}`);
    }),
  },
  {
    id: "type1.dirty-pages.v1-container",
    area: "type1",
    level: "MUST",
    title: "DIRTY_PAGES on a type1 (v1) container is EACCES",
    source: `${T1} vfio_iommu_type1_dirty_pages: !iommu->v2`,
    scenario: "type1.dirty-pages.v1-container",
    judge: errnoIs("EACCES"),
  },
  {
    id: "type1.dirty-pages.one-flag",
    area: "type1",
    level: "MUST",
    title: "DIRTY_PAGES with START and STOP together is EINVAL",
    source: `${DIRTY_PAGES}: "Only one of the flags _START, _STOP and _GET may be specified at a time."`,
    scenario: "type1.dirty-pages.several-flags",
    judge: errnoIs("EINVAL"),
  },
  {
    id: "type1.dirty-pages.no-flags",
    area: "type1",
    level: "MUST",
    title: "DIRTY_PAGES with no flag is EINVAL",
    source: `${T1} vfio_iommu_type1_dirty_pages: falls through to -EINVAL`,
    scenario: "type1.dirty-pages.no-flags",
    judge: errnoIs("EINVAL"),
  },
  {
    id: "type1.dirty-pages.start-stop-twice",
    area: "type1",
    level: "MUST",
    title: "START twice and STOP twice all succeed (one tracking state)",
    source: `${T1} vfio_iommu_type1_dirty_pages: if (!iommu->dirty_page_tracking)`,
    scenario: "type1.dirty-pages.start-stop-idempotent",
    judge: (o) => (o.errno === null ? pass("all four succeed") : fail(`one of them failed: ${o.errno}`)),
  },
  ...GET_BITMAP_EINVAL.map(
    ([suffix, title, source]): CheckRule => ({
      id: `type1.get-bitmap.${suffix}`,
      area: "type1",
      level: "MUST",
      title,
      source,
      scenario: `type1.get-bitmap.${suffix}`,
      judge: errnoIs("EINVAL"),
    }),
  ),
  {
    id: "type1.get-bitmap.after-dma",
    area: "type1",
    level: "MUST",
    title: "GET_BITMAP reports the pages the device wrote",
    source: `${DIRTY_PAGES}: "returns the dirty pages bitmap for IOMMU container for a given IOVA range"`,
    scenario: "type1.get-bitmap.after-dma",
    judge: ok((r) => {
      const bits = wordBits(r.bitmap);
      return bits.includes(2) && bits.includes(9)
        ? pass(`writes to pages 2 and 9 reported (${bits.length} of 16 pages set)`)
        : fail(`writes to pages 2 and 9; reported ${bitList(bits)}`);
    }),
  },
  {
    id: "type1.get-bitmap.holes",
    area: "type1",
    level: "MUST",
    title: "GET_BITMAP over mappings with holes between: the mapped pages set, the holes untouched",
    source: `${T1} vfio_iova_dirty_bitmap: walks the mappings inside the range (update_user_bitmap)`,
    scenario: "type1.get-bitmap.holes",
    judge: ok((r) => {
      const bits = wordBits(r.bitmap);
      const holes = bits.filter((b) => [2, 3, 4, 8, 9].includes(b));
      const mapped = [0, 1, 5, 6, 7].filter((b) => !bits.includes(b));
      if (holes.length > 0) return fail(`${bitList(holes)} set for unmapped pages`);
      if (mapped.length > 0)
        return fail(
          `${bitList(mapped)} of mapped pages not set (a vfio-pci device may write anywhere it is mapped)`,
        );
      return pass("mapped pages 0-1, 5-7 set; holes 2-4, 8-9 untouched");
    }),
  },
  {
    id: "type1.get-bitmap.every-page",
    area: "type1",
    level: "INFO",
    title: "What GET_BITMAP reports for a device that wrote nothing, read twice",
    source: `${T1} update_user_bitmap: every page of a mapping when a group is not in pinned-page scope`,
    scenario: "type1.get-bitmap.every-page-every-time",
    judge: ok((r) =>
      pass(
        r.reads.every((w: string) => BigInt(w) === 7n)
          ? "every mapped page, on every read: type1 cannot see this device's writes (every sync sends all of guest RAM)"
          : `reads ${r.reads.join(", ")} of 3 mapped pages`,
      ),
    ),
  },
  {
    id: "type1.get-bitmap.prefilled",
    area: "type1",
    level: "INFO",
    title: "Whether GET_BITMAP keeps bits the caller had already set in its bitmap",
    source: `${DIRTY_PAGES}: "The user must provide a zeroed memory area for the bitmap memory"; ${T1} update_user_bitmap copies whole words`,
    scenario: "type1.get-bitmap.prefilled",
    judge: ok((r) =>
      pass(
        (BigInt(r.bitmap[0]) & 0xa0n) === 0xa0n
          ? "keeps the caller's bits"
          : "overwrites whole words: the caller's bits in them are gone (unlike DMA_LOGGING_REPORT); hand it a zeroed bitmap",
      ),
    ),
  },
  {
    id: "type1.unmap.dirty-bitmap",
    area: "type1",
    level: "MUST",
    title: "UNMAP with GET_DIRTY_BITMAP while tracking unmaps the range and reports its pages",
    source:
      'vfio.h VFIO_IOMMU_UNMAP_DMA: "A Bitmap of the pages in the range of unmapped size is returned in the user-provided vfio_bitmap.data."',
    scenario: "type1.unmap.with-dirty-bitmap",
    judge: ok((r) => {
      const bits = wordBits(r.bitmap);
      return BigInt(r.unmapped) === 5n * 4096n && [0, 1, 2, 3, 4].every((b) => bits.includes(b))
        ? pass("5 pages unmapped, all 5 reported")
        : fail(`unmapped ${r.unmapped} of 0x5000 bytes, reported ${bitList(bits)}`);
    }),
  },
  {
    id: "type1.unmap.dirty-while-not-tracking",
    area: "type1",
    level: "MUST",
    title: "UNMAP with GET_DIRTY_BITMAP while not tracking is EINVAL",
    source: `${T1} vfio_dma_do_unmap: !iommu->dirty_page_tracking`,
    scenario: "type1.unmap.dirty-while-not-tracking",
    judge: errnoIs("EINVAL"),
  },
  {
    id: "type1.unmap.dirty-with-all",
    area: "type1",
    level: "MUST",
    title: "UNMAP with GET_DIRTY_BITMAP and ALL is EINVAL",
    source: `${T1} vfio_iommu_type1_unmap_dma: GET_DIRTY_BITMAP with ALL`,
    scenario: "type1.unmap.dirty-with-all",
    judge: errnoIs("EINVAL"),
  },
  {
    id: "type1.unmap.dirty-with-vaddr",
    area: "type1",
    level: "MUST",
    title: "UNMAP with GET_DIRTY_BITMAP and VADDR is EINVAL",
    source: 'vfio.h VFIO_IOMMU_UNMAP_DMA, VADDR: "This cannot be combined with the get-dirty-bitmap flag."',
    scenario: "type1.unmap.dirty-with-vaddr",
    judge: errnoIs("EINVAL"),
  },
];

// iommufd HWPT dirty tracking rules: IOMMU_HWPT_SET_DIRTY_TRACKING and IOMMU_HWPT_GET_DIRTY_BITMAP
// as include/uapi/linux/iommufd.h and drivers/iommu/iommufd/ define them (the IOMMU driver's
// set_dirty_tracking and read_and_clear_dirty ops decide most of what they return).

import { bitList, type CheckRule, errnoIs, fail, ok, pass, wordBits } from "../rule.ts";

const H = "iommufd.h";
const GET_DIRTY = `${H} IOMMU_HWPT_GET_DIRTY_BITMAP`;

/** The bits of one "0x..." word of the NO_CLEAR scenario's reads. */
const bits = (word: string) => wordBits([word]);

export const iommufdRules: readonly CheckRule[] = [
  {
    id: "iommufd.dirty.capability",
    area: "iommufd",
    level: "MUST",
    title: "GET_HW_INFO's IOMMU_HW_CAP_DIRTY_TRACKING and HWPT_ALLOC with DIRTY_TRACKING agree",
    source: `${H} IOMMU_HW_CAP_DIRTY_TRACKING: "If available, it means the following APIs are supported: IOMMU_HWPT_GET_DIRTY_BITMAP IOMMU_HWPT_SET_DIRTY_TRACKING"; hw_pagetable.c iommufd_hwpt_paging_alloc`,
    scenario: "iommufd.dirty.capability-and-alloc",
    judge: ok((r) => {
      if (r.capability && r.alloc === "OK") return pass("capability reported, dirty-tracking HWPT allocated");
      if (!r.capability && r.alloc === "EOPNOTSUPP")
        return pass(
          "no capability, and HWPT_ALLOC with DIRTY_TRACKING is EOPNOTSUPP (the dirty rules are skipped)",
        );
      return fail(
        `capability ${r.capability ? "reported" : "absent"}, but HWPT_ALLOC with DIRTY_TRACKING: ${r.alloc}`,
      );
    }),
  },
  {
    id: "iommufd.set-dirty.unknown-flags",
    area: "iommufd",
    level: "MUST",
    title: "SET_DIRTY_TRACKING with an unknown flag is EOPNOTSUPP",
    source: "hw_pagetable.c iommufd_hwpt_set_dirty_tracking: flags & ~IOMMU_HWPT_DIRTY_TRACKING_ENABLE",
    scenario: "iommufd.set-dirty.unknown-flags",
    judge: errnoIs("EOPNOTSUPP"),
  },
  {
    id: "iommufd.get-dirty.unaligned",
    area: "iommufd",
    level: "MUST",
    title: "GET_DIRTY_BITMAP at an IOVA not aligned to page_size is EINVAL",
    source: "io_pagetable.c iommufd_check_iova_range: iova & (page_size - 1)",
    scenario: "iommufd.get-dirty.unaligned",
    judge: errnoIs("EINVAL"),
  },
  {
    id: "iommufd.get-dirty.unknown-flags",
    area: "iommufd",
    level: "MUST",
    title: "GET_DIRTY_BITMAP with an unknown flag is EOPNOTSUPP",
    source: "hw_pagetable.c iommufd_hwpt_get_dirty_bitmap: flags & ~IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR",
    scenario: "iommufd.get-dirty.unknown-flags",
    judge: errnoIs("EOPNOTSUPP"),
  },
  {
    id: "iommufd.get-dirty.contains-written",
    area: "iommufd",
    level: "MUST",
    title: "GET_DIRTY_BITMAP reports the page the device wrote",
    source: `${GET_DIRTY}: "Walk the IOMMU pagetables for a given IOVA range to return a bitmap with the dirty IOVAs."`,
    scenario: "iommufd.get-dirty.no-clear",
    judge: ok((r) =>
      bits(r.kept).includes(2)
        ? pass("a write to page 2 reported")
        : fail(`a write to page 2; reported ${bitList(bits(r.kept))}`),
    ),
  },
  {
    id: "iommufd.get-dirty.no-clear",
    area: "iommufd",
    level: "MUST",
    title: "A read with NO_CLEAR leaves the dirty bits for the next read",
    source: `${H} IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR: "Just read the PTEs without clearing any dirty bits metadata."`,
    scenario: "iommufd.get-dirty.no-clear",
    judge: ok((r) =>
      bits(r.cleared).includes(2)
        ? pass("page 2 still dirty after a NO_CLEAR read")
        : fail("page 2 was cleared by a NO_CLEAR read: an unmap after it would lose the page"),
    ),
  },
  {
    id: "iommufd.get-dirty.clears",
    area: "iommufd",
    level: "MUST",
    title: "A plain read clears what it reported: the next read is empty",
    source: `${GET_DIRTY}: "In doing so it will also by default clear any dirty bit metadata set in the IOPTE."`,
    scenario: "iommufd.get-dirty.no-clear",
    judge: ok((r) =>
      bits(r.after).length === 0
        ? pass("the read after it is empty")
        : fail(`the read after it gives ${bitList(bits(r.after))} again`),
    ),
  },
  {
    id: "iommufd.set-dirty.enable-clears",
    area: "iommufd",
    level: "MUST",
    title: "Enabling tracking again clears dirty bits left from before",
    source:
      "io_pagetable.c iopt_set_dirty_tracking: enabling clears the IOPTEs' dirty bits first (iopt_clear_dirty_data)",
    scenario: "iommufd.get-dirty.no-clear",
    judge: ok((r) =>
      bits(r.stale).length === 0
        ? pass("a write before the re-enable is not reported after it")
        : fail(`a write from before the re-enable is reported after it: ${bitList(bits(r.stale))}`),
    ),
  },
  {
    id: "iommufd.get-dirty.only-sets-bits",
    area: "iommufd",
    level: "MUST",
    title: "GET_DIRTY_BITMAP never clears bits already set in the caller's bitmap",
    source: `${GET_DIRTY}: "@data: bitmap where to set the dirty bits"; io_pagetable.c iopt_read_and_clear_dirty_data sets bits with iova_bitmap_set`,
    scenario: "iommufd.get-dirty.only-sets-bits",
    judge: ok((r) => {
      const kept = 0xa5a5_a5a5_a5a5_a5a5n;
      return (BigInt(r.bitmap[0]) & kept) === kept
        ? pass("a bitmap filled with 0xa5 kept every bit")
        : fail(`a bitmap filled with 0xa5 came back ${r.bitmap[0]}`);
    }),
  },
];

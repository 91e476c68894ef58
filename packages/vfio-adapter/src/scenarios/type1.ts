// Type1 container rules (drivers/vfio/container.c, drivers/vfio/group.c,
// drivers/vfio/vfio_iommu_type1.c). Each scenario is one rule; see scenario.ts for the contract.

import {
  encodeDeviceName,
  encodeDirtyBitmap,
  encodeDmaMap,
  encodeDmaUnmap,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_IOMMU_DIRTY_PAGES,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU,
  VFIO_TYPE1_IOMMU,
} from "../uapi/index.ts";
import {
  attempt,
  bitmap,
  bitmapWords,
  errnoOf,
  ioctl,
  needs,
  type Outcome,
  type Scenario,
  type ScenarioTarget,
  type Session,
  type TargetCapabilities,
} from "./scenario.ts";

const RW = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
const PAGE = 4096n;
const MIB = 1n << 20n;
/** A range from 2^64 - 2 pages: its iova + size wraps to 0. */
const TOP = 0xffff_ffff_ffff_e000n;
const SINCE_619 = "vfio/type1: sanitize for overflow using check_*_overflow (6.19)";

/** VFIO_IOMMU_MAP_DMA with these fields, as sent (bad ones included). */
function mapDma(t: ScenarioTarget, fd: number, fields: Parameters<typeof encodeDmaMap>[0]): Outcome {
  return ioctl(t, fd, VFIO_IOMMU_MAP_DMA, encodeDmaMap(fields));
}

/** Maps `length` bytes of fresh memory at `iova`. */
function mapFresh(
  s: Session,
  c: { mapDma(a: { vaddr: bigint; iova: bigint; length: bigint }): void },
  iova: bigint,
  length: bigint,
) {
  const mem = s.memory(length);
  c.mapDma({ vaddr: mem.address, iova, length });
  return mem;
}

/** A GET_BITMAP request for [iova, iova + length) into `bm`. */
function getBitmap(
  s: Session,
  fd: number,
  iova: bigint,
  length: bigint,
  bm: Uint8Array,
  pageSize = PAGE,
  bitmapLength?: bigint,
) {
  return ioctl(
    s.t,
    fd,
    VFIO_IOMMU_DIRTY_PAGES,
    encodeDirtyBitmap({
      flags: VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
      get: {
        iova,
        length,
        bitmap: {
          pageSize,
          bitmapLength: bitmapLength ?? BigInt(bm.byteLength),
          data: s.t.host.addressOf(bm),
        },
      },
    }),
  );
}

export const type1Scenarios: Scenario[] = [
  {
    id: "type1.set-iommu.before-group",
    rule: "VFIO_SET_IOMMU on a container without a group is EINVAL",
    kernel: "container.c vfio_ioctl_set_iommu: list_empty(&container->group_list)",
    expected: { errno: "EINVAL" },
    skip: needs.type1,
    run: (t, s) => ioctl(t, s.container().fd, VFIO_SET_IOMMU, 3),
  },
  {
    id: "type1.set-iommu.unknown-type",
    rule: "VFIO_SET_IOMMU with a type no driver supports is ENODEV",
    kernel: "container.c vfio_ioctl_set_iommu: no driver claimed the type",
    expected: { errno: "ENODEV" },
    skip: needs.type1,
    run: (t, s) => ioctl(t, s.type1({ setIommu: false }).container.fd, VFIO_SET_IOMMU, 42),
  },
  {
    id: "type1.set-iommu.twice",
    rule: "A second VFIO_SET_IOMMU is EINVAL",
    kernel: "container.c vfio_ioctl_set_iommu: container->iommu_driver already set",
    expected: { errno: "EINVAL" },
    skip: needs.type1,
    run: (t, s) => ioctl(t, s.type1().container.fd, VFIO_SET_IOMMU, 3),
  },
  {
    id: "type1.get-device-fd.before-iommu",
    rule: "VFIO_GROUP_GET_DEVICE_FD before the container's IOMMU is set is EINVAL",
    kernel: "group.c vfio_device_group_open -> vfio_device_assign_container: no iommu_driver",
    expected: { errno: "EINVAL" },
    skip: needs.type1,
    run: (t, s) => {
      const { group } = s.type1({ setIommu: false });
      const rc = t.host.ioctl(group.fd, VFIO_GROUP_GET_DEVICE_FD, encodeDeviceName(t.bdf));
      if (rc >= 0) s.defer(() => t.host.close(rc));
      return { errno: errnoOf(rc) };
    },
  },
  {
    id: "type1.get-device-fd.unknown-name",
    rule: "VFIO_GROUP_GET_DEVICE_FD with a name not in the group is ENODEV",
    kernel: "group.c vfio_device_get_from_name: no match",
    expected: { errno: "ENODEV" },
    skip: needs.type1,
    run: (t, s) => ioctl(t, s.type1().group.fd, VFIO_GROUP_GET_DEVICE_FD, encodeDeviceName("0000:ff:1f.7")),
  },
  {
    id: "type1.group-status.attached",
    rule: "VFIO_GROUP_GET_STATUS after SET_CONTAINER and SET_IOMMU reports VIABLE and CONTAINER_SET",
    kernel: "group.c vfio_group_ioctl_get_status",
    expected: { errno: null },
    skip: needs.type1,
    run: (_t, s) => attempt(() => s.type1().group.getStatus()),
  },
  {
    id: "type1.info.capabilities",
    rule: "VFIO_IOMMU_GET_INFO reports page sizes, the migration capability (4 KiB, 256 MiB) and DMA mappings available",
    kernel: "vfio_iommu_type1.c vfio_iommu_type1_get_info, vfio_iommu_migration_build_caps",
    expected: { errno: null },
    skip: needs.type1,
    run: (_t, s) =>
      attempt(() => {
        const { info, caps } = s.type1().container.getInfo();
        return {
          flags: info.flags,
          iovaPgsizes: info.iovaPgsizes,
          migration: caps.migration,
          dmaAvail: caps.dmaAvail,
        };
      }),
  },
  {
    id: "type1.map.unaligned",
    rule: "VFIO_IOMMU_MAP_DMA with an IOVA not aligned to the smallest IOMMU page is EINVAL",
    kernel: "vfio_iommu_type1.c vfio_dma_do_map: (size | iova | vaddr) & (pgsize - 1)",
    expected: { errno: "EINVAL" },
    skip: needs.type1,
    run: (t, s) => {
      const { container } = s.type1();
      const mem = s.memory(2n * PAGE);
      return mapDma(t, container.fd, { flags: RW, vaddr: mem.address, iova: s.iova + 0x800n, length: PAGE });
    },
  },
  {
    id: "type1.map.zero-length",
    rule: "VFIO_IOMMU_MAP_DMA of 0 bytes is EINVAL",
    kernel: "vfio_iommu_type1.c vfio_dma_do_map: !size",
    expected: { errno: "EINVAL" },
    skip: needs.type1,
    run: (t, s) => {
      const { container } = s.type1();
      const mem = s.memory(PAGE);
      return mapDma(t, container.fd, { flags: RW, vaddr: mem.address, iova: s.iova, length: 0n });
    },
  },
  {
    id: "type1.map.no-permission",
    rule: "VFIO_IOMMU_MAP_DMA without READ or WRITE (and without VADDR) is EINVAL",
    kernel: "vfio_iommu_type1.c vfio_dma_do_map: !prot && !set_vaddr",
    expected: { errno: "EINVAL" },
    skip: needs.type1,
    run: (t, s) => {
      const { container } = s.type1();
      const mem = s.memory(PAGE);
      return mapDma(t, container.fd, { flags: 0, vaddr: mem.address, iova: s.iova, length: PAGE });
    },
  },
  {
    id: "type1.map.overlap",
    rule: "VFIO_IOMMU_MAP_DMA over an existing mapping is EEXIST",
    kernel: "vfio_iommu_type1.c vfio_dma_do_map: vfio_find_dma() found one",
    expected: { errno: "EEXIST" },
    skip: needs.type1,
    run: (t, s) => {
      const { container } = s.type1();
      const mem = mapFresh(s, container, s.iova, 2n * PAGE);
      return mapDma(t, container.fd, {
        flags: RW,
        vaddr: mem.address,
        iova: s.iova + PAGE,
        length: 2n * PAGE,
      });
    },
  },
  {
    id: "type1.map.unowned-memory",
    rule: "VFIO_IOMMU_MAP_DMA of memory the process does not own is EFAULT (pinning fails)",
    kernel: "vfio_iommu_type1.c vfio_pin_map_dma -> vaddr_get_pfns: -EFAULT",
    expected: { errno: "EFAULT" },
    skip: needs.type1,
    run: (t, s) => {
      const { container } = s.type1();
      // The first page of the address space is never mapped (mmap_min_addr).
      return mapDma(t, container.fd, { flags: RW, vaddr: PAGE, iova: s.iova, length: PAGE });
    },
  },
  {
    id: "type1.map.entry-limit",
    rule: "VFIO_IOMMU_MAP_DMA beyond dma_entry_limit (65535 mappings) is ENOSPC",
    kernel: "vfio_iommu_type1.c vfio_dma_do_map: !iommu->dma_avail",
    expected: { errno: "ENOSPC" },
    skip: needs.type1,
    run: (t, s) => {
      const { container } = s.type1();
      const avail = container.getInfo().caps.dmaAvail ?? 65535;
      const mem = s.memory(PAGE);
      // Every mapping uses the same page at its own IOVA; each is one vfio_dma entry.
      for (let i = 0; i < avail; i++)
        container.mapDma({ vaddr: mem.address, iova: s.iova + BigInt(i) * PAGE, length: PAGE });
      s.defer(() => container.unmapDma({ iova: 0n, length: 0n, flags: VFIO_DMA_UNMAP_FLAG_ALL }));
      const next = s.iova + BigInt(avail) * PAGE;
      return mapDma(t, container.fd, { flags: RW, vaddr: mem.address, iova: next, length: PAGE });
    },
  },
  {
    id: "type1.unmap.bisect",
    rule: "VFIO_IOMMU_UNMAP_DMA that cuts through a mapping is EINVAL on a v2 container",
    kernel: "vfio_iommu_type1.c vfio_dma_do_unmap: iommu->v2 and dma->iova != iova",
    expected: { errno: "EINVAL" },
    skip: needs.type1,
    run: (t, s) => {
      const { container } = s.type1();
      mapFresh(s, container, s.iova, 4n * PAGE);
      return ioctl(
        t,
        container.fd,
        VFIO_IOMMU_UNMAP_DMA,
        encodeDmaUnmap({ flags: 0, iova: s.iova + PAGE, length: PAGE }),
      );
    },
  },
  {
    id: "type1.unmap.all",
    rule: "VFIO_IOMMU_UNMAP_DMA with FLAG_ALL (iova 0, size 0) unmaps everything and reports the bytes",
    kernel: "vfio_iommu_type1.c vfio_dma_do_unmap: unmap_all",
    expected: { errno: null },
    skip: needs.type1,
    run: (_t, s) => {
      const { container } = s.type1();
      mapFresh(s, container, s.iova, 2n * PAGE);
      mapFresh(s, container, s.iova + MIB, 3n * PAGE);
      return attempt(() => container.unmapDma({ iova: 0n, length: 0n, flags: VFIO_DMA_UNMAP_FLAG_ALL }));
    },
  },
  {
    id: "type1.unmap.dirty-while-not-tracking",
    rule: "VFIO_IOMMU_UNMAP_DMA with GET_DIRTY_BITMAP while dirty tracking is off is EINVAL",
    kernel: "vfio_iommu_type1.c vfio_dma_do_unmap: !iommu->dirty_page_tracking",
    expected: { errno: "EINVAL" },
    skip: needs.type1,
    run: (t, s) => {
      const { container } = s.type1();
      mapFresh(s, container, s.iova, 4n * PAGE);
      const bm = bitmap(1);
      return ioctl(
        t,
        container.fd,
        VFIO_IOMMU_UNMAP_DMA,
        encodeDmaUnmap({
          flags: VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
          iova: s.iova,
          length: 4n * PAGE,
          bitmap: { pageSize: PAGE, bitmapLength: 8n, data: t.host.addressOf(bm) },
        }),
      );
    },
  },
  ...[
    ["all", VFIO_DMA_UNMAP_FLAG_ALL],
    ["vaddr", VFIO_DMA_UNMAP_FLAG_VADDR],
  ].map(
    ([name, flag]): Scenario => ({
      id: `type1.unmap.dirty-with-${name}`,
      rule: `VFIO_IOMMU_UNMAP_DMA with GET_DIRTY_BITMAP and ${String(name).toUpperCase()} is EINVAL`,
      kernel: "vfio_iommu_type1.c vfio_iommu_type1_unmap_dma: GET_DIRTY_BITMAP with ALL or VADDR",
      expected: { errno: "EINVAL" },
      skip: needs.type1,
      run: (t, s) => {
        const { container } = s.type1();
        mapFresh(s, container, s.iova, 4n * PAGE);
        container.startDirtyTracking();
        const bm = bitmap(1);
        return ioctl(
          t,
          container.fd,
          VFIO_IOMMU_UNMAP_DMA,
          encodeDmaUnmap({
            flags: VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | (flag as number),
            iova: s.iova,
            length: 4n * PAGE,
            bitmap: { pageSize: PAGE, bitmapLength: 8n, data: t.host.addressOf(bm) },
          }),
        );
      },
    }),
  ),
  {
    id: "type1.unmap.with-dirty-bitmap",
    rule: "VFIO_IOMMU_UNMAP_DMA with GET_DIRTY_BITMAP while tracking unmaps and reports every page of the mapping",
    kernel: "vfio_iommu_type1.c vfio_dma_do_unmap -> update_user_bitmap",
    expected: { errno: null },
    skip: needs.type1,
    run: (_t, s) => {
      const { container } = s.type1();
      mapFresh(s, container, s.iova, 5n * PAGE);
      container.startDirtyTracking();
      const bm = bitmap(1);
      return attempt(() => {
        const unmapped = container.unmapDmaWithDirtyBitmap({
          iova: s.iova,
          length: 5n * PAGE,
          pageSize: PAGE,
          bitmap: bm,
        });
        return { unmapped, bitmap: bm };
      });
    },
  },
  {
    id: "type1.dirty-pages.v1-container",
    rule: "VFIO_IOMMU_DIRTY_PAGES on a type1 (v1) container is EACCES",
    kernel: "vfio_iommu_type1.c vfio_iommu_type1_dirty_pages: !iommu->v2",
    expected: { errno: "EACCES" },
    skip: needs.type1,
    run: (t, s) =>
      ioctl(
        t,
        s.type1({ iommuType: VFIO_TYPE1_IOMMU }).container.fd,
        VFIO_IOMMU_DIRTY_PAGES,
        encodeDirtyBitmap({ flags: VFIO_IOMMU_DIRTY_PAGES_FLAG_START }),
      ),
  },
  {
    id: "type1.dirty-pages.several-flags",
    rule: "VFIO_IOMMU_DIRTY_PAGES with START and STOP together is EINVAL",
    kernel: "vfio_iommu_type1.c vfio_iommu_type1_dirty_pages: __ffs(flags) != __fls(flags)",
    expected: { errno: "EINVAL" },
    skip: needs.type1,
    run: (t, s) =>
      ioctl(
        t,
        s.type1().container.fd,
        VFIO_IOMMU_DIRTY_PAGES,
        encodeDirtyBitmap({ flags: VFIO_IOMMU_DIRTY_PAGES_FLAG_START | VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP }),
      ),
  },
  {
    id: "type1.dirty-pages.no-flags",
    rule: "VFIO_IOMMU_DIRTY_PAGES with no flag is EINVAL",
    kernel: "vfio_iommu_type1.c vfio_iommu_type1_dirty_pages: falls through to -EINVAL",
    expected: { errno: "EINVAL" },
    skip: needs.type1,
    run: (t, s) => ioctl(t, s.type1().container.fd, VFIO_IOMMU_DIRTY_PAGES, encodeDirtyBitmap({ flags: 0 })),
  },
  {
    id: "type1.dirty-pages.start-stop-idempotent",
    rule: "START twice and STOP twice both succeed (the kernel keeps one tracking state)",
    kernel: "vfio_iommu_type1.c vfio_iommu_type1_dirty_pages: if (!iommu->dirty_page_tracking)",
    expected: { errno: null },
    skip: needs.type1,
    run: (t, s) => {
      const fd = s.type1().container.fd;
      const rcs = [
        VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
        VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
        VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
        VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
      ].map((flags) => t.host.ioctl(fd, VFIO_IOMMU_DIRTY_PAGES, encodeDirtyBitmap({ flags })));
      return { errno: errnoOf(Math.min(0, ...rcs)), result: rcs };
    },
  },
  ...getBitmapRules(),
  ...overflowRules(),
  {
    id: "type1.get-bitmap.holes",
    rule: "GET_BITMAP over several whole mappings with holes between succeeds: mapped pages dirty, holes untouched",
    kernel: "vfio_iommu_type1.c vfio_iova_dirty_bitmap: walks the mappings inside the range",
    expected: { errno: null },
    skip: needs.type1,
    run: (_t, s) => {
      const { container } = s.type1();
      // Mappings at pages 0-1 and 5-7 of a 10-page window, so the hole (2-4) and tail (8-9) show.
      mapFresh(s, container, s.iova, 2n * PAGE);
      mapFresh(s, container, s.iova + 5n * PAGE, 3n * PAGE);
      container.startDirtyTracking();
      const bm = bitmap(1);
      return attempt(() => {
        container.getDirtyBitmap({ iova: s.iova, length: 10n * PAGE, pageSize: PAGE, bitmap: bm });
        return { bitmap: bitmapWords(bm) };
      });
    },
  },
  {
    id: "type1.get-bitmap.every-page-every-time",
    rule: "Type1 reports every page of a mapping dirty on every read when a group is not in pinned-page scope",
    kernel: "vfio_iommu_type1.c update_user_bitmap: num_non_pinned_groups && dma->iommu_mapped",
    expected: { errno: null },
    skip: needs.type1,
    run: (_t, s) => {
      const { container } = s.type1();
      mapFresh(s, container, s.iova, 3n * PAGE);
      container.startDirtyTracking();
      return attempt(() => {
        const reads = [0, 1].map(() => {
          const bm = bitmap(1);
          container.getDirtyBitmap({ iova: s.iova, length: 3n * PAGE, pageSize: PAGE, bitmap: bm });
          return bitmapWords(bm)[0];
        });
        return { reads };
      });
    },
  },
];

/**
 * The wrap checks, which 6.19 moved to check_add_overflow: EINVAL before, EOVERFLOW from then on
 * (and a range ending exactly at 2^64 became legal). One scenario per answer, each skipped on the
 * kernels that give the other.
 */
function overflowRules(): Scenario[] {
  const before = (h: TargetCapabilities) =>
    needs.type1(h) ?? (h.type1Overflow ? "the kernel answers EOVERFLOW (6.19+)" : undefined);
  const since = (h: TargetCapabilities) =>
    needs.type1(h) ?? (h.type1Overflow ? undefined : "the kernel answers EINVAL (before 6.19)");
  const cases: [id: string, what: string, fn: string, send: (t: ScenarioTarget, s: Session) => Outcome][] = [
    [
      "type1.map.overflow",
      "VFIO_IOMMU_MAP_DMA whose iova + size wraps",
      "vfio_dma_do_map",
      (t, s) => {
        const { container } = s.type1();
        const mem = s.memory(4n * PAGE);
        return mapDma(t, container.fd, { flags: RW, vaddr: mem.address, iova: TOP, length: 4n * PAGE });
      },
    ],
    [
      "type1.unmap.overflow",
      "VFIO_IOMMU_UNMAP_DMA whose iova + size wraps",
      "vfio_dma_do_unmap",
      (t, s) =>
        ioctl(
          t,
          s.type1().container.fd,
          VFIO_IOMMU_UNMAP_DMA,
          encodeDmaUnmap({ flags: 0, iova: TOP, length: 4n * PAGE }),
        ),
    ],
    [
      "type1.get-bitmap.overflow",
      "GET_BITMAP whose iova + size wraps",
      "vfio_iommu_type1_dirty_pages",
      (_t, s) => {
        const { container } = s.type1();
        mapFresh(s, container, s.iova, 4n * PAGE);
        container.startDirtyTracking();
        return getBitmap(s, container.fd, TOP, 4n * PAGE, bitmap(1));
      },
    ],
  ];
  return [
    ...cases.flatMap(([id, what, fn, send]): Scenario[] => [
      {
        id,
        rule: `${what} is EINVAL (before 6.19)`,
        kernel: `vfio_iommu_type1.c ${fn}: iova + size - 1 < iova`,
        expected: { errno: "EINVAL" },
        skip: before,
        run: send,
      },
      {
        id: `${id}-6.19`,
        rule: `${what} is EOVERFLOW (6.19+)`,
        kernel: `vfio_iommu_type1.c ${fn}: check_add_overflow (${SINCE_619})`,
        expected: { errno: "EOVERFLOW" },
        skip: since,
        run: send,
      },
    ]),
    {
      id: "type1.get-bitmap.to-top-6.19",
      rule: "GET_BITMAP of a range that ends exactly at 2^64 (no mapping there) succeeds (6.19+)",
      kernel: `vfio_iommu_type1.c vfio_iommu_type1_dirty_pages: check_add_overflow(iova, size - 1) (${SINCE_619})`,
      expected: { errno: null },
      skip: since,
      run: (_t, s) => {
        const { container } = s.type1();
        mapFresh(s, container, s.iova, 4n * PAGE);
        container.startDirtyTracking();
        return getBitmap(s, container.fd, TOP, 2n * PAGE, bitmap(1));
      },
    },
  ];
}

/** The GET_BITMAP argument rules, each with its own bad field. */
function getBitmapRules(): Scenario[] {
  type Case = [
    id: string,
    rule: string,
    kernel: string,
    send: (s: Session, fd: number) => ReturnType<typeof ioctl>,
    start?: boolean,
  ];
  const cases: Case[] = [
    [
      "before-start",
      "GET_BITMAP before START is EINVAL",
      "vfio_iommu_type1_dirty_pages: !iommu->dirty_page_tracking",
      (s, fd) => getBitmap(s, fd, s.iova, 4n * PAGE, bitmap(1)),
      false,
    ],
    [
      "wrong-page-size",
      "GET_BITMAP at a page size other than the smallest IOMMU page is EINVAL",
      "range.bitmap.pgsize != iommu_pgsize",
      (s, fd) => getBitmap(s, fd, s.iova, 4n * PAGE, bitmap(1), 8192n),
    ],
    [
      "bitmap-too-small",
      "GET_BITMAP with a bitmap smaller than the range needs is EINVAL",
      "verify_bitmap_size: bitmap_size < DIRTY_BITMAP_BYTES(npages)",
      (s, fd) => getBitmap(s, fd, s.iova, 65n * 4n * PAGE, bitmap(2), PAGE, 8n),
    ],
    [
      "bitmap-over-256mib",
      "GET_BITMAP asking for more than 256 MiB of bitmap is EINVAL",
      "verify_bitmap_size: bitmap_size > DIRTY_BITMAP_SIZE_MAX",
      (s, fd) => getBitmap(s, fd, s.iova, 4n * PAGE, bitmap(1), PAGE, (256n << 20n) + 8n),
    ],
    [
      "bisect",
      "GET_BITMAP over a range that cuts through a mapping is EINVAL",
      "vfio_iova_dirty_bitmap: dma->iova != iova",
      (s, fd) => getBitmap(s, fd, s.iova + PAGE, 2n * PAGE, bitmap(1)),
    ],
    [
      "unaligned-iova",
      "GET_BITMAP at an unaligned IOVA is EINVAL",
      "range.iova & (iommu_pgsize - 1)",
      (s, fd) => getBitmap(s, fd, s.iova + 0x200n, 4n * PAGE, bitmap(1)),
    ],
  ];
  return cases.map(([id, rule, kernel, send, start = true]) => ({
    id: `type1.get-bitmap.${id}`,
    rule,
    kernel: `vfio_iommu_type1.c ${kernel}`,
    expected: { errno: "EINVAL" },
    skip: needs.type1,
    run: (_t, s) => {
      const { container } = s.type1();
      mapFresh(s, container, s.iova, 4n * PAGE);
      if (start) container.startDirtyTracking();
      return send(s, container.fd);
    },
  }));
}

// iommufd helpers for the scenarios on the test kernels built here (6.12, 7.3): IOAS set-up,
// dirty bitmap reads, and the IOMMUFD_TEST self-test commands (drivers/iommu/iommufd/
// iommufd_test.h, built in with CONFIG_IOMMUFD_TEST) that create a mock device on a mock IOMMU
// with dirty tracking and mark its pages dirty, which gives the tests their ground truth.
// From 6.19 the mock's page table is the generic AMDv1 one (iommupt), with a huge-page format.

import { type Host, type MappedMemory, uapi } from "@vfio-dirty/vfio-adapter";
import koffi from "koffi";
import { ioctlErrno, ioctlOk, setBits } from "./vfio.ts";

/** IOMMU_TEST_CMD = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 32). */
export const IOMMU_TEST_CMD = uapi._IO(uapi.IOMMUFD_TYPE, uapi.IOMMUFD_CMD_BASE + 32);
const IOMMU_TEST_OP_MOCK_DOMAIN = 2;
const IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE = 10;
const IOMMU_TEST_OP_DIRTY = 13;
/** sizeof(struct iommu_test_cmd): header 16, union 48 (the dirty member), last, padding. */
const SIZEOF_IOMMU_TEST_CMD = 72;
/** The mock IOMMU's IOVA aperture and page size (selftest.c: MOCK_APERTURE_START, MOCK_IO_PAGE_SIZE). */
export const MOCK_APERTURE_START = 1n << 24n;
export const MOCK_IO_PAGE_SIZE = 2048n;
/** MOCK_HUGE_PAGE_SIZE (7.x iommufd_test.h): 512 mock entries, the huge format's leaf. */
export const MOCK_HUGE_PAGE_SIZE = 512n * MOCK_IO_PAGE_SIZE;
export const IOMMU_HW_INFO_TYPE_SELFTEST = 0xfeedbeef;
/** IOMMU_HWPT_DATA_SELFTEST and struct iommu_hwpt_selftest's page table formats (7.x). */
const IOMMU_HWPT_DATA_SELFTEST = 0xdead;
export const MOCK_IOMMUPT_DEFAULT = 0;
export const MOCK_IOMMUPT_HUGE = 1;
/** IOMMU_OPTION = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_OPTION); struct iommu_option is 24 bytes. */
const IOMMU_OPTION = uapi._IO(uapi.IOMMUFD_TYPE, uapi.IOMMUFD_CMD_OPTION);
const IOMMU_OPTION_HUGE_PAGES = 1;
const IOMMU_OPTION_OP_SET = 0;

export function ioasAlloc(host: Host, iommufd: number): number {
  const b = uapi.encodeIoasAlloc();
  ioctlOk(host, iommufd, uapi.IOMMU_IOAS_ALLOC, b, "IOMMU_IOAS_ALLOC");
  return uapi.decodeIoasAlloc(b).outIoasId;
}

export function ioasMapFixed(
  host: Host,
  iommufd: number,
  ioasId: number,
  iova: bigint,
  userVa: bigint,
  length: bigint,
): void {
  const flags = uapi.IOMMU_IOAS_MAP_FIXED_IOVA | uapi.IOMMU_IOAS_MAP_READABLE | uapi.IOMMU_IOAS_MAP_WRITEABLE;
  ioctlOk(
    host,
    iommufd,
    uapi.IOMMU_IOAS_MAP,
    uapi.encodeIoasMap({ flags, ioasId, userVa, length, iova }),
    "IOMMU_IOAS_MAP",
  );
}

export function hwInfo(host: Host, iommufd: number, devId: number): uapi.HwInfo {
  const b = uapi.encodeHwInfo({ devId });
  ioctlOk(host, iommufd, uapi.IOMMU_GET_HW_INFO, b, "IOMMU_GET_HW_INFO");
  return uapi.decodeHwInfo(b);
}

/**
 * IOMMU_OPTION_HUGE_PAGES on an IOAS: off maps in PAGE_SIZE units even over contiguous memory
 * (what the kernel's own dirty selftests do on the default format, where an entry of a larger
 * size is dirty as a whole).
 */
export function ioasHugePages(host: Host, iommufd: number, ioasId: number, on: boolean): void {
  const b = new Uint8Array(24);
  const v = new DataView(b.buffer);
  v.setUint32(0, 24, true);
  v.setUint32(4, IOMMU_OPTION_HUGE_PAGES, true);
  v.setUint16(8, IOMMU_OPTION_OP_SET, true);
  v.setUint32(12, ioasId, true);
  v.setBigUint64(16, on ? 1n : 0n, true);
  ioctlOk(host, iommufd, IOMMU_OPTION, b, "IOMMU_OPTION(HUGE_PAGES)");
}

/** HWPT alloc of a mock page table of `format` (struct iommu_hwpt_selftest); { errno, hwptId }. */
export function hwptAllocMock(
  host: Host,
  iommufd: number,
  devId: number,
  ptId: number,
  flags: number,
  format: number,
) {
  const data = new Uint8Array(8);
  new DataView(data.buffer).setUint32(4, format, true); // iotlb 0, pagetable_type
  const b = uapi.encodeHwptAlloc({
    devId,
    ptId,
    flags,
    dataType: IOMMU_HWPT_DATA_SELFTEST,
    dataLen: data.length,
    dataUptr: host.addressOf(data),
  });
  const errno = ioctlErrno(host, iommufd, uapi.IOMMU_HWPT_ALLOC, b);
  return { errno, hwptId: uapi.decodeHwptAlloc(b).outHwptId };
}

/**
 * `count` 2 MiB hugetlbfs pages, populated (physically contiguous within each page, so the mock's
 * huge format can map them with huge entries). Reserves them in /proc/sys/vm/nr_hugepages first.
 * The host's mmapAnonymous has no MAP_HUGETLB: plain koffi here.
 */
export function mmapHuge(count: number): MappedMemory & { unmap(): void } {
  const length = BigInt(count) << 21n;
  const libc = koffi.load("libc.so.6");
  const mmap = libc.func(
    "intptr_t mmap(intptr_t addr, size_t length, int prot, int flags, int fd, int64_t offset)",
  );
  const munmap = libc.func("int munmap(intptr_t addr, size_t length)");
  const MAP_PRIVATE_ANONYMOUS = 0x22;
  const MAP_HUGETLB = 0x40000;
  const MAP_POPULATE = 0x8000;
  const addr = BigInt(
    mmap(0n, Number(length), 3, MAP_PRIVATE_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0n),
  );
  if (addr <= 0n) throw new Error(`mmap of ${count} huge pages: errno ${koffi.errno()} (nr_hugepages set?)`);
  const bytes = new Uint8Array(koffi.view(addr, Number(length)));
  return { address: addr, length, bytes, unmap: () => void munmap(addr, Number(length)) };
}

/** HWPT alloc; returns { errno, hwptId }. */
export function hwptAlloc(host: Host, iommufd: number, devId: number, ptId: number, flags: number) {
  const b = uapi.encodeHwptAlloc({ devId, ptId, flags });
  const errno = ioctlErrno(host, iommufd, uapi.IOMMU_HWPT_ALLOC, b);
  return { errno, hwptId: uapi.decodeHwptAlloc(b).outHwptId };
}

export function setDirtyTracking(host: Host, iommufd: number, hwptId: number, enable: boolean): number {
  const flags = enable ? uapi.IOMMU_HWPT_DIRTY_TRACKING_ENABLE : 0;
  return ioctlErrno(
    host,
    iommufd,
    uapi.IOMMU_HWPT_SET_DIRTY_TRACKING,
    uapi.encodeHwptSetDirtyTracking({ hwptId, flags }),
  );
}

/** IOMMU_HWPT_GET_DIRTY_BITMAP into a fresh bitmap; returns the errno and the set bit indexes. */
export function getDirtyBitmap(
  host: Host,
  iommufd: number,
  hwptId: number,
  iova: bigint,
  length: bigint,
  pageSize: bigint,
  flags = 0,
) {
  const nbits = Number(length / pageSize);
  const bitmap = new Uint8Array(Math.ceil(nbits / 64) * 8);
  const b = uapi.encodeHwptGetDirtyBitmap({
    hwptId,
    flags,
    iova,
    length,
    pageSize,
    data: host.addressOf(bitmap),
  });
  const errno = ioctlErrno(host, iommufd, uapi.IOMMU_HWPT_GET_DIRTY_BITMAP, b);
  return { errno, pages: errno ? [] : setBits(bitmap) };
}

/**
 * IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE: attaches the mock device `stdevId` to `ptId` (an IOAS or a
 * HWPT) instead of its domain, as VFIO_DEVICE_ATTACH_IOMMUFD_PT does for a real one. Returns the
 * HWPT id it is attached to.
 */
export function mockDomainReplace(host: Host, iommufd: number, stdevId: number, ptId: number): number {
  const [b, v] = testCmd(IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, stdevId);
  v.setUint32(16, ptId, true);
  ioctlOk(host, iommufd, IOMMU_TEST_CMD, b, "IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE");
  return v.getUint32(16, true);
}

/** IOMMU_TEST_OP_MOCK_DOMAIN: a mock device attached to a new mock domain on `ioasId`. */
export function mockDomain(host: Host, iommufd: number, ioasId: number) {
  const [b, v] = testCmd(IOMMU_TEST_OP_MOCK_DOMAIN, ioasId);
  ioctlOk(host, iommufd, IOMMU_TEST_CMD, b, "IOMMU_TEST_OP_MOCK_DOMAIN");
  return { stdevId: v.getUint32(16, true), hwptId: v.getUint32(20, true), idevId: v.getUint32(24, true) };
}

/**
 * IOMMU_TEST_OP_DIRTY: sets the dirty bit of the mock page table entries at the given page
 * indexes (of `pageSize` bytes from `iova`), as a device writing there would. Returns how many
 * entries the mock marked (only mapped ones count).
 */
export function mockMarkDirty(
  host: Host,
  iommufd: number,
  hwptId: number,
  iova: bigint,
  length: bigint,
  pageSize: bigint,
  pages: number[],
): number {
  const nbits = Number(length / pageSize);
  const marks = new Uint8Array(Math.ceil(nbits / 64) * 8);
  for (const p of pages) marks[p >> 3]! |= 1 << (p & 7);
  const [b, v] = testCmd(IOMMU_TEST_OP_DIRTY, hwptId);
  v.setBigUint64(24, iova, true);
  v.setBigUint64(32, length, true);
  v.setBigUint64(40, pageSize, true);
  v.setBigUint64(48, host.addressOf(marks), true);
  ioctlOk(host, iommufd, IOMMU_TEST_CMD, b, "IOMMU_TEST_OP_DIRTY");
  return Number(v.getBigUint64(56, true));
}

// --- Internal helpers ---

function testCmd(op: number, id: number): [Uint8Array, DataView] {
  const b = new Uint8Array(SIZEOF_IOMMU_TEST_CMD);
  const v = new DataView(b.buffer);
  v.setUint32(0, SIZEOF_IOMMU_TEST_CMD, true);
  v.setUint32(4, op, true);
  v.setUint32(8, id, true);
  return [b, v];
}

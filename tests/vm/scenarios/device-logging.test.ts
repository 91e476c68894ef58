// Device DMA logging against a real kernel: edu bound to this project's variant driver
// (tests/vm/module/edu_log_vfio.c), which implements vfio_log_ops by watching edu's DMA commands.
// The kernel's VFIO core does the uAPI checks and the iova_bitmap work; what a REPORT says must
// equal, exactly at the requested page size, the pages edu wrote: across several syncs, a
// page-size change in REPORT, an unmap and remap, and a stop and restart.
import { Errno, type MappedMemory, uapi } from "@vfio-dirty/vfio-adapter";
import { createLinuxHost } from "@vfio-dirty/vfio-adapter/linux";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EDU_BUFFER } from "./support/edu.ts";
import { guest } from "./support/guest.ts";
import { ioctlErrno, openType1, regionInfo, setBits, type Type1Session } from "./support/vfio.ts";

const PAGE = 4096n;
const A = 0x200000n; // logged: 64 pages
const A_LENGTH = 64n * PAGE;
const B = 0x400000n; // mapped but never logged
const PATTERN_PAGE = 63n; // source of the pattern edu copies (read by edu, never written)

const host = createLinuxHost();
let s: Type1Session;
let mem: MappedMemory;
let outside: MappedMemory;
const extra: MappedMemory[] = [];

describe.skipIf(guest.driver !== "edu-log")("device DMA logging (edu-log variant driver)", () => {
  beforeAll(() => {
    s = openType1(host);
    mem = host.mmapAnonymous(A_LENGTH);
    outside = host.mmapAnonymous(4n * PAGE);
    s.map(A, mem.address, A_LENGTH);
    s.map(B, outside.address, 4n * PAGE);
    // A recognisable pattern in edu's buffer: copied in from RAM (a device read, never logged).
    const src = Number(PATTERN_PAGE * PAGE);
    for (let i = 0; i < 4095; i++) mem.bytes[src + i] = (i * 13 + 7) & 0xff;
    s.edu.dmaFromRam(A + PATTERN_PAGE * PAGE, EDU_BUFFER, 4095);
  });

  afterAll(() => {
    if (!s) return;
    stop();
    s.close();
    for (const m of [mem, outside, ...extra]) if (m) host.munmap(m);
  });

  it("PROBE of DMA_LOGGING_START succeeds and BAR0 is not offered for mmap", () => {
    const flags = uapi.VFIO_DEVICE_FEATURE_PROBE | uapi.VFIO_DEVICE_FEATURE_SET;
    expect(feature(flags | uapi.VFIO_DEVICE_FEATURE_DMA_LOGGING_START)).toBe(0);
    expect(feature(flags | uapi.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP)).toBe(0);
    const bar0 = regionInfo(host, s.device, uapi.VFIO_PCI_BAR0_REGION_INDEX);
    expect(bar0.flags & uapi.VFIO_REGION_INFO_FLAG_MMAP).toBe(0);
  });

  it("START writes back the page size; REPORT equals exactly the pages edu wrote", () => {
    expect(start([{ iova: A, length: A_LENGTH }], PAGE)).toEqual({ errno: 0, pageSize: PAGE });
    s.edu.dmaToRam(EDU_BUFFER, A + 1n * PAGE, 100);
    s.edu.dmaToRam(EDU_BUFFER, A + 5n * PAGE + 0x800n, 4095); // crosses into page 6
    s.edu.dmaToRam(EDU_BUFFER, B, 100); // mapped, but outside the logged range
    expect(report(A, A_LENGTH, PAGE)).toEqual({ errno: 0, pages: [1, 5, 6] });
    // The bytes really arrived where the log says.
    expect(mem.bytes[Number(1n * PAGE) + 99]).toBe((99 * 13 + 7) & 0xff);
    expect(mem.bytes[Number(5n * PAGE) + 0x800 + 4094]).toBe((4094 * 13 + 7) & 0xff);
    expect(outside.bytes[0]).toBe(7);
  });

  it("REPORT clears what it returned (the next sync is empty)", () => {
    expect(report(A, A_LENGTH, PAGE)).toEqual({ errno: 0, pages: [] });
  });

  it("REPORT at a coarser page size than the log's folds pages together", () => {
    s.edu.dmaToRam(EDU_BUFFER, A + 10n * PAGE, 64);
    s.edu.dmaToRam(EDU_BUFFER, A + 11n * PAGE, 64);
    expect(report(A, A_LENGTH, 2n * PAGE)).toEqual({ errno: 0, pages: [5] });
    s.edu.dmaToRam(EDU_BUFFER, A + 20n * PAGE, 64);
    expect(report(A, A_LENGTH, 16n * PAGE)).toEqual({ errno: 0, pages: [1] });
    expect(report(A, A_LENGTH, PAGE)).toEqual({ errno: 0, pages: [] });
  });

  it("REPORT of a sub-range returns only that window's pages and leaves the rest logged", () => {
    s.edu.dmaToRam(EDU_BUFFER, A + 3n * PAGE, 64);
    s.edu.dmaToRam(EDU_BUFFER, A + 40n * PAGE, 64);
    expect(report(A + 32n * PAGE, 32n * PAGE, PAGE)).toEqual({ errno: 0, pages: [8] });
    expect(report(A, A_LENGTH, PAGE)).toEqual({ errno: 0, pages: [3] });
  });

  it("a second START while logging is EBUSY; bad REPORT page sizes are EINVAL", () => {
    expect(start([{ iova: A, length: A_LENGTH }], PAGE).errno).toBe(Errno.EBUSY);
    expect(report(A, A_LENGTH, 2048n).errno).toBe(Errno.EINVAL);
    expect(report(A, A_LENGTH, 3n * PAGE).errno).toBe(Errno.EINVAL);
  });

  it("keeps the bits of a mapping removed while logging, and logs its replacement", () => {
    s.edu.dmaToRam(EDU_BUFFER, A + 2n * PAGE, 64);
    expect(s.unmap(A, A_LENGTH)).toBe(A_LENGTH);
    const fresh = host.mmapAnonymous(A_LENGTH);
    extra.push(fresh);
    s.map(A, fresh.address, A_LENGTH);
    s.edu.dmaToRam(EDU_BUFFER, A + 9n * PAGE, 64);
    expect(report(A, A_LENGTH, PAGE)).toEqual({ errno: 0, pages: [2, 9] });
    expect(fresh.bytes[Number(9n * PAGE)]).toBe(7);
    expect(mem.bytes[Number(9n * PAGE)], "the old memory is no longer the target").toBe(0);
  });

  it("after STOP, REPORT is refused; a restart at 8 KiB logs from scratch", () => {
    expect(stop()).toBe(0);
    expect(report(A, A_LENGTH, PAGE).errno).toBe(Errno.EINVAL);
    s.edu.dmaToRam(EDU_BUFFER, A + 12n * PAGE, 64); // while not logging: never reported
    expect(start([{ iova: A, length: A_LENGTH }], 2n * PAGE)).toEqual({ errno: 0, pageSize: 2n * PAGE });
    s.edu.dmaToRam(EDU_BUFFER, A + 7n * PAGE, 64);
    expect(report(A, A_LENGTH, 2n * PAGE)).toEqual({ errno: 0, pages: [3] });
    // A finer REPORT than the log replicates each logged 8 KiB page into two 4 KiB bits.
    s.edu.dmaToRam(EDU_BUFFER, A + 30n * PAGE, 64);
    expect(report(A, A_LENGTH, PAGE)).toEqual({ errno: 0, pages: [30, 31] });
    expect(stop()).toBe(0);
  });

  it("START rejects zero, unaligned and overlapping ranges with the kernel's errnos", () => {
    expect(start([], PAGE).errno).toBe(Errno.EINVAL);
    expect(start([{ iova: A + 1n, length: PAGE }], PAGE).errno).toBe(Errno.EINVAL);
    const overlapping = [
      { iova: A, length: 4n * PAGE },
      { iova: A + 2n * PAGE, length: 4n * PAGE },
    ];
    expect(start(overlapping, PAGE).errno).toBe(Errno.EINVAL);
    expect(start([{ iova: 0xfffffffffffff000n, length: 2n * PAGE }], PAGE).errno).toBe(Errno.EOVERFLOW);
    // None of those started logging.
    expect(report(A, A_LENGTH, PAGE).errno).toBe(Errno.EINVAL);
  });
});

// --- Internal helpers ---

function feature(flags: number, payload?: Uint8Array): number {
  return ioctlErrno(host, s.device, uapi.VFIO_DEVICE_FEATURE, uapi.encodeDeviceFeature(flags, payload));
}

function start(ranges: uapi.DmaLoggingRange[], pageSize: bigint): { errno: number; pageSize: bigint } {
  const rangeBytes = uapi.encodeDmaLoggingRanges(ranges);
  const control = uapi.encodeDmaLoggingControl({
    pageSize,
    numRanges: ranges.length,
    ranges: ranges.length ? host.addressOf(rangeBytes) : 0n,
  });
  const b = uapi.encodeDeviceFeature(
    uapi.VFIO_DEVICE_FEATURE_SET | uapi.VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
    control,
  );
  const errno = ioctlErrno(host, s.device, uapi.VFIO_DEVICE_FEATURE, b);
  return { errno, pageSize: uapi.decodeDmaLoggingControl(uapi.decodeDeviceFeature(b).data).pageSize };
}

function stop(): number {
  return feature(uapi.VFIO_DEVICE_FEATURE_SET | uapi.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP);
}

function report(iova: bigint, length: bigint, pageSize: bigint): { errno: number; pages: number[] } {
  const nbits = Number((length + pageSize - 1n) / pageSize);
  const bitmap = new Uint8Array(Math.ceil(nbits / 64) * 8);
  const payload = uapi.encodeDmaLoggingReport({ iova, length, pageSize, bitmap: host.addressOf(bitmap) });
  const errno = feature(uapi.VFIO_DEVICE_FEATURE_GET | uapi.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, payload);
  return { errno, pages: errno ? [] : setBits(bitmap) };
}

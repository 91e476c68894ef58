// Smoke scenario: proves the harness with nothing from the project's packages. Plain koffi calls
// open the VFIO container and edu's group, map two anonymous buffers through the emulated VT-d,
// and drive a real DMA round trip with the edu registers through the device fd's BAR0 region.
// If this fails, the guest, the binding or the IOMMU set-up is broken, not vfio-dirty.
import { readlinkSync } from "node:fs";
import koffi from "koffi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { guest } from "./support/guest.ts";

const BDF = guest.eduBdf;
const libc = koffi.load("libc.so.6");
const open = libc.func("int open(const char *path, int flags)");
const close = libc.func("int close(int fd)");
const ioctlPtr = libc.func("ioctl", "int", ["int", "unsigned long", "void *"]);
const ioctlInt = libc.func("ioctl", "int", ["int", "unsigned long", "unsigned long"]);
const pread = libc.func("intptr_t pread(int fd, void *buf, size_t count, int64_t offset)");
const pwrite = libc.func("intptr_t pwrite(int fd, const void *buf, size_t count, int64_t offset)");
const mmap = libc.func(
  "intptr_t mmap(intptr_t addr, size_t length, int prot, int flags, int fd, int64_t offset)",
);
const munmap = libc.func("int munmap(intptr_t addr, size_t length)");

// _IO(';', 100 + n), from include/uapi/linux/vfio.h.
const VFIO_GET_API_VERSION = 0x3b64;
const VFIO_CHECK_EXTENSION = 0x3b65;
const VFIO_SET_IOMMU = 0x3b66;
const VFIO_GROUP_GET_STATUS = 0x3b67;
const VFIO_GROUP_SET_CONTAINER = 0x3b68;
const VFIO_GROUP_GET_DEVICE_FD = 0x3b6a;
const VFIO_DEVICE_GET_REGION_INFO = 0x3b6c;
const VFIO_IOMMU_MAP_DMA = 0x3b71;
const VFIO_IOMMU_UNMAP_DMA = 0x3b72;
const VFIO_TYPE1v2_IOMMU = 3;
const VFIO_PCI_BAR0_REGION_INDEX = 0;
const VFIO_PCI_CONFIG_REGION_INDEX = 7;
const O_RDWR = 2;
const PAGE = 4096;

const fds: number[] = [];
let container = -1;
let group = -1;
let device = -1;
let bar0 = 0n;
let buffer = 0n;
let bufferView: Uint8Array;

describe("smoke: VFIO and edu DMA with plain koffi", () => {
  beforeAll(() => {
    expect(BDF, "the guest init exports VM_EDU_BDF").toMatch(/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/);
  });

  afterAll(() => {
    if (buffer) munmap(buffer, 2 * PAGE);
    for (const fd of fds.reverse()) close(fd);
  });

  it("opens the container and answers VFIO_GET_API_VERSION = 0 and TYPE1v2", () => {
    container = track(open("/dev/vfio/vfio", O_RDWR), "open /dev/vfio/vfio");
    expect(ioctlInt(container, VFIO_GET_API_VERSION, 0)).toBe(0);
    expect(ioctlInt(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU)).toBe(1);
  });

  it("opens edu's group, finds it viable, attaches it and sets a type1v2 IOMMU", () => {
    const groupId = readlinkSync(`/sys/bus/pci/devices/${BDF}/iommu_group`).split("/").pop();
    group = track(open(`/dev/vfio/${groupId}`, O_RDWR), `open /dev/vfio/${groupId}`);
    const status = new Uint8Array(8);
    new DataView(status.buffer).setUint32(0, 8, true);
    check(ioctlPtr(group, VFIO_GROUP_GET_STATUS, status), "VFIO_GROUP_GET_STATUS");
    expect(new DataView(status.buffer).getUint32(4, true) & 1, "VFIO_GROUP_FLAGS_VIABLE").toBe(1);
    check(ioctlPtr(group, VFIO_GROUP_SET_CONTAINER, new Int32Array([container])), "VFIO_GROUP_SET_CONTAINER");
    check(ioctlInt(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), "VFIO_SET_IOMMU");
  });

  it("gets the device fd and reads edu's id through BAR0", () => {
    device = track(ioctlPtr(group, VFIO_GROUP_GET_DEVICE_FD, Buffer.from(`${BDF}\0`)), "GET_DEVICE_FD");
    bar0 = regionOffset(VFIO_PCI_BAR0_REGION_INDEX);
    const config = regionOffset(VFIO_PCI_CONFIG_REGION_INDEX);
    expect(read32(0x00)).toBe(0x010000ed);
    write32(0x04, 0x12345678);
    expect(read32(0x04), "liveness register reads back the inverse").toBe(~0x12345678 >>> 0);
    // Memory space and bus master on, or edu's DMA never reaches memory.
    const cmd = new Uint8Array(2);
    expect(Number(pread(device, cmd, 2, config + 4n))).toBe(2);
    new DataView(cmd.buffer).setUint16(0, new DataView(cmd.buffer).getUint16(0, true) | 0x6, true);
    expect(Number(pwrite(device, cmd, 2, config + 4n))).toBe(2);
  });

  it("maps two pages and moves bytes RAM -> edu -> RAM by real DMA through the IOMMU", () => {
    const PROT_RW = 3;
    const MAP_PRIVATE_ANONYMOUS = 0x22;
    const addr = BigInt(mmap(0n, 2 * PAGE, PROT_RW, MAP_PRIVATE_ANONYMOUS, -1, 0n));
    expect(addr).toBeGreaterThan(0n);
    buffer = addr;
    bufferView = new Uint8Array(koffi.view(addr, 2 * PAGE));
    const iova = 0x100000n;
    mapDma(iova, buffer, BigInt(2 * PAGE));

    const length = 1000;
    for (let i = 0; i < length; i++) bufferView[i] = (i * 7 + 3) & 0xff;
    dma(iova, 0x40000n, length, false);
    dma(0x40000n, iova + BigInt(PAGE) + 16n, length, true);
    expect(Buffer.from(bufferView.subarray(PAGE + 16, PAGE + 16 + length))).toEqual(
      Buffer.from(bufferView.subarray(0, length)),
    );
    expect(bufferView[PAGE + 15], "the byte before the DMA target is untouched").toBe(0);
    unmapDma(iova, BigInt(2 * PAGE));
  });
});

// --- Internal helpers ---

function track(fd: number, what: string): number {
  expect(fd, `${what}: errno ${koffi.errno()}`).toBeGreaterThanOrEqual(0);
  fds.push(fd);
  return fd;
}

function check(rc: number, what: string): void {
  expect(rc, `${what}: errno ${rc < 0 ? koffi.errno() : 0}`).toBe(0);
}

function regionOffset(index: number): bigint {
  const info = new Uint8Array(32);
  const v = new DataView(info.buffer);
  v.setUint32(0, 32, true);
  v.setUint32(8, index, true);
  check(ioctlPtr(device, VFIO_DEVICE_GET_REGION_INFO, info), `GET_REGION_INFO(${index})`);
  expect(v.getBigUint64(16, true), `region ${index} has a size`).toBeGreaterThan(0n);
  return v.getBigUint64(24, true);
}

function read32(reg: number): number {
  const b = new Uint32Array(1);
  expect(Number(pread(device, b, 4, bar0 + BigInt(reg)))).toBe(4);
  return b[0]!;
}

function write32(reg: number, value: number): void {
  expect(Number(pwrite(device, new Uint32Array([value >>> 0]), 4, bar0 + BigInt(reg)))).toBe(4);
}

function write64(reg: number, value: bigint): void {
  expect(Number(pwrite(device, new BigUint64Array([value]), 8, bar0 + BigInt(reg)))).toBe(8);
}

// One edu DMA: source, destination, count, then the command register; completion clears bit 0
// after edu's 100 ms timer.
function dma(src: bigint, dst: bigint, count: number, toRam: boolean): void {
  write64(0x80, src);
  write64(0x88, dst);
  write64(0x90, BigInt(count));
  write32(0x98, toRam ? 0x3 : 0x1);
  const deadline = Date.now() + 10_000;
  while (read32(0x98) & 1) {
    if (Date.now() > deadline) throw new Error("edu DMA did not complete in 10 s");
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
  }
}

function mapDma(iova: bigint, vaddr: bigint, length: bigint): void {
  const b = new Uint8Array(32);
  const v = new DataView(b.buffer);
  v.setUint32(0, 32, true);
  v.setUint32(4, 3, true); // READ | WRITE
  v.setBigUint64(8, vaddr, true);
  v.setBigUint64(16, iova, true);
  v.setBigUint64(24, length, true);
  check(ioctlPtr(container, VFIO_IOMMU_MAP_DMA, b), "VFIO_IOMMU_MAP_DMA");
}

function unmapDma(iova: bigint, length: bigint): void {
  const b = new Uint8Array(24);
  const v = new DataView(b.buffer);
  v.setUint32(0, 24, true);
  v.setBigUint64(8, iova, true);
  v.setBigUint64(16, length, true);
  check(ioctlPtr(container, VFIO_IOMMU_UNMAP_DMA, b), "VFIO_IOMMU_UNMAP_DMA");
  expect(v.getBigUint64(16, true), "the kernel unmapped the whole range").toBe(length);
}

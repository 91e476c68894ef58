// QEMU's edu device driven through a VFIO device fd's BAR0 region (4-byte pread/pwrite at the
// region's file offset). Its DMA engine is the only "real device" these tests have: every
// device -> RAM transfer is a real DMA through the emulated VT-d into memory we mapped.
//
//   const edu = new Edu(host, deviceFd, bar0Offset);
//   edu.dmaToRam(0x40000n, iova, 4095);   // ~100 ms: edu completes DMAs on a timer
//
// Two QEMU 7.2 traps (see shared README): a 4096-byte transfer aborts the whole VM, and edu only
// sees 28 bits of address; both are refused here before they reach the device.

import { errnoName, type Host } from "@vfio-dirty/vfio-adapter";

/** The edu-log test driver's module parameters (module edu_log.ko: tests/vm/module/Kbuild). */
export const EDU_LOG_PARAMS = "/sys/module/edu_log/parameters";
/** edu's DMA buffer inside the device (4 KiB at 0x40000). */
export const EDU_BUFFER = 0x40000n;
/** Largest transfer QEMU 7.2's edu survives. */
export const EDU_MAX_DMA = 4095;
/** edu's DMA mask: addresses above it are truncated by the device. */
export const EDU_DMA_LIMIT = 1n << 28n;

export class Edu {
  /** DMAs issued so far (each costs ~100 ms of guest time). */
  dmaCount = 0;

  constructor(
    private readonly host: Host,
    private readonly fd: number,
    private readonly bar0: bigint,
  ) {}

  /** edu's identification register: 0x010000ed for edu 1.0. */
  id(): number {
    return this.read32(0x00);
  }

  /** Copies `count` bytes from edu's buffer (at `devOffset`) to `iova` by DMA and waits for it. */
  dmaToRam(devOffset: bigint, iova: bigint, count: number): void {
    this.dma(devOffset, iova, count, true);
  }

  /** Starts the same DMA and returns at once (edu takes ~100 ms): a write still in flight. */
  startDmaToRam(devOffset: bigint, iova: bigint, count: number): void {
    this.dma(devOffset, iova, count, true, false);
  }

  /** True while edu's DMA engine runs (command register bit 0). */
  dmaRunning(): boolean {
    return (this.read32(0x98) & 1) !== 0;
  }

  /** Copies `count` bytes from `iova` into edu's buffer (at `devOffset`) by DMA and waits for it. */
  dmaFromRam(iova: bigint, devOffset: bigint, count: number): void {
    this.dma(iova, devOffset, count, false);
  }

  read32(reg: number): number {
    const b = new Uint8Array(4);
    const rc = this.host.pread(this.fd, b, this.bar0 + BigInt(reg));
    if (rc !== 4) throw new Error(`edu read of 0x${reg.toString(16)}: ${rc < 0 ? errnoName(-rc) : rc}`);
    return new DataView(b.buffer).getUint32(0, true);
  }

  write32(reg: number, value: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value >>> 0, true);
    const rc = this.host.pwrite(this.fd, b, this.bar0 + BigInt(reg));
    if (rc !== 4) throw new Error(`edu write of 0x${reg.toString(16)}: ${rc < 0 ? errnoName(-rc) : rc}`);
  }

  // --- Internal helpers ---

  private dma(src: bigint, dst: bigint, count: number, toRam: boolean, wait = true): void {
    const ram = toRam ? dst : src;
    if (count < 1 || count > EDU_MAX_DMA)
      throw new RangeError(`edu DMA of ${count} bytes (1..${EDU_MAX_DMA})`);
    if (ram + BigInt(count) > EDU_DMA_LIMIT)
      throw new RangeError(`edu DMA at 0x${ram.toString(16)} above 28 bits`);
    // 32-bit writes: vfio-pci on 6.1 splits wider accesses anyway, and edu takes a 4-byte write
    // at 0x80/0x88/0x90 as the whole (zero-extended) register.
    this.write32(0x80, Number(src));
    this.write32(0x88, Number(dst));
    this.write32(0x90, count);
    this.write32(0x98, toRam ? 0x3 : 0x1);
    this.dmaCount++;
    if (!wait) return;
    const deadline = Date.now() + 10_000;
    while (this.read32(0x98) & 1) {
      if (Date.now() > deadline) throw new Error("edu DMA did not complete within 10 s");
      Atomics.wait(sleeper, 0, 0, 5);
    }
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

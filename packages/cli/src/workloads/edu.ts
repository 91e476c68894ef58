// The workload plugin for QEMU's `edu` test device (vendor 0x1234, device 0x11e8), used by the
// real-kernel tests: it copies the device's 4 KiB internal buffer into pages of the DMA buffer.
//
// edu registers (BAR0, docs/specs/edu.rst in QEMU): 0x80 DMA source, 0x88 destination, 0x90
// count, 0x98 command (bit 0 start, bit 1 direction device-to-RAM; bit 0 clears when done). The
// device's buffer is at 0x40000. Limits found on QEMU 7.2: a transfer of 4096 bytes aborts the
// VM, so transfers are at most 4095 bytes; the DMA mask is 28 bits, so IOVAs stay below 256 MiB.

import { mulberry32 } from "@vfio-dirty/vfio-adapter/util";
import type { DeviceAccess, DmaBuffer, WorkloadPlugin, WorkloadSession, WrittenRange } from "./plugin.ts";

const EDU_VENDOR = 0x1234;
const EDU_DEVICE = 0x11e8;
const REG_DMA_SRC = 0x80;
const REG_DMA_DST = 0x88;
const REG_DMA_COUNT = 0x90;
const REG_DMA_CMD = 0x98;
const CMD_START = 0x1;
const CMD_TO_RAM = 0x2;
const EDU_BUFFER = 0x40000;
const MAX_TRANSFER = 4095;
const DMA_LIMIT = 1n << 28n;
const PCI_COMMAND = 0x04;
const PCI_COMMAND_MEMORY_MASTER = 0x6;
/** How long one DMA may take before the device counts as hung (each takes ~100 ms under TCG). */
const DMA_TIMEOUT_MS = 5000;

export const eduPlugin: WorkloadPlugin = {
  name: "edu",
  description: "QEMU edu test device: DMA of up to 4095 bytes from its buffer into random pages",
  supports: (d) => d.vendorId === EDU_VENDOR && d.deviceId === EDU_DEVICE,
  create: ({ device, buffer, seed, pageSize }) => new EduSession(device, buffer, seed, pageSize),
  async dma(device, iova, length) {
    if (length < 1n || length > BigInt(MAX_TRANSFER) || iova + length > DMA_LIMIT)
      throw new RangeError(
        `edu: a DMA of 1 to ${MAX_TRANSFER} bytes below 256 MiB, not 0x${length.toString(16)} bytes at 0x${iova.toString(16)}`,
      );
    enableBusMaster(device);
    startToRam(device, iova, Number(length));
    await waitIdle(device);
  },
};

export default eduPlugin;

class EduSession implements WorkloadSession {
  #random: () => number;
  #stopped = false;

  constructor(
    private readonly device: DeviceAccess,
    private readonly buffer: DmaBuffer,
    seed: number,
    private readonly pageSize: bigint,
  ) {
    if (buffer.iova + buffer.length > DMA_LIMIT)
      throw new RangeError(
        `edu: the DMA buffer must lie below 256 MiB (28-bit DMA mask), got ${buffer.iova}`,
      );
    this.#random = mulberry32(seed);
    enableBusMaster(device);
  }

  async run(budgetMs: number, signal: AbortSignal): Promise<WrittenRange[]> {
    const written: WrittenRange[] = [];
    const until = performance.now() + budgetMs;
    while (!this.#stopped && !signal.aborted && performance.now() < until) {
      const pages = Number(this.buffer.length / this.pageSize);
      const page = BigInt(Math.floor(this.#random() * pages));
      const iova = this.buffer.iova + page * this.pageSize;
      const length = Math.min(MAX_TRANSFER, Number(this.pageSize));
      startToRam(this.device, iova, length);
      // Recorded before completion: a DMA that started may have written, so it counts.
      written.push({ iova, length: BigInt(length) });
      await waitIdle(this.device);
    }
    return written;
  }

  stop(): void {
    this.#stopped = true;
  }
}

// --- Internal helpers ---

function enableBusMaster(device: DeviceAccess): void {
  const cmd = device.readConfig16(PCI_COMMAND);
  if ((cmd & PCI_COMMAND_MEMORY_MASTER) !== PCI_COMMAND_MEMORY_MASTER)
    device.writeConfig16(PCI_COMMAND, cmd | PCI_COMMAND_MEMORY_MASTER);
}

/** Starts a copy of `length` bytes of edu's buffer to `iova`. */
function startToRam(device: DeviceAccess, iova: bigint, length: number): void {
  // edu takes a 4-byte write at 0x80/0x88 as the whole (zero-extended) 64-bit register and
  // ignores 0x84/0x8c; IOVAs are below 2^28 anyway.
  device.writeBar32(0, REG_DMA_SRC, EDU_BUFFER);
  device.writeBar32(0, REG_DMA_DST, Number(iova));
  device.writeBar32(0, REG_DMA_COUNT, length);
  device.writeBar32(0, REG_DMA_CMD, CMD_START | CMD_TO_RAM);
}

async function waitIdle(device: DeviceAccess): Promise<void> {
  const deadline = performance.now() + DMA_TIMEOUT_MS;
  while (device.readBar32(0, REG_DMA_CMD) & CMD_START) {
    if (performance.now() > deadline)
      throw new Error("edu: DMA did not complete within 5 s; the device hangs");
    await new Promise((r) => setTimeout(r, 5));
  }
}

// Workload plugins: what makes a real device write guest memory by DMA while `track` runs on a
// real host. (On the simulated host, devices write by themselves, as their profile says.)
//
// A plugin is an ES module whose default export is a WorkloadPlugin. `--workload edu` uses the
// shipped plugin for QEMU's edu test device; `--workload ./my-plugin.js` loads yours.
//
//   const plugin: WorkloadPlugin = {
//     name: "my-nic",
//     description: "loops packets into the DMA buffer",
//     supports: (dev) => dev.vendorId === 0x8086 && dev.deviceId === 0x1572,
//     create({ device, buffer, seed }) {
//       return {
//         async run(budgetMs, signal) { ...program DMA into buffer.iova...; return [{ iova, length }]; },
//         stop() { ...quiesce the device... },
//       };
//     },
//   };
//   export default plugin;
//
// The tool maps `buffer` for the device (its IOVA is what the device must write to), calls
// `run` between syncs, and calls `stop` on every exit path. The ranges `run` returns are the
// real host's ground truth: the tracker must report every one of those pages dirty. A plugin
// that can also write chosen pages (`dma`) lets `vfio-dirty check` run its DMA rules.

/** Register and config-space access to one opened VFIO device. All offsets are bytes. */
export interface DeviceAccess {
  /** PCI address, "0000:00:03.0". */
  readonly address: string;
  readonly vendorId: number;
  readonly deviceId: number;
  /** 32-bit read of a BAR register. */
  readBar32(bar: number, offset: number): number;
  /** 32-bit write of a BAR register. */
  writeBar32(bar: number, offset: number, value: number): void;
  /** 16-bit read of PCI config space. */
  readConfig16(offset: number): number;
  /** 16-bit write of PCI config space. */
  writeConfig16(offset: number, value: number): void;
}

/** Memory the tool allocated and mapped for the device's DMA. */
export interface DmaBuffer {
  /** The IOVA the device must write to (equal to the guest-physical address tracked). */
  readonly iova: bigint;
  readonly length: bigint;
  /** The same memory, as the CPU sees it. */
  readonly bytes: Uint8Array;
}

/** A range of the DMA buffer the device wrote, by IOVA. */
export interface WrittenRange {
  readonly iova: bigint;
  readonly length: bigint;
}

export interface WorkloadSession {
  /**
   * Drive the device for about `budgetMs` (the time until the next sync) and resolve with the
   * ranges it wrote. Must return promptly once `signal` aborts (Ctrl-C).
   */
  run(budgetMs: number, signal: AbortSignal): Promise<WrittenRange[]>;
  /** Quiesce the device: no DMA after this returns. Called once, on every exit path. */
  stop(): void;
}

export interface WorkloadPlugin {
  /** The name `--workload` takes for a shipped plugin. */
  readonly name: string;
  readonly description: string;
  /** True when this plugin knows how to drive the device. */
  supports(device: { vendorId: number; deviceId: number }): boolean;
  create(opts: { device: DeviceAccess; buffer: DmaBuffer; seed: number; pageSize: bigint }): WorkloadSession;
  /**
   * Optional: makes the device write [iova, iova + length) now (a few bytes inside one page), and
   * resolves once the write is done. `vfio-dirty check` uses it to write the pages its rules
   * choose; without it the rules that need DMA are skipped. The range always lies in memory the
   * tool mapped for the device.
   */
  dma?(device: DeviceAccess, iova: bigint, length: bigint): Promise<void>;
}

/** Checks that a loaded module's default export has the plugin's shape. */
export function isWorkloadPlugin(x: unknown): x is WorkloadPlugin {
  const p = x as Partial<WorkloadPlugin> | null;
  return (
    typeof p === "object" &&
    p !== null &&
    typeof p.name === "string" &&
    typeof p.supports === "function" &&
    typeof p.create === "function"
  );
}

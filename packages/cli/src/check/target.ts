// The ScenarioTarget `check` runs its rules against, for one device of a host: what the host
// offers (type1, iommufd, the device's cdev) and how the device is made to write by DMA (the
// simulated host's dmaWrite, a workload plugin's dma() on a real host, or not at all).
//
// DMA never leaves check's own memory: every scenario maps only memory it allocated itself into a
// container or IOAS it created, and the DMA hook refuses any address outside DMA_WINDOW, where
// the scenarios map it, before the device is told anything.

import { release } from "node:os";
import {
  Device,
  type Host,
  InternalError,
  O_CLOEXEC,
  O_RDWR,
  type PciDevice,
} from "@vfio-dirty/vfio-adapter";
import type { IommufdDevice, ScenarioTarget } from "@vfio-dirty/vfio-adapter/scenarios";
import { deviceAccess } from "../track/device-access.ts";
import type { DeviceAccess, WorkloadPlugin } from "../workloads/plugin.ts";

/** Where the scenarios map the memory a device may write: [1 MiB, 32 MiB) of IOVA, below edu's 28-bit DMA mask. */
export const DMA_WINDOW = { iova: 0x10_0000n, length: 31n << 20n } as const;

/** How the device under check writes memory. */
export type DmaSource =
  | { kind: "sim"; write: (bdf: string, iova: bigint, length: bigint) => unknown }
  | { kind: "plugin"; plugin: WorkloadPlugin & { dma: NonNullable<WorkloadPlugin["dma"]> } }
  | { kind: "none"; why: string };

/** The target for `dev` on `host`, the host's interfaces found by opening (and closing) their nodes. */
export function checkTargetFor(host: Host, dev: PciDevice, dma: DmaSource): ScenarioTarget {
  const group = dev.iommuGroup;
  if (!group) throw new InternalError(`${dev.address}: no IOMMU group (preflight lets none through)`);
  return {
    host,
    bdf: dev.address,
    group: group.id,
    ...(dev.vfioCdev ? { cdevPath: dev.vfioCdev.path } : {}),
    has: {
      type1: canOpen(host, "/dev/vfio/vfio"),
      iommufd: canOpen(host, "/dev/iommu"),
      cdev: dev.vfioCdev !== undefined,
      // The probe rules find these two; the scenarios that need migration are not check's.
      dmaLogging: false,
      iommuDirty: false,
      migration: false,
      preCopy: false,
      dma: dma.kind !== "none",
      // The rules whose expected errno changed between kernels (type1's overflow checks in 6.19)
      // judge by the kernel the host runs; the migration ones are not check's.
      precopyInfoV2: false,
      type1Overflow: kernelVersion(host) >= TYPE1_OVERFLOW_SINCE,
      deviceState: false,
    },
    ...(dma.kind === "none" ? {} : { dma: dmaHook(dev, dma) }),
    iovaBase: DMA_WINDOW.iova,
  };
}

// --- Internal helpers ---

/** type1 answers a wrapping range with EOVERFLOW from 6.19 (the sim's KERNEL.TYPE1_OVERFLOW). */
const TYPE1_OVERFLOW_SINCE = 6019;

/** major * 1000 + minor of the kernel behind `host`: the simulated profile's, or this machine's. */
function kernelVersion(host: Host): number {
  const sim = (host as { profile?: { kernel?: unknown } }).profile?.kernel;
  if (typeof sim === "number") return sim;
  const m = /^(\d+)\.(\d+)/.exec(release());
  return m ? Number(m[1]) * 1000 + Number(m[2]) : 0;
}

function canOpen(host: Host, path: string): boolean {
  const fd = host.open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  host.close(fd);
  return true;
}

/** The target's dma(): refuses anything outside DMA_WINDOW, then has the device write. */
function dmaHook(
  dev: PciDevice,
  dma: Exclude<DmaSource, { kind: "none" }>,
): NonNullable<ScenarioTarget["dma"]> {
  const access = new WeakMap<Device, DeviceAccess>();
  return async (iova, length, opened?: Device | IommufdDevice) => {
    const end = DMA_WINDOW.iova + DMA_WINDOW.length;
    if (length <= 0n || iova < DMA_WINDOW.iova || iova + length > end)
      throw new InternalError(
        `check asked ${dev.address} to write 0x${iova.toString(16)}+0x${length.toString(16)}, outside the memory it maps (0x${DMA_WINDOW.iova.toString(16)}-0x${end.toString(16)}); refused`,
      );
    if (dma.kind === "sim") {
      dma.write(dev.address, iova, length);
      return;
    }
    if (!(opened instanceof Device))
      throw new InternalError(`a scenario asked ${dev.address} for DMA without an open device fd`);
    let a = access.get(opened);
    if (!a) {
      a = deviceAccess(opened, dev);
      access.set(opened, a);
    }
    await dma.plugin.dma(a, iova, length);
  };
}

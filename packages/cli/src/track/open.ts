// Building a TrackBackend for `track`: open the host, pick the devices, map guest memory (the
// simulated guest's RAM, or a DMA buffer on a real host), open the tracker, and wire the clock
// and the workloads. Everything opened here is released by the backend's close().

import { type DmaMapper, openTracker, type Tracker, type TrackingTarget } from "@vfio-dirty/tracker";
import {
  Container,
  findPciDevice,
  type Host,
  InternalError,
  IommuFd,
  listVfioDevices,
  type PciDevice,
} from "@vfio-dirty/vfio-adapter";
import { bigMax, CleanupStack } from "@vfio-dirty/vfio-adapter/util";
import { bitmapCore } from "../bitmap-file.ts";
import { UsageError } from "../errors.ts";
import type { HostChoice } from "../host.ts";
import { openHost, sleep } from "../host-open.ts";
import { DEFAULT_QEMU_OPTIONS, type QemuOptions, selectOptions } from "../parse/qemu-options.ts";
import { formatSizeShort } from "../parse/size.ts";
import { type GuestMemory, openVfio, type VfioMapping } from "../vfio-open.ts";
import { loadWorkloadPlugin } from "../workloads/load.ts";
import type { WorkloadSession, WrittenRange } from "../workloads/plugin.ts";
import type { TrackBackend } from "./backend.ts";
import { deviceAccess } from "./device-access.ts";
import { DeviceStateReader } from "./device-state.ts";
import { quiesceDevices } from "./quiesce.ts";

export interface OpenTrackOptions {
  addresses: readonly string[];
  pageSize: bigint;
  seed: number;
  workload: string | undefined;
  signal: AbortSignal;
  /** Sim only: run simulated time as fast as possible instead of at wall-clock pace. */
  fast: boolean;
  /** QEMU's enable-migration, x-device-dirty-page-tracking, x-pre-copy-dirty-page-tracking. */
  qemu?: QemuOptions;
  /** Read the devices' migration data (the report's deviceState); default false. */
  deviceState?: boolean;
}

/** Real host: the DMA buffer the workload plugin's device writes (below edu's 256 MiB DMA mask). */
const LINUX_BUFFER_IOVA = 0x100000n;
const LINUX_BUFFER_LENGTH = 16n << 20n;

export async function openTrackBackend(choice: HostChoice, opts: OpenTrackOptions): Promise<TrackBackend> {
  const opened = await openHost(choice, { seed: opts.seed, workload: opts.workload });
  const cleanups = new CleanupStack();
  cleanups.push(() => void opened[Symbol.asyncDispose]());
  // Best effort on the way out: a step that throws does not keep the older ones from running.
  const cleanup = () => void cleanups.run();
  try {
    const { host, sim } = opened;
    const devices = pickDevices(host, opts.addresses);
    // Checked before anything is opened: an option may name a device that is not tracked.
    const select = selectOptions(
      opts.qemu ?? DEFAULT_QEMU_OPTIONS,
      devices.map((d) => d.address),
    );
    const core = await bitmapCore();
    let memory: GuestMemory[];
    let viommu: VfioMapping[] | undefined;
    let linuxBuffer: { address: bigint; length: bigint; bytes: Uint8Array } | undefined;
    if (sim) {
      memory = sim.guestMemory.map((m) => ({
        gpa: m.gpa,
        length: m.length,
        hva: m.hva,
        kind: m.kind === "bar" ? "pci-bar" : "ram",
      }));
      viommu = sim.viommu;
      if (viommu) checkViommuPageSize(viommu, opts.pageSize);
    } else {
      const mem = host.mmapAnonymous(LINUX_BUFFER_LENGTH);
      linuxBuffer = mem;
      cleanups.push(() => host.munmap(mem));
      memory = [{ gpa: LINUX_BUFFER_IOVA, length: mem.length, hva: mem.address, kind: "ram" }];
    }
    const openedAtMs = performance.now();
    // With a vIOMMU the kernel's DMA mappings are made by the tracker's mapper (below), not by
    // openVfio: an unmap then goes through tracker.unmap, which keeps the range's dirty bits.
    const vfio = openVfio(host, devices, { memory, ...(viommu ? { viommu: [] } : {}) });
    cleanups.push(() => vfio.close());
    const mapper = viommu ? viommuMapper(vfio.target, memory) : undefined;
    if (mapper) cleanups.push(() => mapper.unmapAll());
    const { tracker, choice: strategyChoice } = openTracker(vfio.target, {
      core,
      memory: vfio.sections,
      pageSize: opts.pageSize,
      ignoreBlockers: true,
      ...select,
      ...(mapper ? { viommu: true, mapper } : {}),
      // Wall clock from opening: sync cost is real time, and event times read as "ms into the run".
      now: () => performance.now() - openedAtMs,
    });
    cleanups.push(() => tracker.close());
    if (viommu) for (const m of viommu) tracker.map(m.iova, m.gpa, m.length);

    // Real host: a workload plugin drives each device it supports.
    const sessions: WorkloadSession[] = [];
    // Devices a plugin drives: stopping the plugin stops their DMA, migratable or not.
    const driven = new Set<string>();
    const written: WrittenRange[] = [];
    let workloadName = sim ? (opts.workload ?? "profile") : "none";
    if (!sim && opts.workload) {
      const plugin = await loadWorkloadPlugin(opts.workload);
      workloadName = plugin.name;
      for (const dev of devices) {
        if (!plugin.supports(dev)) continue;
        const device = vfio.devices.get(dev.address)!;
        const session = plugin.create({
          device: deviceAccess(device, dev),
          buffer: { iova: LINUX_BUFFER_IOVA, length: linuxBuffer!.length, bytes: linuxBuffer!.bytes },
          seed: opts.seed,
          pageSize: 4096n,
        });
        sessions.push(session);
        driven.add(dev.address);
        cleanups.push(() => session.stop());
      }
      if (sessions.length === 0)
        throw new UsageError(
          `--workload ${plugin.name}: none of the devices is one it supports (${devices.map((d) => d.address).join(", ")})`,
        );
    }

    const gpaEnd = bigMax(...vfio.sections.map((s) => s.iova + s.length));
    const ramBytes = vfio.sections.reduce((a, s) => a + s.length, 0n);
    const startMs = sim ? sim.nowMs() : performance.now();
    let trackStartNs = 0;
    let closed = false;
    let stopped: boolean | null = null;
    let quiesced = false;
    // Pushed last, so it runs first: devices go back to RUNNING before their fds close.
    const deviceState = opts.deviceState ? new DeviceStateReader(host, vfio.devices) : undefined;
    if (deviceState) cleanups.push(() => deviceState.close());
    return {
      ...(deviceState ? { deviceState } : {}),
      host,
      hostName: host.name,
      simulated: host.simulated,
      devices: devices.map((d) => d.address),
      strategy: strategyChoice.strategy,
      reasons: [
        ...strategyChoice.reasons.map(
          (r) => `${r.device ? `${r.device}: ` : ""}not ${r.strategy}: ${r.message}`,
        ),
        ...strategyChoice.blockers.map((b) => `blocker: ${b.device ? `${b.device}: ` : ""}${b.message}`),
        ...strategyChoice.warnings.map((w) => `warning: ${w}`),
      ],
      pageSize: opts.pageSize,
      ramBytes,
      gpaEnd,
      workload: workloadName,
      core,
      tracker: wrapTracker(tracker, () => {
        trackStartNs = sim ? sim.nowNs() : 0;
        written.length = 0;
      }),
      nowMs: () => (sim ? sim.nowMs() : performance.now()) - startMs,
      quiesce() {
        quiesced = true;
        for (const s of sessions) s.stop();
        return quiesceDevices(host, vfio.devices, driven);
      },
      async advance(ms, signal) {
        if (sim) {
          await sim.advance(ms, signal, opts.fast);
          return;
        }
        if (sessions.length === 0 || quiesced) {
          await sleep(ms, signal);
          return;
        }
        const results = await Promise.all(sessions.map((s) => s.run(ms, signal)));
        for (const r of results) written.push(...r);
      },
      writtenSinceStart: sim
        ? () => sim.writtenSince(trackStartNs)
        : sessions.length > 0
          ? () => rangePages(written)
          : undefined,
      close() {
        if (closed) return stopped;
        closed = true;
        cleanup();
        stopped = sim ? !sim.trackingActive() : null;
        return stopped;
      },
    };
  } catch (err) {
    cleanup();
    throw err;
  }
}

/**
 * The kernel side of vIOMMU mappings for the tracker (QEMU's vIOMMU notifier calling
 * vfio_dma_map/unmap): VFIO_IOMMU_MAP_DMA / UNMAP_DMA on the type1 container, or IOMMU_IOAS_MAP /
 * UNMAP on the IOAS, with the user address backing the GPA. Give it to openTracker and map
 * through tracker.map(), so the tracker's table and the kernel agree and tracker.unmap() can read
 * a range's dirty bits before it goes. `unmapAll()` removes, best effort, what is still mapped
 * (for closing; closing the container or iommufd would too).
 */
export function viommuMapper(
  target: TrackingTarget,
  memory: readonly GuestMemory[],
): DmaMapper & { unmapAll(): void } {
  const hvaOf = (gpa: bigint, length: bigint): bigint => {
    const m = memory.find((r) => r.kind === "ram" && gpa >= r.gpa && gpa + length <= r.gpa + r.length);
    if (!m) throw new UsageError(`vIOMMU mapping of GPA 0x${gpa.toString(16)} is outside guest RAM`);
    return m.hva + (gpa - m.gpa);
  };
  const iommu = target.iommu;
  let kernel: {
    map(iova: bigint, vaddr: bigint, length: bigint): void;
    unmap(iova: bigint, length: bigint): bigint;
  };
  if (iommu.kind === "type1" && iommu.container instanceof Container) {
    const c = iommu.container;
    kernel = {
      map: (iova, vaddr, length) => c.mapDma({ vaddr, iova, length }),
      unmap: (iova, length) => c.unmapDma({ iova, length }),
    };
  } else if (iommu.kind === "iommufd" && iommu.iommufd instanceof IommuFd) {
    const fd = iommu.iommufd;
    const ioasId = iommu.ioasId;
    kernel = {
      map: (iova, vaddr, length) => void fd.ioasMap({ ioasId, userVa: vaddr, iova, length }),
      unmap: (iova, length) => fd.ioasUnmap({ ioasId, iova, length }),
    };
  } else throw new InternalError("viommuMapper: the target is not an adapter Container or IommuFd");
  // What this mapper mapped and has not unmapped (an IOMMU strategy's unmap-with-dirty-bitmap
  // bypasses it; unmapAll tolerates those).
  const live = new Map<bigint, bigint>();
  return {
    map(iova, gpa, length) {
      kernel.map(iova, hvaOf(gpa, length), length);
      live.set(iova, length);
    },
    unmap(iova, length) {
      // The tracker sends whole mappings, perhaps several with holes between them: the kernel
      // must remove exactly what this mapper mapped there, or the two no longer agree.
      let mapped = 0n;
      for (const [at, len] of live) if (at >= iova && at + len <= iova + length) mapped += len;
      const done = kernel.unmap(iova, length);
      if (done !== mapped)
        throw new InternalError(
          `vIOMMU unmap of 0x${iova.toString(16)}+0x${length.toString(16)} removed 0x${done.toString(16)} bytes, not the 0x${mapped.toString(16)} mapped there`,
        );
      for (const [at, len] of live) if (at >= iova && at + len <= iova + length) live.delete(at);
    },
    unmapAll() {
      for (const [iova, length] of [...live]) {
        live.delete(iova);
        try {
          kernel.unmap(iova, length);
        } catch {
          // Already gone (unmapped with its dirty bits by an IOMMU strategy) or the fd is closing.
        }
      }
    },
  };
}

// --- Internal helpers ---

function pickDevices(host: Host, addresses: readonly string[]): PciDevice[] {
  if (addresses.length === 0) {
    const all = listVfioDevices(host.sysfs);
    if (all.length === 0)
      throw new UsageError(
        `no VFIO-bound devices on ${host.name}; bind a device to vfio-pci, or use --host sim`,
      );
    return all;
  }
  return addresses.map((a) => {
    const d = findPciDevice(host.sysfs, a);
    if (!d)
      throw new UsageError(
        `PCI address ${a}: no such device on ${host.name}; list devices with 'vfio-dirty probe --all'`,
      );
    if (!d.vfio)
      throw new UsageError(
        `${a} is bound to ${d.driver ?? "no driver"}, not vfio-pci; bind it to vfio-pci first`,
      );
    return d;
  });
}

/**
 * With a vIOMMU every mapping must be whole tracking pages: a tracking page holding several
 * mappings has no one guest page to translate to. Refuse a larger --page-size up front.
 */
function checkViommuPageSize(mappings: readonly VfioMapping[], pageSize: bigint): void {
  let align = 1n << 62n;
  for (const m of mappings) {
    const bits = m.iova | m.gpa | m.length;
    const low = bits & -bits;
    if (low < align) align = low;
  }
  if (pageSize > align)
    throw new UsageError(
      `--page-size ${formatSizeShort(pageSize)}: the vIOMMU maps ${formatSizeShort(align)} pages, and each mapping must be whole tracking pages; use --page-size ${formatSizeShort(align)} or less`,
    );
}

/** Starting tracking also starts the ground-truth window. */
function wrapTracker(tracker: Tracker, onStart: () => void): TrackBackend["tracker"] {
  return {
    start: () => {
      onStart();
      tracker.start();
    },
    setPhase: (p) => tracker.setPhase(p),
    sync: (o) => tracker.sync(o),
    stop: () => tracker.stop(),
    close: () => tracker.close(),
    get events() {
      return tracker.events;
    },
  };
}

/** The 4 KiB pages of written ranges, ascending and distinct. */
function rangePages(ranges: readonly WrittenRange[]): number[] {
  const pages = new Set<number>();
  for (const r of ranges) {
    const first = Number(r.iova / 4096n);
    const last = Number((r.iova + r.length - 1n) / 4096n);
    for (let p = first; p <= last; p++) pages.add(p);
  }
  return [...pages].sort((a, b) => a - b);
}

// How each device under check is made to write memory by DMA: the simulated host's own DMA, a
// workload plugin's dma() on a real host, or not at all, with the reason the DMA rules then skip.

import type { Host, PciDevice } from "@vfio-dirty/vfio-adapter";
import { UsageError } from "../errors.ts";
import { hex4 } from "../format/units.ts";
import { loadWorkloadPlugin } from "../workloads/load.ts";
import type { DmaSource } from "./target.ts";

/** Per device, in order: the DMA source and the phrase the opening line says about it. */
export async function dmaSources(
  host: Host,
  devices: readonly PciDevice[],
  spec: string | undefined,
): Promise<{ source: DmaSource; label: string }[]> {
  const none = (why: string) => ({
    source: { kind: "none" as const, why },
    label: "no DMA: the rules that need it are skipped",
  });
  if (spec === "none") return devices.map(() => none("needs DMA, and --workload none was given"));
  if (host.simulated) {
    if (spec !== undefined && spec !== "sim")
      throw new UsageError(
        `--workload ${spec}: on the simulated host the device writes where check asks (--workload sim, the default) or not at all (--workload none)`,
      );
    const sim = host as Host & { dmaWrite(bdf: string, iova: bigint, length: bigint): bigint };
    return devices.map(() => ({
      source: { kind: "sim", write: (bdf, iova, length) => sim.dmaWrite(bdf, iova, length) },
      label: "the simulated device writes where check asks",
    }));
  }
  if (spec === undefined)
    return devices.map(() =>
      none(
        "needs DMA: give --workload edu, or a plugin .js whose dma() makes this device write chosen pages",
      ),
    );
  const plugin = await loadWorkloadPlugin(spec);
  if (!devices.some((d) => plugin.supports(d)))
    throw new UsageError(
      `--workload ${plugin.name}: it supports none of ${devices.map((d) => `${d.address} (${hex4(d.vendorId)}:${hex4(d.deviceId)})`).join(", ")}`,
    );
  return devices.map((d) => {
    if (!plugin.supports(d))
      return none(
        `needs DMA: --workload ${plugin.name} does not support ${hex4(d.vendorId)}:${hex4(d.deviceId)}`,
      );
    const dma = plugin.dma;
    if (!dma) return none(`needs DMA: --workload ${plugin.name} cannot write chosen pages (it has no dma())`);
    return {
      source: { kind: "plugin", plugin: { ...plugin, dma: dma.bind(plugin) } },
      label: `DMA driven by --workload ${plugin.name}`,
    };
  });
}

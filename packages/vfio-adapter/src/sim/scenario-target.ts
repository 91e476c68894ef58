// The scenario target of a simulated host: what its device offers, and DMA through sim.dmaWrite.
// The VM tests build the same object for a real kernel (with an edu DMA instead).

import type { ScenarioTarget } from "../scenarios/scenario.ts";
import { KERNEL } from "./profile.ts";
import type { SimHost } from "./sim-host.ts";

/** Targets device `bdf` (default: the profile's first device) of a simulated host. */
export function simScenarioTarget(sim: SimHost, bdf?: string): ScenarioTarget {
  const p = sim.profile;
  const json = bdf ? p.devices.find((d) => d.bdf === bdf) : p.devices[0];
  if (!json) throw new Error(`no device ${bdf} in profile ${p.name}`);
  const info = sim.devices().find((d) => d.bdf === json.bdf)!;
  return {
    host: sim,
    bdf: json.bdf,
    group: json.group,
    ...(info.cdevPath ? { cdevPath: info.cdevPath } : {}),
    has: {
      type1: p.iommu.type1,
      iommufd: p.iommu.iommufd,
      cdev: p.iommu.cdev,
      dmaLogging: json.dmaLogging !== undefined && p.kernel >= 6001,
      migration: json.migration !== undefined && p.kernel >= 5018,
      preCopy: json.migration?.flags.includes("pre-copy") === true,
      iommuDirty: (json.iommuDirty ?? p.iommu.dirtyTracking) && p.kernel >= KERNEL.IOMMUFD_DIRTY,
      dma: true,
      precopyInfoV2: p.kernel >= KERNEL.PRECOPY_INFO_V2,
      type1Overflow: p.kernel >= KERNEL.TYPE1_OVERFLOW,
      deviceState: json.migration !== undefined,
    },
    changeDeviceState: () => sim.reconfigureDevice(json.bdf),
    dma: (iova, length) => {
      sim.dmaWrite(json.bdf, iova, length);
    },
  };
}

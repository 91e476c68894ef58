// `probe --format openmetrics`: what a probe found, as labelled gauges for node_exporter's
// textfile collector, so a fleet's dashboards show which hosts can migrate which devices.
// Unknown facts (null in --json, e.g. DMA logging without --open) have no sample: an absent
// series, not a false 0.

import type { ProbeDocument } from "../commands/probe.ts";
import type { MetricFamily } from "./exposition.ts";
import { type ExpositionFormat, expose } from "./exposition.ts";

const STRATEGIES = ["device", "iommufd", "type1", "all-dirty"] as const;
const MIGRATION_FLAGS = ["stop-copy", "p2p", "pre-copy"] as const;

/** The probe's metric families; `.text(format)` gives the exposition. */
export function probeMetrics(d: ProbeDocument): {
  families: MetricFamily[];
  text(f: ExpositionFormat): string;
} {
  const flag = (v: boolean) => (v ? 1 : 0);
  const perDevice = (
    pick: (dev: ProbeDocument["devices"][number]) => boolean | null | undefined,
  ): MetricFamily["samples"] =>
    d.devices.flatMap((dev) => {
      const v = pick(dev);
      return v === null || v === undefined ? [] : [{ labels: { device: dev.address }, value: flag(v) }];
    });
  const families: MetricFamily[] = [
    {
      name: "vfio_dirty_probe_info",
      type: "gauge",
      help: "The probe run: host, whether it is simulated, and whether the devices were opened (--open).",
      samples: [
        {
          labels: { host: d.host, simulated: String(d.simulated), opened: String(d.opened) },
          value: 1,
        },
      ],
    },
    {
      name: "vfio_dirty_device_info",
      type: "gauge",
      help: "A VFIO device probed: PCI ids, driver, IOMMU group and name (from pci.ids).",
      samples: d.devices.map((dev) => ({
        labels: {
          device: dev.address,
          vendor_id: dev.vendorId,
          device_id: dev.deviceId,
          driver: dev.driver ?? "",
          iommu_group: dev.iommuGroup ? String(dev.iommuGroup.id) : "",
          name: dev.name ?? "",
        },
        value: 1,
      })),
    },
    {
      name: "vfio_dirty_device_dma_logging_supported",
      type: "gauge",
      help: "1 when the device's driver does DMA logging (VFIO_DEVICE_FEATURE_DMA_LOGGING); absent when not known (no --open).",
      samples: perDevice((dev) => dev.dmaLogging.supported),
    },
    {
      name: "vfio_dirty_device_iommu_dirty_tracking_supported",
      type: "gauge",
      help: "1 when the device's IOMMU has hardware dirty tracking (what the kernel says with --open, else sysfs).",
      samples: perDevice((dev) => dev.iommu?.kernelDirtyTracking ?? dev.iommu?.dirtyTracking ?? false),
    },
    {
      name: "vfio_dirty_device_migration_flag",
      type: "gauge",
      help: "1 for each migration flag the device offers (VFIO_MIGRATION_STOP_COPY, P2P, PRE_COPY); absent when not known.",
      samples: d.devices.flatMap((dev) =>
        dev.migration
          ? MIGRATION_FLAGS.map((f) => ({
              labels: { device: dev.address, flag: f },
              value: flag(dev.migration!.flags.includes(f)),
            }))
          : [],
      ),
    },
    {
      name: "vfio_dirty_device_busy",
      type: "gauge",
      help: "1 when --open found the device held by another process (QEMU?); absent without --open.",
      samples: perDevice((dev) => dev.busy),
    },
    {
      name: "vfio_dirty_strategy",
      type: "gauge",
      help: "The dirty-tracking strategy vfio-dirty would use for these devices: 1 for the chosen one, 0 for the others.",
      samples: STRATEGIES.map((s) => ({ labels: { strategy: s }, value: flag(s === d.strategy) })),
    },
    {
      name: "vfio_dirty_strategy_provisional",
      type: "gauge",
      help: "1 when the strategy was decided from sysfs alone (without --open).",
      samples: [{ value: flag(d.provisional) }],
    },
    {
      name: "vfio_dirty_migration_blockers",
      type: "gauge",
      help: "Migration blockers found (certainty=found) and those sysfs alone cannot rule out (certainty=possible).",
      samples: [
        { labels: { certainty: "found" }, value: d.blockers.length },
        { labels: { certainty: "possible" }, value: d.possibleBlockers.length },
      ],
    },
    {
      name: "vfio_dirty_migration_blocker",
      type: "gauge",
      help: "Migration blockers the tracker found, by kind and device (empty for the whole set).",
      samples: countBy(d.blockerDetails.map((b) => ({ kind: b.kind, device: b.device ?? "" }))),
    },
  ];
  return { families, text: (format) => expose(families, format) };
}

// --- Internal helpers ---

/** One sample per distinct label set, valued by how often it occurs (a series may appear once). */
function countBy(labelSets: readonly Record<string, string>[]): MetricFamily["samples"] {
  const counts = new Map<string, { labels: Record<string, string>; value: number }>();
  for (const labels of labelSets) {
    const key = JSON.stringify(labels);
    const c = counts.get(key) ?? { labels, value: 0 };
    c.value++;
    counts.set(key, c);
  }
  return [...counts.values()];
}

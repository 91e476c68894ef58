// What `track --metrics-listen` serves while a run goes on: the latest sync's dirty rate and pages
// per tracking unit, sync cost, counters of syncs, pages, kernel bytes and events, and the
// strategy in use. A tracking unit is one device under device DMA logging; under IOMMU dirty
// tracking it is the whole IOMMU domain ("iommu": the hardware cannot tell which device wrote),
// and "all" for all-dirty. vfio_dirty_unit_device_info maps units to devices.
//
//   const m = new TrackMetrics({ host, simulated, devices, strategy, pageSize });
//   m.onSync(sample, report.perDevice);      // after each sync
//   m.text("openmetrics");

import type { SyncSample } from "../report.ts";
import { type ExpositionFormat, expose, type MetricFamily } from "./exposition.ts";

export interface TrackMetricsInfo {
  host: string;
  simulated: boolean;
  devices: readonly string[];
  strategy: string;
  pageSize: number;
}

/** Per tracking unit, what one sync reported (the tracker's DirtyReport.perDevice). */
export type UnitSync = Readonly<Record<string, { strategy: string; pages: number | undefined }>>;

const STRATEGIES = ["device", "iommufd", "type1", "all-dirty", "mixed"] as const;
const PHASES = ["setup", "pre-copy", "stop-copy"] as const;

export class TrackMetrics {
  #last: SyncSample | undefined;
  #strategy: string;
  #phase = "setup";
  #syncs = 0;
  #syncSeconds = 0;
  #pages = 0;
  #kernelBytes = 0;
  readonly #units = new Map<string, { strategy: string; pages: number; rate: number; total: number }>();
  readonly #events = new Map<string, number>();

  constructor(private readonly info: TrackMetricsInfo) {
    this.#strategy = info.strategy;
  }

  /** Records one sync: the loop's sample and, when the tracker counted them, its units' pages. */
  onSync(s: SyncSample, strategy: string, units: UnitSync | undefined): void {
    this.#last = s;
    this.#strategy = strategy;
    this.#phase = s.phase;
    this.#syncs++;
    this.#syncSeconds += s.syncMs / 1000;
    this.#pages += s.dirtyPages;
    this.#kernelBytes += s.bytesRead;
    for (const [unit, u] of Object.entries(units ?? {})) {
      const pages = u.pages ?? 0;
      const before = this.#units.get(unit)?.total ?? 0;
      const rate = s.intervalMs > 0 ? (pages * this.info.pageSize * 1000) / s.intervalMs : 0;
      this.#units.set(unit, { strategy: u.strategy, pages, rate, total: before + pages });
    }
  }

  /** Counts a tracker event (a fail-safe path taken: restarted, degraded, ...). */
  onEvent(kind: string): void {
    this.#events.set(kind, (this.#events.get(kind) ?? 0) + 1);
  }

  text(format: ExpositionFormat): string {
    return expose(this.families(), format);
  }

  families(): MetricFamily[] {
    const s = this.#last;
    const units = [...this.#units.entries()];
    const one = (value: number) => [{ value }];
    return [
      {
        name: "vfio_dirty_track_info",
        type: "gauge",
        help: "The running track: host, whether it is simulated (then sync times are the simulator's), page size.",
        samples: [
          {
            labels: {
              host: this.info.host,
              simulated: String(this.info.simulated),
              page_size_bytes: String(this.info.pageSize),
            },
            value: 1,
          },
        ],
      },
      {
        name: "vfio_dirty_strategy",
        type: "gauge",
        help: "The strategy the last sync used: 1 for it, 0 for the others (mixed: some unit degraded).",
        samples: STRATEGIES.map((st) => ({ labels: { strategy: st }, value: st === this.#strategy ? 1 : 0 })),
      },
      {
        name: "vfio_dirty_phase",
        type: "gauge",
        help: "The migration phase tracking is in: 1 for it, 0 for the others.",
        samples: PHASES.map((p) => ({ labels: { phase: p }, value: p === this.#phase ? 1 : 0 })),
      },
      {
        name: "vfio_dirty_unit_device_info",
        type: "gauge",
        help: "Which devices a tracking unit covers (a device itself, the IOMMU domain, or all-dirty).",
        samples: units.flatMap(([unit]) =>
          (this.info.devices.includes(unit) ? [unit] : this.info.devices).map((device) => ({
            labels: { unit, device },
            value: 1,
          })),
        ),
      },
      {
        name: "vfio_dirty_unit_strategy",
        type: "gauge",
        help: "The strategy each tracking unit used in the last sync: 1 for it, 0 for the others.",
        samples: units.flatMap(([unit, u]) =>
          STRATEGIES.filter((st) => st !== "mixed").map((st) => ({
            labels: { unit, strategy: st },
            value: st === u.strategy ? 1 : 0,
          })),
        ),
      },
      {
        name: "vfio_dirty_unit_dirty_rate_bytes_per_second",
        type: "gauge",
        help: "Dirty rate each tracking unit reported in the last sync (pages no earlier unit of that sync had).",
        samples: units.map(([unit, u]) => ({ labels: { unit }, value: u.rate })),
      },
      {
        name: "vfio_dirty_unit_sync_dirty_pages",
        type: "gauge",
        help: "Dirty pages each tracking unit reported in the last sync.",
        samples: units.map(([unit, u]) => ({ labels: { unit }, value: u.pages })),
      },
      {
        name: "vfio_dirty_unit_dirty_pages",
        type: "counter",
        help: "Dirty pages each tracking unit reported, over all syncs.",
        samples: units.map(([unit, u]) => ({ labels: { unit }, value: u.total })),
      },
      {
        name: "vfio_dirty_dirty_rate_bytes_per_second",
        type: "gauge",
        help: "Dirty rate of the whole guest in the last sync (tracking page size x dirty pages / interval).",
        samples: s ? one(s.dirtyRate) : [],
      },
      {
        name: "vfio_dirty_sync_dirty_pages",
        type: "gauge",
        help: "Dirty pages of the whole guest in the last sync.",
        samples: s ? one(s.dirtyPages) : [],
      },
      {
        name: "vfio_dirty_last_sync_duration_seconds",
        type: "gauge",
        help: "Wall time the last sync took (on the simulated host: the simulator's).",
        samples: s ? one(s.syncMs / 1000) : [],
      },
      {
        name: "vfio_dirty_sync_duration_seconds",
        type: "counter",
        help: "Wall time all syncs took; divided by vfio_dirty_syncs_total, the mean sync cost.",
        samples: one(this.#syncSeconds),
      },
      { name: "vfio_dirty_syncs", type: "counter", help: "Syncs done.", samples: one(this.#syncs) },
      {
        name: "vfio_dirty_dirty_pages",
        type: "counter",
        help: "Dirty pages reported over all syncs.",
        samples: one(this.#pages),
      },
      {
        name: "vfio_dirty_kernel_read_bytes",
        type: "counter",
        help: "Bitmap bytes read from the kernel.",
        samples: one(this.#kernelBytes),
      },
      {
        name: "vfio_dirty_events",
        type: "counter",
        help: "Fail-safe paths the tracker took (restarted, degraded, fallback ...), by kind.",
        samples: [...this.#events].map(([kind, n]) => ({ labels: { kind }, value: n })),
      },
    ];
  }
}

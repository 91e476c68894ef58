// What the track loop needs from a host, whichever it is: an opened tracker over the chosen
// devices, a way to let time pass while devices write memory, and, on the simulated host, the
// ground truth of what they wrote. sim.ts and linux.ts build one; loop.ts runs it.

import type { Bitmap, BitmapCore } from "@vfio-dirty/tracker";
import type { Host } from "@vfio-dirty/vfio-adapter";
import type { DeviceStateReader } from "./device-state.ts";

/** The part of the tracker's Tracker the loop uses. */
export interface TrackerLike {
  start(): void;
  setPhase(phase: "setup" | "pre-copy" | "stop-copy"): void;
  sync(opts: { onWindow: (window: Bitmap) => void }): {
    readonly seq: number;
    readonly phase: string;
    readonly strategy: string;
    readonly dirtyPages: number;
    readonly durationMs: number;
    readonly kernelBytes: number;
    readonly events: readonly { atMs: number; kind: string; unit: string; message: string }[];
    /** Per tracking unit (a device, "iommu" or "all"): its strategy and the pages it added. */
    readonly perDevice?: Readonly<Record<string, { strategy: string; pages: number | undefined }>>;
    /** The guest memory sections the sync covered (GPA, length, kind). */
    readonly perSection?: readonly { iova: bigint; length: bigint; kind: string }[];
  };
  stop(): void;
  close(): void;
  /** Every event since the tracker was created (start-time degradations included). */
  readonly events: readonly { atMs: number; kind: string; unit: string; message: string }[];
}

export interface TrackBackend {
  readonly host: Host;
  /** "sim:default", "linux": the first line of human output. */
  readonly hostName: string;
  readonly simulated: boolean;
  readonly devices: readonly string[];
  readonly strategy: string;
  /** Why better strategies were not taken, one line each. */
  readonly reasons: readonly string[];
  readonly pageSize: bigint;
  /** Guest RAM tracked, bytes. */
  readonly ramBytes: bigint;
  /** End of the GPA span of report bitmaps (they start at 0). */
  readonly gpaEnd: bigint;
  readonly workload: string;
  readonly core: BitmapCore;
  readonly tracker: TrackerLike;
  /** Let `ms` of (host) time pass while devices write; resolves early when `signal` aborts. */
  advance(ms: number, signal: AbortSignal): Promise<void>;
  /** Milliseconds since the backend was created, on the host's clock. */
  nowMs(): number;
  /**
   * The devices' migration data (MIG_DATA_SIZE, GET_PRECOPY_INFO), when asked for; its close()
   * runs in the backend's close(), on every path.
   */
  readonly deviceState?: DeviceStateReader;
  /**
   * Stop-copy: stop the devices' DMA (STOP_COPY, workload plugins stopped). Returns a note for
   * each device that cannot be stopped. Later advance() calls only let time pass.
   */
  quiesce?(): string[];
  /**
   * 4 KiB GPA page numbers devices wrote since tracking started, ascending; undefined when the
   * host cannot know (a real host without a workload plugin).
   */
  writtenSinceStart?(): number[];
  /**
   * Stop everything started (tracking, workloads, fds). Idempotent; never throws. Returns whether
   * the host confirms that no dirty tracking is left running (null when it cannot tell).
   */
  close(): boolean | null;
}

// Device DMA logging: VFIO_DEVICE_FEATURE DMA_LOGGING_START / REPORT / STOP on one device.
//
// The ranges come from ranges.ts (QEMU's split, then learned from E2BIG / EOPNOTSUPP); every
// attempt is kept in `startNotes`. The device may choose another logging page size than the one
// asked for and writes it back. A device clears every logging page a REPORT touches, so a REPORT
// never cuts one: with logging pages larger than the tracking page, each query is widened to whole
// logging pages, read at the device's page size into a scratch bitmap and converted (bitmap-wasm);
// otherwise the kernel writes straight into the caller's bitmap in wasm memory (REPORT only ever
// sets bits, so devices can share one bitmap).
//
//   const s = new DeviceLoggingStrategy(device, core, 4096n);
//   s.start(sections);   // throws the last IoctlError when no plan is accepted
//   s.query(iova, length, bitmap);

import { IoctlError } from "@vfio-dirty/vfio-adapter";
import type { Bitmap, BitmapCore } from "../bitmap.ts";
import {
  type IovaRange,
  type MemorySection,
  mergeOverlapping,
  planLogging,
  startWithRetry,
} from "../ranges.ts";
import type { DirtyStrategy } from "../strategy.ts";
import { viaScratch, wordView } from "./place.ts";
import { StopFailedError, stopWithRetry } from "./stopping.ts";

/** The part of the adapter's Device this strategy uses. */
export interface LoggingDevice {
  readonly label: string;
  dmaLoggingStart(ranges: readonly IovaRange[], pageSize: bigint): bigint;
  dmaLoggingStop(): void;
  dmaLoggingReport(a: { iova: bigint; length: bigint; pageSize: bigint; bitmap: Uint8Array }): void;
  getMigState?(): number;
  /** Closes the device's fd: the last resort when DMA_LOGGING_STOP keeps failing. */
  close?(): void;
  /** Resets done through this device object (adapter Device.resetCount). */
  readonly resetCount?: number;
}

export interface DeviceLoggingOptions {
  /** Bound on DMA_LOGGING_START attempts; default 8. */
  readonly maxAttempts?: number;
  /** Read the migration state before each query to catch ERROR and resets; default true. */
  readonly watchMigState?: boolean;
  /** DMA_LOGGING_STOP attempts before the device's fd is closed instead; default 3. */
  readonly stopAttempts?: number;
}

/** enum vfio_device_mig_state values the health check needs (include/uapi/linux/vfio.h). */
const MIG_STATE_ERROR = 0;
const MIG_STATE_RUNNING = 2;

export class DeviceLoggingStrategy implements DirtyStrategy {
  readonly name = "device" as const;
  kernelBytes = 0;
  /** The page size the device logs at (written back by DMA_LOGGING_START). */
  devicePageSize: bigint;
  /** What the last start tried. */
  startNotes: string[] = [];
  /** The ranges the device accepted. */
  loggedRanges: readonly IovaRange[] = [];
  /** loggedRanges merged and sorted, for covers(): asked for every vIOMMU mapping. */
  #covered: readonly IovaRange[] = [];
  #running = false;
  #lastMigState: number | undefined;
  #lastResets: number | undefined;
  readonly #opts: DeviceLoggingOptions;

  constructor(
    readonly device: LoggingDevice,
    readonly core: BitmapCore,
    readonly pageSize: bigint,
    opts: DeviceLoggingOptions = {},
  ) {
    this.devicePageSize = pageSize;
    this.#opts = opts;
  }

  start(ranges: readonly IovaRange[]): void {
    const sections: MemorySection[] = ranges.map((r) => ({
      iova: r.iova,
      length: r.length,
      kind: (r as Partial<MemorySection>).kind ?? "ram",
    }));
    let lastError: unknown;
    let granted = this.pageSize;
    const result = startWithRetry(
      planLogging(sections, this.pageSize),
      (plan) => {
        try {
          granted = this.device.dmaLoggingStart(plan, this.pageSize);
          return 0;
        } catch (e) {
          if (!(e instanceof IoctlError)) throw e;
          lastError = e;
          return e.errno;
        }
      },
      this.#opts.maxAttempts ?? 8,
    );
    this.startNotes = result.attempts.map(
      (a) => `${a.note}: ${a.ranges.length} range(s) -> ${a.errno === 0 ? "accepted" : `errno ${a.errno}`}`,
    );
    if (!result.ok) throw lastError ?? new Error(`${this.device.label}: DMA logging start failed`);
    if (granted !== this.pageSize)
      this.startNotes.push(`device logs at page size 0x${granted.toString(16)}; reports are converted`);
    this.devicePageSize = granted;
    this.loggedRanges = result.ranges;
    this.#covered = mergeOverlapping(result.ranges);
    this.#running = true;
    this.#lastMigState = this.#readMigState();
    this.#lastResets = this.device.resetCount;
  }

  /**
   * DMA_LOGGING_STOP, tried up to `stopAttempts` times. If it keeps failing and tracking ends
   * (`final`), the device's fd is closed when the device allows it (the driver's close_device
   * stops logging: mlx5vf's close_migratable frees the tracker, the test driver frees its log),
   * and the error thrown says so: nothing may be left logging after the tracker is closed. Not
   * final (a restart), the error is thrown and the strategy stays stoppable.
   */
  stop(final = true): void {
    if (!this.#running) return;
    const attempts = this.#opts.stopAttempts ?? 3;
    const last = stopWithRetry(() => this.device.dmaLoggingStop(), attempts);
    if (last === undefined) {
      this.#running = false;
      return;
    }
    const why = last instanceof Error ? last.message : String(last);
    const failed = `${this.device.label}: DMA_LOGGING_STOP failed ${attempts} times (${why})`;
    if (!final || !this.device.close) throw new StopFailedError(failed, last);
    this.#running = false;
    try {
      this.device.close();
    } catch (e) {
      throw new StopFailedError(
        `${failed}, and closing the device's fd failed too: ${e instanceof Error ? e.message : String(e)}`,
        last,
      );
    }
    throw new StopFailedError(
      `${failed}; closed the device's fd as the last resort (its driver stops logging on close)`,
      last,
      true,
    );
  }

  covers(r: IovaRange): boolean {
    // The merged range holding r's start (binary search), which must reach r's end.
    const c = this.#covered;
    let lo = 0;
    let hi = c.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (c[mid]!.iova <= r.iova) lo = mid + 1;
      else hi = mid;
    }
    const m = c[lo - 1];
    return m !== undefined && r.iova + r.length <= m.iova + m.length;
  }

  check(): string | undefined {
    // A reset between two syncs may leave the migration state where it was (RUNNING before and
    // after): only the reset count shows it. The real edu-log driver forgets its log on reset.
    const resets = this.device.resetCount;
    const resetSeen = resets !== undefined && this.#lastResets !== undefined && resets !== this.#lastResets;
    this.#lastResets = resets;
    const state = this.#readMigState();
    if (resetSeen) {
      if (state !== undefined) this.#lastMigState = state;
      return `${this.device.label}: device was reset (VFIO_DEVICE_RESET) since the last sync; its log was reset`;
    }
    if (state === undefined) return undefined;
    const before = this.#lastMigState;
    this.#lastMigState = state;
    if (state === MIG_STATE_ERROR)
      return `${this.device.label}: device in the ERROR migration state; its log is lost`;
    if (before !== undefined && before !== MIG_STATE_RUNNING && state === MIG_STATE_RUNNING)
      return `${this.device.label}: device went back to RUNNING (reset?); its log was reset`;
    return undefined;
  }

  get clearGranule(): bigint {
    return this.devicePageSize;
  }

  readonly widensQueries = true;

  /**
   * REPORT never cuts a logging page: the device clears a page it reports whole (the harsh real
   * behaviour), so [iova, iova + length) is widened to whole logging pages. The extra pages land in
   * `into` as over-reporting, clamped to its span; the tracker aligns windows to logging pages, so
   * nothing a later query would need falls outside it.
   */
  query(iova: bigint, length: bigint, into: Bitmap): void {
    const P = into.pageSize;
    const D = this.devicePageSize;
    if (D <= P) {
      // Tracking pages are whole logging pages: REPORT at P (the kernel coarsens) cuts none.
      this.#report(iova, length, P, into);
      return;
    }
    const lo = (iova / D) * D;
    const hi = ((iova + length + D - 1n) / D) * D;
    viaScratch(this.core, { nbits: Number((hi - lo) / D), pageSize: D, base: lo }, into, (scratch) => {
      this.device.dmaLoggingReport({ iova: lo, length: hi - lo, pageSize: D, bitmap: scratch.bytes });
      this.kernelBytes += scratch.byteLength;
    });
  }

  /** REPORT [iova, iova + length) at `pageSize` (that of `into`) into `into`. */
  #report(iova: bigint, length: bigint, pageSize: bigint, into: Bitmap): void {
    const words = wordView(into, iova, length);
    if (words) {
      // Zero copy: the kernel ORs straight into the caller's words in wasm memory.
      this.device.dmaLoggingReport({ iova, length, pageSize, bitmap: words });
      this.kernelBytes += words.byteLength;
      return;
    }
    viaScratch(this.core, { nbits: Number(length / pageSize), pageSize, base: iova }, into, (scratch) => {
      this.device.dmaLoggingReport({ iova, length, pageSize, bitmap: scratch.bytes });
      this.kernelBytes += scratch.byteLength;
    });
  }

  #readMigState(): number | undefined {
    if (this.#opts.watchMigState === false || !this.device.getMigState) return undefined;
    try {
      return this.device.getMigState();
    } catch {
      // Not migratable (ENOTTY at start): nothing to watch. A device that answered before and
      // fails now is not healthy: report it as ERROR.
      return this.#lastMigState === undefined ? undefined : MIG_STATE_ERROR;
    }
  }
}

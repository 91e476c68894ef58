// The devices' migration data while `track` runs, read as QEMU's VFIO migration code reads it
// (hw/vfio/migration.c): MIG_DATA_SIZE for the stop-copy size (vfio_query_stop_copy_size), the
// 7.1 PRECOPY_INFOv2 opt-in when the device answers its PROBE, RUNNING -> PRE_COPY at the start
// of pre-copy, one VFIO_MIG_GET_PRECOPY_INFO per sync (vfio_query_precopy_size), and the data fd
// drained as a VMM sends it, so the numbers shrink and grow again as on a real migration. At the
// end each device goes back from PRE_COPY to RUNNING.
//
// Advisory: a failure is an event naming the operation, the device and the errno, and that
// device's readings stop where they got; dirty tracking never depends on any of this. A device
// is only moved back to RUNNING in close(), after the tracker's last sync: mid-run, the tracker
// would take PRE_COPY -> RUNNING for a reset and report the whole log dirty.
//
//   const ds = new DeviceStateReader(host, devices);
//   ds.start(0); ds.sample(1000); ...; ds.finish(tMs); report.deviceState = ds.section();
//   ds.close();                       // on every path (the backend's close runs it)

import { type Device, Errno, errnoName, type Fd, type Host, uapi, VfioError } from "@vfio-dirty/vfio-adapter";
import type { DeviceStateReading, DeviceStateSection, PrecopyInfoReading } from "../report.ts";

/** One event of the report (kind "device-state"). */
export interface DeviceStateEvent {
  tMs: number;
  kind: "device-state";
  message: string;
}

export interface DeviceStateOptions {
  /** Bytes per read(2) of the data fd (QEMU's VFIO_MIG_DEFAULT_DATA_BUFFER_SIZE is 1 MiB). */
  chunkBytes?: number;
}

interface Tracked {
  address: string;
  device: Device;
  reading: DeviceStateReading;
  /** MIG_DATA_SIZE answered at start: read it again at the end. */
  hasDataSize: boolean;
  /** The PRE_COPY session's data fd (ours to close), or undefined. */
  dataFd: Fd | undefined;
  /** Still taking GET_PRECOPY_INFO readings. */
  sampling: boolean;
  /** Bytes read from the data fd and discarded. */
  bytesDrained: number;
}

const DEFAULT_CHUNK = 1 << 20;
const READINGS_STOP = "this device's device-state readings stop here";
// The kernel's last close of the device fd resets its migration state (mlx5 close_device).
const LEFT_IN_PRECOPY = "the device may stay in PRE_COPY until its fd closes";

export class DeviceStateReader {
  readonly #host: Host;
  readonly #tracked: Tracked[] = [];
  readonly #events: DeviceStateEvent[] = [];
  readonly #chunk: Uint8Array;
  #started = false;
  #finished = false;
  #closed = false;

  constructor(
    host: Host,
    readonly devices: ReadonlyMap<string, Device>,
    opts: DeviceStateOptions = {},
  ) {
    this.#host = host;
    this.#chunk = new Uint8Array(opts.chunkBytes ?? DEFAULT_CHUNK);
  }

  /**
   * Pre-copy begins: for each migratable device, MIG_DATA_SIZE, the v2 opt-in and RUNNING ->
   * PRE_COPY (devices with PRE_COPY only). Devices without VFIO migration are left out.
   */
  start(tMs: number): void {
    if (this.#started) return;
    this.#started = true;
    for (const [address, device] of this.devices) {
      let flags: number;
      try {
        flags = device.getMigrationFlags();
      } catch (err) {
        if (!(err instanceof VfioError)) throw err;
        continue; // ENOTTY: no VFIO migration, no device state to read
      }
      if ((flags & uapi.VFIO_MIGRATION_STOP_COPY) === 0) continue;
      const preCopy = (flags & uapi.VFIO_MIGRATION_PRE_COPY) !== 0;
      const t: Tracked = {
        address,
        device,
        reading: { device: address, stopCopyBytes: null, precopyInfoVersion: null, precopy: [] },
        hasDataSize: false,
        dataFd: undefined,
        sampling: false,
        bytesDrained: 0,
      };
      this.#tracked.push(t);
      this.#readDataSize(t, tMs, "quiet");
      if (!preCopy) continue;
      // The opt-in where the device answers its PROBE (QEMU 11.1 does it before pre-copy); a
      // failed opt-in is an event, and the device is read as v1 (its REINIT ignored).
      this.#try(t, tMs, "VFIO_DEVICE_FEATURE(SET|MIG_PRECOPY_INFOv2)", () => device.enablePrecopyInfoV2());
      t.reading.precopyInfoVersion = device.precopyInfoV2 ? 2 : 1;
      this.#enterPrecopy(t, tMs);
    }
  }

  /** One sync: GET_PRECOPY_INFO of each device in PRE_COPY, then its data fd drained. */
  sample(tMs: number): void {
    if (this.#finished) return;
    for (const t of this.#tracked) {
      if (!t.sampling || t.dataFd === undefined) continue;
      const fd = t.dataFd;
      const info = this.#try(t, tMs, "VFIO_MIG_GET_PRECOPY_INFO", () => t.device.getPrecopyInfo(fd));
      if (!info) {
        t.sampling = false;
        continue;
      }
      const reading: PrecopyInfoReading = {
        tMs,
        initialBytes: Number(info.initialBytes),
        dirtyBytes: Number(info.dirtyBytes),
        reinit: info.reinit,
      };
      t.reading.precopy.push(reading);
      const before = t.bytesDrained;
      const drained = this.#try(t, tMs, "read", () =>
        this.#drain(t, fd, info.initialBytes + info.dirtyBytes),
      );
      // What was read before a failure counts too: predict must not see it again as new data.
      reading.drainedBytes = t.bytesDrained - before;
      if (!drained) t.sampling = false;
    }
  }

  /**
   * Pre-copy ends (the switch to stop-copy, or the end of the run): MIG_DATA_SIZE once more, and
   * no readings after. The devices stay where they are until close().
   */
  finish(tMs: number): void {
    if (this.#finished) return;
    this.#finished = true;
    for (const t of this.#tracked) {
      t.sampling = false;
      if (t.hasDataSize) this.#readDataSize(t, tMs, "event");
    }
  }

  /** The report section: one entry per migratable device. */
  section(): DeviceStateSection {
    return { devices: this.#tracked.map((t) => ({ ...t.reading, precopy: [...t.reading.precopy] })) };
  }

  /** Bytes read from each device's data fd and discarded, by PCI address. */
  bytesDrained(): Record<string, number> {
    return Object.fromEntries(this.#tracked.map((t) => [t.address, t.bytesDrained]));
  }

  /** The events recorded since the last call. */
  takeEvents(): DeviceStateEvent[] {
    return this.#events.splice(0);
  }

  /**
   * Every device this reader moved to PRE_COPY goes back to RUNNING (from PRE_COPY or
   * PRE_COPY_P2P; a device the stop-copy switch moved on stays there), and the data fds close.
   * Idempotent; never throws (a failure is an event).
   */
  close(tMs = 0): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#tracked) {
      if (t.dataFd === undefined) continue;
      const fd = t.dataFd;
      t.dataFd = undefined;
      const op = "VFIO_DEVICE_FEATURE(SET|MIG_DEVICE_STATE) to RUNNING";
      try {
        const state = t.device.getMigState();
        if (state === uapi.VFIO_DEVICE_STATE_PRE_COPY || state === uapi.VFIO_DEVICE_STATE_PRE_COPY_P2P) {
          const r = t.device.setMigState(uapi.VFIO_DEVICE_STATE_RUNNING);
          if (r.dataFd >= 0) this.#host.close(r.dataFd);
        }
      } catch (err) {
        // On the way out nothing may throw: whatever failed is said in the event.
        this.#event(t, tMs, op, err, LEFT_IN_PRECOPY);
      } finally {
        this.#host.close(fd);
      }
    }
  }

  // --- Internal helpers ---

  #enterPrecopy(t: Tracked, tMs: number): void {
    const r = this.#try(t, tMs, "VFIO_DEVICE_FEATURE(SET|MIG_DEVICE_STATE)", () => {
      // Only from RUNNING: a device some other path already moved is not ours to move.
      const state = t.device.getMigState();
      if (state !== uapi.VFIO_DEVICE_STATE_RUNNING) {
        this.#events.push({
          tMs,
          kind: "device-state",
          message: `${t.address}: in migration state ${uapi.VFIO_DEVICE_STATE_NAMES[state] ?? state}, not RUNNING: no pre-copy readings`,
        });
        return undefined;
      }
      return t.device.setMigState(uapi.VFIO_DEVICE_STATE_PRE_COPY);
    });
    if (!r) return;
    if (r.dataFd < 0) {
      this.#events.push({
        tMs,
        kind: "device-state",
        message: `${t.address}: RUNNING -> PRE_COPY gave no migration data fd: no pre-copy readings`,
      });
      return;
    }
    t.dataFd = r.dataFd;
    t.sampling = true;
  }

  /**
   * Reads and discards what the device has ready, at most `pending` bytes (what GET_PRECOPY_INFO
   * just announced, in whole chunks): a device that keeps producing cannot hold the loop. Stops
   * at ENOMSG (PRE_COPY's "no data now") or the end of the stream.
   */
  #drain(t: Tracked, fd: Fd, pending: bigint): true {
    let left = pending;
    while (left > 0n) {
      const n = t.device.readMigrationData(fd, this.#chunk);
      if (n === null || n === 0) break;
      t.bytesDrained += n;
      left -= BigInt(n);
    }
    return true;
  }

  /** MIG_DATA_SIZE into the reading. "quiet" (at start): ENOTTY/EINVAL mean the device cannot say. */
  #readDataSize(t: Tracked, tMs: number, mode: "quiet" | "event"): void {
    try {
      t.reading.stopCopyBytes = Number(t.device.getMigDataSize());
      t.hasDataSize = true;
    } catch (err) {
      if (!(err instanceof VfioError)) throw err;
      // ENOTTY (a kernel before 6.2) or EINVAL (the driver lacks it) at start: the device cannot
      // say, null. Any other answer, or a failure after it answered, is news.
      const errno = (err as { errno?: unknown }).errno;
      const cannotSay = errno === Errno.ENOTTY || errno === Errno.EINVAL;
      if (mode === "event" || !cannotSay)
        this.#event(
          t,
          tMs,
          "VFIO_DEVICE_FEATURE(GET|MIG_DATA_SIZE)",
          err,
          "stopCopyBytes is the last answer, or null",
        );
    }
  }

  /** Runs `fn`; a VfioError becomes an event and undefined. */
  #try<T>(t: Tracked, tMs: number, op: string, fn: () => T, outcome = READINGS_STOP): T | undefined {
    try {
      return fn();
    } catch (err) {
      if (!(err instanceof VfioError)) throw err;
      this.#event(t, tMs, op, err, outcome);
      return undefined;
    }
  }

  #event(t: Tracked, tMs: number, op: string, err: unknown, outcome = READINGS_STOP): void {
    const errno = (err as { errno?: unknown }).errno;
    const what = typeof errno === "number" ? errnoName(errno) : "failed";
    // The fd and fields, not the adapter's hint: "its dirty log must be treated as lost" is about
    // the log, which these calls never touch.
    const e = err as { detail?: unknown; target?: unknown };
    const detail =
      typeof e.detail === "string"
        ? e.detail
        : typeof e.target === "string"
          ? e.target
          : err instanceof Error
            ? err.message
            : String(err);
    this.#events.push({
      tMs,
      kind: "device-state",
      message: `${t.address}: ${op} failed (${what}): ${outcome}; dirty tracking is not affected (${detail})`,
    });
  }
}

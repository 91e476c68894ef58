// A VFIO device's migration data during pre-copy, as VFIO_MIG_GET_PRECOPY_INFO reports it.
//
// In PRE_COPY a device offers data to read from its migration data fd before it stops:
// `initial_bytes` (what the destination needs first; it shrinks as it is read) and `dirty_bytes`
// (state the device changed since; it grows as the device works). The 7.1 uAPI adds
// VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2: after that opt-in, initial data may appear again (a
// reconfiguration), flagged by VFIO_PRECOPY_INFO_REINIT, and dirty_bytes restarts from zero.
// Without the opt-in (v1) initial_bytes never grows: the same new data shows up as dirty_bytes.
//
//   const d = new PrecopyDeviceState({ infoVersion: 2, initialBytes: 64 << 20, dirtyRate: 1e6,
//                                      reinit: [{ atMs: 2000, initialBytes: 32 << 20 }] });
//   d.read(0);      // what GET_PRECOPY_INFO says at each sync: { initialBytes, dirtyBytes, reinit }
//   d.sendAll();    // an iteration read everything that was there
//
// Times are seconds since pre-copy started, sizes bytes.

/** What a device's pre-copy data looks like: from the command line or a track report. */
export interface PrecopyDeviceData {
  /** 1: VFIO_MIG_GET_PRECOPY_INFO as before 7.1; 2: after the PRECOPY_INFOv2 opt-in (REINIT). */
  readonly infoVersion: 1 | 2;
  /** initial_bytes when pre-copy starts. */
  readonly initialBytes: number;
  /** dirty_bytes when pre-copy starts; default 0. */
  readonly dirtyBytes?: number;
  /** How fast the device's state changes during pre-copy (dirty_bytes growth), bytes/s; default 0. */
  readonly dirtyRate?: number;
  /** New initial data the device produces at `atMs` into pre-copy: `initialBytes` is its size. */
  readonly reinit?: readonly { readonly atMs: number; readonly initialBytes: number }[];
}

/** One GET_PRECOPY_INFO reading. */
export interface PrecopyReading {
  readonly initialBytes: number;
  readonly dirtyBytes: number;
  /** VFIO_PRECOPY_INFO_REINIT was set (v2 only): new initial data since the last reading. */
  readonly reinit: boolean;
}

/** The pre-copy data one device still has to send, as time passes and iterations read it. */
export class PrecopyDeviceState {
  #initial: number;
  #dirty: number;
  #readAt = 0;
  #next = 0;
  readonly #events: readonly { readonly at: number; readonly initialBytes: number }[];

  constructor(readonly data: PrecopyDeviceData) {
    this.#initial = data.initialBytes;
    this.#dirty = data.dirtyBytes ?? 0;
    this.#events = [...(data.reinit ?? [])]
      .map((e) => ({ at: e.atMs / 1000, initialBytes: e.initialBytes }))
      .sort((a, b) => a.at - b.at);
  }

  /** What GET_PRECOPY_INFO says at time `at` (seconds; never earlier than the last reading). */
  read(at: number): PrecopyReading {
    const rate = this.data.dirtyRate ?? 0;
    let reinit = false;
    let cursor = this.#readAt;
    while (this.#next < this.#events.length && this.#events[this.#next]!.at <= at) {
      const e = this.#events[this.#next++]!;
      this.#dirty += rate * (e.at - cursor);
      cursor = e.at;
      if (this.data.infoVersion === 2) {
        // REINIT: a new initial_bytes value, and dirty_bytes relative to the new initial data.
        this.#initial = e.initialBytes;
        this.#dirty = 0;
        reinit = true;
      } else {
        // v1 cannot say "initial again": the driver reports the new data as dirty_bytes.
        this.#dirty += e.initialBytes;
      }
    }
    this.#dirty += rate * (at - cursor);
    this.#readAt = at;
    return { initialBytes: this.#initial, dirtyBytes: this.#dirty, reinit };
  }

  /** An iteration read out everything the device offered: initial data first, then dirty data. */
  sendAll(): number {
    const sent = this.#initial + this.#dirty;
    this.#initial = 0;
    this.#dirty = 0;
    return sent;
  }

  /** Data still unread (initial + dirty) as of the last reading. */
  get pendingBytes(): number {
    return this.#initial + this.#dirty;
  }

  get initialBytes(): number {
    return this.#initial;
  }
}

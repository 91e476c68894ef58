// A device's migration: its state machine and the data sessions behind migration data fds.
//
// Each SET walks the kernel's arcs one at a time (vfio_mig_get_next_state in
// drivers/vfio/vfio_main.c, encoded once in uapi's nextMigState): arcs through states the device
// lacks are skipped, and a state whose feature the device lacks, a blocked arc (STOP_COPY ->
// PRE_COPY) or any request out of ERROR is EINVAL, state unchanged.
//
//   const fsm = new MigrationFsm({ flags: VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P, stateBytes: 48n });
//   fsm.set(VFIO_DEVICE_STATE_STOP_COPY);   // RUNNING -> RUNNING_P2P -> STOP -> STOP_COPY; { rc: 0, session }
//
// The data sessions follow what mlx5 and the project's edu-log driver do (the VM fidelity run
// compares the latter with this model):
//   RUNNING -> PRE_COPY        a save session with `precopyInitialBytes` of initial data
//   GET_PRECOPY_INFO           initial bytes not read yet; dirty bytes only once they are read
//                              (the running device dirties `precopyDirtyBytes` per query round).
//                              A reconfiguration since the last query (reconfigure(), or the
//                              profile's reinitAfterMs) puts the whole initial state on the stream
//                              again: after the 7.1 v2 opt-in as new initial data with REINIT
//                              (everything unread counts as initial), without it as dirty bytes
//                              and `flags` handed back as passed in
//   read                       initial data first, then dirty; nothing left in PRE_COPY is ENOMSG
//   PRE_COPY_P2P -> STOP_COPY  whatever is unread plus the final `stateBytes`; then end of stream
//   STOP -> STOP_COPY          a save session with just the final `stateBytes`
//   STOP -> RESUMING           a resume session; RESUMING -> STOP needs some data written (EINVAL)
// Leaving the data states (PRE_COPY -> RUNNING, STOP_COPY -> STOP, RESUMING -> STOP), ERROR, a
// reset and the last close end the session: its fd then reads ENODEV.

import { Errno } from "../errors.ts";
import {
  nextMigState,
  VFIO_DEVICE_STATE_ERROR,
  VFIO_DEVICE_STATE_PRE_COPY,
  VFIO_DEVICE_STATE_PRE_COPY_P2P,
  VFIO_DEVICE_STATE_RESUMING,
  VFIO_DEVICE_STATE_RUNNING,
  VFIO_DEVICE_STATE_RUNNING_P2P,
  VFIO_DEVICE_STATE_STOP,
  VFIO_DEVICE_STATE_STOP_COPY,
  VFIO_PRECOPY_INFO_REINIT,
} from "../uapi/index.ts";

/** What a device's migration data looks like (the profile's `migration` block, resolved). */
export interface MigrationModel {
  /** VFIO_MIGRATION_* the device reports. */
  flags: number;
  /** The final state read in STOP_COPY (also MIG_DATA_SIZE). */
  stateBytes: bigint;
  /** Initial pre-copy data; a reconfiguration puts this much on the stream again. */
  precopyInitialBytes?: bigint;
  /** State the running device changes per query round once the initial data is read. */
  precopyDirtyBytes?: bigint;
  /** Milliseconds after a pre-copy session opens at which the device reconfigures. */
  reinitAfterMs?: readonly number[];
}

/** The driver's migration file behind one data fd. */
export class MigrationSession {
  /** The session ended (the fd reads ENODEV). */
  disabled = false;
  /** Save: initial data not read yet. */
  initialLeft = 0n;
  /** Save: dirty data not read yet. */
  dirtyLeft = 0n;
  /** Save, in STOP_COPY: bytes to the end of the stream. */
  finalLeft = 0n;
  /** Resume: bytes written so far. */
  written = 0n;
  /** Reconfigurations (reinitAfterMs) already put on the stream. */
  reinitsSeen = 0;

  constructor(
    readonly kind: "save" | "resume",
    /** Clock reading (ms) when the session opened. */
    readonly openedAtMs: number,
  ) {}
}

export class MigrationFsm {
  state: number = VFIO_DEVICE_STATE_RUNNING;
  /** The open data session, if any (a device has at most one). */
  session: MigrationSession | undefined;
  /** A reconfiguration happened that no query has seen yet. */
  changed = false;
  readonly flags: number;

  constructor(readonly model: MigrationModel) {
    this.flags = model.flags;
  }

  /** True while the device may issue DMA: RUNNING, PRE_COPY and their P2P forms. */
  get running(): boolean {
    const s = this.state;
    return (
      s === VFIO_DEVICE_STATE_RUNNING ||
      s === VFIO_DEVICE_STATE_PRE_COPY ||
      s === VFIO_DEVICE_STATE_RUNNING_P2P ||
      s === VFIO_DEVICE_STATE_PRE_COPY_P2P
    );
  }

  /** The device broke (injected): ERROR, from which every request is EINVAL; its session ends. */
  fail(): void {
    this.state = VFIO_DEVICE_STATE_ERROR;
    this.end();
  }

  /** Back to RUNNING with no session, as a driver's close_device or a reset does. */
  reset(): void {
    this.state = VFIO_DEVICE_STATE_RUNNING;
    this.changed = false;
    this.end();
  }

  /** The device's guest-visible state changed (its initial data must be sent again). */
  reconfigure(): void {
    this.changed = true;
  }

  /**
   * Moves to `target` arc by arc. `session` is the new data session for the arcs that open one
   * (into STOP_COPY or RESUMING from STOP, into PRE_COPY from RUNNING, into PRE_COPY_P2P from
   * RUNNING_P2P); `dataFd` says whether there is one.
   */
  set(target: number, nowMs = 0): { rc: number; dataFd: boolean; session?: MigrationSession } {
    let opened: MigrationSession | undefined;
    while (this.state !== target) {
      const next = nextMigState(this.state, target, this.flags);
      if (next === undefined) return { rc: -Errno.EINVAL, dataFd: false };
      const rc = this.step(this.state, next, nowMs);
      if (typeof rc === "number") return { rc, dataFd: false };
      if (rc) opened = rc;
      this.state = next;
    }
    return opened ? { rc: 0, dataFd: true, session: opened } : { rc: 0, dataFd: false };
  }

  /**
   * VFIO_MIG_GET_PRECOPY_INFO on `s`: EINVAL outside the PRE_COPY states, ENODEV for an ended
   * session. `flagsIn` is what user space passed; `v2` the device's PRECOPY_INFOv2 opt-in.
   */
  precopyInfo(
    s: MigrationSession,
    flagsIn: number,
    v2: boolean,
    nowMs: number,
  ): { rc: number; flags: number; initialBytes: bigint; dirtyBytes: bigint } {
    const none = { flags: flagsIn, initialBytes: 0n, dirtyBytes: 0n };
    if (this.state !== VFIO_DEVICE_STATE_PRE_COPY && this.state !== VFIO_DEVICE_STATE_PRE_COPY_P2P)
      return { rc: -Errno.EINVAL, ...none };
    if (s.disabled) return { rc: -Errno.ENODEV, ...none };
    const due = (this.model.reinitAfterMs ?? []).filter((t) => s.openedAtMs + t <= nowMs).length;
    if (due > s.reinitsSeen) {
      s.reinitsSeen = due;
      this.changed = true;
    }
    let reinit = false;
    if (this.changed) {
      this.changed = false;
      const initial = this.model.precopyInitialBytes ?? 0n;
      if (v2) {
        s.initialLeft += s.dirtyLeft + initial;
        s.dirtyLeft = 0n;
        reinit = true;
      } else s.dirtyLeft += initial;
    } else if (s.initialLeft === 0n && s.dirtyLeft === 0n && this.state === VFIO_DEVICE_STATE_PRE_COPY)
      s.dirtyLeft = this.model.precopyDirtyBytes ?? 0n;
    // The 7.1 core zeroes `flags` after the opt-in; before it (and without it) they go back as sent.
    const flags = v2 ? (reinit ? VFIO_PRECOPY_INFO_REINIT : 0) : flagsIn;
    return { rc: 0, flags, initialBytes: s.initialLeft, dirtyBytes: s.dirtyLeft };
  }

  /** read(2) of up to `length` bytes from a save session: the count, 0 at the end, or -errno. */
  read(s: MigrationSession, length: number): number {
    // The driver opens a save file O_RDONLY and a resume file O_WRONLY: the VFS refuses the other way.
    if (s.kind !== "save") return -Errno.EBADF;
    if (s.disabled) return -Errno.ENODEV;
    const want = BigInt(length);
    if (this.state === VFIO_DEVICE_STATE_STOP_COPY) {
      const n = want < s.finalLeft ? want : s.finalLeft;
      s.finalLeft -= n;
      return Number(n);
    }
    if (s.initialLeft + s.dirtyLeft === 0n) return -Errno.ENOMSG;
    const fromInitial = want < s.initialLeft ? want : s.initialLeft;
    s.initialLeft -= fromInitial;
    const rest = want - fromInitial;
    const fromDirty = rest < s.dirtyLeft ? rest : s.dirtyLeft;
    s.dirtyLeft -= fromDirty;
    return Number(fromInitial + fromDirty);
  }

  /** write(2) of `length` bytes into a resume session: the count or -errno. */
  write(s: MigrationSession, length: number): number {
    if (s.kind !== "resume") return -Errno.EBADF;
    if (s.disabled) return -Errno.ENODEV;
    s.written += BigInt(length);
    return length;
  }

  // --- Internal helpers ---

  /** One arc: a new session, undefined, or -errno (the state stays). */
  private step(from: number, to: number, nowMs: number): MigrationSession | undefined | number {
    const S = VFIO_DEVICE_STATE_STOP;
    if ((from === S && to === VFIO_DEVICE_STATE_STOP_COPY) || isPrecopyOpen(from, to)) {
      this.end();
      const s = new MigrationSession("save", nowMs);
      if (to === VFIO_DEVICE_STATE_STOP_COPY) s.finalLeft = this.model.stateBytes;
      else s.initialLeft = this.model.precopyInitialBytes ?? 0n;
      this.session = s;
      this.changed = false;
      return s;
    }
    if (from === S && to === VFIO_DEVICE_STATE_RESUMING) {
      this.end();
      this.session = new MigrationSession("resume", nowMs);
      return this.session;
    }
    if (from === VFIO_DEVICE_STATE_PRE_COPY_P2P && to === VFIO_DEVICE_STATE_STOP_COPY) {
      const s = this.session;
      if (s) {
        s.finalLeft = s.initialLeft + s.dirtyLeft + this.model.stateBytes;
        s.initialLeft = s.dirtyLeft = 0n;
      }
      return undefined;
    }
    if (from === VFIO_DEVICE_STATE_RESUMING && to === S) {
      if (!this.session || this.session.written === 0n) return -Errno.EINVAL;
      this.end();
      return undefined;
    }
    if (
      (from === VFIO_DEVICE_STATE_STOP_COPY && to === S) ||
      (from === VFIO_DEVICE_STATE_PRE_COPY && to === VFIO_DEVICE_STATE_RUNNING) ||
      (from === VFIO_DEVICE_STATE_PRE_COPY_P2P && to === VFIO_DEVICE_STATE_RUNNING_P2P)
    )
      this.end();
    return undefined;
  }

  private end(): void {
    if (this.session) this.session.disabled = true;
    this.session = undefined;
  }
}

function isPrecopyOpen(from: number, to: number): boolean {
  return (
    (from === VFIO_DEVICE_STATE_RUNNING && to === VFIO_DEVICE_STATE_PRE_COPY) ||
    (from === VFIO_DEVICE_STATE_RUNNING_P2P && to === VFIO_DEVICE_STATE_PRE_COPY_P2P)
  );
}

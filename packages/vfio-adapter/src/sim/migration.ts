// A device's migration state machine. Each SET walks the kernel's arcs one at a time
// (vfio_mig_get_next_state in drivers/vfio/vfio_main.c, encoded once in uapi's nextMigState):
// arcs through states the device lacks are skipped, and a state whose feature the device lacks,
// a blocked arc (STOP_COPY -> PRE_COPY) or any request out of ERROR is EINVAL, state unchanged.
//
//   const fsm = new MigrationFsm(VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P);
//   fsm.set(VFIO_DEVICE_STATE_STOP_COPY);   // RUNNING -> RUNNING_P2P -> STOP -> STOP_COPY; { rc: 0, dataFd: true }

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
} from "../uapi/index.ts";

export class MigrationFsm {
  state: number = VFIO_DEVICE_STATE_RUNNING;

  /** `flags`: VFIO_MIGRATION_* the device reports. */
  constructor(readonly flags: number) {}

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

  /** The device broke (injected): ERROR, from which every request is EINVAL. */
  fail(): void {
    this.state = VFIO_DEVICE_STATE_ERROR;
  }

  /** Back to RUNNING, as a driver's close_device / reset does. */
  reset(): void {
    this.state = VFIO_DEVICE_STATE_RUNNING;
  }

  /**
   * Moves to `target` arc by arc. `dataFd` says a new migration data fd is returned: on the arcs
   * where mlx5 opens a save or resume session (into STOP_COPY or RESUMING from STOP, into
   * PRE_COPY from RUNNING, into PRE_COPY_P2P from RUNNING_P2P).
   */
  set(target: number): { rc: number; dataFd: boolean } {
    let dataFd = false;
    while (this.state !== target) {
      const next = nextMigState(this.state, target, this.flags);
      if (next === undefined) return { rc: -Errno.EINVAL, dataFd: false };
      const from = this.state;
      if (
        (from === VFIO_DEVICE_STATE_STOP &&
          (next === VFIO_DEVICE_STATE_STOP_COPY || next === VFIO_DEVICE_STATE_RESUMING)) ||
        (from === VFIO_DEVICE_STATE_RUNNING && next === VFIO_DEVICE_STATE_PRE_COPY) ||
        (from === VFIO_DEVICE_STATE_RUNNING_P2P && next === VFIO_DEVICE_STATE_PRE_COPY_P2P)
      )
        dataFd = true;
      this.state = next;
    }
    return { rc: 0, dataFd };
  }
}

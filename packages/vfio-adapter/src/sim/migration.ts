// A device's migration state machine, stepping through the kernel's arcs (vfio_mig_get_next_state
// in drivers/vfio/vfio_main.c): a request for a far state walks the table one supported arc at a
// time, arcs through states the device lacks are skipped, and a state whose feature the device
// lacks (or any request out of ERROR) is EINVAL with the state unchanged.
//
//   const fsm = new MigrationFsm(MIGRATION_STOP_COPY | MIGRATION_P2P);
//   fsm.set(STATE.STOP_COPY);   // RUNNING -> RUNNING_P2P -> STOP -> STOP_COPY; { rc: 0, dataFd: true }

import { Errno } from "../errors.ts";

/** enum vfio_device_mig_state (include/uapi/linux/vfio.h). */
export const STATE = {
  ERROR: 0,
  STOP: 1,
  RUNNING: 2,
  STOP_COPY: 3,
  RESUMING: 4,
  RUNNING_P2P: 5,
  PRE_COPY: 6,
  PRE_COPY_P2P: 7,
} as const;

export const MIGRATION_STOP_COPY = 1;
export const MIGRATION_P2P = 2;
export const MIGRATION_PRE_COPY = 4;

const { ERROR, STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P } = STATE;

/** vfio_from_fsm_table[cur][new]: the next step from cur towards new. */
const NEXT: readonly (readonly number[])[] = [
  /* ERROR */ [ERROR, ERROR, ERROR, ERROR, ERROR, ERROR, ERROR, ERROR],
  /* STOP */ [ERROR, STOP, RUNNING_P2P, STOP_COPY, RESUMING, RUNNING_P2P, RUNNING_P2P, RUNNING_P2P],
  /* RUNNING */ [ERROR, RUNNING_P2P, RUNNING, RUNNING_P2P, RUNNING_P2P, RUNNING_P2P, PRE_COPY, RUNNING_P2P],
  /* STOP_COPY */ [ERROR, STOP, STOP, STOP_COPY, STOP, STOP, ERROR, ERROR],
  /* RESUMING */ [ERROR, STOP, STOP, STOP, RESUMING, STOP, STOP, STOP],
  /* RUNNING_P2P */ [ERROR, STOP, RUNNING, STOP, STOP, RUNNING_P2P, RUNNING, PRE_COPY_P2P],
  /* PRE_COPY */ [ERROR, RUNNING, RUNNING, PRE_COPY_P2P, RUNNING, RUNNING, PRE_COPY, PRE_COPY_P2P],
  /* PRE_COPY_P2P */ [
    ERROR,
    RUNNING_P2P,
    RUNNING_P2P,
    STOP_COPY,
    RUNNING_P2P,
    RUNNING_P2P,
    PRE_COPY,
    PRE_COPY_P2P,
  ],
];

/** state_flags_table: the migration flags a state needs. ERROR needs everything (never valid). */
const NEEDS: readonly number[] = [
  0xffff_ffff,
  MIGRATION_STOP_COPY,
  MIGRATION_STOP_COPY,
  MIGRATION_STOP_COPY,
  MIGRATION_STOP_COPY,
  MIGRATION_STOP_COPY | MIGRATION_P2P,
  MIGRATION_STOP_COPY | MIGRATION_PRE_COPY,
  MIGRATION_STOP_COPY | MIGRATION_P2P | MIGRATION_PRE_COPY,
];

export class MigrationFsm {
  state: number = RUNNING;

  constructor(readonly flags: number) {}

  /** True while the device may issue DMA (it does in RUNNING, PRE_COPY and their P2P forms). */
  get running(): boolean {
    return (
      this.state === RUNNING ||
      this.state === PRE_COPY ||
      this.state === RUNNING_P2P ||
      this.state === PRE_COPY_P2P
    );
  }

  /** Moves to `target` arc by arc. `dataFd` says a new migration data fd is returned (mlx5's arcs). */
  set(target: number): { rc: number; dataFd: boolean } {
    let dataFd = false;
    while (this.state !== target) {
      const next = this.nextState(this.state, target);
      if (next < 0) return { rc: next, dataFd: false };
      if (
        (this.state === STOP && (next === STOP_COPY || next === RESUMING)) ||
        (this.state === RUNNING && next === PRE_COPY) ||
        (this.state === RUNNING_P2P && next === PRE_COPY_P2P)
      )
        dataFd = true;
      this.state = next;
    }
    return { rc: 0, dataFd };
  }

  // --- Internal helpers ---

  private supported(state: number): boolean {
    const need = NEEDS[state];
    return need !== undefined && (need & this.flags) === need;
  }

  /** vfio_mig_get_next_state: the next supported step, or -EINVAL. */
  private nextState(cur: number, target: number): number {
    if (!this.supported(cur)) return -Errno.EINVAL;
    if (target < 0 || target >= NEXT.length || !this.supported(target)) return -Errno.EINVAL;
    let next = NEXT[cur]![target]!;
    while (!this.supported(next) && next !== ERROR) next = NEXT[next]![target]!;
    return next === ERROR ? -Errno.EINVAL : next;
  }
}

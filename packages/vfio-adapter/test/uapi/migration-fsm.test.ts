import { describe, expect, it } from "vitest";
import {
  VFIO_DEVICE_STATE_ERROR as ERROR,
  MIG_FSM_TABLE,
  migStatePath,
  migStateSupported,
  nextMigState,
  VFIO_DEVICE_STATE_PRE_COPY as PRE_COPY,
  VFIO_DEVICE_STATE_PRE_COPY_P2P as PRE_COPY_P2P,
  VFIO_DEVICE_STATE_RESUMING as RESUMING,
  VFIO_DEVICE_STATE_RUNNING as RUNNING,
  VFIO_DEVICE_STATE_RUNNING_P2P as RUNNING_P2P,
  VFIO_DEVICE_STATE_STOP as STOP,
  VFIO_DEVICE_STATE_STOP_COPY as STOP_COPY,
  VFIO_DEVICE_STATE_NAMES,
  VFIO_DEVICE_STATE_NR,
  VFIO_MIGRATION_P2P,
  VFIO_MIGRATION_PRE_COPY,
  VFIO_MIGRATION_STOP_COPY,
} from "../../src/uapi/vfio.ts";

const ALL = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY;
const N = VFIO_DEVICE_STATE_NAMES;
const byName = (s: string) => N.indexOf(s);

describe("migration state machine (vfio_mig_get_next_state)", () => {
  it("reproduces every combination transition listed in drivers/vfio/vfio_main.c", () => {
    // With all optional features, the kernel comment lists these multi-step paths.
    const listed = `
      PRE_COPY -> PRE_COPY_P2P -> STOP_COPY
      PRE_COPY -> RUNNING -> RUNNING_P2P
      PRE_COPY -> RUNNING -> RUNNING_P2P -> STOP
      PRE_COPY -> RUNNING -> RUNNING_P2P -> STOP -> RESUMING
      PRE_COPY_P2P -> RUNNING_P2P -> RUNNING
      PRE_COPY_P2P -> RUNNING_P2P -> STOP
      PRE_COPY_P2P -> RUNNING_P2P -> STOP -> RESUMING
      RESUMING -> STOP -> RUNNING_P2P
      RESUMING -> STOP -> RUNNING_P2P -> PRE_COPY_P2P
      RESUMING -> STOP -> RUNNING_P2P -> RUNNING
      RESUMING -> STOP -> RUNNING_P2P -> RUNNING -> PRE_COPY
      RESUMING -> STOP -> STOP_COPY
      RUNNING -> RUNNING_P2P -> PRE_COPY_P2P
      RUNNING -> RUNNING_P2P -> STOP
      RUNNING -> RUNNING_P2P -> STOP -> RESUMING
      RUNNING -> RUNNING_P2P -> STOP -> STOP_COPY
      RUNNING_P2P -> RUNNING -> PRE_COPY
      RUNNING_P2P -> STOP -> RESUMING
      RUNNING_P2P -> STOP -> STOP_COPY
      STOP -> RUNNING_P2P -> PRE_COPY_P2P
      STOP -> RUNNING_P2P -> RUNNING
      STOP -> RUNNING_P2P -> RUNNING -> PRE_COPY
      STOP_COPY -> STOP -> RESUMING
      STOP_COPY -> STOP -> RUNNING_P2P
      STOP_COPY -> STOP -> RUNNING_P2P -> RUNNING`;
    for (const line of listed.trim().split("\n")) {
      const states = line.trim().split(" -> ").map(byName);
      expect(
        states.every((s) => s >= 0),
        line,
      ).toBe(true);
      expect(migStatePath(states[0]!, states.at(-1)!, ALL), line).toEqual(states.slice(1));
    }
  });

  it("blocks STOP_COPY -> PRE_COPY and STOP_COPY -> PRE_COPY_P2P", () => {
    expect(nextMigState(STOP_COPY, PRE_COPY, ALL)).toBeUndefined();
    expect(nextMigState(STOP_COPY, PRE_COPY_P2P, ALL)).toBeUndefined();
    expect(migStatePath(STOP_COPY, PRE_COPY, ALL)).toBeUndefined();
  });

  it("skips states the device lacks: without P2P, RUNNING -> STOP is one arc", () => {
    expect(migStatePath(RUNNING, STOP, VFIO_MIGRATION_STOP_COPY)).toEqual([STOP]);
    expect(migStatePath(RUNNING, STOP_COPY, VFIO_MIGRATION_STOP_COPY)).toEqual([STOP, STOP_COPY]);
    expect(migStatePath(RESUMING, RUNNING, VFIO_MIGRATION_STOP_COPY)).toEqual([STOP, RUNNING]);
    expect(migStatePath(RUNNING, STOP, ALL)).toEqual([RUNNING_P2P, STOP]);
  });

  it("refuses states the device does not support, and ERROR as a target or source", () => {
    expect(nextMigState(RUNNING, PRE_COPY, VFIO_MIGRATION_STOP_COPY)).toBeUndefined();
    expect(nextMigState(RUNNING, RUNNING_P2P, VFIO_MIGRATION_STOP_COPY)).toBeUndefined();
    expect(nextMigState(RUNNING, ERROR, ALL)).toBeUndefined();
    expect(nextMigState(ERROR, RUNNING, ALL)).toBeUndefined();
    expect(nextMigState(RUNNING, 99, ALL)).toBeUndefined();
    expect(migStateSupported(ERROR, ALL)).toBe(false);
    expect(migStateSupported(RUNNING, 0)).toBe(false);
  });

  it("for every flag set and state pair, a path exists exactly when both ends exist and the arc is not blocked", () => {
    const flagSets = [
      VFIO_MIGRATION_STOP_COPY,
      VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P,
      VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY,
      ALL,
    ];
    for (const flags of flagSets)
      for (let from = 1; from < VFIO_DEVICE_STATE_NR; from++)
        for (let to = 1; to < VFIO_DEVICE_STATE_NR; to++) {
          const path = migStatePath(from, to, flags);
          const blocked = from === STOP_COPY && (to === PRE_COPY || to === PRE_COPY_P2P);
          const exists = migStateSupported(from, flags) && migStateSupported(to, flags) && !blocked;
          expect(path !== undefined, `${N[from]} -> ${N[to]} flags ${flags}`).toBe(exists);
          if (!path) continue;
          // Every step is a state the device has; the path never revisits a state.
          expect(path.every((s) => migStateSupported(s, flags))).toBe(true);
          expect(new Set([from, ...path]).size).toBe(path.length + 1);
          expect(path.at(-1) ?? from).toBe(to);
        }
  });

  it("has a square 8x8 table whose diagonal is the identity (except ERROR)", () => {
    expect(MIG_FSM_TABLE.length).toBe(VFIO_DEVICE_STATE_NR);
    MIG_FSM_TABLE.forEach((row, s) => {
      expect(row.length).toBe(VFIO_DEVICE_STATE_NR);
      expect(row[s]).toBe(s);
    });
  });
});

// Pre-copy convergence prediction: will a live migration with these dirty rates finish within the
// downtime limit, and if not, what would make it?
//
// The model is QEMU's pre-copy loop (migration/migration.c `migration_iteration_run()`), one
// iteration at a time. Each iteration first syncs the dirty bitmap, which takes the sync cost x
// (the guest keeps dirtying memory meanwhile), then QEMU compares the pending data (dirty RAM, plus
// every VFIO device's stop-copy size: what it must still send once stopped) with what its
// bandwidth estimate carries within the downtime limit. If the pending data fits, the guest and
// its devices stop, a last sync runs and the rest is sent: that is the downtime. Otherwise the
// dirty set is sent, with the devices' pre-copy data (VFIO_MIG_GET_PRECOPY_INFO), while the guest
// and the devices keep dirtying memory.
//
// What sets the downtime besides the dirty rate:
// - The sync cost, twice: every iteration spends x without sending, and QEMU's bandwidth
//   estimate counts that time (critical-state.ts), so a slow sync makes QEMU believe the link is
//   slower than it is. The estimate here is the one QEMU would measure over an iteration that
//   sends the pending data (a sample of at least 100 ms holding one sync): at the settled state it
//   is ByteDance's formula exactly, and it only grows as pre-copy approaches that state. The
//   downtime itself includes the final sync, and what the guest dirtied during the decision sync.
// - The guest's own writes (vCPUs) add to the devices' DMA: the two rates are summed (a page both
//   dirty counts twice, so the sum errs high, never low).
// - Device state: stop-copy bytes, and pre-copy data that shrinks as it is read and can come back
//   (precopy-device.ts). With QEMU's switchover-ack, switchover waits until every device's initial
//   data was sent; with PRECOPY_INFOv2 a REINIT makes it wait again (QEMU 11.1 checks at switchover).
// - avail-switchover-bandwidth, when set, replaces the estimate in the switchover decision.
//
//   const p = predictPrecopy({ bandwidth: 1.25e9, ramBytes: 16 * 2 ** 30, dirtyRate: 100e6,
//                              guestDirtyRate: 50e6, syncCostMs: 40 });
//   p.converges; p.iterations; p.expectedDowntimeMs; p.minDowntimeLimitMs; p.maxDirtyRate;
//
// Units: bytes as `number` (a float model, not kernel values; 2^53 bytes is 8 PiB), bandwidth
// and dirty rates in bytes per second, times in milliseconds.

import {
  type CriticalState,
  criticalState,
  estimatedBandwidth,
  maxConvergingDirtyRate,
} from "./critical-state.ts";
import { type PrecopyDeviceData, PrecopyDeviceState } from "./precopy-device.ts";

/** One interval of a measured trace: `dirtyBytes` distinct bytes dirtied over `seconds`. */
export interface DirtyTraceSample {
  readonly seconds: number;
  readonly dirtyBytes: number;
}

/** One VFIO device's migration data. */
export interface DeviceMigrationData {
  /** A name for output (the PCI address). */
  readonly id?: string;
  /** What the device sends in STOP_COPY besides its unread pre-copy data (MIG_DATA_SIZE of a device without PRE_COPY). */
  readonly stopCopyBytes?: number;
  /** The device supports PRE_COPY: its pre-copy data. */
  readonly precopy?: PrecopyDeviceData;
}

export interface PrecopyInput {
  /** Link bandwidth in bytes per second (> 0). */
  readonly bandwidth: number;
  /** Maximum tolerated downtime in ms (QEMU's downtime-limit); default 300. */
  readonly downtimeLimitMs?: number;
  /** Guest RAM in bytes: the first iteration sends all of it. */
  readonly ramBytes: number;
  /** Device state sent at stop-copy, for devices not described in `devices`. Default 0. */
  readonly deviceStateBytes?: number;
  /** Devices with their stop-copy and pre-copy data. */
  readonly devices?: readonly DeviceMigrationData[];
  /** Constant DMA dirty rate of the devices in bytes per second. At most one of this and `trace`. */
  readonly dirtyRate?: number;
  /**
   * The devices' measured DMA trace (successive syncs). It repeats when the migration outlasts it.
   * A page dirtied twice within one sample counts once in that sample, the same dedup the dirty
   * bitmap does.
   */
  readonly trace?: readonly DirtyTraceSample[];
  /** The guest's own (vCPU) dirty rate, bytes per second, added to the devices'. */
  readonly guestDirtyRate?: number;
  /** Duration of one dirty-bitmap sync, ms; charged to every iteration and to the downtime. Default 0. */
  readonly syncCostMs?: number;
  /** QEMU avail-switchover-bandwidth (bytes/s): the switchover decision uses it instead of the estimate. */
  readonly availSwitchoverBandwidth?: number;
  /** QEMU's switchover-ack capability: switchover waits until every device's initial data was sent. */
  readonly switchoverAck?: boolean;
  /** Iterations before giving up (QEMU has no hard bound; tools use one). Default 30. */
  readonly maxIterations?: number;
}

/** One pre-copy iteration, and the switchover decision after it (at the next sync). */
export interface PrecopyRound {
  readonly iteration: number;
  /** The iteration's dirty-bitmap sync, ms. */
  readonly syncMs: number;
  /** Everything sent: dirty RAM (the whole of it in iteration 1) and device pre-copy data. */
  readonly bytesSent: number;
  readonly ramBytesSent: number;
  readonly deviceBytesSent: number;
  /** Sync plus transfer. */
  readonly seconds: number;
  /** RAM dirtied during this iteration (bounded by ramBytes): what the next one sends. */
  readonly dirtyBytesAfter: number;
  /** Bytes dirtied per second during the iteration: RAM and device state. */
  readonly dirtyRate: number;
  /** QEMU's pending data at the decision after this iteration: dirty RAM and every device's stop-copy size. */
  readonly remainingBytes: number;
  /** Initial and dirty pre-copy bytes the devices reported at that decision's sync. */
  readonly precopyInitialBytes: number;
  readonly precopyDirtyBytes: number;
  /** A device reported VFIO_PRECOPY_INFO_REINIT at that sync. */
  readonly reinit: boolean;
  /** QEMU's bandwidth estimate at that decision (avail-switchover-bandwidth when set), bytes/s. */
  readonly estimatedBandwidth: number;
  /** estimatedBandwidth * downtime limit: the pending data must be below this to switch over. */
  readonly thresholdBytes: number;
  /** switchover-ack holds the switchover: a device's initial data is not sent yet. */
  readonly switchoverAckPending: boolean;
  /** The downtime if the guest stopped at that decision: the final sync and the transfer. */
  readonly expectedDowntimeMs: number;
}

/** The long-run picture: the critical state of pre-copy, and what converges at the limit. */
export interface PrecopyCritical extends CriticalState {
  /** Total long-run dirty rate (device DMA + guest + device state), bytes/s. */
  readonly dirtyRate: number;
  readonly syncCostMs: number;
  /** Stop-copy device state counted at the critical state, bytes. */
  readonly stopCopyBytes: number;
  /** The largest total dirty rate that converges at the downtime limit (null: none). */
  readonly maxDirtyRate: number | null;
}

export interface PrecopyPrediction {
  readonly converges: boolean;
  /** Pre-copy iterations run (the first, full pass counts as 1). */
  readonly iterations: number;
  /** Everything sent, stop-copy included when it converges. */
  readonly totalBytesSent: number;
  /** Expected downtime when it converges (final sync + transfer); what switching over at the end would cost otherwise. */
  readonly expectedDowntimeMs: number;
  /** Total migration time in ms (pre-copy plus stop-copy) when it converges. */
  readonly totalMs: number;
  readonly rounds: readonly PrecopyRound[];
  /** Decisions at which the data fitted but switchover-ack held the switchover. */
  readonly heldBySwitchoverAck: number;
  /**
   * The smallest downtime limit that converges at the critical state (however long pre-copy
   * runs); null when no limit does. Below it, pre-copy can only converge before it settles.
   */
  readonly minDowntimeLimitMs: number | null;
  /** The largest total dirty rate that converges at the critical state at this limit; null: none. */
  readonly maxDirtyRate: number | null;
  readonly critical: PrecopyCritical;
  /** When it does not converge: the smallest bandwidth (bytes/s) with which it would, within the same iteration bound. */
  readonly requiredBandwidth?: number;
}

/**
 * Simulate QEMU-style pre-copy. Throws RangeError on invalid input (non-positive bandwidth, negative
 * sizes, both `dirtyRate` and `trace`, or no dirty rate at all).
 */
export function predictPrecopy(input: PrecopyInput): PrecopyPrediction {
  const params = validate(input);
  const run = simulate(params);
  const critical = criticalOf(params);
  const base = {
    ...run,
    minDowntimeLimitMs: critical.minDowntimeLimitMs,
    maxDirtyRate: critical.maxDirtyRate,
    critical,
  };
  if (run.converges) return base;
  const requiredBandwidth = searchBandwidth(params);
  return requiredBandwidth === undefined ? base : { ...base, requiredBandwidth };
}

// --- Internal helpers ---

interface Params {
  bandwidth: number;
  downtimeLimitMs: number;
  ramBytes: number;
  devices: DeviceMigrationData[];
  /** Distinct bytes of RAM dirtied between t0 and t1 seconds after the migration started, before the ramBytes bound. */
  dirtied: (t0: number, t1: number) => number;
  /** Long-run RAM dirty rate (device DMA + guest), bytes/s. */
  ramDirtyRate: number;
  syncCostMs: number;
  availSwitchoverBandwidth: number | undefined;
  switchoverAck: boolean;
  maxIterations: number;
}

function validate(input: PrecopyInput): Params {
  finite("bandwidth", input.bandwidth, 0, false);
  finite("downtimeLimitMs", input.downtimeLimitMs, 0, false);
  finite("ramBytes", input.ramBytes, 0, true);
  finite("deviceStateBytes", input.deviceStateBytes, 0, true);
  finite("dirtyRate", input.dirtyRate, 0, true);
  finite("guestDirtyRate", input.guestDirtyRate, 0, true);
  finite("syncCostMs", input.syncCostMs, 0, true);
  finite("availSwitchoverBandwidth", input.availSwitchoverBandwidth, 0, false);
  const maxIterations = input.maxIterations ?? 30;
  if (!Number.isInteger(maxIterations) || maxIterations < 1)
    throw new RangeError("predictPrecopy: maxIterations must be an integer >= 1");
  if (input.dirtyRate !== undefined && input.trace !== undefined)
    throw new RangeError("predictPrecopy: give the devices' dirty rate as dirtyRate or as trace, not both");
  if (input.dirtyRate === undefined && input.trace === undefined && input.guestDirtyRate === undefined)
    throw new RangeError(
      "predictPrecopy: give a dirty rate: dirtyRate or trace (device DMA), guestDirtyRate",
    );
  const guest = input.guestDirtyRate ?? 0;
  let device: (t0: number, t1: number) => number;
  let deviceRate: number;
  if (input.trace !== undefined) {
    const trace = input.trace;
    if (trace.length === 0) throw new RangeError("predictPrecopy: trace is empty");
    for (const [i, s] of trace.entries()) {
      finite(`trace[${i}].seconds`, s.seconds, 0, false);
      finite(`trace[${i}].dirtyBytes`, s.dirtyBytes, 0, true);
    }
    device = traceIntegral(trace);
    deviceRate = trace.reduce((a, s) => a + s.dirtyBytes, 0) / trace.reduce((a, s) => a + s.seconds, 0);
  } else {
    deviceRate = input.dirtyRate ?? 0;
    device = (t0, t1) => deviceRate * (t1 - t0);
  }
  const devices = (input.devices ?? []).map(validateDevice);
  if (input.deviceStateBytes) devices.push({ stopCopyBytes: input.deviceStateBytes });
  return {
    bandwidth: input.bandwidth,
    downtimeLimitMs: input.downtimeLimitMs ?? 300,
    ramBytes: input.ramBytes,
    devices,
    dirtied: (t0, t1) => device(t0, t1) + guest * (t1 - t0),
    ramDirtyRate: deviceRate + guest,
    syncCostMs: input.syncCostMs ?? 0,
    availSwitchoverBandwidth: input.availSwitchoverBandwidth,
    switchoverAck: input.switchoverAck ?? false,
    maxIterations,
  };
}

function validateDevice(d: DeviceMigrationData, i: number): DeviceMigrationData {
  const at = `devices[${i}]`;
  finite(`${at}.stopCopyBytes`, d.stopCopyBytes, 0, true);
  const p = d.precopy;
  if (p) {
    if (p.infoVersion !== 1 && p.infoVersion !== 2)
      throw new RangeError(`predictPrecopy: ${at}.precopy.infoVersion must be 1 or 2`);
    finite(`${at}.precopy.initialBytes`, p.initialBytes, 0, true);
    finite(`${at}.precopy.dirtyBytes`, p.dirtyBytes, 0, true);
    finite(`${at}.precopy.dirtyRate`, p.dirtyRate, 0, true);
    for (const [j, e] of (p.reinit ?? []).entries()) {
      finite(`${at}.precopy.reinit[${j}].atMs`, e.atMs, 0, false);
      finite(`${at}.precopy.reinit[${j}].initialBytes`, e.initialBytes, 0, true);
    }
  }
  return d;
}

function finite(name: string, v: number | undefined, min: number, allowEqual: boolean): void {
  if (v === undefined) return;
  if (typeof v !== "number" || !Number.isFinite(v) || (allowEqual ? v < min : v <= min))
    throw new RangeError(`predictPrecopy: ${name} must be a finite number ${allowEqual ? ">=" : ">"} ${min}`);
}

/** Integral of a piecewise-constant rate that repeats the trace forever. */
function traceIntegral(trace: readonly DirtyTraceSample[]): (t0: number, t1: number) => number {
  const period = trace.reduce((s, x) => s + x.seconds, 0);
  const perPeriod = trace.reduce((s, x) => s + x.dirtyBytes, 0);
  // Cumulative bytes from 0 to t within one period.
  const within = (t: number): number => {
    let acc = 0;
    let at = 0;
    for (const s of trace) {
      if (t <= at + s.seconds) return acc + (s.dirtyBytes * (t - at)) / s.seconds;
      acc += s.dirtyBytes;
      at += s.seconds;
    }
    return acc;
  };
  const cumulative = (t: number): number => {
    const whole = Math.floor(t / period);
    return whole * perPeriod + within(t - whole * period);
  };
  return (t0, t1) => cumulative(t1) - cumulative(t0);
}

type RunResult = Omit<
  PrecopyPrediction,
  "minDowntimeLimitMs" | "maxDirtyRate" | "critical" | "requiredBandwidth"
>;

function simulate(p: Params): RunResult {
  const B = p.bandwidth;
  const x = p.syncCostMs / 1000; // seconds from here on
  const states = p.devices.map((d) => (d.precopy ? new PrecopyDeviceState(d.precopy) : undefined));
  const stopCopy = p.devices.reduce((a, d) => a + (d.stopCopyBytes ?? 0), 0);
  const deviceRate = p.devices.reduce((a, d) => a + (d.precopy?.dirtyRate ?? 0), 0);
  // What the guest and the devices dirty while one sync runs: pending at the final sync.
  const dirtiedDuringSync = (at: number) => Math.min(p.ramBytes, p.dirtied(at, at + x)) + deviceRate * x;
  const downtimeIfStopped = (pending: number, at: number) =>
    (x + (pending + dirtiedDuringSync(at)) / B) * 1000;

  const rounds: PrecopyRound[] = [];
  let ram = p.ramBytes; // the first pass sends all of RAM
  let sent = 0;
  let now = 0; // seconds since the migration started: the start of the current sync
  let held = 0;
  for (;;) {
    // The sync: GET_PRECOPY_INFO of every PRE_COPY device, then QEMU's pending data.
    const readings = states.map((s) => s?.read(now));
    const precopy = sum(readings.map((r) => (r ? r.initialBytes + r.dirtyBytes : 0)));
    const pending = ram + stopCopy + precopy;
    // The first full pass always runs (QEMU sends all RAM in the bulk stage before it checks).
    if (rounds.length > 0) {
      const decision = decide(p, ram + precopy, pending, readings);
      rounds[rounds.length - 1] = {
        ...rounds[rounds.length - 1]!,
        remainingBytes: pending,
        precopyInitialBytes: sum(readings.map((r) => r?.initialBytes ?? 0)),
        precopyDirtyBytes: sum(readings.map((r) => r?.dirtyBytes ?? 0)),
        reinit: readings.some((r) => r?.reinit === true),
        estimatedBandwidth: decision.estimate,
        thresholdBytes: decision.threshold,
        switchoverAckPending: decision.fits && !decision.acked,
        expectedDowntimeMs: downtimeIfStopped(pending, now),
      };
      if (decision.fits && !decision.acked) held++;
      if (decision.fits && decision.acked) {
        const downtimeMs = downtimeIfStopped(pending, now);
        return {
          converges: true,
          iterations: rounds.length,
          totalBytesSent: sent + pending + dirtiedDuringSync(now),
          expectedDowntimeMs: downtimeMs,
          totalMs: (now + x) * 1000 + downtimeMs,
          rounds,
          heldBySwitchoverAck: held,
        };
      }
    }
    if (rounds.length >= p.maxIterations) {
      return {
        converges: false,
        iterations: rounds.length,
        totalBytesSent: sent,
        expectedDowntimeMs: downtimeIfStopped(pending, now),
        totalMs: now * 1000,
        rounds,
        heldBySwitchoverAck: held,
      };
    }
    // The iteration: send the dirty set and every device's pre-copy data while the guest runs.
    const deviceBytes = sum(states.map((s) => s?.sendAll() ?? 0));
    const bytes = ram + deviceBytes;
    const seconds = x + bytes / B;
    const dirtied = Math.min(p.ramBytes, p.dirtied(now, now + seconds));
    rounds.push({
      iteration: rounds.length + 1,
      syncMs: p.syncCostMs,
      bytesSent: bytes,
      ramBytesSent: ram,
      deviceBytesSent: deviceBytes,
      seconds,
      dirtyBytesAfter: dirtied,
      dirtyRate: (dirtied + deviceRate * seconds) / seconds,
      // Filled in at the next sync (the decision after this iteration).
      remainingBytes: 0,
      precopyInitialBytes: 0,
      precopyDirtyBytes: 0,
      reinit: false,
      estimatedBandwidth: 0,
      thresholdBytes: 0,
      switchoverAckPending: false,
      expectedDowntimeMs: 0,
    });
    sent += bytes;
    now += seconds;
    ram = dirtied;
  }
}

/**
 * QEMU's switchover decision: the pending data must be below what the bandwidth estimate carries
 * within the limit, and with switchover-ack every device's initial data must have been sent.
 */
function decide(
  p: Params,
  iterationBytes: number,
  pending: number,
  readings: readonly ({ initialBytes: number } | undefined)[],
): { estimate: number; threshold: number; fits: boolean; acked: boolean } {
  const B = p.bandwidth;
  const x = p.syncCostMs;
  // The estimate over an iteration that sends this data: at least 100 ms, one sync in it.
  const estimate = p.availSwitchoverBandwidth ?? estimatedBandwidth(B, x, (iterationBytes / B) * 1000);
  const threshold = (estimate * p.downtimeLimitMs) / 1000;
  const fits = pending === 0 || pending < threshold;
  const acked = !p.switchoverAck || readings.every((r) => r === undefined || r.initialBytes === 0);
  return { estimate, threshold, fits, acked };
}

function criticalOf(p: Params): PrecopyCritical {
  const stopCopyBytes = p.devices.reduce((a, d) => a + (d.stopCopyBytes ?? 0), 0);
  const dirtyRate = p.ramDirtyRate + p.devices.reduce((a, d) => a + (d.precopy?.dirtyRate ?? 0), 0);
  const common = {
    bandwidth: p.bandwidth,
    syncCostMs: p.syncCostMs,
    stopCopyBytes,
    ...(p.availSwitchoverBandwidth !== undefined
      ? { availSwitchoverBandwidth: p.availSwitchoverBandwidth }
      : {}),
  };
  return {
    ...criticalState({ ...common, dirtyRate }),
    dirtyRate,
    syncCostMs: p.syncCostMs,
    stopCopyBytes,
    maxDirtyRate: maxConvergingDirtyRate({ ...common, downtimeLimitMs: p.downtimeLimitMs }),
  };
}

/**
 * Smallest bandwidth that converges within the iteration bound. Convergence is monotonic in
 * bandwidth; bisect between the current bandwidth and one that surely converges (doubled until
 * it does, bounded: with switchover-ack or a REINIT schedule no bandwidth may be enough).
 */
function searchBandwidth(p: Params): number | undefined {
  let lo = p.bandwidth;
  let hi = p.bandwidth;
  for (let i = 0; i < 64 && !simulate({ ...p, bandwidth: hi }).converges; i++) hi *= 2;
  if (!simulate({ ...p, bandwidth: hi }).converges) return undefined;
  for (let i = 0; i < 60 && hi - lo > hi * 1e-9; i++) {
    const mid = (lo + hi) / 2;
    if (simulate({ ...p, bandwidth: mid }).converges) hi = mid;
    else lo = mid;
  }
  return hi;
}

function sum(values: readonly number[]): number {
  return values.reduce((a, v) => a + v, 0);
}

// Pre-copy convergence prediction: will a live migration with this dirty rate finish within the
// downtime limit, and if not, what would make it?
//
// The model is QEMU's RAM pre-copy loop (migration/migration.c `migration_iteration_run()`):
// before each iteration the pending data (dirty RAM plus the device state still to send) is
// compared with what the link can carry within the downtime limit (`threshold_size =
// bandwidth * downtime_limit`). If it fits, the guest stops and the rest is sent (stop-copy);
// otherwise the current dirty set is sent while the guest keeps dirtying memory.
//
//   const p = predictPrecopy({ bandwidth: 1.25e9, ramBytes: 16 * 2 ** 30, deviceStateBytes: 0,
//                              dirtyRate: 100e6 });
//   p.converges; p.iterations; p.expectedDowntimeMs; p.totalBytesSent;
//
// Units: bytes as `number` (a float model, not kernel values; 2^53 bytes is 8 PiB), bandwidth
// and dirty rate in bytes per second, times in milliseconds.

/** One interval of a measured trace: `dirtyBytes` distinct bytes dirtied over `seconds`. */
export interface DirtyTraceSample {
  readonly seconds: number;
  readonly dirtyBytes: number;
}

export interface PrecopyInput {
  /** Link bandwidth in bytes per second (> 0). */
  readonly bandwidth: number;
  /** Maximum tolerated downtime in ms (QEMU's downtime-limit); default 300. */
  readonly downtimeLimitMs?: number;
  /** Guest RAM in bytes: the first iteration sends all of it. */
  readonly ramBytes: number;
  /** Device state sent at stop-copy (MIG_DATA_SIZE; or pre-copy info's dirty bytes). Default 0. */
  readonly deviceStateBytes?: number;
  /** Constant dirty rate in bytes per second. Give this or `trace`. */
  readonly dirtyRate?: number;
  /**
   * A measured trace (successive syncs). It repeats when the migration outlasts it. A page dirtied
   * twice within one sample counts once in that sample, which is the same dedup the dirty bitmap does.
   */
  readonly trace?: readonly DirtyTraceSample[];
  /** Iterations before giving up (QEMU has no hard bound; tools use one). Default 30. */
  readonly maxIterations?: number;
}

/** One pre-copy iteration: the dirty set sent and what got dirtied meanwhile. */
export interface PrecopyRound {
  readonly iteration: number;
  readonly bytesSent: number;
  readonly seconds: number;
  /** Dirty bytes pending after this round (bounded by ramBytes). */
  readonly dirtyBytesAfter: number;
}

export interface PrecopyPrediction {
  readonly converges: boolean;
  /** Pre-copy iterations run (the first, full pass counts as 1). */
  readonly iterations: number;
  /** Everything sent, stop-copy included when it converges. */
  readonly totalBytesSent: number;
  /** Expected downtime (stop-copy transfer time) when it converges; the pending data's time otherwise. */
  readonly expectedDowntimeMs: number;
  /** Total migration time in ms (pre-copy plus stop-copy) when it converges. */
  readonly totalMs: number;
  readonly rounds: readonly PrecopyRound[];
  /**
   * When it does not converge: the smallest bandwidth (bytes/s) with which it would, within the
   * same iteration bound. Undefined when it converges.
   */
  readonly requiredBandwidth?: number;
  /**
   * When it does not converge: the largest constant dirty rate (bytes/s) with which it would, at
   * this bandwidth. `null` when no dirty rate helps (the device state alone exceeds the limit).
   */
  readonly maxDirtyRate?: number | null;
}

/**
 * Simulate QEMU-style pre-copy. Throws RangeError on invalid input (non-positive bandwidth, negative
 * sizes, neither or both of `dirtyRate` and `trace`).
 */
export function predictPrecopy(input: PrecopyInput): PrecopyPrediction {
  const params = validate(input);
  const run = simulate(params);
  if (run.converges) return run;
  const requiredBandwidth = searchBandwidth(params);
  const maxDirtyRate = searchDirtyRate(params);
  return { ...run, requiredBandwidth, maxDirtyRate };
}

// --- Internal helpers ---

interface Params {
  bandwidth: number;
  downtimeLimitMs: number;
  ramBytes: number;
  deviceStateBytes: number;
  /** Distinct bytes dirtied between t0 and t1 seconds after the migration started, before the ramBytes bound. */
  dirtied: (t0: number, t1: number) => number;
  maxIterations: number;
  /** Set when the input gave a constant rate (so a rate search is meaningful for a trace too, scaled). */
  rateScale: number;
}

function validate(input: PrecopyInput): Params {
  const finite = (name: string, v: number | undefined, min: number, allowEqual: boolean) => {
    if (v === undefined) return;
    if (typeof v !== "number" || !Number.isFinite(v) || (allowEqual ? v < min : v <= min))
      throw new RangeError(
        `predictPrecopy: ${name} must be a finite number ${allowEqual ? ">=" : ">"} ${min}`,
      );
  };
  finite("bandwidth", input.bandwidth, 0, false);
  finite("downtimeLimitMs", input.downtimeLimitMs, 0, false);
  finite("ramBytes", input.ramBytes, 0, true);
  finite("deviceStateBytes", input.deviceStateBytes, 0, true);
  finite("dirtyRate", input.dirtyRate, 0, true);
  const maxIterations = input.maxIterations ?? 30;
  if (!Number.isInteger(maxIterations) || maxIterations < 1)
    throw new RangeError("predictPrecopy: maxIterations must be an integer >= 1");
  if ((input.dirtyRate === undefined) === (input.trace === undefined))
    throw new RangeError("predictPrecopy: give exactly one of dirtyRate and trace");
  let dirtied: (t0: number, t1: number) => number;
  if (input.trace !== undefined) {
    const trace = input.trace;
    if (trace.length === 0) throw new RangeError("predictPrecopy: trace is empty");
    for (const [i, s] of trace.entries()) {
      finite(`trace[${i}].seconds`, s.seconds, 0, false);
      finite(`trace[${i}].dirtyBytes`, s.dirtyBytes, 0, true);
    }
    dirtied = traceIntegral(trace);
  } else {
    const rate = input.dirtyRate ?? 0;
    dirtied = (t0, t1) => rate * (t1 - t0);
  }
  return {
    bandwidth: input.bandwidth,
    downtimeLimitMs: input.downtimeLimitMs ?? 300,
    ramBytes: input.ramBytes,
    deviceStateBytes: input.deviceStateBytes ?? 0,
    dirtied,
    maxIterations,
    rateScale: 1,
  };
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

function simulate(p: Params): PrecopyPrediction {
  const threshold = (p.bandwidth * p.downtimeLimitMs) / 1000;
  const rounds: PrecopyRound[] = [];
  let remaining = p.ramBytes; // the first pass sends all of RAM
  let sent = 0;
  let now = 0; // seconds since the migration started
  for (;;) {
    const pending = remaining + p.deviceStateBytes;
    // The first full pass always runs (QEMU sends all RAM in the bulk stage before it checks).
    if (rounds.length > 0 && pending <= threshold) {
      const downtime = pending / p.bandwidth;
      return {
        converges: true,
        iterations: rounds.length,
        totalBytesSent: sent + pending,
        expectedDowntimeMs: downtime * 1000,
        totalMs: (now + downtime) * 1000,
        rounds,
      };
    }
    if (rounds.length >= p.maxIterations) {
      return {
        converges: false,
        iterations: rounds.length,
        totalBytesSent: sent,
        expectedDowntimeMs: (pending / p.bandwidth) * 1000,
        totalMs: now * 1000,
        rounds,
      };
    }
    const seconds = remaining / p.bandwidth;
    const dirtied = Math.min(p.ramBytes, p.rateScale * p.dirtied(now, now + seconds));
    sent += remaining;
    now += seconds;
    rounds.push({ iteration: rounds.length + 1, bytesSent: remaining, seconds, dirtyBytesAfter: dirtied });
    remaining = dirtied;
  }
}

/**
 * Smallest bandwidth that converges. Convergence is monotonic in bandwidth, and bandwidth
 * (ram + state) / limit converges after the first pass whatever the dirty rate, so bisect between.
 */
function searchBandwidth(p: Params): number {
  let lo = p.bandwidth;
  let hi = Math.max(p.bandwidth, ((p.ramBytes + p.deviceStateBytes) * 1000) / p.downtimeLimitMs);
  while (!simulate({ ...p, bandwidth: hi }).converges) hi *= 2; // guard: float edge at the bound
  for (let i = 0; i < 60 && hi - lo > hi * 1e-9; i++) {
    const mid = (lo + hi) / 2;
    if (simulate({ ...p, bandwidth: mid }).converges) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** Largest scale of the dirty rate that converges, expressed as a rate; null when even 0 does not. */
function searchDirtyRate(p: Params): number | null {
  if (!simulate({ ...p, rateScale: 0 }).converges) return null;
  // Average rate of the input over the first second is the unit the scale multiplies.
  const unitRate = averageRate(p);
  if (unitRate === 0) return 0;
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 60 && hi - lo > 1e-9; i++) {
    const mid = (lo + hi) / 2;
    if (simulate({ ...p, rateScale: mid }).converges) lo = mid;
    else hi = mid;
  }
  return lo * unitRate;
}

function averageRate(p: Params): number {
  // Over a long horizon, so a trace's whole period is represented.
  const horizon = 3600;
  return p.dirtied(0, horizon) / horizon;
}

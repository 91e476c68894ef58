// The critical state of pre-copy when every iteration pays for a dirty-bitmap sync: the smallest
// downtime limit that converges, and the largest dirty rate that converges at a given limit.
//
// This is ByteDance's analysis in the QEMU thread that led to e8a6d158dbfa ("migration: merge
// fragmented clear_dirty ioctls"), derived again here. An iteration syncs for x (the guest keeps
// dirtying memory meanwhile) and then sends for t at bandwidth B while the guest dirties at D.
// Pre-copy settles where an iteration sends exactly what got dirty during the previous one:
//
//   B*t = D*(x + t)   =>   t = D*x/(B - D)
//
// QEMU switches over when the pending data fits in what its bandwidth estimate R carries within
// the downtime limit y (pending < R*y). R is what QEMU sent over its last sample, which lasts at
// least 100 ms (one whole iteration when an iteration is longer) and holds one sync, during which
// nothing is sent: R = B * (sample - x) / sample. So
//
//   x + t >= 100 ms:  R = B*t/(x + t)      =>  y > x + t = B*x/(B - D)
//   x + t <  100 ms:  R = B*(100 - x)/100  =>  y > 100*D*x/((B - D)*(100 - x))
//
// B = 15 GB/s and D = 7.5 GB/s need y > 500 ms with x = 250 ms, but 11.1 ms with x = 10 ms; at
// y = 300 ms and x = 250 ms the largest converging dirty rate is B*(1 - x/y) = 2.5 GB/s.
// Two things the thread leaves out are added: device state S sent at stop-copy is pending too
// (y > (B*t + S)/R), and QEMU's avail-switchover-bandwidth, when set, replaces R.
//
//   const c = criticalState({ bandwidth: 15e9, dirtyRate: 7.5e9, syncCostMs: 250 });
//   c.minDowntimeLimitMs;  // 500
//   maxConvergingDirtyRate({ bandwidth: 15e9, syncCostMs: 250, downtimeLimitMs: 300 }); // 2.5e9
//
// Units: bytes and bytes per second as `number`, times in milliseconds.

/** QEMU's shortest bandwidth sample (BUFFER_DELAY in migration/migration.c), ms. */
export const BANDWIDTH_SAMPLE_MS = 100;

export interface CriticalStateInput {
  /** Link bandwidth B in bytes per second (> 0). */
  readonly bandwidth: number;
  /** Total dirty rate D in bytes per second: everything an iteration has to send again. */
  readonly dirtyRate: number;
  /** Duration x of one dirty-bitmap sync, ms. */
  readonly syncCostMs: number;
  /** Device state S sent at stop-copy, bytes (default 0). */
  readonly stopCopyBytes?: number;
  /** QEMU avail-switchover-bandwidth in bytes per second: replaces the estimate when set. */
  readonly availSwitchoverBandwidth?: number;
}

export interface CriticalState {
  /** t: transfer time of one settled iteration, ms (null when D >= B: pre-copy never settles). */
  readonly transferMs: number | null;
  /** x + t, ms. */
  readonly iterationMs: number | null;
  /** The bandwidth sample: max(100 ms, x + t). */
  readonly sampleMs: number | null;
  /** R: what QEMU believes the bandwidth is at the critical state (bytes/s). */
  readonly estimatedBandwidth: number | null;
  /** Pending at each switchover decision: B*t + S (bytes). */
  readonly pendingBytes: number | null;
  /**
   * The smallest downtime limit that converges: pre-copy converges when the limit is above it,
   * however long it runs. null when no limit does (D >= B, or R = 0 with device state pending).
   */
  readonly minDowntimeLimitMs: number | null;
}

/** The critical state of pre-copy for one dirty rate. Throws RangeError on invalid input. */
export function criticalState(input: CriticalStateInput): CriticalState {
  const { bandwidth: B, dirtyRate: D, syncCostMs: x } = input;
  check("bandwidth", B, false);
  check("dirtyRate", D, true);
  check("syncCostMs", x, true);
  const S = input.stopCopyBytes ?? 0;
  check("stopCopyBytes", S, true);
  const Bs = input.availSwitchoverBandwidth;
  if (Bs !== undefined) check("availSwitchoverBandwidth", Bs, false);
  if (D >= B)
    return {
      transferMs: null,
      iterationMs: null,
      sampleMs: null,
      estimatedBandwidth: null,
      pendingBytes: null,
      minDowntimeLimitMs: null,
    };
  const t = (D * x) / (B - D);
  const iterationMs = x + t;
  const sampleMs = Math.max(BANDWIDTH_SAMPLE_MS, iterationMs);
  const R = Bs ?? estimatedBandwidth(B, x, t);
  const pendingBytes = (B * t) / 1000 + S;
  const minDowntimeLimitMs = pendingBytes === 0 ? 0 : R > 0 ? (pendingBytes / R) * 1000 : null;
  return { transferMs: t, iterationMs, sampleMs, estimatedBandwidth: R, pendingBytes, minDowntimeLimitMs };
}

/**
 * The largest total dirty rate that converges at `downtimeLimitMs`: every rate below it does
 * (bytes/s; the bandwidth itself when any rate below the link converges; 0 when only a guest that
 * dirties nothing does). null when none does, not even 0 (device state that never fits).
 *
 * With device state and no avail-switchover-bandwidth the answer is not monotone in D: a faster
 * dirty rate keeps the link busier between syncs, which raises QEMU's estimate, so the rates that
 * converge can start above 0. This returns the top of that range.
 */
export function maxConvergingDirtyRate(
  input: Omit<CriticalStateInput, "dirtyRate"> & { readonly downtimeLimitMs: number },
): number | null {
  const B = input.bandwidth;
  check("bandwidth", B, false);
  check("syncCostMs", input.syncCostMs, true);
  check("downtimeLimitMs", input.downtimeLimitMs, false);
  const S = input.stopCopyBytes ?? 0;
  check("stopCopyBytes", S, true);
  // Milliseconds throughout (B*x/1000 is bytes), as criticalState computes, so both agree at the edges.
  const x = input.syncCostMs;
  const y = input.downtimeLimitMs;
  const sample = BANDWIDTH_SAMPLE_MS;
  // The rate whose settled transfer time is t: from t = D*x/(B - D).
  const rateFor = (t: number) => (t <= 0 ? null : (t * B) / (x + t));
  const Bs = input.availSwitchoverBandwidth;
  if (Bs !== undefined) {
    check("availSwitchoverBandwidth", Bs, false);
    // (B*t + S)/Bs < y, increasing in D.
    return rateFor((Bs * y - 1000 * S) / B);
  }
  if (x === 0) return (1000 * S) / B < y ? B : null; // R = B and t = 0 whatever D is
  // Region A (x + t >= 100 ms): y(D) = B*x/(B - D) + 1000*S/D, convex. Region B (x + t < 100 ms,
  // the rates below D1): y(D) = sample*(B*t + 1000*S)/(B*(sample - x)), increasing.
  const D1 = x < sample ? B * (1 - x / sample) : 0;
  const yA = (D: number) =>
    (B * x) / (B - D) + (D > 0 ? (1000 * S) / D : S > 0 ? Number.POSITIVE_INFINITY : 0);
  const k = Math.sqrt((1000 * S) / (B * x));
  const bottom = Math.max(D1, (B * k) / (1 + k)); // where y(D) is smallest in region A
  if (yA(bottom) < y) {
    // The larger root of y*D^2 + (B*x - 1000*S - y*B)*D + 1000*S*B = 0 (B*(1 - x/y) when S = 0).
    const b = y * B + 1000 * S - B * x;
    return (b + Math.sqrt(Math.max(0, b * b - 4 * y * 1000 * S * B))) / (2 * y);
  }
  // Only an idle guest (D = 0: nothing is ever pending) converges when there is no device state.
  const idle = S === 0 ? 0 : null;
  if (x >= sample) return idle;
  return rateFor((y * (sample - x)) / sample - (1000 * S) / B) ?? idle;
}

/**
 * QEMU's estimate over a sample that spans max(100 ms, one iteration of x + t ms) and holds one
 * sync of x ms: B*t/(x + t) for long iterations, B*(100 - x)/100 for short ones.
 */
export function estimatedBandwidth(B: number, x: number, t: number): number {
  return x + t >= BANDWIDTH_SAMPLE_MS
    ? (B * t) / (x + t)
    : (B * (BANDWIDTH_SAMPLE_MS - x)) / BANDWIDTH_SAMPLE_MS;
}

// --- Internal helpers ---

function check(name: string, v: number, allowZero: boolean): void {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0))
    throw new RangeError(`${name} must be a finite number ${allowZero ? ">=" : ">"} 0`);
}

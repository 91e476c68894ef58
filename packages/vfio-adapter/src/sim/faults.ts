// Fault injection: make chosen calls fail the way real hardware and kernels fail, so the tracker's
// fail-safe paths run for real. A fault matches calls by operation name (and device), fires on the
// Nth matching call, with a seeded probability, or from a point in virtual time, and then either
// fails the call with an errno, throws the device into the ERROR migration state, or resets the
// device's DMA log while the call itself succeeds (what a device reset does to mlx5's tracker).
//
//   faults.add({ op: "DMA_LOGGING_REPORT", errno: "EIO", nth: 3 });
//   faults.add({ op: "IOMMU_HWPT_GET_DIRTY_BITMAP", errno: "EIO", probability: 0.1 });
//   faults.check("VFIO_DEVICE_FEATURE(GET|DMA_LOGGING_REPORT)", "0000:3b:00.1", now)

import { Errno, InvalidInputError } from "../errors.ts";
import { mulberry32 } from "../util/prng.ts";
import type { SimTime } from "./clock.ts";
import type { FaultSpec } from "./profile.ts";

/** What a fired fault does to the call. */
export interface FaultHit {
  effect: "errno" | "error-state" | "log-reset";
  /** Negative errno to return (for "errno"; "error-state" fails with it too). */
  rc: number;
  spec: FaultSpec;
}

interface Armed {
  spec: FaultSpec;
  seen: number;
  fired: number;
  limit: number;
}

export class FaultInjector {
  private readonly armed: Armed[] = [];
  private readonly rng: () => number;
  /** Every fault that fired, for tests and the CLI's report. */
  readonly log: { op: string; device?: string; t: SimTime; effect: string; errno?: string }[] = [];

  constructor(seed: number) {
    this.rng = mulberry32(seed ^ 0x5eed);
  }

  /** Arms a fault. Throws InvalidInputError naming the bad field. */
  add(spec: FaultSpec): void {
    const effect = spec.effect ?? "errno";
    if (effect !== "log-reset" && spec.errno !== undefined && !(spec.errno in Errno))
      throw new InvalidInputError(`fault errno ${spec.errno} is not one of ${Object.keys(Errno).join(", ")}`);
    if (effect === "errno" && spec.errno === undefined)
      throw new InvalidInputError("fault errno is required");
    const limit = spec.times ?? (spec.nth !== undefined ? 1 : Number.POSITIVE_INFINITY);
    this.armed.push({ spec, seen: 0, fired: 0, limit });
  }

  clear(): void {
    this.armed.length = 0;
  }

  /** Called for every syscall: the fault to apply, or undefined. */
  check(op: string, device: string | undefined, now: SimTime): FaultHit | undefined {
    for (const a of this.armed) {
      const s = a.spec;
      if (a.fired >= a.limit || !matches(s.op, op) || (s.device !== undefined && s.device !== device))
        continue;
      if (s.fromMs !== undefined && now < s.fromMs * 1e6) continue;
      a.seen++;
      if (s.nth !== undefined && a.seen < s.nth) continue;
      if (s.probability !== undefined && this.rng() >= s.probability) continue;
      a.fired++;
      const effect = s.effect ?? "errno";
      const rc = -(Errno[(s.errno ?? "EIO") as keyof typeof Errno] ?? Errno.EIO);
      this.log.push({
        op,
        ...(device ? { device } : {}),
        t: now,
        effect,
        ...(s.errno ? { errno: s.errno } : {}),
      });
      return { effect, rc, spec: s };
    }
    return undefined;
  }
}

/**
 * "DMA_LOGGING_REPORT" matches "VFIO_DEVICE_FEATURE(GET|DMA_LOGGING_REPORT)"; "VFIO_IOMMU_DIRTY_PAGES"
 * matches "VFIO_IOMMU_DIRTY_PAGES(GET_BITMAP)"; "*" matches everything; full names match themselves.
 */
export function matches(pattern: string, op: string): boolean {
  return (
    pattern === "*" ||
    pattern === op ||
    op.startsWith(`${pattern}(`) ||
    op.endsWith(`|${pattern})`) ||
    op.endsWith(`(${pattern})`)
  );
}

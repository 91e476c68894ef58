// Stopping tracking must complete: each strategy tries its kernel's STOP a few times before it
// gives up (a transient EBUSY or EIO must not leave a device or an IOMMU tracking after the
// migration), and says what is left when it does. Shared by the strategies.

/** Runs `stop` up to `attempts` times; returns undefined once it succeeds, else the last error. */
export function stopWithRetry(stop: () => void, attempts = 3): unknown {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      stop();
      return undefined;
    } catch (e) {
      last = e;
    }
  }
  return last ?? new Error("stop failed");
}

/**
 * A STOP kept failing. `closedFd`: device logging closed the device's fd as its last resort (the
 * driver stops logging on close). `stillTracking`: nothing could stop it; the message says what
 * would (an IOMMU's tracking ends when its container or iommufd is closed, which the caller owns).
 */
export class StopFailedError extends Error {
  override name = "StopFailedError";
  constructor(
    message: string,
    cause: unknown,
    readonly closedFd = false,
    readonly stillTracking = false,
  ) {
    super(message, { cause });
  }
}

/** The error of a STOP that kept failing: what failed, that tracking is still on, what ends it. */
export function stillTracking(call: string, remedy: string, last: unknown, attempts = 3): StopFailedError {
  const why = last instanceof Error ? last.message : String(last);
  return new StopFailedError(
    `${call} failed ${attempts} times (${why}); still tracking; ${remedy}`,
    last,
    false,
    true,
  );
}

// From a track report's `deviceState` section (MIG_DATA_SIZE and GET_PRECOPY_INFO readings) to
// the devices predict models: stop-copy bytes, initial and dirty pre-copy data, how fast the
// device state changes, and the REINITs a v2 device reported. Pure.

import type { DeviceMigrationData } from "@vfio-dirty/tracker";
import type { DeviceStateReading } from "../report.ts";

/**
 * One device per reading. The dirty rate is the data that arrived between readings: what a
 * reading announces (initial_bytes + dirty_bytes) less what was still pending from the one before
 * after its drain (`drainedBytes`; a reader that never drains sees dirty_bytes grow, one that
 * drains as a VMM does sees only the new data). Intervals ending in a v2 REINIT are left out: the
 * data restarts there; a v1 device's REINIT flag is the kernel echoing what user space passed in,
 * so it is ignored. MIG_DATA_SIZE is counted in full besides the pre-copy data, which may count
 * some bytes twice: the prediction errs high, never low.
 */
export function devicesFromReport(readings: readonly DeviceStateReading[]): DeviceMigrationData[] {
  return readings.map((d) => {
    const base = { id: d.device, stopCopyBytes: d.stopCopyBytes ?? 0 };
    const first = d.precopy[0];
    if (d.precopyInfoVersion === null || first === undefined) return base;
    let grown = 0;
    let seconds = 0;
    for (let i = 1; i < d.precopy.length; i++) {
      const a = d.precopy[i - 1]!;
      const b = d.precopy[i]!;
      if (b.reinit && d.precopyInfoVersion === 2) continue;
      const leftOver = Math.max(0, a.initialBytes + a.dirtyBytes - (a.drainedBytes ?? 0));
      grown += Math.max(0, b.initialBytes + b.dirtyBytes - leftOver);
      seconds += (b.tMs - a.tMs) / 1000;
    }
    const reinit =
      d.precopyInfoVersion === 2
        ? d.precopy
            .slice(1)
            .filter((r) => r.reinit && r.tMs > first.tMs)
            .map((r) => ({ atMs: r.tMs - first.tMs, initialBytes: r.initialBytes }))
        : [];
    return {
      ...base,
      precopy: {
        infoVersion: d.precopyInfoVersion,
        initialBytes: first.initialBytes,
        dirtyBytes: first.dirtyBytes,
        dirtyRate: seconds > 0 ? grown / seconds : 0,
        reinit,
      },
    };
  });
}

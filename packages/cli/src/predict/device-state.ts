// From a track report's `deviceState` section (MIG_DATA_SIZE and GET_PRECOPY_INFO readings) to
// the devices predict models: stop-copy bytes, initial and dirty pre-copy data, how fast the
// device state changes, and the REINITs a v2 device reported. Pure.

import type { DeviceMigrationData } from "@vfio-dirty/tracker";
import type { DeviceStateReading } from "../report.ts";

/**
 * One device per reading. The dirty rate is dirty_bytes' growth between readings (REINIT readings
 * excluded: dirty_bytes restarts there); a v1 device's REINIT flag is the kernel echoing what user
 * space passed in, so it is ignored. MIG_DATA_SIZE is counted in full besides the pre-copy data,
 * which may count some bytes twice: the prediction errs high, never low.
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
      grown += Math.max(0, b.dirtyBytes - a.dirtyBytes);
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

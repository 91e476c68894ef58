// Stop-copy stops the devices. In VFIO's STOP_COPY a device is quiesced: it issues no more DMA,
// and what it wrote up to then is in its log for the last sync. At `--phase-switch`, `track` does
// what QEMU does at switchover: each device that can migrate is moved to STOP_COPY
// (VFIO_DEVICE_FEATURE SET MIG_DEVICE_STATE; the simulated kernel stops its DMA there, as a
// driver must), and workload plugins are stopped (their `stop()` quiesces the device they drive).
// A device without VFIO migration cannot be stopped this way: it keeps issuing DMA, and a note
// says so (such a device is a migration blocker anyway).

import { type Device, errnoName, type Host, IoctlError, uapi } from "@vfio-dirty/vfio-adapter";

/**
 * Moves every migratable device to STOP_COPY; returns one note per device that could not be
 * stopped. `driven`: devices whose workload plugin was stopped (their DMA stopped with it).
 */
export function quiesceDevices(
  host: Host,
  devices: ReadonlyMap<string, Device>,
  driven: ReadonlySet<string> = new Set(),
): string[] {
  const notes: string[] = [];
  for (const [address, device] of devices) {
    let flags: number | undefined;
    try {
      flags = device.getMigrationFlags();
    } catch (err) {
      // ENOTTY: not migratable (the tracker's probe reads it the same way).
      if (!(err instanceof IoctlError)) throw err;
    }
    if (flags === undefined || (flags & uapi.VFIO_MIGRATION_STOP_COPY) === 0) {
      if (driven.has(address)) continue; // its plugin was stopped: no DMA follows
      notes.push(
        `${address}: no VFIO migration (STOP_COPY), so it cannot be stopped: it keeps issuing DMA in stop-copy`,
      );
      continue;
    }
    try {
      const { dataFd } = device.setMigState(uapi.VFIO_DEVICE_STATE_STOP_COPY);
      // The device state itself is QEMU's to send; track only needs the device stopped.
      if (dataFd >= 0) host.close(dataFd);
    } catch (err) {
      if (!(err instanceof IoctlError)) throw err;
      notes.push(
        `${address}: refused STOP_COPY (${errnoName(err.errno)}): it may keep issuing DMA in stop-copy`,
      );
    }
  }
  return notes;
}

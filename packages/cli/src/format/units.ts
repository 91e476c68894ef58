// Numbers for people: binary byte units (pages are powers of two), rates per second, durations.

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/** "4 KiB", "1.50 GiB", "512 B". Accepts bigint for exact kernel values. */
export function formatBytes(value: number | bigint): string {
  let v = Number(value);
  let i = 0;
  while (Math.abs(v) >= 1024 && i < BYTE_UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${v} B`;
  return `${Number.isInteger(v) ? v : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${BYTE_UNITS[i]}`;
}

/** "123 MiB/s" from bytes per second. */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(Math.round(bytesPerSecond))}/s`;
}

/** "850 ms", "12.3 s", "4 min 10 s". */
export function formatMs(ms: number): string {
  if (ms < 1) return `${ms.toFixed(3)} ms`;
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(2) : Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`;
  const min = Math.floor(s / 60);
  return `${min} min ${Math.round(s - min * 60)} s`;
}

/** "0x1000" for addresses in human output and JSON (exact for the whole u64 range). */
export { hex } from "@vfio-dirty/vfio-adapter/util";

/** "0x10de": a PCI vendor or device ID as lspci -n prints it, four hex digits. */
export function hex4(v: number): string {
  return `0x${v.toString(16).padStart(4, "0")}`;
}

/** "12.5%" */
export function formatPercent(fraction: number): string {
  return `${(fraction * 100).toFixed(fraction < 0.001 && fraction > 0 ? 3 : 1)}%`;
}

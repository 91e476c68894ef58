// Axes people read at a glance: round ticks (d3-scale's nice numbers), binary units that fit the
// values (MiB/s, GiB), time in s, min or h by the run's length, and addresses in GiB beside hex.

import { format } from "d3-format";
import { scaleLinear } from "d3-scale";

export interface Tick {
  /** Position in the axis's own value (bytes, bytes per second, seconds). */
  value: number;
  label: string;
}

const BINARY = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/** The binary unit in which `max` reads as 1 .. 1023 (B for anything below 1 KiB). */
export function binaryUnit(max: number): { bytes: number; name: string } {
  let i = 0;
  while (i < BINARY.length - 1 && max >= 1024 ** (i + 1)) i++;
  return { bytes: 1024 ** i, name: BINARY[i]! };
}

/**
 * Rate axis from 0: the top is `max` (plus headroom) rounded up to a nice number in its unit, ticks at round
 * values. An all-zero run gets 0 .. 1 KiB/s (five distinct ticks, not "1 B/s, 1 B/s, 0 B/s").
 */
export function rateAxis(max: number): { top: number; ticks: Tick[] } {
  const unit = max > 0 ? binaryUnit(max) : { bytes: 1024, name: "KiB" };
  // 5 % headroom, so a steady rate does not run along the top edge.
  const scale = scaleLinear()
    .domain([0, max > 0 ? (max * 1.05) / unit.bytes : 1])
    .nice(5);
  const fmt = scale.tickFormat(5);
  const ticks = scale.ticks(5).map((v) => ({ value: v * unit.bytes, label: `${fmt(v)} ${unit.name}/s` }));
  return { top: scale.domain()[1]! * unit.bytes, ticks };
}

/** Time axis over [0, endS]: ticks at round seconds, minutes or hours, never past the end. */
export function timeAxis(endS: number): { ticks: Tick[]; unit: string } {
  const [div, unit] = endS >= 3 * 3600 ? [3600, "h"] : endS >= 180 ? [60, "min"] : [1, "s"];
  const scale = scaleLinear().domain([0, Math.max(endS, 1e-3) / div]);
  const fmt = scale.tickFormat(8);
  return { unit, ticks: scale.ticks(8).map((v) => ({ value: v * div, label: `${fmt(v)} ${unit}` })) };
}

/**
 * Address axis over [lo, hi) bytes: ticks at multiples of a power of two (4 to 9 of them), so they
 * are round in hex as well as in binary units, each labelled "4 GiB  0x100000000" (size units for
 * people, hex for the kernel's and QEMU's logs). A decimal "nice" step would give 0x1b0000000.
 */
export function addressAxis(lo: number, hi: number): Tick[] {
  const span = Math.max(1, hi - lo);
  let step = 2 ** Math.floor(Math.log2(span / 4));
  while (span / step > 9) step *= 2;
  const unit = binaryUnit(step * 4);
  const fmt = format(",~r");
  const ticks: Tick[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi; v += step)
    ticks.push({
      value: v,
      label: `${fmt(Number((v / unit.bytes).toPrecision(6)))} ${unit.name}  0x${BigInt(v).toString(16)}`,
    });
  return ticks;
}

/** "12 MiB", "1.5 GiB": a size for a title, in the unit that fits. */
export function sizeText(bytes: number): string {
  const unit = binaryUnit(bytes);
  return `${format(",~r")(Number((bytes / unit.bytes).toPrecision(3)))} ${unit.name}`;
}

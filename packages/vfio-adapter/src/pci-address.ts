// A PCI address ("0000:3b:00.1"), validated strictly because it becomes part of sysfs paths.
//
// Accepted: the kernel's own form DDDD:BB:DD.F (lower- or upper-case hex) and the short BB:DD.F
// form that lspci prints, which means domain 0000. Everything else is rejected with an
// InvalidInputError, never "cleaned up": a user who typed "0000:3b:00.1/../../" made a mistake
// and should be told, not served some other device.
//
//   const a = parsePciAddress("3b:00.1");   // { domain: 0, bus: 0x3b, slot: 0, function: 1, text: "0000:3b:00.1" }
//   sysfs.readFile(`bus/pci/devices/${a.text}/vendor`);

import { InvalidInputError } from "./errors.ts";

/** A parsed PCI address. `text` is the kernel's spelling: what sysfs names the device. */
export interface PciAddress {
  /** PCI segment (domain). 0 on most hosts; VMD domains start at 0x10000. */
  readonly domain: number;
  readonly bus: number;
  /** The device number on the bus (0..31); called "slot" so it is not confused with a device id. */
  readonly slot: number;
  readonly function: number;
  /** Normalised "dddd:bb:ss.f", lower-case, as in /sys/bus/pci/devices. */
  readonly text: string;
}

/**
 * Parses and normalises a PCI address. Throws InvalidInputError for anything that is not exactly
 * `DDDD:BB:DD.F` or `BB:DD.F` (hex): no "..", slashes, NUL bytes, spaces or overlong fields.
 */
export function parsePciAddress(input: string): PciAddress {
  // Length check first so a hostile megabyte string is never fed to the regex or echoed in full.
  if (typeof input !== "string" || input.length > MAX_TEXT_LENGTH) throw invalid(input);
  const m = ADDRESS_RE.exec(input);
  if (!m) throw invalid(input);
  const [, domainText, busText, slotText, fnText] = m;
  const domain = domainText === undefined ? 0 : Number.parseInt(domainText, 16);
  // The kernel prints domains with "%04x": more digits are only valid when the value needs them
  // (VMD's 0x10000+), so "00000:..." is an overlong field, not a different spelling of domain 0.
  if (domainText !== undefined && domainText.length > 4 && domainText.length !== domain.toString(16).length)
    throw invalid(input);
  const bus = Number.parseInt(busText!, 16);
  const slot = Number.parseInt(slotText!, 16);
  const fn = Number.parseInt(fnText!, 16);
  if (slot > MAX_SLOT || fn > MAX_FUNCTION) throw invalid(input);
  return { domain, bus, slot, function: fn, text: formatPciAddress(domain, bus, slot, fn) };
}

/** True when `input` is a valid PCI address (either form). */
export function isPciAddress(input: string): boolean {
  try {
    parsePciAddress(input);
    return true;
  } catch {
    return false;
  }
}

/** The kernel's spelling of an address: "%04x:%02x:%02x.%x". */
export function formatPciAddress(domain: number, bus: number, slot: number, fn: number): string {
  const hex = (n: number, width: number) => n.toString(16).padStart(width, "0");
  return `${hex(domain, 4)}:${hex(bus, 2)}:${hex(slot, 2)}.${fn.toString(16)}`;
}

// --- Internal helpers ---

// Domain: 4 to 8 hex digits (a u32), bus and slot: exactly 2, function: 1 octal-range digit.
const ADDRESS_RE = /^(?:([0-9a-fA-F]{4,8}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/;
const MAX_TEXT_LENGTH = 16;
const MAX_SLOT = 0x1f;
const MAX_FUNCTION = 7;

function invalid(input: unknown): InvalidInputError {
  const shown = typeof input === "string" ? JSON.stringify(input.slice(0, 40)) : String(typeof input);
  return new InvalidInputError(
    `invalid PCI address ${shown}: expected DDDD:BB:DD.F or BB:DD.F in hex, e.g. 0000:3b:00.1`,
  );
}

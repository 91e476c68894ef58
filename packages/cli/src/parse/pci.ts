// PCI addresses typed by users: the adapter's strict parser (it guards sysfs paths), with the
// CLI's one-line usage message on failure.

import { InvalidInputError, parsePciAddress as parseStrict } from "@vfio-dirty/vfio-adapter";
import { UsageError } from "../errors.ts";

/** The canonical sysfs form ("0000:3b:00.1"); the domain may be left out ("3b:00.1"). */
export function parsePciAddress(text: string): string {
  try {
    return parseStrict(text).text;
  } catch (err) {
    if (!(err instanceof InvalidInputError)) throw err;
    throw new UsageError(
      `PCI address '${text.slice(0, 64)}': not of the form DDDD:BB:DD.F; use the address 'lspci -D' shows, e.g. 0000:3b:00.1`,
      { cause: err },
    );
  }
}

/**
 * Device arguments of probe/track: each parsed, and each device named once. The same device
 * twice ("3b:00.1" and "0000:3b:00.1" included) is a usage error, not a busy device later.
 */
export function parsePciAddresses(texts: readonly string[]): string[] {
  const seen = new Map<string, string>();
  for (const text of texts) {
    const address = parsePciAddress(text);
    const before = seen.get(address);
    if (before !== undefined)
      throw new UsageError(
        `PCI address ${address} is given twice${before === text ? "" : ` ('${before}' and '${text}')`}; name each device once`,
      );
    seen.set(address, text);
  }
  return [...seen.keys()];
}

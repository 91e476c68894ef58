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

// PCI addresses as sysfs spells them: "0000:3b:00.1". The domain may be left out ("3b:00.1").

import { UsageError } from "../errors.ts";

/** The canonical sysfs form, lower case with a 4-digit domain. */
export function parsePciAddress(text: string): string {
  const m = /^(?:([0-9a-f]{4}):)?([0-9a-f]{2}):([0-1][0-9a-f])\.([0-7])$/i.exec(text.trim());
  if (!m)
    throw new UsageError(
      `PCI address '${text}': not of the form DDDD:BB:DD.F; use the address 'lspci -D' shows, e.g. 0000:3b:00.1`,
    );
  return `${m[1] ?? "0000"}:${m[2]}:${m[3]}.${m[4]}`.toLowerCase();
}

// The one rule for paths handed to a SysfsReader, shared by every backend.
//
// A sysfs path is relative to the sysfs root, "/"-separated, and made of plain names: no "..",
// no ".", no empty segment, no NUL, no backslash. Backends call checkSysfsPath before touching
// anything, so a hostile name from outside (a PCI address, a group number) can never walk out of
// the root even before symlinks are resolved. Malformed paths are a caller's bug or an attack, so
// they throw InvalidInputError; well-formed paths that do not exist read as `undefined`.
//
//   const segments = checkSysfsPath("bus/pci/devices/0000:3b:00.1/vendor");

import { InvalidInputError } from "./errors.ts";

/**
 * Validates a root-relative sysfs path and returns its segments ("" is the root itself: []).
 * Throws InvalidInputError for absolute paths, "..", ".", empty segments, NUL or backslashes.
 */
export function checkSysfsPath(path: string): string[] {
  if (typeof path !== "string")
    throw new InvalidInputError(`sysfs path must be a string, got ${typeof path}`);
  if (path === "") return [];
  if (path.length > MAX_PATH_LENGTH) throw rejected(path, "too long");
  if (path.includes("\0")) throw rejected(path, "contains a NUL byte");
  if (path.includes("\\")) throw rejected(path, "contains a backslash");
  if (path.startsWith("/")) throw rejected(path, "is absolute; sysfs paths are relative to the sysfs root");
  const segments = path.split("/");
  for (const s of segments) {
    if (s === "") throw rejected(path, "has an empty segment");
    if (s === "." || s === "..") throw rejected(path, `contains "${s}"`);
    if (s.length > MAX_NAME_LENGTH) throw rejected(path, "has a name longer than 255 bytes");
  }
  return segments;
}

// --- Internal helpers ---

// PATH_MAX and NAME_MAX of Linux.
const MAX_PATH_LENGTH = 4096;
const MAX_NAME_LENGTH = 255;

function rejected(path: string, why: string): InvalidInputError {
  return new InvalidInputError(`sysfs path ${JSON.stringify(path.slice(0, 80))} rejected: it ${why}`);
}

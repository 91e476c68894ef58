// Output paths checked before any work: a run that measured for half an hour must not end in
// "no such directory". The check is what can be known up front (the directory exists and may be
// written, the path is not a directory); a write can still fail later (a full disk), and the
// command then still prints its result.

import { accessSync, constants, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { UsageError } from "../errors.ts";

/** Throws a UsageError naming `flag` unless a file could be written at `path` now. */
export function checkWritable(path: string, flag: string): void {
  const dir = dirname(resolve(path));
  const where = `${flag} ${path}`;
  let dirStat: ReturnType<typeof statSync>;
  try {
    dirStat = statSync(dir);
  } catch {
    throw new UsageError(`${where}: the directory ${dir} does not exist; create it or write elsewhere`);
  }
  if (!dirStat.isDirectory()) throw new UsageError(`${where}: ${dir} is not a directory; write elsewhere`);
  const target = statSync(path, { throwIfNoEntry: false });
  if (target?.isDirectory()) throw new UsageError(`${where}: is a directory; give a file name`);
  try {
    accessSync(target ? path : dir, constants.W_OK);
  } catch {
    throw new UsageError(
      `${where}: permission denied (${target ? "the file" : `the directory ${dir}`}); write elsewhere`,
    );
  }
}

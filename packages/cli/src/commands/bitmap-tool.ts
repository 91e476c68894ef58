// What every `vfio-dirty bitmap` tool shares: the options that place its input, and how it
// describes a bitmap in --json output. Its own module so that the tools and the `bitmap` group
// that lists them import it, not each other.

import type { Command } from "commander";
import { hex } from "../format/units.ts";

/** Adds the input placement options every bitmap tool takes. */
export function withInputOptions(cmd: Command): Command {
  return cmd
    .option("--page-size <size>", "page size of the input (bytes per bit)", "4K")
    .option("--base <addr>", "address of the input's bit 0", "0");
}

/** A bitmap's description in --json output. */
export interface BitmapSummary {
  file: string;
  pageSize: number;
  base: string;
  pages: number;
  dirtyPages: number;
}

/** The --json description of bitmap `bm`, read from or written to `file`. */
export function summary(
  file: string,
  bm: { nbits: number; pageSize: bigint; base: bigint; count(): number },
): BitmapSummary {
  return { file, pageSize: Number(bm.pageSize), base: hex(bm.base), pages: bm.nbits, dirtyPages: bm.count() };
}

// `vfio-dirty bitmap <tool>`: offline tools over raw dirty-bitmap files (little-endian u64 words,
// bit i = page i). Every tool reads its inputs with --page-size and --base (or the per-file
// ",page-size=SIZE,base=ADDR" suffix), does all bit work in bitmap-wasm, and prints a summary.

import { Command } from "commander";
import type { Context } from "../context.ts";
import { bitmapConvertCommand } from "./bitmap-convert.ts";
import { bitmapMergeCommand } from "./bitmap-merge.ts";
import { bitmapRenderCommand } from "./bitmap-render.ts";
import { bitmapStatsCommand } from "./bitmap-stats.ts";
import { bitmapTranslateCommand } from "./bitmap-translate.ts";

export function bitmapCommand(
  makeContext: (cmd: Command) => Context,
  configure: (c: Command) => void,
): Command {
  const group = new Command("bitmap")
    .description("tools for raw dirty-bitmap files (u64 little-endian words, bit i = page i)")
    .addHelpText(
      "after",
      `
Inputs take --page-size (default 4K) and --base (address of bit 0, default 0), or per file
FILE,page-size=SIZE,base=ADDR. Sizes: 4096, 4K, 2M, 1G, 0x1000. Addresses: decimal or 0x hex.

Examples:
  $ vfio-dirty bitmap stats dirty.bin --page-size 4K --base 0x100000000
  $ vfio-dirty bitmap convert dirty.bin coarse.bin --to-page-size 2M
  $ vfio-dirty bitmap merge all.bin dev0.bin dev1.bin,base=0x80000000,page-size=2M
  $ vfio-dirty bitmap translate iova.bin gpa.bin --map 0x0:0x40000000:1G
  $ vfio-dirty bitmap render dirty.bin --svg density.svg
`,
    );
  for (const cmd of [
    bitmapStatsCommand(makeContext),
    bitmapConvertCommand(makeContext),
    bitmapMergeCommand(makeContext),
    bitmapTranslateCommand(makeContext),
    bitmapRenderCommand(makeContext),
  ]) {
    configure(cmd);
    group.addCommand(cmd);
  }
  return group;
}

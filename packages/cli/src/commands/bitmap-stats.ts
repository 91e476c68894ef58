// `vfio-dirty bitmap stats FILE`: pages, dirty pages and bytes, runs, largest run, density.

import { Command } from "commander";
import { bitmapCore, parseInputSpec, readBitmapFile } from "../bitmap-file.ts";
import type { Context } from "../context.ts";
import { keyValueTable } from "../format/table.ts";
import { formatBytes, formatPercent, hex } from "../format/units.ts";
import { parseAddress, parsePageSize } from "../parse/size.ts";
import { withInputOptions } from "./bitmap-tool.ts";

/** The --json document of `bitmap stats`. */
export interface StatsDocument {
  command: "bitmap stats";
  file: string;
  pageSize: number;
  base: string;
  pages: number;
  dirtyPages: number;
  dirtyBytes: number;
  runs: number;
  largestRun: number;
  density: number;
}

export function bitmapStatsCommand(makeContext: (cmd: Command) => Context): Command {
  return withInputOptions(
    new Command("stats")
      .description("count dirty pages, runs and density of a bitmap file")
      .argument("<file>"),
  )
    .addHelpText("after", "\nExample:\n  $ vfio-dirty bitmap stats dirty.bin --page-size 4K --json\n")
    .action(async (file: string, opts: { pageSize: string; base: string }, cmd: Command) => {
      const ctx = makeContext(cmd);
      const doc = await bitmapStats(file, opts);
      ctx.out.document(doc);
      ctx.out.result(
        keyValueTable([
          ["file", doc.file],
          ["page size", formatBytes(doc.pageSize)],
          ["base", doc.base],
          ["pages", String(doc.pages)],
          ["dirty pages", String(doc.dirtyPages)],
          ["dirty bytes", `${doc.dirtyBytes} (${formatBytes(doc.dirtyBytes)})`],
          ["runs", String(doc.runs)],
          ["largest run", `${doc.largestRun} pages`],
          ["density", formatPercent(doc.density)],
        ]),
      );
    });
}

export async function bitmapStats(
  spec: string,
  opts: { pageSize: string; base: string },
): Promise<StatsDocument> {
  const input = parseInputSpec(spec, {
    pageSize: parsePageSize(opts.pageSize, "--page-size"),
    base: parseAddress(opts.base, "--base"),
  });
  const bm = readBitmapFile(await bitmapCore(), input);
  try {
    const dirtyPages = bm.count();
    let runs = 0;
    let largestRun = 0;
    for (const [, length] of bm.runs()) {
      runs++;
      if (Number(length) > largestRun) largestRun = Number(length);
    }
    return {
      command: "bitmap stats",
      file: input.path,
      pageSize: Number(input.pageSize),
      base: hex(input.base),
      pages: bm.nbits,
      dirtyPages,
      dirtyBytes: dirtyPages * Number(input.pageSize),
      runs,
      largestRun,
      density: bm.nbits === 0 ? 0 : dirtyPages / bm.nbits,
    };
  } finally {
    bm.free();
  }
}

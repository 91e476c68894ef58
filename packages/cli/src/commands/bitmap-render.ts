// `vfio-dirty bitmap render FILE --svg OUT.svg`: a heat map of dirty density across the bitmap's
// address range. bitmap-wasm counts the dirty pages of each cell; JS only colours the cells.

import { writeFileSync } from "node:fs";
import { Command } from "commander";
import { bitmapCore, parseInputSpec, readBitmapFile } from "../bitmap-file.ts";
import type { Context } from "../context.ts";
import { UsageError } from "../errors.ts";
import { formatBytes } from "../format/units.ts";
import { parseAddress, parseCount, parsePageSize } from "../parse/size.ts";
import { maxOf } from "../report.ts";
import { densitySvg } from "../svg/pictures.ts";
import { type BitmapSummary, summary, withInputOptions } from "./bitmap-tool.ts";

export interface RenderDocument {
  command: "bitmap render";
  input: BitmapSummary;
  svg: string;
  cells: number;
  pagesPerCell: number;
  maxCellDirtyPages: number;
}

interface RenderOptions {
  pageSize: string;
  base: string;
  svg?: string;
  cells: string;
}

const COLUMNS = 64;

export function bitmapRenderCommand(makeContext: (cmd: Command) => Context): Command {
  return withInputOptions(
    new Command("render")
      .description("draw a dirty-density heat map of a bitmap file as SVG")
      .argument("<file>"),
  )
    .option("--svg <out.svg>", "where to write the picture (required)")
    .option("--cells <n>", "number of heat-map cells (64 per row)", "2048")
    .addHelpText(
      "after",
      "\nExample:\n  $ vfio-dirty bitmap render dirty.bin --page-size 4K --base 0x100000000 --svg density.svg\n",
    )
    .action(async (spec: string, opts: RenderOptions, cmd: Command) => {
      const ctx = makeContext(cmd);
      const doc = await bitmapRender(spec, opts);
      ctx.out.document(doc);
      ctx.out.result(
        `${doc.svg}: ${doc.cells} cells of ${doc.pagesPerCell} pages (${formatBytes(doc.pagesPerCell * doc.input.pageSize)}) from ${doc.input.file}, ${doc.input.dirtyPages} dirty pages`,
      );
    });
}

export async function bitmapRender(spec: string, opts: RenderOptions): Promise<RenderDocument> {
  if (opts.svg === undefined)
    throw new UsageError("render needs --svg OUT.svg; give the file to write the picture to");
  const cellsWanted = parseCount(opts.cells, "--cells", 1 << 16);
  if (cellsWanted < 1) throw new UsageError(`--cells '${opts.cells}': give at least 1`);
  const input = parseInputSpec(spec, {
    pageSize: parsePageSize(opts.pageSize, "--page-size"),
    base: parseAddress(opts.base, "--base"),
  });
  const bm = readBitmapFile(await bitmapCore(), input);
  try {
    // Whole pages per cell, so every cell covers the same span and the colour scale is honest.
    const pagesPerCell = Math.max(1, Math.ceil(bm.nbits / cellsWanted));
    const cells = Math.ceil(bm.nbits / pagesPerCell);
    const counts = densityByCell(bm, cells, pagesPerCell);
    const svg = densitySvg({
      file: input.path,
      base: input.base,
      pageSize: input.pageSize,
      counts,
      pagesPerBucket: pagesPerCell,
      columns: Math.min(COLUMNS, cells),
    });
    try {
      writeFileSync(opts.svg, svg);
    } catch (err) {
      throw new UsageError(
        `${opts.svg}: cannot write (${(err as NodeJS.ErrnoException).code}); check the directory exists`,
        { cause: err },
      );
    }
    return {
      command: "bitmap render",
      input: summary(input.path, bm),
      svg: opts.svg,
      cells,
      pagesPerCell,
      maxCellDirtyPages: maxOf(counts),
    };
  } finally {
    bm.free();
  }
}

// --- Internal helpers ---

/** Dirty pages per cell of `pagesPerCell` pages; the last cell may be shorter. */
function densityByCell(
  bm: { nbits: number; count(start?: number, n?: number): number },
  cells: number,
  pagesPerCell: number,
): number[] {
  const counts: number[] = [];
  for (let c = 0; c < cells; c++) {
    const start = c * pagesPerCell;
    counts.push(bm.count(start, Math.min(pagesPerCell, bm.nbits - start)));
  }
  return counts;
}

// `vfio-dirty bitmap convert IN OUT --to-page-size SIZE [--to-base ADDR]`: the same dirty memory
// at another page size. Coarsening marks a big page dirty when any small page in it is;
// expanding marks every small page of a dirty big page. A dirty page is never lost, so the output
// always covers the input's whole span.

import { alignDown, alignUp } from "@vfio-dirty/vfio-adapter/util";
import { Command } from "commander";
import {
  assertNothingOutside,
  bitmapCore,
  parseInputSpec,
  readBitmapFile,
  spanEnd,
  wholeWords,
  writeBitmapFile,
} from "../bitmap-file.ts";
import type { Context } from "../context.ts";
import { UsageError } from "../errors.ts";
import { formatBytes, hex } from "../format/units.ts";
import { parseAddress, parsePageSize } from "../parse/size.ts";
import { type BitmapSummary, summary, withInputOptions } from "./bitmap-tool.ts";

export interface ConvertDocument {
  command: "bitmap convert";
  input: BitmapSummary;
  output: BitmapSummary;
}

interface ConvertOptions {
  pageSize: string;
  base: string;
  toPageSize?: string;
  toBase?: string;
}

export function bitmapConvertCommand(makeContext: (cmd: Command) => Context): Command {
  return withInputOptions(
    new Command("convert")
      .description("convert a bitmap file to another page size (never losing a dirty page)")
      .argument("<in>")
      .argument("<out>"),
  )
    .option("--to-page-size <size>", "page size of the output (required)")
    .option("--to-base <addr>", "address of the output's bit 0 (default: the input's base aligned down)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ vfio-dirty bitmap convert dirty-4k.bin dirty-2m.bin --to-page-size 2M\n  $ vfio-dirty bitmap convert huge.bin small.bin --page-size 2M --to-page-size 4K\n",
    )
    .action(async (inSpec: string, outPath: string, opts: ConvertOptions, cmd: Command) => {
      const ctx = makeContext(cmd);
      const doc = await bitmapConvert(inSpec, outPath, opts);
      ctx.out.document(doc);
      ctx.out.result(
        `${doc.input.file}: ${doc.input.dirtyPages}/${doc.input.pages} dirty pages of ${formatBytes(doc.input.pageSize)} -> ` +
          `${doc.output.file}: ${doc.output.dirtyPages}/${doc.output.pages} dirty pages of ${formatBytes(doc.output.pageSize)} from ${doc.output.base}`,
      );
    });
}

export async function bitmapConvert(
  inSpec: string,
  outPath: string,
  opts: ConvertOptions,
): Promise<ConvertDocument> {
  if (opts.toPageSize === undefined)
    throw new UsageError("convert needs --to-page-size; give the output page size, e.g. --to-page-size 2M");
  const input = parseInputSpec(inSpec, {
    pageSize: parsePageSize(opts.pageSize, "--page-size"),
    base: parseAddress(opts.base, "--base"),
  });
  const toPageSize = parsePageSize(opts.toPageSize, "--to-page-size");
  const core = await bitmapCore();
  const src = readBitmapFile(core, input);
  try {
    const toBase =
      opts.toBase !== undefined ? parseAddress(opts.toBase, "--to-base") : alignDown(input.base, toPageSize);
    if (toBase % toPageSize !== 0n)
      throw new UsageError(
        `--to-base ${hex(toBase)} is not a multiple of --to-page-size ${hex(toPageSize)}; align it`,
      );
    if (toBase > input.base)
      throw new UsageError(
        `--to-base ${hex(toBase)} is above the input's base ${hex(input.base)}: pages below it would be lost; use a lower --to-base`,
      );
    const end = alignUp(spanEnd(src), toPageSize);
    const dst = core.bitmap({
      nbits: wholeWords((end - toBase) / toPageSize),
      pageSize: toPageSize,
      base: toBase,
    });
    try {
      assertNothingOutside(core.convert(src, dst).outsidePages);
      writeBitmapFile(outPath, dst);
      return { command: "bitmap convert", input: summary(input.path, src), output: summary(outPath, dst) };
    } finally {
      dst.free();
    }
  } finally {
    src.free();
  }
}

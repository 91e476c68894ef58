// `vfio-dirty bitmap merge OUT IN...`: the OR of several bitmaps, each placed by its own base and
// page size (devices report at different page sizes and from different address ranges). The
// output covers every input's span, at the first input's page size unless --page-size is given.

import { alignDown, alignUp, bigMax, bigMin } from "@vfio-dirty/vfio-adapter/util";
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
import { type BitmapSummary, summary } from "./bitmap-tool.ts";

export interface MergeDocument {
  command: "bitmap merge";
  inputs: BitmapSummary[];
  output: BitmapSummary;
}

interface MergeOptions {
  inPageSize: string;
  inBase: string;
  pageSize?: string;
  base?: string;
}

export function bitmapMergeCommand(makeContext: (cmd: Command) => Context): Command {
  return new Command("merge")
    .description("OR several bitmap files into one, each placed by its own base and page size")
    .argument("<out>")
    .argument("<in...>", "input files, each FILE[,page-size=SIZE][,base=ADDR]")
    .option("--in-page-size <size>", "page size of inputs that do not give their own", "4K")
    .option("--in-base <addr>", "base of inputs that do not give their own", "0")
    .option("--page-size <size>", "page size of the output (default: the first input's)")
    .option("--base <addr>", "address of the output's bit 0 (default: the lowest input base, aligned down)")
    .addHelpText(
      "after",
      `
Each input carries its own placement: FILE,page-size=SIZE,base=ADDR (defaults --in-page-size, --in-base).

Examples:
  $ vfio-dirty bitmap merge all.bin dev0.bin dev1.bin
  $ vfio-dirty bitmap merge all.bin low.bin high.bin,base=0x100000000 --page-size 4K
  $ vfio-dirty bitmap merge all.bin a.bin,page-size=4K b.bin,page-size=2M,base=0x40000000
`,
    )
    .action(async (outPath: string, inSpecs: string[], opts: MergeOptions, cmd: Command) => {
      const ctx = makeContext(cmd);
      const doc = await bitmapMerge(outPath, inSpecs, opts);
      ctx.out.document(doc);
      for (const i of doc.inputs)
        ctx.out.info(
          `  ${i.file}: ${i.dirtyPages}/${i.pages} dirty pages of ${formatBytes(i.pageSize)} from ${i.base}`,
        );
      ctx.out.result(
        `${doc.output.file}: ${doc.output.dirtyPages}/${doc.output.pages} dirty pages of ${formatBytes(doc.output.pageSize)} from ${doc.output.base} (OR of ${doc.inputs.length} inputs)`,
      );
    });
}

export async function bitmapMerge(
  outPath: string,
  inSpecs: readonly string[],
  opts: MergeOptions,
): Promise<MergeDocument> {
  const defaults = {
    pageSize: parsePageSize(opts.inPageSize, "--in-page-size"),
    base: parseAddress(opts.inBase, "--in-base"),
  };
  const inputs = inSpecs.map((s) => parseInputSpec(s, defaults));
  const core = await bitmapCore();
  const srcs = [];
  try {
    for (const input of inputs) srcs.push(readBitmapFile(core, input));
    const pageSize =
      opts.pageSize !== undefined ? parsePageSize(opts.pageSize, "--page-size") : inputs[0]!.pageSize;
    const lowest = bigMin(...inputs.map((i) => i.base));
    const base = opts.base !== undefined ? parseAddress(opts.base, "--base") : alignDown(lowest, pageSize);
    if (base % pageSize !== 0n)
      throw new UsageError(`--base ${hex(base)} is not a multiple of the output page size; align it`);
    if (base > lowest)
      throw new UsageError(
        `--base ${hex(base)} is above an input's base ${hex(lowest)}: its pages would be lost; use a lower --base`,
      );
    const end = bigMax(...srcs.map(spanEnd));
    const dst = core.bitmap({
      nbits: wholeWords((alignUp(end, pageSize) - base) / pageSize),
      pageSize,
      base,
    });
    try {
      for (const src of srcs) assertNothingOutside(core.convert(src, dst).outsidePages);
      writeBitmapFile(outPath, dst);
      return {
        command: "bitmap merge",
        inputs: srcs.map((b, i) => summary(inputs[i]!.path, b)),
        output: summary(outPath, dst),
      };
    } finally {
      dst.free();
    }
  } finally {
    for (const s of srcs) s.free();
  }
}

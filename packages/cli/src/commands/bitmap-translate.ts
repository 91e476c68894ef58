// `vfio-dirty bitmap translate IN OUT --map IOVA:GPA:SIZE...`: a bitmap in a device's IOVA space
// (what a device behind a vIOMMU reports) moved into guest-physical space through the mappings,
// by bitmap-wasm's translation table. A dirty IOVA page on no mapping cannot be placed: it is
// counted, named, and the command exits 3, because a dirty page must never vanish silently.

import { alignDown, alignUp, bigMax, bigMin } from "@vfio-dirty/vfio-adapter/util";
import { Command } from "commander";
import {
  assertNothingOutside,
  bitmapCore,
  parseInputSpec,
  readBitmapFile,
  readInputFile,
  wholeWords,
  writeBitmapFile,
} from "../bitmap-file.ts";
import type { Context } from "../context.ts";
import { CheckFailedError, UsageError } from "../errors.ts";
import { formatBytes, hex } from "../format/units.ts";
import { parseAddress, parsePageSize, parseSize, U64_MAX } from "../parse/size.ts";
import { type BitmapSummary, summary, withInputOptions } from "./bitmap-tool.ts";

export interface Mapping {
  iova: bigint;
  gpa: bigint;
  length: bigint;
}

export interface TranslateDocument {
  command: "bitmap translate";
  input: BitmapSummary;
  output: BitmapSummary;
  mappings: { iova: string; gpa: string; length: number }[];
  unmappedDirtyPages: number;
}

interface TranslateOptions {
  pageSize: string;
  base: string;
  map?: string[];
  mapFile?: string;
  toBase?: string;
}

export function bitmapTranslateCommand(makeContext: (cmd: Command) => Context): Command {
  return withInputOptions(
    new Command("translate")
      .description("translate an IOVA-space bitmap into guest-physical (GPA) space")
      .argument("<in>", "IOVA-space bitmap (--base is the IOVA of bit 0)")
      .argument("<out>", "GPA-space bitmap to write (same page size)"),
  )
    .option("--map <iova:gpa:size...>", "a mapping (repeat, or list several)")
    .option("--map-file <file>", "mappings, one 'IOVA GPA SIZE' (or IOVA:GPA:SIZE) per line; # comments")
    .option("--to-base <addr>", "GPA of the output's bit 0 (default: the lowest mapped GPA, aligned down)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ vfio-dirty bitmap translate iova.bin gpa.bin --map 0x0:0x40000000:1G --map 0x40000000:0x0:1G\n  $ vfio-dirty bitmap translate iova.bin gpa.bin --map-file mappings.txt\n",
    )
    .action(async (inSpec: string, outPath: string, opts: TranslateOptions, cmd: Command) => {
      const ctx = makeContext(cmd);
      const doc = await bitmapTranslate(inSpec, outPath, opts);
      ctx.out.document(doc);
      ctx.out.result(
        `${doc.input.file}: ${doc.input.dirtyPages} dirty IOVA pages -> ${doc.output.file}: ${doc.output.dirtyPages} dirty GPA pages of ${formatBytes(doc.output.pageSize)} from ${doc.output.base} through ${doc.mappings.length} mappings`,
      );
      if (doc.unmappedDirtyPages > 0)
        throw new CheckFailedError(
          `${doc.unmappedDirtyPages} dirty IOVA pages lie on no mapping and are not in ${doc.output.file}; add the missing --map`,
        );
    });
}

export async function bitmapTranslate(
  inSpec: string,
  outPath: string,
  opts: TranslateOptions,
): Promise<TranslateDocument> {
  const input = parseInputSpec(inSpec, {
    pageSize: parsePageSize(opts.pageSize, "--page-size"),
    base: parseAddress(opts.base, "--base"),
  });
  const mappings = [
    ...(opts.map ?? [])
      .flatMap((m) => m.split(/\s+/).filter(Boolean))
      .map((m) => parseMapping(m, `--map '${m}'`)),
    ...(opts.mapFile !== undefined ? readMapFile(opts.mapFile) : []),
  ];
  if (mappings.length === 0)
    throw new UsageError(
      "translate needs mappings; give --map IOVA:GPA:SIZE (repeatable) or --map-file FILE",
    );
  checkMappings(mappings, input.pageSize);
  const core = await bitmapCore();
  const src = readBitmapFile(core, input);
  const table = core.xlatTable(input.pageSize);
  try {
    const lowest = bigMin(...mappings.map((m) => m.gpa));
    const end = bigMax(...mappings.map((m) => m.gpa + m.length));
    const base =
      opts.toBase !== undefined ? parseAddress(opts.toBase, "--to-base") : alignDown(lowest, input.pageSize);
    if (base % input.pageSize !== 0n || base > lowest)
      throw new UsageError(
        `--to-base ${hex(base)} must be page aligned and at or below the lowest mapped GPA ${hex(lowest)}`,
      );
    for (const m of mappings) table.map(m.iova, m.gpa, m.length);
    const dst = core.bitmap({
      nbits: wholeWords((alignUp(end, input.pageSize) - base) / input.pageSize),
      pageSize: input.pageSize,
      base,
    });
    try {
      const { unmappedPages, outsidePages } = table.translate(src, dst);
      assertNothingOutside(outsidePages);
      writeBitmapFile(outPath, dst);
      return {
        command: "bitmap translate",
        input: summary(input.path, src),
        output: summary(outPath, dst),
        mappings: mappings.map((m) => ({ iova: hex(m.iova), gpa: hex(m.gpa), length: Number(m.length) })),
        unmappedDirtyPages: Number(unmappedPages),
      };
    } finally {
      dst.free();
    }
  } finally {
    table.free();
    src.free();
  }
}

/** "IOVA:GPA:SIZE" (addresses decimal or hex, size with units). */
export function parseMapping(text: string, what: string): Mapping {
  const parts = text.split(":");
  if (parts.length !== 3) throw new UsageError(`${what}: not IOVA:GPA:SIZE; write e.g. 0x0:0x40000000:1G`);
  const length = parseSize(parts[2]!, `${what} size`);
  if (length === 0n) throw new UsageError(`${what}: the size is zero; give the mapping's length`);
  const m = {
    iova: parseAddress(parts[0]!, `${what} IOVA`),
    gpa: parseAddress(parts[1]!, `${what} GPA`),
    length,
  };
  if (m.iova + length - 1n > U64_MAX || m.gpa + length - 1n > U64_MAX)
    throw new UsageError(`${what}: the mapping runs past 2^64; shorten it`);
  return m;
}

// --- Internal helpers ---

function readMapFile(path: string): Mapping[] {
  const text = readInputFile(path).toString("utf8");
  const out: Mapping[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/#.*/, "").trim();
    if (line === "") return;
    out.push(parseMapping(line.split(/[\s,:]+/).join(":"), `${path}:${i + 1}`));
  });
  return out;
}

function checkMappings(mappings: readonly Mapping[], pageSize: bigint): void {
  for (const m of mappings) {
    if (m.iova % pageSize || m.gpa % pageSize || m.length % pageSize)
      throw new UsageError(
        `mapping ${hex(m.iova)}:${hex(m.gpa)}:${hex(m.length)} is not aligned to the page size ${hex(pageSize)}; align it or use a smaller --page-size`,
      );
  }
  const sorted = [...mappings].sort((a, b) => (a.iova < b.iova ? -1 : a.iova > b.iova ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (prev.iova + prev.length > cur.iova)
      throw new UsageError(
        `mappings at IOVA ${hex(prev.iova)} and ${hex(cur.iova)} overlap; each IOVA may map to one GPA`,
      );
  }
}

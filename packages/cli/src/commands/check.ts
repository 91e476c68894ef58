// `vfio-dirty check [PCI-ADDRESS...]`: the conformance suite for drivers and IOMMUs that track
// dirty pages. Each rule (src/check/rules/) has an id, a level (MUST, SHOULD, INFO) and a source;
// the adapter's scenarios do the kernel calls. Output: a table per device, `--json`
// (schemas/check.schema.json), `--junit FILE`. Exit 0 when every MUST passes, 3 when one fails,
// 1 when a rule could not run, 2 on a usage error or a device it refuses to touch.
//
// Safe on a production host: it refuses, before opening anything, a device that is not bound to
// vfio-pci or a variant driver or that another process holds; it says which devices it will open;
// the devices write only into memory it maps for them itself (src/check/target.ts).

import { existsSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Host, PciDevice } from "@vfio-dirty/vfio-adapter";
import { Command } from "commander";
import { dmaSources } from "../check/dma-source.ts";
import {
  CHECK_SCHEMA,
  type CheckDocument,
  type DeviceReport,
  exitCodeOf,
  totalSummary,
} from "../check/document.ts";
import { junitXml } from "../check/junit.ts";
import { openingLine, preflight } from "../check/preflight.ts";
import { printCheck, summaryLine } from "../check/print.ts";
import { AREAS, type Area } from "../check/rule.ts";
import { checkTarget, summarize } from "../check/run.ts";
import { checkTargetFor, type DmaSource } from "../check/target.ts";
import type { Context } from "../context.ts";
import { CheckFailedError, ExitError, UsageError } from "../errors.ts";
import { hex4 } from "../format/units.ts";
import { chooseHost, hostLine } from "../host.ts";
import { openHost } from "../host-open.ts";
import { parsePciAddress } from "../parse/pci.ts";
import { parsePageSize } from "../parse/size.ts";

interface CheckOptions {
  only?: string;
  workload?: string;
  pageSize?: string[];
  junit?: string;
}

/** The page sizes check's per-page-size rules take: whole logging pages fit its 16 MiB window. */
const MIN_PAGE = 4096n;
const MAX_PAGE = 2n << 20n;

export function checkCommand(makeContext: (cmd: Command) => Context): Command {
  return new Command("check")
    .description("conformance suite for drivers and IOMMUs that track dirty pages (MUST, SHOULD, INFO rules)")
    .argument("[pci-address...]", "devices to check (on the simulated host, default: every device)")
    .option("--only <areas>", `comma-separated areas to check: ${AREAS.join(", ")}`, AREAS.join(","))
    .option(
      "--workload <name|file>",
      "what makes the device write chosen pages: linux: edu or a plugin .js with dma(); sim: sim (default) or none",
    )
    .option(
      "--page-size <size...>",
      "page sizes of the exactness rules (4K to 2M; several, or comma-separated)",
      ["4K"],
    )
    .option("--junit <file.xml>", "also write the results as JUnit XML (one testcase per rule)")
    .addHelpText(
      "after",
      `
Examples:
  $ vfio-dirty check --host sim:mlx5-vf                      every rule on the simulated VF
  $ vfio-dirty check 0000:3b:00.1 --host linux               a real VF: logging rules without DMA
  $ vfio-dirty check 0000:00:03.0 --workload edu --page-size 4K 2M --junit check.xml

It refuses (exit 2) a device bound to a host driver or held by another process, before opening
anything. Exit 0: every MUST passed; 3: a MUST failed; 1: a rule could not run.
Rules and their sources: packages/cli/docs/check.md.
`,
    )
    .action(async (addresses: string[], opts: CheckOptions, cmd: Command) => {
      const ctx = makeContext(cmd);
      const areas = parseAreas(opts.only ?? AREAS.join(","));
      const pageSizes = parsePageSizes(opts.pageSize ?? ["4K"]);
      const wanted = addresses.map(parsePciAddress);
      if (opts.junit !== undefined && !existsSync(dirname(resolve(opts.junit))))
        throw new UsageError(
          `--junit ${opts.junit}: no directory ${dirname(resolve(opts.junit))}; create it first`,
        );
      const choice = chooseHost(ctx.globals.host);
      await using opened = await openHost(choice);
      const host = opened.host;
      ctx.out.info(hostLine(host, choice));
      const devices = preflight(host, wanted);
      const sources = await dmaSources(host, devices, opts.workload);
      for (const [i, d] of devices.entries())
        ctx.io.stderr.write(`vfio-dirty check: ${openingLine(d, sources[i]!.label)}\n`);

      const reports: DeviceReport[] = [];
      for (const [i, d] of devices.entries()) {
        const { source, label } = sources[i]!;
        const results = await checkTarget(checkTargetFor(host, d, source), {
          areas,
          pageSizes,
          ...(source.kind === "none" ? { noDmaReason: source.why } : {}),
          signal: ctx.io.signal,
        });
        reports.push(deviceReport(d, source, label, results));
      }
      const summary = totalSummary(reports);
      const doc: CheckDocument = {
        command: "check",
        schema: CHECK_SCHEMA,
        host: host.name,
        simulated: host.simulated,
        workload: workloadName(host, opts.workload, sources),
        pageSizes: pageSizes.map(Number),
        areas: [...areas],
        devices: reports,
        summary,
        exitCode: exitCodeOf(summary),
        interrupted: ctx.io.signal.aborted,
      };
      if (opts.junit !== undefined) writeJunit(opts.junit, doc);
      ctx.out.document(doc);
      printCheck(ctx.out, doc);
      finish(ctx, doc);
    });
}

// --- Internal helpers ---

function parseAreas(text: string): Area[] {
  const names = text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  const bad = names.filter((n) => !(AREAS as readonly string[]).includes(n));
  if (bad.length > 0 || names.length === 0)
    throw new UsageError(`--only '${text}': use one or more of ${AREAS.join(", ")}, comma-separated`);
  return AREAS.filter((a) => names.includes(a));
}

function parsePageSizes(texts: readonly string[]): bigint[] {
  const sizes = texts
    .flatMap((t) => t.split(","))
    .map((t) => parsePageSize(t, "--page-size", MIN_PAGE, MAX_PAGE));
  return [...new Set(sizes)].sort((a, b) => (a < b ? -1 : 1));
}

function workloadName(
  host: Host,
  spec: string | undefined,
  sources: readonly { source: DmaSource }[],
): string {
  if (spec === "none") return "none";
  if (host.simulated) return "sim";
  const plugin = sources.find((s) => s.source.kind === "plugin")?.source;
  return plugin?.kind === "plugin" ? plugin.plugin.name : "none";
}

function deviceReport(
  d: PciDevice,
  source: DmaSource,
  label: string,
  results: DeviceReport["results"],
): DeviceReport {
  return {
    address: d.address,
    vendorId: hex4(d.vendorId),
    deviceId: hex4(d.deviceId),
    driver: d.driver ?? null,
    iommuGroup: d.iommuGroup!.id,
    cdev: d.vfioCdev?.path ?? null,
    dma: {
      available: source.kind !== "none",
      source: label,
      why: source.kind === "none" ? source.why : null,
    },
    results,
    summary: summarize(results),
  };
}

function writeJunit(path: string, doc: CheckDocument): void {
  try {
    writeFileSync(path, junitXml(doc));
  } catch (err) {
    throw new UsageError(`--junit ${path}: cannot write (${(err as NodeJS.ErrnoException).code})`, {
      cause: err,
    });
  }
}

/** The verdict line, and the exit code through the error it throws (handled in cli.ts). */
function finish(ctx: Context, doc: CheckDocument): void {
  const s = doc.summary;
  const all = doc.devices.flatMap((d) => d.results.map((r) => ({ ...r, address: d.address })));
  if (doc.interrupted)
    throw new ExitError(`interrupted: ${s.skipped} rule(s) skipped; every device was closed`, 130);
  if (doc.exitCode === 3) {
    const failed = all.filter((r) => r.result === "fail" && r.level === "MUST");
    throw new CheckFailedError(
      `${failed.length} MUST rule${failed.length > 1 ? "s" : ""} failed: ${failed.map((r) => `${r.address} ${r.id}${r.path === "cdev" ? " (cdev)" : ""}`).join(", ")}`,
    );
  }
  if (doc.exitCode === 1) {
    const errored = all.filter((r) => r.result === "error");
    throw new ExitError(
      `${errored.length} rule(s) could not run: ${errored[0]!.id}: ${errored[0]!.detail}`,
      1,
    );
  }
  const devices = doc.devices.length;
  ctx.out.result(
    ctx.out.color.green(
      `check: every MUST rule passed on ${devices} device${devices > 1 ? "s" : ""}${s.failedShould ? ` (${s.failedShould} SHOULD failed)` : ""}`,
    ),
  );
  if (devices > 1) ctx.out.info(`all devices: ${summaryLine({ summary: s })}`);
}

// `vfio-dirty probe [PCI-ADDRESS...] [--all] [--open]`: what dirty tracking the host offers for
// these devices, which strategy the tracker would choose and why, and what blocks migration.
//
// Non-invasive by default: sysfs only, safe while QEMU holds the devices. --open also opens them
// to ask the kernel (DMA logging, migration flags, the IOMMU's dirty tracking); a device held by
// another process is reported as busy, not as a failure.

import type { Host, PciDevice } from "@vfio-dirty/vfio-adapter";
import { errnoName, findPciDevice, listVfioDevices } from "@vfio-dirty/vfio-adapter";
import { Command } from "commander";
import type { Context } from "../context.ts";
import { CheckFailedError, UsageError } from "../errors.ts";
import { gridTable, keyValueTable } from "../format/table.ts";
import { outputWidth, visibleWidth, wrapText } from "../format/wrap.ts";
import { chooseHost, hostLine } from "../host.ts";
import { openHost } from "../host-open.ts";
import { probeMetrics } from "../metrics/probe.ts";
import type { Colors } from "../output.ts";
import { parsePciAddresses } from "../parse/pci.ts";
import { addQemuOptions, parseQemuOptions, type QemuOptionFlags } from "../parse/qemu-options.ts";
import { pciIdText, readPciIds } from "../pci-ids.ts";
import { type DeviceProbe, probeDevices, type SetProbe } from "../probe-devices.ts";

interface ProbeOptions extends QemuOptionFlags {
  all?: boolean;
  open?: boolean;
  pciIds?: string;
  format: string;
}

const FORMATS = ["table", "openmetrics"] as const;

/** The --json document of `probe`. */
export interface ProbeDocument extends SetProbe {
  command: "probe";
  host: string;
  simulated: boolean;
  opened: boolean;
  devices: DeviceProbe[];
}

export function probeCommand(makeContext: (cmd: Command) => Context): Command {
  return addQemuOptions(new Command("probe"))
    .description("show what dirty tracking the host offers for VFIO devices, the strategy and any blockers")
    .argument("[pci-address...]", "devices to probe (default: every VFIO-bound device)")
    .option("--all", "probe every device bound to vfio-pci or a variant driver")
    .option("--open", "also open the devices and ask the kernel (not while QEMU holds them)")
    .option("--pci-ids <file>", "device names from this pci.ids (default: the host's, when present)")
    .option(
      "--format <format>",
      "table, or openmetrics: labelled gauges for node_exporter's textfile collector",
      "table",
    )
    .addHelpText(
      "after",
      `
Examples:
  $ vfio-dirty probe --host sim                    every device of the simulated host
  $ vfio-dirty probe 0000:3b:00.1 --open           ask the kernel about one real device
  $ vfio-dirty probe --all --json                  machine-readable, for scripts
  $ vfio-dirty probe --open --format openmetrics > /var/lib/node_exporter/vfio_dirty.prom
  $ vfio-dirty probe --host sim:mixed-logging --open --enable-migration on

Exit code 3 when a migration blocker was found.
`,
    )
    .action(async (addresses: string[], opts: ProbeOptions, cmd: Command) => {
      const ctx = makeContext(cmd);
      const qemu = parseQemuOptions(opts);
      if (!(FORMATS as readonly string[]).includes(opts.format))
        throw new UsageError(`--format '${opts.format}': use ${FORMATS.join(" or ")} (and --json for JSON)`);
      if (opts.format !== "table" && ctx.globals.json)
        throw new UsageError(`--format ${opts.format} and --json: choose one`);
      const wanted = parsePciAddresses(addresses);
      if (opts.all && wanted.length > 0)
        throw new UsageError(
          `--all probes every VFIO-bound device; give either --all or PCI addresses (${wanted.join(", ")}), not both`,
        );
      const names = readPciIds(opts.pciIds);
      const choice = chooseHost(ctx.globals.host);
      await using opened = await openHost(choice);
      const host = opened.host;
      const metrics = opts.format === "openmetrics";
      if (!metrics) ctx.out.info(hostLine(host, choice));
      const devices = selectDevices(host, wanted, opts.all === true || wanted.length === 0);
      const result = await probeDevices(host, devices, { open: opts.open === true, names, qemu });
      const doc: ProbeDocument = {
        command: "probe",
        host: host.name,
        simulated: host.simulated,
        opened: opts.open === true,
        ...result,
      };
      ctx.out.document(doc);
      // The exposition is the whole output, and a blocker is a gauge in it, not a failure: a
      // textfile collector run from cron must not see exit 3 for a host that cannot migrate.
      if (metrics) {
        for (const w of doc.warnings) ctx.out.warn(w); // never silent, and never in the exposition
        ctx.io.stdout.write(probeMetrics(doc).text("openmetrics"));
        return;
      }
      printProbe(ctx, doc);
      if (doc.blockers.length > 0)
        throw new CheckFailedError(
          `${doc.blockers.length} migration blocker${doc.blockers.length > 1 ? "s" : ""} found`,
        );
    });
}

// --- Internal helpers ---

function selectDevices(host: Host, wanted: readonly string[], all: boolean): PciDevice[] {
  const out: PciDevice[] = [];
  for (const address of wanted) {
    const dev = findPciDevice(host.sysfs, address);
    if (!dev)
      throw new UsageError(
        `PCI address ${address}: no such device on ${host.name}; list devices with 'lspci -D' (or 'vfio-dirty probe --all')`,
      );
    if (!dev.vfio)
      throw new UsageError(
        `${address} is bound to ${dev.driver ?? "no driver"}, not vfio-pci; bind it (echo vfio-pci > /sys/bus/pci/devices/${address}/driver_override) first`,
      );
    out.push(dev);
  }
  if (all)
    for (const d of listVfioDevices(host.sysfs)) if (!out.some((o) => o.address === d.address)) out.push(d);
  if (out.length === 0)
    throw new UsageError(
      `no VFIO-bound devices on ${host.name}; bind a device to vfio-pci or use --host sim`,
    );
  return out;
}

function printProbe(ctx: Context, d: ProbeDocument): void {
  const { out } = ctx;
  const c = out.color;
  const width = outputWidth(ctx.io.stdout, ctx.io.env);
  out.result(deviceTable(d, c, width));
  // Long lines wrap with a hanging indent, so a reason stays readable at 80 columns.
  const item = (text: string) => out.result(wrapText(`  - ${text}`, width, "    "));
  out.result(
    `strategy: ${c.bold(d.strategy)}${d.opened ? "" : c.dim(" (from sysfs only; --open asks the kernel)")}`,
  );
  for (const r of d.reasons) item(r);
  if (d.fallbacks.length > 0)
    out.result(
      wrapText(
        `  if its START is refused: ${d.fallbacks.join(", then ")} (track records the refusal as an event)`,
        width,
        "    ",
      ),
    );
  out.result(wrapText(`QEMU options: ${d.qemuOptions.join(", ")}; what each would change:`, width, "  "));
  for (const w of d.whatIf) item(`with ${w.option}: ${w.change}`);
  for (const w of d.warnings) out.warn(w);
  if (d.blockers.length) {
    out.result(c.red(`blockers (${d.blockers.length}):`));
    for (const b of d.blockers) item(b);
  } else out.result(`blockers: ${c.green("none")}`);
  if (d.possibleBlockers.length) {
    out.result(c.yellow(`possible blockers (sysfs cannot tell; --open checks):`));
    for (const b of d.possibleBlockers) item(b);
  }
}

const COLUMNS = [
  "driver",
  "IOMMU group",
  "cdev",
  "IOMMU dirty tracking",
  "DMA logging",
  "migration",
] as const;

/**
 * The devices as one grid when it fits `width`, else one block per device ("name  value" lines),
 * which fits any terminal: a grid of seven columns is 124-141 columns wide.
 */
function deviceTable(d: ProbeDocument, c: Colors, width: number): string {
  const rows = d.devices.map((dev) => ({ dev, cells: deviceCells(dev, d.opened, c) }));
  const grid = gridTable(
    ["device", ...COLUMNS],
    rows.map(({ dev, cells }) => [`${dev.address}\n${idOf(dev)}`, ...cells]),
  );
  if (grid.split("\n").every((line) => visibleWidth(line) <= width)) return grid;
  return rows
    .map(({ dev, cells }) => {
      const head = wrapText(
        `${c.bold(dev.address)}  ${idOf(dev)}${dev.name ? ` ${dev.name}` : ""}`,
        width,
        "    ",
      );
      const body = keyValueTable(COLUMNS.map((name, i) => [name, cells[i]!.replace(/\n/g, " ")]));
      return `${head}\n${body}`;
    })
    .join("\n\n");
}

function idOf(dev: DeviceProbe): string {
  return pciIdText(Number(dev.vendorId), Number(dev.deviceId));
}

function deviceCells(dev: DeviceProbe, opened: boolean, c: Colors): string[] {
  const yesNo = (v: boolean | null, why?: string | null) =>
    v === null
      ? c.dim(`unknown${why ? ` (${why})` : ""}`)
      : v
        ? c.green("yes")
        : c.red(`no${why ? ` (${why})` : ""}`);
  return [
    dev.driver ?? "-",
    dev.iommuGroup
      ? `${dev.iommuGroup.id}${dev.iommuGroup.others.length ? ` (+${dev.iommuGroup.others.join(", ")})` : ""}${dev.iommuGroup.viable ? "" : c.red(" not viable")}`
      : "none",
    dev.cdev ?? "-",
    dev.iommu
      ? `${dev.iommu.name}: ${yesNo(dev.iommu.dirtyTracking, dev.iommu.kernelDirtyTracking === false ? "kernel says no" : null)}`
      : "-",
    dev.busy
      ? c.yellow("busy (held by another process)")
      : dev.dmaLogging.supported === false
        ? // The errno is what the kernel said (ENOTTY: the driver has no DMA logging); the call is in the reasons below.
          c.red(dev.dmaLogging.errno !== null ? `no (${errnoName(dev.dmaLogging.errno)})` : "no")
        : yesNo(dev.dmaLogging.supported, dev.dmaLogging.why),
    dev.migration
      ? dev.migration.flags.join(", ") || "none"
      : dev.busy
        ? "-"
        : opened
          ? c.red("not migratable")
          : yesNo(null, "use --open"),
  ];
}

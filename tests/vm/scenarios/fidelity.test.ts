// Fidelity: the simulated host's rule scenarios (@vfio-dirty/vfio-adapter/scenarios), run
// against this real kernel and against the simulated host configured as this machine, outcome
// for outcome (errno, and the result bytes of good inputs). Every difference goes into a table
// in the results folder (fidelity-<target>.md and .json); a difference fails unless
// tests/vm/KNOWN-DIFFERENCES.md lists its scenario id with a reason.
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { type Host, uapi } from "@vfio-dirty/vfio-adapter";
import { createLinuxHost } from "@vfio-dirty/vfio-adapter/linux";
import {
  allScenarios,
  runScenarios,
  type ScenarioOutcome,
  type ScenarioTarget,
  type TargetCapabilities,
} from "@vfio-dirty/vfio-adapter/scenarios";
import { createSimHost, loadProfile, parseProfile } from "@vfio-dirty/vfio-adapter/sim";
import { describe, expect, it } from "vitest";
import { EDU_BUFFER, Edu } from "./support/edu.ts";
import { guest } from "./support/guest.ts";
import { eduBdf, enableBusMaster, regionOffset } from "./support/vfio.ts";

const host = createLinuxHost();
const driver = guest.driver;
const kernel = guest.kernel;
const onIommufdKernel = !kernel.endsWith("-amd64");
const name = onIommufdKernel ? "edu-iommufd-6.12" : driver === "edu-log" ? "edu-logging" : "edu-type1";

describe.skipIf(driver !== "vfio-pci" && driver !== "edu-log")(
  `fidelity: sim vs this kernel (${name})`,
  () => {
    it("every rule scenario answers on the simulated host as on the kernel, or the difference is known", async () => {
      const real = realTarget();
      const sim = createSimHost(simProfile());
      const simTarget: ScenarioTarget = {
        host: sim,
        bdf: sim.profile.devices[0]!.bdf,
        group: sim.profile.devices[0]!.group,
        ...(sim.devices()[0]?.cdevPath ? { cdevPath: sim.devices()[0]!.cdevPath } : {}),
        has: real.has,
        dma: (iova, length) => void sim.dmaWrite(sim.profile.devices[0]!.bdf, iova, length),
      };
      const kernelOut = await runScenarios(real, allScenarios);
      const simOut = await runScenarios(simTarget, allScenarios);

      const known = knownDifferences();
      const rows = kernelOut.map((k) => compare(k, simOut.find((s) => s.id === k.id)!));
      const ran = rows.filter((r) => r.status !== "skipped");
      const differ = rows.filter((r) => r.status === "differs");
      writeTable(rows, known);

      expect(kernelOut.filter((o) => o.setupError).map((o) => `${o.id}: ${o.setupError}`)).toEqual([]);
      expect(ran.length, "scenarios that ran on the kernel").toBeGreaterThan(10);
      const unexplained = differ.filter((r) => !known.has(r.id));
      expect(
        unexplained.map((r) => `${r.id}: kernel ${r.kernel}, sim ${r.sim}`),
        "differences not listed in tests/vm/KNOWN-DIFFERENCES.md",
      ).toEqual([]);
    });
  },
);

// --- Internal helpers ---

interface Row {
  id: string;
  rule: string;
  status: "same" | "differs" | "skipped";
  kernel: string;
  sim: string;
  expected: string;
}

function realTarget(): ScenarioTarget {
  const bdf = eduBdf();
  const group = Number(host.sysfs.readlink(`bus/pci/devices/${bdf}/iommu_group`)?.split("/").pop());
  const cdev = host.sysfs.readdir(`bus/pci/devices/${bdf}/vfio-dev`)?.[0];
  const has: TargetCapabilities = {
    type1: true,
    iommufd: onIommufdKernel,
    cdev: cdev !== undefined,
    dmaLogging: driver === "edu-log",
    // Neither vfio-pci nor the test driver implements migration for edu.
    migration: false,
    preCopy: false,
    // The emulated VT-d reports no dirty capability (see iommufd.test.ts).
    iommuDirty: false,
    dma: true,
  };
  return { host, bdf, group, ...(cdev ? { cdevPath: `/dev/vfio/devices/${cdev}` } : {}), has, dma: eduDma };
}

/**
 * The scenario opened edu itself; find its device fd (the newest fd that is a VFIO device) and
 * drive an edu DMA through it: copy from edu's buffer to [iova, iova + length).
 */
function eduDma(iova: bigint, length: bigint): void {
  const fds = readdirSync("/proc/self/fd")
    .map(Number)
    .filter((fd) => {
      try {
        const link = readlinkSync(`/proc/self/fd/${fd}`);
        return link === "anon_inode:[vfio-device]" || link.startsWith("/dev/vfio/devices/");
      } catch {
        return false;
      }
    })
    .sort((a, b) => b - a);
  const fd = fds[0];
  if (fd === undefined) throw new Error("no open VFIO device fd to drive edu through");
  enableBusMaster(host as Host, fd);
  new Edu(host, fd, regionOffset(host, fd, uapi.VFIO_PCI_BAR0_REGION_INDEX)).dmaToRam(
    EDU_BUFFER,
    iova,
    Number(length),
  );
}

/** The sim profile describing this guest, with its device's answers as the real driver gives them. */
function simProfile() {
  const base = loadProfile(onIommufdKernel || driver !== "edu-log" ? "edu-type1" : "edu-logging");
  const path = createRequire(import.meta.url).resolve(
    `@vfio-dirty/vfio-adapter/sim/profiles/${base.name}.json`,
  );
  const json = JSON.parse(readFileSync(path, "utf8"));
  for (const d of json.devices) delete d.migration; // no mig_ops in vfio-pci or edu_log_vfio
  if (onIommufdKernel) {
    json.name = "edu-iommufd";
    json.kernel = "6.12";
    json.iommu = { ...json.iommu, iommufd: true, cdev: true, dirtyTracking: false };
  }
  return parseProfile(json, `${json.name} (as booted)`);
}

function compare(k: ScenarioOutcome, s: ScenarioOutcome): Row {
  const show = (o: ScenarioOutcome) =>
    o.skipped ? `skipped (${o.skipped})` : o.setupError ? `setup error: ${o.setupError}` : outcomeText(o);
  const row = { id: k.id, rule: k.rule, kernel: show(k), sim: show(s), expected: k.expected.errno ?? "OK" };
  if (k.skipped || s.skipped) return { ...row, status: "skipped" };
  return { ...row, status: row.kernel === row.sim ? "same" : "differs" };
}

function outcomeText(o: ScenarioOutcome): string {
  return o.errno ?? (o.result === undefined ? "OK" : `OK ${JSON.stringify(o.result)}`);
}

function knownDifferences(): Map<string, string> {
  const text = readFileSync(new URL("../KNOWN-DIFFERENCES.md", import.meta.url), "utf8");
  const known = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^\|\s*`([^`]+)`\s*\|[^|]*\|\s*(.+?)\s*\|\s*$/.exec(line);
    if (m) known.set(m[1]!, m[2]!);
  }
  return known;
}

function writeTable(rows: Row[], known: Map<string, string>): void {
  const dir = guest.results;
  if (!dir) return;
  const count = (s: Row["status"]) => rows.filter((r) => r.status === s).length;
  const lines = [
    `# Fidelity: simulated host vs real kernel (${name}, ${kernel}, ${guest.cmdline})`,
    "",
    `${count("same")} same, ${count("differs")} different, ${count("skipped")} not run on this target.`,
    "",
    "| scenario | kernel | simulated host | known difference |",
    "| --- | --- | --- | --- |",
    ...rows
      .filter((r) => r.status === "differs")
      .map(
        (r) => `| \`${r.id}\` | ${cell(r.kernel)} | ${cell(r.sim)} | ${known.get(r.id) ?? "**NO: fails**"} |`,
      ),
    "",
    "## Every scenario",
    "",
    "| scenario | rule | kernel | simulated host |",
    "| --- | --- | --- | --- |",
    ...rows.map((r) => `| \`${r.id}\` | ${cell(r.rule)} | ${cell(r.kernel)} | ${cell(r.sim)} |`),
    "",
  ];
  writeFileSync(join(dir, `fidelity-${name}.md`), lines.join("\n"));
  writeFileSync(join(dir, `fidelity-${name}.json`), `${JSON.stringify(rows, null, 2)}\n`);
}

function cell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}

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
import { createSimHost, parseProfile, simScenarioTarget } from "@vfio-dirty/vfio-adapter/sim";
import { describe, expect, it } from "vitest";
import { EDU_BUFFER, Edu } from "./support/edu.ts";
import { guest } from "./support/guest.ts";
import { eduBdf, enableBusMaster, regionOffset } from "./support/vfio.ts";

const host = createLinuxHost();
const driver = guest.driver;
const kernel = guest.kernel;
const version = `${Math.floor(guest.kernelVersion / 1000)}.${guest.kernelVersion % 1000}`;
/** The shipped sim profile describing this boot (its kernel set to the one booted). */
const profileName = guest.builtHere
  ? driver === "edu-log"
    ? "edu-migration"
    : "edu-iommufd"
  : driver === "edu-log"
    ? "edu-logging"
    : "edu-type1";
const name = `${profileName}-${version}`;

describe.skipIf(driver !== "vfio-pci" && driver !== "edu-log")(
  `fidelity: sim vs this kernel (${name})`,
  () => {
    it("every rule scenario answers on the simulated host as on the kernel, or the difference is known", async () => {
      const real = realTarget();
      const sim = createSimHost(simProfile());
      // The sim's own target, with the real one's capabilities: a scenario runs on both or neither.
      const simTarget: ScenarioTarget = { ...simScenarioTarget(sim), has: real.has };
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
  const edulog = driver === "edu-log";
  const has: TargetCapabilities = {
    type1: true,
    iommufd: guest.builtHere,
    cdev: cdev !== undefined,
    dmaLogging: edulog,
    // The test driver migrates (edu_log_mig.c): PRE_COPY where the kernel has it (6.2+).
    migration: edulog,
    preCopy: edulog && guest.kernelVersion >= 6002,
    // The emulated VT-d reports no dirty capability (see iommufd.test.ts).
    iommuDirty: false,
    dma: true,
    precopyInfoV2: guest.kernelVersion >= 7001,
    type1Overflow: guest.kernelVersion >= 6019,
    deviceState: edulog,
  };
  return {
    host,
    bdf,
    group,
    ...(cdev ? { cdevPath: `/dev/vfio/devices/${cdev}` } : {}),
    has,
    dma: eduDma,
    changeDeviceState: eduChangeState,
  };
}

/** A guest-visible change the edu-log driver migrates: a write to edu's liveness register. */
function eduChangeState(): void {
  const fd = newestDeviceFd();
  new Edu(host, fd, regionOffset(host, fd, uapi.VFIO_PCI_BAR0_REGION_INDEX)).write32(0x04, 0x5eed);
}

/**
 * The scenario opened edu itself; find its device fd (the newest fd that is a VFIO device) and
 * drive an edu DMA through it: copy from edu's buffer to [iova, iova + length).
 */
function eduDma(iova: bigint, length: bigint): void {
  const fd = newestDeviceFd();
  enableBusMaster(host as Host, fd);
  new Edu(host, fd, regionOffset(host, fd, uapi.VFIO_PCI_BAR0_REGION_INDEX)).dmaToRam(
    EDU_BUFFER,
    iova,
    Number(length),
  );
}

/** The newest open fd that is a VFIO device (the scenario's own). */
function newestDeviceFd(): number {
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
  return fd;
}

/** The shipped sim profile of this boot, with the kernel version booted (7.3 or 6.12). */
function simProfile() {
  const path = createRequire(import.meta.url).resolve(
    `@vfio-dirty/vfio-adapter/sim/profiles/${profileName}.json`,
  );
  const json = JSON.parse(readFileSync(path, "utf8"));
  json.kernel = version;
  // Before 6.2 there is no PRE_COPY (the driver offers STOP_COPY and P2P only).
  for (const d of json.devices)
    if (d.migration && guest.kernelVersion < 6002)
      d.migration.flags = d.migration.flags.filter((f: string) => f !== "pre-copy");
  return parseProfile(json, `${profileName} (as booted: ${kernel})`);
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

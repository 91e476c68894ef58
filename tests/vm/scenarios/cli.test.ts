// The CLI on a real host: `vfio-dirty probe --all --json` and `vfio-dirty track` with the edu
// workload plugin, run as subprocesses in the guest, their JSON checked against the CLI's
// published schemas and against what the kernel really offers, and their exit codes checked.
// The outputs are kept in the results folder (cli-*.json).
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { guest } from "./support/guest.ts";
import { eduBdf } from "./support/vfio.ts";

const CLI = new URL("../../../packages/cli/bin/vfio-dirty.js", import.meta.url).pathname;
const SCHEMAS = new URL("../../../packages/cli/schemas/", import.meta.url).pathname;
const driver = guest.driver;

describe.skipIf(driver !== "vfio-pci" && driver !== "edu-log")(
  `CLI on the real kernel (edu on ${driver})`,
  () => {
    it("probe --all --json lists edu with its group and IOMMU (sysfs only: blockers are provisional, exit 0)", () => {
      const run = cli(["probe", "--all", "--json", "--host", "linux"], "probe");
      const doc = json(run, "probe");
      expect(validator("probe")(doc), JSON.stringify(validator("probe").errors)).toBe(true);
      expect(doc.simulated).toBe(false);
      expect(doc.opened).toBe(false);
      const edu = doc.devices.find((d: { address: string }) => d.address === eduBdf());
      expect(edu, JSON.stringify(doc.devices)).toBeDefined();
      expect(edu.vendorId).toBe("0x1234");
      expect(edu.deviceId).toBe("0x11e8");
      expect(edu.driver).toBe(driver === "edu-log" ? "edu_log_vfio" : "vfio-pci");
      expect(edu.iommuGroup?.members).toEqual([eduBdf()]);
      expect(edu.iommu?.kind).toBe("intel-vt-d");
      expect(edu.iommu?.dirtyTracking, "the emulated VT-d has no second-stage dirty bit").toBe(false);
      expect(doc.provisional).toBe(true);
      // Plain vfio-pci never migrates; for a variant driver only --open can tell.
      if (driver === "vfio-pci") expect(doc.possibleBlockers.join("\n")).toMatch(/migration/);
      expect(run.status, "exit 3 is for found blockers only").toBe(doc.blockers.length ? 3 : 0);
    });

    it("probe --open asks the kernel: edu-log migrates with device logging (exit 0); vfio-pci cannot (exit 3)", () => {
      const run = cli(["probe", eduBdf(), "--open", "--json", "--host", "linux"], "probe-open");
      const doc = json(run, "probe-open");
      expect(validator("probe")(doc), JSON.stringify(validator("probe").errors)).toBe(true);
      expect(doc.opened).toBe(true);
      expect(doc.strategy).toBe(driver === "edu-log" ? "device" : "type1");
      expect(doc.devices[0].dmaLogging.supported).toBe(driver === "edu-log");
      if (driver === "edu-log") {
        // The test driver's migration (edu_log_mig.c): PRE_COPY from 6.2, the v2 opt-in from 7.1.
        const preCopy = guest.kernelVersion >= 6002;
        expect(doc.devices[0].migration).toEqual({
          flags: ["stop-copy", "p2p", ...(preCopy ? ["pre-copy"] : [])],
          preCopy,
          precopyInfoV2:
            guest.kernelVersion >= 7001 ? { supported: true, errno: null } : { supported: false, errno: 25 },
        });
        expect(doc.blockers).toEqual([]);
        expect(run.status, run.stderr).toBe(0);
      } else {
        expect(doc.devices[0].migration).toBeNull();
        expect(doc.blockers.join("\n")).toMatch(/STOP_COPY/);
        expect(run.status).toBe(3);
      }
    });

    it("track --workload edu reports every page edu wrote (ground truth from the plugin)", () => {
      const args = [
        "track",
        eduBdf(),
        "--host",
        "linux",
        "--workload",
        "edu",
        "--duration",
        "3s",
        "--interval",
        "1s",
      ];
      const run = cli([...args, "--json"], "track");
      const doc = json(run, "track");
      expect(validator("track-report")(doc), JSON.stringify(validator("track-report").errors)).toBe(true);
      expect(doc.simulated).toBe(false);
      expect(doc.workload).toBe("edu");
      expect(doc.strategy).toBe(driver === "edu-log" ? "device" : "type1");
      expect(doc.syncs).toBeGreaterThan(0);
      expect(doc.trackingStopped, "null means the host cannot tell; false would be a leak").not.toBe(false);
      const truth = doc.groundTruth;
      expect(truth.pagesWritten).toBeGreaterThan(0);
      expect(truth.pagesLost).toBe(0);
      expect(truth.ok).toBe(true);
      // Device logging is exact at its page size; type1 reports the whole DMA buffer.
      if (driver === "edu-log") expect(truth.pagesReported).toBe(truth.pagesWritten);
      else expect(truth.pagesReported).toBeGreaterThanOrEqual(truth.pagesWritten);
      expect(run.status, run.stderr).toBe(0);
    });
  },
);

// --- Internal helpers ---

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], tag: string): Run {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 120_000 });
  const dir = guest.results;
  if (dir)
    writeFileSync(
      join(dir, `cli-${tag}.out`),
      `$ vfio-dirty ${args.join(" ")}\nexit ${r.status}\n${r.stdout}\n--- stderr\n${r.stderr}`,
    );
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// biome-ignore lint/suspicious/noExplicitAny: a JSON document checked by its schema
function json(run: Run, tag: string): any {
  try {
    return JSON.parse(run.stdout);
  } catch {
    throw new Error(
      `${tag}: stdout is not one JSON document (exit ${run.status}):\n${run.stdout}\n${run.stderr}`,
    );
  }
}

function validator(name: string) {
  const ajv = new Ajv({ allErrors: true, strict: false });
  return ajv.compile(JSON.parse(readFileSync(join(SCHEMAS, `${name}.schema.json`), "utf8")));
}

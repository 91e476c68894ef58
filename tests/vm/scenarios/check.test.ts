// `vfio-dirty check` on a real kernel, on edu: with the edu-log test driver every MUST passes
// (at 4 KiB and 2 MiB, every DMA rule driven by the edu plugin), and each bug the driver's bug=
// parameter injects fails exactly the rules of the bug table (packages/cli/test/check/
// bug-table.ts, the same one the simulated host is held to in `npm test`); on plain vfio-pci the
// logging rules are skipped with the PROBE's ENOTTY; on the 6.12 iommufd kernel the capability
// rule holds and the dirty rules say why they cannot run. It refuses a device another process
// holds and one bound to a host driver. Outputs go to the results folder (check-*.json, .xml, .md).
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "@vfio-dirty/cli";
import { Ajv } from "ajv";
import { afterAll, describe, expect, it } from "vitest";
import {
  BUG_TABLE,
  type Bug,
  expectedFailures,
  failedRules,
} from "../../../packages/cli/test/check/bug-table.ts";
import { EDU_LOG_PARAMS } from "./support/edu.ts";
import { guest } from "./support/guest.ts";
import { eduBdf } from "./support/vfio.ts";

const CLI = new URL("../../../packages/cli/bin/vfio-dirty.js", import.meta.url).pathname;
const SCHEMA = new URL("../../../packages/cli/schemas/check.schema.json", import.meta.url).pathname;
const BUG_PARAM = `${EDU_LOG_PARAMS}/bug`;
const MIN_PAGE_PARAM = `${EDU_LOG_PARAMS}/min_page_size`;
const validate = new Ajv({ allErrors: true, strict: false }).compile(
  JSON.parse(readFileSync(SCHEMA, "utf8")),
);
const onIommufdKernel = !guest.kernel.endsWith("-amd64");
const where = `${guest.driver}, ${onIommufdKernel ? "6.12 with iommufd" : guest.kernel}`;

interface Result {
  id: string;
  level: string;
  path: "group" | "cdev";
  area: string;
  result: string;
  detail: string;
}
// biome-ignore lint/suspicious/noExplicitAny: the check document, validated against its schema
type Doc = any;

describe(`check on edu (${where})`, () => {
  it("passes every MUST, with --json valid against its schema and --junit written (the built CLI, as a process)", () => {
    const junit = guest.results ? join(guest.results, "check.xml") : "/tmp/check.xml";
    const args = ["check", eduBdf(), "--host", "linux", "--workload", "edu", "--page-size", "4K", "2M"];
    const r = spawnSync(process.execPath, [CLI, ...args, "--json", "--junit", junit], {
      encoding: "utf8",
      timeout: 300_000,
    });
    keep(
      "check",
      `$ vfio-dirty ${args.join(" ")} --json\nexit ${r.status}\n${r.stdout}\n--- stderr\n${r.stderr}`,
    );
    const doc = JSON.parse(r.stdout) as Doc;
    expect(validate(doc), JSON.stringify(validate.errors)).toBe(true);
    const results = doc.devices[0].results as Result[];
    keepTable("check", results);
    expect(r.stderr).toContain(`will open ${eduBdf()}`);
    expect(doc.summary.errors, JSON.stringify(results.filter((x) => x.result === "error"))).toBe(0);
    expect(results.filter((x) => x.result === "fail" && x.level === "MUST")).toEqual([]);
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(junit, "utf8")).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>\n<testsuites /);

    const on = (area: string, path: string) => results.filter((x) => x.area === area && x.path === path);
    // type1 runs through the group on every kernel here, a real DMA included.
    expect(on("type1", "group").find((x) => x.id === "type1.get-bitmap.after-dma")!.result).toBe("pass");
    if (guest.driver === "edu-log") {
      // Every logging rule ran on the real driver, the DMA ones at both page sizes.
      const device = on("device", "group");
      expect(device.filter((x) => x.result === "skip")).toEqual([]);
      for (const id of [
        "device.report.exact@4K",
        "device.report.exact@2M",
        "device.report.clears@4K",
        "device.report.finer",
      ])
        expect(device.find((x) => x.id === id)!.result, id).toBe("pass");
      expect(device.find((x) => x.id === "device.report.partial-page")!.detail).toMatch(
        /clears the whole 8K logging page/,
      );
    } else {
      // No log_ops: the PROBE says so, and every logging rule is skipped with its ENOTTY.
      for (const path of onIommufdKernel ? ["group", "cdev"] : ["group"]) {
        const device = on("device", path);
        expect(device.find((x) => x.id === "device.probe")!.detail).toBe(
          "no DMA logging: every PROBE is ENOTTY",
        );
        const skipped = device.filter((x) => x.result === "skip");
        expect(skipped.length).toBeGreaterThan(20);
        for (const x of skipped)
          expect(x.detail).toMatch(
            /^no DMA logging: VFIO_DEVICE_FEATURE\(PROBE\|SET\|DMA_LOGGING_START\): ENOTTY/,
          );
      }
    }
    if (onIommufdKernel) {
      // The emulated VT-d has no dirty tracking: capability and HWPT allocation agree on that.
      const iommufd = on("iommufd", "cdev");
      expect(iommufd.find((x) => x.id === "iommufd.dirty.capability")!).toMatchObject({ result: "pass" });
      for (const x of iommufd.filter((y) => y.id !== "iommufd.dirty.capability"))
        expect(x).toMatchObject({ result: "skip", detail: expect.stringMatching(/no dirty tracking/) });
    } else expect(on("iommufd", "cdev").every((x) => x.result === "skip")).toBe(true);
  });

  it("refuses a device another process holds, naming it, before opening anything (exit 2, one line)", async () => {
    const group = readlinkSync(`/sys/bus/pci/devices/${eduBdf()}/iommu_group`).split("/").pop();
    const holder = await holdOpen(`/dev/vfio/${group}`);
    try {
      const r = await check([eduBdf(), "--host", "linux"]);
      expect(r.code).toBe(2);
      expect(r.err).toBe(
        `vfio-dirty: ${eduBdf()} is in use: node (pid ${holder.pid}) holds /dev/vfio/${group}; check never opens a device another process uses\n`,
      );
    } finally {
      holder.kill();
    }
  });

  it("refuses a device bound to a host driver (exit 2, one line)", async () => {
    const other = readdirSync("/sys/bus/pci/devices").find((d) => {
      try {
        return !/vfio/.test(readlinkSync(`/sys/bus/pci/devices/${d}/driver`));
      } catch {
        return false;
      }
    })!;
    const driver = readlinkSync(`/sys/bus/pci/devices/${other}/driver`).split("/").pop();
    const r = await check([other, "--host", "linux"]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(
      new RegExp(
        `^vfio-dirty: ${other} is bound to ${driver}, not vfio-pci or a VFIO variant driver; check opens only devices VFIO owns.*\\n$`,
      ),
    );
  });
});

if (guest.driver === "edu-log")
  describe("the bug table on the real test driver (edu_log_vfio bug=)", () => {
    const seen: [Bug, string[]][] = [];
    afterAll(() => {
      writeFileSync(BUG_PARAM, "none");
      keep(
        "check-bugs",
        [
          `# check against edu_log_vfio with one bug at a time (${guest.kernel})`,
          "",
          "| bug | rules failed (group path) |",
          "| --- | --- |",
          ...seen.map(([bug, ids]) => `| \`${bug}\` | ${ids.map((i) => `\`${i}\``).join(", ")} |`),
          "",
        ].join("\n"),
      );
    });

    it("the driver takes every bug of the table, and refuses a name it does not know", () => {
      for (const bug of Object.keys(BUG_TABLE)) {
        writeFileSync(BUG_PARAM, bug);
        expect(readFileSync(BUG_PARAM, "utf8").trim()).toBe(bug);
      }
      expect(() => writeFileSync(BUG_PARAM, "lose-everything")).toThrow(/EINVAL/);
      writeFileSync(BUG_PARAM, "none");
      expect(readFileSync(BUG_PARAM, "utf8").trim()).toBe("none");
    });

    it("a correct driver that logs at 2 MiB (min_page_size) passes every MUST too", async () => {
      writeFileSync(MIN_PAGE_PARAM, `${2 << 20}\n`);
      try {
        const { r, results } = await checkDeviceArea("check-2m");
        expect(failedRules(results as never)).toEqual([]);
        expect(results.find((x) => x.id === "device.start.page-size-given@4K")!.detail).toBe(
          "asked 4K, chose 2M",
        );
        expect(results.find((x) => x.id === "device.report.finer")!.result).toBe("pass");
        expect(r.code, r.err).toBe(0);
      } finally {
        writeFileSync(MIN_PAGE_PARAM, "4096\n");
      }
    });

    it.each(Object.keys(BUG_TABLE) as Bug[])(
      "bug=%s fails exactly its rules of the table (exit 3)",
      async (bug) => {
        writeFileSync(BUG_PARAM, bug);
        try {
          const { r, results } = await checkDeviceArea(`check-bug-${bug}`);
          seen.push([bug, failedRules(results as never)]);
          expect(failedRules(results as never)).toEqual(expectedFailures(bug, ["4K"]));
          expect(r.code, r.err).toBe(3);
        } finally {
          writeFileSync(BUG_PARAM, "none");
        }
      },
    );
  });

// --- Internal helpers ---

/** The CLI in-process (this process's Node, no start-up cost), with captured streams. */
async function check(args: string[]) {
  let out = "";
  let err = "";
  const code = await run(["check", ...args], {
    stdout: {
      write: (s: string) => {
        out += s;
        return true;
      },
    },
    stderr: {
      write: (s: string) => {
        err += s;
        return true;
      },
    },
    env: {},
    signal: new AbortController().signal,
  });
  return { code, out, err };
}

/** The device rules on edu with the edu plugin, in-process; the output kept as `name`. */
async function checkDeviceArea(name: string) {
  const r = await check([eduBdf(), "--host", "linux", "--workload", "edu", "--only", "device", "--json"]);
  keep(name, r.out);
  return { r, results: (JSON.parse(r.out) as Doc).devices[0].results as Result[] };
}

/** Another process holding `path` open, as a VMM holds its devices. */
function holdOpen(path: string): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [
      "-e",
      `require("fs").openSync(${JSON.stringify(path)}, "r+"); console.log("open"); setInterval(() => {}, 1000);`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  return new Promise((resolve, reject) => {
    child.stdout!.once("data", () => resolve(child));
    child.once("exit", (code) => reject(new Error(`the holder exited (${code}) before opening ${path}`)));
  });
}

function keep(name: string, text: string): void {
  if (guest.results) writeFileSync(join(guest.results, `${name}.out`), text);
}

function keepTable(name: string, results: readonly Result[]): void {
  keep(
    `${name}-table`,
    results
      .map(
        (r) =>
          `${r.path.padEnd(5)} ${r.id.padEnd(44)} ${r.level.padEnd(6)} ${r.result.padEnd(5)} ${r.detail}`,
      )
      .join("\n"),
  );
}

// `vfio-dirty check` as a command, in-process on the simulated host: every shipped profile
// passes with a --json document its schema accepts and JUnit XML that agrees with it; a broken
// driver exits 3, a rule that cannot run exits 1, usage errors and unsafe devices exit 2 with one
// line before anything is opened.

import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadProfile, type ProfileJson } from "@vfio-dirty/vfio-adapter/sim";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { afterAll, describe, expect, it } from "vitest";
import type { CheckDocument } from "../../src/check/document.ts";
import { run } from "../../src/cli.ts";
import { captureIo } from "../capture-io.ts";

const require = createRequire(import.meta.url);
// ajv is CommonJS; createRequire sidesteps default-export interop differences.
const Ajv = require("ajv") as typeof import("ajv").default;
const schema = JSON.parse(readFileSync(new URL("../../schemas/check.schema.json", import.meta.url), "utf8"));
const validate = new Ajv({ allErrors: true, strict: true }).compile(schema);
const PROFILES = readdirSync(new URL("../../../vfio-adapter/sim/profiles/", import.meta.url))
  .filter((f) => f.endsWith(".json"))
  .map((f) => f.slice(0, -5))
  .sort();

const dir = mkdtempSync(join(tmpdir(), "vfio-dirty-check-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function check(args: string[]) {
  const c = captureIo();
  const code = await run(["check", ...args], c.io);
  return { code, out: c.out(), err: c.err() };
}

async function checkJson(args: string[]) {
  const r = await check([...args, "--json"]);
  const doc = JSON.parse(r.out) as CheckDocument;
  expect(validate(doc), JSON.stringify(validate.errors)).toBe(true);
  return { ...r, doc };
}

/** A shipped profile changed by `edit`, written to a file for --host sim:<path>. */
function profileFile(name: string, base: string, edit: (j: ProfileJson) => void): string {
  const json = structuredClone(loadProfile(base).json);
  edit(json);
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(json));
  return path;
}

const parseXml = (xml: string) =>
  new XMLParser({
    ignoreAttributes: false,
    isArray: (n) => ["testsuite", "testcase", "property"].includes(n),
  }).parse(xml);

describe.each(PROFILES)("check --host sim:%s", (profile) => {
  it("passes every MUST, and --json and --junit say the same", async () => {
    const junit = join(dir, `${profile}.xml`);
    const { code, doc, err } = await checkJson(["--host", `sim:${profile}`, "--junit", junit]);
    expect(code, err).toBe(0);
    expect(doc.exitCode).toBe(0);
    expect(doc.summary.failedMust).toBe(0);
    expect(doc.summary.errors).toBe(0);
    expect(doc.devices.map((d) => d.address)).toEqual(loadProfile(profile).devices.map((d) => d.bdf));
    // It said which devices it would open, even under --json (on stderr).
    for (const d of doc.devices) expect(err).toContain(`will open ${d.address}`);

    const xml = readFileSync(junit, "utf8");
    expect(XMLValidator.validate(xml)).toBe(true);
    const suites = parseXml(xml).testsuites;
    expect(Number(suites["@_tests"])).toBe(doc.summary.rules);
    expect(Number(suites["@_failures"])).toBe(doc.summary.failed);
    expect(Number(suites["@_skipped"])).toBe(doc.summary.skipped);
    const cases = suites.testsuite.flatMap((s: { testcase: unknown[] }) => s.testcase);
    expect(cases).toHaveLength(doc.summary.rules);
    expect(cases.filter((c: object) => "skipped" in c)).toHaveLength(doc.summary.skipped);
  });
});

describe("check on a broken driver", () => {
  it("exits 3 naming the MUST rule it broke; the JSON, the table and the JUnit XML show the failure", async () => {
    const host = `sim:${profileFile("no-clear", "edu-logging", (j) => {
      j.devices[0]!.dmaLogging = { quirks: ["no-clear"] };
    })}`;
    const junit = join(dir, "no-clear.xml");
    const { code, doc, err } = await checkJson(["--host", host, "--only", "device", "--junit", junit]);
    expect(code).toBe(3);
    expect(doc.exitCode).toBe(3);
    expect(err).toMatch(/^vfio-dirty: 1 MUST rule failed: 0000:00:03.0 device.report.clears@4K$/m);
    const failed = doc.devices[0]!.results.filter((r) => r.result === "fail");
    expect(failed.map((r) => [r.id, r.level])).toEqual([["device.report.clears@4K", "MUST"]]);
    expect(failed[0]!.detail).toMatch(/the same REPORT right after sets 12 bit\(s\) again/);
    const cases = parseXml(readFileSync(junit, "utf8")).testsuites.testsuite[0].testcase;
    const clears = cases.find((c: Record<string, string>) => c["@_name"] === "device.report.clears@4K");
    expect(clears.failure["@_type"]).toBe("MUST");
    expect(clears.failure["#text"]).toMatch(/source: vfio.h DMA_LOGGING_REPORT: "During querying/);

    const human = await check(["--host", host, "--only", "device"]);
    expect(human.code).toBe(3);
    expect(human.out).toMatch(/device.report.clears@4K\s+│ MUST\s+│ FAIL/);
    expect(human.out).toMatch(/0000:00:03.0: \d+ rules: \d+ passed, 1 failed \(1 MUST, 0 SHOULD\)/);
  });

  it("exits 1 when a rule could not be set up (a DMA mapping the kernel refused), naming it", async () => {
    const host = `sim:${profileFile("map-fails", "edu-logging", (j) => {
      j.faults = [{ op: "VFIO_IOMMU_MAP_DMA", errno: "ENOMEM", nth: 1 }];
    })}`;
    const { code, doc, err } = await checkJson(["--host", host, "--only", "device"]);
    expect(code).toBe(1);
    expect(doc.exitCode).toBe(1);
    expect(doc.summary.errors).toBe(1);
    expect(err).toMatch(
      /^vfio-dirty: 1 rule\(s\) could not run: device\.\S+: could not set up: VFIO_IOMMU_MAP_DMA .*ENOMEM/m,
    );
  });
});

describe("check options", () => {
  it("--page-size runs the exactness rules at each size; --only keeps to the areas asked", async () => {
    const { doc } = await checkJson([
      "--host",
      "sim:edu-logging",
      "--only",
      "device",
      "--page-size",
      "4K,2M",
      "64K",
    ]);
    const ids = doc.devices[0]!.results.map((r) => r.id);
    for (const at of ["@4K", "@64K", "@2M"]) expect(ids).toContain(`device.report.exact${at}`);
    expect(new Set(doc.devices[0]!.results.map((r) => r.area))).toEqual(new Set(["device"]));
    expect(doc.pageSizes).toEqual([4096, 65536, 2 << 20]);
  });

  it("--workload none skips the rules that need DMA, saying why, and still checks the rest", async () => {
    const { code, doc } = await checkJson([
      "--host",
      "sim:edu-logging",
      "--workload",
      "none",
      "--only",
      "device",
    ]);
    expect(code).toBe(0);
    const exact = doc.devices[0]!.results.find((r) => r.id === "device.report.exact@4K")!;
    expect(exact).toMatchObject({ result: "skip", detail: "needs DMA, and --workload none was given" });
    expect(doc.devices[0]!.results.find((r) => r.id === "device.start.twice")!.result).toBe("pass");
    expect(doc.devices[0]!.dma).toEqual({
      available: false,
      source: "no DMA: the rules that need it are skipped",
      why: "needs DMA, and --workload none was given",
    });
  });

  it("on a device without DMA logging the logging rules are skipped with the probe's reason", async () => {
    const { code, doc } = await checkJson(["--host", "sim:edu-type1", "--only", "device"]);
    expect(code).toBe(0);
    const results = doc.devices[0]!.results;
    expect(results.find((r) => r.id === "device.probe")!).toMatchObject({ result: "pass" });
    const skipped = results.filter((r) => r.result === "skip");
    expect(skipped.length).toBeGreaterThan(20);
    for (const r of skipped)
      expect(r.detail).toBe(
        "no DMA logging: VFIO_DEVICE_FEATURE(PROBE|SET|DMA_LOGGING_START): ENOTTY (the driver implements no vfio_log_ops)",
      );
  });

  it.each([
    [
      ["--page-size", "3K"],
      /^vfio-dirty: --page-size '3K': a page size must be a power of two from 4K to 2M/,
    ],
    [["--page-size", "4M"], /--page-size '4M'.*from 4K to 2M/],
    [["--only", "device,gpu"], /^vfio-dirty: --only 'device,gpu': use one or more of device, iommufd, type1/],
    [
      ["--workload", "edu"],
      /^vfio-dirty: --workload edu: on the simulated host the device writes where check asks/,
    ],
    [["--junit", "/nonexistent-dir/x.xml"], /^vfio-dirty: --junit \/nonexistent-dir\/x.xml: no directory/],
    [["0000:99:00.0"], /^vfio-dirty: PCI address 0000:99:00.0: no such device on sim:edu-logging/],
  ])("%j is a usage error (exit 2, one line, nothing opened)", async (args, message) => {
    const r = await check(["--host", "sim:edu-logging", ...args]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.out).not.toMatch(/rule/);
  });
});

describe("check refuses a device it must not touch (exit 2, one line, before opening anything)", () => {
  it("held by another process", async () => {
    const host = `sim:${profileFile("held", "mlx5-vf", (j) => {
      j.devices[0]!.heldBy = { pid: 4242, command: "qemu-system-x86" };
    })}`;
    const r = await check(["--host", host]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      "vfio-dirty: 0000:3b:00.1 is in use: qemu-system-x86 (pid 4242) holds /dev/vfio/12; check never opens a device another process uses\n",
    );
    expect(r.out).not.toMatch(/rule/);
  });

  it("bound to a host driver, or in a group with a member on one", async () => {
    const host = `sim:${profileFile("host-driver", "mlx5-vf", (j) => {
      j.groups = [
        { id: 12, members: [{ bdf: "0000:3b:00.3", driver: "mlx5_core" }] },
        { id: 40, members: [{ bdf: "0000:5e:00.0", driver: "e1000e" }] },
      ];
    })}`;
    const nic = await check(["--host", host, "0000:5e:00.0"]);
    expect(nic.code).toBe(2);
    expect(nic.err).toMatch(
      /^vfio-dirty: 0000:5e:00.0 is bound to e1000e, not vfio-pci or a VFIO variant driver; check opens only devices VFIO owns/,
    );
    expect(nic.err.trim().split("\n")).toHaveLength(1);
    const vf = await check(["--host", host, "0000:3b:00.1"]);
    expect(vf.code).toBe(2);
    expect(vf.err).toMatch(
      /^vfio-dirty: 0000:3b:00.1: IOMMU group 12 is not viable \(0000:3b:00.3 \(mlx5_core\) bound/,
    );
    // Without addresses the sim checks every VFIO device; the unsafe one is still refused.
    expect((await check(["--host", host])).code).toBe(2);
  });
});

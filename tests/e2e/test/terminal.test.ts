// The live line: drawn in place on a terminal (a pseudo-terminal from util-linux `script`),
// absent when stdout is a pipe; and Ctrl-C / SIGTERM during track still writes the report and
// leaves no tracking running on the simulated host.

import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, cli, expectShape, REPO, startCli, tempDir } from "./helpers.ts";

const tmp = tempDir();
afterAll(tmp.cleanup);
const hasScript = existsSync("/usr/bin/script");
const ESC = "\u001b";

/** Runs the CLI under a pseudo-terminal and returns everything it wrote there. */
function underTerminal(args: readonly string[]): Promise<{ code: number; output: string }> {
  const command = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  return new Promise((resolve) => {
    execFile(
      "script",
      ["-qec", command, "/dev/null"],
      { cwd: REPO, env: { ...process.env, NO_COLOR: "1", TERM: "xterm" }, encoding: "utf8" },
      (err, stdout) =>
        resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, output: stdout }),
    );
  });
}

describe.skipIf(!hasScript)("live line", () => {
  it("is redrawn in place on a terminal, then cleared before the summary", async () => {
    const { code, output } = await underTerminal([
      "track",
      "--host",
      "sim",
      "--duration",
      "2s",
      "--interval",
      "500ms",
    ]);
    expect(code).toBe(0);
    // "\r ESC[2K" then the line: redraw in place (built from a string: biome forbids control characters in regex literals).
    const redraws = output.match(new RegExp(`\r${ESC}\\[2Ksync \\d+ +\\d+ dirty pages`, "g")) ?? [];
    expect(redraws.length).toBe(4);
    // The last clear is followed by the summary, not by a stale live line.
    const clear = `\r${ESC}[2K`;
    const after = output.slice(output.lastIndexOf(clear) + clear.length);
    expect(after.startsWith("sync")).toBe(false);
    expect(after).toMatch(/strategy +device[\s\S]*ground truth: no page lost/);
  });

  it("is absent under --json and --quiet even on a terminal", async () => {
    for (const flag of ["--json", "--quiet"]) {
      const { code, output } = await underTerminal([
        "track",
        "--host",
        "sim",
        "--duration",
        "1s",
        "--fast",
        flag,
      ]);
      expect(code).toBe(0);
      expect(output).not.toMatch(/sync \d+ +\d+ dirty pages/);
      expect(output.includes("\x1b[")).toBe(false);
    }
  });
});

it("is never written when stdout is not a terminal", async () => {
  const r = await cli(["track", "--host", "sim", "--duration", "1s", "--interval", "250ms"]);
  expect(r.code).toBe(0);
  expect(r.stdout).not.toMatch(/sync \d+ +\d+ dirty pages/);
  expect(r.stdout.includes("\x1b[") || r.stdout.includes("\r")).toBe(false);
});

/** Resolves once `child` has written `text` on stdout; gives everything it wrote so far. */
function waitForOutput(child: ReturnType<typeof startCli>, text: string): Promise<() => string> {
  let out = "";
  child.stdout!.on("data", (d) => {
    out += d;
  });
  return new Promise((resolve) => {
    const check = () => (out.includes(text) ? resolve(() => out) : setTimeout(check, 20));
    check();
  });
}

const exitOf = (child: ReturnType<typeof startCli>) =>
  new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));

describe("stopping a running track", () => {
  for (const [signal, exitCode] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    it(`${signal} stops tracking cleanly and still writes the report and the picture`, async () => {
      const report = join(tmp.dir, `${signal}.json`);
      const svg = join(tmp.dir, `${signal}.svg`);
      const child = startCli([
        "track",
        "--host",
        "sim",
        "--duration",
        "60s",
        "--interval",
        "200ms",
        "--report",
        report,
        "--svg",
        svg,
      ]);
      let err = "";
      child.stderr!.on("data", (d) => {
        err += d;
      });
      // Wait until tracking has started (the second line says so), then interrupt.
      const out = await waitForOutput(child, "tracking ");
      await new Promise((r) => setTimeout(r, 700));
      child.kill(signal);
      // 128 + the signal's number, as a shell reports a process the signal ended.
      expect(await exitOf(child)).toBe(exitCode);
      const doc = JSON.parse(readFileSync(report, "utf8"));
      expectShape("track-report", doc);
      expect(doc.interrupted).toBe(true);
      expect(doc.trackingStopped).toBe(true);
      expect(doc.durationMs).toBeLessThan(10_000);
      expect(doc.groundTruth.pagesLost).toBe(0);
      expect(readFileSync(svg, "utf8")).toMatch(/<\/svg>\n$/);
      expect(out()).toMatch(/ground truth: no page lost/);
      expect(err).toMatch(/interrupted: tracking stopped cleanly/);
    });
  }

  it("SIGINT stops a --fast run at once, not after its whole simulated duration", async () => {
    const report = join(tmp.dir, "fast.json");
    const child = startCli(["track", "--host", "sim", "--duration", "24h", "--fast", "--report", report]);
    await waitForOutput(child, "tracking ");
    child.kill("SIGINT");
    expect(await exitOf(child)).toBe(130);
    const doc = JSON.parse(readFileSync(report, "utf8"));
    expect(doc.interrupted).toBe(true);
    expect(doc.trackingStopped).toBe(true);
    expect(doc.durationMs).toBeLessThan(24 * 3_600_000);
  });
});

describe("long runs", () => {
  it("a run of 3000 syncs ends with its summary and its picture (no stack overflow)", async () => {
    const svg = join(tmp.dir, "long.svg");
    const r = await cli([
      "track",
      "--host",
      "sim:edu-logging",
      "--duration",
      "3s",
      "--interval",
      "1ms",
      "--fast",
      "--svg",
      svg,
    ]);
    expect(r.stderr).not.toMatch(/internal error|RangeError/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/syncs +3000 in 3\.00 s/);
    const picture = readFileSync(svg, "utf8");
    expect(picture).toMatch(/<\/svg>\n$/);
    // Columns are aggregated: not one rectangle per sync and bucket (that was 24 MB here).
    expect(picture.length).toBeLessThan(200_000);
  });
});

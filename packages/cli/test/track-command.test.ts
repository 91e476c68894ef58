// `track` as a command, in-process on the simulated host: output paths checked before any work,
// a late write failure that still prints the summary, the exit code of an interrupted run, and
// where notes and warnings go.

import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { run } from "../src/cli.ts";
import { captureIo } from "./capture-io.ts";

const tmp = mkdtempSync(join(tmpdir(), "vfio-dirty-track-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const FAST = ["track", "--host", "sim", "--duration", "2s", "--fast"];

describe("track output paths", () => {
  it.each([
    [
      "--report",
      join(tmp, "no-such-dir", "r.json"),
      /--report .*r\.json: the directory .*no-such-dir does not exist/,
    ],
    [
      "--svg",
      join(tmp, "no-such-dir", "p.svg"),
      /--svg .*p\.svg: the directory .*no-such-dir does not exist/,
    ],
    ["--svg", tmp, /--svg .*: is a directory; give a file name/],
  ])("%s %s is refused before tracking starts (exit 2, one line)", async (flag, path, message) => {
    const c = captureIo();
    expect(await run([...FAST, flag, path], c.io)).toBe(2);
    expect(c.out()).not.toMatch(/tracking|strategy/);
    expect(c.err()).toMatch(message);
    expect(c.err().trimEnd().split("\n")).toHaveLength(1);
  });

  it("a write that fails after the run still prints the summary, then exits 1 naming the file", async () => {
    const dir = join(tmp, "vanishes");
    mkdirSync(dir);
    const report = join(dir, "r.json");
    const svg = join(tmp, "kept.svg");
    // The directory goes away while tracking runs (after the checks passed).
    const c = captureIo({ onStdout: (s) => s.startsWith("tracking ") && rmSync(dir, { recursive: true }) });
    expect(await run([...FAST, "--report", report, "--svg", svg], c.io)).toBe(1);
    expect(c.out()).toMatch(/syncs +2 in 2\.00 s[\s\S]*ground truth: no page lost/);
    expect(c.err()).toMatch(/r\.json: cannot write \(ENOENT\); nothing was written there\n$/);
    // The other file was written, and said so.
    expect(readFileSync(svg, "utf8")).toMatch(/<\/svg>\n$/);
    expect(c.err()).toMatch(/picture: .*kept\.svg/);
    expect(c.err()).not.toMatch(/report: /);
  });
});

describe("an interrupted track", () => {
  it.each([
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ])("after %s writes everything and exits %d", async (signal, code) => {
    const ac = new AbortController();
    const report = join(tmp, `${signal}.json`);
    const c = captureIo({
      signal: ac.signal,
      onStdout: (s) => s.startsWith("tracking ") && ac.abort(signal),
    });
    expect(
      await run(["track", "--host", "sim", "--duration", "1h", "--fast", "--report", report], c.io),
    ).toBe(code);
    const doc = JSON.parse(readFileSync(report, "utf8"));
    expect(doc).toMatchObject({ interrupted: true, trackingStopped: true });
    expect(doc.durationMs).toBeLessThan(3_600_000);
    expect(c.out()).toMatch(/ground truth: no page lost/);
    expect(c.err()).toMatch(/interrupted: tracking stopped cleanly/);
  });
});

describe("track's human output", () => {
  it("puts notes on stderr and results on stdout; no summary line ends in a space", async () => {
    const c = captureIo();
    expect(await run(FAST, c.io)).toBe(0);
    expect(c.out()).not.toMatch(/^(note|why) /m);
    expect(c.err()).toMatch(/^note: .*QEMU's ranges/m);
    expect(c.err()).toMatch(/^why device: /m);
    expect(c.out()).toMatch(/^ {2}syncs +2 in 2\.00 s simulated \(wall time [\d.]+ m?s\)$/m);
    expect(c.out()).toMatch(/^ {2}sync cost +mean .* \(simulated host\)/m);
    for (const line of c.out().split("\n")) expect(line).not.toMatch(/ $/);
  });

  it("on a terminal, notes are out before the first sync's live line, not after the run", async () => {
    let errAtFirstLive: string | undefined;
    const c = captureIo({
      tty: true,
      onStdout: (s) => {
        if (errAtFirstLive === undefined && s.includes("sync 1 ")) errAtFirstLive = c.err();
      },
    });
    expect(await run(["track", "--host", "sim", "--duration", "2s", "--fast"], c.io)).toBe(0);
    expect(errAtFirstLive).toMatch(/note: .*QEMU's ranges[\s\S]*why device: /);
  });

  it("warns once, while tracking, when syncs take longer than the interval", async () => {
    // Paced (no --fast): any sync takes longer than a microsecond.
    const c = captureIo();
    expect(await run(["track", "--host", "sim", "--duration", "20us", "--interval", "1us"], c.io)).toBe(0);
    const warnings = c.err().match(/^warning: sync \d+ took .*longer than the 0\.001 ms interval.*$/gm) ?? [];
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/\(simulated host\)/);
    expect(c.out()).toMatch(/sync cost .*; \d+ syncs? took longer than the interval/);
  });
});

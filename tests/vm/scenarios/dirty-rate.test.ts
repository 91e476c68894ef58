// predict's reader of QEMU's dirty-rate measurement, against the real QEMU running this guest:
// the guest dirties memory, asks the host (lib/qmp-dirty-rate.mjs, on QEMU's QMP socket) to run
// `calc-dirty-rate`, and feeds the `query-dirty-rate` reply QEMU really sent to
// `vfio-dirty predict --guest-dirty-rate-from`. Also a reply taken while QEMU was still measuring,
// which predict must refuse. The replies and predict's output are kept in the results folder.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv } from "ajv";
import { afterAll, describe, expect, it } from "vitest";
import { guest } from "./support/guest.ts";

const CLI = new URL("../../../packages/cli/bin/vfio-dirty.js", import.meta.url).pathname;
const SCHEMA = new URL("../../../packages/cli/schemas/predict.schema.json", import.meta.url).pathname;
const MiB = 2 ** 20;

describe.skipIf(!guest.results)("the guest's dirty rate, measured by the QEMU running this guest", () => {
  const results = guest.results!;
  const measured = join(results, "query-dirty-rate.json");
  const measuring = join(results, "query-dirty-rate-measuring.json");
  let writer: ChildProcess | undefined;
  afterAll(() => writer?.kill("SIGKILL"));

  it("QEMU measures the guest writing 256 MiB over and over (calc-dirty-rate, query-dirty-rate)", async () => {
    // The guest's work: one process rewriting a 256 MiB buffer (an eighth of guest RAM).
    writer = spawn(
      process.execPath,
      ["-e", "const b = Buffer.alloc(256 << 20); for (let i = 1; ; i++) b.fill(i & 255);"],
      {
        stdio: "ignore",
      },
    );
    await sleep(3000);
    // By rename: the host's helper polls for the file and must never see it empty (it did once,
    // under load, between 9p's create and write).
    writeFileSync(join(results, "dirty-rate.request.tmp"), JSON.stringify({ calcTimeS: 2 }));
    renameSync(join(results, "dirty-rate.request.tmp"), join(results, "dirty-rate.request"));
    const deadline = Date.now() + 100_000;
    while (!existsSync(measured) && Date.now() < deadline) await sleep(250);
    writer.kill("SIGKILL");
    expect(existsSync(measured), "no reply from the host's QMP helper (see qmp-dirty-rate.log)").toBe(true);
    const info = JSON.parse(readFileSync(measured, "utf8")).return;
    expect(info.status).toBe("measured");
    expect(info.mode).toBe("page-sampling");
    expect(info["dirty-rate"], "QEMU saw the guest dirty memory").toBeGreaterThan(0);
  });

  it("predict --guest-dirty-rate-from reads QEMU's reply as QEMU sent it", () => {
    const info = JSON.parse(readFileSync(measured, "utf8")).return;
    const run = predict(
      ["--guest-dirty-rate-from", measured, "--ram", "2G", "--bandwidth", "1G/s", "--json"],
      "json",
    );
    const doc = JSON.parse(run.stdout);
    const ajv = new Ajv({ allErrors: true, strict: false });
    const valid = ajv.compile(JSON.parse(readFileSync(SCHEMA, "utf8")));
    expect(valid(doc), JSON.stringify(valid.errors)).toBe(true);
    // QEMU's MB/s are MiB/s (migration/dirtyrate.c shifts by 20).
    expect(doc.input.guestDirtyRate).toBe(info["dirty-rate"] * MiB);
    expect(doc.input.guestDirtyRateSource).toEqual({
      kind: "query-dirty-rate",
      file: measured,
      mode: "page-sampling",
      calcTimeMs: 2000,
    });
    expect(doc.dirtyRate).toMatchObject({
      total: info["dirty-rate"] * MiB,
      guest: info["dirty-rate"] * MiB,
      deviceDma: 0,
    });
    expect([0, 3]).toContain(run.status);
    const human = predict(
      ["--guest-dirty-rate-from", measured, "--ram", "2G", "--bandwidth", "1G/s"],
      "human",
    );
    expect(human.stdout).toContain(
      `guest ${info["dirty-rate"]} MiB/s (${measured}: query-dirty-rate, page-sampling over 2.00 s)`,
    );
  });

  it("a reply QEMU gave while still measuring is refused (exit 2, one line)", () => {
    expect(existsSync(measuring), "the helper saw no 'measuring' reply").toBe(true);
    expect(JSON.parse(readFileSync(measuring, "utf8")).return.status).toBe("measuring");
    const run = predict(
      ["--guest-dirty-rate-from", measuring, "--ram", "2G", "--bandwidth", "1G/s"],
      "measuring",
    );
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/the measurement is 'measuring', not 'measured'/);
  });
});

// --- Internal helpers ---

function predict(args: string[], tag: string) {
  const r = spawnSync(process.execPath, [CLI, "predict", ...args], { encoding: "utf8", timeout: 120_000 });
  writeFileSync(
    join(guest.results!, `predict-${tag}.out`),
    `$ vfio-dirty predict ${args.join(" ")}\nexit ${r.status}\n${r.stdout}\n--- stderr\n${r.stderr}`,
  );
  return r;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

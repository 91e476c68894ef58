// From track to predict through the report's deviceState, as users run them: `track --report` on
// a simulated device with PRE_COPY writes the section (checked against the track-report schema),
// and `predict --report` of that file models the device with it.

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cli, cliJson, expectShape, REPO, tempDir } from "./helpers.ts";

const tmp = tempDir();
afterAll(tmp.cleanup);

const DEV = "0000:3b:00.1";
const MIB = 1 << 20;

interface Report {
  deviceState?: {
    devices: {
      device: string;
      stopCopyBytes: number | null;
      precopyInfoVersion: 1 | 2 | null;
      precopy: {
        tMs: number;
        initialBytes: number;
        dirtyBytes: number;
        reinit: boolean;
        drainedBytes?: number;
      }[];
    }[];
  };
}

/** mlx5-vf on a 7.3 kernel (the PRECOPY_INFOv2 opt-in) with a reconfiguration at 2.5 s. */
function v2Profile(): string {
  const p = JSON.parse(readFileSync(join(REPO, "packages/vfio-adapter/sim/profiles/mlx5-vf.json"), "utf8"));
  delete p.$schema;
  p.name = "mlx5-v2-reinit";
  p.kernel = "7.3";
  p.devices[0].migration.reinitAfterMs = [2500];
  const path = join(tmp.dir, "mlx5-v2.json");
  writeFileSync(path, JSON.stringify(p));
  return path;
}

describe("track --report -> predict --report with device state", () => {
  it("a PRE_COPY device's readings reach the report and predict's device-state line", async () => {
    const report = join(tmp.dir, "v1.json");
    const t = await cli(["track", "--host", "sim:mlx5-vf", "--duration", "3s", "--fast", "--report", report]);
    expect(t.code, t.stderr).toBe(0);
    const doc = JSON.parse(readFileSync(report, "utf8")) as Report;
    expectShape("track-report", doc);
    expect(doc.deviceState!.devices).toEqual([
      {
        device: DEV,
        stopCopyBytes: 64 * MIB,
        precopyInfoVersion: 1,
        precopy: [
          { tMs: 1000, initialBytes: 16 * MIB, dirtyBytes: 0, reinit: false, drainedBytes: 16 * MIB },
          { tMs: 2000, initialBytes: 0, dirtyBytes: MIB, reinit: false, drainedBytes: MIB },
          { tMs: 3000, initialBytes: 0, dirtyBytes: MIB, reinit: false, drainedBytes: MIB },
        ],
      },
    ]);
    // track drains the data fd after each reading, so each reading is new data: 2 MiB in 2 s.
    // (Counting dirty_bytes' growth instead, as for a reader that never drains, would say 0.5.)
    const j = await cliJson<{ dirtyRate: { deviceState: number } }>([
      "predict",
      "--report",
      report,
      "--bandwidth",
      "10Gbit/s",
    ]);
    expect(j.code, j.stderr).toBe(0);
    expect(j.doc.dirtyRate.deviceState).toBe(MIB);
    const p = await cli(["predict", "--report", report, "--bandwidth", "10Gbit/s"]);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toMatch(
      new RegExp(
        `${DEV} \\(from the report's deviceState\\): stop-copy 64 MiB; PRE_COPY \\(GET_PRECOPY_INFO v1\\): initial 16 MiB`,
      ),
    );
  });

  it("a v2 device's REINIT goes through to predict", async () => {
    const report = join(tmp.dir, "v2.json");
    const t = await cli([
      "track",
      "--host",
      `sim:${v2Profile()}`,
      "--duration",
      "4s",
      "--fast",
      "--report",
      report,
    ]);
    expect(t.code, t.stderr).toBe(0);
    const doc = JSON.parse(readFileSync(report, "utf8")) as Report;
    expectShape("track-report", doc);
    const d = doc.deviceState!.devices[0]!;
    expect(d.precopyInfoVersion).toBe(2);
    expect(d.precopy.filter((r) => r.reinit).map((r) => [r.tMs, r.initialBytes])).toEqual([[3000, 16 * MIB]]);
    const p = await cli(["predict", "--report", report, "--bandwidth", "10Gbit/s"]);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toMatch(/GET_PRECOPY_INFO v2\).*new initial data 16 MiB at 2\.00 s \(REINIT\)/);
  });

  it("--no-device-state leaves the section out", async () => {
    const { doc, code } = await cliJson<Report>([
      "track",
      "--host",
      "sim:mlx5-vf",
      "--duration",
      "2s",
      "--fast",
      "--no-device-state",
    ]);
    expect(code).toBe(0);
    expectShape("track-report", doc);
    expect(doc.deviceState).toBeUndefined();
  });
});

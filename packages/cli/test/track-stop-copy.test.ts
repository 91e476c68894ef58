// Stop-copy stops the devices: after --phase-switch the simulated devices issue no more DMA, what
// they wrote up to the switch is still reported, and the ground truth checks both. The oracle is
// the simulated host's own record of writes: a run switching at 1.5 s must have written exactly
// what a 1.5 s run writes (the workloads are deterministic and do not depend on how time is cut).

import { describe, expect, it } from "vitest";
import { run } from "../src/cli.ts";
import { captureIo } from "./capture-io.ts";

interface Report {
  samples: { tMs: number; phase: string; dirtyPages: number }[];
  groundTruth: { pagesWritten: number; pagesLost: number; ok: boolean };
  phaseSwitchMs: number | null;
  events: { kind: string; message: string }[];
  heatmap: { rows: number[][] };
}

async function track(args: string[]): Promise<{ code: number; doc: Report; err: string }> {
  const c = captureIo();
  const code = await run(["track", "--fast", "--json", ...args], c.io);
  return { code, doc: JSON.parse(c.out()) as Report, err: c.err() };
}

describe("track --phase-switch: the devices stop at stop-copy", () => {
  const uniform = ["--host", "sim:mlx5-vf", "--workload", "uniform"];

  it("no DMA after the switch; the writes up to it are reported by the stop-copy sync", async () => {
    const switched = await track([...uniform, "--duration", "3s", "--phase-switch", "1500ms"]);
    const short = await track([...uniform, "--duration", "1500ms"]);
    const long = await track([...uniform, "--duration", "3s"]);
    expect(switched.code, switched.err).toBe(0);
    // Written: exactly the first 1.5 s, not the 3 s a device that kept running writes.
    expect(switched.doc.groundTruth.pagesWritten).toBe(short.doc.groundTruth.pagesWritten);
    expect(switched.doc.groundTruth.pagesWritten).toBeLessThan(long.doc.groundTruth.pagesWritten);
    expect(switched.doc.groundTruth).toMatchObject({ pagesLost: 0, ok: true });
    // The switch is an instant of its own: a sync right at it reads the last 500 ms of writes,
    // the later stop-copy syncs read nothing, and the heat map's rows after it are empty.
    expect(switched.doc.phaseSwitchMs).toBe(1500);
    expect(switched.doc.samples.map((s) => [s.tMs, s.phase])).toEqual([
      [1000, "pre-copy"],
      [1500, "stop-copy"],
      [2500, "stop-copy"],
      [3000, "stop-copy"],
    ]);
    expect(switched.doc.samples[1]!.dirtyPages).toBeGreaterThan(0);
    expect(switched.doc.samples.slice(2).map((s) => s.dirtyPages)).toEqual([0, 0]);
    expect(
      switched.doc.heatmap.rows
        .slice(2)
        .flat()
        .every((v) => v === 0),
    ).toBe(true);
  });

  it("a device that cannot migrate keeps writing, and the run says so", async () => {
    const r = await track(["--host", "sim:mixed-logging", "--duration", "3s", "--phase-switch", "1s"]);
    expect(r.doc.events.filter((e) => e.kind === "not-quiesced").map((e) => e.message)).toEqual([
      "0000:5e:02.0: no VFIO migration (STOP_COPY), so it cannot be stopped: it keeps issuing DMA in stop-copy",
    ]);
    expect(r.doc.groundTruth.ok).toBe(true);
  });

  it("a switch after the end of the run is a usage error; pre-copy tracking off needs a switch", async () => {
    const c = captureIo();
    expect(await run(["track", "--host", "sim", "--duration", "2s", "--phase-switch", "3s"], c.io)).toBe(2);
    expect(c.err()).toMatch(/--phase-switch 3s is after the end of the run \(--duration 2s\)/);
    const d = captureIo();
    expect(
      await run(
        ["track", "--host", "sim", "--duration", "2s", "--pre-copy-dirty-page-tracking", "off"],
        d.io,
      ),
    ).toBe(2);
    expect(d.err()).toMatch(/only in stop-copy; give --phase-switch too/);
  });
});

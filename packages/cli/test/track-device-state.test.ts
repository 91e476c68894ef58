// track's device-state readings (the report's deviceState) on the simulated host: MIG_DATA_SIZE,
// GET_PRECOPY_INFO readings that shrink as the data fd is drained and grow again at a
// reconfiguration (REINIT only after the 7.1 PRECOPY_INFOv2 opt-in), a device back in RUNNING on
// every exit path, failures as events, and dirty bitmaps identical with and without it.
//
// The oracle for the drain is the device's own announcement: every byte GET_PRECOPY_INFO says is
// pending is read before the next reading, so the bytes drained are the sum of the readings.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { uapi } from "@vfio-dirty/vfio-adapter";
import { afterAll, describe, expect, it } from "vitest";
import { run } from "../src/cli.ts";
import type { TrackReport } from "../src/report.ts";
import type { TrackBackend } from "../src/track/backend.ts";
import { runTrack } from "../src/track/loop.ts";
import { openTrackBackend } from "../src/track/open.ts";
import { captureIo } from "./capture-io.ts";

const tmp = mkdtempSync(join(tmpdir(), "vfio-dirty-devstate-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const DEV = "0000:3b:00.1";
const MIB = 1 << 20;
const MLX5 = JSON.parse(
  readFileSync(new URL("../../vfio-adapter/sim/profiles/mlx5-vf.json", import.meta.url), "utf8"),
) as { devices: { migration: Record<string, unknown> }[]; faults?: unknown[] } & Record<string, unknown>;

/** mlx5-vf (16 MiB initial, 1 MiB dirty per round, 64 MiB stop-copy) on `kernel`, with extras. */
function profile(name: string, kernel: string, extra: { reinitAfterMs?: number[]; faults?: unknown[] } = {}) {
  const p = structuredClone(MLX5);
  delete p.$schema;
  p.name = name;
  p.kernel = kernel;
  if (extra.reinitAfterMs) p.devices[0]!.migration.reinitAfterMs = extra.reinitAfterMs;
  if (extra.faults) p.faults = extra.faults;
  const path = join(tmp, `${name}.json`);
  writeFileSync(path, JSON.stringify(p));
  return path;
}

async function open(path: string, deviceState = true): Promise<TrackBackend> {
  return openTrackBackend(
    { kind: "sim", profile: path, auto: false },
    {
      addresses: [],
      pageSize: 4096n,
      seed: 1,
      workload: undefined,
      signal: new AbortController().signal,
      fast: true,
      deviceState,
    },
  );
}

/** Records the device's migration state each time the reader's close() has run. */
function statesAfterClose(backend: TrackBackend): number[] {
  const ds = backend.deviceState!;
  const device = ds.devices.get(DEV)!;
  const states: number[] = [];
  const close = ds.close.bind(ds);
  ds.close = (t?: number) => {
    close(t);
    states.push(device.getMigState());
  };
  return states;
}

const never = new AbortController().signal;

describe("the device-state reader", () => {
  it("v1 (6.8): readings shrink as the data fd is drained; a reconfiguration is dirty data, never REINIT", async () => {
    const backend = await open(profile("v1", "6.8", { reinitAfterMs: [2500] }));
    try {
      const ds = backend.deviceState!;
      const device = ds.devices.get(DEV)!;
      ds.start(0);
      expect(device.getMigState()).toBe(uapi.VFIO_DEVICE_STATE_PRE_COPY);
      for (let t = 1000; t <= 4000; t += 1000) {
        await backend.advance(1000, never);
        ds.sample(t);
      }
      ds.finish(4000);
      const [d] = ds.section().devices;
      expect(d).toMatchObject({ device: DEV, stopCopyBytes: 64 * MIB, precopyInfoVersion: 1 });
      expect(d!.precopy.map((r) => [r.tMs, r.initialBytes, r.dirtyBytes, r.reinit])).toEqual([
        [1000, 16 * MIB, 0, false],
        [2000, 0, MIB, false],
        // The reconfiguration at 2.5 s comes back as dirty bytes: the v1 kernel has no REINIT.
        [3000, 0, 16 * MIB, false],
        [4000, 0, MIB, false],
      ]);
      const announced = d!.precopy.reduce((a, r) => a + r.initialBytes + r.dirtyBytes, 0);
      expect(ds.bytesDrained()[DEV]).toBe(announced);
      ds.close();
      expect(device.getMigState()).toBe(uapi.VFIO_DEVICE_STATE_RUNNING);
      expect(ds.takeEvents()).toEqual([]);
    } finally {
      backend.close();
    }
  });

  it("v2 (7.3): the opt-in is taken, and the re-grown initial data comes with REINIT", async () => {
    const backend = await open(profile("v2", "7.3", { reinitAfterMs: [2500] }));
    try {
      const ds = backend.deviceState!;
      ds.start(0);
      for (let t = 1000; t <= 4000; t += 1000) {
        await backend.advance(1000, never);
        ds.sample(t);
      }
      const [d] = ds.section().devices;
      expect(d!.precopyInfoVersion).toBe(2);
      expect(d!.precopy.map((r) => [r.initialBytes, r.dirtyBytes, r.reinit])).toEqual([
        [16 * MIB, 0, false],
        [0, MIB, false],
        [16 * MIB, 0, true],
        [0, MIB, false],
      ]);
      expect(ds.bytesDrained()[DEV]).toBe(34 * MIB);
    } finally {
      backend.close();
    }
  });

  it("a device without VFIO migration is left out; one without PRE_COPY has no readings", async () => {
    const p = structuredClone(MLX5);
    delete p.$schema;
    p.name = "no-precopy";
    p.devices[0]!.migration.flags = ["stop-copy", "p2p"];
    delete p.devices[0]!.migration.precopyInitialBytes;
    delete p.devices[0]!.migration.precopyDirtyBytes;
    const path = join(tmp, "no-precopy.json");
    writeFileSync(path, JSON.stringify(p));
    const backend = await open(path);
    try {
      const ds = backend.deviceState!;
      ds.start(0);
      expect(ds.devices.get(DEV)!.getMigState()).toBe(uapi.VFIO_DEVICE_STATE_RUNNING);
      await backend.advance(1000, never);
      ds.sample(1000);
      expect(ds.section().devices).toEqual([
        { device: DEV, stopCopyBytes: 64 * MIB, precopyInfoVersion: null, precopy: [] },
      ]);
    } finally {
      backend.close();
    }
  });
});

describe("device state in a track run", () => {
  const opts = { durationMs: 5000, intervalMs: 1000, phaseSwitchMs: null, seed: 1 };

  it("GET_PRECOPY_INFO failing mid-run: an event naming it, readings so far, the device back in RUNNING", async () => {
    const path = profile("fault-info", "7.3", {
      faults: [{ op: "VFIO_MIG_GET_PRECOPY_INFO", device: DEV, errno: "EIO", nth: 3 }],
    });
    const backend = await open(path);
    const states = statesAfterClose(backend);
    const report = await runTrack(backend, opts, { signal: never });
    const ev = report.events.filter((e) => e.kind === "device-state");
    expect(ev).toHaveLength(1);
    expect(ev[0]!.message).toMatch(
      new RegExp(`^${DEV}: VFIO_MIG_GET_PRECOPY_INFO failed \\(EIO \\(5\\)\\): `),
    );
    expect(ev[0]!.tMs).toBe(3000);
    expect(report.deviceState!.devices[0]!.precopy.map((r) => r.tMs)).toEqual([1000, 2000]);
    expect(states.at(-1)).toBe(uapi.VFIO_DEVICE_STATE_RUNNING);
    // Tracking itself went on: every sync ran and nothing was lost.
    expect(report.syncs).toBe(5);
    expect(report.groundTruth).toMatchObject({ ok: true, pagesLost: 0 });
  });

  it("returning to RUNNING refused: an event says the device may stay in PRE_COPY", async () => {
    const path = profile("fault-running", "7.3", {
      faults: [{ op: "VFIO_DEVICE_FEATURE(SET|MIG_DEVICE_STATE)", device: DEV, errno: "EIO", nth: 2 }],
    });
    const backend = await open(path);
    const states = statesAfterClose(backend);
    const report = await runTrack(backend, opts, { signal: never });
    const ev = report.events.filter((e) => e.kind === "device-state");
    expect(ev.map((e) => e.message)).toEqual([
      expect.stringMatching(
        /MIG_DEVICE_STATE\) to RUNNING failed \(EIO \(5\)\): the device may stay in PRE_COPY/,
      ),
    ]);
    expect(states[0]).toBe(uapi.VFIO_DEVICE_STATE_PRE_COPY);
    expect(report.deviceState!.devices[0]!.precopy).toHaveLength(5);
  });

  it("MIG_DATA_SIZE failing at the end: an event, and the size it gave at the start", async () => {
    const path = profile("fault-size", "7.3", {
      faults: [{ op: "MIG_DATA_SIZE", device: DEV, errno: "EIO", fromMs: 1 }],
    });
    const report = await runTrack(await open(path), opts, { signal: never });
    expect(report.events.filter((e) => e.kind === "device-state").map((e) => e.message)).toEqual([
      expect.stringMatching(/^0000:3b:00\.1: VFIO_DEVICE_FEATURE\(GET\|MIG_DATA_SIZE\) failed \(EIO/),
    ]);
    expect(report.deviceState!.devices[0]).toMatchObject({ stopCopyBytes: 64 * MIB });
    expect(report.deviceState!.devices[0]!.precopy).toHaveLength(5);
  });

  it("a run that fails mid-way still puts the device back in RUNNING", async () => {
    const backend = await open(profile("error-path", "7.3"));
    const states = statesAfterClose(backend);
    let calls = 0;
    const failing: TrackBackend = {
      ...backend,
      advance: async (ms, signal) => {
        if (++calls === 3) throw new Error("injected: the host went away");
        await backend.advance(ms, signal);
      },
    };
    await expect(runTrack(failing, opts, { signal: never })).rejects.toThrow(/injected/);
    expect(states.at(-1)).toBe(uapi.VFIO_DEVICE_STATE_RUNNING);
  });

  it("Ctrl-C mid-run: the report keeps the readings and the device is back in RUNNING", async () => {
    const backend = await open(profile("sigint", "7.3"));
    const states = statesAfterClose(backend);
    const ac = new AbortController();
    const report = await runTrack(
      backend,
      { ...opts, durationMs: 3_600_000 },
      { signal: ac.signal, onSample: (s) => s.sync === 2 && ac.abort("SIGINT") },
    );
    expect(report.interrupted).toBe(true);
    expect(report.deviceState!.devices[0]!.precopy.length).toBeGreaterThanOrEqual(2);
    expect(states.at(-1)).toBe(uapi.VFIO_DEVICE_STATE_RUNNING);
  });

  it("never changes the dirty bitmaps: the same samples and heat map with and without it", async () => {
    const track = async (flag: string) => {
      const c = captureIo();
      const args = ["track", "--host", "sim:mlx5-vf", "--duration", "4s", "--fast", "--json", flag];
      expect(await run(args, c.io), c.err()).toBe(0);
      return JSON.parse(c.out()) as TrackReport;
    };
    const on = await track("--device-state");
    const off = await track("--no-device-state");
    expect(on.deviceState!.devices[0]!.precopy).toHaveLength(4);
    expect(off.deviceState).toBeUndefined();
    const pages = (r: TrackReport) => r.samples.map((s) => [s.tMs, s.dirtyPages]);
    expect(pages(on)).toEqual(pages(off));
    expect(on.heatmap.rows).toEqual(off.heatmap.rows);
    expect(on.groundTruth).toEqual(off.groundTruth);
  });

  it("the summary has one line per device: stop-copy size, readings, the last one, REINITs", async () => {
    const c = captureIo();
    const args = ["track", "--host", `sim:${profile("summary", "7.3", { reinitAfterMs: [1500] })}`];
    expect(await run([...args, "--duration", "3s", "--fast"], c.io), c.err()).toBe(0);
    expect(c.out()).toMatch(
      new RegExp(
        `device state ${DEV} +stop-copy 64 MiB; PRE_COPY info v2: 3 readings, last initial 0 B dirty 1 MiB, 1 REINIT\n`,
      ),
    );
  });

  it("is on by default on the simulated host, and --phase-switch ends the readings", async () => {
    const c = captureIo();
    const args = [
      "track",
      "--host",
      "sim:mlx5-vf",
      "--duration",
      "4s",
      "--phase-switch",
      "2s",
      "--fast",
      "--json",
    ];
    expect(await run(args, c.io), c.err()).toBe(0);
    const r = JSON.parse(c.out()) as TrackReport;
    expect(r.deviceState!.devices[0]!.precopy.map((p) => p.tMs)).toEqual([1000]);
  });
});

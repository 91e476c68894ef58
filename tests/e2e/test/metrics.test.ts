// Fleet metrics: `probe --format openmetrics` and `track --metrics-listen` checked by the real
// promtool, and a real Prometheus server (on 127.0.0.1, started and stopped here) scraping a
// running track and answering a query for a device's dirty rate. Nothing leaves 127.0.0.1.

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cli, startCli, tempDir } from "./helpers.ts";
import { needTools } from "./tools.ts";

const tmp = tempDir();
const children: ChildProcess[] = [];
afterAll(async () => {
  // Every exit path: whatever a test started and did not stop is stopped here.
  await Promise.all(children.map(stop));
  tmp.cleanup();
});

/** A paced run long enough for any scrape; the test stops it. */
const LONG_RUN = ["--host", "sim:mlx5-p2p", "--duration", "10m", "--interval", "200ms"];

/** Runs `promtool check metrics` on `text`: its exit code and what it said. */
function promtoolCheck(promtool: string, text: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = execFile(promtool, ["check", "metrics"], (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, output: stdout + stderr }),
    );
    child.stdin!.end(text);
  });
}

/** Starts `track --metrics-listen 127.0.0.1:0` (a free port) and resolves with its /metrics URL. */
async function startTrack(args: readonly string[]): Promise<{ child: ChildProcess; url: string }> {
  const child = startCli(["track", ...args, "--metrics-listen", "127.0.0.1:0"]);
  children.push(child);
  let err = "";
  child.stderr!.on("data", (d) => {
    err += d;
  });
  const url = await poll(
    () => /metrics: (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(err)?.[1],
    "the metrics URL",
  );
  return { child, url };
}

/** Polls `get` every 100 ms until it gives a value; fails after 60 s (a hang guard, not a speed check). */
async function poll<T>(get: () => T | undefined | Promise<T | undefined>, what: string): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Stops a child: SIGTERM, then SIGKILL if it is still there after 10 s. */
function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function fetchText(url: string, accept?: string): Promise<{ type: string; body: string }> {
  const r = await fetch(url, accept ? { headers: { accept } } : {});
  expect(r.status).toBe(200);
  return { type: r.headers.get("content-type") ?? "", body: await r.text() };
}

describe("probe --format openmetrics", () => {
  it.for([
    ["sim:mixed-logging", "--open"],
    ["sim:mlx5-vf", "--all"],
  ] as const)("on %s (%s) is an exposition promtool accepts", async ([host, flag], ctx) => {
    const [promtool] = needTools(["promtool"], "prometheus", ctx.skip);
    const r = await cli(["probe", "--host", host, flag, "--format", "openmetrics"]);
    // A blocker is a gauge here, not exit 3: a textfile collector's cron job must not fail.
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^# HELP vfio_dirty_probe_info /);
    expect(r.stdout).toMatch(/\n# EOF\n$/);
    expect(r.stdout).toMatch(/^vfio_dirty_strategy\{strategy="(device|all-dirty)"\} 1$/m);
    const check = await promtoolCheck(promtool!, r.stdout);
    expect(check, check.output).toEqual({ code: 0, output: "" });
  });
});

describe("track --metrics-listen", () => {
  it("serves /metrics in both formats while tracking; promtool accepts the text format", async (ctx) => {
    const [promtool] = needTools(["promtool"], "prometheus", ctx.skip);
    const { child, url } = await startTrack(LONG_RUN);
    const text = await poll(async () => {
      const t = await fetchText(url);
      return t.body.includes("vfio_dirty_syncs_total 0\n") ? undefined : t;
    }, "a first sync");
    expect(text.type).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(text.body).toMatch(/^vfio_dirty_unit_dirty_rate_bytes_per_second\{unit="0000:3b:00\.1"\} \d/m);
    expect(text.body).toMatch(/^# TYPE vfio_dirty_syncs_total counter$/m);
    const check = await promtoolCheck(promtool!, text.body);
    expect(check, check.output).toEqual({ code: 0, output: "" });
    const om = await fetchText(url, "application/openmetrics-text;version=1.0.0,text/plain;q=0.5");
    expect(om.type).toBe("application/openmetrics-text; version=1.0.0; charset=utf-8");
    expect(om.body).toMatch(/^# TYPE vfio_dirty_syncs counter\nvfio_dirty_syncs_total \d+$/m);
    expect(om.body).toMatch(/\n# EOF\n$/);
    child.kill("SIGINT");
    expect(await new Promise((r) => child.once("exit", r))).toBe(130);
    // Stopped with the run: nothing listens any more.
    await expect(fetch(url)).rejects.toThrow();
  });

  it("refuses a port in use before opening any device (exit 2, one line)", async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", () => r()));
    try {
      const port = (taken.address() as { port: number }).port;
      const r = await cli([
        "track",
        "--host",
        "sim",
        "--duration",
        "1s",
        "--metrics-listen",
        `127.0.0.1:${port}`,
      ]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(
        new RegExp(`^vfio-dirty: --metrics-listen 127\\.0\\.0\\.1:${port}: the port is in use`),
      );
      expect(r.stdout).not.toMatch(/tracking/);
    } finally {
      taken.close();
    }
  });

  it("a real Prometheus scrapes a running track and answers a query for a device's dirty rate", async (ctx) => {
    const [prometheus] = needTools(["prometheus"], "prometheus", ctx.skip);
    const { child: track, url } = await startTrack(LONG_RUN);
    const target = new URL(url).host;
    const port = await freePort();
    const config = join(tmp.dir, "prometheus.yml");
    writeFileSync(
      config,
      [
        "global:",
        "  scrape_interval: 500ms",
        "  scrape_timeout: 400ms",
        "scrape_configs:",
        "  - job_name: vfio-dirty",
        "    static_configs:",
        `      - targets: ["${target}"]`,
        "",
      ].join("\n"),
    );
    const server = spawn(
      prometheus!,
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(tmp.dir, "tsdb")}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    children.push(server);
    let log = "";
    server.stderr!.on("data", (d) => {
      log += d;
    });
    try {
      const api = `http://127.0.0.1:${port}`;
      const query = `vfio_dirty_unit_dirty_rate_bytes_per_second{job="vfio-dirty",unit="0000:3b:00.1"}`;
      const result = await poll(
        async () => {
          const r = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(query)}`).catch(
            () => undefined,
          );
          if (!r?.ok) return undefined;
          const doc = (await r.json()) as {
            data: { result: { metric: Record<string, string>; value: [number, string] }[] };
          };
          const [first] = doc.data.result;
          return first && Number(first.value[1]) > 0 ? first : undefined;
        },
        `Prometheus to answer ${query} (its log: ${log.slice(-500)})`,
      );
      expect(result.metric).toMatchObject({
        __name__: "vfio_dirty_unit_dirty_rate_bytes_per_second",
        unit: "0000:3b:00.1",
      });
      // The target is healthy: Prometheus parsed what it was served (OpenMetrics, which it asks for first).
      const targets = (await (await fetch(`${api}/api/v1/targets`)).json()) as {
        data: { activeTargets: { health: string; lastError: string }[] };
      };
      expect(targets.data.activeTargets).toEqual([expect.objectContaining({ health: "up", lastError: "" })]);
    } finally {
      await stop(server);
      track.kill("SIGINT");
      await stop(track);
    }
  });
});

// `vfio-dirty predict` in-process: the numbers it prints for the worked examples, what the rate is
// made of, the upper-bound warning for type1 traces, the device-state options, the picture, and
// exit codes (3 when pre-copy does not converge, 2 for every bad option).

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { run } from "../src/cli.ts";
import { captureIo } from "./capture-io.ts";

const dir = mkdtempSync(join(tmpdir(), "vfio-dirty-predict-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const f = (name: string) => join(dir, name);
const MiB = 2 ** 20;

async function predict(args: string[]) {
  const c = captureIo();
  const code = await run(["predict", ...args], c.io);
  return { code, out: c.out(), err: c.err() };
}

/** Runs `track --fast` on a simulated profile and returns the report's path. */
async function trackReport(profile: string, name: string, extra: string[] = []): Promise<string> {
  const c = captureIo();
  const args = [
    "track",
    "--host",
    `sim:${profile}`,
    "--duration",
    "2s",
    "--fast",
    ...extra,
    "--report",
    f(name),
  ];
  const code = await run(args, c.io);
  if (code !== 0) throw new Error(`track exited ${code}: ${c.err()}`);
  return f(name);
}

async function predictJson(args: string[]) {
  const r = await predict([...args, "--json"]);
  return { ...r, doc: JSON.parse(r.out) };
}

describe("predict: ByteDance's worked example", () => {
  const base = ["--dirty-rate", "7.5G/s", "--ram", "64G", "--bandwidth", "15G/s"];

  it("x = 250 ms: a limit above 500 ms, at most 2.5 G/s at 300 ms, and exit 3 at 300 ms", async () => {
    const r = await predict([...base, "--sync-cost", "250ms"]);
    expect(r.code).toBe(3);
    expect(r.out).toMatch(/smallest downtime-limit\s+above 500 ms/);
    expect(r.out).toMatch(/largest dirty rate\s+below 2\.50 GiB\/s at 300 ms \(now 7\.50 GiB\/s\)/);
    expect(r.out).toContain("does not converge within 30 iterations");
    expect(r.err).toBe("vfio-dirty: pre-copy does not converge within downtime-limit 300 ms\n");
    const above = await predict([
      ...base,
      "--sync-cost",
      "250ms",
      "--downtime-limit",
      "505ms",
      "--max-iterations",
      "100",
    ]);
    expect(above.code).toBe(0);
  });

  it("x = 10 ms: 11.1 ms is enough", async () => {
    const r = await predictJson([...base, "--sync-cost", "10ms"]);
    expect(r.code).toBe(0);
    expect(r.doc.minDowntimeLimitMs).toBeCloseTo(1000 / 90, 9);
    expect((await predict([...base, "--sync-cost", "10ms"])).out).toMatch(
      /smallest downtime-limit\s+above 11\.1 ms/,
    );
  });
});

describe("predict: what the dirty rate is made of", () => {
  it("device DMA + the guest's rate from QEMU's query-dirty-rate reply", async () => {
    writeFileSync(
      f("qmp.json"),
      '{"return": {"status": "measured", "sample-pages": 512, "dirty-rate": 108, "mode": "page-sampling", "start-time": 1, "calc-time": 1}}\n',
    );
    const args = [
      "--dirty-rate",
      "12M/s",
      "--guest-dirty-rate-from",
      f("qmp.json"),
      "--ram",
      "16G",
      "--bandwidth",
      "10Gbit/s",
    ];
    const r = await predict(args);
    expect(r.code).toBe(0);
    expect(r.out).toContain(
      `dirty rate 120 MiB/s: device DMA 12 MiB/s (--dirty-rate) + guest 108 MiB/s (${f("qmp.json")}: query-dirty-rate, page-sampling over 1.00 s)`,
    );
    const { doc } = await predictJson(args);
    expect(doc.dirtyRate).toEqual({
      total: 120 * MiB,
      deviceDma: 12 * MiB,
      guest: 108 * MiB,
      deviceState: 0,
    });
    expect(doc.input.guestDirtyRateSource).toEqual({
      kind: "query-dirty-rate",
      file: f("qmp.json"),
      mode: "page-sampling",
      calcTimeMs: 1000,
    });
    // The same total as one --dirty-rate: the model only sees the sum.
    const one = await predictJson(["--dirty-rate", "120M/s", "--ram", "16G", "--bandwidth", "10Gbit/s"]);
    expect(doc.iterations).toBe(one.doc.iterations);
    doc.rounds.forEach((r: { remainingBytes: number }, i: number) => {
      expect(r.remainingBytes / one.doc.rounds[i].remainingBytes).toBeCloseTo(1, 12);
    });
  });

  it("says plainly that a type1 trace is an upper bound, and not so for device logging", async () => {
    await trackReport("legacy-type1", "t1.json");
    const t1 = await predictJson([
      "--report",
      f("t1.json"),
      "--bandwidth",
      "10Gbit/s",
      "--guest-dirty-rate",
      "1M/s",
    ]);
    expect(t1.doc.input).toMatchObject({ traceStrategy: "type1", traceUpperBound: true, source: "report" });
    const human = await predict(["--report", f("t1.json"), "--bandwidth", "10Gbit/s"]);
    expect(human.err).toMatch(/warning: the trace came from type1.*an upper bound, not a measurement/);
    expect(human.out).toMatch(/device DMA .* pre-copy syncs with type1, an upper bound\)/);

    await trackReport("mlx5-vf", "dev.json");
    const dev = await predict(["--report", f("dev.json"), "--bandwidth", "10Gbit/s"]);
    expect(dev.err).not.toMatch(/upper bound/);
  });

  it("replays only pre-copy syncs, and takes the sync cost from the report", async () => {
    // A later --duration wins over the helper's 2 s (commander keeps the last value).
    await trackReport("mlx5-vf", "ps.json", ["--duration", "3s", "--phase-switch", "2s"]);
    const report = JSON.parse(readFileSync(f("ps.json"), "utf8"));
    const { doc } = await predictJson(["--report", f("ps.json"), "--bandwidth", "1G/s"]);
    expect(doc.input.traceSamples).toBe(
      report.samples.filter((s: { phase: string }) => s.phase !== "stop-copy").length,
    );
    expect(doc.input.traceSamples).toBeLessThan(report.samples.length);
    expect(doc.input).toMatchObject({ syncCostMs: report.syncCost.meanMs, syncCostSource: "report" });
    // A report written before the phase names were unified says "precopy": read the same way.
    for (const s of report.samples) if (s.phase === "pre-copy") s.phase = "precopy";
    writeFileSync(f("ps-old.json"), JSON.stringify(report));
    const old = await predictJson(["--report", f("ps-old.json"), "--bandwidth", "1G/s"]);
    expect(old.doc.input.traceSamples).toBe(doc.input.traceSamples);
    const given = await predictJson(["--report", f("ps.json"), "--bandwidth", "1G/s", "--sync-cost", "40ms"]);
    expect(given.doc.input).toMatchObject({ syncCostMs: 40, syncCostSource: "option" });
  });
});

describe("predict: device state", () => {
  const base = [
    "--guest-dirty-rate",
    "100M/s",
    "--ram",
    "1G",
    "--bandwidth",
    "1G/s",
    "--device-state",
    "50M",
  ];
  const pre = ["--precopy-initial-size", "200M", "--precopy-reinit", "1100ms:100M", "--switchover-ack"];

  it("REINIT with v2 and switchover-ack holds the switchover; v1 puts the new data in the downtime", async () => {
    const v2 = await predictJson([...base, ...pre, "--precopy-info", "v2"]);
    const v1 = await predictJson([...base, ...pre, "--precopy-info", "v1"]);
    expect(v2.doc.heldBySwitchoverAck).toBe(1);
    expect(v2.doc.rounds[0].reinit).toBe(true);
    expect(v1.doc.heldBySwitchoverAck).toBe(0);
    expect(v2.doc.expectedDowntimeMs).toBeLessThan(v1.doc.expectedDowntimeMs);
    expect(v2.doc.input.devices).toEqual([
      {
        id: "device",
        stopCopyBytes: 50 * MiB,
        precopy: {
          infoVersion: 2,
          initialBytes: 200 * MiB,
          dirtyBytes: 0,
          dirtyRate: 0,
          reinit: [{ atMs: 1100, initialBytes: 100 * MiB }],
        },
      },
    ]);
    const human = await predict([...base, ...pre, "--precopy-info", "v2"]);
    expect(human.out).toContain("new initial data 100 MiB at 1.10 s (REINIT)");
    expect(human.out).toMatch(/REINIT, held: switchover-ack/);
  });

  it("reads the report's deviceState section", async () => {
    await trackReport("mlx5-vf", "ds.json");
    const report = JSON.parse(readFileSync(f("ds.json"), "utf8"));
    report.deviceState = {
      devices: [
        {
          device: report.devices[0],
          stopCopyBytes: 32 * MiB,
          precopyInfoVersion: 2,
          precopy: [{ tMs: 1000, initialBytes: 64 * MiB, dirtyBytes: 0, reinit: false }],
        },
      ],
    };
    writeFileSync(f("ds.json"), JSON.stringify(report));
    const { doc } = await predictJson(["--report", f("ds.json"), "--bandwidth", "1G/s"]);
    expect(doc.input.deviceSource).toBe("report");
    expect(doc.input.deviceStateBytes).toBe(32 * MiB);
    expect(doc.rounds[0].deviceBytesSent).toBe(64 * MiB);
    // Command-line device options replace the section.
    const cmd = await predictJson(["--report", f("ds.json"), "--bandwidth", "1G/s", "--device-state", "1M"]);
    expect(cmd.doc.input).toMatchObject({ deviceSource: "options", deviceStateBytes: MiB });
    report.deviceState.devices[0].precopy = [{ tMs: 5, initialBytes: -1, dirtyBytes: 0, reinit: false }];
    writeFileSync(f("bad-ds.json"), JSON.stringify(report));
    const bad = await predict(["--report", f("bad-ds.json"), "--bandwidth", "1G/s"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/deviceState of .*: a precopy reading needs tMs, initialBytes/);
  });
});

describe("predict --svg", () => {
  it("draws the pending data per iteration against the budget", async () => {
    const r = await predict([
      "--dirty-rate",
      "500M/s",
      "--ram",
      "4G",
      "--bandwidth",
      "1G/s",
      "--svg",
      f("p.svg"),
    ]);
    expect(r.code).toBe(0);
    const svg = readFileSync(f("p.svg"), "utf8");
    expect(svg).toMatch(/^<\?xml/);
    const rounds = Number(/data-rounds="(\d+)"/.exec(svg)?.[1]);
    const { doc } = await predictJson(["--dirty-rate", "500M/s", "--ram", "4G", "--bandwidth", "1G/s"]);
    expect(rounds).toBe(doc.rounds.length);
    expect(svg.match(/<rect [^>]*><title>iteration/g)?.length).toBe(rounds);
    expect(svg).toContain("switches over after iteration");
  });
});

describe("predict: bad options are usage errors (exit 2, one line)", () => {
  const OK = ["--dirty-rate", "1M/s", "--ram", "1G", "--bandwidth", "1G/s"];
  writeFileSync(f("measuring.json"), '{"return": {"status": "measuring", "calc-time": 1}}');
  it.each([
    [["--dirty-rate", "1G/s", "--ram", "1G"], /needs --bandwidth/],
    [["--ram", "1G", "--bandwidth", "1G/s"], /needs a dirty rate/],
    [["--report", "x.json", "--dirty-rate", "1G/s", "--bandwidth", "1G/s"], /give one/],
    [
      [
        "--guest-dirty-rate",
        "1M/s",
        "--guest-dirty-rate-from",
        "q.json",
        "--ram",
        "1G",
        "--bandwidth",
        "1G/s",
      ],
      /once/,
    ],
    [["--guest-dirty-rate", "1M/s", "--bandwidth", "1G/s"], /needs --ram/],
    [["--guest-dirty-rate", "1M/s", "--ram", "0", "--bandwidth", "1G/s"], /--ram '0'/],
    [
      ["--guest-dirty-rate-from", "/nonexistent/q.json", "--ram", "1G", "--bandwidth", "1G/s"],
      /cannot read it \(ENOENT\)/,
    ],
    [
      ["--guest-dirty-rate-from", f("measuring.json"), "--ram", "1G", "--bandwidth", "1G/s"],
      /'measuring', not 'measured'/,
    ],
    [[...OK, "--downtime", "1s", "--downtime-limit", "1s"], /older spelling/],
    [[...OK, "--sync-cost", "10"], /--sync-cost '10'/],
    [[...OK, "--precopy-info", "v2"], /--precopy-initial-size/],
    [[...OK, "--precopy-initial-size", "1M", "--precopy-info", "v3"], /--precopy-info 'v3'/],
    [[...OK, "--precopy-initial-size", "1M", "--precopy-reinit", "2s"], /AT:SIZE/],
    [[...OK, "--avail-switchover-bandwidth", "0"], /must be more than zero/],
  ])("%j", async (args, why) => {
    const r = await predict(args as string[]);
    expect(r.code, r.err).toBe(2);
    expect(r.err).toMatch(why);
    expect(r.err.trim().split("\n")).toHaveLength(1);
  });
});

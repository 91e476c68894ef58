import { describe, expect, it } from "vitest";
import { handleError, run } from "../src/cli.ts";
import { CheckFailedError, ExitError, UsageError } from "../src/errors.ts";
import { Output } from "../src/output.ts";
import { captureIo } from "./capture-io.ts";

describe("handleError: the one place errors become exit codes", () => {
  class VfioError extends Error {
    override name = "VfioError";
  }
  class IoctlError extends VfioError {
    override name = "IoctlError";
  }
  class InternalError extends VfioError {
    override name = "InternalError";
  }
  class InvalidInputError extends VfioError {
    override name = "InvalidInputError";
  }

  it.each([
    [new UsageError("--x 'y': bad; use z"), 2, /^vfio-dirty: --x 'y': bad; use z\n$/],
    [new CheckFailedError("3 pages lost"), 3, /^vfio-dirty: 3 pages lost\n$/],
    [new ExitError("", 1), 1, /^$/],
    [
      new IoctlError("VFIO_DEVICE_FEATURE (device 0000:00:03.0 fd 7): EIO (5): lost"),
      1,
      /^vfio-dirty: VFIO_DEVICE_FEATURE .*EIO/,
    ],
    [new InvalidInputError("profile.devices[0].bdf: not a PCI address"), 2, /profile\.devices\[0\]/],
    [Object.assign(new Error("write EPIPE"), { code: "EPIPE" }), 1, /^vfio-dirty: write EPIPE\n$/],
  ])("%s -> exit %d", (err, code, stderr) => {
    const c = captureIo();
    expect(handleError(err, {}, c.io)).toBe(code);
    expect(c.err()).toMatch(stderr);
  });

  it("asks for a bug report on InternalError and on unexpected errors, with the stack", () => {
    for (const err of [new InternalError("window overlap"), new TypeError("x is undefined")]) {
      const c = captureIo();
      expect(handleError(err, {}, c.io)).toBe(1);
      expect(c.err()).toMatch(/internal error: .*\nThis is a bug in vfio-dirty; please report it/);
      expect(c.err()).toMatch(/\n\s+at /);
    }
  });

  it("shows the stack and causes of a known error only with --debug", () => {
    const err = new UsageError("bad", { cause: new Error("root cause") });
    const quiet = captureIo();
    handleError(err, {}, quiet.io);
    expect(quiet.err()).toBe("vfio-dirty: bad\n");
    const debug = captureIo();
    handleError(err, { debug: true }, debug.io);
    expect(debug.err()).toMatch(/Caused by: Error: root cause/);
  });
});

describe("run", () => {
  it("prints the version", async () => {
    const c = captureIo();
    expect(await run(["--version"], c.io)).toBe(0);
    expect(c.out()).toMatch(/^\d+\.\d+\.\d+\n$/);
  });

  it("gives one stderr line and exit 2 for an unknown option", async () => {
    const c = captureIo();
    expect(await run(["predict", "--nope"], c.io)).toBe(2);
    expect(c.err()).toBe(
      "vfio-dirty: unknown option '--nope'; see --help for the options this command takes\n",
    );
    expect(c.out()).toBe("");
  });

  it("prints one JSON document for predict --json", async () => {
    const c = captureIo();
    const code = await run(
      ["predict", "--dirty-rate", "100M/s", "--ram", "4G", "--bandwidth", "1G/s", "--json"],
      c.io,
    );
    expect(code).toBe(0);
    const doc = JSON.parse(c.out());
    expect(doc).toMatchObject({
      command: "predict",
      converges: true,
      input: { ramBytes: 4 * 2 ** 30, bandwidth: 2 ** 30 },
    });
  });

  it("lists the shipped profiles and workload kinds in --help, and no repository path", async () => {
    for (const args of [[], ["probe"], ["track"]]) {
      const c = captureIo();
      expect(await run([...args, "--help"], c.io)).toBe(0);
      expect(c.out()).toMatch(
        /Simulated hosts \(--host sim:<name>, default mlx5-vf\): edu-logging, edu-type1,\s+gpu-iommufd, guest-16tib/,
      );
      expect(c.out()).toMatch(/idle, hot-set, ring, uniform, bursts/);
      expect(c.out()).not.toMatch(/packages\//);
    }
  });

  it("exits 1 after the help when no command is given, as git does", async () => {
    for (const args of [[], ["bitmap"]]) {
      const c = captureIo();
      expect(await run(args, c.io)).toBe(1);
      expect(c.err()).toMatch(/^Usage: vfio-dirty/);
    }
  });

  it("has help with examples on every command", async () => {
    for (const args of [
      [],
      ["probe"],
      ["track"],
      ["predict"],
      ["bitmap"],
      ["bitmap", "stats"],
      ["bitmap", "convert"],
      ["bitmap", "merge"],
      ["bitmap", "translate"],
      ["bitmap", "render"],
    ]) {
      const c = captureIo();
      expect(await run([...args, "--help"], c.io)).toBe(0);
      expect(c.out()).toMatch(/Examples?:\n\s+\$ vfio-dirty/);
    }
  });
});

describe("Output", () => {
  const make = (o: { json?: boolean; quiet?: boolean; tty?: boolean; env?: NodeJS.ProcessEnv }) => {
    const c = captureIo({ tty: o.tty, env: o.env });
    const out = new Output({
      json: !!o.json,
      quiet: !!o.quiet,
      stdout: c.io.stdout,
      stderr: c.io.stderr,
      env: o.env ?? {},
    });
    return { out, c };
  };

  it("draws the live line only on a terminal, and never under --json or --quiet", () => {
    for (const [opts, live] of [
      [{ tty: true }, true],
      [{ tty: false }, false],
      [{ tty: true, json: true }, false],
      [{ tty: true, quiet: true }, false],
    ] as const) {
      const { out, c } = make(opts);
      out.liveLine("sync 1");
      out.result("done");
      expect(c.out().includes("\x1b[")).toBe(live);
    }
  });

  it("colours only on a terminal without NO_COLOR", () => {
    expect(make({ tty: true }).out.color.red("x")).not.toBe("x");
    expect(make({ tty: true, env: { NO_COLOR: "1" } }).out.color.red("x")).toBe("x");
    expect(make({ tty: false }).out.color.red("x")).toBe("x");
  });

  it("keeps info out of --quiet and everything human out of --json", () => {
    const q = make({ quiet: true });
    q.out.info("host: sim");
    q.out.result("result");
    expect(q.c.out()).toBe("result\n");
    const j = make({ json: true });
    j.out.info("host: sim");
    j.out.result("result");
    j.out.document({ a: 1n });
    expect(JSON.parse(j.c.out())).toEqual({ a: "1" });
    expect(() => j.out.document({})).toThrow(/two JSON documents/);
  });
});

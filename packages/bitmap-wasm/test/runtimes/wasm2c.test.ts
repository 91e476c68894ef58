// The same build/bitmap.wasm outside any JavaScript engine: wasm2c turns it into C, the system's cc
// compiles that with a small replay program (wasm2c/abi-replay.c), and the program replays the raw-ABI
// check that Node, Bun, Deno and Chromium run (abi-check.js), recorded here in Node as a trace of
// calls and memory accesses. Every answer and every byte read must be what Node got, and Node's own
// run must pass against the reference model, so the C build passes the very same checks.
//
// The wasm2c toolchain is an install step (scripts/fetch-wasm2c.sh; CI's .ci/run runs it): this test
// only asks for it with --installed and never touches the network.
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AbiTraceEntry, checkAbi } from "./abi-check.js";

const here = dirname(fileURLToPath(import.meta.url));
const packageRoot = join(here, "..", "..");
const wasmPath = join(packageRoot, "build", "bitmap.wasm");
const toolchain = locateWasm2c();

describe.skipIf(!toolchain.ok)(
  toolchain.ok
    ? `raw ABI of build/bitmap.wasm through wasm2c (${toolchain.dir})`
    : `raw ABI through wasm2c: SKIPPED, ${toolchain.reason}`,
  () => {
    let work = "";
    let replay = "";
    let trace: AbiTraceEntry[] = [];

    beforeAll(async () => {
      if (!existsSync(wasmPath)) throw new Error(`${wasmPath} is missing: run npm run build first`);
      const result = await checkAbi(readFileSync(wasmPath), { trace });
      // The trace is only worth replaying if Node's run of it passed against the model.
      expect(result.failures).toEqual([]);
      work = mkdtempSync(join(tmpdir(), "bitmap-wasm2c-"));
      replay = buildReplay(toolchain.dir!, work);
    });
    afterAll(() => {
      if (work) rmSync(work, { recursive: true, force: true });
      trace = [];
    });

    it("replays every call and memory access of the ABI check with Node's answers", async () => {
      const file = join(work, "trace.txt");
      writeFileSync(file, traceText(trace));
      const r = await runReplay(replay, file);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.result).toEqual({
        calls: trace.filter((e) => e[0] === "call").length,
        writes: trace.filter((e) => e[0] === "write").length,
        reads: trace.filter((e) => e[0] === "read").length,
        mismatches: 0,
      });
      expect(r.result!.calls).toBeGreaterThan(500);
    });

    it("notices an answer or a byte that differs from Node's (the replay can fail)", async () => {
      const lastOf = (want: (e: AbiTraceEntry) => boolean) =>
        trace.reduce((found, e, i) => (want(e) ? i : found), -1);
      const lastCount = lastOf((e) => e[0] === "call" && e[1] === "bitmap_count");
      const lastRead = lastOf((e) => e[0] === "read");
      const bad = trace.map((e, i): AbiTraceEntry => {
        if (i === lastCount && e[0] === "call") return ["call", e[1], e[2], (e[3] as bigint) + 1n];
        if (i === lastRead && e[0] === "read")
          return ["read", e[1], e[2].map((b, k) => (k === 0 ? b ^ 1 : b))];
        return e;
      });
      const file = join(work, "bad-trace.txt");
      writeFileSync(file, traceText(bad));
      const r = await runReplay(replay, file);
      expect(r.code).toBe(1);
      expect(r.result?.mismatches).toBe(2);
      expect(r.stderr).toMatch(/bitmap_count returned \d+, Node saw \d+/);
      expect(r.stderr).toMatch(/bytes at \d+ differ from what Node read/);
    });
  },
);

// --- Internal helpers ---

function locateWasm2c(): { ok: boolean; dir?: string; reason?: string } {
  try {
    const out = execFileSync("sh", [join(packageRoot, "scripts", "fetch-wasm2c.sh"), "--installed"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 30_000,
    });
    return { ok: true, dir: out.trim().split("\n").pop()! };
  } catch {
    return { ok: false, reason: "no wasm2c with SIMD: run packages/bitmap-wasm/scripts/fetch-wasm2c.sh" };
  }
}

/** wasm2c, then cc: the generated C, the wasm2c runtime and the replay program into one binary. */
function buildReplay(dir: string, work: string): string {
  const c = join(work, "bitmap.c");
  execFileSync(join(dir, "bin", "wasm2c"), [wasmPath, "-n", "bitmap", "-o", c], { stdio: "pipe" });
  const exe = join(work, "abi-replay");
  execFileSync(
    "cc",
    [
      "-O1",
      "-std=gnu11",
      // The bindings in abi-replay.c must match the signatures wasm2c generated.
      "-Werror=incompatible-pointer-types",
      "-I",
      work,
      "-I",
      join(dir, "include"),
      join(here, "wasm2c", "abi-replay.c"),
      c,
      join(dir, "src", "wasm-rt-impl.c"),
      join(dir, "src", "wasm-rt-mem-impl.c"),
      "-lm",
      "-o",
      exe,
    ],
    { stdio: "pipe" },
  );
  return exe;
}

/** The trace as abi-replay.c reads it: `c NAME NARGS ARGS... RESULT`, `w PTR HEX`, `r PTR HEX`. */
function traceText(trace: readonly AbiTraceEntry[]): string {
  const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
  const lines = trace.map((e) =>
    e[0] === "call"
      ? `c ${e[1]} ${e[2].length} ${e[2].map(String).join(" ")} ${String(e[3])}`.replace(/ {2}/g, " ")
      : `${e[0] === "write" ? "w" : "r"} ${e[1]} ${hex(e[2])}`,
  );
  return `${lines.join("\n")}\n`;
}

interface ReplayOutcome {
  code: number;
  stderr: string;
  result: { calls: number; writes: number; reads: number; mismatches: number } | undefined;
}

function runReplay(exe: string, traceFile: string): Promise<ReplayOutcome> {
  return new Promise((resolve) => {
    execFile(exe, [traceFile], { timeout: 120_000 }, (err, stdout, stderr) => {
      const m = /WASM2C_ABI_RESULT calls=(\d+) writes=(\d+) reads=(\d+) mismatches=(\d+)/.exec(stdout);
      resolve({
        code: err ? ((err as { code?: number }).code ?? -1) : 0,
        stderr,
        result: m
          ? { calls: Number(m[1]), writes: Number(m[2]), reads: Number(m[3]), mismatches: Number(m[4]) }
          : undefined,
      });
    });
  });
}

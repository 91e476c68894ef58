// The same build/bitmap.wasm, checked over its raw ABI (abi-check.js: no AssemblyScript glue) in every
// engine we promise: Node (in this process), Bun and Deno (their npm packages' binaries) and headless
// Chromium (Debian's chromium-headless-shell; the wasm is embedded in the page because file:// fetch
// is blocked, and the result is read back from --dump-dom). Each runtime must report zero failures
// and exactly as many checks as Node made, so a runtime that stopped early cannot pass.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { type AbiCheckResult, checkAbi } from "./abi-check.js";

const here = dirname(fileURLToPath(import.meta.url));
const packageRoot = join(here, "..", "..");
const wasmPath = join(packageRoot, "build", "bitmap.wasm");
const TIMEOUT_MS = 60_000;

let nodeChecks = 0;

beforeAll(async () => {
  if (!existsSync(wasmPath)) throw new Error(`${wasmPath} is missing: run npm run build first`);
});

describe("raw ABI of build/bitmap.wasm", () => {
  it("passes in Node (this process)", async () => {
    const result = await checkAbi(readFileSync(wasmPath));
    expect(result.failures).toEqual([]);
    expect(result.ok).toBe(true);
    expect(result.checks).toBeGreaterThan(100);
    nodeChecks = result.checks;
  });

  it.each([
    ["Bun", ["--no-install", "bun", join(here, "run-check.js"), wasmPath]],
    ["Deno", ["--no-install", "deno", "run", "--allow-read", join(here, "run-check.js"), wasmPath]],
  ])(
    "passes in %s",
    async (_name, args) => {
      const { stdout } = await run("npx", args, { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" });
      expectSameAsNode(parseResult(stdout));
    },
    TIMEOUT_MS,
  );

  const chromium = findChromium();
  it.skipIf(!chromium)(
    chromium
      ? `passes in headless Chromium (${chromium})`
      : "passes in headless Chromium: SKIPPED, no chromium-headless-shell or chromium on PATH (apt-get install chromium-headless-shell)",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "bitmap-wasm-chromium-"));
      try {
        const page = join(dir, "check.html");
        writeFileSync(
          page,
          checkPage(readFileSync(join(here, "abi-check.js"), "utf8"), readFileSync(wasmPath)),
        );
        const { stdout } = await run(chromium!, [
          "--no-sandbox",
          "--headless",
          "--disable-gpu",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--no-first-run",
          `--user-data-dir=${join(dir, "profile")}`,
          // Let the page's async instantiate and checks finish before the DOM is dumped.
          "--virtual-time-budget=30000",
          "--dump-dom",
          `file://${page}`,
        ]);
        const m = /<pre id="result">ABI_CHECK_RESULT ([^<]*)<\/pre>/.exec(stdout);
        if (!m) throw new Error(`no result in Chromium's DOM dump:\n${stdout.slice(0, 2000)}`);
        expectSameAsNode(JSON.parse(decodeURIComponent(m[1]!)) as AbiCheckResult);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    TIMEOUT_MS,
  );
});

// --- Internal helpers ---

function expectSameAsNode(result: AbiCheckResult): void {
  expect(result.failures).toEqual([]);
  expect(result.ok).toBe(true);
  expect(nodeChecks).toBeGreaterThan(0);
  expect(result.checks).toBe(nodeChecks);
}

/** The check as one self-contained page: abi-check.js inlined (exports dropped), the wasm as base64. */
function checkPage(checkSource: string, wasm: Buffer): string {
  const script = checkSource.replace(/^export /gm, "");
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>bitmap-wasm raw ABI check</title></head>
<body><pre id="result">PENDING</pre>
<script type="module">
${script}
const bytes = Uint8Array.from(atob("${wasm.toString("base64")}"), (c) => c.charCodeAt(0));
let result;
try {
  result = await checkAbi(bytes);
} catch (err) {
  result = { ok: false, checks: 0, failures: ["threw: " + String(err && err.stack || err)] };
}
document.getElementById("result").textContent = "ABI_CHECK_RESULT " + encodeURIComponent(JSON.stringify(result));
</script></body></html>
`;
}

function parseResult(stdout: string): AbiCheckResult {
  const line = stdout.split("\n").find((l) => l.startsWith("ABI_CHECK_RESULT "));
  if (!line) throw new Error(`no ABI_CHECK_RESULT line in:\n${stdout.slice(0, 2000)}`);
  return JSON.parse(line.slice("ABI_CHECK_RESULT ".length)) as AbiCheckResult;
}

/** Runs a command; resolves with stdout even on a non-zero exit, so the parsed failures get reported. */
function run(
  cmd: string,
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<{ stdout: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { cwd: packageRoot, env: { ...process.env, ...env }, timeout: TIMEOUT_MS - 5000, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        if (err && !stdout.includes("ABI_CHECK_RESULT")) {
          reject(new Error(`${cmd} ${args.join(" ")} failed: ${err.message}\n${stderr.slice(0, 2000)}`));
        } else {
          resolve({ stdout });
        }
      },
    );
  });
}

function findChromium(): string | undefined {
  const names = ["chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"];
  const dirs = (process.env.PATH ?? "").split(delimiter).filter(Boolean);
  for (const name of names) {
    for (const dir of dirs) {
      const candidate = join(dir, name);
      if (existsSync(candidate)) return candidate;
    }
  }
  return undefined;
}

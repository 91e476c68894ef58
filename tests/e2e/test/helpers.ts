// Running the built CLI (packages/cli/dist/bin.js) as a subprocess, the way users run it.

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = fileURLToPath(new URL("../../..", import.meta.url));
export const CLI = join(REPO, "packages/cli/dist/bin.js");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `vfio-dirty ...args` to completion. NO_COLOR is set unless `env` overrides it. */
export function cli(
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      {
        cwd: opts.cwd ?? REPO,
        env: cleanEnv({ NO_COLOR: "1", ...opts.env }),
        maxBuffer: 64 << 20,
        encoding: "utf8",
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Runs the CLI and parses its stdout as the one JSON document of a --json run. */
export async function cliJson<T = Record<string, unknown>>(
  args: readonly string[],
): Promise<CliResult & { doc: T }> {
  const r = await cli([...args, "--json"]);
  let doc: T;
  try {
    doc = JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`stdout is not one JSON document (exit ${r.code}):\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
  return { ...r, doc };
}

/**
 * The test process's environment with `over` applied, without FORCE_COLOR unless `over` sets it:
 * by Node's convention any FORCE_COLOR value but "0"/"false" (even "") forces colour.
 */
export function cleanEnv(over: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const { FORCE_COLOR: _, ...env } = process.env;
  return { ...env, ...over };
}

/** Starts the CLI without waiting (for signals). */
export function startCli(args: readonly string[]): ChildProcess {
  return spawn(process.execPath, [CLI, ...args], {
    cwd: REPO,
    env: cleanEnv({ NO_COLOR: "1" }),
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** A fresh temporary directory, removed by the returned function. */
export function tempDir(prefix = "vfio-dirty-e2e-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
// ajv is CommonJS; createRequire sidesteps default-export interop differences.
const Ajv = require("ajv") as typeof import("ajv").default;
const ajv = new Ajv({ allErrors: true, strict: true });

/** Validates a --json document against packages/cli/schemas/<name>.schema.json; throws listing every error. */
export function expectShape(name: string, doc: unknown): void {
  const schema = JSON.parse(readFileSync(join(REPO, "packages/cli/schemas", `${name}.schema.json`), "utf8"));
  const validate = ajv.getSchema(schema.$id) ?? ajv.compile(schema);
  if (!validate(doc))
    throw new Error(
      `${name}: document does not match its schema:\n${ajv.errorsText(validate.errors, { separator: "\n" })}`,
    );
}

/** The shipped simulator profiles (every command is run on each). */
export function shippedProfiles(): string[] {
  return readdirSync(join(REPO, "packages/vfio-adapter/sim/profiles"))
    .filter((f) => f.endsWith(".json"))
    .map((f) => f.slice(0, -5))
    .sort();
}

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

/** A shipped schema, as users get it. */
export function shippedSchema(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(REPO, "packages/cli/schemas", `${name}.schema.json`), "utf8"));
}

/**
 * The schema with every object closed (`additionalProperties: false`): the shipped schemas let
 * consumers ignore fields added later, but our own documents must hold only documented fields.
 */
export function closedSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(closedSchema);
  if (typeof node !== "object" || node === null) return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node))
    out[k] = k === "properties" ? mapValues(v, closedSchema) : closedSchema(v);
  if ("properties" in node && !("additionalProperties" in node)) out.additionalProperties = false;
  return out;
}

function mapValues(o: unknown, f: (v: unknown) => unknown): unknown {
  return Object.fromEntries(Object.entries(o as Record<string, unknown>).map(([k, v]) => [k, f(v)]));
}

/**
 * Validates a --json document against packages/cli/schemas/<name>.schema.json, closed (no
 * undocumented field); throws listing every error.
 */
export function expectShape(name: string, doc: unknown): void {
  const schema = closedSchema(shippedSchema(name)) as { $id: string };
  const id = `${schema.$id}#closed`;
  if (!ajv.getSchema(id)) ajv.addSchema({ ...schema, $id: id });
  const validate = ajv.getSchema(id)!;
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

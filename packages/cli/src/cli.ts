// The vfio-dirty program: commander wiring, global options and the one place where errors
// become messages and exit codes (cf. changesets packages/cli/src/index.ts).
//
//   const code = await run(["probe", "--host", "sim", "--json"], io);
//
// Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 blocker found / lost-pages check failed.

import { readdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, CommanderError, Option } from "commander";
import { bitmapCommand } from "./commands/bitmap.ts";
import { checkCommand } from "./commands/check.ts";
import { predictCommand } from "./commands/predict.ts";
import { probeCommand } from "./commands/probe.ts";
import { trackCommand } from "./commands/track.ts";
import type { Context, GlobalOptions, Io } from "./context.ts";
import { EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, ExitError } from "./errors.ts";
import { wrapText } from "./format/wrap.ts";
import { DEFAULT_PROFILE } from "./host.ts";
import { SIM_WORKLOADS } from "./host-open.ts";
import { Output } from "./output.ts";

export const PROGRAM = "vfio-dirty";

/** The version in packages/cli/package.json (one level above src/ and dist/). */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

/** Runs the program with `argv` (arguments only, no node/script) and returns the exit code. */
export async function run(argv: readonly string[], io: Io): Promise<number> {
  let globals: GlobalOptions = { debug: argv.includes("--debug") };
  const program = buildProgram(io, (g) => {
    globals = g;
  });
  try {
    await program.parseAsync([...argv], { from: "user" });
    return EXIT_OK;
  } catch (err) {
    return handleError(err, globals, io);
  }
}

/**
 * The commander tree. Each command's action receives a Context built from the global options;
 * `onGlobals` hands those options back so errors are reported with --debug honoured.
 */
export function buildProgram(io: Io, onGlobals: (g: GlobalOptions) => void): Command {
  const program = new Command(PROGRAM)
    .description("Dirty-page tracking toolkit for VFIO live migration")
    .version(version(), "-V, --version", "print the version and exit")
    .addOption(
      new Option("--host <host>", "linux | sim | sim:<profile name or path to profile JSON>").default(
        undefined,
        "linux when /dev/vfio exists, else sim",
      ),
    )
    .option("--json", "print one JSON document on stdout and nothing else")
    .option("-q, --quiet", "print results only: no host line, no live line, no notes")
    .option("--debug", "show stack traces on errors")
    .showSuggestionAfterError(true)
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .addHelpText(
      "after",
      `
Examples:
  $ vfio-dirty probe --host sim                       what tracking the simulated host offers
  $ vfio-dirty track --host sim --duration 10s        track the simulated devices for 10 s
  $ vfio-dirty predict --dirty-rate 200M/s --ram 16G --bandwidth 10Gbit/s
  $ vfio-dirty bitmap stats dirty.bin --page-size 4K
  $ vfio-dirty check --host sim:mlx5-vf               the conformance suite for a DMA-logging driver

Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 blocker found or lost-pages check failed,
130/143 a track stopped by SIGINT/SIGTERM (after writing its report).
Colours: only on a terminal; NO_COLOR turns them off, FORCE_COLOR=1 on (0 off), as in Node.
--json documents: JSON Schemas shipped in @vfio-dirty/cli/schemas/<command>.schema.json.
`,
    )
    // Listed when help is shown, so they are always the installed package's.
    .addHelpText("after", () => simHelp());
  configure(program, io);

  const makeContext = (cmd: Command): Context => {
    const g = cmd.optsWithGlobals() as GlobalOptions;
    const globals: GlobalOptions = { host: g.host, json: !!g.json, quiet: !!g.quiet, debug: !!g.debug };
    onGlobals(globals);
    const out = new Output({
      json: globals.json === true,
      quiet: globals.quiet === true,
      stdout: io.stdout,
      stderr: io.stderr,
      env: io.env,
    });
    return { globals, out, io };
  };

  for (const cmd of [probeCommand(makeContext), trackCommand(makeContext), predictCommand(makeContext)])
    program.addCommand(cmd);
  program.addCommand(checkCommand(makeContext));
  program.addCommand(bitmapCommand(makeContext, (c) => configure(c, io)));
  // addCommand does not copy settings: apply ours to every command in the tree.
  const walk = (c: Command): void => {
    configure(c, io);
    c.configureHelp({ showGlobalOptions: true });
    c.commands.forEach(walk);
  };
  walk(program);
  // The commands that take --host list what it can be.
  for (const c of program.commands)
    if (c.name() === "probe" || c.name() === "track") c.addHelpText("after", () => `\n${simHelp()}`);
  return program;
}

/**
 * Turns any error into an exit code, printing at most one line on stderr (plus a stack with
 * --debug). The only place in the CLI that decides how an error looks.
 */
export function handleError(err: unknown, globals: GlobalOptions, io: Io): number {
  const say = (line: string) => io.stderr.write(`${PROGRAM}: ${line}\n`);
  const stack = () => {
    if (globals.debug && err instanceof Error && err.stack) io.stderr.write(`${fullStack(err)}\n`);
  };
  if (err instanceof CommanderError) {
    if (err.code === "commander.helpDisplayed" || err.code === "commander.version") return EXIT_OK;
    // Help shown because no command was given (`vfio-dirty`, `vfio-dirty bitmap`): exit 1, as git does.
    if (err.code === "commander.help") return err.exitCode;
    if (err.exitCode === 0) return EXIT_OK;
    say(
      `${err.message
        .replace(/^error: /, "")
        .replace(/\s*\n\s*/g, " ")
        .trim()}${commanderHint(err)}`,
    );
    return EXIT_USAGE;
  }
  if (err instanceof ExitError) {
    if (err.message) say(err.message);
    stack();
    return err.exitCode;
  }
  const name = err instanceof Error ? err.name : "";
  if (name === "InternalError" || !(err instanceof Error) || !isKnownError(err)) {
    const message = err instanceof Error ? err.message : String(err);
    say(`internal error: ${message}`);
    io.stderr.write(
      `This is a bug in vfio-dirty; please report it with the command you ran and the output of --debug.\n`,
    );
    if (err instanceof Error && err.stack) io.stderr.write(`${fullStack(err)}\n`);
    return EXIT_RUNTIME;
  }
  if (name === "InvalidInputError") {
    say(err.message);
    stack();
    return EXIT_USAGE;
  }
  say(err.message);
  stack();
  return EXIT_RUNTIME;
}

// --- Internal helpers ---

/** The simulated hosts and workloads, for --help: the profile files the adapter ships. */
function simHelp(): string {
  let profiles: string[];
  try {
    const dir = dirname(
      fileURLToPath(import.meta.resolve("@vfio-dirty/vfio-adapter/sim/profiles/mlx5-vf.json")),
    );
    profiles = readdirSync(dir)
      .filter((f) => f.endsWith(".json"))
      .map((f) => f.slice(0, -5))
      .sort();
  } catch {
    profiles = [DEFAULT_PROFILE];
  }
  return [
    wrapText(
      `Simulated hosts (--host sim:<name>, default ${DEFAULT_PROFILE}): ${profiles.join(", ")}.`,
      80,
      "  ",
    ),
    wrapText(
      `Simulated workloads (track --workload): ${SIM_WORKLOADS.join(", ")}, or a trace .json {"events": [{"atMs", "iova", "length"}], "loopMs"}.`,
      80,
      "  ",
    ),
    "",
  ].join("\n");
}

function configure(cmd: Command, io: Io): void {
  cmd.exitOverride().configureOutput({
    writeOut: (s) => void io.stdout.write(s),
    writeErr: (s) => void io.stderr.write(s),
    // handleError prints the one line; commander's own copy would be a second one.
    outputError: () => {},
  });
}

/**
 * Errors whose message is written for users: the adapter's VfioError family, bitmap-wasm's
 * BitmapError, the tracker's errors, and Node system errors (EPIPE, ENOSPC on a write). Anything
 * else (TypeError, RangeError ...) is a bug in vfio-dirty.
 */
function isKnownError(err: Error): boolean {
  for (let p = Object.getPrototypeOf(err); p && p !== Error.prototype; p = Object.getPrototypeOf(p)) {
    const n = (p.constructor as { name?: string }).name ?? "";
    if (n === "VfioError" || n === "BitmapError" || n === "TrackerError") return true;
  }
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && /^E[A-Z]+$/.test(code);
}

function commanderHint(err: CommanderError): string {
  if (err.code === "commander.unknownOption" || err.code === "commander.excessArguments")
    return "; see --help for the options this command takes";
  if (err.code === "commander.missingArgument" || err.code === "commander.optionMissingArgument")
    return "; see --help for what to give";
  if (err.code === "commander.unknownCommand") return "; run 'vfio-dirty --help' for the commands";
  if (err.code === "commander.missingMandatoryOptionValue") return "; see --help for an example";
  return "";
}

function fullStack(err: Error): string {
  let s = err.stack ?? String(err);
  for (let c = err.cause; c instanceof Error; c = c.cause) s += `\nCaused by: ${c.stack ?? c.message}`;
  return s;
}

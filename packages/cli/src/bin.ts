#!/usr/bin/env node
// The `vfio-dirty` executable: wires the real process into run() and exits with its code.
// Ctrl-C / SIGTERM abort the signal commands watch, so `track` stops tracking and still writes
// its report; a second Ctrl-C exits at once, after stopping what is still running (the guard).

import { run } from "./cli.ts";
import { ExitGuard } from "./exit-guard.ts";

const controller = new AbortController();
const guard = new ExitGuard();
let interrupts = 0;

/** Exit now, stopping first whatever a command registered; says so on stderr. */
function forcedExit(code: number, why: string): never {
  const lines = guard.runAll();
  if (lines.length > 0)
    process.stderr.write(`vfio-dirty: ${why}: ${lines.join("; ")}; exiting without a report\n`);
  process.exit(code);
}

const onSignal = (sig: NodeJS.Signals) => {
  interrupts++;
  if (interrupts > 1) forcedExit(sig === "SIGINT" ? 130 : 143, `second ${sig}`);
  controller.abort(sig);
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);
// `vfio-dirty ... | head` closes the pipe early: that is the reader's choice, not an error.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") forcedExit(Number(process.exitCode ?? 0), "stdout closed");
  throw err;
});

const code = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  signal: controller.signal,
  onForcedExit: (what, stop) => guard.register(what, stop),
});
process.exitCode = code;

#!/usr/bin/env node
// The `vfio-dirty` executable: wires the real process into run() and exits with its code.
// Ctrl-C / SIGTERM abort the signal commands watch, so `track` stops tracking and still writes
// its report; a second Ctrl-C exits at once.

import { run } from "./cli.ts";

const controller = new AbortController();
let interrupts = 0;
const onSignal = (sig: NodeJS.Signals) => {
  interrupts++;
  if (interrupts > 1) process.exit(sig === "SIGINT" ? 130 : 143);
  controller.abort(sig);
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);
// `vfio-dirty ... | head` closes the pipe early: that is the reader's choice, not an error.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw err;
});

const code = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  signal: controller.signal,
});
process.exitCode = code;

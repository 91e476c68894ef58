import { Command } from "commander";
import type { Context } from "../context.ts";
import { ExitError } from "../errors.ts";

export function trackCommand(makeContext: (cmd: Command) => Context): Command {
  return new Command("track").action((_o, cmd: Command) => {
    makeContext(cmd);
    throw new ExitError("track: waiting for the tracker", 1);
  });
}

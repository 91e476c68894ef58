import { Command } from "commander";
import type { Context } from "../context.ts";
import { ExitError } from "../errors.ts";

export function probeCommand(makeContext: (cmd: Command) => Context): Command {
  return new Command("probe").action((_o, cmd: Command) => {
    makeContext(cmd);
    throw new ExitError("probe: waiting for the tracker", 1);
  });
}

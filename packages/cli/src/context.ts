// What every command's action receives: the global options, the output, the process's streams
// and a signal that fires on Ctrl-C / SIGTERM. Commands never touch `process` directly, so the
// unit tests run them in-process with captured streams.

import type { Output } from "./output.ts";

/** Options every command accepts (defined once, on the program). */
export interface GlobalOptions {
  /** "linux" | "sim" | "sim:<profile name or path>"; undefined = auto. */
  host?: string;
  json?: boolean;
  quiet?: boolean;
  debug?: boolean;
}

export interface Io {
  /** `columns`: the terminal width (undefined for a pipe); `hasColors`: a tty.WriteStream's. */
  stdout: {
    write(s: string): boolean;
    isTTY?: boolean;
    columns?: number;
    hasColors?: (env?: object) => boolean;
  };
  stderr: { write(s: string): boolean };
  env: NodeJS.ProcessEnv;
  /** Fires on SIGINT/SIGTERM: a long-running command stops cleanly and still writes its report. */
  signal: AbortSignal;
  /**
   * Register what must be stopped even if the process is forced to exit (a second Ctrl-C, stdout
   * closed); returns the call that unregisters it once the normal path has stopped it.
   */
  onForcedExit?: (what: string, stop: () => void) => () => void;
}

export interface Context {
  globals: GlobalOptions;
  out: Output;
  io: Io;
}

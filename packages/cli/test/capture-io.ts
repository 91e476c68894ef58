// In-process streams for running commands in tests: what they wrote, and the Io they wrote it to.

import type { Io } from "../src/context.ts";

export function captureIo(
  opts: {
    tty?: boolean;
    columns?: number;
    env?: NodeJS.ProcessEnv;
    onForcedExit?: Io["onForcedExit"];
    signal?: AbortSignal;
    /** Sees each stdout write as it happens (to act in the middle of a run). */
    onStdout?: (s: string) => void;
  } = {},
) {
  let stdout = "";
  let stderr = "";
  const io: Io = {
    stdout: {
      write: (s: string) => {
        stdout += s;
        opts.onStdout?.(s);
        return true;
      },
      isTTY: opts.tty ?? false,
      ...(opts.columns !== undefined ? { columns: opts.columns } : {}),
    },
    stderr: {
      write: (s: string) => {
        stderr += s;
        return true;
      },
    },
    env: opts.env ?? {},
    signal: opts.signal ?? new AbortController().signal,
    ...(opts.onForcedExit ? { onForcedExit: opts.onForcedExit } : {}),
  };
  return { io, out: () => stdout, err: () => stderr };
}

// In-process streams for running commands in tests: what they wrote, and the Io they wrote it to.

import type { Io } from "../src/context.ts";

export function captureIo(
  opts: { tty?: boolean; env?: NodeJS.ProcessEnv; onForcedExit?: Io["onForcedExit"] } = {},
) {
  let stdout = "";
  let stderr = "";
  const io: Io = {
    stdout: {
      write: (s: string) => {
        stdout += s;
        return true;
      },
      isTTY: opts.tty ?? false,
    },
    stderr: {
      write: (s: string) => {
        stderr += s;
        return true;
      },
    },
    env: opts.env ?? {},
    signal: new AbortController().signal,
    ...(opts.onForcedExit ? { onForcedExit: opts.onForcedExit } : {}),
  };
  return { io, out: () => stdout, err: () => stderr };
}

// CLI-local errors: each one carries the exit code the process ends with.
//
// Exit codes (documented in packages/cli/README.md, stable):
//   0 success · 1 runtime failure · 2 usage error · 3 blocker found / lost-pages check failed
// The one place that turns errors into messages and exit codes is `handleError` in cli.ts.

export const EXIT_OK = 0;
export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;
export const EXIT_CHECK = 3;

/** Ends the process with `exitCode`; the message (when not empty) is printed as one line on stderr. */
export class ExitError extends Error {
  override name = "ExitError";
  constructor(
    message: string,
    readonly exitCode: number,
    opts?: ErrorOptions,
  ) {
    super(message, opts);
  }
}

/**
 * A mistake the user can fix: a bad flag value, a missing file. The message names the problem
 * and the fix in one line ("--page-size '3K': not a power of two; use 4K, 64K, 2M ...").
 */
export class UsageError extends ExitError {
  override name = "UsageError";
  constructor(message: string, opts?: ErrorOptions) {
    super(message, EXIT_USAGE, opts);
  }
}

/** The run finished, but found a migration blocker or lost pages (exit 3). Output was already written. */
export class CheckFailedError extends ExitError {
  override name = "CheckFailedError";
  constructor(message: string, opts?: ErrorOptions) {
    super(message, EXIT_CHECK, opts);
  }
}

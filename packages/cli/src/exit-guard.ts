// Cleanups that must run even when the process exits at once: a second Ctrl-C, or stdout closed
// under us (EPIPE). The kernel would release our fds and so stop device logging anyway, but a
// tracking session we started is ours to stop, and the user should be told it was.
//
//   const guard = new ExitGuard();
//   const unregister = guard.register("tracking", () => backend.close());
//   ...                       // on a forced exit: guard.runAll() before process.exit()
//   unregister();             // the normal path closed it itself

export class ExitGuard {
  readonly #cleanups = new Map<symbol, { what: string; fn: () => void }>();

  /** Run `fn` (which stops `what`) if the process is forced to exit; returns the unregister call. */
  register(what: string, fn: () => void): () => void {
    const key = Symbol(what);
    this.#cleanups.set(key, { what, fn });
    return () => {
      this.#cleanups.delete(key);
    };
  }

  /** How many cleanups are registered (for tests and diagnostics). */
  get size(): number {
    return this.#cleanups.size;
  }

  /**
   * Run every registered cleanup once, newest first (what was opened last closes first); a cleanup
   * that throws does not keep the others from running. Returns one line per cleanup for stderr.
   */
  runAll(): string[] {
    const lines: string[] = [];
    for (const [key, { what, fn }] of [...this.#cleanups].reverse()) {
      this.#cleanups.delete(key);
      try {
        fn();
        lines.push(`${what} stopped`);
      } catch (err) {
        lines.push(`${what}: stopping failed (${err instanceof Error ? err.message : String(err)})`);
      }
    }
    return lines;
  }
}

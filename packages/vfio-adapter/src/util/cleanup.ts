// Undo in reverse: what was opened last closes first, as with nested try/finally.

/**
 * A stack of cleanup steps. `run()` pops and runs every step newest first, once; a step that
 * throws does not keep the older ones from running (best effort on the way out: the kernel
 * releases whatever is left when the process exits).
 */
export class CleanupStack {
  readonly #steps: (() => void)[] = [];

  /** Adds a step to run before every step already on the stack. */
  push(step: () => void): void {
    this.#steps.push(step);
  }

  /** How many steps are waiting. */
  get size(): number {
    return this.#steps.length;
  }

  /** Runs and removes every step, newest first; returns the errors the steps threw, oldest last. */
  run(): unknown[] {
    const errors: unknown[] = [];
    for (const step of this.#steps.splice(0).reverse()) {
      try {
        step();
      } catch (e) {
        errors.push(e);
      }
    }
    return errors;
  }
}

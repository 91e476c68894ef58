// Where a command's output goes, so that every command behaves the same way:
// - human lines go to stdout, unless --json (then stdout holds exactly one JSON document) or
//   --quiet (then only the result lines a command marks as such);
// - notes and warnings go to stderr, and --quiet drops the notes;
// - the live line is drawn only when stdout is a terminal, never under --json or --quiet, and it
//   is the only place that writes terminal control sequences;
// - colours follow NO_COLOR / FORCE_COLOR and are off when stdout is not a terminal.

import pc from "picocolors";

export type Colors = ReturnType<typeof pc.createColors>;

export interface OutputOptions {
  json: boolean;
  quiet: boolean;
  stdout: NodeJS.WriteStream | { write(s: string): boolean; isTTY?: boolean };
  stderr: { write(s: string): boolean };
  env: NodeJS.ProcessEnv;
}

export class Output {
  readonly json: boolean;
  readonly quiet: boolean;
  readonly color: Colors;
  /** True when the live line may be drawn (stdout is a terminal, no --json, no --quiet). */
  readonly live: boolean;
  #liveShown = false;
  #jsonWritten = false;

  constructor(private readonly opts: OutputOptions) {
    this.json = opts.json;
    this.quiet = opts.quiet;
    const tty = opts.stdout.isTTY === true;
    const env = opts.env;
    const colour = "NO_COLOR" in env && env.NO_COLOR !== "" ? false : env.FORCE_COLOR ? true : tty;
    this.color = pc.createColors(colour && !opts.json);
    this.live = tty && !opts.json && !opts.quiet;
  }

  /** An informational line (the host line, progress notes). Dropped by --json and --quiet. */
  info(line: string): void {
    if (this.json || this.quiet) return;
    this.#write(`${line}\n`);
  }

  /** A result line: printed unless --json. */
  result(line: string): void {
    if (this.json) return;
    this.#write(`${line}\n`);
  }

  /** A warning on stderr (kept under --json and --quiet: warnings must never be silent). */
  warn(line: string): void {
    this.clearLive();
    this.opts.stderr.write(`${this.color.yellow("warning:")} ${line}\n`);
  }

  /** The one JSON document of a --json run. */
  document(doc: unknown): void {
    if (!this.json) return;
    if (this.#jsonWritten) throw new Error("two JSON documents in one run");
    this.#jsonWritten = true;
    this.opts.stdout.write(`${JSON.stringify(doc, jsonReplacer, 2)}\n`);
  }

  /** Redraw the live line in place (terminals only). */
  liveLine(text: string): void {
    if (!this.live) return;
    this.opts.stdout.write(`\r\x1b[2K${text}`);
    this.#liveShown = true;
  }

  /** Remove the live line so that the next line starts clean. */
  clearLive(): void {
    if (!this.#liveShown) return;
    this.opts.stdout.write("\r\x1b[2K");
    this.#liveShown = false;
  }

  #write(s: string): void {
    this.clearLive();
    this.opts.stdout.write(s);
  }
}

/** bigint values become "0x..."-free decimal strings only where a caller did not convert them. */
export function jsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}

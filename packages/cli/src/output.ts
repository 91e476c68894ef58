// Where a command's output goes, so that every command behaves the same way:
// - human lines go to stdout, unless --json (then stdout holds exactly one JSON document) or
//   --quiet (then only the result lines a command marks as such);
// - notes and warnings go to stderr, and --quiet drops the notes;
// - the live line is drawn only when stdout is a terminal, never under --json or --quiet, and it
//   is the only place that writes terminal control sequences;
// - colours follow Node's convention (colorEnabled): FORCE_COLOR decides when set, else only a
//   terminal without NO_COLOR gets them.

import pc from "picocolors";
import type { Io } from "./context.ts";

export type Colors = ReturnType<typeof pc.createColors>;

export interface OutputOptions {
  json: boolean;
  quiet: boolean;
  stdout: Io["stdout"];
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
    this.color = pc.createColors(colorEnabled(opts.stdout, opts.env) && !opts.json);
    this.live = tty && !opts.json && !opts.quiet;
  }

  /** An informational line (the host line, progress notes). Dropped by --json and --quiet. */
  info(line: string): void {
    if (this.json || this.quiet) return;
    this.#write(`${line}\n`);
  }

  /**
   * A note on stderr (why a strategy was chosen, what the tracker noted, where files went):
   * dropped by --json and --quiet. On a terminal the live line is cleared first.
   */
  note(line: string): void {
    if (this.json || this.quiet) return;
    this.clearLive();
    this.opts.stderr.write(`${line}\n`);
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

/**
 * Whether to colour, by Node's convention (tty.WriteStream.hasColors): FORCE_COLOR decides when
 * set ("", "1", "true", "2", "3" force colour, even in a pipe; "0", "false" or anything else turn
 * it off); otherwise only a terminal gets colour, and not with NO_COLOR, NODE_DISABLE_COLORS or
 * TERM=dumb.
 */
export function colorEnabled(
  stdout: { isTTY?: boolean; hasColors?: (env?: object) => boolean },
  env: NodeJS.ProcessEnv,
): boolean {
  if (env.FORCE_COLOR !== undefined) return ["", "1", "true", "2", "3"].includes(env.FORCE_COLOR);
  if (stdout.isTTY !== true) return false;
  if (typeof stdout.hasColors === "function") return stdout.hasColors(env);
  return env.NO_COLOR === undefined && env.NODE_DISABLE_COLORS === undefined && env.TERM !== "dumb";
}

/** bigint values become "0x..."-free decimal strings only where a caller did not convert them. */
export function jsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}

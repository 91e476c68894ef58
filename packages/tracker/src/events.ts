// The tracker's event log: every decision that cost precision or could have lost a page (a failed
// read, a degradation, a fallback, an untracked mapping) is recorded with the unit, the errno and
// the kernel call or range it concerns. The modules of the tracker record through one log.

import type { IovaRange } from "./ranges.ts";
import type { TrackerEvent, TrackerEventKind } from "./strategy.ts";

/** Where an event happened: a range of IOVA or GPA space, or the kernel call that failed. */
export type EventAt = IovaRange | { call: string | undefined };

export class EventLog {
  /** Every event since creation. */
  readonly all: TrackerEvent[] = [];
  readonly #now: () => number;

  constructor(now: () => number) {
    this.#now = now;
  }

  record(kind: TrackerEventKind, unit: string, msg: string, errno?: number, at?: EventAt): void {
    const range = at && "iova" in at ? at : undefined;
    const call = at && "call" in at ? at.call : undefined;
    this.all.push({
      atMs: this.#now(),
      kind,
      unit,
      message: msg,
      ...(errno !== undefined ? { errno } : {}),
      ...(call !== undefined ? { call } : {}),
      ...(range ? { range: { iova: range.iova, length: range.length } } : {}),
    });
  }

  /** The events recorded since `mark` (a length of `all` taken earlier). */
  since(mark: number): TrackerEvent[] {
    return this.all.slice(mark);
  }
}

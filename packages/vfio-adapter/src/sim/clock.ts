// Time on the simulated host: a virtual clock tests advance explicitly, or the wall clock.
//
// Devices write guest memory as time passes. With the virtual clock nothing happens until a test
// calls advance(), so every run is exactly reproducible. With the wall clock (live CLI runs) the
// host catches up on the writes due before every syscall, so a tracker polling it sees DMA happen.
//
//   const clock = new SimClock("virtual");
//   clock.onAdvance((from, to) => engine.run(from, to));
//   clock.advanceMs(100);

/** Nanoseconds since the simulated host started. A number: 2^53 ns is 104 days. */
export type SimTime = number;

export type ClockMode = "virtual" | "wall";

export class SimClock {
  private current: SimTime = 0;
  private readonly listeners: ((from: SimTime, to: SimTime) => void)[] = [];
  private readonly wallStart = performance.now();

  constructor(readonly mode: ClockMode = "virtual") {}

  /** The current time in ns. On the wall clock this reads the time without running anything. */
  now(): SimTime {
    return this.current;
  }

  /** Registers work to do when time moves forward (the DMA engines). */
  onAdvance(fn: (from: SimTime, to: SimTime) => void): void {
    this.listeners.push(fn);
  }

  /** Moves virtual time forward by `ns` and runs everything due in between. */
  advance(ns: number): void {
    if (this.mode !== "virtual")
      throw new Error("advance() is for the virtual clock; the wall clock moves by itself");
    if (!Number.isFinite(ns) || ns < 0) throw new RangeError(`advance: ${ns} is not a non-negative duration`);
    this.moveTo(this.current + ns);
  }

  advanceMs(ms: number): void {
    this.advance(ms * 1e6);
  }

  /** Wall clock only: runs everything due up to the real time now. Called before every syscall. */
  catchUp(): void {
    if (this.mode !== "wall") return;
    this.moveTo(Math.floor((performance.now() - this.wallStart) * 1e6));
  }

  // --- Internal helpers ---

  private moveTo(to: SimTime): void {
    if (to <= this.current) return;
    const from = this.current;
    this.current = to;
    for (const fn of this.listeners) fn(from, to);
  }
}

// The unit set: the tracking units of one container and their lifecycle. start() with the
// fallback chain (decided per container, as QEMU does) or, without one, each refused unit
// degrading alone to all-dirty; restart after a failure (degrading when that fails too); stop,
// remembering STOPs that failed so that the final stop tries them again.

import type { EventLog } from "./events.ts";
import type { IovaRange } from "./ranges.ts";
import { MigrationBlockedError, type SelectionReason, type StrategyName } from "./select.ts";
import { AllDirtyStrategy } from "./strategies/all-dirty.ts";
import type { DirtyStrategy } from "./strategy.ts";
import { callOf, errnoOf, isKernelError, message } from "./tracker-helpers.ts";
import type { StartFallback, UnitConfig } from "./types.ts";

export interface Unit {
  readonly id: string;
  readonly devices: readonly string[];
  strategy: DirtyStrategy;
  /** The strategy configured, kept after a degradation to all-dirty for its kernel unmaps. */
  readonly origin: DirtyStrategy;
  readonly preCopy: boolean;
  /** Started in the kernel (so stop() must stop it). */
  running: boolean;
  /** Report everything this unit covers at the next sync (after a failure and restart). */
  allDirtyNext: boolean;
  /** Re-armed (or restarted by a refused re-arm) in this sync: keep allDirtyNext for the next. */
  rearmed: boolean;
}

export function toUnits(configs: readonly UnitConfig[]): Unit[] {
  return configs.map((u) => ({
    id: u.id,
    devices: u.devices,
    strategy: u.strategy,
    origin: u.strategy,
    preCopy: u.preCopy ?? true,
    running: false,
    allDirtyNext: false,
    rearmed: false,
  }));
}

export class UnitSet {
  /** Replaced as a whole when start() falls back to the next strategy. */
  units: Unit[];
  /** What tracking is started on (and restarted on): set before start(), moved by a re-arm. */
  startRanges: readonly IovaRange[];
  /** A unit was stopped (restart, re-arm, degradation, fallback): what its log sees may differ. */
  changed = false;
  readonly #events: EventLog;
  readonly #fallback: StartFallback | undefined;
  #blocked: MigrationBlockedError | undefined;
  /** Strategies whose STOP failed mid-session, by unit id: stop() tries them again, finally. */
  readonly #unstopped = new Map<DirtyStrategy, string>();

  constructor(
    configs: readonly UnitConfig[],
    startRanges: readonly IovaRange[],
    fallback: StartFallback | undefined,
    events: EventLog,
  ) {
    this.units = toUnits(configs);
    this.startRanges = startRanges;
    this.#fallback = fallback;
    this.#events = events;
  }

  /** Start every unit (see StartFallback), or throw: blocked, or an error that is not the kernel's. */
  start(): void {
    // A start that ended blocked stays blocked: the fallback chain was used up on the way.
    if (this.#blocked) throw this.#blocked;
    if (this.#fallback) this.#startWithFallback(this.#fallback);
    else this.#startDegrading();
  }

  /** Stop every unit, finally; then the STOPs that failed while tracking went on, a last time. */
  stopAll(running: boolean): void {
    if (running) for (const u of this.units) this.stopUnit(u, true);
    // STOPs that failed while tracking went on (a restart, a blocked start): their last chance.
    for (const [strategy, id] of [...this.#unstopped]) this.#stopStrategy(id, strategy, true);
  }

  overallStrategy(): StrategyName | "mixed" {
    const names = new Set(this.units.map((u) => u.strategy.name));
    return names.size === 1 ? this.units[0]!.strategy.name : "mixed";
  }

  /** Without a fallback chain: a unit the kernel refuses degrades to all-dirty on its own. */
  #startDegrading(): void {
    const done: Unit[] = [];
    try {
      for (const u of this.units) {
        try {
          u.strategy.start(this.startRanges);
        } catch (e) {
          if (!isKernelError(e)) throw e;
          this.#events.record(
            "degraded",
            u.id,
            `start failed (${message(e)}): ${u.strategy.name} degraded to all-dirty for the session`,
            errnoOf(e),
          );
          u.strategy = new AllDirtyStrategy();
        }
        u.running = true;
        done.push(u);
        if (u.strategy.startNotes?.length)
          this.#events.record("start-notes", u.id, u.strategy.startNotes.join("; "));
      }
    } catch (e) {
      // Undo partial work, as vfio_devices_dma_logging_start() does.
      for (const u of done) this.stopUnit(u);
      throw e;
    }
  }

  /**
   * Start every unit; if the kernel refuses one, stop the ones started (as
   * vfio_devices_dma_logging_start() does) and move the whole set to the next strategy of the
   * chain. QEMU would fail the migration here; the next strategy loses no page and over-reports
   * far less than all-dirty.
   */
  #startWithFallback(fb: StartFallback): void {
    const refusals: SelectionReason[] = [];
    let next = 0;
    for (;;) {
      const refused = this.#tryStartAll();
      if (!refused) break;
      const { unit, error } = refused;
      const from = unit.strategy.name;
      const call = callOf(error);
      const errno = errnoOf(error);
      const notes = unit.strategy.startNotes?.length
        ? ` (tried: ${unit.strategy.startNotes.join("; ")})`
        : "";
      this.#events.record(
        "start-refused",
        unit.id,
        `${from} could not start: ${message(error)}${notes}`,
        errno,
        {
          call,
        },
      );
      if (from !== "all-dirty")
        refusals.push({
          ...(unit.devices.length === 1 && unit.id === unit.devices[0] ? { device: unit.id } : {}),
          strategy: from,
          ...(call !== undefined ? { call } : {}),
          ...(errno !== undefined ? { errno } : {}),
          message: `START refused: ${message(error)}`,
        });
      const set = fb.chain[next++];
      if (!set) {
        // Nothing left in the chain (all-dirty was not offered): the units degrade on their own.
        this.#startDegrading();
        break;
      }
      this.units = toUnits(set);
      this.#events.record(
        "fallback",
        "container",
        `${from} could not start for ${unit.id}: every unit moves to ${set[0]!.strategy.name} (decided per container)`,
      );
    }
    if (this.units.some((u) => u.strategy.name === "all-dirty") && refusals.length > 0)
      this.#checkAllDirtyPolicy(fb, refusals);
  }

  /** Start every unit, or none: the first kernel refusal undoes the others and is returned. */
  #tryStartAll(): { unit: Unit; error: unknown } | undefined {
    const done: Unit[] = [];
    for (const u of this.units) {
      try {
        u.strategy.start(this.startRanges);
      } catch (e) {
        for (const d of done) this.stopUnit(d);
        if (!isKernelError(e)) throw e;
        return { unit: u, error: e };
      }
      u.running = true;
      done.push(u);
      if (u.strategy.startNotes?.length)
        this.#events.record("start-notes", u.id, u.strategy.startNotes.join("; "));
    }
    return undefined;
  }

  /** Tracking fell back to all-dirty at start: QEMU's enable-migration decides whether that may go on. */
  #checkAllDirtyPolicy(fb: StartFallback, refusals: readonly SelectionReason[]): void {
    if (fb.enableMigration === "on") return; // accepted; the fallback event already says so
    const blocker = {
      kind: "no-tracking" as const,
      option: "enable-migration",
      message:
        "no dirty tracking could start (see the refusals): every page would be dirty on every sync; set enable-migration=on to accept that",
    };
    this.#events.record("blocked", "container", blocker.message);
    if (fb.ignoreBlockers) return;
    for (const u of this.units) this.stopUnit(u);
    const base = fb.choice;
    this.#blocked = new MigrationBlockedError({
      strategy: "all-dirty",
      fallbacks: [],
      reasons: [...(base?.reasons ?? []), ...refusals],
      blockers: [...(base?.blockers ?? []), blocker],
      warnings: base?.warnings ?? [],
    });
    throw this.#blocked;
  }

  /**
   * Stop a unit's tracking. `final` (the tracker's stop): a strategy may use its last resort.
   * Otherwise (a restart, a fallback, a re-arm: the guest runs on) a strategy whose STOP keeps
   * failing is remembered, and the final stop tries it again.
   */
  stopUnit(u: Unit, final = false): void {
    if (!u.running) return;
    u.running = false;
    this.changed = true; // every restart, re-arm, fallback or degradation stops a unit first
    this.#stopStrategy(u.id, u.strategy, final);
  }

  #stopStrategy(id: string, strategy: DirtyStrategy, final: boolean): void {
    try {
      strategy.stop(final);
      this.#unstopped.delete(strategy);
    } catch (e) {
      const later = final ? "" : "; tried again when tracking ends";
      this.#events.record("stop-failed", id, `stopping tracking failed: ${message(e)}${later}`, errnoOf(e));
      if (final) this.#unstopped.delete(strategy);
      else this.#unstopped.set(strategy, id);
    }
  }

  restart(u: Unit): void {
    this.stopUnit(u);
    try {
      u.strategy.start(this.startRanges);
      u.running = true;
      u.allDirtyNext = true;
      this.#events.record("restarted", u.id, `tracking restarted with ${u.strategy.name}`);
    } catch (e) {
      const from = u.strategy.name;
      u.strategy = new AllDirtyStrategy();
      u.running = true;
      u.allDirtyNext = false;
      this.#events.record(
        "degraded",
        u.id,
        `restart failed (${message(e)}): ${from} degraded to all-dirty for the rest of the session`,
        errnoOf(e),
      );
    }
  }
}

// Re-arming device logs over the IOVA space mapped now (viommu.untracked "re-arm" and
// "adaptive"): the one place where a unit's logged ranges move during a session.

import type { EventLog } from "./events.ts";
import { mergeOverlapping } from "./ranges.ts";
import { errnoOf, message } from "./tracker-helpers.ts";
import type { Unit, UnitSet } from "./units.ts";
import type { Mapping } from "./viommu-mappings.ts";

/**
 * Re-arm (viommu.untracked "re-arm"): each of `read` whose log cannot see every mapping is
 * STOPped and STARTed over the IOVA space mapped now. Its log was just read; whatever the device
 * writes between the STOP and the START is in no log, so everything the unit covers is reported
 * at the next sync. If the kernel refuses the new ranges (a span or range limit), logging goes
 * back onto the old ones and the mappings outside them stay reported dirty.
 */
export function rearmUnits(
  read: readonly Unit[],
  mappings: readonly Mapping[],
  set: UnitSet,
  events: EventLog,
): void {
  const wanted = mergeOverlapping(mappings);
  const before = set.startRanges;
  for (const u of read) {
    const c = u.strategy.covers;
    if (!u.running || !c || mappings.every((m) => c.call(u.strategy, m))) continue;
    set.stopUnit(u);
    try {
      u.strategy.start(wanted);
      u.running = true;
      u.allDirtyNext = true;
      u.rearmed = true;
      set.startRanges = wanted;
      events.record(
        "re-armed",
        u.id,
        `logging re-armed over the ${wanted.length} IOVA range(s) mapped now; everything it covers is reported at the next sync`,
      );
    } catch (e) {
      events.record(
        "re-arm-refused",
        u.id,
        `re-arming over the mapped IOVA space was refused (${message(e)}): back on the old ranges; mappings outside them stay reported dirty`,
        errnoOf(e),
      );
      const now = set.startRanges;
      set.startRanges = before;
      set.restart(u);
      set.startRanges = now;
      u.rearmed = true;
    }
  }
}

// Opening the chosen host. Each backend is imported only when chosen (koffi loads only for linux).
// On the simulated host, --seed and --workload are applied to the profile before the host is
// built, so runs repeat and any profile can be driven by any workload.

import { readFileSync } from "node:fs";
import type { Host } from "@vfio-dirty/vfio-adapter";
import { InvalidInputError } from "@vfio-dirty/vfio-adapter";
import type { Profile, WorkloadJson } from "@vfio-dirty/vfio-adapter/sim";
import { UsageError } from "./errors.ts";
import { checkLinuxHost, DEFAULT_PROFILE, type HostChoice } from "./host.ts";

/** What the track loop needs of the simulated host besides the Host interface. */
export interface SimHandle {
  guestMemory: { kind: "ram" | "bar"; gpa: bigint; length: bigint; hva: bigint }[];
  viommu: { iova: bigint; gpa: bigint; length: bigint }[] | undefined;
  nowMs(): number;
  nowNs(): number;
  /** Let `ms` of simulated time pass: paced to the wall clock unless `fast`. */
  advance(ms: number, signal: AbortSignal, fast: boolean): Promise<void>;
  /** 4 KiB GPA pages written at or after `sinceNs`, ascending. */
  writtenSince(sinceNs: number): number[];
  trackingActive(): boolean;
}

/** An opened host; disposing it releases whatever the backend holds. */
export interface OpenedHost extends AsyncDisposable {
  readonly host: Host;
  readonly sim?: SimHandle;
}

/** Workload kinds the simulated devices know (see the adapter's sim/workload.ts). */
export const SIM_WORKLOADS = ["idle", "hot-set", "ring", "uniform", "bursts"] as const;

export async function openHost(
  choice: HostChoice,
  opts: { seed?: number; workload?: string } = {},
): Promise<OpenedHost> {
  if (choice.kind === "linux") {
    checkLinuxHost();
    const { createLinuxHost } = await import("@vfio-dirty/vfio-adapter/linux");
    const host = createLinuxHost();
    return { host, [Symbol.asyncDispose]: async () => host[Symbol.dispose]() };
  }
  const simModule = await import("@vfio-dirty/vfio-adapter/sim");
  let profile: Profile;
  try {
    profile = simModule.loadProfile(choice.profile ?? DEFAULT_PROFILE);
  } catch (err) {
    if (err instanceof InvalidInputError)
      throw new UsageError(
        `--host sim:${choice.profile}: ${err.message}; give a shipped profile name or a path to a profile .json`,
        { cause: err },
      );
    throw err;
  }
  profile = applyOverrides(profile, opts);
  const sim = simModule.createSimHost(profile);
  const handle: SimHandle = {
    guestMemory: sim.guestMemory(),
    viommu: sim.viommuMappings(),
    nowNs: () => sim.clock.now(),
    nowMs: () => sim.clock.now() / 1e6,
    async advance(ms, signal, fast) {
      if (sim.clock.mode !== "virtual") return sleep(ms, signal);
      if (fast) return runFast(sim, ms, signal);
      // Paced: simulated time follows the wall clock in steps, so the live line moves and
      // Ctrl-C lands between steps.
      let left = ms;
      while (left > 0 && !signal.aborted) {
        const step = Math.min(100, left);
        const t = performance.now();
        await sleep(step, signal);
        const passed = Math.min(left, signal.aborted ? performance.now() - t : step);
        sim.run(passed);
        left -= passed;
      }
    },
    writtenSince: (since) => sim.writtenSince(since),
    trackingActive: () => sim.trackingActive(),
  };
  return { host: sim, sim: handle, [Symbol.asyncDispose]: async () => {} };
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

// --- Internal helpers ---

/** Simulated time the fast mode runs between two looks at the event loop (signals, scrapes). */
const FAST_STEP_MS = 250;

/**
 * --fast: simulated time as fast as the simulator goes, in steps with a turn of the event loop
 * between them, so Ctrl-C and SIGTERM land within one step instead of after the whole interval.
 * The workloads write the same pages however time is chopped (sim/workload.ts).
 */
async function runFast(sim: { run(ms: number): void }, ms: number, signal: AbortSignal): Promise<void> {
  let left = ms;
  while (left > 0 && !signal.aborted) {
    const step = Math.min(FAST_STEP_MS, left);
    sim.run(step);
    left -= step;
    if (left > 0) await new Promise((resolve) => setImmediate(resolve));
  }
}

function applyOverrides(profile: Profile, opts: { seed?: number; workload?: string }): Profile {
  const workload = opts.workload === undefined ? undefined : simWorkload(opts.workload);
  return {
    ...profile,
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
    devices: workload
      ? profile.devices.map((d) => ({
          ...d,
          workload: { kind: "idle", ...d.workload, ...workload } as WorkloadJson,
        }))
      : profile.devices,
  };
}

/** `--workload hot-set` or `--workload trace.json` ({ "events": [{ "atMs", "iova", "length" }], "loopMs" }). */
function simWorkload(spec: string): Partial<WorkloadJson> {
  if ((SIM_WORKLOADS as readonly string[]).includes(spec)) return { kind: spec as WorkloadJson["kind"] };
  if (!spec.endsWith(".json"))
    throw new UsageError(
      `--workload '${spec}': on the sim use one of ${SIM_WORKLOADS.join(", ")} or a trace .json file`,
    );
  let doc: { events?: unknown; loopMs?: unknown };
  try {
    doc = JSON.parse(readFileSync(spec, "utf8"));
  } catch (err) {
    throw new UsageError(
      `--workload ${spec}: cannot read the trace (${(err as Error).message}); check the path`,
      { cause: err },
    );
  }
  if (!Array.isArray(doc.events))
    throw new UsageError(`--workload ${spec}: a trace needs "events": [{ "atMs", "iova", "length" }]`);
  for (const [i, e] of doc.events.entries()) checkTraceEvent(spec, e, i);
  return {
    kind: "trace",
    events: doc.events as WorkloadJson["events"],
    ...(typeof doc.loopMs === "number" ? { loopMs: doc.loopMs } : {}),
  };
}

/** One event of a trace, named by file and index when it is wrong (the sim would only say "events/3/iova"). */
function checkTraceEvent(file: string, e: unknown, i: number): void {
  const at = `--workload ${file}: event ${i} (events[${i}])`;
  const form = 'each event is {"atMs": ms, "iova": address, "length": bytes}';
  if (typeof e !== "object" || e === null || Array.isArray(e))
    throw new UsageError(`${at}: not an object; ${form}`);
  const { atMs, iova, length } = e as { atMs?: unknown; iova?: unknown; length?: unknown };
  if (typeof atMs !== "number" || !Number.isFinite(atMs) || atMs < 0)
    throw new UsageError(
      `${at}: "atMs" ${JSON.stringify(atMs)} is not a time in ms (a number >= 0); ${form}`,
    );
  const u64 = (v: unknown) =>
    (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) ||
    (typeof v === "string" && /^(0x[0-9a-f]+|\d+)$/i.test(v) && BigInt(v) < 1n << 64n);
  if (!u64(iova))
    throw new UsageError(
      `${at}: "iova" ${JSON.stringify(iova)} is not an address (decimal or "0x..." hex); ${form}`,
    );
  if (!u64(length) || BigInt(length as string | number) === 0n)
    throw new UsageError(`${at}: "length" ${JSON.stringify(length)} is not a byte count above 0; ${form}`);
}

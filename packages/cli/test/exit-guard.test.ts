import { describe, expect, it } from "vitest";
import { run } from "../src/cli.ts";
import { ExitGuard } from "../src/exit-guard.ts";
import { captureIo } from "./capture-io.ts";

describe("ExitGuard", () => {
  it("stops everything registered, newest first, even when one stop throws, and only once", () => {
    const guard = new ExitGuard();
    const order: string[] = [];
    guard.register("container", () => order.push("container"));
    guard.register("tracking", () => {
      order.push("tracking");
      throw new Error("EBADF");
    });
    const gone = guard.register("workload", () => order.push("workload"));
    gone();
    expect(guard.size).toBe(2);
    expect(guard.runAll()).toEqual(["tracking: stopping failed (EBADF)", "container stopped"]);
    expect(order).toEqual(["tracking", "container"]);
    expect(guard.runAll()).toEqual([]);
    expect(guard.size).toBe(0);
  });
});

describe("track and a forced exit", () => {
  it("registers stopping the tracking session while it runs, and unregisters it once closed", async () => {
    const guard = new ExitGuard();
    const seen: { what: string; live: number }[] = [];
    const { io, out } = captureIo({
      onForcedExit: (what, stop) => {
        const unregister = guard.register(what, stop);
        seen.push({ what, live: guard.size });
        return unregister;
      },
    });
    const code = await run(
      ["track", "--host", "sim", "--fast", "--duration", "1s", "--interval", "500ms"],
      io,
    );
    expect(code).toBe(0);
    expect(out()).toMatch(/tracking /);
    expect(seen).toEqual([{ what: "tracking", live: 1 }]);
    expect(guard.size).toBe(0);
  });
});

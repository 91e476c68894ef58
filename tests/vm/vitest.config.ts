// vitest configuration for the scenarios run INSIDE the guest (tests/vm/run boots the guest).
// The checkout is read-only there, so nothing may be cached or written beside the sources;
// one forked worker runs every file in turn (each guest has one edu device, and Node start-up
// under TCG costs seconds).
import { defineConfig } from "vitest/config";

export default defineConfig({
  cacheDir: "/tmp/vitest-cache",
  test: {
    include: ["tests/vm/scenarios/**/*.test.ts"],
    pool: "forks",
    maxWorkers: 1,
    fileParallelism: false,
    isolate: false,
    // Hang guards, not speed checks: under TCG with the other core busy (CI's loaded run, a
    // kernel build beside it) the fidelity scenario took 185 s and was failed at 120 s.
    testTimeout: 900_000,
    hookTimeout: 900_000,
  },
});

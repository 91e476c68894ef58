import { defineConfig } from "vitest/config";

// Each test runs the built CLI as a subprocess; some (packaging, tracking runs) take seconds.
export default defineConfig({
  test: { testTimeout: 60_000, hookTimeout: 120_000, include: ["test/*.test.ts"] },
});

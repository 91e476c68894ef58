import { defineConfig } from "vitest/config";
import { hangGuard } from "../../vitest.shared.ts";

// Each test runs the built CLI as a subprocess; some (packaging, tracking runs) take seconds.
export default defineConfig({ test: { ...hangGuard, include: ["test/*.test.ts"] } });

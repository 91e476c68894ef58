import { defineConfig } from "vitest/config";
import { hangGuard } from "../../vitest.shared.ts";

export default defineConfig({ test: { ...hangGuard } });

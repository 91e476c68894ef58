#!/usr/bin/env node
// The `vfio-dirty` executable npm links. It is a committed file rather than dist/bin.js itself
// because npm links a workspace's bin only when its target exists at install time, and dist/ is
// built after install (the root package's `prepare` runs `turbo run build`).
import("../dist/bin.js").catch((err) => {
  if (err?.code === "ERR_MODULE_NOT_FOUND" && String(err.message).includes("dist/bin.js")) {
    process.stderr.write("vfio-dirty: not built yet; run 'npm run build' at the repository root\n");
    process.exitCode = 1;
    return;
  }
  throw err;
});

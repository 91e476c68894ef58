// The README's examples must name what the package really exports, so they cannot rot silently:
// every name imported from the package in a README code block exists, and every method the
// example calls on the typed objects exists on them.

import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import * as root from "../src/index.ts";
import * as linux from "../src/linux/index.ts";

const readme = readFileSync(resolve(dirname(fileURLToPath(import.meta.url)), "../README.md"), "utf8");
const code = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!).join("\n");

describe("README", () => {
  it("imports only names the entry points export", () => {
    const entries: Record<string, Record<string, unknown>> = {
      "@vfio-dirty/vfio-adapter": root,
      "@vfio-dirty/vfio-adapter/linux": linux,
    };
    const imports = [...code.matchAll(/import \{([^}]+)\} from "([^"]+)"/g)];
    expect(imports.length).toBeGreaterThan(0);
    for (const [, names, from] of imports) {
      const entry = entries[from!];
      expect(entry, from).toBeDefined();
      for (const name of names!.split(",").map((n) => n.trim()))
        expect(entry![name], `${name} from ${from}`).toBeDefined();
    }
  });

  it("calls methods the typed objects and the host have", () => {
    const { Container, Device, Group } = root;
    expect(typeof Group.open).toBe("function");
    expect(typeof Container.open).toBe("function");
    for (const m of ["setContainer", "getDevice"]) expect(Group.prototype, m).toHaveProperty(m);
    for (const m of ["setIommu", "getInfo"]) expect(Container.prototype, m).toHaveProperty(m);
    expect(Device.prototype).toHaveProperty("featureProbe");
    for (const m of ["setContainer", "setIommu", "getInfo", "getDevice", "featureProbe"])
      expect(code, m).toContain(`.${m}(`);
    for (const name of [
      "VFIO_TYPE1v2_IOMMU",
      "VFIO_DEVICE_FEATURE_DMA_LOGGING_START",
      "VFIO_DEVICE_FEATURE_SET",
    ])
      expect(root.uapi, name).toHaveProperty(name);
  });
});

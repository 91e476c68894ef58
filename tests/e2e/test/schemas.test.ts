// The schemas agree with the README's promise that fields are only ever added: a consumer that
// validates a document against a shipped schema keeps working when a later version adds a field.
// Our own documents are still checked closed (expectShape): no field goes undocumented.

import { readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cliJson, closedSchema, expectShape, REPO, shippedSchema } from "./helpers.ts";

const require = createRequire(import.meta.url);
const Ajv = require("ajv") as typeof import("ajv").default;
const NAMES = readdirSync(join(REPO, "packages/cli/schemas")).map((f) => f.replace(/\.schema\.json$/, ""));

describe.each(NAMES)("%s.schema.json", (name) => {
  it("forbids no additional property anywhere, and says consumers must ignore unknown ones", () => {
    const schema = shippedSchema(name);
    expect(JSON.stringify(schema)).not.toMatch(/"additionalProperties":\s*false/);
    expect(schema.description).toMatch(/Fields are only ever added.*ignore properties it does not know/);
  });
});

describe("a document from a later version, with a field added", () => {
  it("still validates against the shipped schema, and not against the closed one", async () => {
    const { doc } = await cliJson<Record<string, unknown>>([
      "predict",
      "--dirty-rate",
      "1M/s",
      "--ram",
      "1G",
      "--bandwidth",
      "1G/s",
    ]);
    const later = { ...doc, addedLater: { anything: 1 } };
    const ajv = new Ajv({ allErrors: true, strict: true });
    expect(ajv.validate(shippedSchema("predict"), later), ajv.errorsText()).toBe(true);
    expect(ajv.validate({ ...(closedSchema(shippedSchema("predict")) as object), $id: "x" }, later)).toBe(
      false,
    );
    expect(() => expectShape("predict", later)).toThrow(/must NOT have additional properties/);
  });
});

import { readFileSync } from "node:fs";
import { printSchema } from "graphql";
import { describe, expect, it } from "vitest";
import { schema } from "../src/graphql/schema.js";

describe("schema.graphql", () => {
  it("is the schema the code builds (run `npm run schema:print` after reviewing a change)", () => {
    const checkedIn = readFileSync(new URL("../schema.graphql", import.meta.url), "utf8");
    expect(`${printSchema(schema)}\n`).toBe(checkedIn);
  });

  it("describes every public type and field", () => {
    const missing: string[] = [];
    for (const type of Object.values(schema.getTypeMap())) {
      if (type.name.startsWith("__") || ["String", "Int", "Float", "Boolean", "ID"].includes(type.name)) continue;
      if (!type.description) missing.push(type.name);
      if ("getFields" in type) {
        for (const field of Object.values(type.getFields())) {
          if (!field.description && !/Connection$|Edge$|^PageInfo$/.test(type.name)) missing.push(`${type.name}.${field.name}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it("keeps the SPEC's operation names", () => {
    const query = Object.keys(schema.getQueryType()!.getFields());
    const mutation = Object.keys(schema.getMutationType()!.getFields());
    expect(query).toEqual(expect.arrayContaining(["me", "regions", "region", "products", "organizations", "reports", "node", "nodes"]));
    expect(mutation).toEqual(
      expect.arrayContaining(["submitReports", "createRegions", "createOrganization", "createSite", "createUser", "createApiToken", "revokeApiToken", "upsertProduct"]),
    );
  });
});

import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { sql } from "drizzle-orm";
import { afterAll, describe, expect, it } from "vitest";
import { openDatabase } from "../src/db/index.js";
import { TEST_PG_ADMIN_URL, databaseUrl } from "./helpers/env.js";
import * as schemaModule from "../src/db/schema.js";
import { getTableConfig, PgTable } from "drizzle-orm/pg-core";

const SCHEMA_TABLES = Object.values(schemaModule).filter((v) => v instanceof PgTable).map((t) => getTableConfig(t).name).sort();

const name = `supply_test_migrate_${randomBytes(4).toString("hex")}`;
const admin = postgres(TEST_PG_ADMIN_URL, { max: 1, onnotice: () => {} });

afterAll(async () => {
  await admin.unsafe(`drop database if exists "${name}" with (force)`);
  await admin.end();
});

describe("migrations at start-up", () => {
  it("let several processes migrate one empty database at the same moment", async () => {
    await admin.unsafe(`create database "${name}"`);
    const handles = Array.from({ length: 4 }, () => openDatabase({ url: databaseUrl(name), dataDir: "", poolSize: 1 }));
    try {
      await Promise.all(handles.map((h) => h.migrate()));
      const applied = await handles[0]!.db.execute<{ n: number }>(sql`select count(*)::int as n from drizzle.__drizzle_migrations`, "objects");
      const tables = await handles[0]!.db.execute<{ table_name: string }>(
        sql`select table_name from information_schema.tables where table_schema = 'public' order by table_name`,
        "objects",
      );
      expect(applied[0]!.n).toBeGreaterThanOrEqual(1);
      // Every table of the drizzle schema exists, once, and nothing else.
      expect(tables.map((t) => t.table_name).sort()).toEqual(SCHEMA_TABLES);
      // Running again later is a no-op.
      await handles[1]!.migrate();
      const again = await handles[0]!.db.execute<{ n: number }>(sql`select count(*)::int as n from drizzle.__drizzle_migrations`, "objects");
      expect(again[0]!.n).toBe(applied[0]!.n);
    } finally {
      await Promise.all(handles.map((h) => h.close()));
    }
  });
});

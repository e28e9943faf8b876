import { randomBytes } from "node:crypto";
import path from "node:path";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import postgres from "postgres";
import { inject } from "vitest";
import { openDatabase, type DatabaseHandle } from "../../src/db/index.js";
import { TEST_PG_ADMIN_URL, databaseUrl } from "./env.js";

export interface TestDatabase extends DatabaseHandle {
  url?: string;
  drop(): Promise<void>;
}

/** A fresh database for one test file, cloned from the migrated template. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `supply_test_${randomBytes(6).toString("hex")}`;
  const admin = postgres(TEST_PG_ADMIN_URL, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}" template "${inject("templateDatabase")}"`);
  } finally {
    await admin.end();
  }
  const url = databaseUrl(name);
  const handle = openDatabase({ url, dataDir: "", poolSize: 5 });
  return {
    ...handle,
    url,
    async drop() {
      await handle.close();
      const a = postgres(TEST_PG_ADMIN_URL, { max: 1, onnotice: () => {} });
      await a.unsafe(`drop database if exists "${name}" with (force)`);
      await a.end();
    },
  };
}

/** An embedded PGlite database in a temporary folder, migrated with the same migrations. */
export async function createPgliteTestDatabase(): Promise<TestDatabase> {
  const dir = mkdtempSync(path.join(tmpdir(), "supply-pglite-"));
  const handle = openDatabase({ dataDir: dir });
  await handle.migrate();
  return {
    ...handle,
    async drop() {
      await handle.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export type Backend = "postgres" | "pglite";
export const createBackend = (backend: Backend) =>
  backend === "postgres" ? createTestDatabase() : createPgliteTestDatabase();

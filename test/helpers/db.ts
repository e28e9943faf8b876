import { randomBytes } from "node:crypto";
import path from "node:path";
import { cpSync, existsSync, mkdtempSync, renameSync, rmSync } from "node:fs";
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

let pgliteTemplate: Promise<string> | undefined;

/**
 * The run's migrated PGlite folder, built by the first file of a worker that needs one: initdb in
 * WebAssembly costs 5-15 s of CPU per start on an empty folder, a copy of a built one under one.
 * Runs that open no PGlite never build it. Two workers may build at once; the first to finish
 * renames its folder into place and the other uses that one.
 */
function pgliteTemplateDir(): Promise<string> {
  pgliteTemplate ??= (async () => {
    const root = inject("pgliteTemplateRoot");
    const ready = path.join(root, "pglite");
    if (existsSync(ready)) return ready;
    const build = mkdtempSync(path.join(root, "build-"));
    try {
      const handle = openDatabase({ dataDir: build });
      try {
        await handle.migrate();
      } finally {
        await handle.close();
      }
      try {
        renameSync(path.join(build, "pglite"), ready);
      } catch (error) {
        if (!existsSync(ready)) throw error;
      }
      return ready;
    } finally {
      rmSync(build, { recursive: true, force: true });
    }
  })();
  return pgliteTemplate;
}

/** Puts a copy of the run's migrated PGlite folder into `dataDir`, where openDatabase({ dataDir }) finds it. */
export async function copyPgliteTemplate(dataDir: string): Promise<void> {
  cpSync(await pgliteTemplateDir(), path.join(dataDir, "pglite"), { recursive: true });
}

/** An embedded PGlite database in a temporary folder, migrated with the same migrations. */
export async function createPgliteTestDatabase(): Promise<TestDatabase> {
  const dir = mkdtempSync(path.join(tmpdir(), "supply-pglite-"));
  await copyPgliteTemplate(dir);
  const handle = openDatabase({ dataDir: dir });
  // The copy is migrated already; this checks its journal against drizzle/ like a start-up does.
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

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import postgres from "postgres";
import type { TestProject } from "vitest/node";
import { openDatabase } from "../../src/db/index.js";
import { TEST_PG_ADMIN_URL, databaseUrl } from "./env.js";

declare module "vitest" {
  export interface ProvidedContext {
    templateDatabase: string;
    /** This run's folder for the migrated PGlite template (built on first use: see helpers/db.ts). */
    pgliteTemplateRoot: string;
  }
}

/** Migrates one template database per run; each test file clones it (fast, isolated). */
export default async function setup(project: TestProject) {
  const template = `supply_tpl_${process.pid}_${Date.now().toString(36)}`;
  const admin = postgres(TEST_PG_ADMIN_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${template}"`);
  const handle = openDatabase({ url: databaseUrl(template), dataDir: "" });
  await handle.migrate();
  await handle.close();
  project.provide("templateDatabase", template);
  const pgliteRoot = mkdtempSync(path.join(tmpdir(), "supply-pglite-tpl-"));
  project.provide("pgliteTemplateRoot", pgliteRoot);
  return async () => {
    await admin.unsafe(`drop database if exists "${template}" with (force)`);
    await admin.end();
    rmSync(pgliteRoot, { recursive: true, force: true });
  };
}

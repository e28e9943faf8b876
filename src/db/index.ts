import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import { sql } from "drizzle-orm";
import type { PgAsyncDatabase } from "drizzle-orm/pg-core/async";
import type { PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import { acquirePgliteLock } from "./pglite-lock.js";
import { relations } from "./relations.js";

export type Relations = typeof relations;
/** A database or a transaction: services take either as their first argument. */
export type Database = PgAsyncDatabase<PgQueryResultHKT, Relations>;

export const migrationsFolder = fileURLToPath(new URL("../../drizzle", import.meta.url));

/** Arbitrary but fixed: every process of this service serialises its migrations on it. */
const MIGRATION_LOCK_ID = 7_341_905_112;

export interface DatabaseHandle {
  db: Database;
  kind: "postgres" | "pglite";
  /** Applies pending migrations; safe to call from several processes at once. */
  migrate(): Promise<void>;
  ping(): Promise<void>;
  /** Calls `onNotify` for every NOTIFY on `channel` (delivered at commit); resolves to a function that stops listening. */
  listen(channel: string, onNotify: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  url?: string | undefined;
  /** Folder of the embedded PGlite database, used when `url` is not set. */
  dataDir: string;
  poolSize?: number;
}

export function openDatabase(options: DatabaseOptions): DatabaseHandle {
  return options.url ? openPostgres(options.url, options.poolSize ?? 10) : openPglite(options.dataDir);
}

/**
 * libpq's way to name a Unix socket, `postgres://user@localhost/db?host=/var/run/postgresql`: the
 * `host` parameter wins over the URL's host. postgres.js would send it to the server as a setting,
 * so it is taken out here and given as its `host` option. On the database's own machine the socket
 * costs less per query than TCP over loopback.
 */
export function postgresTarget(url: string): { url: string; host?: string } {
  const parsed = new URL(url);
  const host = parsed.searchParams.get("host");
  if (!host) return { url };
  parsed.searchParams.delete("host");
  return { url: parsed.toString(), host };
}

function openPostgres(rawUrl: string, poolSize: number): DatabaseHandle {
  const { url, host } = postgresTarget(rawUrl);
  const target = host ? { host } : {};
  const client = postgres(url, {
    ...target,
    max: poolSize,
    onnotice: () => {},
    // Figures are read as text (the forecast reads millions that way): a role or database set to
    // extra_float_digits = 0 would round them to 15 digits, so the exact form is asked for here.
    connection: { application_name: "supply-monitor", extra_float_digits: 1 },
    // postgres.js waits 3^n/100 s (up to 20 s) before its n-th reconnect: after an outage of a few
    // seconds the pool would stay down for several more. Capped at 1 s, it is back within a second.
    backoff: (retries: number) => Math.min(1, 0.05 * 2 ** retries),
  });
  const db = drizzlePostgres({ client, relations }) as unknown as Database;
  return {
    db,
    kind: "postgres",
    async migrate() {
      // One dedicated connection, so the session lock and the migration share it.
      const lockClient = postgres(url, { ...target, max: 1, onnotice: () => {} });
      try {
        await lockClient`select pg_advisory_lock(${MIGRATION_LOCK_ID})`;
        try {
          await migratePostgres(drizzlePostgres({ client: lockClient, relations }), { migrationsFolder });
        } finally {
          await lockClient`select pg_advisory_unlock(${MIGRATION_LOCK_ID})`;
        }
      } finally {
        await lockClient.end();
      }
    },
    async ping() {
      await client`select 1`;
    },
    async listen(channel, onNotify) {
      // postgres.js keeps one extra connection for all listeners and re-listens after reconnecting.
      const { unlisten } = await client.listen(channel, () => onNotify());
      return unlisten;
    },
    async close() {
      await client.end({ timeout: 5 });
    },
  };
}

function openPglite(dataDir: string): DatabaseHandle {
  const folder = path.resolve(dataDir, "pglite");
  mkdirSync(folder, { recursive: true });
  // The folder belongs to one process: a second writer would corrupt it.
  const lock = acquirePgliteLock(folder);
  let client: PGlite;
  try {
    client = new PGlite(folder);
  } catch (error) {
    lock.release();
    throw error;
  }
  const drizzleDb = drizzlePglite({ client, relations });
  let migrated: Promise<void> | undefined;
  return {
    db: drizzleDb as unknown as Database,
    kind: "pglite",
    async migrate() {
      // PGlite belongs to this process alone: one migration run per handle is enough.
      migrated ??= migratePglite(drizzleDb, { migrationsFolder }).then(() => undefined);
      await migrated;
    },
    async ping() {
      await drizzleDb.execute(sql`select 1`);
    },
    async listen(channel, onNotify) {
      return client.listen(channel, () => onNotify());
    },
    async close() {
      try {
        await client.close();
      } finally {
        lock.release();
      }
    },
  };
}

import postgres from "postgres";
import { postgresTarget } from "../../src/db/index.js";

/** postgres.js on a URL as the service reads it: `?host=/var/run/postgresql` names a Unix socket. */
export function connect(url: string, options: postgres.Options<Record<string, postgres.PostgresType>> = {}) {
  const target = postgresTarget(url);
  return postgres(target.url, { ...(target.host ? { host: target.host } : {}), ...options });
}

/**
 * The server processes that work for database `dbName`: its backends (but `exceptPid`, a
 * benchmark's own control connection) and the shared writers.
 */
export async function postgresPidsFor(client: postgres.Sql, dbName: string, exceptPid = -1): Promise<number[]> {
  const rows = await client`select pid from pg_stat_activity
                            where (datname = ${dbName} and pid <> ${exceptPid})
                               or backend_type in ('walwriter', 'checkpointer', 'background writer')`;
  return rows.map((r) => Number(r.pid));
}

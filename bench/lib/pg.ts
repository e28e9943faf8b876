import postgres from "postgres";
import { postgresTarget } from "../../src/db/index.js";

/** postgres.js on a URL as the service reads it: `?host=/var/run/postgresql` names a Unix socket. */
export function connect(url: string, options: postgres.Options<Record<string, postgres.PostgresType>> = {}) {
  const target = postgresTarget(url);
  return postgres(target.url, { ...(target.host ? { host: target.host } : {}), ...options });
}

import { sql } from "drizzle-orm";
import type { Database } from "../../src/db/index.js";
import type { Logger } from "../../src/logger.js";
import type { JobName, JobPayload } from "../definitions.js";

export interface ProcessorContext {
  db: Database;
  logger: Logger;
}

export type Processor<N extends JobName> = (payload: JobPayload<N>, ctx: ProcessorContext) => Promise<unknown>;
export type ProcessorMap = { [N in JobName]: Processor<N> };

/** Thin processors: each calls one service. Running one twice does no harm. */
export const processors: ProcessorMap = {
  "maintenance.purgeIdempotencyKeys": async ({ olderThanHours }, { db }) => {
    const deleted = await db.execute<{ n: number }>(
      sql`with gone as (delete from idempotency_key where created_at < now() - make_interval(hours => ${olderThanHours}) returning 1)
          select count(*)::int as n from gone`,
      "objects",
    );
    return { deleted: deleted[0]?.n ?? 0 };
  },
};

import { sql } from "drizzle-orm";
import type { Database } from "../../src/db/index.js";
import { evaluateForecasts, markAllDirty, recomputeDirty } from "../../src/domain/forecast/pipeline.js";
import { purgeOutbox } from "../../src/domain/outbox.js";
import { expireMatches, recomputeMatches } from "../../src/domain/matching/matching.js";
import { flagOutliers } from "../../src/domain/reports/outliers.js";
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
  "maintenance.purgeOutbox": async ({ olderThanHours }, { db }) => ({ deleted: await purgeOutbox(db, olderThanHours) }),
  "forecast.recompute": async ({ trigger }, { db }) => recomputeDirty(db, { trigger }),
  "forecast.recomputeAll": async (_payload, { db }) => {
    const marked = await markAllDirty(db);
    return { marked, ...(await recomputeDirty(db, { trigger: "daily" })) };
  },
  "forecast.evaluate": async (_payload, { db }) => ({ evaluated: await evaluateForecasts(db) }),
  "matching.recompute": async ({ productId, kind }, { db }) => recomputeMatches(db, productId, kind, "forecasts"),
  "matching.expire": async (_payload, { db }) => ({ expired: await expireMatches(db) }),
  "reports.flagOutliers": async ({ reportIds }, { db }) => {
    const { flagged, changed } = await flagOutliers(db, reportIds);
    return { outliers: flagged.length, changed };
  },
};

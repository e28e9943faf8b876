import { sql } from "drizzle-orm";
import type { Database } from "../../src/db/index.js";
import { evaluateForecasts, markAllDirty, recomputeDirty } from "../../src/domain/forecast/pipeline.js";
import type { LeafThreads } from "../../src/domain/forecast/leaf-threads.js";
import { purgeOutbox } from "../../src/domain/outbox.js";
import { expireMatches, recomputeMatches } from "../../src/domain/matching/matching.js";
import { flagOutliers } from "../../src/domain/reports/outliers.js";
import { refreshDirtyRollups } from "../../src/domain/read-models.js";
import { checkCompliance, recheckOverdueReports } from "../../src/domain/compliance.js";
import type { Logger } from "../../src/logger.js";
import { invalidatingAfter, type InvalidateResponses } from "../../src/http/response-cache.js";
import { createLivePublisher, publishAlertDelivery, type AlertPublisher } from "../../src/domain/alerts/live.js";
import { processImport } from "../../src/domain/imports/process.js";
import { IMPORT_PROGRESS_CHANNEL, type ImportProgressEvent } from "../../src/domain/imports/progress.js";
import type { ReconcileResult } from "../../src/domain/alerts/engine.js";
import { evaluateMatchAlerts, evaluateReportAlerts, evaluateShortageAlerts } from "../../src/domain/alerts/rules.js";
import { deliverEmail, deliverWebhook, deliverySettings, dispatchAlertEvent, sendDigest, sweepDeliveries, type DeliveryOutcome } from "../../src/domain/alerts/delivery.js";
import type { JobName, JobPayload } from "../definitions.js";
import type { WorkerDeps } from "../worker.js";
import { UnrecoverableError, type ConnectionOptions } from "bullmq";

export interface ProcessorContext {
  db: Database;
  logger: Logger;
  config: WorkerDeps["config"];
  /** The worker's Redis connection options, for processors that publish (the live subscription). */
  connection: ConnectionOptions;
  /** Publishes live alert events (alerts.publish); absent in a worker started without one. */
  publishAlert?: AlertPublisher | undefined;
  /** Drops the API processes' cached answers once forecasts are written (never throws); absent in tests and tools. */
  invalidateResponses?: InvalidateResponses | undefined;
  /** Attempts already made before this one, and how many the job has: the last one may give up cleanly. */
  attempt: { made: number; max: number };
  /** The job's id and when it was due (ms since the epoch): the same on every attempt. */
  job?: { id: string; dueAt: number };
  /** True once the worker is shutting down: long work ends after its current transaction. */
  stopping?: () => boolean;
  /** Asks for a forecast.recompute job (one per key), so that an idle worker joins the work at once. */
  requestForecast?: (key: string) => Promise<void>;
  /** The worker's threads for leaf forecasts (FORECAST_THREADS); without them, on the event loop. */
  leafThreads?: LeafThreads | undefined;
}

export type Processor<N extends JobName> = (payload: JobPayload<N>, ctx: ProcessorContext) => Promise<unknown>;
export type ProcessorMap = { [N in JobName]: Processor<N> };

const count = ({ eventIds: _ids, ...counts }: ReconcileResult) => counts;

// Recorded on the delivery like any failed publish, so the delivery log says what is wrong.
const noPublisher = async () => {
  throw new Error("this worker was started without a live-alert publisher (WorkerDeps.publishAlert; src/main.ts passes one)");
};

/** A failed send throws: to be retried after the backoff, or (gone, or out of attempts) to stop now. */
function settle(result: DeliveryOutcome) {
  if (result.outcome === "retry") throw new Error(result.error);
  if (result.outcome === "failed" || result.outcome === "gone") throw new UnrecoverableError(result.error);
  return result;
}

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
  // Cached dashboard answers are dropped once the forecasts' transactions have committed.
  // (Workers sharing a product by subtree may each leave it incomplete: what they wrote counts.)
  "forecast.recompute": async ({ trigger }, { db, config, invalidateResponses, stopping, leafThreads }) =>
    invalidatingAfter(
      invalidateResponses,
      "forecasts",
      () => recomputeDirty(db, { trigger, chunkPairs: config.FORECAST_CHUNK_PAIRS, concurrency: config.FORECAST_CONCURRENCY, shouldStop: stopping, threads: leafThreads }),
      (r) => r.series > 0,
    ),
  // Marks, asks an idle worker to join, and takes its share: the subtrees are shared out by lock.
  "forecast.recomputeAll": async (_payload, { db, config, invalidateResponses, job, attempt, stopping, requestForecast, leafThreads }) => {
    const marked = await markAllDirty(db, job ? { freshSince: new Date(job.dueAt) } : {});
    if (marked && job) await requestForecast?.(`${job.id}-${attempt.made}`);
    const recompute = () =>
      recomputeDirty(db, { trigger: "daily", chunkPairs: config.FORECAST_CHUNK_PAIRS, concurrency: config.FORECAST_CONCURRENCY, shouldStop: stopping, threads: leafThreads });
    return { marked, ...(await invalidatingAfter(invalidateResponses, "forecasts", recompute, (r) => r.series > 0)) };
  },
  "forecast.evaluate": async (_payload, { db, invalidateResponses }) => ({
    evaluated: await invalidatingAfter(invalidateResponses, "forecast accuracy", () => evaluateForecasts(db), (n) => n > 0),
  }),
  "matching.recompute": async ({ productId, kind }, { db }) => recomputeMatches(db, productId, kind, "forecasts"),
  "matching.expire": async (_payload, { db }) => ({ expired: await expireMatches(db) }),
  // The report alerts read the outlier flags, so they are evaluated after them, in the same job.
  "reports.flagOutliers": async ({ reportIds }, { db }) => {
    const { flagged, changed } = await flagOutliers(db, reportIds);
    await recheckOverdueReports(db, reportIds);
    const alerts = await evaluateReportAlerts(db, reportIds);
    return { outliers: flagged.length, changed, stockoutAlerts: count(alerts.stockout), qualityAlerts: count(alerts.quality) };
  },
  "readModels.refreshRollups": async (_payload, { db }) => refreshDirtyRollups(db),
  "compliance.check": async ({ asOf }, { db }) => {
    const { alerts, ...marked } = await checkCompliance(db, asOf ? new Date(asOf) : new Date());
    return { ...marked, alerts: alerts && count(alerts) };
  },
  "alerts.publish": async ({ deliveryId }, { db, publishAlert, attempt }) =>
    publishAlertDelivery(db, publishAlert ?? noPublisher, deliveryId, { lastAttempt: attempt.made + 1 >= attempt.max }),
  "alerts.dispatch": async ({ eventId }, { db, config }) => dispatchAlertEvent(db, eventId, deliverySettings(config)),
  "alerts.deliverWebhook": async ({ deliveryId }, { db, config, attempt }) => settle(await deliverWebhook(db, deliveryId, deliverySettings(config), attempt)),
  "alerts.deliverEmail": async ({ deliveryId }, { db, config, attempt }) => settle(await deliverEmail(db, deliveryId, deliverySettings(config), attempt)),
  "alerts.sendDigest": async (digest, { db, config, attempt }) => settle(await sendDigest(db, digest, deliverySettings(config), attempt)),
  "alerts.sweepDeliveries": async (_payload, { db, config }) => sweepDeliveries(db, deliverySettings(config)),
  // Progress goes out on its own connection for the length of the job: imports are few and long.
  "imports.process": async ({ importId }, { db, config, connection, logger, attempt, stopping }) => {
    const progress = createLivePublisher<ImportProgressEvent>(connection, config.QUEUE_PREFIX, IMPORT_PROGRESS_CHANNEL);
    try {
      return await processImport(db, importId, {
        // (7 is the configuration's default, for a worker started with only part of it.)
        backfillDays: config.REPORT_BACKFILL_DAYS ?? 7,
        publish: progress.publish,
        logger,
        shouldStop: stopping,
        lastAttempt: attempt.made + 1 >= attempt.max,
      });
    } finally {
      await progress.close();
    }
  },
  "alerts.evaluateForecasts": async ({ productId }, { db }) => count(await evaluateShortageAlerts(db, productId)),
  "alerts.evaluateMatches": async ({ productId, kind }, { db }) => {
    const { supplyMatch, upstream } = await evaluateMatchAlerts(db, productId, kind);
    return { supplyMatch: count(supplyMatch), ...(upstream ? { upstream: count(upstream) } : {}) };
  },
};

// The outbox relay: events written in the same transaction as the data they describe become
// work for the background jobs. An event is marked processed in the same transaction that turns
// it into durable work (dirty forecast pairs in Postgres) and after its jobs were accepted by
// the queue, so a crash or a Redis outage at any point leaves it to be relayed again, never lost;
// relaying twice is harmless (dirty marks merge, job ids are deterministic).
import { sql } from "drizzle-orm";
import { z } from "zod";
import type { Database } from "../db/index.js";
import { outboxTable } from "../db/schema.js";
import { markDirty, markReportsDirty } from "./forecast/pipeline.js";
import { markRollupsDirty, refreshInventoryFor } from "./read-models.js";
import { REPORTS_SUBMITTED_TOPIC } from "./reports/ingest.js";

export const DEMAND_CHANGED_TOPIC = "demand.changed";
/** A product's forecasts (or committed matches) changed: its matching is out of date. */
export const FORECASTS_UPDATED_TOPIC = "forecasts.updated";

/** Jobs asked for by a transaction (alert dispatch, deliveries): relayed as they are. */
export const JOBS_REQUESTED_TOPIC = "jobs.requested";

const requestedJob = z.object({
  name: z.string().min(1),
  data: z.record(z.string(), z.unknown()),
  jobId: z.string().min(1),
  delay: z.number().int().nonnegative().optional(),
  opts: z
    .object({
      attempts: z.number().int().positive().optional(),
      backoff: z.object({ type: z.enum(["exponential", "fixed"]), delay: z.number().int().nonnegative() }).optional(),
    })
    .optional(),
});

const payloads = {
  [JOBS_REQUESTED_TOPIC]: z.object({ jobs: z.array(requestedJob) }),
  [REPORTS_SUBMITTED_TOPIC]: z.object({ reportIds: z.array(z.number().int().positive()) }),
  [DEMAND_CHANGED_TOPIC]: z.object({ pairs: z.array(z.object({ regionId: z.number().int(), productId: z.number().int() })) }),
  [FORECASTS_UPDATED_TOPIC]: z.object({ productIds: z.array(z.number().int()) }),
} as const;

/** A job the relay asks the queue for; the id makes a second request for the same event a no-op. */
export interface RelayedJob {
  /** A job name of jobs/definitions.ts; the worker checks the name and the processor the payload. */
  name: string;
  data: Record<string, unknown>;
  jobId: string;
  delay?: number;
  /** Retries other than the worker's defaults (deliveries to endpoints that may be down for long). */
  opts?: { attempts?: number; backoff?: { type: "exponential" | "fixed"; delay: number } };
}

/**
 * Asks for jobs in the caller's transaction: they reach the queue once it commits (and only
 * then), however long Redis is away. Give each a deterministic `jobId` so asking twice is one job.
 */
export async function requestJobs(tx: Database, jobs: RelayedJob[]): Promise<void> {
  if (jobs.length === 0) return;
  await tx.insert(outboxTable).values({ topic: JOBS_REQUESTED_TOPIC, payload: { jobs } });
}

/** The rollups of a burst of reports are refreshed once, this long after its first event. */
export const ROLLUP_DEBOUNCE_MS = 1000;

/** Every event of one debounce window asks for the same job, which runs once the window has closed. */
function rollupJobFor(now: number): RelayedJob {
  const window = Math.floor(now / ROLLUP_DEBOUNCE_MS);
  return { name: "readModels.refreshRollups", data: {}, jobId: `rollups-${window}`, delay: (window + 1) * ROLLUP_DEBOUNCE_MS - now };
}

/** Matching runs once per window of this length after forecasts change, taking them all. */
export const MATCHING_DEBOUNCE_MS = 2000;

export interface RelayResult {
  events: number;
  pairs: number;
  /** Events whose topic or payload this version does not know; marked processed and logged. */
  unknown: { id: number; topic: string; problem: string }[];
}

/**
 * Relays up to `limit` pending events, oldest first. Several relays may run at once: each takes
 * the events no other one has locked.
 */
export async function relayOutbox(
  db: Database,
  enqueue: (jobs: RelayedJob[]) => Promise<void>,
  limit = 200,
): Promise<RelayResult> {
  return db.transaction(async (tx) => {
    const events = await tx.execute<{ id: number; topic: string; payload: unknown }>(
      sql`select id::int as id, topic, payload from outbox where processed_at is null order by id limit ${limit} for update skip locked`,
      "objects",
    );
    if (events.length === 0) return { events: 0, pairs: 0, unknown: [] };
    const reportIds: number[] = [];
    const pairs: { regionId: number; productId: number }[] = [];
    const jobs: RelayedJob[] = [];
    const unknown: RelayResult["unknown"] = [];
    const matchingProducts = new Set<number>();
    for (const e of events) {
      const schema = payloads[e.topic as keyof typeof payloads];
      const parsed = schema?.safeParse(e.payload);
      if (!schema || !parsed?.success) {
        unknown.push({ id: e.id, topic: e.topic, problem: schema ? parsed!.error!.message : "unknown topic" });
        continue;
      }
      if (e.topic === JOBS_REQUESTED_TOPIC) {
        jobs.push(...(parsed.data as { jobs: RelayedJob[] }).jobs);
      } else if (e.topic === REPORTS_SUBMITTED_TOPIC) {
        const ids = (parsed.data as { reportIds: number[] }).reportIds;
        if (ids.length === 0) continue;
        reportIds.push(...ids);
        jobs.push({ name: "reports.flagOutliers", data: { reportIds: ids }, jobId: `outliers-${e.id}` });
      } else if (e.topic === FORECASTS_UPDATED_TOPIC) {
        for (const id of (parsed.data as { productIds: number[] }).productIds) {
          matchingProducts.add(id);
          // Shortage alerts follow every change of forecasts at once: they are what planners wait for.
          jobs.push({ name: "alerts.evaluateForecasts", data: { productId: id }, jobId: `alerts-forecasts-${id}-${e.id}` });
        }
      } else {
        pairs.push(...(parsed.data as { pairs: { regionId: number; productId: number }[] }).pairs);
      }
    }
    if (matchingProducts.size) jobs.push(...(await matchingJobs(tx, [...matchingProducts], Date.now())));
    const marked = (await markReportsDirty(tx, reportIds)) + (await markDirty(tx, pairs));
    if ((await markRollupsDirty(tx, reportIds)) > 0) jobs.push(rollupJobFor(Date.now()));
    await refreshInventoryFor(tx, reportIds);
    // Inside the transaction: if the queue refuses, nothing is marked processed.
    if (jobs.length) await enqueue(jobs);
    await tx.execute(sql`update outbox set processed_at = now() where id = any(${sql.param(events.map((e) => e.id))}::bigint[])`);
    return { events: events.length, pairs: marked, unknown };
  });
}

/** Whether any forecast work is waiting (the relay pokes the forecast queue while there is). */
export async function forecastWorkPending(db: Database): Promise<boolean> {
  const rows = await db.execute<{ pending: boolean }>(sql`select exists (select 1 from forecast_dirty) as pending`, "objects");
  return rows[0]?.pending ?? false;
}

/** Deletes relayed events older than `olderThanHours`; the table keeps only recent history. */
export async function purgeOutbox(db: Database, olderThanHours: number): Promise<number> {
  const rows = await db.execute<{ n: number }>(
    sql`with gone as (delete from outbox where processed_at < now() - make_interval(hours => ${olderThanHours}) returning 1)
        select count(*)::int as n from gone`,
    "objects",
  );
  return rows[0]?.n ?? 0;
}

/**
 * The matching jobs a change of these products' forecasts calls for: downstream matching of each
 * product, and upstream matching of each raw material it is made of (its makers' needs follow
 * their output) or that it is. One job per product, kind and debounce window.
 */
async function matchingJobs(tx: Database, productIds: number[], now: number): Promise<RelayedJob[]> {
  const inputs = await tx.execute<{ id: number }>(
    sql`select distinct input_product_id as id from bom_line where product_id = any(${sql.param(productIds)}::int[])
        union select distinct input_product_id from bom_line where input_product_id = any(${sql.param(productIds)}::int[])`,
    "objects",
  );
  const window = Math.floor(now / MATCHING_DEBOUNCE_MS);
  const delay = (window + 1) * MATCHING_DEBOUNCE_MS - now;
  const job = (productId: number, kind: "DOWNSTREAM" | "UPSTREAM"): RelayedJob => ({
    name: "matching.recompute",
    data: { productId, kind },
    jobId: `matching-${kind.toLowerCase()}-${productId}-${window}`,
    delay,
  });
  return [...productIds.map((id) => job(id, "DOWNSTREAM")), ...inputs.map((r) => job(r.id, "UPSTREAM"))];
}

import { z } from "zod";

/**
 * Every job: its name, its queue and its payload schema. Payloads carry ids and numbers only,
 * never personal data. Adding a job here without a processor stops the worker at start-up.
 */
export const QUEUES = {
  maintenance: { concurrency: 1 },
  // One forecast job at a time per worker: a run covers every dirty pair, and per-product locks
  // keep workers on different products.
  forecast: { concurrency: 1 },
  reports: { concurrency: 2 },
  matching: { concurrency: 1 },
} as const satisfies Record<string, { concurrency: number }>;
export type QueueName = keyof typeof QUEUES;

export const JOBS = {
  "maintenance.purgeIdempotencyKeys": {
    queue: "maintenance",
    payload: z.object({ olderThanHours: z.number().int().positive() }).strict(),
  },
  "maintenance.purgeOutbox": {
    queue: "maintenance",
    payload: z.object({ olderThanHours: z.number().int().positive() }).strict(),
  },
  /** Recomputes the dirty (region, product) pairs; enqueued by the relay, debounced. */
  "forecast.recompute": {
    queue: "forecast",
    payload: z.object({ trigger: z.enum(["reports", "sweep", "manual"]) }).strict(),
  },
  /** The daily full recompute: marks every pair with data dirty, then recomputes. */
  "forecast.recomputeAll": {
    queue: "forecast",
    payload: z.object({}).strict(),
  },
  /** Scores past forecasts against what happened. */
  "forecast.evaluate": {
    queue: "forecast",
    payload: z.object({}).strict(),
  },
  /** Recomputes the proposals of one product and kind; enqueued by the relay after forecasts change. */
  "matching.recompute": {
    queue: "matching",
    payload: z.object({ productId: z.number().int().positive(), kind: z.enum(["DOWNSTREAM", "UPSTREAM"]) }).strict(),
  },
  /** Expires unanswered proposals and accepted matches never fulfilled. */
  "matching.expire": {
    queue: "matching",
    payload: z.object({}).strict(),
  },
  "reports.flagOutliers": {
    queue: "reports",
    payload: z.object({ reportIds: z.array(z.number().int().positive()).min(1).max(5000) }).strict(),
  },
} as const satisfies Record<string, { queue: QueueName; payload: z.ZodType }>;

export type JobName = keyof typeof JOBS;
export type JobPayload<N extends JobName> = z.infer<(typeof JOBS)[N]["payload"]>;

/** Recurring jobs, kept as data; upserted as BullMQ job schedulers (UTC) when a worker starts. */
export interface ScheduleDefinition<N extends JobName = JobName> {
  id: string;
  job: N;
  pattern: string;
  payload: (config: { IDEMPOTENCY_TTL_HOURS: number }) => JobPayload<N>;
}

export const SCHEDULES: ScheduleDefinition[] = [
  {
    id: "purge-idempotency-keys-daily",
    job: "maintenance.purgeIdempotencyKeys",
    pattern: "17 3 * * *",
    payload: (config) => ({ olderThanHours: config.IDEMPOTENCY_TTL_HOURS }),
  },
  {
    id: "purge-outbox-daily",
    job: "maintenance.purgeOutbox",
    pattern: "27 3 * * *",
    payload: () => ({ olderThanHours: 24 * 7 }),
  },
  // 02:30 UTC is 10:30 in China, just after the default reporting cut-off (10:00 local): the
  // previous day is complete then.
  {
    id: "forecast-recompute-all-daily",
    job: "forecast.recomputeAll",
    pattern: "30 2 * * *",
    payload: () => ({}),
  },
  {
    id: "matching-expire-daily",
    job: "matching.expire",
    pattern: "45 2 * * *",
    payload: () => ({}),
  },
  {
    id: "forecast-evaluate-daily",
    job: "forecast.evaluate",
    pattern: "0 4 * * *",
    payload: () => ({}),
  },
];

/** The forecast job runs this long after the first event of a burst, taking the whole burst. */
export const FORECAST_DEBOUNCE_MS = 500;

/**
 * Deterministic id of the forecast job for the debounce window that `now` falls in: every event
 * of one window asks for the same job, which runs once the window has closed and so sees them all.
 */
export function forecastJobFor(now: number): { jobId: string; delay: number } {
  const window = Math.floor(now / FORECAST_DEBOUNCE_MS);
  return { jobId: `forecast-recompute-${window}`, delay: (window + 1) * FORECAST_DEBOUNCE_MS - now };
}

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
  // Rule evaluation after forecasts, matches and reports change; dispatch of alert events.
  alerts: { concurrency: 2 },
  // Pushes to webhooks, e-mail and the live subscription: many at once, each mostly waiting.
  deliveries: { concurrency: 8 },
  compliance: { concurrency: 1 },
  // Uploaded report files: one at a time per worker, each a long run of report batches.
  imports: { concurrency: 1 },
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
  /** Reconciles SHORTAGE_RISK alerts of a product with its latest forecasts. */
  "alerts.evaluateForecasts": {
    queue: "alerts",
    payload: z.object({ productId: z.number().int().positive() }).strict(),
  },
  /** Reconciles SUPPLY_MATCH and UPSTREAM_INPUT_SHORTAGE alerts of a product after a matching run. */
  "alerts.evaluateMatches": {
    queue: "alerts",
    payload: z.object({ productId: z.number().int().positive(), kind: z.enum(["DOWNSTREAM", "UPSTREAM"]) }).strict(),
  },
  /** Announces one SSE delivery (an alert event) to every API process's subscribers, through Redis. */
  "alerts.publish": {
    queue: "deliveries",
    payload: z.object({ deliveryId: z.string().uuid() }).strict(),
  },
  /** Fans one alert event out to the delivery log (live, webhooks, e-mail) and asks for the sends. */
  "alerts.dispatch": {
    queue: "alerts",
    payload: z.object({ eventId: z.number().int().positive() }).strict(),
  },
  /** One signed POST of a delivery to its webhook; retried with backoff (ALERT_DELIVERY_*). */
  "alerts.deliverWebhook": {
    queue: "deliveries",
    payload: z.object({ deliveryId: z.uuid() }).strict(),
  },
  /** One alert e-mail; the address is read at send time, never carried here. */
  "alerts.deliverEmail": {
    queue: "deliveries",
    payload: z.object({ deliveryId: z.uuid() }).strict(),
  },
  /** One message for what the per-recipient cap held back in a window; runs when the window ends. */
  "alerts.sendDigest": {
    queue: "deliveries",
    payload: z.object({ digestId: z.uuid(), channel: z.enum(["WEBHOOK", "EMAIL"]), windowStart: z.number().int().nonnegative() }).strict(),
  },
  /** Asks again for dispatch and delivery jobs that were lost (say by a Redis that lost its data). */
  "alerts.sweepDeliveries": {
    queue: "alerts",
    payload: z.object({}).strict(),
  },
  "reports.flagOutliers": {
    queue: "reports",
    payload: z.object({ reportIds: z.array(z.number().int().positive()).min(1).max(5000) }).strict(),
  },
  /** Refreshes the region/day rollups of the (product, day) slices reports changed; debounced by the relay. */
  "readModels.refreshRollups": {
    queue: "reports",
    payload: z.object({}).strict(),
  },
  /** Records which site-days were reported on time, late or not at all; raises and resolves REPORT_OVERDUE. */
  "compliance.check": {
    queue: "compliance",
    // asOf (an ISO instant) replays a check at another moment; absent: now.
    payload: z.object({ asOf: z.iso.datetime({ offset: true }).optional() }).strict(),
  },
  /** Reads an uploaded report file and submits its rows in batches as the uploader; resumes after the last stored batch. */
  "imports.process": {
    queue: "imports",
    payload: z.object({ importId: z.uuid() }).strict(),
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
  // Cut-offs fall at different UTC times per time zone and region schedule, so the check runs
  // through the day; a minute past the quarter, so that a report sent just before a cut-off has committed.
  {
    id: "compliance-check-quarter-hourly",
    job: "compliance.check",
    pattern: "1-59/15 * * * *",
    payload: () => ({}),
  },
  {
    id: "alerts-sweep-deliveries",
    job: "alerts.sweepDeliveries",
    pattern: "*/10 * * * *",
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

import { z } from "zod";

/**
 * Every job: its name, its queue and its payload schema. Payloads carry ids and numbers only,
 * never personal data. Adding a job here without a processor stops the worker at start-up.
 */
export const QUEUES = {
  maintenance: { concurrency: 1 },
} as const satisfies Record<string, { concurrency: number }>;
export type QueueName = keyof typeof QUEUES;

export const JOBS = {
  "maintenance.purgeIdempotencyKeys": {
    queue: "maintenance",
    payload: z.object({ olderThanHours: z.number().int().positive() }).strict(),
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
];

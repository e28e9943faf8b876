import { Queue, UnrecoverableError, Worker, type ConnectionOptions, type Job } from "bullmq";
import type { Config } from "../src/config.js";
import type { Database } from "../src/db/index.js";
import type { Logger } from "../src/logger.js";
import { JOBS, QUEUES, SCHEDULES, type JobName, type QueueName } from "./definitions.js";
import { processors as defaultProcessors, type ProcessorMap } from "./processors/index.js";

export interface WorkerDeps {
  config: Pick<Config, "QUEUE_PREFIX" | "IDEMPOTENCY_TTL_HOURS">;
  db: Database;
  logger: Logger;
  connection: ConnectionOptions;
  processors?: Partial<Record<string, unknown>>;
  jobs?: Record<string, { queue: string }>;
}

/** Refuses a registry where a job has no processor, or a processor has no job. */
export function checkRegistry(jobs: Record<string, { queue: string }>, processors: Partial<Record<string, unknown>>) {
  const missing = Object.keys(jobs).filter((name) => typeof processors[name] !== "function");
  const orphans = Object.keys(processors).filter((name) => !(name in jobs));
  const unknownQueues = Object.entries(jobs).filter(([, j]) => !(j.queue in QUEUES)).map(([n]) => n);
  const problems = [
    ...missing.map((n) => `job ${n} has no processor (add it to jobs/processors/index.ts)`),
    ...orphans.map((n) => `processor ${n} has no job definition (add it to jobs/definitions.ts)`),
    ...unknownQueues.map((n) => `job ${n} names a queue that is not in QUEUES`),
  ];
  if (problems.length) throw new Error(`the worker will not start:\n  ${problems.join("\n  ")}`);
}

export interface RunningWorker {
  queues: Map<QueueName, Queue>;
  /** Stops taking jobs and waits for the running ones to finish. */
  close(): Promise<void>;
}

export async function startWorker(deps: WorkerDeps): Promise<RunningWorker> {
  const jobs = deps.jobs ?? JOBS;
  const processors = (deps.processors ?? defaultProcessors) as Partial<ProcessorMap>;
  checkRegistry(jobs, processors);
  const prefix = deps.config.QUEUE_PREFIX;
  const queues = new Map<QueueName, Queue>();
  const workers: Worker[] = [];

  for (const [queueName, queueConfig] of Object.entries(QUEUES) as [QueueName, { concurrency: number }][]) {
    queues.set(queueName, new Queue(queueName, { connection: deps.connection, prefix }));
    const worker = new Worker(
      queueName,
      async (job: Job) => {
        const definition = (JOBS as Record<string, (typeof JOBS)[JobName]>)[job.name];
        const processor = processors[job.name as JobName] as ((p: unknown, c: unknown) => Promise<unknown>) | undefined;
        if (!definition || !processor) throw new UnrecoverableError(`no processor for job ${job.name}`);
        const parsed = definition.payload.safeParse(job.data);
        // A malformed payload will not improve with retries.
        if (!parsed.success) throw new UnrecoverableError(`invalid payload for ${job.name}: ${parsed.error.message}`);
        return processor(parsed.data, { db: deps.db, logger: deps.logger.child({ job: job.name, jobId: job.id }) });
      },
      { connection: deps.connection, prefix, concurrency: queueConfig.concurrency, autorun: true },
    );
    worker.on("failed", (job, error) => deps.logger.warn({ job: job?.name, jobId: job?.id, err: error.message }, "job failed"));
    worker.on("error", (error) => deps.logger.error({ err: error.message }, "worker error"));
    workers.push(worker);
  }

  for (const schedule of SCHEDULES) {
    const queue = queues.get(JOBS[schedule.job].queue)!;
    await queue.upsertJobScheduler(
      schedule.id,
      { pattern: schedule.pattern, tz: "UTC" },
      {
        name: schedule.job,
        data: schedule.payload(deps.config),
        opts: { attempts: 3, backoff: { type: "exponential", delay: 10_000 }, removeOnComplete: 100, removeOnFail: 500 },
      },
    );
  }
  deps.logger.info({ queues: [...queues.keys()], schedules: SCHEDULES.map((s) => s.id) }, "worker started");

  return {
    queues,
    async close() {
      await Promise.all(workers.map((w) => w.close()));
      await Promise.all([...queues.values()].map((q) => q.close()));
    },
  };
}

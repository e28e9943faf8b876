import { hostname } from "node:os";
import { Queue, UnrecoverableError, Worker, type ConnectionOptions, type Job } from "bullmq";
import { workerConfigSchema, type Config } from "../src/config.js";
import { DomainError } from "../src/domain/errors.js";
import type { Database, DatabaseHandle } from "../src/db/index.js";
import type { Logger } from "../src/logger.js";
import type { AlertPublisher } from "../src/domain/alerts/live.js";
import type { InvalidateResponses } from "../src/http/response-cache.js";
import { forecastWorkPending, relayOutbox, type RelayedJob } from "../src/domain/outbox.js";
import { JOBS, QUEUES, SCHEDULES, forecastJobFor, type JobName, type QueueName } from "./definitions.js";
import { processors as defaultProcessors, type ProcessorMap } from "./processors/index.js";
import { jobDuration } from "../src/metrics.js";
import { leafThreadCount, startLeafThreads } from "../src/domain/forecast/leaf-threads.js";

export interface WorkerDeps {
  /** The queue settings are needed; channels (SMTP, secrets) read the rest when present. */
  config: Pick<Config, "QUEUE_PREFIX" | "IDEMPOTENCY_TTL_HOURS"> & Partial<Config>;
  db: Database;
  logger: Logger;
  connection: ConnectionOptions;
  processors?: Partial<Record<string, unknown>>;
  jobs?: Record<string, { queue: string }>;
  /** How often the outbox relay looks for new events (ms); 0 turns it off. Default 250. */
  relayIntervalMs?: number;
  /** The database's LISTEN, so the relay wakes as soon as events commit rather than at its next poll. */
  listen?: DatabaseHandle["listen"];
  /** Publishes live alert events to the API processes (alerts.publish); main.ts passes it. */
  publishAlert?: AlertPublisher;
  /** Tells the API processes to drop cached answers after forecasts are written; main.ts passes it. */
  invalidateResponses?: InvalidateResponses;
  /** Stored on every job it runs (BullMQ's processedBy), to tell workers apart; default host:pid. */
  name?: string;
}

/** While forecast work waits (say after Redis was away), the forecast job is asked for this often. */
const SWEEP_INTERVAL_MS = 5_000;
const JOB_DEFAULTS = { attempts: 5, backoff: { type: "exponential", delay: 2_000 }, removeOnComplete: 1000, removeOnFail: 5000 } as const;

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
  const settings = workerConfigSchema.parse(deps.config);
  const name = deps.name ?? `${hostname()}:${process.pid}`;
  const queues = new Map<QueueName, Queue>();
  const workers: Worker[] = [];
  // Set on close: long jobs (a forecast recompute) end after their current transaction and leave
  // the rest to the other workers, so a shutdown waits for seconds, not for the whole job.
  let stopping = false;
  const threadCount = leafThreadCount(settings);
  const leafThreads =
    threadCount > 0 ? startLeafThreads(threadCount, { onError: (error) => deps.logger.error({ err: error.message }, "a leaf forecast thread failed") }) : undefined;
  // Now, under an id of its own: the debounced job may be minutes away behind a busy worker.
  const requestForecast = async (key: string) => {
    await queues.get("forecast")!.add("forecast.recompute", { trigger: "sweep" }, { ...JOB_DEFAULTS, jobId: `forecast-help-${key}` });
  };

  for (const [queueName, queueConfig] of Object.entries(QUEUES) as [QueueName, { concurrency: number }][]) {
    // Producers fail fast while Redis is away instead of queueing commands in memory: the relay
    // then leaves its events in the outbox (and its transaction short) and tries again later.
    queues.set(queueName, new Queue(queueName, { connection: { ...(deps.connection as object), enableOfflineQueue: false } as ConnectionOptions, prefix }));
    const worker = new Worker(
      queueName,
      async (job: Job) => {
        const definition = (JOBS as Record<string, (typeof JOBS)[JobName]>)[job.name];
        const processor = processors[job.name as JobName] as ((p: unknown, c: unknown) => Promise<unknown>) | undefined;
        if (!definition || !processor) throw new UnrecoverableError(`no processor for job ${job.name}`);
        const parsed = definition.payload.safeParse(job.data);
        // A malformed payload will not improve with retries.
        if (!parsed.success) throw new UnrecoverableError(`invalid payload for ${job.name}: ${parsed.error.message}`);
        try {
          return await processor(parsed.data, {
            db: deps.db,
            logger: deps.logger.child({ job: job.name, jobId: job.id }),
            config: deps.config,
            connection: deps.connection,
            publishAlert: deps.publishAlert,
            invalidateResponses: deps.invalidateResponses,
            attempt: { made: job.attemptsMade, max: job.opts.attempts ?? 1 },
            // The same on every attempt, also for a job taken over from a dead worker.
            job: { id: job.id ?? "", dueAt: dueAt(job) },
            stopping: () => stopping,
            requestForecast,
            leafThreads,
          });
        } catch (error) {
          // A domain error (bad data, a refused input) is the same on every attempt: fail now and
          // keep the message; anything else (a lost connection, a deadlock) is retried with backoff.
          if (error instanceof DomainError) throw new UnrecoverableError(`${job.name}: ${error.message}`);
          throw error;
        }
      },
      {
        connection: deps.connection,
        prefix,
        name,
        concurrency: queueConfig.concurrency,
        autorun: true,
        lockDuration: settings.WORKER_LOCK_DURATION_MS,
        stalledInterval: settings.WORKER_STALLED_INTERVAL_MS,
        maxStalledCount: settings.WORKER_MAX_STALLED_COUNT,
      },
    );
    const observe = (job: Job | undefined, outcome: "completed" | "failed") => {
      if (job?.processedOn && job.finishedOn) jobDuration.observe({ queue: queueName, name: job.name, outcome }, (job.finishedOn - job.processedOn) / 1000);
    };
    worker.on("completed", (job) => observe(job, "completed"));
    worker.on("failed", (job, error) => {
      observe(job, "failed");
      deps.logger.warn({ job: job?.name, jobId: job?.id, err: error.message }, "job failed");
    });
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
  const relay = startRelay(deps, queues);
  deps.logger.info({ queues: [...queues.keys()], schedules: SCHEDULES.map((s) => s.id) }, "worker started");

  return {
    queues,
    async close() {
      stopping = true;
      await relay.stop();
      await Promise.all(workers.map((w) => w.close()));
      await leafThreads?.close();
      await Promise.all([...queues.values()].map((q) => q.close()));
    },
  };
}

/**
 * When a job was due, the same on every attempt: a scheduler's job carries its slot in its id
 * (`repeat:<scheduler>:<ms>`; its timestamp is when the previous one ran), any other job was due
 * when it was added (a retry's backoff changes its delay, not its timestamp).
 */
export function dueAt(job: Pick<Job, "id" | "timestamp">): number {
  const slot = /^repeat:.+:(\d+)$/.exec(job.id ?? "");
  return slot ? Number(slot[1]) : job.timestamp;
}

/** Asks for the (debounced) forecast job: every event of one window asks for the same one. */
async function pokeForecast(queues: Map<QueueName, Queue>, trigger: "reports" | "sweep") {
  const { jobId, delay } = forecastJobFor(Date.now());
  await queues.get("forecast")!.add("forecast.recompute", { trigger }, { ...JOB_DEFAULTS, jobId, delay });
}

/**
 * The outbox relay loop: turns committed events into forecast work and jobs, and asks for the
 * (debounced) forecast job while work waits. Every worker runs one; they share the events
 * through row locks. Failures (Postgres or Redis away) are logged once per outage and retried
 * on the next tick: the events stay in the outbox until relayed.
 */
function startRelay(deps: WorkerDeps, queues: Map<QueueName, Queue>) {
  const interval = deps.relayIntervalMs ?? 250;
  if (interval <= 0) return { stop: async () => {} };
  const logger = deps.logger.child({ component: "outbox-relay" });
  let stopped = false;
  let lastSweep = 0;
  let failing = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  const enqueue = async (jobs: RelayedJob[]) => {
    const byQueue = new Map<QueueName, RelayedJob[]>();
    for (const job of jobs) {
      const definition = (JOBS as Record<string, { queue: QueueName }>)[job.name];
      if (!definition) {
        logger.error({ job: job.name, jobId: job.jobId }, "an outbox event asked for a job this version does not know; dropped");
        continue;
      }
      const queue = definition.queue;
      byQueue.set(queue, [...(byQueue.get(queue) ?? []), job]);
    }
    for (const [queue, list] of byQueue) {
      await queues.get(queue)!.addBulk(list.map((j) => ({ name: j.name, data: j.data, opts: { ...JOB_DEFAULTS, ...j.opts, jobId: j.jobId, ...(j.delay ? { delay: j.delay } : {}) } })));
    }
  };
  const tick = async () => {
    try {
      let marked = 0;
      // Drain what is there, in bounded transactions.
      for (;;) {
        const result = await relayOutbox(deps.db, enqueue);
        for (const u of result.unknown) logger.error({ outboxId: u.id, topic: u.topic, problem: u.problem }, "outbox event not understood; marked processed");
        marked += result.pairs;
        if (result.events < 200 || stopped) break;
      }
      const now = Date.now();
      // Only events that marked forecast work ask for the forecast job (alert and delivery events
      // are most of the traffic, and each worker would otherwise ask for an idle job per window).
      if (marked > 0) await pokeForecast(queues, "reports");
      else if (now - lastSweep >= SWEEP_INTERVAL_MS) {
        lastSweep = now;
        if (await forecastWorkPending(deps.db)) await pokeForecast(queues, "sweep");
      }
      if (failing) logger.info("outbox relay recovered");
      failing = false;
    } catch (error) {
      if (!failing) logger.warn({ err: (error as Error).message }, "outbox relay failed; retrying until it works");
      failing = true;
    }
  };
  let ticking = false;
  let wake = false;
  const loop = () => {
    if (stopped) return;
    ticking = true;
    running = tick().finally(() => {
      ticking = false;
      if (stopped) return;
      timer = setTimeout(loop, wake ? 0 : interval);
      wake = false;
    });
  };
  // A commit's NOTIFY: relay now, or right after the tick that is running (it may have missed it).
  const poke = () => {
    if (stopped) return;
    if (ticking) wake = true;
    else {
      clearTimeout(timer);
      loop();
    }
  };
  const unlisten = deps.listen?.("outbox", poke).catch((error: Error) => {
    logger.warn({ err: error.message }, "cannot LISTEN for outbox events; relaying on the poll alone");
    return undefined;
  });
  loop();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await (await unlisten)?.().catch(() => {});
      await running;
    },
  };
}

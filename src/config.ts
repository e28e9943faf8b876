import { availableParallelism } from "node:os";
import { z } from "zod";

/**
 * The only place that reads `process.env`. Everything else receives a parsed {@link Config}.
 * An invalid environment stops start-up with a message naming each bad variable.
 */
const optionalUrl = z
  .string()
  .trim()
  .transform((v) => (v === "" ? undefined : v))
  .optional();

/** Development default of SECRET_KEY: fine on a laptop, refused in production. */
export const DEVELOPMENT_SECRET_KEY = "development-only-secret-key-do-not-use-in-production";

const positiveInt = (fallback: number) => z.coerce.number().int().min(1).default(fallback);

/**
 * What alert delivery reads (webhooks, e-mail, the storm cap). A worker started with only part
 * of the configuration (tests, tools) gets these defaults by parsing what it has with this.
 */
export const alertDeliveryConfigSchema = z.object({
  /** Encrypts webhook signing secrets at rest (AES-256-GCM); required in production. */
  SECRET_KEY: z.string().min(32, "must be at least 32 characters (e.g. `openssl rand -base64 32`)").default(DEVELOPMENT_SECRET_KEY),
  /** When set, GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>` (Prometheus' bearer_token). */
  METRICS_TOKEN: z.string().min(16, "must be at least 16 characters (e.g. `openssl rand -hex 16`)").optional(),
  /** SMTP server for alert e-mail, e.g. smtp://user:pass@mail.example:587; unset = no e-mail. */
  SMTP_URL: optionalUrl.refine((v) => v === undefined || /^smtps?:\/\/[^/]/i.test(v), "must be an smtp:// or smtps:// URL, e.g. smtp://127.0.0.1:25"),
  /** Sender of alert e-mail. */
  MAIL_FROM: z.string().trim().min(3).default("Supply alerts <alerts@localhost>"),
  /** Per recipient (webhook or user's e-mail): at most this many alert messages per window ... */
  ALERT_NOTIFY_CAP: positiveInt(10),
  /** ... of this many minutes (fractions allowed); the rest go out as one digest when it ends. */
  ALERT_NOTIFY_WINDOW_MINUTES: z.coerce.number().positive().max(24 * 60).default(10),
  /** Attempts per webhook or e-mail delivery before it is marked FAILED. */
  ALERT_DELIVERY_ATTEMPTS: z.coerce.number().int().min(1).max(25).default(8),
  /** Wait before the first retry; it doubles on each further one (10 s, 20 s, ... about 21 minutes in all). */
  ALERT_DELIVERY_BACKOFF_MS: positiveInt(10_000),
  /** How long a webhook endpoint has to answer. */
  WEBHOOK_TIMEOUT_MS: positiveInt(10_000),
  /** A webhook is disabled after this many deliveries in a row failed (every attempt). */
  WEBHOOK_DISABLE_AFTER_FAILURES: positiveInt(5),
});
export type AlertDeliveryConfig = z.infer<typeof alertDeliveryConfigSchema>;

/**
 * Limits against abuse of the HTTP API (src/http/limits.ts). The defaults fit every legitimate
 * operation of the test suite and a 5,000-row `submitReports` with room to spare.
 */
export const httpLimitsConfigSchema = z.object({
  /** Deepest nesting of fields an operation may ask for (graphql-armor max-depth). */
  GRAPHQL_MAX_DEPTH: positiveInt(12),
  /** Aliased fields per operation (graphql-armor max-aliases). */
  GRAPHQL_MAX_ALIASES: z.coerce.number().int().min(0).default(15),
  /**
   * Estimated cost per operation (graphql-armor cost-limit, with page sizes as the server answers
   * them): a page of 100 rows with their nested objects costs about 5,000 to 20,000.
   */
  GRAPHQL_MAX_COST: positiveInt(25_000),
  /** Lexical tokens per query document; variables are not counted (graphql-armor max-tokens). */
  GRAPHQL_MAX_TOKENS: positiveInt(5_000),
  /** Operations per batched request (a JSON array body); 0 refuses batches. */
  GRAPHQL_MAX_BATCH: z.coerce.number().int().min(0).max(100).default(10),
  /** Largest request body other than an upload, in bytes (5,000 report rows with every figure: about 1.3 MB, 1.9 MB with the longest codes). */
  BODY_LIMIT_BYTES: positiveInt(10 * 1024 * 1024),
  /** Largest multipart (file upload) request, in bytes. */
  UPLOAD_LIMIT_BYTES: positiveInt(50 * 1024 * 1024),
  /** Queries and subscriptions per API token per minute, counted in Redis across every API process. */
  RATE_LIMIT_READS_PER_MINUTE: positiveInt(600),
  /**
   * Mutations per API token per minute (a `submitReports` of up to 5,000 rows is one): room for a
   * backfill of 1.5 million rows a minute, while a client stuck in a loop is held to 5 a second.
   */
  RATE_LIMIT_WRITES_PER_MINUTE: positiveInt(300),
  /** Operations per minute per client IP address without a valid token. */
  RATE_LIMIT_ANONYMOUS_PER_MINUTE: positiveInt(60),
  /** Proxies in front of the API that append to X-Forwarded-For; 0 = use the socket's address. */
  TRUST_PROXY_HOPS: z.coerce.number().int().min(0).max(10).default(0),
});
export type HttpLimitsConfig = z.infer<typeof httpLimitsConfigSchema>;

/**
 * How workers hold and hand over jobs (BullMQ). A worker holds a lock on each job it runs and
 * renews it every half `WORKER_LOCK_DURATION_MS`; when the worker dies (SIGKILL, a lost machine)
 * the lock expires, and the next stalled-job check of any other worker (every
 * `WORKER_STALLED_INTERVAL_MS`) puts the job back in its queue for whoever is free. Lower values
 * hand work over sooner; the lock must outlast the longest stretch a processor keeps the event
 * loop busy (the forecast kernel runs on FORECAST_THREADS; what stays on the loop is well under a
 * second), or a live worker loses its job.
 */
export const workerConfigSchema = z.object({
  WORKER_LOCK_DURATION_MS: z.coerce.number().int().min(1_000).max(600_000).default(30_000),
  WORKER_STALLED_INTERVAL_MS: z.coerce.number().int().min(500).max(600_000).default(30_000),
  /** Times a job may be taken over from a dead worker before it fails (a job that kills its worker must not kill them all). */
  WORKER_MAX_STALLED_COUNT: z.coerce.number().int().min(0).max(10).default(1),
  /** A product with more dirty (region, product) pairs than this is forecast in transactions of about this many pairs, whole province subtrees each, shared by every worker. */
  FORECAST_CHUNK_PAIRS: positiveInt(1_000),
  /** Products a worker's recompute computes at once, each in its own transaction (a database connection each). */
  FORECAST_CONCURRENCY: z.coerce.number().int().min(1).max(16).default(2),
  /**
   * Threads that run a worker's leaf forecasts (the CPU-heavy kernel) beside its event loop, at
   * most FORECAST_CONCURRENCY of them; 0 runs them on the event loop. Default: one per core (on 2
   * cores, 2 threads finished the daily recompute in 17-20 s against 22-24 s with 1: the loop and
   * the database mostly wait).
   */
  FORECAST_THREADS: z.coerce.number().int().min(0).max(64).default(availableParallelism()),
});
export type WorkerConfig = z.infer<typeof workerConfigSchema>;

export const configSchema = z.object({
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  HOST: z.string().default("0.0.0.0"),
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  DATABASE_URL: optionalUrl,
  REDIS_URL: optionalUrl,
  DATA_DIR: z.string().default("./.data"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** Binary started when REDIS_URL is unset (the embedded, single-machine mode). */
  REDIS_SERVER_BIN: z.string().default("redis-server"),
  /** BullMQ key prefix; the braces make every queue key hash to one Redis Cluster slot. */
  QUEUE_PREFIX: z.string().default("{supply}"),
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(10),
  /** Reports older than this many days are stored but flagged as a backfill. */
  REPORT_BACKFILL_DAYS: z.coerce.number().int().min(1).default(7),
  /** How long an idempotency key remembers its first result. */
  IDEMPOTENCY_TTL_HOURS: z.coerce.number().int().min(1).default(72),
  /**
   * Planner dashboard answers (`shortages`, `forecast`) are kept per API process at most this long;
   * new forecasts drop them at once (src/http/response-cache.ts). 0 turns the cache off.
   */
  RESPONSE_CACHE_TTL_SECONDS: z.coerce.number().int().min(0).max(3600).default(60),
  /** Answers kept per API process (a page of 100 shortages is about 50 KB). */
  RESPONSE_CACHE_MAX_ENTRIES: positiveInt(1000),
  /**
   * A bearer token, once checked, is trusted by that API process this long; a revocation through
   * the API reaches every process at once, one made in the database directly within this time. 0 = check every request.
   */
  AUTH_CACHE_SECONDS: z.coerce.number().int().min(0).max(300).default(5),
  /**
   * `api` mode only: how many API processes share the port (node:cluster; the first process hands
   * connections out in turn). One per core lets a single API machine use all of them.
   */
  API_PROCESSES: z.coerce.number().int().min(1).max(64).default(1),
  /** Start the worker inside the API process (`npm start`); `docker compose` runs it separately. */
  RUN_WORKER: z
    .enum(["true", "false", "1", "0"])
    .default("true")
    .transform((v) => v === "true" || v === "1"),
  ...alertDeliveryConfigSchema.shape,
  ...httpLimitsConfigSchema.shape,
  ...workerConfigSchema.shape,
}).superRefine((config, ctx) => {
  if (config.NODE_ENV === "production" && config.SECRET_KEY === DEVELOPMENT_SECRET_KEY) {
    ctx.addIssue({
      code: "custom",
      path: ["SECRET_KEY"],
      message: "is required in production: set it to 32 or more random characters (e.g. `openssl rand -base64 32`) and keep it; it encrypts webhook signing secrets",
    });
  }
  if (config.API_PROCESSES > 1 && !config.DATABASE_URL) {
    ctx.addIssue({
      code: "custom",
      path: ["API_PROCESSES"],
      message: "above 1 needs DATABASE_URL: the embedded database belongs to one process; set DATABASE_URL to a PostgreSQL server, or leave API_PROCESSES at 1",
    });
  }
});

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map(
      (i) => `  ${i.path.join(".")}: ${i.message}`,
    );
    throw new ConfigError(
      `Invalid configuration; fix these environment variables and start again:\n${lines.join("\n")}`,
    );
  }
  return parsed.data;
}

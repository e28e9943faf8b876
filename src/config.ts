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
  /** Start the worker inside the API process (`npm start`); `docker compose` runs it separately. */
  RUN_WORKER: z
    .enum(["true", "false", "1", "0"])
    .default("true")
    .transform((v) => v === "true" || v === "1"),
  ...alertDeliveryConfigSchema.shape,
}).superRefine((config, ctx) => {
  if (config.NODE_ENV === "production" && config.SECRET_KEY === DEVELOPMENT_SECRET_KEY) {
    ctx.addIssue({
      code: "custom",
      path: ["SECRET_KEY"],
      message: "is required in production: set it to 32 or more random characters (e.g. `openssl rand -base64 32`) and keep it; it encrypts webhook signing secrets",
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

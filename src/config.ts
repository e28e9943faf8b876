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

// The service's one entry point: `all` (default: API and worker in one process), `api`, `worker`
// or `migrate`. Configuration comes from the environment, parsed once (src/config.ts).
import cluster from "node:cluster";
import type { Server } from "node:http";
import { ConfigError, loadConfig } from "./config.js";
import { openDatabase } from "./db/index.js";
import { createLiveAlerts } from "./domain/alerts/live.js";
import { createHttpServer } from "./http/server.js";
import { createResponseInvalidator } from "./http/response-cache.js";
import { createLogger } from "./logger.js";
import { openRedis, RedisUnavailableError, type RedisHandle } from "./redis.js";
import { startWorker, type RunningWorker } from "../jobs/worker.js";

type Mode = "all" | "api" | "worker" | "migrate";

async function main() {
  const mode = (process.argv[2] ?? "all") as Mode;
  if (!["all", "api", "worker", "migrate"].includes(mode)) {
    console.error(`unknown mode ${mode}; use one of: all (default), api, worker, migrate`);
    process.exit(2);
  }
  const config = loadConfig();
  const logger = createLogger(config);
  const database = openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR, poolSize: config.DATABASE_POOL_SIZE });
  await database.migrate();
  logger.info({ database: database.kind }, "database migrated");
  if (mode === "migrate") {
    await database.close();
    return;
  }
  if (mode === "api" && config.API_PROCESSES > 1 && cluster.isPrimary) {
    await database.close();
    superviseApiProcesses(config.API_PROCESSES, logger);
    return;
  }

  const redis: RedisHandle = await openRedis(config, logger);
  // Workers publish live alert events and the API's subscribers hear them, through Redis, across
  // processes (a worker-only process never opens the subscribing connection).
  const live = createLiveAlerts({ url: redis.url, prefix: config.QUEUE_PREFIX, logger });
  // Workers tell every API process, through Redis, when new forecasts make cached answers stale.
  const responses = createResponseInvalidator({ url: redis.url, prefix: config.QUEUE_PREFIX, logger });
  let worker: RunningWorker | undefined;
  if (mode === "worker" || (mode === "all" && config.RUN_WORKER)) {
    worker = await startWorker({
      config,
      db: database.db,
      logger,
      connection: { url: redis.url, maxRetriesPerRequest: null },
      publishAlert: live.publish,
      invalidateResponses: responses.invalidate,
      listen: database.listen,
    });
  }
  // The worker answers /healthz and /readyz too, so orchestrators can probe every process alike.
  const server: Server = createHttpServer({
    config,
    db: database.db,
    logger,
    ...(mode === "worker" ? {} : { live, cacheResponses: true }),
    // Per-token rate limits are counted in the same Redis, so they hold across API processes.
    redisUrl: redis.url,
    ready: async () => {
      await database.ping().catch((e: Error) => Promise.reject(new Error(`database unreachable: ${e.message}`)));
      await redis.ping().catch((e: Error) => Promise.reject(new Error(`redis unreachable: ${e.message}`)));
    },
  });
  await new Promise<void>((resolve) => server.listen(config.PORT, config.HOST, resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : config.PORT;
  logger.info({ mode, port, database: database.kind, worker: !!worker }, `listening on http://localhost:${port}/graphql`);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down: finishing running jobs and requests");
    server.close();
    server.closeIdleConnections();
    await worker?.close();
    // Open alert streams are not completed: the exit cuts them, so their clients reconnect elsewhere.
    await live.close();
    await responses.close();
    await redis.close();
    await database.close();
    logger.info("stopped");
    process.exit(0);
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));
}

/**
 * The first process of `api` mode with API_PROCESSES > 1: it migrated the database, and now runs
 * that many API processes sharing the port. One that dies is replaced (after a second, so a crash
 * at start-up does not spin); SIGTERM or SIGINT stops them all, each finishing its requests.
 */
function superviseApiProcesses(count: number, logger: ReturnType<typeof createLogger>) {
  let stopping = false;
  const start = () => cluster.fork();
  cluster.on("exit", (child, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        logger.info("stopped");
        process.exit(0);
      }
      return;
    }
    logger.error({ pid: child.process.pid, code, signal }, "an API process exited; starting another in a second");
    setTimeout(() => {
      if (!stopping) start();
    }, 1000).unref();
  });
  for (let i = 0; i < count; i++) start();
  logger.info({ processes: count }, "API processes started");
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "stopping the API processes");
    for (const child of Object.values(cluster.workers ?? {})) child?.process.kill(signal === "SIGINT" ? "SIGTERM" : signal);
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
}

main().catch((error) => {
  if (error instanceof ConfigError || error instanceof RedisUnavailableError) console.error(error.message);
  else console.error(error);
  process.exit(1);
});

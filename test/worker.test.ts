import { randomBytes } from "node:crypto";
import { QueueEvents } from "bullmq";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkRegistry, startWorker, type RunningWorker } from "../jobs/worker.js";
import { JOBS, SCHEDULES } from "../jobs/definitions.js";
import { processors } from "../jobs/processors/index.js";
import { badInput } from "../src/domain/errors.js";
import { createLogger } from "../src/logger.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { makeUser, seedWorld } from "./helpers/fixtures.js";
import { TEST_REDIS_URL } from "./helpers/env.js";
import { clearRedisPrefix } from "./helpers/redis.js";

const prefix = `{test-${randomBytes(4).toString("hex")}}`;
const connection = { url: TEST_REDIS_URL, maxRetriesPerRequest: null };
let t: TestDatabase;
let worker: RunningWorker;
let events: QueueEvents;

beforeAll(async () => {
  t = await createTestDatabase();
  worker = await startWorker({
    config: { QUEUE_PREFIX: prefix, IDEMPOTENCY_TTL_HOURS: 72 },
    db: t.db,
    logger: createLogger({ LOG_LEVEL: "silent" }),
    connection,
  });
  events = new QueueEvents("maintenance", { connection, prefix });
  await events.waitUntilReady();
});

afterAll(async () => {
  await events?.close();
  await worker?.close();
  // Remove every key this file created: the Redis is shared with other runs.
  await clearRedisPrefix(TEST_REDIS_URL, prefix);
  await t?.drop();
});

describe("job registry", () => {
  it("refuses to start when a job has no processor or a processor has no job", () => {
    expect(() => checkRegistry(JOBS, processors)).not.toThrow();
    expect(() => checkRegistry({ ...JOBS, "reports.forecast": { queue: "maintenance" } }, processors)).toThrow(
      /job reports.forecast has no processor/,
    );
    expect(() => checkRegistry(JOBS, { ...processors, stray: async () => {} })).toThrow(/processor stray has no job definition/);
  });

  it("registers the daily schedulers as data, in UTC", async () => {
    const schedulers = (await Promise.all([...worker.queues.values()].map((q) => q.getJobSchedulers()))).flat();
    expect(schedulers.map((s) => [s.key, s.pattern, s.tz]).sort()).toEqual(SCHEDULES.map((s) => [s.id, s.pattern, "UTC"]).sort());
    expect(schedulers.map((s) => s.key)).toContain("purge-idempotency-keys-daily");
    expect(schedulers.map((s) => s.key)).toContain("forecast-recompute-all-daily");
  });
});

describe("maintenance.purgeIdempotencyKeys", () => {
  it("deletes keys older than the TTL, keeps fresh ones, and is harmless when run twice", async () => {
    await seedWorld(t.db);
    const user = await makeUser(t.db, "REPORTER", { organizationId: (await t.db.query.organizationTable.findFirst())!.id });
    await t.db.execute(sql`insert into idempotency_key (user_id, operation, key, request_hash, created_at) values
      (${user.viewer.userId}::uuid, 'submitReports', 'old', 'h', now() - interval '100 hours'),
      (${user.viewer.userId}::uuid, 'submitReports', 'fresh', 'h', now())`);
    const queue = worker.queues.get("maintenance")!;
    for (const attempt of [1, 2]) {
      const job = await queue.add("maintenance.purgeIdempotencyKeys", { olderThanHours: 72 }, { jobId: `purge-test-${attempt}` });
      expect(await job.waitUntilFinished(events, 10_000)).toEqual({ deleted: attempt === 1 ? 1 : 0 });
    }
    const left = await t.db.execute<{ key: string }>(sql`select key from idempotency_key order by key`, "objects");
    expect(left.map((r) => r.key)).toEqual(["fresh"]);
  });

  it("fails a malformed payload at once, without retries", async () => {
    const queue = worker.queues.get("maintenance")!;
    const job = await queue.add("maintenance.purgeIdempotencyKeys", { olderThanHours: "soon" } as never, { jobId: "purge-bad", attempts: 5 });
    await expect(job.waitUntilFinished(events, 10_000)).rejects.toThrow(/invalid payload for maintenance.purgeIdempotencyKeys/);
    const failed = await queue.getJob("purge-bad");
    expect(failed?.attemptsMade).toBe(1);
  });
});

describe("failures inside a processor", () => {
  it("fails a domain error at once with its message, and retries anything else", async () => {
    const p2 = `{test-${randomBytes(4).toString("hex")}}`;
    let transient = 0;
    const w2 = await startWorker({
      config: { QUEUE_PREFIX: p2, IDEMPOTENCY_TTL_HOURS: 72 },
      db: t.db,
      logger: createLogger({ LOG_LEVEL: "silent" }),
      connection,
      relayIntervalMs: 0,
      processors: {
        ...processors,
        "maintenance.purgeOutbox": async () => {
          throw badInput("olderThanHours is too small for this database; use at least 24");
        },
        "maintenance.purgeIdempotencyKeys": async () => {
          if (++transient < 3) throw new Error("connection reset");
          return { deleted: 0 };
        },
      },
    });
    const ev = new QueueEvents("maintenance", { connection, prefix: p2 });
    await ev.waitUntilReady();
    try {
      const queue = w2.queues.get("maintenance")!;
      const bad = await queue.add("maintenance.purgeOutbox", { olderThanHours: 1 }, { jobId: "domain", attempts: 5, backoff: { type: "fixed", delay: 10 } });
      await expect(bad.waitUntilFinished(ev, 10_000)).rejects.toThrow(/use at least 24/);
      expect((await queue.getJob("domain"))?.attemptsMade).toBe(1);
      const flaky = await queue.add("maintenance.purgeIdempotencyKeys", { olderThanHours: 1 }, { jobId: "flaky", attempts: 5, backoff: { type: "fixed", delay: 10 } });
      expect(await flaky.waitUntilFinished(ev, 10_000)).toEqual({ deleted: 0 });
      expect((await queue.getJob("flaky"))?.attemptsMade).toBe(3);
    } finally {
      await ev.close();
      await w2.close();
      await clearRedisPrefix(TEST_REDIS_URL, p2);
    }
  });
});

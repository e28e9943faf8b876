// The forecast pipeline through the real worker: outbox relay, BullMQ queues on a real Redis,
// debouncing, and recovery when Redis goes away.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { forecastJobFor, FORECAST_DEBOUNCE_MS, SCHEDULES } from "../jobs/definitions.js";
import { startWorker, type RunningWorker } from "../jobs/worker.js";
import { submitReports } from "../src/domain/reports/ingest.js";
import { dateOfDay, dayNumber } from "../src/domain/reports/validate.js";
import { createLogger } from "../src/logger.js";
import { freePort } from "../src/redis.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { makeUser, seedWorld, type TestUser } from "./helpers/fixtures.js";
import { TEST_REDIS_URL } from "./helpers/env.js";
import { clearRedisPrefix } from "./helpers/redis.js";

const lastDay = dayNumber(new Date(Date.now() - 86_400_000).toISOString().slice(0, 10));
const day = (offset: number) => dateOfDay(lastDay + offset);
const logger = createLogger({ LOG_LEVEL: "silent" });

let t: TestDatabase;
let reporter: TestUser;

/** The newest forecast of Xihu for a product, with when it was computed. */
async function xihuForecast(productCode: string) {
  const [row] = await t.db.execute<{ computed_at: string; on_hand: number; origin_date: string }>(
    sql`select f.computed_at, f.on_hand, f.origin_date::text from forecast_latest l join forecast f on f.id = l.forecast_id
        where l.region_id = (select id from region where code = '330106') and l.product_id = (select id from product where code = ${productCode})`,
    "objects",
  );
  return row;
}

beforeAll(async () => {
  t = await createTestDatabase();
  const world = await seedWorld(t.db);
  reporter = await makeUser(t.db, "REPORTER", { organizationId: world.hospital.id });
});
afterAll(async () => t?.drop());

describe("debounced forecast jobs", () => {
  it("asks for one job per debounce window, due when the window closes", () => {
    const a = forecastJobFor(10 * FORECAST_DEBOUNCE_MS + 1);
    const b = forecastJobFor(11 * FORECAST_DEBOUNCE_MS - 1);
    expect(a.jobId).toBe(b.jobId);
    expect(a.delay).toBe(FORECAST_DEBOUNCE_MS - 1);
    expect(b.delay).toBe(1);
    expect(forecastJobFor(11 * FORECAST_DEBOUNCE_MS).jobId).not.toBe(a.jobId);
  });

  it("turns a burst of 1,000 reports for one pair into a few jobs, and forecasts after the last one", async () => {
    const prefix = `{test-${randomBytes(4).toString("hex")}}`;
    const worker: RunningWorker = await startWorker({
      config: { QUEUE_PREFIX: prefix, IDEMPOTENCY_TTL_HOURS: 72 },
      db: t.db,
      logger,
      connection: { url: TEST_REDIS_URL, maxRetriesPerRequest: null },
      relayIntervalMs: 20,
    });
    try {
      // 1,000 reports of one site and product: 20 batches of 50 days, one after the other, each
      // a new submission or a correction of the days before.
      for (let b = 0; b < 20; b++) {
        const rows = Array.from({ length: 50 }, (_, i) => ({
          siteCode: "HZ-XIHU-H1", productCode: "GLOVES-NITRILE", date: day(-((b * 7 + i) % 120)), onHand: 1000 + b, consumed: 100, received: 100,
        }));
        const r = await submitReports(t.db, reporter.actor, rows, { backfillDays: 400 });
        expect(r.rejected).toEqual([]);
      }
      const lastSubmit = new Date();
      // Day 0's stock is the value of the last batch that wrote day 0.
      const latestOnHand = 1000 + Math.max(...Array.from({ length: 20 }, (_, b) => b).filter((b) => Array.from({ length: 50 }, (_, i) => (b * 7 + i) % 120).includes(0)));
      await vi.waitFor(async () => {
        const f = await xihuForecast("GLOVES-NITRILE");
        expect(f?.on_hand).toBe(latestOnHand);
        const [pending] = await t.db.execute<{ n: number }>(sql`select (select count(*) from forecast_dirty) + (select count(*) from outbox where processed_at is null) as n`, "objects");
        expect(Number(pending!.n)).toBe(0);
      }, { timeout: 20_000, interval: 50 });
      const f = (await xihuForecast("GLOVES-NITRILE"))!;
      expect(new Date(f.computed_at).getTime()).toBeGreaterThanOrEqual(lastSubmit.getTime() - 1000);
      const forecastQueue = worker.queues.get("forecast")!;
      const jobs = (await forecastQueue.getJobs(["completed", "active", "delayed", "waiting"])).filter((j) => j.name === "forecast.recompute");
      const runs = await t.db.execute<{ n: number }>(
        sql`select count(*)::int as n from forecast_run where product_id = (select id from product where code = 'GLOVES-NITRILE')`,
        "objects",
      );
      // One job per debounce window the burst spanned, not one per report or per batch.
      expect(jobs.length).toBeGreaterThanOrEqual(1);
      expect(jobs.length).toBeLessThanOrEqual(10);
      expect(runs[0]!.n).toBeLessThanOrEqual(jobs.length);
      // Each batch's outbox event also asked for its outlier check, under a deterministic id.
      const outlierJobs = await worker.queues.get("reports")!.getJobs(["completed", "active", "waiting"]);
      expect(outlierJobs.filter((j) => j.name === "reports.flagOutliers").map((j) => j.id).sort()).toHaveLength(20);
    } finally {
      await worker.close();
      await clearRedisPrefix(TEST_REDIS_URL, prefix);
    }
  });

  it("registers the daily full recompute and evaluation as schedulers", async () => {
    expect(SCHEDULES.map((s) => [s.id, s.job, s.pattern])).toContainEqual(["forecast-recompute-all-daily", "forecast.recomputeAll", "30 2 * * *"]);
    expect(SCHEDULES.map((s) => s.job)).toContain("forecast.evaluate");
  });
});

describe("Redis away", () => {
  let redis: ChildProcess | undefined;
  let dir: string;
  let port: number;

  const startRedis = async () => {
    redis = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--appendonly", "yes", "--save", ""], { stdio: ["ignore", "pipe", "pipe"] });
    await new Promise<void>((resolve, reject) => {
      let out = "";
      redis!.stdout!.on("data", (c: Buffer) => {
        out += c.toString();
        if (out.includes("Ready to accept connections")) resolve();
      });
      redis!.once("exit", (code) => reject(new Error(`redis-server exited with ${code}: ${out}`)));
    });
  };
  const stopRedis = async () => {
    const child = redis!;
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.kill("SIGTERM");
    });
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "supply-redis-"));
    port = await freePort();
    await startRedis();
  });
  afterAll(async () => {
    if (redis && redis.exitCode === null) await stopRedis();
    rmSync(dir, { recursive: true, force: true });
  });

  it("forecasts a report committed while Redis was stopped once Redis is back", async () => {
    const prefix = `{test-${randomBytes(4).toString("hex")}}`;
    const worker = await startWorker({
      config: { QUEUE_PREFIX: prefix, IDEMPOTENCY_TTL_HOURS: 72 },
      db: t.db,
      logger,
      connection: { url: `redis://127.0.0.1:${port}`, maxRetriesPerRequest: null },
      relayIntervalMs: 20,
    });
    try {
      await stopRedis();
      const r = await submitReports(
        t.db,
        reporter.actor,
        Array.from({ length: 30 }, (_, i) => ({ siteCode: "HZ-XIHU-H1", productCode: "MASK-SURGICAL", date: day(i - 29), onHand: 777, consumed: 10, received: 10 })),
        { backfillDays: 400 },
      );
      expect(r.accepted).toBe(30);
      // With Redis down the event stays in the outbox: nothing is marked processed without its jobs.
      await vi.waitFor(async () => {
        const [row] = await t.db.execute<{ processed: boolean }>(sql`select processed_at is not null as processed from outbox order by id desc limit 1`, "objects");
        expect(row!.processed).toBe(false);
      });
      expect(await xihuForecast("MASK-SURGICAL")).toBeUndefined();

      await startRedis();
      await vi.waitFor(async () => expect((await xihuForecast("MASK-SURGICAL"))?.on_hand).toBe(777), { timeout: 30_000, interval: 100 });
      // The forecast's own outbox events (forecasts.updated, alert jobs) are written as it commits
      // and relayed a moment later: wait for the relay to drain them too.
      await vi.waitFor(async () => {
        const [left] = await t.db.execute<{ n: number }>(sql`select count(*)::int as n from outbox where processed_at is null`, "objects");
        expect(left!.n).toBe(0);
      }, { timeout: 10_000, interval: 50 });
    } finally {
      await worker.close();
      await clearRedisPrefix(`redis://127.0.0.1:${port}`, prefix);
    }
  });
});

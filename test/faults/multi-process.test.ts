// `npm run test:faults`: two API and two worker processes (`src/main.ts api|worker`, as deployed)
// against one Postgres and one Redis. Reports go in through both APIs; afterwards every
// forecast, match proposal, alert and delivery exists once. The daily full recompute is shared
// by both workers, each (region, product) computed once, parents the sums of their children; a
// worker killed with SIGKILL while it holds that job hands it to the other, still once per pair.
import { randomBytes } from "node:crypto";
import { Queue, QueueEvents } from "bullmq";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QUEUES, SCHEDULES } from "../../jobs/definitions.js";
import { markAllDirty, recomputeDirty } from "../../src/domain/forecast/pipeline.js";
import { createRegions } from "../../src/domain/regions.js";
import { dateOfDay, dayNumber } from "../../src/domain/reports/validate.js";
import { startReceiver, type Receiver } from "../helpers/channels.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { TEST_REDIS_URL } from "../helpers/env.js";
import { makeUser, seedWorld, setupActor, type TestUser } from "../helpers/fixtures.js";
import { clearRedisPrefix } from "../helpers/redis.js";
import { doubleWork, startService, stopService, waitAllDone, type ServiceProcess } from "./harness.js";

const lastDay = dayNumber(new Date(Date.now() - 86_400_000).toISOString().slice(0, 10));
const day = (offset: number) => dateOfDay(lastDay + offset);
const prefix = `{multi-${randomBytes(4).toString("hex")}}`;
const connection = { url: TEST_REDIS_URL, maxRetriesPerRequest: null };
/** A background tree under the test world's country, so that the full recompute has some work to share. */
const PROVINCES = 6;
const CITIES = 2;
const COUNTIES = 5;
const BACKGROUND_PRODUCTS = ["GLOVES-NITRILE", "GOWN-ISOLATION"];

let t: TestDatabase;
let hospital: TestUser;
let maker: TestUser;
let supplier: TestUser;
let admin: TestUser;
let receiver: Receiver;
let apis: ServiceProcess[] = [];
let workers: ServiceProcess[] = [];
const launched: ServiceProcess[] = [];
let queues: Queue[] = [];
let forecastEvents: QueueEvents;

async function post(port: number, token: string, query: string, variables: Record<string, unknown>) {
  const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: any; errors?: { message: string }[] };
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return body.data;
}
const submit = async (port: number, user: TestUser, rows: Record<string, unknown>[], key?: string) => {
  const data = await post(port, user.token, "mutation($r: [ReportInput!]!, $k: String) { submitReports(reports: $r, idempotencyKey: $k) { accepted rejected { message } } }", { r: rows, k: key });
  expect(data.submitReports.rejected).toEqual([]);
  return data.submitReports.accepted as number;
};
const forecastQueue = () => queues.find((q) => q.name === "forecast")!;

/** Forecast jobs finished since `since`, the series each worker wrote (by BullMQ's processedBy). */
async function seriesByWorker(since: number) {
  const jobs = await forecastQueue().getJobs(["completed"]);
  const by = new Map<string, number>();
  for (const j of jobs) {
    if (!j.finishedOn || j.finishedOn < since || !j.processedBy) continue;
    by.set(j.processedBy, (by.get(j.processedBy) ?? 0) + ((j.returnvalue as { series?: number } | null)?.series ?? 0));
  }
  return by;
}

/** Pairs with a forecast, and how many of them were forecast since `since`. */
async function freshness(since: Date) {
  const [r] = await t.db.execute<{ pairs: number; fresh: number }>(
    sql`select count(*)::int as pairs, count(*) filter (where computed_at >= ${since.toISOString()}::timestamptz)::int as fresh from forecast_latest`,
    "objects",
  );
  return r!;
}

/** Regions without sites of their own whose latest forecast is not the sum of their children's (stock, demand, supply). */
async function parentsNotAddingUp() {
  return t.db.execute<{ code: string; product_id: number }>(
    sql`with latest as (
          select l.region_id, l.product_id, f.on_hand, (select sum(x) from unnest(f.demand) x) as demand, (select sum(x) from unnest(f.supply) x) as supply
          from forecast_latest l join forecast f on f.id = l.forecast_id
        )
        select p.code, pl.product_id from latest pl join region p on p.id = pl.region_id
        join region c on c.parent_id = p.id join latest cl on cl.region_id = c.id and cl.product_id = pl.product_id
        where not exists (select 1 from site s where s.region_id = p.id)
        group by p.code, pl.product_id, pl.on_hand, pl.demand, pl.supply
        having abs(pl.on_hand - sum(cl.on_hand)) > 1e-6 * greatest(1, abs(pl.on_hand))
            or abs(pl.demand - sum(cl.demand)) > 1e-6 * greatest(1, abs(pl.demand))
            or abs(pl.supply - sum(cl.supply)) > 1e-6 * greatest(1, abs(pl.supply))`,
    "objects",
  );
}

beforeAll(async () => {
  t = await createTestDatabase();
  const env = {
    DATABASE_URL: t.url!,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix,
    DATABASE_POOL_SIZE: "4",
    // A dead worker's job is taken over about 2.5 s after its last lock renewal (a busy machine
    // may delay a live worker's renewal too: a few takeovers are allowed).
    WORKER_LOCK_DURATION_MS: "2000",
    WORKER_STALLED_INTERVAL_MS: "500",
    WORKER_MAX_STALLED_COUNT: "3",
    // Products above 20 dirty pairs (the full recompute) are shared out by province.
    FORECAST_CHUNK_PAIRS: "20",
    ALERT_NOTIFY_CAP: "1000",
  };
  // The processes start (seconds of module loading each) while the data is written.
  const launch = (mode: "api" | "worker") => startService(mode, env).then((s) => (launched.push(s), s));
  const starting = Promise.all([launch("api"), launch("api"), launch("worker"), launch("worker")]);
  starting.catch(() => {}); // awaited below
  const world = await seedWorld(t.db);
  hospital = await makeUser(t.db, "REPORTER", { organizationId: world.hospital.id });
  maker = await makeUser(t.db, "REPORTER", { organizationId: world.maker.id });
  supplier = await makeUser(t.db, "REPORTER", { organizationId: world.supplier.id });
  admin = await makeUser(t.db, "ADMIN");

  // Background: 60 counties with a hospital each and 45 days of quiet reports of two products,
  // written directly (they are the recompute's input, not what is tested).
  const regions: Parameters<typeof createRegions>[2] = [];
  for (let p = 0; p < PROVINCES; p++) {
    regions.push({ code: `BP${p}`, name: `Province ${p}`, level: "PROVINCE", parentCode: "CN" });
    for (let c = 0; c < CITIES; c++) {
      regions.push({ code: `BP${p}C${c}`, name: `City ${p}.${c}`, level: "CITY", parentCode: `BP${p}` });
      for (let k = 0; k < COUNTIES; k++) regions.push({ code: `BP${p}C${c}K${k}`, name: `County ${p}.${c}.${k}`, level: "COUNTY", parentCode: `BP${p}C${c}` });
    }
  }
  await createRegions(t.db, setupActor, regions);
  await t.db.execute(sql`insert into organization (name, kind) values ('Background hospitals', 'HOSPITAL')`);
  await t.db.execute(sql`insert into site (organization_id, code, name, region_id)
    select (select id from organization where name = 'Background hospitals'), 'S-' || r.code, 'Site ' || r.code, r.id from region r where r.code like 'BP%K%'`);
  await t.db.execute(sql`
    insert into report (site_id, product_id, date, on_hand, consumed, received)
    select s.id, p.id, ${day(0)}::date - g, 5000 + (hashtext(s.code || p.code || g) & 1023), 50 + (hashtext(p.code || s.code || g) & 31), 60
    from site s cross join product p cross join generate_series(0, 44) g
    where s.code like 'S-BP%' and p.code = any(${sql.param(BACKGROUND_PRODUCTS)}::text[])`);
  await t.db.execute(sql`analyze`); // as autovacuum would have: the subtree reads are planned per site

  receiver = await startReceiver();
  const started = await starting;
  apis = started.slice(0, 2);
  workers = started.slice(2);
  queues = Object.keys(QUEUES).map((name) => new Queue(name, { connection, prefix }));
  forecastEvents = new QueueEvents("forecast", { connection, prefix });
  await forecastEvents.waitUntilReady();
  const hook = await post(apis[0]!.port, admin.token, "mutation($u: String!) { registerWebhook(url: $u) { secret } }", { u: receiver.url });
  receiver.secret = hook.registerWebhook.secret;
}, 120_000);

afterAll(async () => {
  await Promise.all(launched.map((s) => stopService(s, "SIGKILL")));
  await forecastEvents?.close();
  await Promise.all(queues.map((q) => q.close()));
  await receiver?.close();
  await clearRedisPrefix(TEST_REDIS_URL, prefix);
  await t?.drop();
});

describe("two API and two worker processes", () => {
  it("turn reports sent to both APIs into forecasts, matches, alerts and deliveries, each once", async () => {
    const [a, b] = apis.map((s) => s.port) as [number, number];
    // Xihu's hospital holds 2 days of N95 (RED); Shangcheng's plant has spare N95 but 2.5 days of
    // melt-blown; Nanjing's mill holds melt-blown: shortage alerts, and matches downstream and upstream.
    const n95 = Array.from({ length: 30 }, (_, i) => ({ siteCode: "HZ-XIHU-H1", productCode: "MASK-N95", date: day(i - 29), onHand: 200, consumed: 100, received: 100 }));
    const plant = [
      ...Array.from({ length: 30 }, (_, i) => ({ siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: day(i - 29), onHand: 5000, produced: 1000, capacityPerDay: 1500, shipped: 1000 })),
      { siteCode: "HZ-MASK-1", productCode: "MELTBLOWN-PP", date: day(0), onHand: 10 },
    ];
    const gloves = Array.from({ length: 30 }, (_, i) => ({ siteCode: "HZ-XIHU-H1", productCode: "GLOVES-NITRILE", date: day(i - 29), onHand: 250, consumed: 100, received: 100 }));
    const accepted = await Promise.all([
      submit(a, hospital, n95),
      submit(b, maker, plant),
      submit(a, supplier, [{ siteCode: "NJ-NW-1", productCode: "MELTBLOWN-PP", date: day(0), onHand: 500 }]),
      // One request sent to both APIs at the same moment, under one idempotency key: applied once.
      submit(a, hospital, gloves, "gloves-once"),
      submit(b, hospital, gloves, "gloves-once"),
    ]);
    expect(accepted).toEqual([30, 31, 1, 30, 30]);
    await waitAllDone(t.db, queues, 40_000);

    const [made] = await t.db.execute<{ alerts: number; matches: number; revised: number; webhooks: number }>(
      sql`select (select count(*) from alert)::int as alerts, (select count(*) from match where status = 'PROPOSED')::int as matches,
                 (select count(*) from report where revision > 1)::int as revised,
                 (select count(*) from delivery where channel = 'WEBHOOK' and status = 'DELIVERED')::int as webhooks`,
      "objects",
    );
    // Not vacuous: there was something to double.
    expect(made!.alerts).toBeGreaterThanOrEqual(2);
    expect(made!.matches).toBeGreaterThanOrEqual(2);
    expect(made!.webhooks).toBeGreaterThanOrEqual(made!.alerts);
    expect(made!.revised).toBe(0);
    expect(await doubleWork(t.db)).toEqual({ forecastsPerRun: 0, overlappingForecasts: 0, forecastsSince: null, matches: 0, alerts: 0, deliveries: 0 });
    // Every delivery reached the endpoint once (its webhook-id is the delivery's id).
    const ids = receiver.received.map((r) => r.headers["webhook-id"]);
    expect(receiver.received.every((r) => r.verified)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBe(made!.webhooks);
    // Both workers registered the schedulers: one of each, with one next run each.
    const schedulers = (await Promise.all(queues.map((q) => q.getJobSchedulers()))).flat();
    expect(schedulers.map((s) => s.key).sort()).toEqual(SCHEDULES.map((s) => s.id).sort());
    const next = (await Promise.all(queues.map((q) => q.getJobs(["delayed", "waiting"])))).flat().filter((j) => j?.id?.startsWith("repeat:"));
    for (const s of SCHEDULES) expect(next.filter((j) => j!.id!.startsWith(`repeat:${s.id}:`)), s.id).toHaveLength(1);
  });

  it("share the daily full recompute: both workers compute, each pair once, parents the sums of their children", async () => {
    const since = new Date();
    const job = await forecastQueue().add("forecast.recomputeAll", {}, { jobId: "daily-shared" });
    await job.waitUntilFinished(forecastEvents, 30_000);
    await waitAllDone(t.db, queues, 30_000);
    const by = await seriesByWorker(since.getTime());
    expect([...by.values()].filter((n) => n > 0), `series per worker: ${JSON.stringify([...by])}`).toHaveLength(2);
    const { pairs, fresh } = await freshness(since);
    expect(pairs).toBeGreaterThan(PROVINCES * CITIES * COUNTIES * BACKGROUND_PRODUCTS.length);
    expect(fresh).toBe(pairs);
    expect([...by.values()].reduce((x, y) => x + y, 0)).toBe(pairs);
    expect(await doubleWork(t.db, since)).toMatchObject({ forecastsPerRun: 0, overlappingForecasts: 0, forecastsSince: 0 });
    expect(await parentsNotAddingUp()).toEqual([]);
  });

  it("hand the recompute of a worker killed with SIGKILL to the other, which finishes it, each pair still once", async () => {
    const since = new Date();
    const active = new Promise<void>((resolve) => {
      const onActive = ({ jobId }: { jobId: string }) => {
        if (jobId !== "daily-killed") return;
        forecastEvents.off("active", onActive);
        resolve();
      };
      forecastEvents.on("active", onActive);
    });
    const job = await forecastQueue().add("forecast.recomputeAll", {}, { jobId: "daily-killed" });
    await active;
    const holder = (await forecastQueue().getJob("daily-killed"))!.processedBy!;
    const victim = workers.find((w) => holder.endsWith(`:${w.child.pid}`))!;
    const survivor = workers.find((w) => w !== victim)!;
    expect(victim, `the job is held by ${holder}`).toBeDefined();
    await stopService(victim, "SIGKILL");

    await job.waitUntilFinished(forecastEvents, 30_000);
    const done = (await forecastQueue().getJob("daily-killed"))!;
    // Had the victim finished before the kill, the job would name it.
    expect(done.processedBy).toBe(holder.replace(`:${victim.child.pid}`, `:${survivor.child.pid}`));
    expect(done.stalledCounter).toBeGreaterThanOrEqual(1);
    await waitAllDone(t.db, queues, 30_000);
    const { pairs, fresh } = await freshness(since);
    expect(fresh).toBe(pairs);
    expect(await doubleWork(t.db, since)).toMatchObject({ forecastsPerRun: 0, overlappingForecasts: 0, forecastsSince: 0 });
    expect(await parentsNotAddingUp()).toEqual([]);
    // SIGTERM: the survivor and both APIs finish what they run and exit cleanly.
    expect(await Promise.all([...apis, survivor].map((s) => stopService(s)))).toEqual([0, 0, 0]);
  });

  it("computes by subtree exactly what one transaction per product computes", async () => {
    // Every process has stopped: this whole-product recompute runs alone.
    const snapshot = async () =>
      new Map(
        (
          await t.db.execute<{ k: string; on_hand: number; demand: number[]; stock: number[]; risk_level: string }>(
            sql`select l.region_id || '/' || l.product_id as k, f.on_hand, f.demand, f.stock, f.risk_level
                from forecast_latest l join forecast f on f.id = l.forecast_id`,
            "objects",
          )
        ).map((r) => [r.k, r]),
      );
    const chunked = await snapshot();
    await markAllDirty(t.db);
    const whole = await recomputeDirty(t.db, { trigger: "check", chunkPairs: Number.MAX_SAFE_INTEGER });
    expect(whole.series).toBe(chunked.size);
    const again = await snapshot();
    const close = (x: number, y: number) => Math.abs(x - y) <= 1e-9 * Math.max(1, Math.abs(x));
    const differ = [...chunked].filter(([k, c]) => {
      const w = again.get(k)!;
      return c.risk_level !== w.risk_level || !close(c.on_hand, w.on_hand) || c.demand.some((d, h) => !close(d, w.demand[h]!)) || c.stock.some((s, h) => !close(s, w.stock[h]!));
    });
    expect(differ.map(([k]) => k)).toEqual([]);
  });
});

// `npm run test:faults`: the service's own processes under faults, 10,000 reports in all. After
// each fault, every acknowledged report is stored exactly once, every (region, product) with
// reports was forecast after its last report, and no alert is doubled; the counts and the time
// to recover are printed.
import { readdirSync } from "node:fs";
import path from "node:path";
import { sql } from "drizzle-orm";
import { Redis } from "ioredis";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrationsFolder, openDatabase } from "../../src/db/index.js";
import { createSite } from "../../src/domain/organizations.js";
import { dateOfDay, dayNumber } from "../../src/domain/reports/validate.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { TEST_PG_ADMIN_URL, databaseUrl } from "../helpers/env.js";
import { makeUser, seedWorld, setupActor } from "../helpers/fixtures.js";
import {
  PrivateRedis, Reporter, TcpProxy, rowsFor, startService, stopService, uniquePrefix, verdict, waitQuiet, type Row, type ServiceProcess, type Verdict,
} from "./harness.js";

const ROWS_PER_FAULT = 2_500;
const BATCH = 50;
const SENDERS = 4;
const lastDay = dayNumber(new Date(Date.now() - 86_400_000).toISOString().slice(0, 10));

let t: TestDatabase;
let proxy: TcpProxy;
let redis: PrivateRedis;
let env: Record<string, string>;
let token: string;
let sites: string[];
const products = ["MASK-N95", "MASK-SURGICAL", "GLOVES-NITRILE", "GOWN-ISOLATION", "GOGGLES"];
let nextDay = lastDay - 150;
const results: { fault: string; verdict: Verdict; recoverMs: number | null; note: string }[] = [];
const running = new Set<ServiceProcess>();

async function service(mode: "api" | "worker") {
  const s = await startService(mode, env);
  running.add(s);
  void s.exited.then(() => running.delete(s));
  return s;
}

/** The next `count` unique rows: later days each time, so each row is new and each fault has its own. */
function nextRows(count: number): Row[] {
  const rows = rowsFor(sites, products, nextDay, count, dateOfDay);
  nextDay += Math.ceil(count / (sites.length * products.length));
  return rows;
}

/** Sends the rows in batches from SENDERS concurrent clients; `during` runs alongside. */
async function burst(reporter: Reporter, rows: Row[], during: () => Promise<void> = async () => {}) {
  const batches: Row[][] = [];
  for (let i = 0; i < rows.length; i += BATCH) batches.push(rows.slice(i, i + BATCH));
  let next = 0;
  const sender = async () => {
    while (next < batches.length) await reporter.send(batches[next++]!);
  };
  await Promise.all([...Array.from({ length: SENDERS }, sender), during()]);
}

const until = async (what: string, check: () => Promise<boolean>, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

beforeAll(async () => {
  t = await createTestDatabase();
  const world = await seedWorld(t.db);
  sites = [];
  for (let i = 0; i < 30; i++) {
    const code = `FAULT-H${i}`;
    await createSite(t.db, setupActor, { organizationId: world.hospital.id, code, name: code, regionCode: ["330102", "330106", "320102"][i % 3]! });
    sites.push(code);
  }
  token = (await makeUser(t.db, "REPORTER", { organizationId: world.hospital.id })).token;
  proxy = new TcpProxy(Number(new URL(t.url!).port || 5432));
  await proxy.listen();
  const url = new URL(t.url!);
  url.port = String(proxy.port);
  redis = new PrivateRedis();
  await redis.start();
  env = { DATABASE_URL: url.toString(), REDIS_URL: redis.url, QUEUE_PREFIX: uniquePrefix(), DATABASE_POOL_SIZE: "5" };
});

afterAll(async () => {
  await Promise.all([...running].map((s) => stopService(s, "SIGKILL")));
  await proxy?.close();
  await redis?.close();
  await t?.drop();
  if (results.length) {
    console.log("\n| fault | acknowledged | stored (all rows) | duplicated | lost | stale forecasts | duplicate alerts | recovery |");
    console.log("|---|--:|--:|--:|--:|--:|--:|--:|");
    for (const r of results) {
      const v = r.verdict;
      console.log(`| ${r.fault} | ${v.acknowledged} | ${v.stored} | ${v.duplicated} | ${v.lost} | ${v.staleForecasts} | ${v.duplicateAlerts} | ${r.recoverMs === null ? "-" : `${(r.recoverMs / 1000).toFixed(2)} s`} ${r.note} |`);
    }
  }
});

function record(fault: string, v: Verdict, recoverMs: number | null, note = "") {
  results.push({ fault, verdict: v, recoverMs, note });
  expect(v.lost, `${fault}: lost`).toBe(0);
  expect(v.duplicated, `${fault}: duplicated`).toBe(0);
  expect(v.staleForecasts, `${fault}: forecasts older than their last report`).toBe(0);
  expect(v.duplicateAlerts, `${fault}: duplicate alerts`).toBe(0);
}

describe("faults", () => {
  const acknowledged: Row[] = [];

  it("a worker killed with SIGKILL in the middle of a forecast job: another one finishes the work", async () => {
    const api = await service("api");
    let worker = await service("worker");
    const reporter = new Reporter(() => [`http://127.0.0.1:${api.port}`], token);
    const queueRedis = new Redis(redis.url);
    let killedMidRun = 0;
    let restartedAt = 0;
    await burst(reporter, nextRows(ROWS_PER_FAULT), async () => {
      for (let k = 0; k < 2; k++) {
        // The forecast job is in BullMQ's active list while it runs.
        await until("a forecast job running", async () => (await queueRedis.llen(`${env.QUEUE_PREFIX}:forecast:active`)) > 0);
        await stopService(worker, "SIGKILL");
        killedMidRun++;
        worker = await service("worker");
        restartedAt = Date.now();
      }
    });
    acknowledged.push(...reporter.acknowledged);
    await waitQuiet(t.db);
    const recovered = Date.now() - restartedAt;
    record("worker SIGKILL mid forecast (x2)", await verdict(t.db, acknowledged), recovered, `(${killedMidRun} kills, to caught up)`);
    expect(killedMidRun).toBe(2);
    queueRedis.disconnect();
    await stopService(api);
    await stopService(worker);
  }, 180_000);

  it("Redis stopped and restarted while reports keep arriving: nothing is lost, the work resumes by itself", async () => {
    const api = await service("api");
    const worker = await service("worker");
    const reporter = new Reporter(() => [`http://127.0.0.1:${api.port}`], token);
    let restartedAt = 0;
    await burst(reporter, nextRows(ROWS_PER_FAULT), async () => {
      await until("some reports acknowledged", async () => reporter.acknowledged.length >= 500);
      await redis.stop();
      await until("reports acknowledged while Redis is down", async () => reporter.acknowledged.length >= 1000);
      await redis.start();
      restartedAt = Date.now();
    });
    acknowledged.push(...reporter.acknowledged);
    await waitQuiet(t.db);
    record("Redis stopped, restarted (AOF)", await verdict(t.db, acknowledged), Date.now() - restartedAt, "(restart to caught up)");
    await stopService(api);
    await stopService(worker);
  }, 180_000);

  it("PostgreSQL unreachable for a while: clear 'unavailable, retry' answers, /readyz fails, then everything resumes", async () => {
    const api = await service("api");
    const worker = await service("worker");
    const reporter = new Reporter(() => [`http://127.0.0.1:${api.port}`], token);
    let restoredAt = 0;
    let readyDuringCut = 0;
    let answerDuringCut = "";
    await burst(reporter, nextRows(ROWS_PER_FAULT), async () => {
      await until("some reports acknowledged", async () => reporter.acknowledged.length >= 500);
      proxy.cut();
      try {
        readyDuringCut = (await fetch(`http://127.0.0.1:${api.port}/readyz`)).status;
        const r = await fetch(`http://127.0.0.1:${api.port}/graphql`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
          // A question only the database can answer: `me` may come from the short token cache.
          body: JSON.stringify({ query: "{ products { code } }" }),
        });
        answerDuringCut = `${r.status} ${JSON.stringify(await r.json())}`;
        await new Promise((r) => setTimeout(r, 3000)); // the outage itself
      } catch (error) {
        throw new Error(`the API did not answer during the outage (${(error as Error).message}):\n${api.output().slice(-2500)}`);
      } finally {
        proxy.restore();
        restoredAt = Date.now();
      }
    });
    acknowledged.push(...reporter.acknowledged);
    const recovered = reporter.firstAckAfter(restoredAt);
    await waitQuiet(t.db);
    expect(readyDuringCut).toBe(503);
    expect(answerDuringCut).toMatch(/^503 .*unavailable.*retry/i);
    record("PostgreSQL unreachable 3 s", await verdict(t.db, acknowledged), recovered, "(restore to next acknowledged batch)");
    await stopService(api);
    await stopService(worker);
  }, 180_000);

  it("SIGTERM during a burst: the API finishes what it acknowledged, the worker its running jobs; another process takes over", async () => {
    const apis = [await service("api"), await service("api")];
    let worker = await service("worker");
    const alive = () => apis.filter((a) => a.child.exitCode === null && a.child.signalCode === null).map((a) => `http://127.0.0.1:${a.port}`);
    const reporter = new Reporter(alive, token);
    let exitCodes: (number | null)[] = [];
    await burst(reporter, nextRows(ROWS_PER_FAULT), async () => {
      await until("some reports acknowledged", async () => reporter.acknowledged.length >= 800);
      exitCodes = await Promise.all([stopService(apis[0]), stopService(worker)]);
      worker = await service("worker");
    });
    acknowledged.push(...reporter.acknowledged);
    await waitQuiet(t.db);
    expect(exitCodes).toEqual([0, 0]);
    record("SIGTERM to an API and the worker mid-burst", await verdict(t.db, acknowledged), null);
    await stopService(apis[1]);
    await stopService(worker);
  }, 180_000);

  it("two processes starting and migrating an empty database at the same moment", async () => {
    const name = `supply_faults_migrate_${Date.now().toString(36)}`;
    const admin = postgres(TEST_PG_ADMIN_URL, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${name}"`);
    try {
      const [a, b] = await Promise.all([startService("migrate", { ...env, DATABASE_URL: databaseUrl(name) }), startService("migrate", { ...env, DATABASE_URL: databaseUrl(name) })]);
      const codes = await Promise.all([a.exited, b.exited]);
      expect(codes, a.output() + b.output()).toEqual([0, 0]);
      const handle = openDatabase({ url: databaseUrl(name), dataDir: "" });
      const [m] = await handle.db.execute<{ n: number }>(sql`select count(*)::int as n from drizzle.__drizzle_migrations`, "objects");
      await handle.close();
      const folders = readdirSync(migrationsFolder).filter((f) => !f.startsWith(".") && path.extname(f) === "");
      expect(m!.n).toBe(folders.length);
    } finally {
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
    }
  }, 120_000);
});

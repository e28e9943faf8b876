// Alert latency: from `submitReports` returning (over HTTP, API process A) to the alert stored, to
// a signed webhook at a real receiver, and to a subscriber connected over SSE to another API
// process (B), one report at a time into an idle worker. The forecast being readable is printed
// alongside: it is the step every alert waits for, the floor of the alert path.
import { randomBytes } from "node:crypto";
import type { Server } from "node:http";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { sql } from "drizzle-orm";
import { connect } from "./lib/pg.js";
import { startWorker } from "../jobs/worker.js";
import { loadConfig } from "../src/config.js";
import { openDatabase } from "../src/db/index.js";
import { createLiveAlerts } from "../src/domain/alerts/live.js";
import { seedCatalog } from "../src/domain/catalog.js";
import { recomputeDirty } from "../src/domain/forecast/pipeline.js";
import { createOrganization, createSite } from "../src/domain/organizations.js";
import { relayOutbox } from "../src/domain/outbox.js";
import { createRegions } from "../src/domain/regions.js";
import { submitReports } from "../src/domain/reports/ingest.js";
import { dateOfDay, dayNumber } from "../src/domain/reports/validate.js";
import { authenticate, createApiToken } from "../src/domain/tokens.js";
import { createUser } from "../src/domain/users.js";
import { systemActor } from "../src/domain/viewer.js";
import { createHttpServer } from "../src/http/server.js";
import { createLogger } from "../src/logger.js";
import { startReceiver, subscribeSse } from "../test/helpers/channels.js";
import { clearRedisPrefix } from "../test/helpers/redis.js";

export const ALERTS_USAGE = `  alerts [--alerts N] [--counties N] [--poll-only]
      Alert latency: one report at a time turns one county's product RED; prints p50/p95/max of the
      time from submitReports returning (HTTP, API process A) to the forecast readable, the alert
      stored, the signed webhook received and the alert held by an SSE subscriber on API process B.
      Defaults: --alerts 200 --counties 20 (x 10 products = 200 county-product pairs). --poll-only
      leaves the outbox relay to its 250 ms poll (no LISTEN), to see what waking it at commit saves.
      Needs PostgreSQL and Redis (BENCH_DATABASE_URL, BENCH_REDIS_URL as for the other benches).`;

const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const REDIS_URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const actor = systemActor("bench");

const listen = (server: Server) =>
  new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port)));

export async function runAlertsBench(argv: string[]) {
  const { values } = parseArgs({ args: argv, strict: true, options: { alerts: { type: "string" }, counties: { type: "string" }, "poll-only": { type: "boolean" } } });
  const pollOnly = values["poll-only"] ?? false;
  const total = Number(values.alerts ?? 200);
  const counties = Number(values.counties ?? 20);
  const name = `supply_bench_alerts_${randomBytes(4).toString("hex")}`;
  const admin = connect(ADMIN_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const database = openDatabase({ url: url.toString(), dataDir: "", poolSize: 10 });
  const prefix = `{bench-${randomBytes(4).toString("hex")}}`;
  const config = loadConfig({ NODE_ENV: "test", LOG_LEVEL: "silent", QUEUE_PREFIX: prefix, ALERT_NOTIFY_CAP: "100000" });
  const logger = createLogger(config);
  const closers: (() => Promise<unknown>)[] = [];
  try {
    await database.migrate();
    const db = database.db;
    await seedCatalog(db, actor);
    const products = (await db.query.productTable.findMany({ where: { category: { ne: "RAW_MATERIAL" } }, orderBy: { id: "asc" } })).slice(0, Math.ceil(total / counties));
    await createRegions(db, actor, [
      { code: "CN", name: "China", level: "COUNTRY" },
      { code: "330000", name: "Zhejiang", level: "PROVINCE", parentCode: "CN" },
      { code: "330100", name: "Hangzhou", level: "CITY", parentCode: "330000" },
      ...Array.from({ length: counties }, (_, i) => ({ code: String(330101 + i), name: `County ${i + 1}`, level: "COUNTY" as const, parentCode: "330100" })),
    ]);
    const reporterUser = await createUser(db, actor, { name: "bench reporter", email: "reporter@bench.example", role: "ADMIN" });
    const reporterToken = (await createApiToken(db, actor, { userId: reporterUser.id, name: "bench" })).token;
    const reporter = (await authenticate(db, reporterToken))!;
    const planner = await createUser(db, actor, { name: "bench planner", email: "planner@bench.example", role: "PLANNER", jurisdictionRegionCode: "330100" });
    const plannerToken = (await createApiToken(db, actor, { userId: planner.id, name: "bench" })).token;
    const lastDay = dayNumber(new Date(Date.now() - 86_400_000).toISOString().slice(0, 10));
    const sites: string[] = [];
    for (let c = 0; c < counties; c++) {
      const org = await createOrganization(db, actor, { name: `Hospital ${c + 1}`, kind: "HOSPITAL" });
      const code = `H-${c + 1}`;
      await createSite(db, actor, { organizationId: org.id, code, name: code, regionCode: String(330101 + c) });
      sites.push(code);
    }
    // 30 days at 5,000 on hand and 100 a day: every pair GREEN before the timed reports.
    const rows = sites.flatMap((siteCode) =>
      products.flatMap((p) => Array.from({ length: 30 }, (_, d) => ({ siteCode, productCode: p.code, date: dateOfDay(lastDay - 29 + d), onHand: 5000, consumed: 100, received: 100 }))),
    );
    for (let i = 0; i < rows.length; i += 5000) await submitReports(db, { viewer: reporter }, rows.slice(i, i + 5000) as never, { backfillDays: 400 });
    await relayOutbox(db, async () => {});
    await recomputeDirty(db, { trigger: "bench" });
    await db.execute(/* the setup's own events are not the bench's */ sql`update outbox set processed_at = now() where processed_at is null`);

    // The receiver verifies every signature, as a real one must.
    const receiver = await startReceiver();
    closers.push(() => receiver.close());

    const liveA = createLiveAlerts({ url: REDIS_URL, prefix, logger });
    const liveB = createLiveAlerts({ url: REDIS_URL, prefix, logger });
    closers.push(() => liveA.close(), () => liveB.close());
    const serverA = createHttpServer({ config, db, logger, live: liveA, ready: async () => {} });
    const serverB = createHttpServer({ config, db, logger, live: liveB, ready: async () => {} });
    const portA = await listen(serverA);
    const portB = await listen(serverB);
    closers.push(
      () => new Promise((r) => { serverA.closeAllConnections(); serverA.close(r); }),
      () => new Promise((r) => { serverB.closeAllConnections(); serverB.close(r); }),
    );

    const gql = async (port: number, token: string, query: string, variables?: Record<string, unknown>) => {
      const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await response.json()) as { data?: any; errors?: { message: string }[] };
      if (body.errors?.length) throw new Error(body.errors.map((e) => e.message).join("; "));
      return body.data;
    };
    const hook = await gql(portA, plannerToken, `mutation($u: String!) { registerWebhook(url: $u, kinds: [SHORTAGE_RISK]) { id secret } }`, {
      u: receiver.url,
    });
    receiver.secret = hook.registerWebhook.secret;

    // The subscriber: GraphQL over SSE on process B.
    const stream = await subscribeSse(portB, plannerToken, `subscription { alertRaised(kinds: [SHORTAGE_RISK]) { id status region { code } product { code } } }`);
    if (stream.status !== 200) throw new Error(`subscription refused: HTTP ${stream.status}`);
    closers.push(async () => stream.close());

    // Closed in reverse: the worker stops first, then its keys are cleared.
    closers.push(() => clearRedisPrefix(REDIS_URL, prefix));
    const worker = await startWorker({
      config,
      db,
      logger,
      connection: { url: REDIS_URL, maxRetriesPerRequest: null },
      publishAlert: liveA.publish,
      // --poll-only: the relay finds events at its 250 ms poll instead of being woken at commit.
      ...(pollOnly ? {} : { listen: database.listen }),
    });
    closers.push(() => worker.close());

    const stages = { forecast: [] as number[], stored: [] as number[], webhook: [] as number[], sse: [] as number[] };
    const pairs = sites.flatMap((s, c) => products.map((p) => ({ site: s, region: String(330101 + c), product: p }))).slice(0, total);
    for (const [i, pair] of pairs.entries()) {
      await gql(portA, reporterToken, `mutation($r: [ReportInput!]!) { submitReports(reports: $r) { accepted } }`, {
        r: [{ siteCode: pair.site, productCode: pair.product.code, date: dateOfDay(lastDay), onHand: 250, consumed: 100, received: 100 }],
      });
      const returned = performance.now();
      const key = `${pair.region}|${pair.product.code}`;
      let forecastAt: number | undefined;
      let storedAt: number | undefined;
      for (;;) {
        const now = performance.now();
        if (forecastAt === undefined) {
          const [f] = await database.db.execute<{ risk_level: string }>(
            sql`select l.risk_level from forecast_latest l join region r on r.id = l.region_id where r.code = ${pair.region} and l.product_id = ${pair.product.id}`,
            "objects",
          );
          if (f?.risk_level === "RED") forecastAt = now;
        }
        if (storedAt === undefined) {
          const [a] = await database.db.execute<{ n: number }>(
            sql`select count(*)::int as n from alert a join region r on r.id = a.region_id where a.kind = 'SHORTAGE_RISK' and r.code = ${pair.region} and a.product_id = ${pair.product.id}`,
            "objects",
          );
          if (a!.n > 0) storedAt = now;
        }
        const webhookAt = receiver.received.find(
          (r) => r.verified && r.payload.type === "alert.raised" && `${r.payload.data.regionCode}|${r.payload.data.productCode}` === key,
        )?.at;
        const sseAt = stream.received.find((e) => {
          const a = e.data?.data?.alertRaised;
          return a?.status === "OPEN" && `${a.region.code}|${a.product.code}` === key;
        })?.at;
        if (forecastAt && storedAt && webhookAt && sseAt) {
          stages.forecast.push(forecastAt - returned);
          stages.stored.push(storedAt - returned);
          stages.webhook.push(webhookAt - returned);
          stages.sse.push(sseAt - returned);
          break;
        }
        if (now - returned > 30_000) throw new Error(`alert ${i + 1} (${key}) did not arrive within 30 s: forecast ${!!forecastAt}, stored ${!!storedAt}, webhook ${!!webhookAt}, sse ${!!sseAt}`);
        await new Promise((r) => setTimeout(r, 2));
      }
    }
    const q = (list: number[], p: number) => {
      const s = [...list].sort((a, b) => a - b);
      return s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]! / 1000;
    };
    console.log(`${pairs.length} alerts, one report at a time${pollOnly ? ", outbox relay polling only (no LISTEN)" : ""}, worker idle between them (times from submitReports returning over HTTP):\n`);
    console.log("| step | p50 s | p95 s | max s |");
    console.log("|---|--:|--:|--:|");
    for (const [label, list] of [
      ["forecast readable (the floor: every alert waits for it)", stages.forecast],
      ["SHORTAGE_RISK alert stored in Postgres", stages.stored],
      ["signed webhook at the receiver", stages.webhook],
      ["alert held by the SSE subscriber on API process B", stages.sse],
    ] as const) {
      console.log(`| ${label} | ${q(list, 0.5).toFixed(2)} | ${q(list, 0.95).toFixed(2)} | ${q(list, 1).toFixed(2)} |`);
    }
    const worst = Math.max(q(stages.webhook, 0.95), q(stages.sse, 0.95));
    console.log(`\nwebhook and subscriber p95: ${worst.toFixed(2)} s (goal < 2 s) ${worst < 2 ? "met" : "MISSED"}`);
  } finally {
    for (const close of closers.reverse()) await close().catch(() => {});
    await database.close();
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
    await admin.end();
  }
}

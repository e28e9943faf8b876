// The whole alert path with real parts, as issue 5 judges it: a report sent over HTTP to API
// process A turns a county RED; the worker (outbox relay, forecast, rules, dispatch, deliveries)
// raises exactly one alert, which reaches a planner subscribed over SSE to API process B, the
// planner's webhook receiver (signature verified) and mailbox (a real SMTP server); a worse report
// escalates that same alert, a recovering one resolves it; the planner of another county is told
// nothing.
import { randomBytes } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startWorker, type RunningWorker } from "../jobs/worker.js";
import { loadConfig } from "../src/config.js";
import { openDatabase, type DatabaseHandle } from "../src/db/index.js";
import { createLiveAlerts, type LiveAlerts } from "../src/domain/alerts/live.js";
import { evaluateShortageAlerts } from "../src/domain/alerts/rules.js";
import { recomputeDirty } from "../src/domain/forecast/pipeline.js";
import { relayOutbox } from "../src/domain/outbox.js";
import { submitReports } from "../src/domain/reports/ingest.js";
import { dateOfDay, dayNumber } from "../src/domain/reports/validate.js";
import { createHttpServer } from "../src/http/server.js";
import { createLogger } from "../src/logger.js";
import { startReceiver, startSmtp, subscribeSse, type Mailbox, type Receiver, type Stream } from "./helpers/channels.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { TEST_REDIS_URL } from "./helpers/env.js";
import { makeUser, seedWorld, type TestUser } from "./helpers/fixtures.js";
import { clearRedisPrefix } from "./helpers/redis.js";

const prefix = `{test-e2e-${randomBytes(4).toString("hex")}}`;
let t: TestDatabase;
let dbB: DatabaseHandle;
let liveA: LiveAlerts;
let liveB: LiveAlerts;
let serverA: Server;
let serverB: Server;
let portA: number;
let portB: number;
let worker: RunningWorker;
let mailbox: Mailbox;
let xihuHook: Receiver; // the Hangzhou planner's receiver: Xihu is in their jurisdiction
let shangchengHook: Receiver; // the planner of the neighbouring county's
let hangzhouStream: Stream;
let shangchengStream: Stream;
let hospital: TestUser;
let maker: TestUser;
let hangzhou: TestUser;
let shangcheng: TestUser;
const emails = new Map<string, string>();

const lastDay = dayNumber(new Date(Date.now() - 86_400_000).toISOString().slice(0, 10));
const day = (offset: number) => dateOfDay(lastDay + offset);
// A stock that swings between deliveries and dispatches (so the reports below are not outliers),
// 100 handed out a day, every day in balance; it ends the month at 4,500: 45 days, GREEN.
const SWING = [4500, 300, 4500, 600, 3500, 1000, 2500];
function history(siteCode: string, productCode: string) {
  return Array.from({ length: 30 }, (_, i) => {
    const onHand = SWING[(29 - i) % SWING.length]!;
    const before = SWING[(30 - i) % SWING.length]!;
    const change = onHand - before + 100;
    return { siteCode, productCode, date: day(i - 30), onHand, consumed: 100, ...(change >= 0 ? { received: change, shipped: 0 } : { received: 0, shipped: -change }) };
  });
}
/** The day's report that leaves `onHand`, in balance with yesterday's `before`. */
const todays = (siteCode: string, productCode: string, before: number, onHand: number) => {
  const change = onHand - before + 100;
  return { siteCode, productCode, date: day(0), onHand, consumed: 100, ...(change >= 0 ? { received: change, shipped: 0 } : { received: 0, shipped: -change }) };
};

async function post(port: number, token: string, query: string, variables?: Record<string, unknown>) {
  const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: any; errors?: { message: string }[] };
  expect(body.errors).toBeUndefined();
  return body.data;
}
const report = (row: Record<string, unknown>, user = hospital) =>
  post(portA, user.token, "mutation($r: [ReportInput!]!) { submitReports(reports: $r) { accepted rejected { message } } }", { r: [row] });
const listen = (server: Server) => new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
const hooksOf = (r: Receiver) => r.received.map((x) => ({ verified: x.verified, id: x.headers["webhook-id"], type: x.payload?.type, alert: x.payload?.data }));
const alertsOf = (s: Stream) => s.received.filter((e) => e.data?.data?.alertRaised).map((e) => e.data.data.alertRaised);
const mailsTo = (u: TestUser) => mailbox.mails.filter((m) => m.to.includes(emails.get(u.viewer.userId)!));

beforeAll(async () => {
  t = await createTestDatabase();
  dbB = openDatabase({ url: t.url, dataDir: "", poolSize: 3 });
  const world = await seedWorld(t.db);
  hospital = await makeUser(t.db, "REPORTER", { organizationId: world.hospital.id });
  maker = await makeUser(t.db, "REPORTER", { organizationId: world.maker.id });
  hangzhou = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330100" });
  shangcheng = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330102" });
  for (const u of await t.db.execute<{ id: string; email: string }>(sql`select id::text, email from app_user`, "objects")) emails.set(u.id, u.email);

  // A month of history, forecast before the worker starts: every pair GREEN, no alert.
  for (const [user, site] of [[hospital, "HZ-XIHU-H1"], [maker, "HZ-MASK-1"]] as const) {
    const r = await submitReports(t.db, user.actor, history(site, "GLOVES-NITRILE") as never, { backfillDays: 400 });
    expect(r.rejected).toEqual([]);
  }
  await relayOutbox(t.db, async () => {});
  await recomputeDirty(t.db, { trigger: "test" });
  const gloves = (await t.db.query.productTable.findFirst({ where: { code: "GLOVES-NITRILE" } }))!.id;
  expect(await evaluateShortageAlerts(t.db, gloves)).toMatchObject({ raised: 0 });

  mailbox = await startSmtp();
  const config = loadConfig({
    NODE_ENV: "test", LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent", QUEUE_PREFIX: prefix, SMTP_URL: mailbox.url, ALERT_DELIVERY_BACKOFF_MS: "50",
  });
  const logger = createLogger(config);
  liveA = createLiveAlerts({ url: TEST_REDIS_URL, prefix, logger });
  liveB = createLiveAlerts({ url: TEST_REDIS_URL, prefix, logger });
  serverA = createHttpServer({ config, db: t.db, logger, live: liveA, ready: async () => {} });
  serverB = createHttpServer({ config, db: dbB.db, logger, live: liveB, ready: async () => {} });
  [portA, portB] = await Promise.all([listen(serverA), listen(serverB)]);

  [xihuHook, shangchengHook] = await Promise.all([startReceiver(), startReceiver()]);
  for (const [user, receiver] of [[hangzhou, xihuHook], [shangcheng, shangchengHook]] as const) {
    const r = await post(portA, user.token, "mutation($u: String!) { registerWebhook(url: $u) { secret } }", { u: receiver.url });
    receiver.secret = r.registerWebhook.secret;
  }
  const fields = "id kind severity status message region { code }";
  hangzhouStream = await subscribeSse(portB, hangzhou.token, `subscription { alertRaised { ${fields} } }`);
  shangchengStream = await subscribeSse(portB, shangcheng.token, `subscription { alertRaised { ${fields} } }`);

  worker = await startWorker({
    config, db: t.db, logger, connection: { url: TEST_REDIS_URL, maxRetriesPerRequest: null }, publishAlert: liveA.publish, listen: t.listen,
  });
});

afterAll(async () => {
  hangzhouStream?.close();
  shangchengStream?.close();
  await worker?.close();
  for (const server of [serverA, serverB]) {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  }
  await Promise.all([liveA?.close(), liveB?.close(), xihuHook?.close(), shangchengHook?.close(), mailbox?.close()]);
  await clearRedisPrefix(TEST_REDIS_URL, prefix);
  await dbB?.close();
  await t?.drop();
});

describe("a report that turns a county RED", () => {
  let alertId: string;

  it("raises exactly one alert, delivered to a subscriber of another API process, a verified webhook and an e-mail", async () => {
    expect((await report(todays("HZ-XIHU-H1", "GLOVES-NITRILE", 4500, 250))).submitReports).toEqual({ accepted: 1, rejected: [] });
    await vi.waitFor(() => {
      expect(hooksOf(xihuHook)).toHaveLength(1);
      expect(alertsOf(hangzhouStream)).toHaveLength(1);
      expect(mailsTo(hangzhou)).toHaveLength(1);
    }, { timeout: 20_000, interval: 20 });
    const [hook] = hooksOf(xihuHook);
    expect(hook).toMatchObject({ verified: true, type: "alert.raised", alert: { kind: "SHORTAGE_RISK", severity: "RED", regionCode: "330106" } });
    const [live] = alertsOf(hangzhouStream);
    expect(live).toMatchObject({ kind: "SHORTAGE_RISK", severity: "RED", status: "OPEN", region: { code: "330106" } });
    expect(live.message).toMatch(/GLOVES-NITRILE runs out in about 2\.5 days/);
    alertId = live.id;
    expect(hook!.alert.id).toBe(alertId);
    expect(mailsTo(hangzhou)[0]!.text).toMatch(/GLOVES-NITRILE runs out in about 2\.5 days/);
    const rows = await t.db.execute<{ kind: string; n: number }>(sql`select kind, count(*)::int as n from alert group by kind`, "objects");
    const all = await t.db.execute(sql`select kind, message from alert`, "objects");
    expect(rows, JSON.stringify(all)).toEqual([{ kind: "SHORTAGE_RISK", n: 1 }]);
  });

  it("escalates the same alert on a worse report, notifying again", async () => {
    await report(todays("HZ-XIHU-H1", "GLOVES-NITRILE", 4500, 0));
    await vi.waitFor(() => {
      expect(hooksOf(xihuHook).filter((h) => h.alert?.kind === "SHORTAGE_RISK").map((h) => h.type)).toEqual(["alert.raised", "alert.escalated"]);
      expect(alertsOf(hangzhouStream).filter((a) => a.kind === "SHORTAGE_RISK")).toHaveLength(2);
    }, { timeout: 20_000, interval: 20 });
    const escalated = alertsOf(hangzhouStream).filter((a) => a.kind === "SHORTAGE_RISK")[1];
    expect(escalated).toMatchObject({ id: alertId, status: "OPEN", severity: "RED" });
    expect(escalated.message).toMatch(/is out of GLOVES-NITRILE/);
    const hooks = hooksOf(xihuHook).filter((h) => h.alert?.kind === "SHORTAGE_RISK");
    expect(hooks.every((h) => h.verified && h.alert.id === alertId)).toBe(true);
    expect(new Set(hooks.map((h) => h.id)).size).toBe(2); // one message id per notification
    const [{ n }] = await t.db.execute<{ n: number }>(sql`select count(*)::int as n from alert where kind = 'SHORTAGE_RISK'`, "objects") as [{ n: number }];
    expect(n).toBe(1);
  });

  it("resolves it when a recovering report comes in", async () => {
    await report(todays("HZ-XIHU-H1", "GLOVES-NITRILE", 0, 4500));
    await vi.waitFor(() => {
      expect(hooksOf(xihuHook).filter((h) => h.alert?.kind === "SHORTAGE_RISK").map((h) => h.type)).toEqual(["alert.raised", "alert.escalated", "alert.resolved"]);
      expect(alertsOf(hangzhouStream).filter((a) => a.id === alertId).map((a) => a.status)).toEqual(["OPEN", "OPEN", "RESOLVED"]);
    }, { timeout: 20_000, interval: 20 });
    const [a] = await t.db.execute<{ status: string; resolution: string }>(sql`select status, resolution from alert where kind = 'SHORTAGE_RISK'`, "objects");
    expect(a).toEqual({ status: "RESOLVED", resolution: "CLEARED" });
  });

  it("tells the planner of the neighbouring county nothing about it", async () => {
    // A sentinel in their own county: the first thing they hear is about it, so nothing came before.
    await report(todays("HZ-MASK-1", "GLOVES-NITRILE", 4500, 250), maker);
    await vi.waitFor(() => {
      expect(hooksOf(shangchengHook).length).toBeGreaterThan(0);
      expect(alertsOf(shangchengStream).length).toBeGreaterThan(0);
      expect(mailsTo(shangcheng).length).toBeGreaterThan(0);
    }, { timeout: 20_000, interval: 20 });
    expect(hooksOf(shangchengHook)[0]!.alert).toMatchObject({ regionCode: "330102" });
    expect(alertsOf(shangchengStream)[0]).toMatchObject({ region: { code: "330102" } });
    expect(mailsTo(shangcheng)[0]!.text).not.toMatch(/西湖区|330106|HZ-XIHU/);
    for (const hook of hooksOf(shangchengHook)) expect(hook.alert.regionCode).toBe("330102");
    for (const a of alertsOf(shangchengStream)) expect(a.region.code).toBe("330102");
    for (const m of mailsTo(shangcheng)) expect(m.text).not.toMatch(/330106/);
  });
});

import { randomBytes } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { sql } from "drizzle-orm";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { processors } from "../jobs/processors/index.js";
import { loadConfig } from "../src/config.js";
import { openDatabase, type DatabaseHandle } from "../src/db/index.js";
import { createLiveAlerts, liveAlertChannel, publishAlertDelivery, subscribeToAlerts, type LiveAlerts } from "../src/domain/alerts/live.js";
import type { AlertKind } from "../src/domain/types.js";
import { revokeApiToken } from "../src/domain/tokens.js";
import { createHttpServer } from "../src/http/server.js";
import { createLogger } from "../src/logger.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { TEST_REDIS_URL } from "./helpers/env.js";
import { makeUser, seedWorld, setupActor, type TestUser, type World } from "./helpers/fixtures.js";
import { clearRedisPrefix } from "./helpers/redis.js";
import { subscribeSse, type SseEvent, type Stream } from "./helpers/channels.js";

/**
 * Two API processes (two HTTP servers, each with its own Redis connections and database pool) on
 * one database and one Redis: an alert published by process A reaches the subscribers of process
 * B over server-sent events, each subscriber seeing only what it may see.
 */
const prefix = `{test-live-${randomBytes(4).toString("hex")}}`;
const config = loadConfig({ NODE_ENV: "test", LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent", QUEUE_PREFIX: prefix });
const logger = createLogger(config);

let t: TestDatabase;
let dbB: DatabaseHandle;
let world: World;
let liveA: LiveAlerts;
let liveB: LiveAlerts;
let serverA: Server;
let serverB: Server;
const streams: Stream[] = [];
let admin: TestUser;
let shangcheng: TestUser; // planner of county 330102
let xihu: TestUser; // planner of the neighbouring county 330106
let hangzhou: TestUser; // planner of the city 330100 (both counties)
let reporter: TestUser; // the manufacturer in 330102

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}
let portA: number;
let portB: number;

beforeAll(async () => {
  t = await createTestDatabase();
  dbB = openDatabase({ url: t.url, dataDir: "", poolSize: 2 });
  world = await seedWorld(t.db);
  admin = await makeUser(t.db, "ADMIN");
  shangcheng = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330102" });
  xihu = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330106" });
  hangzhou = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330100" });
  reporter = await makeUser(t.db, "REPORTER", { organizationId: world.maker.id });
  liveA = createLiveAlerts({ url: TEST_REDIS_URL, prefix, logger });
  liveB = createLiveAlerts({ url: TEST_REDIS_URL, prefix, logger });
  serverA = createHttpServer({ config, db: t.db, logger, ready: async () => {}, live: liveA });
  serverB = createHttpServer({ config, db: dbB.db, logger, ready: async () => {}, live: liveB });
  [portA, portB] = await Promise.all([listen(serverA), listen(serverB)]);
});

afterAll(async () => {
  for (const s of streams) s.close();
  for (const server of [serverA, serverB]) {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  }
  await Promise.all([liveA?.close(), liveB?.close()]);
  await clearRedisPrefix(TEST_REDIS_URL, prefix);
  await dbB?.close();
  await t?.drop();
});

const ALERT_FIELDS = "id kind severity status message region { code } product { code } organization { name }";

async function subscribe(port: number, token: string | null, args = "", fields = ALERT_FIELDS): Promise<Stream> {
  const stream = await subscribeSse(port, token, `subscription { alertRaised${args} { ${fields} } }`);
  expect(stream.contentType).toContain("text/event-stream");
  streams.push(stream);
  return stream;
}

/** The rows the alert engine and dispatch write for one raised alert: alert, event, SSE delivery. */
async function raise(a: { kind: AlertKind; regionCode: string; organizationId?: string; productCode?: string; message: string }) {
  const [alert] = await t.db.execute<{ id: string }>(
    sql`insert into alert (kind, dedupe_key, severity, stage, peak_stage, region_id, product_id, organization_id, message, details)
        values (${a.kind}, ${`${a.kind}:${randomBytes(4).toString("hex")}`}, 'RED', 1, 1, (select id from region where code = ${a.regionCode}),
                (select id from product where code = ${a.productCode ?? null}), ${a.organizationId ?? null}::uuid, ${a.message}, '{}'::jsonb)
        returning id`,
    "objects",
  );
  const [event] = await t.db.execute<{ id: number }>(
    sql`insert into alert_event (alert_id, type, severity, message) values (${alert!.id}::uuid, 'RAISED', 'RED', ${a.message}) returning id::int`,
    "objects",
  );
  const [delivery] = await t.db.execute<{ id: string }>(
    sql`insert into delivery (alert_event_id, channel) values (${event!.id}, 'SSE') returning id`,
    "objects",
  );
  return { alertId: alert!.id, globalId: Buffer.from(`Alert:${alert!.id}`).toString("base64"), eventId: event!.id, deliveryId: delivery!.id };
}

/** Raises an alert and publishes it from process A, as the worker's alerts.publish job does. */
async function raiseAndPublish(a: Parameters<typeof raise>[0]) {
  const r = await raise(a);
  await publishAlertDelivery(t.db, liveA.publish, r.deliveryId);
  return r;
}

async function delivery(id: string) {
  const [d] = await t.db.execute<{ status: string; attempts: number; last_error: string | null; delivered: boolean }>(
    sql`select status, attempts, last_error, delivered_at is not null as delivered from delivery where id = ${id}::uuid`,
    "objects",
  );
  return d!;
}

const alertOf = (e: SseEvent) => {
  expect(e.event).toBe("next");
  expect(e.data.errors).toBeUndefined();
  return e.data.data.alertRaised;
};

describe("alertRaised across API processes", () => {
  it("reaches a subscriber of another process with the alert; a planner of another county is sent nothing", async () => {
    const inScope = await subscribe(portB, shangcheng.token);
    const otherCounty = await subscribe(portB, xihu.token);
    const onA = await subscribe(portA, admin.token);

    // Published by the job's processor in "process A" (its own Redis connection).
    const first = await raise({ kind: "SHORTAGE_RISK", regionCode: "330102", productCode: "MASK-N95", message: "N95 in Shangcheng: 2 days of supply" });
    await processors["alerts.publish"]({ deliveryId: first.deliveryId }, {
      db: t.db,
      logger,
      config,
      connection: { url: TEST_REDIS_URL },
      publishAlert: liveA.publish,
      attempt: { made: 0, max: 5 },
    });
    expect(alertOf(await inScope.next())).toEqual({
      id: first.globalId,
      kind: "SHORTAGE_RISK",
      severity: "RED",
      status: "OPEN",
      message: "N95 in Shangcheng: 2 days of supply",
      region: { code: "330102" },
      product: { code: "MASK-N95" },
      organization: null,
    });
    expect(alertOf(await onA.next()).id).toBe(first.globalId);
    expect(await delivery(first.deliveryId)).toEqual({ status: "DELIVERED", attempts: 1, last_error: null, delivered: true });

    // The job run again (a retry after the row was written) publishes nothing.
    expect(await publishAlertDelivery(t.db, liveA.publish, first.deliveryId)).toEqual({ published: false, status: "DELIVERED" });
    expect((await delivery(first.deliveryId)).attempts).toBe(1);

    // A later in-scope alert is the next thing the in-scope stream gets (no duplicate of the first).
    const sentinel = await raiseAndPublish({ kind: "STOCKOUT_IMMINENT", regionCode: "330102", organizationId: world.maker.id, message: "HZ-MASK-1: stock does not add up" });
    expect(alertOf(await inScope.next())).toMatchObject({ id: sentinel.globalId, organization: { name: "Hangzhou Mask Works" } });
    expect(otherCounty.received).toEqual([]);

    // Each stream gets its events in order, so the Xihu planner's first event being a Xihu alert
    // proves the two Shangcheng alerts before it were withheld, not merely late.
    const own = await raiseAndPublish({ kind: "SHORTAGE_RISK", regionCode: "330106", productCode: "MASK-N95", message: "N95 in Xihu: 5 days of supply" });
    expect(alertOf(await otherCounty.next()).id).toBe(own.globalId);
    expect(otherCounty.received).toHaveLength(1);
    expect((await onA.next()).data.data.alertRaised.id).toBe(sentinel.globalId);
    expect((await onA.next()).data.data.alertRaised.id).toBe(own.globalId);
    const last = await raiseAndPublish({ kind: "SHORTAGE_RISK", regionCode: "330102", productCode: "GOGGLES", message: "goggles in Shangcheng" });
    expect(alertOf(await inScope.next()).id).toBe(last.globalId);
    expect(inScope.received.map((e) => e.data.data.alertRaised.id)).toEqual([first.globalId, sentinel.globalId, last.globalId]);

    // Closing the streams lets go of the Redis subscription once the last one on a process is gone.
    for (const s of [inScope, otherCounty, onA]) s.close();
    const probe = new Redis(TEST_REDIS_URL);
    try {
      await vi.waitFor(async () => expect(await probe.pubsub("NUMSUB", liveAlertChannel(prefix))).toEqual([liveAlertChannel(prefix), 0]), { timeout: 5_000, interval: 20 });
    } finally {
      probe.disconnect();
    }
  });

  it("filters by region subtree and kinds; planners get REPORT_OVERDUE only when they ask for it; organizations their own", async () => {
    const filtered = await subscribe(portB, hangzhou.token, '(regionCode: "330106", kinds: [STOCKOUT_IMMINENT])');
    const city = await subscribe(portB, hangzhou.token);
    const overdue = await subscribe(portB, hangzhou.token, "(kinds: [REPORT_OVERDUE])");
    const ownOrg = await subscribe(portB, reporter.token, '(regionCode: "330000")');

    await raiseAndPublish({ kind: "SHORTAGE_RISK", regionCode: "330106", productCode: "MASK-N95", message: "wrong kind" });
    await raiseAndPublish({ kind: "STOCKOUT_IMMINENT", regionCode: "330102", organizationId: world.maker.id, message: "wrong region" });
    await raiseAndPublish({ kind: "REPORT_OVERDUE", regionCode: "330102", organizationId: world.maker.id, message: "HZ-MASK-1 has not reported" });
    const match = await raiseAndPublish({ kind: "STOCKOUT_IMMINENT", regionCode: "330106", organizationId: world.hospital.id, message: "ward out tomorrow" });

    expect(alertOf(await filtered.next()).id).toBe(match.globalId);
    expect(filtered.received).toHaveLength(1);
    expect((await Promise.all([1, 2, 3].map(() => city.next()))).map((e) => alertOf(e).message)).toEqual(["wrong kind", "wrong region", "ward out tomorrow"]);
    expect(alertOf(await overdue.next()).message).toBe("HZ-MASK-1 has not reported");
    // The manufacturer's reporter: its own organization's alerts, and no other organization's.
    expect((await Promise.all([1, 2].map(() => ownOrg.next()))).map((e) => alertOf(e).message)).toEqual(["wrong region", "HZ-MASK-1 has not reported"]);
    const later = await raiseAndPublish({ kind: "STOCKOUT_IMMINENT", regionCode: "330102", organizationId: world.maker.id, message: "later" });
    expect(alertOf(await ownOrg.next()).id).toBe(later.globalId);
    expect(ownOrg.received).toHaveLength(3);
    for (const s of [filtered, city, overdue, ownOrg]) s.close();
  });

  it("refuses anonymous subscribers and regions outside the viewer's scope, with clear errors", async () => {
    const cases: [string | null, string, RegExp][] = [
      [null, "", /not signed in/],
      [shangcheng.token, '(regionCode: "330106")', /region 330106 not found, or not visible to you: you may look at 330102/],
      [shangcheng.token, '(regionCode: "999999")', /region 999999 not found, or not visible to you/],
      [reporter.token, '(regionCode: "320000")', /region 320000 not found, or not visible to you/],
      [admin.token, '(regionCode: "999999")', /no region with code 999999/],
    ];
    for (const [token, args, message] of cases) {
      const s = await subscribe(portB, token, args);
      const first = await s.next();
      expect(first.event).toBe("next");
      expect(first.data.errors[0].message).toMatch(message);
      expect(first.data.data ?? null).toBeNull();
      expect((await s.next()).event).toBe("complete");
    }
  });
});

describe("publishAlertDelivery", () => {
  it("records a failed publish on the delivery and fails it on the last attempt; a later run delivers it", async () => {
    const r = await raise({ kind: "SHORTAGE_RISK", regionCode: "330106", message: "broker away" });
    const away = createLiveAlerts({ url: TEST_REDIS_URL, prefix, logger });
    await away.close();
    await expect(publishAlertDelivery(t.db, away.publish, r.deliveryId)).rejects.toThrow(/closed/i);
    expect(await delivery(r.deliveryId)).toMatchObject({ status: "PENDING", attempts: 1, last_error: expect.stringMatching(/closed/i), delivered: false });
    await expect(publishAlertDelivery(t.db, away.publish, r.deliveryId, { lastAttempt: true })).rejects.toThrow();
    expect(await delivery(r.deliveryId)).toMatchObject({ status: "FAILED", attempts: 2 });
    await expect(publishAlertDelivery(t.db, liveA.publish, r.deliveryId)).resolves.toEqual({ published: true, status: "DELIVERED" });
    expect(await delivery(r.deliveryId)).toEqual({ status: "DELIVERED", attempts: 3, last_error: null, delivered: true });
  });

  it("ends a stream whose token was revoked, with an error", async () => {
    const user = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330102" });
    const stream = await subscribeToAlerts(t.db, liveB, user.viewer, {}, { recheckViewerMs: 0 });
    const before = await raiseAndPublish({ kind: "SHORTAGE_RISK", regionCode: "330102", message: "before" });
    expect(await stream.next()).toMatchObject({ done: false, value: { id: before.alertId } });
    await revokeApiToken(t.db, setupActor, user.viewer.tokenId);
    await raiseAndPublish({ kind: "SHORTAGE_RISK", regionCode: "330102", message: "after" });
    const ended = await stream.next();
    expect(ended.value).toBeInstanceOf(Error);
    expect((ended.value as Error).message).toMatch(/revoked or has expired/);
    expect(await stream.next()).toEqual({ done: true, value: undefined });
  });
});

import { randomBytes } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { QueueEvents } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorker, type RunningWorker } from "../jobs/worker.js";
import { QUEUES } from "../jobs/definitions.js";
import { loadConfig } from "../src/config.js";
import { createHttpServer } from "../src/http/server.js";
import { createLogger } from "../src/logger.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { TEST_REDIS_URL } from "./helpers/env.js";
import { makeUser, seedWorld, type TestUser } from "./helpers/fixtures.js";
import { clearRedisPrefix } from "./helpers/redis.js";

const prefix = `{test-ops-${randomBytes(4).toString("hex")}}`;
const METRICS_TOKEN = "metrics-token-0123456789";
const connection = { url: TEST_REDIS_URL, maxRetriesPerRequest: null };

let t: TestDatabase;
let worker: RunningWorker;
let admin: TestUser;
let planner: TestUser;
const servers: Server[] = [];

async function serve(env: Record<string, string> = {}, logs?: Record<string, unknown>[]) {
  const config = loadConfig({ NODE_ENV: "test", LOG_LEVEL: logs ? "info" : "silent", QUEUE_PREFIX: prefix, ...env });
  const logger = logs ? createLogger(config, { write: (line: string) => void logs.push(JSON.parse(line)) }) : createLogger(config);
  const server = createHttpServer({ config, db: t.db, logger, ready: async () => {}, redisUrl: TEST_REDIS_URL });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push(server);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const graphql = (url: string, token: string) => async (query: string) => {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body: JSON.stringify({ query }) });
  expect(res.status).toBe(200);
  return res.json();
};
const basic = (token: string) => `Basic ${Buffer.from(`admin:${token}`).toString("base64")}`;

beforeAll(async () => {
  t = await createTestDatabase();
  await seedWorld(t.db);
  admin = await makeUser(t.db, "ADMIN");
  planner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330000" });
  worker = await startWorker({ config: { QUEUE_PREFIX: prefix, IDEMPOTENCY_TTL_HOURS: 72 }, db: t.db, logger: createLogger({ LOG_LEVEL: "silent" }), connection });
});

afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  await worker?.close();
  await clearRedisPrefix(TEST_REDIS_URL, prefix);
  await t?.drop();
});

describe("/metrics", () => {
  it("shows HTTP and GraphQL timings, job durations and every queue's job counts, each metric under one HELP and TYPE", async () => {
    const base = await serve();
    const gql = graphql(`${base}/graphql`, planner.token);
    await gql(`{ products { code } }`);
    await fetch(`${base}/healthz`);
    // A job run by the worker in this process: its duration is recorded by name.
    const events = new QueueEvents("maintenance", { connection, prefix });
    await events.waitUntilReady();
    const job = await worker.queues.get("maintenance")!.add("maintenance.purgeOutbox", { olderThanHours: 24 });
    await job.waitUntilFinished(events, 10_000);
    await events.close();

    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0.0.4/);
    const text = await res.text();
    expect(text).toMatch(/http_request_duration_seconds_count\{route="\/healthz",method="GET",status="200"\} [1-9]/);
    expect(text).toMatch(/graphql_operation_duration_seconds_count\{type="query",fields="products",outcome="ok"\} [1-9]/);
    expect(text).toMatch(/job_duration_seconds_count\{queue="maintenance",name="maintenance.purgeOutbox",outcome="completed"\} [1-9]/);
    for (const queue of Object.keys(QUEUES)) expect(text).toContain(`bullmq_job_count{queue="${queue}", state="waiting"}`);
    expect(text).toMatch(/process_resident_memory_bytes \d+/);
    const meta = text.split("\n").filter((l) => l.startsWith("# TYPE"));
    expect(new Set(meta).size).toBe(meta.length);
    // Each metric's samples follow its TYPE line, before the next metric's.
    const names = text.split("\n").filter((l) => l && !l.startsWith("#")).map((l) => /^[a-z_:]+?(?=(_bucket|_sum|_count)?[{ ])/.exec(l)?.[0]);
    const order = names.filter((n, i) => n !== names[i - 1]);
    expect(new Set(order).size).toBe(order.length);
    // A client's own operation name never becomes a label: only the schema's root fields do.
    await gql(`query Aaaa_${randomBytes(4).toString("hex")} { products { code } }`);
    expect(await (await fetch(`${base}/metrics`)).text()).not.toMatch(/Aaaa_/);
  });

  it("asks for METRICS_TOKEN when it is set", async () => {
    const base = await serve({ METRICS_TOKEN });
    const without = await fetch(`${base}/metrics`);
    expect(without.status).toBe(401);
    expect(await without.text()).toMatch(/Authorization: Bearer <METRICS_TOKEN>/);
    expect((await fetch(`${base}/metrics`, { headers: { authorization: "Bearer wrong-token-wrong-token" } })).status).toBe(401);
    expect((await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).status).toBe(200);
    expect(() => loadConfig({ METRICS_TOKEN: "short" })).toThrow(/METRICS_TOKEN.*at least 16 characters/);
  });
});

describe("logs", () => {
  it("write one line per request with its id: the client's x-request-id, or a new one", async () => {
    const logs: Record<string, unknown>[] = [];
    const base = await serve({}, logs);
    const res = await fetch(`${base}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${planner.token}`, "x-request-id": "trace-42" },
      body: JSON.stringify({ query: "{ products { code } }" }),
    });
    expect(res.headers.get("x-request-id")).toBe("trace-42");
    await res.text();
    const anonymous = await fetch(`${base}/open-data/shortages.json`);
    await anonymous.text();
    await expect.poll(() => logs.filter((l) => l.msg === "request").length).toBe(2);
    const [graphqlLine, openDataLine] = logs.filter((l) => l.msg === "request");
    expect(graphqlLine).toMatchObject({ requestId: "trace-42", method: "POST", route: "/graphql", status: 200, service: "supply-monitor" });
    expect(openDataLine).toMatchObject({ route: "/open-data/shortages.json", status: 200 });
    expect(openDataLine!.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.stringify(logs)).not.toContain(planner.token);
  });
});

describe("/admin/queues", () => {
  it("is the BullMQ dashboard for admins only: a browser's Basic sign-in with the token as password, or a bearer token", async () => {
    const base = await serve();
    const anonymous = await fetch(`${base}/admin/queues`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("www-authenticate")).toMatch(/^Basic realm=/);
    expect(await anonymous.text()).toMatch(/ADMIN API token as the password/);
    const unknown = await fetch(`${base}/admin/queues`, { headers: { authorization: basic("smt_not-a-token") } });
    expect(unknown.status).toBe(401);
    const notAdmin = await fetch(`${base}/admin/queues`, { headers: { authorization: basic(planner.token) } });
    expect(notAdmin.status).toBe(403);
    expect(await notAdmin.text()).toMatch(/role is PLANNER/);

    const page = await fetch(`${base}/admin/queues`, { headers: { authorization: basic(admin.token) } });
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<html/i);
    const api = await fetch(`${base}/admin/queues/api/queues`, { headers: { authorization: `Bearer ${admin.token}` } });
    expect(api.status).toBe(200);
    const body = (await api.json()) as { queues: { name: string }[] };
    expect(body.queues.map((q) => q.name).sort()).toEqual(Object.keys(QUEUES).sort());
  });
});

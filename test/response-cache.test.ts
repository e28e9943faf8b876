// The planner dashboard's response cache (src/http/response-cache.ts) on the real yoga handler,
// Postgres and Redis: two handlers with their own caches stand for two API processes, and the
// forecast job's processor publishes the invalidation as a worker does.
import { randomBytes } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { parse } from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { processors, type ProcessorContext } from "../jobs/processors/index.js";
import { loadConfig } from "../src/config.js";
import { markAllDirty, recomputeDirty } from "../src/domain/forecast/pipeline.js";
import { relayOutbox } from "../src/domain/outbox.js";
import { submitReports } from "../src/domain/reports/ingest.js";
import { dateOfDay, dayNumber } from "../src/domain/reports/validate.js";
import { schema } from "../src/graphql/schema.js";
import { createRateLimits } from "../src/http/limits.js";
import { createResponseCache, createResponseInvalidator, isCacheableOperation, type ResponseCache } from "../src/http/response-cache.js";
import { createGraphQLHandler, createHttpServer } from "../src/http/server.js";
import { createLogger } from "../src/logger.js";
import { freePort } from "../src/redis.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { TEST_REDIS_URL } from "./helpers/env.js";
import { makeUser, seedWorld, type TestUser } from "./helpers/fixtures.js";
import { clearRedisPrefix } from "./helpers/redis.js";

const prefix = `{test-${randomBytes(4).toString("hex")}}`;
const env = { NODE_ENV: "test", LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent", QUEUE_PREFIX: prefix };
const config = loadConfig(env);
const logger = createLogger(config);
const lastDay = dayNumber(new Date(Date.now() - 86_400_000).toISOString().slice(0, 10));
const day = (offset: number) => dateOfDay(lastDay + offset);

const SHORTAGES = `query($r: String!) { shortages(regionCode: $r, productCode: "MASK-N95") { edges { node { region { code name } product { code } riskLevel onHand daysOfSupply } } } }`;

let t: TestDatabase;
let users: Record<"zj" | "zj2" | "js" | "admin" | "reporter", TestUser>;
const closers: (() => Promise<unknown>)[] = [];

interface Answer {
  status: number;
  data?: any;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
  extensions?: { responseCache?: { hit: boolean; didCache?: boolean } };
}

/** One API process: a yoga handler with its own response cache. */
async function apiProcess(options: { readsPerMinute?: number } = {}) {
  const redisUrl = TEST_REDIS_URL;
  const config = loadConfig({ ...env, ...(options.readsPerMinute ? { RATE_LIMIT_READS_PER_MINUTE: String(options.readsPerMinute) } : {}) });
  const cache = createResponseCache({ config, db: t.db, logger, redisUrl });
  const rateLimits = options.readsPerMinute ? createRateLimits({ config, redisUrl, logger }) : undefined;
  closers.push(() => cache.close(), async () => rateLimits?.close());
  const yoga = createGraphQLHandler({ config, db: t.db, logger, responseCache: cache, ...(rateLimits ? { rateLimits } : {}) });
  const gql = async (user: TestUser, query: string, variables?: Record<string, unknown>): Promise<Answer> => {
    const response = await yoga.fetch("http://test/graphql", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${user.token}` },
      body: JSON.stringify({ query, variables }),
    });
    return { status: response.status, ...((await response.json()) as object) };
  };
  return { cache, gql };
}

let a: Awaited<ReturnType<typeof apiProcess>>;
let b: Awaited<ReturnType<typeof apiProcess>>;

async function writeStock(onHand: number) {
  const rows = Array.from({ length: 14 }, (_, i) => ({ siteCode: "HZ-XIHU-H1", productCode: "MASK-N95", date: day(i - 13), onHand: i === 13 ? onHand : 400, consumed: 100, received: 100 }));
  expect((await submitReports(t.db, users.admin.actor, rows as never, { backfillDays: 400 })).rejected).toEqual([]);
  await relayOutbox(t.db, async () => {});
}

beforeAll(async () => {
  t = await createTestDatabase();
  const world = await seedWorld(t.db);
  users = {
    zj: await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330000" }),
    zj2: await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330000" }),
    js: await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "320000" }),
    admin: await makeUser(t.db, "ADMIN"),
    reporter: await makeUser(t.db, "REPORTER", { organizationId: world.hospital.id }),
  };
  await writeStock(400);
  await markAllDirty(t.db);
  await recomputeDirty(t.db, { trigger: "test" });
  a = await apiProcess();
  b = await apiProcess();
  await Promise.all([a.cache.ready(), b.cache.ready()]);
});

afterAll(async () => {
  for (const close of closers) await close();
  await clearRedisPrefix(TEST_REDIS_URL, prefix);
  await t?.drop();
});

describe("response cache", () => {
  it("answers the same query from the cache the second time, and the same for a planner of the same jurisdiction", async () => {
    const first = await a.gql(users.zj, SHORTAGES, { r: "330000" });
    expect(first.errors).toBeUndefined();
    expect(first.data.shortages.edges.length).toBeGreaterThan(0);
    expect(first.extensions?.responseCache).toMatchObject({ hit: false, didCache: true });
    const hitsBefore = a.cache.stats().hits;
    const second = await a.gql(users.zj, SHORTAGES, { r: "330000" });
    expect(second.extensions?.responseCache).toEqual({ hit: true });
    expect(second.data).toEqual(first.data);
    expect(a.cache.stats().hits).toBe(hitsBefore + 1);
    // Same jurisdiction, same scope: the entry is shared.
    const colleague = await a.gql(users.zj2, SHORTAGES, { r: "330000" });
    expect(colleague.extensions?.responseCache).toEqual({ hit: true });
    // Other variables, another entry.
    expect((await a.gql(users.zj, SHORTAGES, { r: "330100" })).extensions?.responseCache).toMatchObject({ hit: false });
  });

  it("never gives a planner of another region, or another role, an entry of someone else's scope", async () => {
    await a.gql(users.zj, SHORTAGES, { r: "330000" });
    expect((await a.gql(users.zj, SHORTAGES, { r: "330000" })).extensions?.responseCache).toEqual({ hit: true });
    const outsider = await a.gql(users.js, SHORTAGES, { r: "330000" });
    expect(outsider.data?.shortages ?? null).toBeNull();
    expect(outsider.errors?.[0]?.message).toMatch(/not found, or not visible to you/);
    expect(outsider.extensions?.responseCache).toMatchObject({ hit: false, didCache: false });
    // A refusal is not kept either: the same planner is refused again by the resolver, not the cache.
    expect((await a.gql(users.js, SHORTAGES, { r: "330000" })).extensions?.responseCache).toMatchObject({ hit: false, didCache: false });
    const admin = await a.gql(users.admin, SHORTAGES, { r: "330000" });
    expect(admin.extensions?.responseCache).toMatchObject({ hit: false });
    const reporter = await a.gql(users.reporter, SHORTAGES, { r: "330000" });
    expect(reporter.errors?.[0]?.message).toMatch(/not allowed|not visible/);
    expect(reporter.extensions?.responseCache).toBeUndefined();
  });

  it("drops every process's entries when the forecast job has written new forecasts, and answers fresh figures", async () => {
    const invalidator = createResponseInvalidator({ url: TEST_REDIS_URL, prefix, logger });
    closers.push(invalidator.close);
    for (const api of [a, b]) {
      await api.gql(users.zj, SHORTAGES, { r: "330106" });
      expect((await api.gql(users.zj, SHORTAGES, { r: "330106" })).extensions?.responseCache).toEqual({ hit: true });
    }
    const stale = (await a.gql(users.zj, SHORTAGES, { r: "330106" })).data.shortages.edges[0].node.onHand;
    expect(stale).toBe(400);

    await writeStock(250);
    const arrived = [a.cache.nextInvalidation(), b.cache.nextInvalidation()];
    const ctx = { db: t.db, logger, config, connection: {}, attempt: { made: 0, max: 1 }, invalidateResponses: invalidator.invalidate } satisfies ProcessorContext;
    const result = (await processors["forecast.recompute"]({ trigger: "manual" }, ctx)) as { products: number };
    expect(result.products).toBeGreaterThan(0);
    expect(await Promise.all(arrived)).toEqual([
      { drop: "responses", reason: "forecasts" },
      { drop: "responses", reason: "forecasts" },
    ]);
    for (const api of [a, b]) {
      const fresh = await api.gql(users.zj, SHORTAGES, { r: "330106" });
      expect(fresh.extensions?.responseCache).toMatchObject({ hit: false, didCache: true });
      expect(fresh.data.shortages.edges[0].node.onHand).toBe(250);
    }
  });

  it("computes an answer once when many ask for it at the same time, the others wait for it", async () => {
    const dropped = a.cache.nextInvalidation();
    await a.cache.invalidate("test");
    await dropped;
    const executed = a.cache.stats().misses;
    const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => a.gql(i % 2 ? users.zj : users.zj2, SHORTAGES, { r: "330000" })));
    expect(answers.map((r) => r.extensions?.responseCache?.hit).sort()).toEqual([false, true, true, true, true, true]);
    expect(new Set(answers.map((r) => JSON.stringify(r.data))).size).toBe(1);
    expect(a.cache.stats().misses).toBe(executed + 1);
  });

  it("never caches mutations, personal or per-user answers, or operations mixing them with cached fields", async () => {
    const personal = [
      "{ me { role user { email } } }",
      "{ alerts(first: 5) { edges { node { id } } } }",
      `{ shortages(regionCode: "330000") { edges { node { riskLevel } } } me { role } }`,
      `{ reportingCompleteness(regionCode: "330000", date: "${day(0)}") { reportingSites } }`,
    ];
    for (const query of personal) {
      for (let i = 0; i < 2; i++) {
        const r = await a.gql(users.zj, query);
        expect(r.errors, query).toBeUndefined();
        expect(r.extensions?.responseCache, query).toBeUndefined();
      }
    }
    const mutation = `mutation { setDemandScenario(input: { regionCode: "330106", productCode: "GOGGLES", casesPerDay: 3, usagePerCasePerDay: 1 }) { dailyDemand } }`;
    for (let i = 0; i < 2; i++) {
      const r = await a.gql(users.zj, mutation);
      expect(r.errors).toBeUndefined();
      expect(r.extensions?.responseCache).toBeUndefined();
    }
    const ok = (q: string, name?: string) => isCacheableOperation(schema, parse(q), name);
    expect(ok(`{ forecast(regionCode: "330000", productCode: "MASK-N95") { method points { date demand } shortage { riskLevel region { parent { code } } } } }`)).toBe(true);
    expect(ok(`query Q { ...F } fragment F on Query { shortages(regionCode: "1") { pageInfo { hasNextPage } edges { node { ... on Shortage { riskLevel } } } } }`, "Q")).toBe(true);
    expect(ok(`mutation { submitReports(reports: []) { accepted } }`)).toBe(false);
    expect(ok(`subscription { alertRaised { id } }`)).toBe(false);
    expect(ok(`{ shortages(regionCode: "1") { edges { node { riskLevel } } } __schema { types { name } } }`)).toBe(false);
    expect(ok(`{ forecast(regionCode: "1", productCode: "X") { method } } query Other { me { role } }`, "Other")).toBe(false);
  });

  it("forgets a revoked token at once, in this process and the others", async () => {
    const spare = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330000" });
    // Both processes have checked (and keep) the token.
    const own = await a.gql(spare, "{ me { user { apiTokens { id } } } }");
    expect(own.status).toBe(200);
    expect((await b.gql(spare, "{ me { role } }")).status).toBe(200);
    const heard = b.cache.nextInvalidation();
    const mine = await a.gql(spare, "mutation($id: ID!) { revokeApiToken(id: $id) { revokedAt } }", { id: own.data.me.user.apiTokens[0].id });
    expect(mine.data.revokeApiToken.revokedAt).toBeTruthy();
    expect(await heard).toMatchObject({ drop: "viewers" });
    expect((await a.gql(spare, "{ me { role } }")).status).toBe(401);
    expect((await b.gql(spare, "{ me { role } }")).status).toBe(401);
  });

  it("counts answers from the cache against the token's rate limit", async () => {
    const limit = 5;
    const limited = await apiProcess({ readsPerMinute: limit });
    await limited.cache.ready();
    const planner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330000" });
    const statuses: number[] = [];
    const hits: (boolean | undefined)[] = [];
    for (let i = 0; i < limit + 1; i++) {
      const r = await limited.gql(planner, SHORTAGES, { r: "330102" });
      statuses.push(r.status);
      hits.push(r.extensions?.responseCache?.hit);
    }
    expect(hits.slice(0, limit)).toEqual([false, ...Array(limit - 1).fill(true)]);
    expect(statuses.slice(0, -1).every((s) => s === 200)).toBe(true);
    expect(statuses.at(-1)).toBe(429);
  });

  it("serves nothing from the cache while it cannot hear invalidations", async () => {
    const deaf: ResponseCache = createResponseCache({ config, db: t.db, logger, redisUrl: `redis://127.0.0.1:${await freePort()}` });
    closers.push(() => deaf.close());
    const yoga = createGraphQLHandler({ config, db: t.db, logger, responseCache: deaf });
    for (let i = 0; i < 2; i++) {
      const response = await yoga.fetch("http://test/graphql", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${users.zj.token}` },
        body: JSON.stringify({ query: SHORTAGES, variables: { r: "330000" } }),
      });
      const r = (await response.json()) as Answer;
      expect(r.data.shortages.edges.length).toBeGreaterThan(0);
      expect(r.extensions?.responseCache).toBeUndefined();
    }
    expect(deaf.stats()).toMatchObject({ live: false, hits: 0, stored: 0 });
  });

  describe("over HTTP, answers the cache holds are written before yoga", () => {
    let server: Server;
    let cache: ResponseCache;
    let port: number;
    const post = async (user: TestUser | null, body: string, headers: Record<string, string> = {}) => {
      const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(user ? { authorization: `Bearer ${user.token}` } : {}), ...headers },
        body,
      });
      return {
        status: response.status,
        type: response.headers.get("content-type"),
        requestId: response.headers.get("x-request-id"),
        etag: response.headers.get("etag"),
        text: await response.text(),
      };
    };
    const body = (r: string, extra: Record<string, unknown> = {}) => JSON.stringify({ query: SHORTAGES, variables: { r }, ...extra });

    beforeAll(async () => {
      const limited = loadConfig({ ...env, RATE_LIMIT_READS_PER_MINUTE: "8" });
      cache = createResponseCache({ config: limited, db: t.db, logger, redisUrl: TEST_REDIS_URL });
      closers.push(() => cache.close());
      server = createHttpServer({ config: limited, db: t.db, logger, ready: async () => {}, redisUrl: TEST_REDIS_URL, responseCache: cache });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      port = (server.address() as AddressInfo).port;
      closers.push(() => new Promise((resolve) => server.close(resolve)));
      await cache.ready();
    });

    it("writes what yoga writes for the same hit, in the media type the Accept header asks for", async () => {
      const planner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330000" });
      const miss = await post(planner, body("330100"));
      expect(JSON.parse(miss.text).extensions.responseCache).toMatchObject({ hit: false, didCache: true });
      const before = cache.stats();
      const fast = await post(planner, body("330100"), { "x-request-id": "req-before-yoga-1" });
      // Yoga's own hit: extensions in the body take yoga's path, and the key ignores them.
      const viaYoga = await post(planner, body("330100", { extensions: {} }));
      const after = cache.stats();
      expect(after.hits - before.hits).toBe(2);
      expect(after.hitsBeforeYoga - before.hitsBeforeYoga).toBe(1);
      expect(fast.status).toBe(200);
      expect(fast.text).toBe(viaYoga.text);
      expect(JSON.parse(fast.text)).toEqual({ ...JSON.parse(miss.text), extensions: { responseCache: { hit: true } } });
      expect(fast.type).toBe(viaYoga.type);
      expect(fast.requestId).toBe("req-before-yoga-1");
      expect(fast.etag).toBe(viaYoga.etag);
      expect(fast.etag).toBeTruthy();
      // The dashboard's Accept header: yoga answers it as application/graphql-response+json.
      const dashboardAccept = { accept: "application/graphql-response+json, application/json" };
      const viaYogaTyped = await post(planner, body("330100", { extensions: {} }), dashboardAccept);
      const fastTyped = await post(planner, body("330100"), dashboardAccept);
      expect(fastTyped.type).toBe(viaYogaTyped.type);
      expect(fastTyped.type).toMatch(/^application\/graphql-response\+json/);
      expect(fastTyped.text).toBe(viaYogaTyped.text);
      expect(cache.stats().hitsBeforeYoga - after.hitsBeforeYoga).toBe(1);
      // From a browser on another origin: yoga's CORS headers, the same on both paths.
      const corsHeaders = async (extra: Record<string, unknown>) => {
        const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${planner.token}`, origin: "https://dashboard.example.org" },
          body: body("330100", extra),
        });
        await response.text();
        // Every header but the date and the request id (a new one per request).
        return Object.fromEntries([...response.headers].filter(([h]) => h !== "date" && h !== "x-request-id"));
      };
      const fastBefore = cache.stats().hitsBeforeYoga;
      expect(await corsHeaders({})).toEqual(await corsHeaders({ extensions: {} }));
      expect(await corsHeaders({})).toMatchObject({
        "access-control-allow-origin": "https://dashboard.example.org",
        "access-control-allow-credentials": "true",
        vary: "Origin",
      });
      expect(cache.stats().hitsBeforeYoga - fastBefore).toBe(2);
    });

    it("leaves to yoga whatever it may not answer: another scope, a bad token, bad JSON, a batch, and the rate limit", async () => {
      const planner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330000" });
      await post(planner, body("330106"));
      const before = cache.stats().hitsBeforeYoga;
      const outsider = await post(users.js, body("330106"));
      expect(JSON.parse(outsider.text).errors[0].message).toMatch(/not found, or not visible to you/);
      const guess = await post({ token: "sm_not-a-real-token" } as TestUser, body("330106"));
      expect(guess.status).toBe(401);
      expect(JSON.parse(guess.text).errors[0].message).toMatch(/token is unknown, revoked or expired/);
      const broken = await post(planner, `{"query": ${JSON.stringify(SHORTAGES)}, "variables": {"r": "330106"`);
      expect(broken.status).toBe(400);
      expect(JSON.parse(broken.text).errors[0].message).toMatch(/JSON/);
      const batch = await post(planner, `[${body("330106")}]`);
      expect(batch.status).toBe(200);
      expect(JSON.parse(batch.text)[0].data.shortages.edges.length).toBeGreaterThan(0);
      expect(cache.stats().hitsBeforeYoga).toBe(before);
      // Its budget is 8 reads a minute: the first two spent above (the batch's one too), the rest
      // answered before yoga, then refused.
      const statuses: number[] = [];
      for (let i = 0; i < 7; i++) statuses.push((await post(planner, body("330106"))).status);
      expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 429]);
      expect(cache.stats().hitsBeforeYoga).toBe(before + 6);
    });
  });
});

// Limits against abuse, through real HTTP servers on the real Postgres and Redis: each limit refuses
// with its status and a message that says what to do, and a request just under it is answered.
import { randomBytes } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { sql } from "drizzle-orm";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { createGraphQLHandler, createHttpServer } from "../src/http/server.js";
import { createRateLimits, RATE_LEASE_MAX } from "../src/http/limits.js";
import { createLogger } from "../src/logger.js";
import { subscribeSse } from "./helpers/channels.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { TEST_REDIS_URL } from "./helpers/env.js";
import { makeUser, seedWorld, type TestUser } from "./helpers/fixtures.js";
import { clearRedisPrefix } from "./helpers/redis.js";

const prefix = `{test-limits-${randomBytes(4).toString("hex")}}`;
const PRODUCTION = { NODE_ENV: "production", SECRET_KEY: "limits-test-secret-key-0123456789abcdef" };

let t: TestDatabase;
let admin: TestUser;
let reporter: TestUser;
let reporter2: TestUser;
const servers: Server[] = [];
let dev: string; // a server with the default configuration (NODE_ENV=test, no rate limits)

interface Started {
  url: string;
  port: number;
  /** Every log line the server wrote, parsed. */
  logs: Record<string, any>[];
}

/** A real HTTP server on loopback with the given environment on top of the test defaults. */
async function start(env: Record<string, string> = {}, redisUrl?: string): Promise<Started> {
  const config = loadConfig({ NODE_ENV: "test", LOG_LEVEL: "info", QUEUE_PREFIX: prefix, ...env });
  const logs: Record<string, any>[] = [];
  const logger = createLogger(config, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const server = createHttpServer({ config, db: t.db, logger, ready: async () => {}, ...(redisUrl ? { redisUrl } : {}) });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push(server);
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}/graphql`, port, logs };
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

async function send(url: string, init: RequestInit): Promise<Answer> {
  const response = await fetch(url, init);
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

const auth = (user: TestUser | null): Record<string, string> => (user ? { authorization: `Bearer ${user.token}` } : {});
const post = (url: string, user: TestUser | null, body: unknown, headers: Record<string, string> = {}) =>
  send(url, { method: "POST", headers: { "content-type": "application/json", ...auth(user), ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });
const firstError = (a: Answer) => a.json?.errors?.[0];

beforeAll(async () => {
  t = await createTestDatabase();
  const world = await seedWorld(t.db);
  admin = await makeUser(t.db, "ADMIN");
  reporter = await makeUser(t.db, "REPORTER", { organizationId: world.maker.id });
  reporter2 = await makeUser(t.db, "REPORTER", { organizationId: world.maker.id });
  dev = (await start()).url;
});
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  await clearRedisPrefix(TEST_REDIS_URL, prefix);
  await t?.drop();
});

describe("document limits", () => {
  const parents = (n: number) => `{ region(code: "330102") { ${"parent { ".repeat(n)}code${" }".repeat(n)} } }`;

  it("refuses a query deeper than 12 levels and answers one 12 deep", async () => {
    const ok = await post(dev, admin, { query: parents(10) });
    expect(ok.status).toBe(200);
    expect(ok.json.errors).toBeUndefined();
    // 330102 < 330100 < 330000 < CN, and CN has no parent.
    expect(ok.json.data.region.parent.parent.parent).toEqual({ parent: null });
    const deep = await post(dev, admin, { query: parents(11) });
    expect(firstError(deep)).toMatchObject({
      message: "query depth 13 exceeds the limit of 12; ask for fewer nested levels or split the query",
      extensions: { code: "QUERY_TOO_DEEP" },
    });
    expect(deep.json.data).toBeUndefined();
  });

  it("refuses a document nested thousands of levels before parsing it", async () => {
    for (const query of [`{ regions { ${"children { ".repeat(3000)}code${" }".repeat(3000)} } }`, `{ regions(parentCode: ${"[".repeat(3000)}"CN"${"]".repeat(3000)}) { code } }`]) {
      const r = await post(dev, admin, { query });
      expect(r.status).toBeLessThan(500);
      expect(firstError(r)).toMatchObject({ message: expect.stringMatching(/^the query nests braces, brackets or parentheses 300\d levels deep, more than 100; ask for fewer nested levels/), extensions: { code: "QUERY_TOO_DEEP" } });
    }
  });

  it("refuses more than 15 aliases and answers 15", async () => {
    const aliases = (n: number) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: me { role }`).join(" ")} }`;
    const ok = await post(dev, admin, { query: aliases(15) });
    expect(ok.json.errors).toBeUndefined();
    expect(ok.json.data.a14).toEqual({ role: "ADMIN" });
    const many = await post(dev, admin, { query: aliases(16) });
    expect(firstError(many)).toMatchObject({
      message: "the query uses 16 aliases, more than the limit of 15; use fewer aliases or split the query",
      extensions: { code: "TOO_MANY_ALIASES" },
    });
  });

  it("refuses a document of more than 5,000 tokens and answers one of 5,000; variables do not count", async () => {
    // "query Qn { me { role } }" is 8 tokens: 625 of them are 5,000.
    const operations = Array.from({ length: 625 }, (_, i) => `query Q${i} { me { role } }`);
    const ok = await post(dev, admin, { query: operations.join("\n"), operationName: "Q624" });
    expect(ok.json).toEqual({ data: { me: { role: "ADMIN" } } });
    operations[624] = "query Q624 { me { role __typename } }";
    const over = await post(dev, admin, { query: operations.join("\n"), operationName: "Q624" });
    expect(firstError(over)).toMatchObject({
      message: "the query document has more than 5,000 tokens (GRAPHQL_MAX_TOKENS); pass large inputs as variables (they are not counted) or split the query",
      extensions: { code: "QUERY_TOO_LARGE" },
    });
  });

  it("charges pages as the server answers them: literal or variable sizes, capped at 100", async () => {
    // One page of 100 organizations with their sites costs 18,162.5; the limit is 25,000.
    const page = (first: string) => `organizations(first: ${first}) { edges { node { name sites { code name } } } }`;
    const one = await post(dev, admin, { query: `{ ${page("100")} }` });
    expect(one.json.errors).toBeUndefined();
    // first: 500 answers 100 rows, and costs the same.
    expect((await post(dev, admin, { query: `{ ${page("500")} }` })).json.errors).toBeUndefined();
    const two = await post(dev, admin, { query: `{ a: ${page("100")} b: ${page("100")} }` });
    expect(firstError(two)).toMatchObject({
      message: "query cost 36,325 exceeds the limit of 25,000; ask for fewer fields, smaller pages (first:) or fewer nested lists, or split the query",
      extensions: { code: "QUERY_TOO_COMPLEX" },
    });
    expect(two.json.data).toBeUndefined();
    // A size in a variable counts as much as the same literal.
    const query = `query($n: Int) { a: ${page("100")} b: ${page("$n")} }`;
    expect(firstError(await post(dev, admin, { query, variables: { n: 100 } }))?.extensions.code).toBe("QUERY_TOO_COMPLEX");
    expect((await post(dev, admin, { query, variables: { n: 30 } })).json.errors).toBeUndefined();
  });

  it("counts plain lists inside lists, so region trees cannot be walked round and round", async () => {
    const ok = await post(dev, admin, { query: `{ regions(level: PROVINCE) { code children { code children { code } } } }` });
    expect(ok.json.errors).toBeUndefined();
    for (const query of [`{ regions { children { children { children { code } } } } }`, `{ regions { children { parent { children { parent { children { code } } } } } } }`]) {
      expect(firstError(await post(dev, admin, { query }))?.extensions.code, query).toBe("QUERY_TOO_COMPLEX");
    }
  });
});

describe("batches", () => {
  it("answers up to 10 operations in one request and refuses 11 with 413", async () => {
    const batch = (n: number) => Array.from({ length: n }, (_, i) => ({ query: `query B${i} { me { role } }` }));
    const ok = await post(dev, admin, batch(10));
    expect(ok.status).toBe(200);
    expect(ok.json).toHaveLength(10);
    expect(ok.json[9]).toEqual({ data: { me: { role: "ADMIN" } } });
    const over = await post(dev, admin, batch(11));
    expect(over.status).toBe(413);
    expect(firstError(over)).toMatchObject({
      message: "a batch holds at most 10 operations (GRAPHQL_MAX_BATCH), got 11; send the rest in another request",
      extensions: { code: "BATCH_TOO_LARGE" },
    });
    // Each operation of a batch passes every limit on its own.
    const deep = await post(dev, admin, [{ query: "{ me { role } }" }, { query: `{ region(code: "330102") { ${"parent { ".repeat(11)}code${" }".repeat(11)} } }` }]);
    expect(deep.json[0]).toEqual({ data: { me: { role: "ADMIN" } } });
    expect(deep.json[1].errors[0].extensions.code).toBe("QUERY_TOO_DEEP");
  });

  it("refuses any batch with 400 when GRAPHQL_MAX_BATCH is 0", async () => {
    const { url } = await start({ GRAPHQL_MAX_BATCH: "0" });
    const r = await post(url, admin, [{ query: "{ me { role } }" }]);
    expect(r.status).toBe(400);
    expect(firstError(r)).toMatchObject({ message: expect.stringContaining("one operation per request, not a batch"), extensions: { code: "BATCHING_DISABLED" } });
    expect((await post(url, admin, { query: "{ me { role } }" })).json).toEqual({ data: { me: { role: "ADMIN" } } });
  });
});

describe("request bodies", () => {
  let small: string;
  beforeAll(async () => {
    small = (await start({ BODY_LIMIT_BYTES: String(64 * 1024), UPLOAD_LIMIT_BYTES: String(128 * 1024) })).url;
  });
  const padded = (bytes: number) => {
    const body = JSON.stringify({ query: "{ me { role } }", variables: { pad: "" } });
    return JSON.stringify({ query: "{ me { role } }", variables: { pad: "x".repeat(bytes - body.length) } });
  };

  it("refuses a body above BODY_LIMIT_BYTES from its Content-Length with 413, and answers one at the limit", async () => {
    expect(Buffer.byteLength(padded(64 * 1024))).toBe(64 * 1024);
    expect((await post(small, admin, padded(64 * 1024))).json).toEqual({ data: { me: { role: "ADMIN" } } });
    const r = await post(small, admin, padded(64 * 1024 + 1));
    expect(r.status).toBe(413);
    expect(firstError(r)).toMatchObject({
      message: expect.stringMatching(/^the request body is 65 KiB, more than the limit of 64 KiB \(BODY_LIMIT_BYTES\); send fewer rows per request/),
      extensions: { code: "PAYLOAD_TOO_LARGE" },
    });
  });

  it("refuses a chunked body (no Content-Length) as soon as it passes the limit", async () => {
    const chunked = (text: string) =>
      send(small, {
        method: "POST",
        headers: { "content-type": "application/json", ...auth(admin) },
        body: new ReadableStream({
          start(controller) {
            for (let i = 0; i < text.length; i += 16 * 1024) controller.enqueue(new TextEncoder().encode(text.slice(i, i + 16 * 1024)));
            controller.close();
          },
        }),
        duplex: "half",
      } as RequestInit);
    expect((await chunked(padded(60 * 1024))).json).toEqual({ data: { me: { role: "ADMIN" } } });
    const r = await chunked(padded(200 * 1024));
    expect(r.status).toBe(413);
    expect(firstError(r)?.message).toMatch(/^the request body is larger than the limit of 64 KiB \(BODY_LIMIT_BYTES\)/);
  });

  it("lets uploads (multipart) up to UPLOAD_LIMIT_BYTES through, and refuses larger ones with 413", async () => {
    const upload = (bytes: number) => {
      const form = new FormData();
      form.set("operations", JSON.stringify({ query: "{ me { role } }" }));
      form.set("map", "{}");
      form.set("0", new Blob(["x".repeat(bytes)]), "reports.csv");
      return send(small, { method: "POST", headers: auth(admin), body: form });
    };
    const ok = await upload(100 * 1024);
    expect(ok.status).toBe(200);
    expect(ok.json).toEqual({ data: { me: { role: "ADMIN" } } });
    const r = await upload(130 * 1024);
    expect(r.status).toBe(413);
    expect(firstError(r)?.message).toMatch(/^the request body is 131 KiB, more than the limit for uploads of 128 KiB \(UPLOAD_LIMIT_BYTES\); split the file/);
  });

  it("takes a 5,000-row submitReports well within the default limit", async () => {
    const products = ["MASK-N95", "MASK-SURGICAL", "MASK-KN95", "COVERALL-MEDICAL", "GOWN-ISOLATION", "GOGGLES", "FACE-SHIELD", "GLOVES-NITRILE", "TEST-PCR", "TEST-ANTIGEN"];
    const figures = { onHand: 123456789.125, produced: 23456.5, capacityPerDay: 34567.25, consumed: 4567.75, received: 56789.5, shipped: 67890.25, backlog: 78901.75, stockoutHours: 12.5 };
    const rows = Array.from({ length: 5000 }, (_, i) => ({
      siteCode: "HZ-MASK-1",
      productCode: products[i % 10]!,
      date: new Date(Date.UTC(2024, 0, 1 + Math.floor(i / 10))).toISOString().slice(0, 10),
      ...figures,
    }));
    const query = "mutation($r: [ReportInput!]!) { submitReports(reports: $r) { accepted rejected { index message } } }";
    const body = JSON.stringify({ query, variables: { r: rows } });
    // The longest codes a row may carry (64 characters each, a 32-character unit) still leave room for 3 such requests.
    const longest = JSON.stringify({ query, variables: { r: rows.map((r) => ({ ...r, siteCode: "S".repeat(64), productCode: "P".repeat(64), unit: "U".repeat(32) })) } });
    expect(Buffer.byteLength(longest)).toBeLessThan(loadConfig({}).BODY_LIMIT_BYTES / 3);
    const r = await post(dev, reporter, body);
    expect(r.json.errors).toBeUndefined();
    expect(r.json.data.submitReports).toEqual({ accepted: 5000, rejected: [] });
  });
});

describe("rate limits", () => {
  const budgets = { RATE_LIMIT_READS_PER_MINUTE: "3", RATE_LIMIT_WRITES_PER_MINUTE: "2", RATE_LIMIT_ANONYMOUS_PER_MINUTE: "2" };
  const write = "mutation { submitReports(reports: []) { accepted } }";

  it("keeps one budget per token across two API servers on one Redis, reads apart from writes", async () => {
    const own = `${prefix}:shared`;
    const a = await start({ ...budgets, QUEUE_PREFIX: own }, TEST_REDIS_URL);
    const b = await start({ ...budgets, QUEUE_PREFIX: own }, TEST_REDIS_URL);
    for (const url of [a.url, b.url, a.url]) expect((await post(url, reporter, { query: "{ me { role } }" })).json).toEqual({ data: { me: { role: "REPORTER" } } });
    const refused = await post(b.url, reporter, { query: "{ me { role } }" });
    expect(refused.status).toBe(429);
    const retryAfter = Number(refused.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(firstError(refused)).toMatchObject({
      message: `rate limit reached: 3 queries and subscriptions with this token per minute (RATE_LIMIT_READS_PER_MINUTE); retry after ${retryAfter} s`,
      extensions: { code: "RATE_LIMITED", retryAfterSeconds: retryAfter },
    });
    // Writes have their own budget, shared too.
    expect((await post(a.url, reporter, { query: write })).status).toBe(200);
    expect((await post(b.url, reporter, { query: write })).status).toBe(200);
    const writeRefused = await post(a.url, reporter, { query: write });
    expect(writeRefused.status).toBe(429);
    expect(firstError(writeRefused).message).toMatch(/^rate limit reached: 2 mutations with this token per minute \(RATE_LIMIT_WRITES_PER_MINUTE\); retry after \d+ s$/);
    // Another token of the same user and organization has its own budget.
    expect((await post(b.url, reporter2, { query: "{ me { role } }" })).status).toBe(200);
    // The counters live in Redis, under the prefix.
    const redis = new Redis(TEST_REDIS_URL);
    try {
      expect(await redis.get(`${own}:ratelimit:read:${reporter.viewer.tokenId}`)).toBe("4");
    } finally {
      redis.disconnect();
    }
  });

  it("counts requests without a valid token per address, unknown tokens included", async () => {
    const { url } = await start({ ...budgets, QUEUE_PREFIX: `${prefix}:anonymous` }, TEST_REDIS_URL);
    expect((await post(url, null, { query: "{ __typename }" })).json).toEqual({ data: { __typename: "Query" } });
    const unknown = await post(url, null, { query: "{ __typename }" }, { authorization: "Bearer smt_not-a-real-token" });
    expect(unknown.status).toBe(401);
    const refused = await post(url, null, { query: "{ __typename }" });
    expect(refused.status).toBe(429);
    expect(firstError(refused).message).toMatch(/^rate limit reached: 2 requests without a valid token from this address per minute \(RATE_LIMIT_ANONYMOUS_PER_MINUTE\); retry after \d+ s$/);
    expect((await post(url, admin, { query: "{ __typename }" })).status).toBe(200);
  });

  it("counts in the process when Redis cannot be reached, and says so in the log", async () => {
    // Nothing listens on port 1: every Redis command fails at once.
    const down = await start({ ...budgets, QUEUE_PREFIX: `${prefix}:down` }, "redis://127.0.0.1:1");
    for (let i = 0; i < 3; i++) expect((await post(down.url, reporter, { query: "{ me { role } }" })).status).toBe(200);
    expect((await post(down.url, reporter, { query: "{ me { role } }" })).status).toBe(429);
    expect(down.logs.some((l) => l.level === 40 && /rate limits: Redis is unavailable; counting in this process only/.test(l.msg))).toBe(true);
  });
});

describe("rate limit leases", () => {
  it("two processes spending one token's budget in leases never let more through than the budget and refuse the rest in its words", async () => {
    const own = `${prefix}:leases`;
    const config = loadConfig({ NODE_ENV: "test", LOG_LEVEL: "silent", QUEUE_PREFIX: own, RATE_LIMIT_READS_PER_MINUTE: "1000" });
    const logger = createLogger(config);
    const a = createRateLimits({ config, redisUrl: TEST_REDIS_URL, logger });
    const b = createRateLimits({ config, redisUrl: TEST_REDIS_URL, logger });
    const monitor = new Redis(TEST_REDIS_URL);
    try {
      let allowed = 0;
      let refused = 0;
      // 1,100 requests, 20 at a time across both processes, as a dashboard polling hard would send.
      for (let round = 0; round < 55; round++) {
        const outcomes = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).consume("token-1", "read")));
        for (const o of outcomes) {
          if (o.status === "fulfilled") allowed++;
          else {
            expect((o.reason as Error).message).toMatch(/^rate limit reached: 1000 queries/);
            refused++;
          }
        }
      }
      // Never looser than the budget; stricter by less than one lease (16 points) per process.
      expect(allowed).toBeLessThanOrEqual(1000);
      expect(allowed).toBeGreaterThan(1000 - 2 * RATE_LEASE_MAX);
      expect(allowed + refused).toBe(1100);
      const counted = Number(await monitor.get(`${own}:ratelimit:read:token-1`));
      expect(counted).toBeGreaterThanOrEqual(allowed);
      // Another key is untouched by this one's leases.
      await a.consume("token-2", "read");
      expect(await monitor.get(`${own}:ratelimit:read:token-2`)).toBe("1");
    } finally {
      monitor.disconnect();
      await a.close();
      await b.close();
      await clearRedisPrefix(TEST_REDIS_URL, own);
    }
  });
});

describe("CSRF prevention", () => {
  const get = (url: string, headers: Record<string, string> = {}) => send(`${url}?query=${encodeURIComponent("{ __typename }")}`, { headers });

  it("refuses a GET or a form POST that a browser could send cross-site, and answers those it could not", async () => {
    const refused = await get(dev);
    expect(refused.status).toBe(403);
    expect(firstError(refused)).toMatchObject({ message: expect.stringContaining("must carry an 'Authorization: Bearer <token>' or an 'x-graphql-yoga-csrf' header"), extensions: { code: "CSRF_HEADER_MISSING" } });
    expect((await get(dev, auth(admin))).json).toEqual({ data: { __typename: "Query" } });
    expect((await get(dev, { "x-graphql-yoga-csrf": "1" })).json).toEqual({ data: { __typename: "Query" } });
    const form = await send(dev, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "query=%7B__typename%7D" });
    expect(form.status).toBe(403);
    expect((await post(dev, null, { query: "{ __typename }" })).json).toEqual({ data: { __typename: "Query" } });
  });

  it("still opens a subscription over server-sent events (POST, JSON)", async () => {
    const { port } = await start();
    const stream = await subscribeSse(port, admin.token, "subscription { alertRaised { id } }");
    try {
      expect(stream.status).toBe(200);
      expect(stream.contentType).toContain("text/event-stream");
    } finally {
      stream.close();
    }
  });
});

describe("production", () => {
  let prod: Started;
  beforeAll(async () => {
    prod = await start(PRODUCTION);
  });
  const introspect = { query: "{ __schema { queryType { name } } }" };

  it("answers introspection outside production, and in production only with a valid token", async () => {
    expect((await post(dev, null, introspect)).json).toEqual({ data: { __schema: { queryType: { name: "Query" } } } });
    const anonymous = await post(prod.url, null, introspect);
    expect(firstError(anonymous).message).toMatch(/introspection has been disabled/);
    expect(anonymous.json.data).toBeUndefined();
    expect((await post(prod.url, null, { query: '{ __type(name: "Query") { name } }' })).json.errors).toBeDefined();
    expect((await post(prod.url, admin, introspect)).json).toEqual({ data: { __schema: { queryType: { name: "Query" } } } });
  });

  it("serves GraphiQL outside production only", async () => {
    const page = (url: string) => send(url, { headers: { accept: "text/html" } });
    const devPage = await page(dev);
    expect(devPage.status).toBe(200);
    expect(devPage.headers.get("content-type")).toContain("text/html");
    expect(devPage.text).toContain("GraphiQL");
    const prodPage = await page(prod.url);
    expect(prodPage.status).toBeGreaterThanOrEqual(400);
    expect(prodPage.headers.get("content-type")).not.toContain("text/html");
    expect(prodPage.text).not.toContain("GraphiQL");
  });

  it("masks an unexpected error with the request id, which its log line carries too", async () => {
    await t.db.execute(sql`alter table product rename to product_away`);
    try {
      const r = await post(prod.url, admin, { query: "{ products { code } }" }, { "x-request-id": "client-req-42" });
      expect(r.status).toBe(200);
      expect(r.headers.get("x-request-id")).toBe("client-req-42");
      expect(firstError(r)).toEqual({
        message: "Unexpected error (request id client-req-42); try again, and if it keeps failing, give the operators this request id",
        locations: expect.any(Array),
        path: ["products"],
        extensions: { code: "INTERNAL_SERVER_ERROR", requestId: "client-req-42" },
      });
      expect(r.text).not.toMatch(/product_away|relation|select/i);
      const line = prod.logs.find((l) => l.msg === "unexpected error while answering a request" && l.requestId === "client-req-42");
      expect(line).toBeDefined();
      expect(line!.level).toBe(50);
      expect(line!.cause).toEqual({ message: 'relation "product" does not exist', code: "42P01" });

      // Without a usable id of its own, the request gets a new one, the same in header, answer and log.
      const other = await post(prod.url, admin, { query: "{ products { code } }" }, { "x-request-id": "bad id\twith spaces" });
      const id = other.headers.get("x-request-id")!;
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(firstError(other).extensions.requestId).toBe(id);
      expect(prod.logs.some((l) => l.requestId === id && l.level === 50)).toBe(true);

      // Handed to yoga without the HTTP server (as the test client does), a request gets its id there.
      const config = loadConfig({ ...PRODUCTION, LOG_LEVEL: "info" });
      const logs: Record<string, any>[] = [];
      const yoga = createGraphQLHandler({ config, db: t.db, logger: createLogger(config, { write: (line: string) => void logs.push(JSON.parse(line)) }) });
      const direct = await yoga.fetch("http://test/graphql", { method: "POST", headers: { "content-type": "application/json", ...auth(admin) }, body: JSON.stringify({ query: "{ products { code } }" }) });
      const directId = direct.headers.get("x-request-id")!;
      expect(directId).toMatch(/^[0-9a-f-]{36}$/);
      expect(((await direct.json()) as any).errors[0].extensions.requestId).toBe(directId);
      expect(logs.some((l) => l.requestId === directId && l.level === 50)).toBe(true);
    } finally {
      await t.db.execute(sql`alter table product_away rename to product`);
    }
  });

  it("answers what it refuses with a JSON error that says what to send: 406, 415, malformed query-string JSON", async () => {
    const png = await post(prod.url, admin, { query: "mutation { submitReports(reports: []) { accepted } }" }, { accept: "image/png" });
    expect(png.status).toBe(406);
    expect(firstError(png)).toMatchObject({ message: expect.stringContaining("accept application/graphql-response+json, application/json"), extensions: { code: "NOT_ACCEPTABLE" } });
    const xml = await send(prod.url, { method: "POST", headers: { "content-type": "application/xml", ...auth(admin) }, body: "<query/>" });
    expect(xml.status).toBe(415);
    expect(firstError(xml).message).toMatch(/^the content type application\/xml is not one this endpoint reads; POST with content-type application\/json/);
    const variables = await send(`${prod.url}?query=${encodeURIComponent("{ me { role } }")}&variables=%7B`, { headers: auth(admin) });
    expect(variables.status).toBe(400);
    expect(firstError(variables).message).toMatch(/^a parameter of the request is not valid JSON \(.+\); send variables and extensions as JSON objects/);
  });
});

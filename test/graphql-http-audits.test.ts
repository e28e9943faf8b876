// GraphQL over HTTP conformance: graphql-http's server audits against a real HTTP server with the
// production plugin stack (CSRF prevention, introspection off, masking, every limit, rate limits in
// Redis), as an authenticated client calls it, and as an anonymous one.
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serverAudits, type AuditResult } from "graphql-http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { createHttpServer } from "../src/http/server.js";
import { createLogger } from "../src/logger.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { TEST_REDIS_URL } from "./helpers/env.js";
import { makeUser, seedWorld } from "./helpers/fixtures.js";
import { clearRedisPrefix } from "./helpers/redis.js";

/**
 * The SHOULD audits this service fails on purpose, by id, each with the reason (also in README.md,
 * "Limits"): none. Any other failing audit fails this test, and so does one of these that starts passing.
 */
const EXPECTED_SHOULD_FAILURES: Record<string, string> = {};

const prefix = `{limits-audit-${process.pid}}`;
let t: TestDatabase;
let server: Server;
let token: string;
const withToken: AuditResult[] = [];
const withoutToken: AuditResult[] = [];
const failing = (results: AuditResult[], level: string) =>
  Object.fromEntries(results.filter((r) => r.name.startsWith(level) && r.status !== "ok").map((r) => [r.id, `${r.name}: ${"reason" in r ? r.reason : ""}`]));

beforeAll(async () => {
  t = await createTestDatabase();
  const world = await seedWorld(t.db);
  token = (await makeUser(t.db, "REPORTER", { organizationId: world.maker.id })).token;
  const config = loadConfig({
    NODE_ENV: "production",
    SECRET_KEY: "audit-test-secret-key-0123456789abcdef",
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    QUEUE_PREFIX: prefix,
  });
  server = createHttpServer({ config, db: t.db, logger: createLogger(config), ready: async () => {}, redisUrl: TEST_REDIS_URL });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
  // Every audit's request as an integration sends it: with its API token (a reporter's: no special rights).
  const fetchFn = (input: RequestInfo | URL, init: RequestInit = {}) => {
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${token}`);
    return fetch(input, { ...init, headers });
  };
  for (const audit of serverAudits({ url, fetchFn })) withToken.push(await audit.fn());
  for (const audit of serverAudits({ url })) withoutToken.push(await audit.fn());
});
afterAll(async () => {
  if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  await clearRedisPrefix(TEST_REDIS_URL, prefix);
  await t?.drop();
});

describe("graphql-http server audits (production stack)", () => {
  it("passes every MUST with a token", () => {
    expect(failing(withToken, "MUST")).toEqual({});
    expect(withToken.filter((r) => r.name.startsWith("MUST")).length).toBeGreaterThan(10);
  });

  it("fails only the SHOULDs that README.md lists, for the reasons it gives", () => {
    expect(Object.keys(failing(withToken, "SHOULD"))).toEqual(Object.keys(EXPECTED_SHOULD_FAILURES));
    expect(failing(withToken, "MAY")).toEqual({});
  });

  it("without a token, fails only where introspection and CSRF prevention refuse anonymous requests (README.md)", () => {
    expect(Object.keys({ ...failing(withoutToken, "MUST"), ...failing(withoutToken, "SHOULD"), ...failing(withoutToken, "MAY") }).sort()).toEqual(
      ["28B9", "2EA1", "5A70", "6A70", "D6D5"].sort(),
    );
  });
});

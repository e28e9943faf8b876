// GetUsPPE, end to end: donors' offers as supply, the quantities matched to facilities as need,
// US states as regions (test/fixtures/getusppe, built by scripts/getusppe-fixture.ts). Reports and
// requests go in through the API; the worker relays, forecasts and matches; the answers come out
// through the API.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "csv-parse/sync";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startWorker, type RunningWorker } from "../jobs/worker.js";
import { seedCatalog } from "../src/domain/catalog.js";
import { createOrganization, createSite } from "../src/domain/organizations.js";
import { createRegions } from "../src/domain/regions.js";
import { dateOfDay, dayNumber } from "../src/domain/reports/validate.js";
import { createLogger } from "../src/logger.js";
import { US_STATES } from "./fixtures/getusppe/states.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { TEST_REDIS_URL } from "./helpers/env.js";
import { makeUser, setupActor, type TestUser } from "./helpers/fixtures.js";
import { graphqlClient } from "./helpers/graphql.js";
import { clearRedisPrefix } from "./helpers/redis.js";

interface Cell {
  state: string;
  product: string;
  offered: number;
  matched: number;
}
const cells = (parse(readFileSync(fileURLToPath(new URL("./fixtures/getusppe/by-state.csv", import.meta.url))), { columns: true }) as Record<string, string>[]).map(
  (r): Cell => ({ state: r.state!, product: r.product!, offered: Number(r.offered), matched: Number(r.matched) }),
);
const today = dayNumber(new Date().toISOString().slice(0, 10));
const prefix = `{test-${randomBytes(4).toString("hex")}}`;

let t: TestDatabase;
let worker: RunningWorker;
let gql: ReturnType<typeof graphqlClient>;
let admin: TestUser;
const procurement = new Map<string, TestUser>();

beforeAll(async () => {
  t = await createTestDatabase();
  gql = graphqlClient(t.db);
  await seedCatalog(t.db, setupActor);
  const states = [...new Set(cells.map((c) => c.state))];
  await createRegions(t.db, setupActor, [
    { code: "US", name: "United States", level: "COUNTRY" },
    ...states.map((s) => ({ code: s, name: US_STATES[s]!.name, level: "PROVINCE" as const, parentCode: "US", latitude: US_STATES[s]!.lat, longitude: US_STATES[s]!.lon })),
  ]);
  admin = await makeUser(t.db, "ADMIN");
  worker = await startWorker({
    config: { QUEUE_PREFIX: prefix, IDEMPOTENCY_TTL_HOURS: 72 },
    db: t.db,
    logger: createLogger({ LOG_LEVEL: "silent" }),
    connection: { url: TEST_REDIS_URL, maxRetriesPerRequest: null },
    relayIntervalMs: 50,
  });
  for (const state of states) {
    const mine = cells.filter((c) => c.state === state);
    if (mine.some((c) => c.offered > 0)) {
      const org = await createOrganization(t.db, setupActor, { name: `GetUsPPE donors ${state}`, kind: "DISTRIBUTOR" });
      await createSite(t.db, setupActor, { organizationId: org.id, code: `DON-${state}`, name: `Donors of ${state}`, regionCode: state, timeZone: "America/New_York" });
      const reporter = await makeUser(t.db, "REPORTER", { organizationId: org.id });
      const reports = mine.filter((c) => c.offered > 0).map((c) => ({ siteCode: `DON-${state}`, productCode: c.product, date: dateOfDay(today - 1), onHand: c.offered }));
      const r = await gql(reporter.token, "mutation($r: [ReportInput!]!) { submitReports(reports: $r) { accepted rejected { message } } }", { r: reports });
      expect(r.data.submitReports).toEqual({ accepted: reports.length, rejected: [] });
    }
    if (mine.some((c) => c.matched > 0)) {
      const org = await createOrganization(t.db, setupActor, { name: `GetUsPPE facilities ${state}`, kind: "HOSPITAL" });
      await createSite(t.db, setupActor, { organizationId: org.id, code: `FAC-${state}`, name: `Facilities of ${state}`, regionCode: state, timeZone: "America/New_York" });
      const user = await makeUser(t.db, "PROCUREMENT", { organizationId: org.id });
      procurement.set(state, user);
      for (const c of mine.filter((x) => x.matched > 0)) {
        const r = await gql(user.token, "mutation($i: RequestInput!) { postRequest(input: $i) { id } }", {
          i: { siteCode: `FAC-${state}`, productCode: c.product, quantity: c.matched, neededBy: dateOfDay(today + 14) },
        });
        expect(r.errors).toBeUndefined();
      }
    }
  }
}, 120_000);

afterAll(async () => {
  await worker?.close();
  await clearRedisPrefix(TEST_REDIS_URL, prefix);
  await t?.drop();
});

async function allMatches(token: string) {
  const out: { quantity: number; status: string; supplier: { siteCode: string }; recipient: { siteCode: string } | null; product: { code: string }; request: { quantity: number } | null }[] = [];
  let after: string | null = null;
  do {
    const r: any = await gql(token, `query($after: String) { matches(first: 100, after: $after) { edges { node {
      quantity status supplier { siteCode } recipient { siteCode } product { code } request { quantity } } } pageInfo { hasNextPage endCursor } } }`, { after });
    expect(r.errors).toBeUndefined();
    out.push(...r.data.matches.edges.map((e: any) => e.node));
    after = r.data.matches.pageInfo.hasNextPage ? r.data.matches.pageInfo.endCursor : null;
  } while (after);
  return out;
}

describe("GetUsPPE offers and needs through the jobs and the API", () => {
  it("proposes matches that cover the need within every supplier's stock", { timeout: 120_000 }, async () => {
    const products = [...new Set(cells.filter((c) => c.matched > 0).map((c) => c.product))];
    // Done when every product with need has had a downstream run and nothing waits in the pipeline.
    await vi.waitFor(
      async () => {
        const [s] = await t.db.execute<{ runs: number; pending: number }>(
          sql`select (select count(distinct product_id) from match_run where kind = 'DOWNSTREAM' and product_id in (select id from product where code = any(${sql.param(products)}::text[])))::int as runs,
                     ((select count(*) from outbox where processed_at is null) + (select count(*) from forecast_dirty))::int as pending`,
          "objects",
        );
        expect(s).toEqual({ runs: products.length, pending: 0 });
      },
      { timeout: 60_000, interval: 200 },
    );
    // Let the last debounced matching jobs finish too.
    await vi.waitFor(
      async () => {
        const queue = worker.queues.get("matching")!;
        expect(await queue.getJobCounts("active", "waiting")).toEqual({ active: 0, waiting: 0 });
        // Only the daily scheduler's next run may wait.
        expect((await queue.getJobs(["delayed"])).filter((j) => !j.id?.startsWith("repeat:"))).toEqual([]);
      },
      { timeout: 30_000, interval: 200 },
    );

    const matches = (await allMatches(admin.token)).filter((m) => m.status === "PROPOSED");
    expect(matches.length).toBeGreaterThan(0);
    const offered = new Map(cells.map((c) => [`DON-${c.state}|${c.product}`, c.offered]));
    const need = new Map(cells.map((c) => [`FAC-${c.state}|${c.product}`, c.matched]));
    const sent = new Map<string, number>();
    const received = new Map<string, number>();
    for (const m of matches) {
      const from = `${m.supplier.siteCode}|${m.product.code}`;
      sent.set(from, (sent.get(from) ?? 0) + m.quantity);
      if (m.recipient) {
        const to = `${m.recipient.siteCode}|${m.product.code}`;
        received.set(to, (received.get(to) ?? 0) + m.quantity);
      }
    }
    for (const [k, q] of sent) expect(q, k).toBeLessThanOrEqual(offered.get(k)! * (1 + 1e-9));
    for (const [k, q] of received) expect(q, k).toBeLessThanOrEqual(need.get(k)! * (1 + 1e-9));
    // Donors mostly gave where they were matched, so nearly all the need can be covered.
    const totalNeed = cells.reduce((s, c) => s + c.matched, 0);
    const covered = [...received.values()].reduce((s, q) => s + q, 0);
    expect(covered / totalNeed).toBeGreaterThan(0.9);
  });

  it("shows each state's procurement officers only their own matches, and lets them accept one", async () => {
    const [state, user] = [...procurement].find(([s]) => cells.some((c) => c.state === s && c.matched > 0 && c.offered > 0))!;
    const own = await allMatches(user.token);
    expect(own.length).toBeGreaterThan(0);
    for (const m of own) expect(m.recipient?.siteCode).toBe(`FAC-${state}`);
    const { data } = await gql(user.token, "{ matches(status: PROPOSED, first: 1) { edges { node { id } } } }");
    const accepted = await gql(user.token, "mutation($id: ID!) { respondToMatch(id: $id, accept: true) { status } }", { id: data.matches.edges[0].node.id });
    expect(accepted.data.respondToMatch.status).toBe("ACCEPTED");
  });
});

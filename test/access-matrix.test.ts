import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { createLiveAlerts, type LiveAlerts } from "../src/domain/alerts/live.js";
import { schema } from "../src/graphql/schema.js";
import { createGraphQLHandler } from "../src/http/server.js";
import { createLogger } from "../src/logger.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { makeUser, seedWorld, type World } from "./helpers/fixtures.js";
import { graphqlClient } from "./helpers/graphql.js";
import { TEST_REDIS_URL } from "./helpers/env.js";
import { clearRedisPrefix } from "./helpers/redis.js";

/**
 * Every root query, mutation and subscription, called by every kind of caller: allowed or refused, as the
 * SPEC's role table says. What each allowed caller sees is checked in access.test.ts.
 */
type Caller = "anonymous" | "ADMIN" | "PLANNER" | "REPORTER" | "PROCUREMENT";
const CALLERS: Caller[] = ["anonymous", "ADMIN", "PLANNER", "REPORTER", "PROCUREMENT"];

let t: TestDatabase;
let world: World;
let gql: ReturnType<typeof graphqlClient>;
const tokens = {} as Record<Caller, string | null>;
let orgId: string;
let reportId: string;
let own = 0;
let adminTokenId: string;
const matchIds: string[] = [];
let nextMatch = 0;

beforeAll(async () => {
  t = await createTestDatabase();
  world = await seedWorld(t.db);
  tokens.anonymous = null;
  tokens.ADMIN = (await makeUser(t.db, "ADMIN")).token;
  tokens.PLANNER = (await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330000" })).token;
  tokens.REPORTER = (await makeUser(t.db, "REPORTER", { organizationId: world.maker.id })).token;
  tokens.PROCUREMENT = (await makeUser(t.db, "PROCUREMENT", { organizationId: world.hospital.id })).token;
  gql = graphqlClient(t.db);
  adminTokenId = (await gql(tokens.ADMIN, "{ me { user { apiTokens { id } } } }")).data.me.user.apiTokens[0].id;
  const r = await gql(tokens.REPORTER, `mutation { submitReports(reports: [{ siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: "2026-01-05", onHand: 1 }]) { reports { id site { organization { id } } } } }`);
  reportId = r.data.submitReports.reports[0].id;
  orgId = r.data.submitReports.reports[0].site.organization.id;
  const [run] = await t.db.execute<{ id: number }>(
    sql`insert into match_run (kind, product_id, trigger) values ('DOWNSTREAM', (select id from product where code = 'MASK-N95'), 'test') returning id::int`,
    "objects",
  );
  for (let i = 0; i < 10; i++) {
    const [m] = await t.db.execute<{ id: string }>(
      sql`insert into match (run_id, kind, product_id, from_site_id, to_region_id, quantity, cost, urgency)
          values (${run!.id}, 'DOWNSTREAM', (select id from product where code = 'MASK-N95'), ${world.makerSite.id},
                  (select id from region where code = '330102'), 10, 0, 1) returning id`,
      "objects",
    );
    matchIds.push(Buffer.from(`Match:${m!.id}`).toString("base64"));
  }
});
afterAll(async () => t?.drop());

// Demand: one OPEN request to cancel (cancelling it again returns it unchanged) and a needed-by
// date a week ahead, so every allowed caller's call is valid.
let requestId: string;
const neededBy = new Date(Date.now() + 7 * 86_400_000).toISOString().slice(0, 10);
beforeAll(async () => {
  const r = await gql(tokens.ADMIN, `mutation { postRequest(input: { siteCode: "HZ-XIHU-H1", productCode: "MASK-N95", quantity: 10, neededBy: "${neededBy}" }) { id } }`);
  requestId = r.data.postRequest.id;
});

// Alerts of the manufacturer's plant in Shangcheng: one fresh per call to acknowledge or resolve.
const alertIds: string[] = [];
let nextAlert = 0;
beforeAll(async () => {
  for (let i = 0; i < 10; i++) {
    const [a] = await t.db.execute<{ id: string }>(
      sql`insert into alert (kind, dedupe_key, severity, stage, peak_stage, region_id, organization_id, site_id, message, details)
          values ('DATA_QUALITY', ${`matrix-${i}`}, 'YELLOW', 1, 1, (select id from region where code = '330102'), ${world.maker.id}, ${world.makerSite.id}, 'm', '{}')
          returning id`,
      "objects",
    );
    alertIds.push(Buffer.from(`Alert:${a!.id}`).toString("base64"));
  }
});

// Webhooks of the manufacturer (its reporter's): one to switch off and on, and one fresh per delete.
let makerWebhook: string;
const deletableWebhooks: string[] = [];
beforeAll(async () => {
  for (let i = 0; i < 6; i++) {
    const r = await gql(tokens.REPORTER, `mutation { registerWebhook(url: "https://hooks.example.org/matrix-${i}") { id } }`);
    deletableWebhooks.push(r.data.registerWebhook.id);
  }
  makerWebhook = deletableWebhooks.pop()!;
});

// alertRaised streams from a live alert source of its own (a Redis prefix of this file's): one alert
// of the manufacturer (its reporter, the planner, admins see it), one of the hospital (its procurement).
const livePrefix = `{test-matrix-${randomBytes(4).toString("hex")}}`;
let liveAlerts: {
  live: LiveAlerts;
  yoga: ReturnType<typeof createGraphQLHandler>;
  maker: { globalId: string; event: { alertId: string; eventId: number; type: "RAISED" } };
  hospital: { globalId: string; event: { alertId: string; eventId: number; type: "RAISED" } };
};
beforeAll(async () => {
  const config = loadConfig({ NODE_ENV: "test", LOG_LEVEL: "silent" });
  const logger = createLogger(config);
  const live = createLiveAlerts({ url: TEST_REDIS_URL, prefix: livePrefix, logger });
  const raise = async (regionCode: string, organizationId: string) => {
    const [a] = await t.db.execute<{ id: string; event_id: number }>(
      sql`with a as (insert into alert (kind, dedupe_key, severity, stage, peak_stage, region_id, organization_id, message, details)
                     values ('STOCKOUT_IMMINENT', ${`matrix-live-${regionCode}`}, 'RED', 1, 1, (select id from region where code = ${regionCode}), ${organizationId}, 'live', '{}')
                     returning id)
          insert into alert_event (alert_id, type, severity, message) select id, 'RAISED', 'RED', 'live' from a returning alert_id as id, id::int as event_id`,
      "objects",
    );
    return { globalId: Buffer.from(`Alert:${a!.id}`).toString("base64"), event: { alertId: a!.id, eventId: a!.event_id, type: "RAISED" as const } };
  };
  liveAlerts = {
    live,
    yoga: createGraphQLHandler({ config, db: t.db, logger, live }),
    maker: await raise("330102", world.maker.id),
    hospital: await raise("330106", world.hospital.id),
  };
});
afterAll(async () => {
  await liveAlerts?.live.close();
  await clearRedisPrefix(TEST_REDIS_URL, livePrefix);
});

// An import of the manufacturer's (its reporter's upload), finished: its reporter and admins may see it.
let importId: string;
beforeAll(async () => {
  const [i] = await t.db.execute<{ id: string }>(
    sql`insert into import (organization_id, uploaded_by, token_id, status, sha256, format, size_bytes, rows_total, rows_done, rows_accepted, runs)
        select ${world.maker.id}, u.id, k.id, 'DONE', 'matrix', 'CSV', 10, 1, 1, 1, 1
        from app_user u join api_token k on k.user_id = u.id where u.organization_id = ${world.maker.id} and u.role = 'REPORTER' limit 1
        returning id`,
    "objects",
  );
  importId = Buffer.from(`ImportJob:${i!.id}`).toString("base64");
});

/** A fresh, valid call of each root field; `ok` lists the callers that may make it. */
const CALLS: Record<string, { ok: Caller[]; call: () => [string, Record<string, unknown>?] }> = {
  me: { ok: ["ADMIN", "PLANNER", "REPORTER", "PROCUREMENT"], call: () => ["{ me { role } }"] },
  regions: { ok: ["ADMIN", "PLANNER", "REPORTER", "PROCUREMENT"], call: () => ["{ regions { code } }"] },
  region: { ok: ["ADMIN", "PLANNER", "REPORTER", "PROCUREMENT"], call: () => ['{ region(code: "330102") { code } }'] },
  products: { ok: ["ADMIN", "PLANNER", "REPORTER", "PROCUREMENT"], call: () => ["{ products { code } }"] },
  organizations: { ok: ["ADMIN", "PLANNER", "REPORTER", "PROCUREMENT"], call: () => ["{ organizations { edges { node { name } } } }"] },
  reports: { ok: ["ADMIN", "PLANNER", "REPORTER"], call: () => ["{ reports { edges { node { onHand } } } }"] },
  node: { ok: ["ADMIN", "PLANNER", "REPORTER"], call: () => ["query($id: ID!) { node(id: $id) { id } }", { id: reportId }] },
  nodes: { ok: ["ADMIN", "PLANNER", "REPORTER"], call: () => ["query($id: ID!) { nodes(ids: [$id]) { id } }", { id: reportId }] },
  submitReports: {
    ok: ["ADMIN", "REPORTER"],
    call: () => [`mutation { submitReports(reports: [{ siteCode: "HZ-MASK-1", productCode: "GOGGLES", date: "2026-01-0${1 + (own++ % 9)}", onHand: 1 }]) { accepted } }`],
  },
  createRegions: { ok: ["ADMIN"], call: () => [`mutation { createRegions(input: [{ code: "X${own++}", name: "x", level: COUNTRY }]) { created } }`] },
  createOrganization: { ok: ["ADMIN"], call: () => ['mutation { createOrganization(input: { name: "x", kind: AGENCY }) { id } }'] },
  createSite: {
    ok: ["ADMIN"],
    call: () => ["mutation($o: ID!, $c: String!) { createSite(input: { organizationId: $o, code: $c, name: \"x\", regionCode: \"330102\" }) { code } }", { o: orgId, c: `M-${own++}` }],
  },
  createUser: { ok: ["ADMIN"], call: () => [`mutation { createUser(input: { name: "x", email: "m${own++}@example.com", role: ADMIN }) { id } }`] },
  createApiToken: { ok: ["ADMIN"], call: () => ["query { me { user { id } } }"] },
  revokeApiToken: { ok: ["ADMIN", "PLANNER", "REPORTER", "PROCUREMENT"], call: () => ["query { me { user { id } } }"] },
  upsertProduct: { ok: ["ADMIN"], call: () => ['mutation { upsertProduct(input: { code: "MATRIX-1", name: "x", category: PPE, baseUnit: "piece" }) { code } }'] },
  setDemandScenario: {
    ok: ["ADMIN", "PLANNER"],
    call: () => ['mutation { setDemandScenario(input: { regionCode: "330102", productCode: "MASK-N95", casesPerDay: 10, usagePerCasePerDay: 1 }) { dailyDemand } }'],
  },
  clearDemandScenario: { ok: ["ADMIN", "PLANNER"], call: () => ['mutation { clearDemandScenario(regionCode: "330102", productCode: "GOGGLES") }'] },
  demandScenarios: { ok: ["ADMIN", "PLANNER"], call: () => ['{ demandScenarios(regionCode: "330000") { dailyDemand region { code } } }'] },
  postRequest: {
    ok: ["ADMIN", "PROCUREMENT"],
    call: () => [`mutation { postRequest(input: { siteCode: "HZ-XIHU-H1", productCode: "GOGGLES", quantity: 5, neededBy: "${neededBy}" }) { id quantity } }`],
  },
  cancelRequest: { ok: ["ADMIN", "PROCUREMENT"], call: () => ["mutation($id: ID!) { cancelRequest(id: $id) { id status } }", { id: requestId }] },
  requests: { ok: ["ADMIN", "PLANNER", "PROCUREMENT"], call: () => ["{ requests { edges { node { id quantity } } } }"] },
  shortages: { ok: ["ADMIN", "PLANNER"], call: () => ['{ shortages(regionCode: "330000") { edges { node { riskLevel region { code } } } } }'] },
  forecast: { ok: ["ADMIN", "PLANNER"], call: () => ['{ forecast(regionCode: "330000", productCode: "MASK-N95") { method points { demand } } }'] },
  matches: { ok: ["ADMIN", "PLANNER", "REPORTER", "PROCUREMENT"], call: () => ["{ matches { edges { node { quantity status } } } }"] },
  bottlenecks: { ok: ["ADMIN", "PLANNER"], call: () => ['{ bottlenecks(regionCode: "330000") { lostQuantity } }'] },
  // A fresh PROPOSED match from the manufacturer's plant to Shangcheng per call: the planner (its
  // region) and the supplier may answer it, the hospital's procurement may not see it.
  respondToMatch: {
    ok: ["ADMIN", "PLANNER", "REPORTER"],
    call: () => ["mutation($id: ID!) { respondToMatch(id: $id, accept: true) { status } }", { id: matchIds[nextMatch++] }],
  },
  alerts: { ok: ["ADMIN", "PLANNER", "REPORTER", "PROCUREMENT"], call: () => ["{ alerts { edges { node { kind message } } } }"] },
  // The plant's alerts: its organization and the planner above it may answer them; the hospital's procurement may not see them.
  acknowledgeAlert: { ok: ["ADMIN", "PLANNER", "REPORTER"], call: () => ["mutation($id: ID!) { acknowledgeAlert(id: $id) { status } }", { id: alertIds[nextAlert++ % 10] }] },
  resolveAlert: { ok: ["ADMIN", "PLANNER", "REPORTER"], call: () => ["mutation($id: ID!) { resolveAlert(id: $id) { status } }", { id: alertIds[nextAlert++ % 10] }] },
  webhooks: { ok: ["ADMIN", "PLANNER", "REPORTER", "PROCUREMENT"], call: () => ["{ webhooks { edges { node { url enabled } } } }"] },
  deliveries: { ok: ["ADMIN"], call: () => ["{ deliveries { edges { node { status attempts } } } }"] },
  registerWebhook: { ok: ["ADMIN", "PLANNER", "REPORTER", "PROCUREMENT"], call: () => [`mutation { registerWebhook(url: "https://hooks.example.org/m${own++}") { url secret } }`] },
  // The manufacturer's webhooks: its reporter and admins may switch or delete them, nobody else sees them.
  disableWebhook: { ok: ["ADMIN", "REPORTER"], call: () => ["mutation($id: ID!) { disableWebhook(id: $id) { enabled } }", { id: makerWebhook }] },
  enableWebhook: { ok: ["ADMIN", "REPORTER"], call: () => ["mutation($id: ID!) { enableWebhook(id: $id) { enabled } }", { id: makerWebhook }] },
  deleteWebhook: { ok: ["ADMIN", "REPORTER"], call: () => ["mutation($id: ID!) { deleteWebhook(id: $id) }", { id: deletableWebhooks.shift() }] },
  alertRaised: { ok: ["ADMIN", "PLANNER", "REPORTER", "PROCUREMENT"], call: () => ["subscription { alertRaised { id } }"] },
  importJob: { ok: ["ADMIN", "REPORTER"], call: () => ["query($id: ID!) { importJob(id: $id) { id status } }", { id: importId }] },
  // A file upload and a stream: their own cases below.
  importReportsCsv: { ok: ["ADMIN", "REPORTER"], call: () => [`mutation($f: File!) { importReportsCsv(file: $f) { id status } }`] },
  importProgress: { ok: ["ADMIN", "REPORTER"], call: () => [`subscription($id: ID!) { importProgress(id: $id) { id status } }`, { id: importId }] },
  reportingCompleteness: { ok: ["ADMIN", "PLANNER"], call: () => ['{ reportingCompleteness(regionCode: "330000", date: "2026-01-05") { expectedSites region { code } } }'] },
  reportingSchedule: { ok: ["ADMIN", "PLANNER"], call: () => ['{ reportingSchedule(regionCode: "330102") { cutoffLocalTime cutoffDaysAfter region { code } } }'] },
  setReportingSchedule: {
    ok: ["ADMIN", "PLANNER"],
    call: () => ['mutation { setReportingSchedule(regionCode: "330102", cutoffLocalTime: "10:00", cutoffDaysAfter: 1) { cutoffLocalTime region { code } } }'],
  },
  clearReportingSchedule: { ok: ["ADMIN", "PLANNER"], call: () => ['mutation { clearReportingSchedule(regionCode: "330102") { cutoffLocalTime region { code } } }'] },
};

describe("root field x caller matrix", () => {
  it("lists every root query, mutation and subscription of the schema", () => {
    const roots = [schema.getQueryType()!, schema.getMutationType()!, schema.getSubscriptionType()!].flatMap((type) => Object.keys(type.getFields()));
    expect(Object.keys(CALLS).sort()).toEqual(roots.sort());
  });

  for (const [field, spec] of Object.entries(CALLS)) {
    if (field === "createApiToken" || field === "revokeApiToken" || field === "alertRaised" || field === "importReportsCsv" || field === "importProgress") continue;
    it.each(CALLERS)(`${field} as %s`, async (caller) => {
      const [query, variables] = spec.call();
      const r = await gql(tokens[caller], query, variables);
      if (spec.ok.includes(caller)) {
        // Allowed: an answer without errors (a nullable field may still be null when the object
        // is outside what this caller sees; access.test.ts checks what each one sees).
        expect(r.errors, `${field} as ${caller}`).toBeUndefined();
        expect(r.data, `${field} as ${caller}`).toHaveProperty(field);
      } else {
        expect(r.errors?.[0]?.message, `${field} as ${caller}`).toMatch(/not allowed|not signed in|not found, or not visible/);
        expect(JSON.stringify(r.data?.[field] ?? null), `${field} as ${caller}`).not.toMatch(/"(id|code|name|onHand|accepted|created|role)"/);
      }
    });
  }

  // Token mutations need the caller's own ids, so they are spelled out here.
  it.each(CALLERS)("createApiToken and revokeApiToken as %s", async (caller) => {
    const self = caller === "anonymous" ? null : (await gql(tokens[caller], "{ me { user { id apiTokens { id } } } }")).data.me.user;
    const create = await gql(tokens[caller], "mutation($u: ID!) { createApiToken(input: { userId: $u, name: \"m\" }) { token apiToken { id } } }", {
      u: self?.id ?? Buffer.from("User:00000000-0000-0000-0000-000000000000").toString("base64"),
    });
    if (caller === "ADMIN") expect(create.errors).toBeUndefined();
    else expect(create.errors?.[0]?.message).toMatch(/not allowed|not signed in/);
    // Everyone signed in may revoke a token of their own: an extra one, so the caller keeps working.
    const spare = caller === "ADMIN" ? create.data.createApiToken.apiToken.id : null;
    const target = spare ?? self?.apiTokens[0]?.id ?? Buffer.from("ApiToken:00000000-0000-0000-0000-000000000000").toString("base64");
    if (caller === "anonymous") {
      const r = await gql(null, "mutation($id: ID!) { revokeApiToken(id: $id) { revokedAt } }", { id: target });
      expect(r.errors?.[0]?.message).toContain("not signed in");
    } else if (caller === "ADMIN") {
      const r = await gql(tokens[caller], "mutation($id: ID!) { revokeApiToken(id: $id) { revokedAt } }", { id: target });
      expect(r.data.revokeApiToken.revokedAt).toBeTruthy();
    } else {
      // Another user's token (the admin's own, still in use) is refused to everyone but admins.
      const r = await gql(tokens[caller], "mutation($id: ID!) { revokeApiToken(id: $id) { revokedAt } }", { id: adminTokenId });
      expect(r.errors?.[0]?.message).toMatch(/may revoke only your own tokens/);
      expect((await gql(tokens.ADMIN, "{ me { role } }")).data.me.role).toBe("ADMIN");
    }
  });

  // A subscription answers as a stream: an allowed caller is sent an alert it may see, published
  // while it listens; a refused one gets the error as the stream's only event.
  it.each(CALLERS)("alertRaised as %s", async (caller) => {
    const alert = caller === "PROCUREMENT" ? liveAlerts.hospital : liveAlerts.maker;
    const response = await liveAlerts.yoga.fetch("http://test/graphql", {
      method: "POST",
      headers: { accept: "text/event-stream", "content-type": "application/json", ...(tokens[caller] ? { authorization: `Bearer ${tokens[caller]}` } : {}) },
      body: JSON.stringify({ query: CALLS.alertRaised!.call()[0] }),
    });
    // The answer starts once the subscription is in place.
    await liveAlerts.live.publish(alert.event);
    const reader = response.body!.getReader();
    let text = "";
    const decoder = new TextDecoder();
    while (!/event: next\ndata: .*\n\n/.test(text)) {
      const chunk = await reader.read();
      if (chunk.done) break;
      text += decoder.decode(chunk.value, { stream: true });
    }
    await reader.cancel();
    const result = JSON.parse(/event: next\ndata: (.*)\n\n/.exec(text)![1]!);
    if (CALLS.alertRaised!.ok.includes(caller)) {
      expect(result.errors, `alertRaised as ${caller}`).toBeUndefined();
      expect(result.data.alertRaised.id).toBe(alert.globalId);
    } else {
      expect(result.errors?.[0]?.message).toMatch(/not allowed|not signed in/);
      expect(result.data ?? null).toBeNull();
    }
  });

  // A GraphQL multipart request: allowed callers get a queued import, the others are refused before anything is stored.
  it.each(CALLERS)("importReportsCsv as %s", async (caller) => {
    const form = new FormData();
    form.append("operations", JSON.stringify({ query: CALLS.importReportsCsv!.call()[0], variables: { f: null } }));
    form.append("map", JSON.stringify({ 0: ["variables.f"] }));
    form.append("0", new Blob([`siteCode,productCode,date,onHand\nHZ-MASK-1,GOGGLES,2026-01-0${1 + (own++ % 9)},1\n`]), "matrix.csv");
    const response = await liveAlerts.yoga.fetch("http://test/graphql", { method: "POST", headers: tokens[caller] ? { authorization: `Bearer ${tokens[caller]}` } : {}, body: form });
    const r = (await response.json()) as { data?: any; errors?: { message: string }[] };
    if (CALLS.importReportsCsv!.ok.includes(caller)) {
      expect(r.errors, `importReportsCsv as ${caller}`).toBeUndefined();
      expect(r.data.importReportsCsv.status).toBe("QUEUED");
    } else {
      // Without a token, a multipart POST is refused even before that (CSRF prevention).
      expect(r.errors?.[0]?.message, `importReportsCsv as ${caller}`).toMatch(/not allowed|not signed in|CSRF prevention/);
      expect(r.data?.importReportsCsv ?? null).toBeNull();
    }
  });

  // The stream's first event is the import as it stands (DONE, so it is also the last), or the refusal.
  it.each(CALLERS)("importProgress as %s", async (caller) => {
    const [query, variables] = CALLS.importProgress!.call();
    const response = await liveAlerts.yoga.fetch("http://test/graphql", {
      method: "POST",
      headers: { accept: "text/event-stream", "content-type": "application/json", ...(tokens[caller] ? { authorization: `Bearer ${tokens[caller]}` } : {}) },
      body: JSON.stringify({ query, variables }),
    });
    const text = await response.text();
    const result = JSON.parse(/event: next\ndata: (.*)\n\n/.exec(text)![1]!);
    if (CALLS.importProgress!.ok.includes(caller)) {
      expect(result.errors, `importProgress as ${caller}`).toBeUndefined();
      expect(result.data.importProgress).toEqual({ id: importId, status: "DONE" });
    } else {
      expect(result.errors?.[0]?.message, `importProgress as ${caller}`).toMatch(/not allowed|not signed in/);
      expect(result.data ?? null).toBeNull();
    }
  });

});

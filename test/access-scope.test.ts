import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { createLiveAlerts, type LiveAlerts } from "../src/domain/alerts/live.js";
import { evaluateMatchAlerts, evaluateShortageAlerts } from "../src/domain/alerts/rules.js";
import { recomputeDirty } from "../src/domain/forecast/pipeline.js";
import { processImport } from "../src/domain/imports/process.js";
import { recomputeMatches } from "../src/domain/matching/matching.js";
import { relayOutbox } from "../src/domain/outbox.js";
import { submitReports } from "../src/domain/reports/ingest.js";
import { dateOfDay, dayNumber } from "../src/domain/reports/validate.js";
import { schema } from "../src/graphql/schema.js";
import { createGraphQLHandler } from "../src/http/server.js";
import { createLogger } from "../src/logger.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { TEST_REDIS_URL } from "./helpers/env.js";
import { makeUser, seedWorld, type TestUser, type World } from "./helpers/fixtures.js";
import { graphqlClient, type GraphQLResponse } from "./helpers/graphql.js";
import { clearRedisPrefix } from "./helpers/redis.js";

/**
 * Every root query, mutation and subscription x every kind of caller x objects inside and outside
 * the caller's scope (SPEC "Who uses it"). A world with two provinces, three counties and three
 * organizations holds reports, revisions, requests, matches, alerts, scenarios, schedules, webhooks
 * and forecasts of each; the scope model below says which of them each caller may see. Every answer
 * is walked for ids, codes, names, URLs and figures of objects outside the caller's scope; every
 * mutation aimed at such an object must be refused and change nothing. A root field without a spec
 * here fails the first test, so a new field cannot skip this.
 */

type RoleKey = "admin" | "countyPlanner" | "jiangsuPlanner" | "makerReporter" | "supplierReporter" | "hospitalProcurement" | "anonymous";
const ROLES: RoleKey[] = ["admin", "countyPlanner", "jiangsuPlanner", "makerReporter", "supplierReporter", "hospitalProcurement", "anonymous"];
type OrgKey = "maker" | "hospital" | "supplier";

// Region tree of seedWorld, as paths of codes.
const REGION_PATH: Record<string, string[]> = {
  CN: ["CN"],
  "330000": ["CN", "330000"],
  "330100": ["CN", "330000", "330100"],
  "330102": ["CN", "330000", "330100", "330102"],
  "330106": ["CN", "330000", "330100", "330106"],
  "320000": ["CN", "320000"],
  "320100": ["CN", "320000", "320100"],
  "320102": ["CN", "320000", "320100", "320102"],
};
const REGION_CODES = Object.keys(REGION_PATH);
const SITES: Record<string, { org: OrgKey; region: string }> = {
  "HZ-MASK-1": { org: "maker", region: "330102" },
  "HZ-XIHU-H1": { org: "hospital", region: "330106" },
  "NJ-NW-1": { org: "supplier", region: "320102" },
};
const ORG_NAMES: Record<OrgKey, string> = { maker: "Hangzhou Mask Works", hospital: "Xihu People's Hospital", supplier: "Nanjing Nonwovens" };

interface Caller {
  role: "ADMIN" | "PLANNER" | "REPORTER" | "PROCUREMENT" | null;
  jurisdiction?: string;
  org?: OrgKey;
}
const CALLER: Record<RoleKey, Caller> = {
  admin: { role: "ADMIN" },
  countyPlanner: { role: "PLANNER", jurisdiction: "330102" },
  jiangsuPlanner: { role: "PLANNER", jurisdiction: "320000" },
  makerReporter: { role: "REPORTER", org: "maker" },
  supplierReporter: { role: "REPORTER", org: "supplier" },
  hospitalProcurement: { role: "PROCUREMENT", org: "hospital" },
  anonymous: { role: null },
};
const inJurisdiction = (c: Caller, region: string) => !!c.jurisdiction && REGION_PATH[region]!.includes(c.jurisdiction);

/** An object of the world: what identifies it, and where it belongs. */
type Kind = "region" | "site" | "organization" | "report" | "request" | "match" | "alert" | "webhook" | "scenario" | "schedule" | "user" | "token" | "import";
interface Obj {
  kind: Kind;
  label: string;
  id?: string;
  /** Identifying strings: found inside any string of an answer. */
  contains: string[];
  /** Identifying values: found as a whole string or number of an answer. */
  exact: (string | number)[];
  region?: string;
  orgs?: OrgKey[];
  owner?: RoleKey;
  /** A match's parties: site codes, site names and organization names. */
  parties?: string[];
}

/** The SPEC's role table, object by object. */
function visible(key: RoleKey, o: Obj): boolean {
  const c = CALLER[key];
  if (c.role === null) return false;
  if (c.role === "ADMIN") return true;
  if (o.kind === "user" || o.kind === "token") return o.owner === key;
  if (c.role === "PLANNER") {
    switch (o.kind) {
      case "organization":
        return Object.values(SITES).some((s) => s.org === o.orgs![0] && inJurisdiction(c, s.region));
      case "webhook":
        return o.owner === key;
      case "import":
        return false;
      default:
        return inJurisdiction(c, o.region!);
    }
  }
  const mine = (o.orgs ?? []).includes(c.org!);
  switch (o.kind) {
    case "region":
      return Object.values(SITES).some((s) => s.org === c.org && s.region === o.label);
    case "report":
      return c.role !== "PROCUREMENT" && mine;
    case "request":
      return c.role === "PROCUREMENT" && mine;
    case "scenario":
    case "schedule":
      return false;
    // An import's lines hold report figures: its organization's reporters see it, procurement does not.
    case "import":
      return c.role === "REPORTER" && mine;
    default:
      return mine;
  }
}

let t: TestDatabase;
let world: World;
let gql: ReturnType<typeof graphqlClient>;
const users = {} as Record<Exclude<RoleKey, "anonymous">, TestUser>;
const token = (k: RoleKey) => (k === "anonymous" ? null : users[k].token);
const objects: Obj[] = [];
const byKind = (k: Kind) => objects.filter((o) => o.kind === k);
const lastDay = dayNumber(new Date(Date.now() - 86_400_000).toISOString().slice(0, 10));
const day = (offset: number) => dateOfDay(lastDay + offset);
const neededBy = dateOfDay(lastDay + 8);
const gid = (type: string, id: string | number) => Buffer.from(`${type}:${id}`).toString("base64");

// Distinctive figures per site: the current stock, the stock of the superseded revision, a request's quantity.
const FIGURES: Record<string, { onHand: number; old: number; request: number; scenario: number }> = {
  "HZ-MASK-1": { onHand: 5003.75, old: 5011.75, request: 555.5, scenario: 61.25 },
  "HZ-XIHU-H1": { onHand: 203.25, old: 211.25, request: 333.5, scenario: 62.25 },
  "NJ-NW-1": { onHand: 7007.5, old: 7011.5, request: 444.5, scenario: 63.25 },
};

async function must<T = any>(r: Promise<GraphQLResponse<T>>): Promise<T> {
  const a = await r;
  if (a.errors) throw new Error(JSON.stringify(a.errors));
  return a.data!;
}

beforeAll(async () => {
  t = await createTestDatabase();
  world = await seedWorld(t.db);
  users.admin = await makeUser(t.db, "ADMIN");
  users.countyPlanner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330102" });
  users.jiangsuPlanner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "320000" });
  users.makerReporter = await makeUser(t.db, "REPORTER", { organizationId: world.maker.id });
  users.supplierReporter = await makeUser(t.db, "REPORTER", { organizationId: world.supplier.id });
  users.hospitalProcurement = await makeUser(t.db, "PROCUREMENT", { organizationId: world.hospital.id });
  gql = graphqlClient(t.db);
  const admin = users.admin;

  // Thirty days of N95 at every site, the last day corrected once (a revision), and melt-blown stock.
  const rows: Record<string, unknown>[] = [];
  for (const [site, f] of Object.entries(FIGURES)) {
    const flow = site === "HZ-MASK-1" ? { produced: 1000, capacityPerDay: 1500, shipped: 1000 } : { consumed: 100, received: 100 };
    for (let i = 0; i < 30; i++) rows.push({ siteCode: site, productCode: "MASK-N95", date: day(i - 29), onHand: i === 29 ? f.old : f.onHand + 1000 + i, ...flow });
  }
  rows.push({ siteCode: "HZ-MASK-1", productCode: "MELTBLOWN-PP", date: day(0), onHand: 10 });
  rows.push({ siteCode: "NJ-NW-1", productCode: "MELTBLOWN-PP", date: day(0), onHand: 500 });
  expect((await submitReports(t.db, admin.actor, rows as never, { backfillDays: 400 })).rejected).toEqual([]);
  const corrections = Object.entries(FIGURES).map(([site, f]) => ({ siteCode: site, productCode: "MASK-N95", date: day(0), onHand: f.onHand, consumed: 100, received: 100 }));
  expect((await submitReports(t.db, admin.actor, corrections as never, { backfillDays: 400 })).rejected).toEqual([]);

  // Requests at every site (procurement's own at the hospital), scenarios and schedules in every county.
  for (const [site, f] of Object.entries(FIGURES)) {
    const who = site === "HZ-XIHU-H1" ? users.hospitalProcurement : admin;
    await must(gql(who.token, `mutation { postRequest(input: { siteCode: "${site}", productCode: "MASK-N95", quantity: ${f.request}, neededBy: "${neededBy}" }) { id } }`));
    const region = SITES[site]!.region;
    await must(gql(admin.token, `mutation { setDemandScenario(input: { regionCode: "${region}", productCode: "GOGGLES", casesPerDay: ${f.scenario}, usagePerCasePerDay: 1 }) { dailyDemand } }`));
    await must(gql(admin.token, `mutation { setReportingSchedule(regionCode: "${region}", cutoffLocalTime: "09:1${Object.keys(FIGURES).indexOf(site)}", cutoffDaysAfter: 1) { cutoffLocalTime } }`));
  }

  // Forecasts, matches and alerts as the jobs make them.
  const n95 = (await t.db.query.productTable.findFirst({ where: { code: "MASK-N95" } }))!.id;
  const meltblown = (await t.db.query.productTable.findFirst({ where: { code: "MELTBLOWN-PP" } }))!.id;
  await relayOutbox(t.db, async () => {});
  await recomputeDirty(t.db, { trigger: "test" });
  await relayOutbox(t.db, async () => {});
  await recomputeMatches(t.db, n95, "DOWNSTREAM", "test");
  await recomputeMatches(t.db, meltblown, "UPSTREAM", "test");
  await evaluateShortageAlerts(t.db, n95);
  await evaluateMatchAlerts(t.db, n95, "DOWNSTREAM");
  await evaluateMatchAlerts(t.db, meltblown, "UPSTREAM");
  // And one of each by hand, so every site has a match from it and an alert about it whatever the solver chose.
  const [run] = await t.db.execute<{ id: number }>(sql`insert into match_run (kind, product_id, trigger) values ('DOWNSTREAM', ${n95}, 'test') returning id::int`, "objects");
  for (const [site, to] of [["HZ-MASK-1", "330102"], ["HZ-XIHU-H1", "330106"], ["NJ-NW-1", "320102"]] as const) {
    await t.db.execute(sql`insert into match (run_id, kind, product_id, from_site_id, to_region_id, quantity, cost, urgency)
      values (${run!.id}, 'DOWNSTREAM', ${n95}, (select id from site where code = ${site}), (select id from region where code = ${to}), 17, 0, 1)`);
    await t.db.execute(sql`insert into alert (kind, dedupe_key, severity, stage, peak_stage, region_id, organization_id, site_id, message, details)
      values ('STOCKOUT_IMMINENT', ${`scope-${site}`}, 'RED', 1, 1, (select region_id from site where code = ${site}), (select organization_id from site where code = ${site}),
              (select id from site where code = ${site}), ${`scope alert of ${site}`}, '{}')`);
  }

  // Webhooks: every signed-in caller's own, an admin's for the supplier, and an admin's for everything.
  for (const k of Object.keys(users) as Exclude<RoleKey, "anonymous">[]) {
    await must(gql(users[k].token, `mutation { registerWebhook(url: "https://hooks.example.org/scope-${k}") { id } }`));
  }
  await must(gql(admin.token, `mutation($o: ID!) { registerWebhook(url: "https://hooks.example.org/by-admin/scope-supplier", organizationId: $o) { id } }`, { o: gid("Organization", world.supplier.id) }));

  // The catalog of the world, as an admin sees it.
  const part = async (field: string, sel: string) => ({ [field]: { edges: (await pages("admin", field, "", sel)).edges } });
  const all: any = {
    ...(await part("organizations", "id name creditCode contactEmail sites { id code name region { code } }")),
    ...(await part("reports", "id site { code }")),
    ...(await part("requests", "id site { code }")),
    ...(await part("matches", "id toRegion { code } supplier { siteCode } recipient { siteCode }")),
    ...(await part("alerts", "id dedupeKey message region { code } organization { id }")),
    ...(await part("webhooks", "id url")),
  };
  const orgKey = (id: string | undefined) => (Object.keys(ORG_NAMES) as OrgKey[]).find((k) => gid("Organization", world[k].id) === id);
  for (const code of REGION_CODES) {
    const r = await must(gql(admin.token, `{ region(code: "${code}") { id } }`));
    objects.push({ kind: "region", label: code, id: r.region.id, contains: code === "CN" ? [] : [code], exact: [code, r.region.id], region: code });
  }
  for (const { node } of all.organizations.edges) {
    const org = (Object.keys(ORG_NAMES) as OrgKey[]).find((k) => ORG_NAMES[k] === node.name)!;
    objects.push({ kind: "organization", label: node.name, id: node.id, contains: [node.name, ...(node.contactEmail ? [node.contactEmail] : [])], exact: [node.id, ...(node.creditCode ? [node.creditCode] : [])], orgs: [org] });
    for (const s of node.sites) {
      objects.push({ kind: "site", label: s.code, id: s.id, contains: [s.code, s.name], exact: [s.id], region: s.region.code, orgs: [org] });
    }
  }
  for (const { node } of all.reports.edges) {
    const f = FIGURES[node.site.code]!;
    objects.push({ kind: "report", label: `report ${node.site.code}`, id: node.id, contains: [], exact: [node.id, f.onHand, f.old], region: SITES[node.site.code]!.region, orgs: [SITES[node.site.code]!.org] });
  }
  for (const { node } of all.requests.edges) {
    objects.push({ kind: "request", label: `request ${node.site.code}`, id: node.id, contains: [], exact: [node.id, FIGURES[node.site.code]!.request], region: SITES[node.site.code]!.region, orgs: [SITES[node.site.code]!.org] });
  }
  for (const { node } of all.matches.edges) {
    const orgs = [SITES[node.supplier.siteCode]!.org, ...(node.recipient ? [SITES[node.recipient.siteCode]!.org] : [])];
    const partySites = [node.supplier.siteCode, ...(node.recipient ? [node.recipient.siteCode] : [])];
    const parties = partySites.flatMap((code: string) => [code, ORG_NAMES[SITES[code]!.org], objects.find((o) => o.kind === "site" && o.label === code)!.contains[1]!]);
    objects.push({ kind: "match", label: `match ${node.supplier.siteCode} -> ${node.recipient?.siteCode ?? node.toRegion.code}`, id: node.id, contains: [], exact: [node.id], region: node.toRegion.code, orgs, parties });
  }
  for (const { node } of all.alerts.edges) {
    const org = orgKey(node.organization?.id);
    objects.push({
      kind: "alert", label: `alert ${node.dedupeKey}`, id: node.id, contains: node.dedupeKey.startsWith("scope-") ? [node.message] : [], exact: [node.id, node.dedupeKey],
      region: node.region.code, orgs: org ? [org] : [],
    });
  }
  for (const { node } of all.webhooks.edges) {
    const owner = /scope-([a-zA-Z]+)$/.exec(node.url)![1] as RoleKey | "supplier";
    objects.push({ kind: "webhook", label: `webhook ${owner}`, id: node.id, contains: [node.url], exact: [node.id], orgs: owner === "supplier" ? ["supplier"] : CALLER[owner].org ? [CALLER[owner].org!] : [], owner: owner === "supplier" ? "admin" : owner });
  }
  for (const [site, f] of Object.entries(FIGURES)) {
    objects.push({ kind: "scenario", label: `scenario ${site}`, contains: [], exact: [f.scenario], region: SITES[site]!.region });
    objects.push({ kind: "schedule", label: `schedule ${site}`, contains: [], exact: [`09:1${Object.keys(FIGURES).indexOf(site)}`], region: SITES[site]!.region });
  }
  for (const k of Object.keys(users) as Exclude<RoleKey, "anonymous">[]) {
    const me = await must(gql(users[k].token, "{ me { user { id email apiTokens { id } } } }"));
    objects.push({ kind: "user", label: `user ${k}`, id: me.me.user.id, contains: [me.me.user.email], exact: [me.me.user.id], owner: k });
    objects.push({ kind: "token", label: `token ${k}`, id: me.me.user.apiTokens[0].id, contains: [], exact: [me.me.user.apiTokens[0].id], owner: k });
  }
}, 60_000);

// Report file imports: one of the manufacturer's, one of the supplier's (their reporters' uploads), one of an admin without an organization.
beforeAll(async () => {
  for (const [who, org] of [["makerReporter", "maker"], ["supplierReporter", "supplier"], ["admin", null]] as const) {
    const filename = `scope-import-${who}.csv`;
    const [i] = await t.db.execute<{ id: string }>(
      sql`insert into import (organization_id, uploaded_by, token_id, filename, status, sha256, format, size_bytes, rows_total, rows_done, rows_accepted, runs)
          values (${org ? world[org].id : null}, ${users[who].viewer.userId}, ${users[who].viewer.tokenId}, ${filename}, 'DONE', ${`scope-${who}`}, 'CSV', 10, 1, 1, 1, 1)
          returning id`,
      "objects",
    );
    const id = gid("ImportJob", i!.id);
    objects.push({ kind: "import", label: `import ${who}`, id, contains: [filename], exact: [id], orgs: org ? [org] : [], owner: who });
  }
});
afterAll(async () => t?.drop());

/**
 * What of an answer would identify objects the caller may not see. Region codes identify nothing
 * of an organization, so only planners (whose scope is regions) are held to them; a match's
 * parties (`supplier`, `recipient`) are part of a match the caller may see.
 */
function leaks(key: RoleKey, answer: unknown, asked = ""): string[] {
  // The parties of a match the caller may see are named to it (in the match and in its alert).
  const parties = new Set(byKind("match").filter((m) => visible(key, m)).flatMap((m) => m.parties ?? []));
  const own = CALLER[key].org;
  const hidden = objects
    // Its own organization's objects are no leak to a member, even where a field does not list them (requests to reporters).
    .filter((o) => !visible(key, o) && !(own && o.kind !== "user" && o.kind !== "token" && o.orgs?.includes(own)))
    .filter((o) => o.kind !== "region" || CALLER[key].role === "PLANNER" || CALLER[key].role === null)
    .map((o) => ({ ...o, contains: o.contains.filter((c) => !parties.has(c)), exact: o.exact.filter((e) => !parties.has(String(e))) }));
  const found = new Set<string>();
  const walk = (v: unknown, path: string) => {
    // An error or a rejected row may repeat what the caller asked for.
    const echo = path.startsWith("answer.errors") || /rejected\[\d+\]\.message$/.test(path);
    if (v === null || v === undefined) return;
    if (Array.isArray(v)) return v.forEach((x, i) => walk(x, `${path}[${i}]`));
    if (typeof v === "object") {
      for (const [k, x] of Object.entries(v)) if (k !== "supplier" && k !== "recipient") walk(x, `${path}.${k}`);
      return;
    }
    for (const o of hidden) {
      if (o.exact.includes(v as string | number) || (typeof v === "string" && o.contains.some((c) => c && v.includes(c) && !(echo && asked.includes(c))))) found.add(`${o.label} at ${path} (${String(v)})`);
    }
  };
  walk(answer, "answer");
  return [...found];
}

const REFUSED = /not allowed|not signed in|not found, or not visible to you|may revoke only|not a site of your organization|outside your jurisdiction|is for admins/;

/** Fetches and checks for leaks: the whole answer, data and errors. */
async function ask(key: RoleKey, query: string, variables?: Record<string, unknown>) {
  const r = await gql(token(key), query, variables);
  expect(r.errors?.find((e) => e.extensions?.code === "QUERY_TOO_COMPLEX"), `${key}: ${query}`).toBeUndefined();
  // An error may repeat what the caller asked for, and nothing else.
  expect([...leaks(key, r.data, query), ...leaks(key, { errors: r.errors }, query + JSON.stringify(variables ?? {}))], `${key}: ${query} ${JSON.stringify(variables ?? {})}`).toEqual([]);
  return r;
}

/**
 * Every page of a connection (20 a page, so deep selections stay under the cost limit), each
 * checked for leaks; `edges` of all pages, or null with the first page's errors when refused.
 */
async function pages(key: RoleKey, field: string, args: string, sel: string): Promise<{ edges: any[] | null; errors?: { message: string }[] }> {
  const edges: any[] = [];
  let after: string | null = null;
  for (let page = 0; page < 20; page++) {
    const r: GraphQLResponse = await ask(key, `query($after: String) { ${field}(${args ? `${args}, ` : ""}first: 20, after: $after) { edges { node { ${sel} } } pageInfo { hasNextPage endCursor } } }`, { after });
    if (!r.data?.[field]) return { edges: null, errors: r.errors };
    edges.push(...r.data[field].edges);
    if (!r.data[field].pageInfo.hasNextPage) return { edges };
    after = r.data[field].pageInfo.endCursor;
  }
  throw new Error(`${field}: more than 20 pages`);
}

// Deep selections, so that every nested object gets its chance to leak.
const REGION = "id code name parent { code } children { code }";
const SITE = `id code name region { code } organization { id name contactEmail }`;
const ORG = `id name creditCode contactEmail contactPhone sites { ${SITE} }`;
const REPORT = `id date onHand produced consumed revision revisions { onHand revision } site { ${SITE} } product { code }`;
const REQUEST = `id quantity neededBy status site { ${SITE} } organization { id name }`;
const MATCH = `id quantity status kind toRegion { code } supplier { siteCode organization } recipient { siteCode organization } request { ${REQUEST} }`;
const ALERT = `id kind message dedupeKey details region { code } organization { id name } site { ${SITE} } match { ${MATCH} }`;
const WEBHOOK = `id url organization { id name } jurisdiction { code }`;
const SHORTAGE = "region { id code } product { code } onHand dailyDemand shortageQuantity sites";
const SCENARIO = "region { code } product { code } casesPerDay dailyDemand";
const SCHEDULE = "region { code } setOn { code } cutoffLocalTime inherited";

/** For the list fields: the objects of the answer, by kind, must be exactly those the caller may see. */
function sameAsScope(key: RoleKey, kind: Kind, ids: string[]) {
  const want = byKind(kind).filter((o) => visible(key, o)).map((o) => o.label).sort();
  const got = ids.map((id) => byKind(kind).find((o) => o.id === id)?.label ?? `unknown ${id}`).sort();
  expect(got, `${key}: ${kind} seen`).toEqual(want);
}
const edgeIds = (c: { edges: any[] | null }): string[] => c.edges?.map((e: any) => e.node.id) ?? [];

type QuerySpec = (key: RoleKey) => Promise<void>;
const regionCalls = (field: string, q: (code: string) => string): QuerySpec => async (key) => {
  for (const code of REGION_CODES) {
    const r = await ask(key, q(code));
    const mayAsk = CALLER[key].role === "ADMIN" || (CALLER[key].role === "PLANNER" && inJurisdiction(CALLER[key], code));
    if (!mayAsk) {
      // Refused, or empty: never an answer about a region outside the jurisdiction.
      const d = r.data?.[field];
      expect(r.errors?.[0]?.message ?? (Array.isArray(d) && d.length === 0 ? "empty" : JSON.stringify(d)), `${key} ${field}(${code})`).toMatch(new RegExp(`${REFUSED.source}|empty|null`));
    }
  }
};

const QUERIES: Record<string, QuerySpec> = {
  importJob: async (key) => {
    for (const o of byKind("import")) {
      const r = await ask(key, `query($id: ID!) { importJob(id: $id) { id filename status rejectedRowsUrl organization { ${ORG} } } }`, { id: o.id });
      if (CALLER[key].role === "ADMIN" || CALLER[key].role === "REPORTER") expect(r.data?.importJob?.id ?? null, `${key} importJob(${o.label})`).toBe(visible(key, o) ? o.id : null);
      else expect(r.errors?.[0]?.message, `${key} importJob(${o.label})`).toMatch(REFUSED);
    }
  },
  me: async (key) => void (await ask(key, `{ me { role user { id name email } organization { ${ORG} } jurisdiction { ${REGION} } } }`)),
  regions: async (key) => {
    await ask(key, `{ regions { ${REGION} } }`);
    for (const level of ["COUNTRY", "PROVINCE", "CITY", "COUNTY"]) await ask(key, `{ regions(level: ${level}) { ${REGION} } }`);
    for (const code of REGION_CODES) await ask(key, `{ regions(parentCode: "${code}") { ${REGION} } }`);
  },
  region: async (key) => {
    for (const o of byKind("region")) {
      const r = await ask(key, `{ region(code: "${o.label}") { ${REGION} } }`);
      if (CALLER[key].role) expect(r.data?.region?.code ?? null, `${key} region(${o.label})`).toBe(visible(key, o) ? o.label : null);
    }
  },
  products: async (key) => void (await ask(key, "{ products { code name } }")),
  organizations: async (key) => {
    const r = await pages(key, "organizations", "", ORG);
    if (CALLER[key].role) sameAsScope(key, "organization", edgeIds(r));
    for (const code of REGION_CODES) await pages(key, "organizations", `regionCode: "${code}"`, ORG);
  },
  reports: async (key) => {
    const r = await pages(key, "reports", "", REPORT);
    if (r.edges) sameAsScope(key, "report", edgeIds(r));
    for (const site of Object.keys(SITES)) await pages(key, "reports", `siteCode: "${site}"`, REPORT);
  },
  node: async (key) => {
    for (const o of objects.filter((x) => x.id)) {
      const r = await ask(key, "query($id: ID!) { node(id: $id) { id } }", { id: o.id });
      if (visible(key, o) && !(key !== "admin" && o.kind === "token")) expect(r.data?.node?.id, `${key} node(${o.label})`).toBe(o.id);
      if (!visible(key, o)) {
        expect(r.data?.node ?? null, `${key} node(${o.label})`).toBeNull();
        expect(r.errors?.[0]?.message, `${key} node(${o.label})`).toMatch(REFUSED);
      }
    }
  },
  nodes: async (key) => {
    const hidden = objects.filter((x) => x.id && !visible(key, x));
    const r = await ask(key, "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", { ids: hidden.map((o) => o.id) });
    expect((r.data?.nodes ?? []).filter(Boolean), `${key} nodes`).toEqual([]);
  },
  requests: async (key) => {
    const r = await pages(key, "requests", "", REQUEST);
    if (r.edges && CALLER[key].role !== "PLANNER") sameAsScope(key, "request", edgeIds(r));
    if (r.edges && CALLER[key].role === "PLANNER") {
      const want = byKind("request").filter((o) => inJurisdiction(CALLER[key], o.region!)).map((o) => o.id).sort();
      expect(edgeIds(r).sort(), `${key} requests`).toEqual(want);
    }
  },
  matches: async (key) => {
    const r = await pages(key, "matches", "", MATCH);
    if (r.edges) sameAsScope(key, "match", edgeIds(r));
    await pages(key, "matches", 'productCode: "MELTBLOWN-PP"', MATCH);
  },
  alerts: async (key) => {
    const r = await pages(key, "alerts", "", ALERT);
    if (r.edges) sameAsScope(key, "alert", edgeIds(r));
    for (const code of REGION_CODES) await pages(key, "alerts", `regionCode: "${code}"`, ALERT);
  },
  webhooks: async (key) => {
    const r = await pages(key, "webhooks", "", WEBHOOK);
    if (r.edges) sameAsScope(key, "webhook", edgeIds(r));
  },
  deliveries: async (key) => {
    await pages(key, "deliveries", "", "id status channel webhook { id url }");
    for (const o of byKind("webhook")) await pages(key, "deliveries", `webhookId: "${o.id}"`, "id webhook { id url }");
  },
  shortages: regionCalls("shortages", (code) => `{ shortages(regionCode: "${code}", first: 20) { edges { node { ${SHORTAGE} } } } }`),
  forecast: regionCalls("forecast", (code) => `{ forecast(regionCode: "${code}", productCode: "MASK-N95") { method shortage { ${SHORTAGE} } points { demand supply stock } } }`),
  bottlenecks: regionCalls("bottlenecks", (code) => `{ bottlenecks(regionCode: "${code}") { region { code } product { code } input { code } lostQuantity inputShort } }`),
  demandScenarios: regionCalls("demandScenarios", (code) => `{ demandScenarios(regionCode: "${code}") { ${SCENARIO} } }`),
  reportingCompleteness: regionCalls("reportingCompleteness", (code) => `{ reportingCompleteness(regionCode: "${code}", date: "${day(0)}") { region { code } expectedSites reportingSites } }`),
  reportingSchedule: regionCalls("reportingSchedule", (code) => `{ reportingSchedule(regionCode: "${code}") { ${SCHEDULE} } }`),
};

/** Fingerprints of every table a mutation could change (tokens by id and revocation only: using one stamps it). */
async function fingerprint() {
  const tables = ["region", "organization", "site", "product", "pack_unit", "bom_line", "app_user", "report", "report_revision", "demand_scenario", "procurement_request", "match", "alert", "alert_event", "webhook", "delivery", "reporting_schedule"];
  const parts = tables.map((name) => sql`select ${name} as name, coalesce(md5(string_agg(x::text, ',' order by x::text)), '') as h from ${sql.identifier(name)} x`);
  const rows = await t.db.execute<{ name: string; h: string }>(
    sql`${sql.join(parts, sql` union all `)} union all select 'api_token', coalesce(md5(string_agg(id::text || coalesce(revoked_at::text, ''), ',' order by id)), '') from api_token`,
    "objects",
  );
  return Object.fromEntries(rows.map((r) => [r.name, r.h]));
}

/** Mutation calls aimed at objects outside the caller's scope (for admins nothing is outside). */
type MutationCase = [string, string, Record<string, unknown>?];
const hiddenOf = (key: RoleKey, kind: Kind) => byKind(kind).filter((o) => !visible(key, o));
const outsideRegions = (key: RoleKey) => REGION_CODES.filter((c) => !inJurisdiction(CALLER[key], c));
const outsideSites = (key: RoleKey) => Object.keys(SITES).filter((s) => SITES[s]!.org !== CALLER[key].org);
const MUTATIONS: Record<string, (key: RoleKey) => MutationCase[]> = {
  submitReports: (key) => outsideSites(key).map((s) => [`report at ${s}`, `mutation { submitReports(reports: [{ siteCode: "${s}", productCode: "MASK-N95", date: "${day(0)}", onHand: 1 }]) { accepted rejected { message } reports { id } } }`]),
  postRequest: (key) => (CALLER[key].role === "PLANNER" ? Object.keys(SITES) : outsideSites(key)).map((s) => [`request at ${s}`, `mutation { postRequest(input: { siteCode: "${s}", productCode: "MASK-N95", quantity: 1, neededBy: "${neededBy}" }) { id } }`]),
  cancelRequest: (key) => hiddenOf(key, "request").map((o) => [o.label, "mutation($id: ID!) { cancelRequest(id: $id) { id status } }", { id: o.id }]),
  setDemandScenario: (key) => outsideRegions(key).map((c) => [`scenario in ${c}`, `mutation { setDemandScenario(input: { regionCode: "${c}", productCode: "GOGGLES", casesPerDay: 1, usagePerCasePerDay: 1 }) { dailyDemand } }`]),
  clearDemandScenario: (key) => outsideRegions(key).map((c) => [`scenario in ${c}`, `mutation { clearDemandScenario(regionCode: "${c}", productCode: "GOGGLES") }`]),
  setReportingSchedule: (key) => outsideRegions(key).map((c) => [`schedule of ${c}`, `mutation { setReportingSchedule(regionCode: "${c}", cutoffLocalTime: "08:00", cutoffDaysAfter: 1) { cutoffLocalTime } }`]),
  clearReportingSchedule: (key) => outsideRegions(key).map((c) => [`schedule of ${c}`, `mutation { clearReportingSchedule(regionCode: "${c}") { cutoffLocalTime } }`]),
  respondToMatch: (key) => hiddenOf(key, "match").flatMap((o) => [true, false].map((accept): MutationCase => [`${o.label} accept ${accept}`, "mutation($id: ID!, $a: Boolean!) { respondToMatch(id: $id, accept: $a, reason: \"x\") { id status } }", { id: o.id, a: accept }])),
  acknowledgeAlert: (key) => hiddenOf(key, "alert").map((o) => [o.label, "mutation($id: ID!) { acknowledgeAlert(id: $id) { id status } }", { id: o.id }]),
  resolveAlert: (key) => hiddenOf(key, "alert").map((o) => [o.label, "mutation($id: ID!) { resolveAlert(id: $id, note: \"x\") { id status } }", { id: o.id }]),
  registerWebhook: () => (Object.keys(ORG_NAMES) as OrgKey[]).map((o) => [`webhook for ${o}`, `mutation($o: ID!) { registerWebhook(url: "https://hooks.example.org/intruder", organizationId: $o) { id secret } }`, { o: gid("Organization", world[o].id) }]),
  disableWebhook: (key) => hiddenOf(key, "webhook").map((o) => [o.label, "mutation($id: ID!) { disableWebhook(id: $id) { id enabled } }", { id: o.id }]),
  enableWebhook: (key) => hiddenOf(key, "webhook").map((o) => [o.label, "mutation($id: ID!) { enableWebhook(id: $id) { id enabled } }", { id: o.id }]),
  deleteWebhook: (key) => hiddenOf(key, "webhook").map((o) => [o.label, "mutation($id: ID!) { deleteWebhook(id: $id) }", { id: o.id }]),
  revokeApiToken: (key) => hiddenOf(key, "token").map((o) => [o.label, "mutation($id: ID!) { revokeApiToken(id: $id) { id revokedAt } }", { id: o.id }]),
  // Admin-only: every object is outside a non-admin's scope here.
  createRegions: () => [["region under 330100", 'mutation { createRegions(input: [{ code: "330199", name: "x", level: COUNTY, parentCode: "330100" }]) { created } }']],
  createOrganization: () => [["organization", 'mutation { createOrganization(input: { name: "Intruder Co", kind: AGENCY }) { id } }']],
  createSite: () => (Object.keys(ORG_NAMES) as OrgKey[]).map((o) => [`site of ${o}`, 'mutation($o: ID!) { createSite(input: { organizationId: $o, code: "INTRUDER-1", name: "x", regionCode: "330102" }) { id } }', { o: gid("Organization", world[o].id) }]),
  createUser: () => [["user", 'mutation { createUser(input: { name: "x", email: "intruder@example.com", role: ADMIN }) { id } }']],
  createApiToken: () => byKind("user").map((u) => [`token for ${u.label}`, 'mutation($u: ID!) { createApiToken(input: { userId: $u, name: "x" }) { token } }', { u: u.id }]),
  upsertProduct: () => [["product MASK-N95", 'mutation { upsertProduct(input: { code: "MASK-N95", name: "taken over", category: PPE, baseUnit: "piece" }) { code } }']],
};
const ADMIN_ONLY = new Set(["createRegions", "createOrganization", "createSite", "createUser", "createApiToken", "upsertProduct"]);

describe("access scope: root field x caller x in- and out-of-scope objects", () => {
  it("has a scope spec for every root query, mutation and subscription of the schema", () => {
    const specs = [...Object.keys(QUERIES), ...Object.keys(MUTATIONS), "alertRaised", "importReportsCsv", "importProgress"].sort();
    const roots = [schema.getQueryType()!, schema.getMutationType()!, schema.getSubscriptionType()!].flatMap((type) => Object.keys(type.getFields())).sort();
    expect(specs, "add a scope spec for each new root field to QUERIES, MUTATIONS or the subscription cases").toEqual(roots);
  });

  it("built a world with objects inside and outside every caller's scope", () => {
    for (const kind of ["report", "request", "match", "alert", "webhook", "site", "organization"] as Kind[]) {
      expect(byKind(kind).length, kind).toBeGreaterThanOrEqual(3);
      for (const key of ROLES.filter((k) => k !== "admin")) expect(byKind(kind).some((o) => !visible(key, o)), `${key} ${kind} out of scope`).toBe(true);
    }
    for (const key of ["countyPlanner", "jiangsuPlanner", "makerReporter", "supplierReporter"] as RoleKey[]) {
      for (const kind of ["report", "match", "alert", "webhook"] as Kind[]) expect(byKind(kind).some((o) => visible(key, o)), `${key} ${kind} in scope`).toBe(true);
    }
  });

  for (const [field, spec] of Object.entries(QUERIES)) {
    it.each(ROLES)(`query ${field} as %s shows nothing outside the caller's scope`, async (key) => spec(key));
  }

  for (const [field, cases] of Object.entries(MUTATIONS)) {
    it.each(ROLES.filter((k) => k !== "admin"))(`mutation ${field} as %s on objects outside the caller's scope is refused and changes nothing`, async (key) => {
      const list = cases(key);
      if (!ADMIN_ONLY.has(field) && key !== "anonymous") expect(list.length, `${field} ${key}: out-of-scope cases`).toBeGreaterThan(0);
      for (const [label, query, variables] of list) {
        const before = await fingerprint();
        const r = await ask(key, query, variables);
        const payload = r.data?.[field];
        const refusal = r.errors?.[0]?.message ?? (payload?.rejected?.[0]?.message as string | undefined) ?? "";
        expect(refusal, `${field} as ${key} on ${label}: ${JSON.stringify(r)}`).toMatch(REFUSED);
        if (field === "submitReports") expect(payload?.accepted ?? 0, `${field} as ${key} on ${label}`).toBe(0);
        expect(await fingerprint(), `${field} as ${key} on ${label} changed data`).toEqual(before);
      }
    });
  }
});

// alertRaised streams from a live alert source of this file's own Redis prefix.
describe("access scope: alertRaised", () => {
  const prefix = `{test-scope-${randomBytes(4).toString("hex")}}`;
  let live: LiveAlerts;
  let yoga: ReturnType<typeof createGraphQLHandler>;
  beforeAll(() => {
    const config = loadConfig({ NODE_ENV: "test", LOG_LEVEL: "silent" });
    const logger = createLogger(config);
    live = createLiveAlerts({ url: TEST_REDIS_URL, prefix, logger });
    yoga = createGraphQLHandler({ config, db: t.db, logger, live });
  });
  afterAll(async () => {
    await live?.close();
    await clearRedisPrefix(TEST_REDIS_URL, prefix);
  });

  /** A RAISED event of the hand-made alert of a site (a new event row, as the engine writes it). */
  async function raise(site: string) {
    const o = byKind("alert").find((a) => a.label === `alert scope-${site}`)!;
    const alertId = Buffer.from(o.id!, "base64").toString().split(":")[1]!;
    const [e] = await t.db.execute<{ id: number }>(sql`insert into alert_event (alert_id, type, severity, message) values (${alertId}::uuid, 'RAISED', 'YELLOW', 'live') returning id::int`, "objects");
    await live.publish({ alertId, eventId: e!.id, type: "RAISED" });
    return o;
  }

  /** Subscribes through the handler; the answer starts once the subscription is in place. */
  async function subscribe(key: RoleKey, query: string) {
    const response = await yoga.fetch("http://test/graphql", {
      method: "POST",
      headers: { accept: "text/event-stream", "content-type": "application/json", ...(token(key) ? { authorization: `Bearer ${token(key)}` } : {}) },
      body: JSON.stringify({ query }),
    });
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    return {
      async first() {
        while (!/event: next\ndata: .*\n\n/.test(text)) {
          const chunk = await reader.read();
          if (chunk.done) break;
          text += decoder.decode(chunk.value, { stream: true });
        }
        await reader.cancel();
        return JSON.parse(/event: next\ndata: (.*)\n\n/.exec(text)![1]!);
      },
    };
  }

  it.each(ROLES.filter((k) => k !== "admin"))("refuses a regionCode outside the caller's scope as %s", async (key) => {
    const c = CALLER[key];
    // Planners: regions outside their jurisdiction; organization users: regions holding none of their sites.
    const outside = REGION_CODES.filter((code) => (c.role === "PLANNER" ? !inJurisdiction(c, code) : !Object.values(SITES).some((s) => s.org === c.org && REGION_PATH[s.region]!.includes(code))));
    for (const code of outside) {
      const s = await subscribe(key, `subscription { alertRaised(regionCode: "${code}") { id message } }`);
      const result = await s.first();
      expect(leaks(key, result.data), `${key} alertRaised(${code})`).toEqual([]);
      expect(result.errors?.[0]?.message, `${key} alertRaised(${code})`).toMatch(REFUSED);
      expect(result.data ?? null).toBeNull();
    }
  });

  it.each(ROLES.filter((k) => k !== "anonymous"))("streams no alert outside the caller's scope as %s, first the hidden ones then a visible one", async (key) => {
    const sites = Object.keys(SITES);
    const hidden = sites.filter((s) => !visible(key, byKind("alert").find((a) => a.label === `alert scope-${s}`)!));
    const shown = sites.find((s) => !hidden.includes(s))!;
    const s = await subscribe(key, `subscription { alertRaised { ${ALERT} } }`);
    for (const site of hidden) await raise(site);
    const want = await raise(shown);
    const result = await s.first();
    expect(leaks(key, result), `${key} alertRaised`).toEqual([]);
    expect(result.data?.alertRaised?.id, `${key}: the first event is the visible alert`).toBe(want.id);
  });
});

// Imports: a file upload (a GraphQL multipart request) and a stream, with a live source of this file's own Redis prefix.
describe("access scope: imports", () => {
  const prefix = `{test-scope-imports-${randomBytes(4).toString("hex")}}`;
  let live: LiveAlerts;
  let yoga: ReturnType<typeof createGraphQLHandler>;
  beforeAll(() => {
    const config = loadConfig({ NODE_ENV: "test", LOG_LEVEL: "silent" });
    const logger = createLogger(config);
    live = createLiveAlerts({ url: TEST_REDIS_URL, prefix, logger });
    yoga = createGraphQLHandler({ config, db: t.db, logger, live });
  });
  afterAll(async () => {
    await live?.close();
    await clearRedisPrefix(TEST_REDIS_URL, prefix);
  });

  it.each(ROLES.filter((k) => k !== "admin"))("importReportsCsv as %s: a file of sites outside the caller's scope is refused or all its rows rejected, and changes nothing", async (key) => {
    const sites = outsideSites(key);
    const form = new FormData();
    form.append("operations", JSON.stringify({ query: "mutation($f: File!) { importReportsCsv(file: $f) { id status filename } }", variables: { f: null } }));
    form.append("map", JSON.stringify({ 0: ["variables.f"] }));
    form.append("0", new Blob([`siteCode,productCode,date,onHand\n${sites.map((s) => `${s},MASK-N95,${day(0)},1`).join("\n")}\n`]), `intruder-${key}.csv`);
    const before = await fingerprint();
    const response = await yoga.fetch("http://test/graphql", { method: "POST", headers: token(key) ? { authorization: `Bearer ${token(key)}` } : {}, body: form });
    const r = (await response.json()) as GraphQLResponse;
    expect(leaks(key, r), `${key} importReportsCsv`).toEqual([]);
    if (CALLER[key].role === "REPORTER") {
      expect(r.errors, `${key} importReportsCsv`).toBeUndefined();
      const id = Buffer.from(r.data.importReportsCsv.id, "base64").toString().split(":")[1]!;
      expect(await processImport(t.db, id, { backfillDays: 400 })).toMatchObject({ status: "DONE", rowsAccepted: 0, rowsRejected: sites.length });
      const rejected = await t.db.execute<{ message: string }>(sql`select message from import_rejected_row where import_id = ${id}`, "objects");
      expect(rejected.length).toBe(sites.length);
      for (const { message } of rejected) expect(message, `${key} importReportsCsv`).toMatch(REFUSED);
    } else {
      // Without a token, a multipart POST is refused even before that (CSRF prevention).
      expect(r.errors?.[0]?.message, `${key} importReportsCsv`).toMatch(new RegExp(`${REFUSED.source}|CSRF prevention`));
    }
    expect(await fingerprint(), `importReportsCsv as ${key} changed data`).toEqual(before);
  });

  it.each(ROLES)("importProgress as %s streams only imports the caller may see", async (key) => {
    for (const o of byKind("import")) {
      const query = `subscription($id: ID!) { importProgress(id: $id) { id filename status organization { ${ORG} } } }`;
      const response = await yoga.fetch("http://test/graphql", {
        method: "POST",
        headers: { accept: "text/event-stream", "content-type": "application/json", ...(token(key) ? { authorization: `Bearer ${token(key)}` } : {}) },
        body: JSON.stringify({ query, variables: { id: o.id } }),
      });
      // A DONE import's stream ends after its first event; so does a refusal.
      const result = JSON.parse(/event: next\ndata: (.*)\n\n/.exec(await response.text())![1]!);
      expect(leaks(key, result, query + o.id), `${key} importProgress(${o.label})`).toEqual([]);
      if (visible(key, o)) expect(result.data?.importProgress?.id, `${key} importProgress(${o.label})`).toBe(o.id);
      else {
        expect(result.errors?.[0]?.message, `${key} importProgress(${o.label})`).toMatch(REFUSED);
        expect(result.data ?? null).toBeNull();
      }
    }
  });
});

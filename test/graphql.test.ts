import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { makeUser, seedWorld, type TestUser, type World } from "./helpers/fixtures.js";
import { graphqlClient } from "./helpers/graphql.js";

let t: TestDatabase;
let world: World;
let admin: TestUser;
let reporter: TestUser;
let gql: ReturnType<typeof graphqlClient>;

const auditCount = async () => (await t.db.execute<{ n: number }>(sql`select count(*)::int as n from audit_log`, "objects"))[0]!.n;
const firstError = (r: { errors?: { message: string; extensions?: Record<string, unknown> }[] }) => r.errors?.[0];
const yesterday = () => new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);

beforeAll(async () => {
  t = await createTestDatabase();
  world = await seedWorld(t.db);
  admin = await makeUser(t.db, "ADMIN");
  reporter = await makeUser(t.db, "REPORTER", { organizationId: world.maker.id });
  gql = graphqlClient(t.db);
});
afterAll(async () => t?.drop());

describe("admin mutations", () => {
  it("builds a working setup from nothing, one audit row per mutation", async () => {
    let audits = await auditCount();
    const step = async (query: string, variables?: Record<string, unknown>) => {
      const r = await gql(admin.token, query, variables);
      expect(r.errors, query).toBeUndefined();
      expect(await auditCount(), `audit row for ${query}`).toBe(audits + 1);
      audits += 1;
      return r.data;
    };
    await step(`mutation { createRegions(input: [{ code: "330110", name: "余杭区", level: COUNTY, parentCode: "330100", latitude: 30.42, longitude: 120.3 }]) { created updated regions { code parent { code } } } }`);
    const org = await step(`mutation { createOrganization(input: { name: "Yuhang Meltblown", kind: RAW_MATERIAL_SUPPLIER, creditCode: "91110000802100433B" }) { id name kind creditCode } }`);
    expect(org.createOrganization).toMatchObject({ name: "Yuhang Meltblown", kind: "RAW_MATERIAL_SUPPLIER", creditCode: "91110000802100433B" });
    const site = await step(`mutation($o: ID!) { createSite(input: { organizationId: $o, code: "YH-MB-1", name: "Line 1", regionCode: "330110" }) { id code timeZone region { code } organization { name } } }`, { o: org.createOrganization.id });
    expect(site.createSite).toMatchObject({ code: "YH-MB-1", timeZone: "Asia/Shanghai", region: { code: "330110" }, organization: { name: "Yuhang Meltblown" } });
    const user = await step(`mutation($o: ID!) { createUser(input: { name: "Li Wei", email: "Li.Wei@Example.com", role: REPORTER, organizationId: $o }) { id email role organization { name } } }`, { o: org.createOrganization.id });
    expect(user.createUser).toMatchObject({ email: "li.wei@example.com", role: "REPORTER" });
    const token = await step(`mutation($u: ID!) { createApiToken(input: { userId: $u, name: "erp" }) { token apiToken { id name prefix lastUsedAt } } }`, { u: user.createUser.id });
    expect(token.createApiToken.token).toMatch(/^smt_[A-Za-z0-9_-]{43}$/);
    expect(token.createApiToken.token.startsWith(token.createApiToken.apiToken.prefix)).toBe(true);
    await step(`mutation { upsertProduct(input: { code: "mask-ffp2", name: "FFP2 respirator", category: MASK, baseUnit: "piece", units: [{ name: "box", factor: 25 }], inputs: [{ productCode: "MELTBLOWN-PP", quantity: 0.004 }] }) { code units { name factor } inputs { input { code } quantity } } }`);

    // The new reporter's token works at once and is seen as used.
    const me = await gql(token.createApiToken.token, "{ me { role organization { name sites { code } } user { apiTokens { lastUsedAt } } } }");
    expect(me.data.me).toMatchObject({ role: "REPORTER", organization: { name: "Yuhang Meltblown", sites: [{ code: "YH-MB-1" }] } });
    expect(me.data.me.user.apiTokens[0].lastUsedAt).not.toBeNull();
    const submit = await gql(token.createApiToken.token, `mutation { submitReports(reports: [{ siteCode: "YH-MB-1", productCode: "MELTBLOWN-PP", date: "${yesterday()}", unit: "tonne", onHand: 2.5 }]) { accepted reports { onHand product { baseUnit } } } }`);
    expect(submit.data.submitReports).toEqual({ accepted: 1, reports: [{ onHand: 2500, product: { baseUnit: "kg" } }] });
  });

  it("answers bad admin input with a message that says what to fix, and stores nothing", async () => {
    const audits = await auditCount();
    const cases: [string, RegExp][] = [
      [`mutation { createOrganization(input: { name: "X", kind: HOSPITAL, creditCode: "91350100M000100Y44" }) { id } }`, /check character is '4' but .* require '3'/],
      [`mutation { createOrganization(input: { name: "X", kind: HOSPITAL, creditCode: "123" }) { id } }`, /18 characters, got 3/],
      [`mutation { createOrganization(input: { name: "Dup", kind: HOSPITAL, creditCode: "91350100M000100Y43" }) { id } }`, /already exists/],
      [`mutation { createOrganization(input: { name: "X", kind: HOSPITAL, contactEmail: "not-an-email" }) { id } }`, /contactEmail is not an e-mail/],
      [`mutation { createRegions(input: [{ code: "999999", name: "Orphan", level: COUNTY, parentCode: "888888" }]) { created } }`, /parent 888888 does not exist/],
      [`mutation { createUser(input: { name: "P", email: "p@example.com", role: PLANNER }) { id } }`, /needs jurisdictionRegionCode/],
      [`mutation { createUser(input: { name: "R", email: "r@example.com", role: REPORTER }) { id } }`, /needs organizationId/],
      [`mutation { createUser(input: { name: "P", email: "p@example.com", role: PLANNER, jurisdictionRegionCode: "nowhere" }) { id } }`, /no region with code nowhere/],
      [`mutation { createUser(input: { name: "P", email: "p2@example.com", role: PLANNER, jurisdictionRegionCode: "330000", organizationId: "${Buffer.from("Organization:" + "00000000-0000-0000-0000-000000000000").toString("base64")}" }) { id } }`, /organizationId applies to REPORTER and PROCUREMENT users only/],
      [`mutation { createRegions(input: [{ code: "330100", name: "杭州市", level: COUNTY, parentCode: "330000" }]) { created } }`, /level cannot change/],
      [`mutation { upsertProduct(input: { code: "MASK-N95", name: "N95", category: MASK, baseUnit: "piece", units: [{ name: "box", factor: 0 }] }) { code } }`, /factor must be > 0/],
      [`mutation { upsertProduct(input: { code: "NEW-1", name: "N", category: MASK, baseUnit: "piece", inputs: [{ productCode: "NOPE", quantity: 1 }] }) { code } }`, /unknown products NOPE/],
    ];
    for (const [query, message] of cases) {
      const r = await gql(admin.token, query);
      expect(firstError(r)?.message, query).toMatch(message);
      expect(firstError(r)?.extensions?.code, query).toMatch(/BAD_INPUT|NOT_FOUND|CONFLICT/);
    }
    const site = await gql(admin.token, `mutation($o: ID!) { createSite(input: { organizationId: $o, code: "X-1", name: "x", regionCode: "330102", timeZone: "Mars/Olympus" }) { id } }`, { o: "T3JnYW5pemF0aW9uOjE=" });
    expect(firstError(site)?.message).toMatch(/organizationId|timeZone/);
    expect(await auditCount()).toBe(audits);
  });

  it("answers a well-formed global id holding a malformed key with a clear error", async () => {
    const id = Buffer.from("Organization:not-a-uuid").toString("base64");
    const r = await gql(admin.token, "query($id: ID!) { node(id: $id) { id } }", { id });
    expect(firstError(r)).toMatchObject({ message: expect.stringContaining("wrong format"), extensions: { code: "BAD_INPUT" } });
    for (const [query, variables] of [
      ["query($id: ID!) { node(id: $id) { id } }", { id: Buffer.from("Region:99999999999").toString("base64") }],
      ['{ reports(from: "0000-01-01") { edges { node { id } } } }', {}],
      ["query($c: String!) { region(code: $c) { code } }", { c: "33\u0000" }],
    ] as const) {
      const bad = await gql(admin.token, query, variables);
      expect(firstError(bad)?.extensions?.code ?? firstError(bad)?.message, query).not.toBe("INTERNAL_SERVER_ERROR");
      expect(firstError(bad)?.message, query).not.toBe("Unexpected error.");
    }
  });

  it("refuses tokens that expired, and a past expiry when creating one", async () => {
    const user = await gql(admin.token, "{ me { user { id } } }");
    const past = await gql(admin.token, `mutation($u: ID!) { createApiToken(input: { userId: $u, name: "old", expiresAt: "2020-01-01T00:00:00Z" }) { token } }`, { u: user.data.me.user.id });
    expect(firstError(past)?.message).toContain("in the past");
    const soon = new Date(Date.now() + 1000).toISOString();
    const r = await gql(admin.token, `mutation($u: ID!, $e: DateTime!) { createApiToken(input: { userId: $u, name: "short", expiresAt: $e }) { token apiToken { id } } }`, { u: user.data.me.user.id, e: soon });
    await t.db.execute(sql`update api_token set expires_at = now() - interval '1 second' where name = 'short'`);
    const expired = await gql(r.data.createApiToken.token, "{ me { role } }");
    expect(expired.status).toBe(401);
    const malformed = await gql(null, "{ me { role } }");
    expect(firstError(malformed)?.message).toContain("not signed in");
  });
});

describe("reports over GraphQL", () => {
  const submit = `mutation($r: [ReportInput!]!, $k: String) { submitReports(reports: $r, idempotencyKey: $k) { accepted replayed rejected { index field message } reports { id date onHand revision revisions { revision onHand } } } }`;

  it("rejects a malformed date before anything is stored, naming the row", async () => {
    const r = await gql(reporter.token, submit, { r: [{ siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: "2026-13-45", onHand: 1 }] });
    expect(firstError(r)?.message).toMatch(/"\$r" got invalid value "2026-13-45" at "r\[0\]\.date"; Date must be a calendar date written YYYY-MM-DD/);
  });

  it("refuses more than 5,000 rows as a whole with BATCH_TOO_LARGE", async () => {
    const rows = Array.from({ length: 5001 }, () => ({ siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: yesterday(), onHand: 1 }));
    const r = await gql(reporter.token, submit, { r: rows });
    expect(firstError(r)).toMatchObject({ message: expect.stringContaining("at most 5,000 rows"), extensions: { code: "BATCH_TOO_LARGE" } });
  });

  it("corrects, keeps revisions, replays idempotent requests and pages through reports", async () => {
    const day = yesterday();
    const first = await gql(reporter.token, submit, { r: [{ siteCode: "HZ-MASK-1", productCode: "GOGGLES", date: day, onHand: 10 }], k: "k-1" });
    expect(first.data.submitReports).toMatchObject({ accepted: 1, replayed: false, rejected: [] });
    const replay = await gql(reporter.token, submit, { r: [{ siteCode: "HZ-MASK-1", productCode: "GOGGLES", date: day, onHand: 10 }], k: "k-1" });
    expect(replay.data.submitReports).toMatchObject({ accepted: 1, replayed: true });
    const reused = await gql(reporter.token, submit, { r: [{ siteCode: "HZ-MASK-1", productCode: "GOGGLES", date: day, onHand: 11 }], k: "k-1" });
    expect(firstError(reused)?.extensions?.code).toBe("IDEMPOTENCY_KEY_REUSED");
    const corrected = await gql(reporter.token, submit, { r: [{ siteCode: "HZ-MASK-1", productCode: "GOGGLES", date: day, onHand: 12 }] });
    expect(corrected.data.submitReports.reports[0]).toMatchObject({ onHand: 12, revision: 2, revisions: [{ revision: 1, onHand: 10 }] });

    const rows = Array.from({ length: 5 }, (_, i) => ({ siteCode: "HZ-MASK-1", productCode: "FACE-SHIELD", date: `2026-01-0${i + 1}`, onHand: i }));
    await gql(reporter.token, submit, { r: rows });
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 5; page++) {
      const r: any = await gql(reporter.token, `query($a: String) { reports(productCode: "face-shield", first: 2, after: $a) { edges { node { date } } pageInfo { hasNextPage endCursor } } }`, { a: after });
      seen.push(...r.data.reports.edges.map((e: any) => e.node.date));
      if (!r.data.reports.pageInfo.hasNextPage) break;
      after = r.data.reports.pageInfo.endCursor;
    }
    expect(seen).toEqual(["2026-01-05", "2026-01-04", "2026-01-03", "2026-01-02", "2026-01-01"]);
    const range = await gql(reporter.token, `{ reports(productCode: "FACE-SHIELD", from: "2026-01-02", to: "2026-01-03") { edges { node { date } } } }`);
    expect(range.data.reports.edges.map((e: any) => e.node.date)).toEqual(["2026-01-03", "2026-01-02"]);
    const many = Array.from({ length: 120 }, (_, i) => ({ siteCode: "HZ-MASK-1", productCode: "TEST-ANTIGEN", date: new Date(Date.UTC(2025, 0, 1 + i)).toISOString().slice(0, 10), onHand: i }));
    expect((await gql(reporter.token, submit, { r: many })).data.submitReports.accepted).toBe(120);
    const capped = await gql(reporter.token, '{ reports(productCode: "TEST-ANTIGEN", first: 500) { edges { node { id } } pageInfo { hasNextPage } } }');
    expect(capped.data.reports.edges).toHaveLength(100);
    expect(capped.data.reports.pageInfo.hasNextPage).toBe(true);
  });
});

describe("submitReports on the compiled path (graphql-jit) answers exactly as the standard executor", () => {
  // Without `reports` the operation runs compiled; asking for `reports` (type-level auth checks)
  // sends the same operation through graphql-js. Both must answer alike, errors included.
  const op = (extra: string) =>
    `mutation($r: [ReportInput!]!, $k: String) { submitReports(reports: $r, idempotencyKey: $k) { accepted rejected { index field message }${extra} } }`;
  const row = { siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: yesterday(), onHand: 5 };
  const cases: [string, string | null, () => Record<string, unknown>][] = [
    ["a figure that is not a number", "reporter", () => ({ r: [{ ...row, onHand: "x" }] })],
    ["a missing required field", "reporter", () => ({ r: [{ productCode: "MASK-N95", date: yesterday() }] })],
    ["a malformed date", "reporter", () => ({ r: [{ ...row, date: "2026-02-30" }] })],
    ["more than 5,000 rows", "reporter", () => ({ r: Array.from({ length: 5001 }, () => row) })],
    ["no token", null, () => ({ r: [row] })],
    ["a good row and a bad one", "reporter", () => ({ r: [row, { ...row, siteCode: "NJ-NW-1" }] })],
  ];
  it.each(cases)("%s", async (_name, who, variables) => {
    const token = who ? reporter.token : null;
    const compiled = await gql(token, op(""), { ...variables(), k: `jit-${Math.random()}` });
    const standard = await gql(token, op(" reports { id }"), { ...variables(), k: `std-${Math.random()}` });
    expect(compiled.status).toBe(standard.status);
    expect(compiled.errors).toEqual(standard.errors);
    if (standard.data?.submitReports) {
      const { reports: _reports, ...rest } = standard.data.submitReports;
      expect(compiled.data.submitReports).toEqual(rest);
    } else expect(compiled.data ?? null).toEqual(standard.data ?? null);
  });
});

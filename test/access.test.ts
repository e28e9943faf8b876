import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { schema } from "../src/graphql/schema.js";
import { submitReports } from "../src/domain/reports/ingest.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { makeUser, seedWorld, type TestUser, type World } from "./helpers/fixtures.js";
import { graphqlClient } from "./helpers/graphql.js";

type RoleName = "admin" | "provincePlanner" | "countyPlanner" | "makerReporter" | "hospitalProcurement";

let t: TestDatabase;
let world: World;
let gql: ReturnType<typeof graphqlClient>;
const users = {} as Record<RoleName, TestUser>;
const ids = {} as Record<string, string>;

const codes = (list: { code: string }[] | undefined) => list?.map((r) => r.code);
const forbidden = (r: { errors?: { message: string }[]; data?: unknown }) =>
  expect(r.errors?.[0]?.message ?? "").toMatch(/not allowed|not signed in|may revoke only|not found, or not visible to you/);

beforeAll(async () => {
  t = await createTestDatabase();
  world = await seedWorld(t.db);
  users.admin = await makeUser(t.db, "ADMIN");
  users.provincePlanner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330000" });
  users.countyPlanner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330102" });
  users.makerReporter = await makeUser(t.db, "REPORTER", { organizationId: world.maker.id });
  users.hospitalProcurement = await makeUser(t.db, "PROCUREMENT", { organizationId: world.hospital.id });
  const now = new Date("2026-03-10T04:00:00Z");
  for (const [site, n] of [["HZ-MASK-1", 100], ["HZ-XIHU-H1", 40], ["NJ-NW-1", 7]] as const) {
    await submitReports(t.db, users.admin.actor, [{ siteCode: site, productCode: "MASK-N95", date: "2026-03-09", onHand: n }], { backfillDays: 7, now });
  }
  gql = graphqlClient(t.db);
  const all = await gql(users.admin.token, `{
    reports(first: 10) { edges { node { id site { id code organization { id name } region { id code } } } } }
    me { user { id apiTokens { id } } }
  }`);
  if (!all.data) throw new Error(JSON.stringify(all));
  for (const { node } of all.data.reports.edges) {
    ids[`report:${node.site.code}`] = node.id;
    ids[`site:${node.site.code}`] = node.site.id;
    ids[`org:${node.site.organization.name}`] = node.site.organization.id;
    ids[`region:${node.site.region.code}`] = node.site.region.id;
  }
  ids.adminUser = all.data.me.user.id;
  ids.adminToken = all.data.me.user.apiTokens[0].id;
});
afterAll(async () => t?.drop());

describe("deny by default", () => {
  it("every root query, mutation and subscription declares auth scopes, and every object type is scoped", () => {
    const roots = [schema.getQueryType()!, schema.getMutationType()!, schema.getSubscriptionType()!];
    const unscoped = roots.flatMap((type) =>
      Object.values(type.getFields())
        .filter((f) => !(f.extensions as any)?.pothosOptions?.authScopes)
        .map((f) => `${type.name}.${f.name}`),
    );
    expect(unscoped).toEqual([]);
    const objectTypes = Object.values(schema.getTypeMap()).filter(
      (type: any) => type.constructor.name === "GraphQLObjectType" && !type.name.startsWith("__") && !["Query", "Mutation", "Subscription"].includes(type.name),
    );
    // Payloads and connection wrappers hold only objects that carry their own type scopes.
    const wrappers = /Connection$|Edge$|Payload$|^PageInfo$|^RowError$|^Viewer$/;
    const unscopedTypes = objectTypes.filter((type: any) => !wrappers.test(type.name) && !type.extensions?.pothosOptions?.authScopes).map((t: any) => t.name);
    expect(unscopedTypes).toEqual([]);
  });

  it("answers every root field without a token with 'not signed in'", async () => {
    for (const query of ["{ me { role } }", "{ regions { code } }", '{ region(code: "CN") { code } }', "{ products { code } }", "{ organizations { edges { node { name } } } }", "{ reports { edges { node { id } } } }", `{ node(id: "${ids["report:HZ-MASK-1"]}") { id } }`]) {
      const r = await gql(null, query);
      expect(r.errors?.[0]?.message, query).toContain("not signed in");
      expect(JSON.stringify(r.data ?? null)).not.toMatch(/HZ-|330|MASK/);
    }
  });
});

describe("regions", () => {
  it("lists the top of each viewer's visible tree", async () => {
    const expected: Record<RoleName, string[]> = {
      admin: ["CN"],
      provincePlanner: ["330000"],
      countyPlanner: ["330102"],
      makerReporter: ["330102"],
      hospitalProcurement: ["330106"],
    };
    for (const [role, want] of Object.entries(expected) as [RoleName, string[]][]) {
      const r = await gql(users[role].token, "{ regions { code } }");
      expect(codes(r.data?.regions), role).toEqual(want);
    }
  });

  it("a county planner never sees the neighbouring county; a province planner sees every county below it", async () => {
    const county = await gql(users.countyPlanner.token, `{ regions(level: COUNTY) { code } hangzhou: regions(parentCode: "330100") { code }
      own: region(code: "330102") { code parent { code } children { code } } neighbour: region(code: "330106") { code } province: region(code: "330000") { code } }`);
    expect(county.errors).toBeUndefined();
    expect(codes(county.data.regions)).toEqual(["330102"]);
    expect(codes(county.data.hangzhou)).toEqual(["330102"]);
    expect(county.data.own).toEqual({ code: "330102", parent: null, children: [] });
    expect(county.data.neighbour).toBeNull();
    expect(county.data.province).toBeNull();

    const province = await gql(users.provincePlanner.token, `{ regions(level: COUNTY) { code } jiangsu: region(code: "320102") { code } city: region(code: "330100") { children { code } parent { code } } }`);
    expect(codes(province.data.regions)).toEqual(["330102", "330106"]);
    expect(province.data.jiangsu).toBeNull();
    expect(province.data.city).toEqual({ children: [{ code: "330102" }, { code: "330106" }], parent: { code: "330000" } });

    const admin = await gql(users.admin.token, "{ regions(level: COUNTY) { code } }");
    expect(codes(admin.data.regions)).toEqual(["320102", "330102", "330106"]);
  });
});

describe("organizations and reports", () => {
  it("shows each role exactly the organizations it may see, and contact details only to members and admins", async () => {
    const expected: Record<RoleName, string[]> = {
      admin: ["Hangzhou Mask Works", "Nanjing Nonwovens", "Xihu People's Hospital"],
      provincePlanner: ["Hangzhou Mask Works", "Xihu People's Hospital"],
      countyPlanner: ["Hangzhou Mask Works"],
      makerReporter: ["Hangzhou Mask Works"],
      hospitalProcurement: ["Xihu People's Hospital"],
    };
    for (const [role, want] of Object.entries(expected) as [RoleName, string[]][]) {
      const r = await gql(users[role].token, "{ organizations(first: 100) { edges { node { name contactEmail sites { code } } } } }");
      expect(r.errors, role).toBeUndefined();
      const names = r.data.organizations.edges.map((e: any) => e.node.name);
      expect(names, role).toEqual(want);
      const maker = r.data.organizations.edges.find((e: any) => e.node.name === "Hangzhou Mask Works")?.node;
      if (maker) expect(maker.contactEmail, role).toBe(role === "admin" || role === "makerReporter" ? "ops@maskworks.example" : null);
    }
    const byRegion = await gql(users.provincePlanner.token, '{ organizations(regionCode: "330106") { edges { node { name } } } }');
    expect(byRegion.data.organizations.edges.map((e: any) => e.node.name)).toEqual(["Xihu People's Hospital"]);
    const outside = await gql(users.provincePlanner.token, '{ organizations(regionCode: "320000") { edges { node { name } } } }');
    expect(outside.data.organizations.edges).toEqual([]);
  });

  it("does not reveal through the region filter where a visible organization has other sites", async () => {
    const org = await gql(users.admin.token, `mutation { createOrganization(input: { name: "Both Co", kind: DISTRIBUTOR }) { id } }`);
    const id = org.data.createOrganization.id;
    for (const [code, region] of [["BOTH-1", "330102"], ["BOTH-2", "330106"]]) {
      const r = await gql(users.admin.token, `mutation($o: ID!) { createSite(input: { organizationId: $o, code: "${code}", name: "x", regionCode: "${region}" }) { id } }`, { o: id });
      expect(r.errors).toBeUndefined();
    }
    const names = async (regionCode: string) =>
      (await gql(users.countyPlanner.token, `{ organizations(regionCode: "${regionCode}") { edges { node { name sites { code } } } } }`)).data.organizations.edges.map(
        (e: any) => [e.node.name, e.node.sites.map((s: any) => s.code)],
      );
    expect(await names("330106")).toEqual([]);
    expect(await names("330102")).toEqual([["Both Co", ["BOTH-1"]], ["Hangzhou Mask Works", ["HZ-MASK-1"]]]);
  });

  it("shows reports only inside the viewer's scope, and none to procurement", async () => {
    const expected: Partial<Record<RoleName, string[]>> = {
      admin: ["HZ-MASK-1", "HZ-XIHU-H1", "NJ-NW-1"],
      provincePlanner: ["HZ-MASK-1", "HZ-XIHU-H1"],
      countyPlanner: ["HZ-MASK-1"],
      makerReporter: ["HZ-MASK-1"],
    };
    for (const [role, want] of Object.entries(expected) as [RoleName, string[]][]) {
      const r = await gql(users[role].token, "{ reports(first: 100) { edges { node { onHand site { code } } } } }");
      expect(r.errors, role).toBeUndefined();
      expect(r.data.reports.edges.map((e: any) => e.node.site.code).sort(), role).toEqual(want);
    }
    const filtered = await gql(users.countyPlanner.token, '{ reports(siteCode: "HZ-XIHU-H1") { edges { node { id } } } }');
    expect(filtered.data.reports.edges).toEqual([]);
    forbidden(await gql(users.hospitalProcurement.token, "{ reports { edges { node { id } } } }"));
  });

  it("refuses node lookups outside the viewer's scope for every node type", async () => {
    const cases: [RoleName, string][] = [
      ["countyPlanner", ids["report:HZ-XIHU-H1"]!],
      ["countyPlanner", ids["site:HZ-XIHU-H1"]!],
      ["countyPlanner", ids["org:Xihu People's Hospital"]!],
      ["countyPlanner", ids["region:330106"]!],
      ["provincePlanner", ids["report:NJ-NW-1"]!],
      ["provincePlanner", ids["org:Nanjing Nonwovens"]!],
      ["makerReporter", ids["report:HZ-XIHU-H1"]!],
      ["makerReporter", ids["site:NJ-NW-1"]!],
      ["hospitalProcurement", ids["report:HZ-XIHU-H1"]!],
      ["hospitalProcurement", ids["org:Hangzhou Mask Works"]!],
      ["makerReporter", ids.adminUser!],
      ["makerReporter", ids.adminToken!],
    ];
    for (const [role, id] of cases) {
      const r = await gql(users[role].token, "query($id: ID!) { node(id: $id) { id } nodes(ids: [$id]) { id } }", { id });
      expect(r.data?.node ?? null, `${role} ${id}`).toBeNull();
      expect(r.data?.nodes?.[0] ?? null, `${role} ${id}`).toBeNull();
      forbidden(r);
    }
    // A missing object gets the same answer as a forbidden one, so ids reveal nothing.
    const missing = Buffer.from("Report:999999").toString("base64");
    const forbiddenOne = ids["report:HZ-XIHU-H1"]!;
    const answers = await Promise.all(
      [missing, forbiddenOne].map((id) => gql(users.countyPlanner.token, "query($id: ID!) { node(id: $id) { id } }", { id })),
    );
    expect(answers.map((a) => [a.status, a.errors?.[0]?.message])).toEqual([
      [200, "not found, or not visible to you"],
      [200, "not found, or not visible to you"],
    ]);
    // nodes: a list with a missing id fails as a whole (one batch in the drizzle loader), and
    // still says no more than "not found, or not visible" for each item.
    const mixed = await gql(users.countyPlanner.token, "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", { ids: [ids["report:HZ-MASK-1"], missing] });
    expect(mixed.data.nodes).toEqual([null, null]);
    expect(new Set(mixed.errors?.map((e) => e.message))).toEqual(new Set(["not found, or not visible to you"]));
    const own = await gql(users.countyPlanner.token, "query($id: ID!) { node(id: $id) { ... on Report { onHand } } }", { id: ids["report:HZ-MASK-1"] });
    expect(own.data.node).toEqual({ onHand: 100 });
  });
});

describe("mutations", () => {
  const adminMutations = [
    `mutation { createRegions(input: [{ code: "330108", name: "滨江区", level: COUNTY, parentCode: "330100" }]) { created } }`,
    `mutation { createOrganization(input: { name: "New Co", kind: DISTRIBUTOR }) { id } }`,
    `mutation { upsertProduct(input: { code: "GOWN-SURGICAL", name: "Surgical gown", category: PPE, baseUnit: "piece" }) { code } }`,
  ];

  it("lets only admins run admin mutations", async () => {
    for (const role of ["provincePlanner", "countyPlanner", "makerReporter", "hospitalProcurement"] as RoleName[]) {
      for (const m of adminMutations) forbidden(await gql(users[role].token, m));
      forbidden(await gql(users[role].token, `mutation($o: ID!) { createSite(input: { organizationId: $o, code: "X-1", name: "x", regionCode: "330102" }) { id } }`, { o: ids["org:Hangzhou Mask Works"] }));
      forbidden(await gql(users[role].token, `mutation { createUser(input: { name: "x", email: "x@example.com", role: ADMIN }) { id } }`));
      forbidden(await gql(users[role].token, `mutation($u: ID!) { createApiToken(input: { userId: $u, name: "x" }) { token } }`, { u: ids.adminUser }));
    }
    for (const m of adminMutations) expect((await gql(users.admin.token, m)).errors, m).toBeUndefined();
  });

  it("lets reporters and admins submit reports, reporters only for their own sites", async () => {
    const m = `mutation($r: [ReportInput!]!) { submitReports(reports: $r) { accepted rejected { index field message } } }`;
    const own = { siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: "2026-03-08", onHand: 90 };
    const foreign = { siteCode: "HZ-XIHU-H1", productCode: "MASK-N95", date: "2026-03-08", onHand: 1 };
    const r = await gql(users.makerReporter.token, m, { r: [own, foreign] });
    expect(r.data.submitReports.accepted).toBe(1);
    expect(r.data.submitReports.rejected).toEqual([
      { index: 1, field: "siteCode", message: expect.stringContaining("not a site of your organization") },
    ]);
    for (const role of ["provincePlanner", "countyPlanner", "hospitalProcurement"] as RoleName[]) forbidden(await gql(users[role].token, m, { r: [own] }));
    forbidden(await gql(null, m, { r: [own] }));
  });

  it("lets users revoke their own tokens and admins any; a revoked token stops working at once", async () => {
    const victim = await makeUser(t.db, "REPORTER", { organizationId: world.maker.id });
    const mine = await gql(victim.token, "{ me { user { apiTokens { id } } } }");
    const tokenId = mine.data.me.user.apiTokens[0].id;
    forbidden(await gql(users.makerReporter.token, "mutation($id: ID!) { revokeApiToken(id: $id) { revokedAt } }", { id: tokenId }));
    const revoked = await gql(victim.token, "mutation($id: ID!) { revokeApiToken(id: $id) { revokedAt } }", { id: tokenId });
    expect(revoked.data.revokeApiToken.revokedAt).toBeTruthy();
    const after = await gql(victim.token, "{ me { role } }");
    expect(after.status).toBe(401);
    expect(after.errors?.[0]?.message).toContain("unknown, revoked or expired");
  });
});

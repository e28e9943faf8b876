import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { recomputeDirty } from "../src/domain/forecast/pipeline.js";
import { buildArcs, expireMatches, leadTimeDays, MAX_DISTANCE_KM, recomputeMatches, requestUrgency } from "../src/domain/matching/matching.js";
import { relayOutbox, type RelayedJob } from "../src/domain/outbox.js";
import { submitReports } from "../src/domain/reports/ingest.js";
import { dateOfDay, dayNumber } from "../src/domain/reports/validate.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { makeUser, seedWorld, type TestUser, type World } from "./helpers/fixtures.js";
import { graphqlClient } from "./helpers/graphql.js";

let t: TestDatabase;
let world: World;
let maker: TestUser;
let hospital: TestUser;
let supplier: TestUser;
let procurement: TestUser;
let gql: ReturnType<typeof graphqlClient>;
const lastDay = dayNumber(new Date(Date.now() - 86_400_000).toISOString().slice(0, 10));
const day = (offset: number) => dateOfDay(lastDay + offset);
let n95: number;
let meltblown: number;
const jobs: RelayedJob[] = [];

async function submit(user: TestUser, rows: Record<string, unknown>[]) {
  const r = await submitReports(t.db, user.actor, rows as never, { backfillDays: 400 });
  expect(r.rejected).toEqual([]);
}
const matches = (where = sql`true`) =>
  t.db.execute<{ id: string; kind: string; from: string; to_region: string; to_site: string | null; request_id: string | null; quantity: number; status: string }>(
    sql`select m.id, m.kind, fs.code as from, r.code as to_region, ts.code as to_site, m.request_id, m.quantity, m.status
        from match m join site fs on fs.id = m.from_site_id join region r on r.id = m.to_region_id left join site ts on ts.id = m.to_site_id
        where ${where} order by m.created_at, m.id`,
    "objects",
  );

beforeAll(async () => {
  t = await createTestDatabase();
  world = await seedWorld(t.db);
  maker = await makeUser(t.db, "REPORTER", { organizationId: world.maker.id });
  hospital = await makeUser(t.db, "REPORTER", { organizationId: world.hospital.id });
  supplier = await makeUser(t.db, "REPORTER", { organizationId: world.supplier.id });
  procurement = await makeUser(t.db, "PROCUREMENT", { organizationId: world.hospital.id });
  gql = graphqlClient(t.db);
  n95 = (await t.db.query.productTable.findFirst({ where: { code: "MASK-N95" } }))!.id;
  meltblown = (await t.db.query.productTable.findFirst({ where: { code: "MELTBLOWN-PP" } }))!.id;
  // Xihu's hospital uses 100 N95 a day and holds 200; Shangcheng's plant holds 5,000, makes 1,000 a
  // day of a possible 1,500, and has 10 kg of melt-blown (2.5 days); Nanjing's mill holds 500 kg.
  await submit(hospital, Array.from({ length: 30 }, (_, i) => ({ siteCode: "HZ-XIHU-H1", productCode: "MASK-N95", date: day(i - 29), onHand: 200, consumed: 100, received: 100 })));
  await submit(maker, [
    ...Array.from({ length: 30 }, (_, i) => ({ siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: day(i - 29), onHand: 5000, produced: 1000, capacityPerDay: 1500, shipped: 1000 })),
    { siteCode: "HZ-MASK-1", productCode: "MELTBLOWN-PP", date: day(0), onHand: 10 },
  ]);
  await submit(supplier, [{ siteCode: "NJ-NW-1", productCode: "MELTBLOWN-PP", date: day(0), onHand: 500 }]);
  await relayOutbox(t.db, async () => {});
  await recomputeDirty(t.db, { trigger: "test" });
  await relayOutbox(t.db, async (j) => void jobs.push(...j));
});
afterAll(async () => t?.drop());

describe("arcs", () => {
  const at = (lat: number, lon: number, siteId = "s") => ({ regionId: 1, path: "/1/", lat, lon, siteId, available: 1 });
  const need = (maxLeadDays?: number) => ({ regionId: 2, path: "/2/", lat: 30, lon: 120, need: 1, urgency: 1, requestId: null, toSiteId: null, maxLeadDays });
  it("forbids suppliers beyond the maximum distance, and beyond a request's date by lead time", () => {
    // About 333 km (lead time 2 days), 667 km (3 days) and 2,224 km (too far) north of the need.
    const suppliers = [at(33, 120, "near"), at(36, 120, "mid"), at(50, 120, "far")];
    expect(leadTimeDays(333)).toBe(2);
    const open = buildArcs(suppliers, [need()]);
    expect([...open.from]).toEqual([0, 1]);
    expect(open.cost[1]).toBeLessThanOrEqual(MAX_DISTANCE_KM);
    expect([...buildArcs(suppliers, [need(2)]).from]).toEqual([0]);
    expect([...buildArcs(suppliers, [need(3)]).from]).toEqual([0, 1]);
  });
});

describe("matching jobs", () => {
  it("are asked for by the forecasts' outbox event: downstream per product, upstream for its inputs, debounced ids", () => {
    const matching = jobs.filter((j) => j.name === "matching.recompute");
    expect(matching.map((j) => j.data)).toContainEqual({ productId: n95, kind: "DOWNSTREAM" });
    expect(matching.map((j) => j.data)).toContainEqual({ productId: meltblown, kind: "UPSTREAM" });
    for (const j of matching) expect(j.jobId).toMatch(/^matching-(downstream|upstream)-\d+-\d+$/);
  });
});

describe("downstream", () => {
  it("proposes the plant's stock for Xihu's shortage, and a second run changes nothing", async () => {
    const run = (await recomputeMatches(t.db, n95, "DOWNSTREAM", "test"))!;
    expect(run).toMatchObject({ demands: 1, suppliers: 1, proposals: 1, inserted: 1 });
    const [m] = await matches(sql`m.kind = 'DOWNSTREAM'`);
    // 28 days x 100 minus the 200 on hand.
    expect(m).toMatchObject({ from: "HZ-MASK-1", to_region: "330106", to_site: null, status: "PROPOSED" });
    expect(m!.quantity).toBeCloseTo(2600, 3);
    const again = (await recomputeMatches(t.db, n95, "DOWNSTREAM", "test"))!;
    expect(again).toMatchObject({ inserted: 0, updated: 0, expired: 0, proposals: 1 });
    expect(await matches(sql`m.kind = 'DOWNSTREAM'`)).toEqual([m]);
    // Two runs at once take turns (the second waits for the first) and leave the same proposal.
    const both = await Promise.all([recomputeMatches(t.db, n95, "DOWNSTREAM", "test"), recomputeMatches(t.db, n95, "DOWNSTREAM", "test")]);
    expect(both.map((r) => r.inserted + r.updated + r.expired)).toEqual([0, 0]);
    expect(await matches(sql`m.kind = 'DOWNSTREAM'`)).toEqual([m]);
  });

  it("commits accepted quantities: a planner accepts, and the next run offers nothing more for it", async () => {
    const planner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330000" });
    const [m] = await matches(sql`m.kind = 'DOWNSTREAM' and m.status = 'PROPOSED'`);
    const { data } = await gql(planner.token, "{ matches(status: PROPOSED) { edges { node { id quantity supplier { siteCode organization } toRegion { code } } } } }");
    const node = data.matches.edges[0].node;
    expect(node.supplier).toEqual({ siteCode: "HZ-MASK-1", organization: "Hangzhou Mask Works" });
    const r = await gql(planner.token, "mutation($id: ID!) { respondToMatch(id: $id, accept: true) { status respondedAt } }", { id: node.id });
    expect(r.errors).toBeUndefined();
    expect(r.data.respondToMatch.status).toBe("ACCEPTED");
    const run = (await recomputeMatches(t.db, n95, "DOWNSTREAM", "test"))!;
    expect(run.proposals).toBe(0);
    expect((await matches(sql`m.id = ${m!.id}`))[0]!.status).toBe("ACCEPTED");
    // Delivered: accepting again marks it fulfilled.
    const done = await gql(planner.token, "mutation($id: ID!) { respondToMatch(id: $id, accept: true) { status } }", { id: node.id });
    expect(done.data.respondToMatch.status).toBe("FULFILLED");
    const late = await gql(planner.token, "mutation($id: ID!) { respondToMatch(id: $id, accept: false, reason: \"no need\") { status } }", { id: node.id });
    expect(late.errors?.[0]?.message).toMatch(/match is FULFILLED: it can no longer be declined/);
  });

  it("matches a procurement request, which its organization sees and declines with a reason", async () => {
    const r = await gql(procurement.token, `mutation { postRequest(input: { siteCode: "HZ-XIHU-H1", productCode: "MASK-N95", quantity: 300, neededBy: "${day(4)}" }) { id } }`);
    expect(r.errors).toBeUndefined();
    const run = (await recomputeMatches(t.db, n95, "DOWNSTREAM", "test"))!;
    expect(run.proposals).toBe(1);
    const list = await gql(procurement.token, "{ matches(status: PROPOSED) { edges { node { id quantity urgency request { id } recipient { siteCode } } } } }");
    expect(list.errors).toBeUndefined();
    const node = list.data.matches.edges[0].node;
    expect(node.request.id).toBe(r.data.postRequest.id);
    expect(node.recipient.siteCode).toBe("HZ-XIHU-H1");
    expect(node.quantity).toBeCloseTo(300, 3);
    expect(node.urgency).toBe(requestUrgency(5, null) >= 8 ? node.urgency : 8);
    const noReason = await gql(procurement.token, "mutation($id: ID!) { respondToMatch(id: $id, accept: false) { status } }", { id: node.id });
    expect(noReason.errors?.[0]?.message).toMatch(/say why the match is declined/);
    const declined = await gql(procurement.token, "mutation($id: ID!) { respondToMatch(id: $id, accept: false, reason: \"no longer needed\") { status reason } }", { id: node.id });
    expect(declined.data.respondToMatch).toEqual({ status: "DECLINED", reason: "no longer needed" });
    const [audit] = await t.db.execute<{ action: string }>(sql`select action from audit_log where entity_type = 'match' order by id desc limit 1`, "objects");
    expect(audit!.action).toBe("match.declined");
  });
});

describe("upstream", () => {
  it("proposes the mill's melt-blown to the plant that lacks it", async () => {
    const run = (await recomputeMatches(t.db, meltblown, "UPSTREAM", "test"))!;
    expect(run.proposals).toBe(1);
    const [m] = await matches(sql`m.kind = 'UPSTREAM'`);
    // 1,000 masks a day x 4 g x 7 days lead time = 28 kg needed, 10 kg held.
    expect(m).toMatchObject({ from: "NJ-NW-1", to_region: "330102", to_site: "HZ-MASK-1", status: "PROPOSED" });
    expect(m!.quantity).toBeCloseTo(18, 6);
  });

  it("is visible to the manufacturer and the mill, not to others", async () => {
    const q = "{ matches(productCode: \"MELTBLOWN-PP\") { edges { node { kind quantity } } } }";
    for (const user of [maker, supplier]) expect((await gql(user.token, q)).data.matches.edges).toHaveLength(1);
    expect((await gql(hospital.token, q)).data.matches.edges).toHaveLength(0);
    const county = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330106" });
    expect((await gql(county.token, q)).data.matches.edges).toHaveLength(0);
    const [m] = await matches(sql`m.kind = 'UPSTREAM'`);
    const { data } = await gql(maker.token, "{ matches(productCode: \"MELTBLOWN-PP\") { edges { node { id } } } }");
    const hidden = await gql(county.token, "query($id: ID!) { node(id: $id) { id } }", { id: data.matches.edges[0].node.id });
    expect(hidden.errors?.[0]?.message).toMatch(/not found, or not visible/);
    const refused = await gql(hospital.token, "mutation($id: ID!) { respondToMatch(id: $id, accept: true) { status } }", { id: data.matches.edges[0].node.id });
    expect(refused.errors?.[0]?.message).toMatch(/not found, or not visible/);
    expect((await matches(sql`m.id = ${m!.id}`))[0]!.status).toBe("PROPOSED");
  });
});

describe("bottlenecks and expiry", () => {
  it("shows planners which input limits which product where", async () => {
    const planner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330000" });
    const r = await gql(planner.token, '{ bottlenecks(regionCode: "330000", productCode: "MASK-N95") { region { code } input { code } lostQuantity inputShort } }');
    expect(r.errors).toBeUndefined();
    const rows = r.data.bottlenecks;
    expect(rows.map((b: any) => b.region.code).sort()).toEqual(["330000", "330100", "330102"]);
    // 28 days x 1,000 planned, 2,500 possible from 10 kg at 4 g.
    for (const b of rows) {
      expect(b.input.code).toBe("MELTBLOWN-PP");
      expect(b.lostQuantity).toBeCloseTo(25_500, 3);
      expect(b.inputShort).toBeCloseTo(102, 3);
    }
    const outside = await gql(planner.token, '{ bottlenecks(regionCode: "320000") { lostQuantity } }');
    expect(outside.errors?.[0]?.message).toMatch(/not visible/);
  });

  it("expires proposals nobody answered", async () => {
    await t.db.execute(sql`update match set created_at = now() - interval '8 days' where status = 'PROPOSED'`);
    expect(await expireMatches(t.db)).toBe(1);
    expect((await matches(sql`m.kind = 'UPSTREAM'`))[0]!.status).toBe("EXPIRED");
    expect(await expireMatches(t.db)).toBe(0);
  });
});

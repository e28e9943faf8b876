import { sql } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { acknowledgeAlert, resolveAlert } from "../src/domain/alerts/alerts.js";
import { reconcileAlerts, type AlertCondition } from "../src/domain/alerts/engine.js";
import { evaluateMatchAlerts, evaluateReportAlerts, evaluateShortageAlerts } from "../src/domain/alerts/rules.js";
import { recomputeDirty } from "../src/domain/forecast/pipeline.js";
import { recomputeMatches } from "../src/domain/matching/matching.js";
import { relayOutbox, type RelayedJob } from "../src/domain/outbox.js";
import { submitReports } from "../src/domain/reports/ingest.js";
import { flagOutliers } from "../src/domain/reports/outliers.js";
import { dateOfDay, dayNumber } from "../src/domain/reports/validate.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { makeUser, seedWorld, type TestUser, type World } from "./helpers/fixtures.js";
import { graphqlClient } from "./helpers/graphql.js";

let t: TestDatabase;
let world: World;
let hospital: TestUser;
let maker: TestUser;
let supplier: TestUser;
let cityPlanner: TestUser;
let countyPlanner: TestUser;
let otherProvince: TestUser;
let admin: TestUser;
let gql: ReturnType<typeof graphqlClient>;
let gloves: number;
let xihu: number;
const lastDay = dayNumber(new Date(Date.now() - 86_400_000).toISOString().slice(0, 10));
const day = (offset: number) => dateOfDay(lastDay + offset);

async function submit(user: TestUser, rows: Record<string, unknown>[]) {
  const r = await submitReports(t.db, user.actor, rows as never, { backfillDays: 400 });
  expect(r.rejected).toEqual([]);
  // The relay keeps current inventory, which the rules read, as it does before their jobs run.
  while ((await relayOutbox(t.db, async () => {})).events > 0);
  return r;
}
/** What the relay and the forecast job would do, in order, without a queue. */
async function forecast(productId: number) {
  const jobs: RelayedJob[] = [];
  await relayOutbox(t.db, async (j) => void jobs.push(...j));
  await recomputeDirty(t.db, { trigger: "test" });
  return evaluateShortageAlerts(t.db, productId);
}
const alertRows = (kind: string) =>
  t.db.execute<{ id: string; dedupe_key: string; status: string; severity: string; stage: number; peak_stage: number; message: string; details: any; resolution: string | null }>(
    sql`select id, dedupe_key, status, severity, stage, peak_stage, message, details, resolution from alert where kind = ${kind} order by raised_at, id`,
    "objects",
  );
const events = (alertId: string) =>
  t.db.execute<{ type: string; severity: string }>(sql`select type, severity from alert_event where alert_id = ${alertId}::uuid order by id`, "objects");
const dispatchJobs = () =>
  t.db.execute<{ n: number }>(
    sql`select count(*)::int as n from outbox, jsonb_array_elements(payload->'jobs') j where topic = 'jobs.requested' and j->>'name' = 'alerts.dispatch'`,
    "objects",
  );

beforeAll(async () => {
  t = await createTestDatabase();
  world = await seedWorld(t.db);
  hospital = await makeUser(t.db, "REPORTER", { organizationId: world.hospital.id });
  maker = await makeUser(t.db, "REPORTER", { organizationId: world.maker.id });
  supplier = await makeUser(t.db, "REPORTER", { organizationId: world.supplier.id });
  cityPlanner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330100" });
  countyPlanner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330102" });
  otherProvince = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "320000" });
  admin = await makeUser(t.db, "ADMIN");
  gql = graphqlClient(t.db);
  gloves = (await t.db.query.productTable.findFirst({ where: { code: "GLOVES-NITRILE" } }))!.id;
  xihu = (await t.db.query.regionTable.findFirst({ where: { code: "330106" } }))!.id;
});
afterAll(async () => t?.drop());

describe("the engine: one alert per condition", () => {
  beforeEach(async () => {
    await t.db.execute(sql`delete from alert; delete from outbox`);
  });
  const cond = (stage: number, extra: Partial<AlertCondition> = {}): AlertCondition => ({
    kind: "SHORTAGE_RISK", dedupeKey: "SHORTAGE_RISK:test", stage, severity: (["BLUE", "YELLOW", "ORANGE", "RED", "RED"] as const)[stage]!,
    regionId: xihu, productId: gloves, message: `stage ${stage}`, details: { stage }, ...extra,
  });
  const run = (conditions: AlertCondition[]) => t.db.transaction((tx) => reconcileAlerts(tx, { kind: "SHORTAGE_RISK", productId: gloves }, conditions));

  it("raises once, escalates past the worst stage only, keeps the band open and resolves when it clears", async () => {
    expect(await run([cond(1)])).toMatchObject({ raised: 1, escalated: 0, updated: 0, resolved: 0 });
    expect(await run([cond(1)])).toMatchObject({ raised: 0, escalated: 0, updated: 0, resolved: 0, eventIds: [] });
    expect(await run([cond(2)])).toMatchObject({ escalated: 1 });
    // Flapping between 1 and 2 after reaching 2: updates in place, notifies nobody.
    for (const stage of [1, 2, 1, 2]) expect(await run([cond(stage)])).toMatchObject({ raised: 0, escalated: 0, updated: 1 });
    expect(await run([cond(0)])).toMatchObject({ updated: 1, resolved: 0 });
    expect((await alertRows("SHORTAGE_RISK"))[0]).toMatchObject({ status: "OPEN", stage: 0, peak_stage: 2, severity: "BLUE" });
    expect(await run([cond(3)])).toMatchObject({ escalated: 1 });
    expect(await run([])).toMatchObject({ resolved: 1 });
    const [a] = await alertRows("SHORTAGE_RISK");
    expect(a).toMatchObject({ status: "RESOLVED", resolution: "CLEARED" });
    expect((await events(a!.id)).map((e) => e.type)).toEqual(["RAISED", "ESCALATED", "ESCALATED", "RESOLVED"]);
    // Every event asked for its dispatch, in the same transaction.
    expect((await dispatchJobs())[0]!.n).toBe(4);
    // A stage-0 condition never raises one.
    expect(await run([cond(0)])).toMatchObject({ raised: 0 });
    expect(await alertRows("SHORTAGE_RISK")).toHaveLength(1);
  });

  it("reopens an acknowledged alert that gets worse, and does not raise again what was resolved by hand until it clears or worsens", async () => {
    await run([cond(2)]);
    const [a] = await alertRows("SHORTAGE_RISK");
    await acknowledgeAlert(t.db, cityPlanner.actor, a!.id);
    await acknowledgeAlert(t.db, cityPlanner.actor, a!.id); // twice is harmless
    expect((await alertRows("SHORTAGE_RISK"))[0]!.status).toBe("ACKNOWLEDGED");
    await run([cond(3)]);
    expect((await alertRows("SHORTAGE_RISK"))[0]!.status).toBe("OPEN");

    await resolveAlert(t.db, cityPlanner.actor, a!.id, "stock is on its way");
    expect(await run([cond(3)])).toMatchObject({ raised: 0, suppressed: 1 });
    expect(await run([cond(4)])).toMatchObject({ raised: 1 });
    await run([]); // clears the new one
    const rows = await alertRows("SHORTAGE_RISK");
    expect(rows.map((r) => [r.status, r.resolution])).toEqual([["RESOLVED", "MANUAL"], ["RESOLVED", "CLEARED"]]);
    // Once cleared, the condition coming back is raised as new.
    await resolveAlert(t.db, cityPlanner.actor, (await run([cond(1)])) && (await alertRows("SHORTAGE_RISK"))[2]!.id);
    await run([]);
    expect(await run([cond(1)])).toMatchObject({ raised: 1 });
  });

  it("refuses what is not the viewer's to answer, and what is already resolved, with messages that say why", async () => {
    await run([cond(1)]);
    const [a] = await alertRows("SHORTAGE_RISK");
    await expect(acknowledgeAlert(t.db, otherProvince.actor, a!.id)).rejects.toThrow(/not found, or not visible to you/);
    await expect(acknowledgeAlert(t.db, countyPlanner.actor, a!.id)).rejects.toThrow(/not found, or not visible to you/);
    await expect(acknowledgeAlert(t.db, maker.actor, a!.id)).rejects.toThrow(/not found, or not visible to you/);
    await expect(resolveAlert(t.db, cityPlanner.actor, a!.id, "x".repeat(1001))).rejects.toThrow(/note is too long \(1001 characters\)/);
    await resolveAlert(t.db, admin.actor, a!.id);
    await expect(resolveAlert(t.db, cityPlanner.actor, a!.id)).rejects.toThrow(/already resolved/);
    await expect(acknowledgeAlert(t.db, cityPlanner.actor, a!.id)).rejects.toThrow(/already resolved; nothing to acknowledge/);
    const audit = await t.db.execute<{ action: string }>(sql`select action from audit_log where entity_type = 'alert' order by id`, "objects");
    expect(audit.map((r) => r.action)).toContain("alert.resolve");
  });

  it("refuses conditions outside the run's scope instead of resolving the wrong alerts", async () => {
    await expect(run([cond(1, { productId: gloves + 1 })])).rejects.toThrow(/outside the scope/);
    await expect(run([cond(1), cond(2)])).rejects.toThrow(/appears twice/);
    expect(await alertRows("SHORTAGE_RISK")).toHaveLength(0);
  });
});

describe("SHORTAGE_RISK from the forecasts", () => {
  beforeAll(async () => {
    await t.db.execute(sql`delete from alert; delete from outbox`);
  });
  const history = (lastOnHand: number) =>
    Array.from({ length: 30 }, (_, i) => ({ siteCode: "HZ-XIHU-H1", productCode: "GLOVES-NITRILE", date: day(i - 29), onHand: i === 29 ? lastOnHand : 5000, consumed: 100, received: 100 }));

  it("turns a region RED with one alert, escalates it when the stock runs out, and resolves it when stock comes back", async () => {
    await submit(hospital, history(5000));
    expect(await forecast(gloves)).toMatchObject({ raised: 0 });

    await submit(hospital, [history(250).at(-1)!]);
    expect(await forecast(gloves)).toMatchObject({ raised: 1, escalated: 0 });
    // One hospital: the county's alert only, not one per level of the tree.
    let [a] = await alertRows("SHORTAGE_RISK");
    expect(a).toMatchObject({ dedupe_key: `SHORTAGE_RISK:region:${xihu}:product:${gloves}`, severity: "RED", stage: 3, status: "OPEN" });
    expect(a!.details).toMatchObject({ regionCode: "330106", productCode: "GLOVES-NITRILE", riskLevel: "RED", onHand: 250, daysToStockout: 2.5 });
    expect(a!.message).toMatch(/西湖区 \(330106\): GLOVES-NITRILE runs out in about 2\.5 days .*250 on hand, 100 a day of demand; risk RED/);
    // Rerunning on the same data changes nothing.
    expect(await forecast(gloves)).toMatchObject({ raised: 0, escalated: 0, updated: 0, resolved: 0 });

    await submit(hospital, [history(0).at(-1)!]);
    expect(await forecast(gloves)).toMatchObject({ raised: 0, escalated: 1 });
    [a] = await alertRows("SHORTAGE_RISK");
    expect(a).toMatchObject({ stage: 4, severity: "RED" });
    expect(a!.message).toMatch(/is out of GLOVES-NITRILE/);

    await submit(hospital, [history(20000).at(-1)!]);
    expect(await forecast(gloves)).toMatchObject({ resolved: 1 });
    [a] = await alertRows("SHORTAGE_RISK");
    expect(a).toMatchObject({ status: "RESOLVED", resolution: "CLEARED" });
    expect((await events(a!.id)).map((e) => `${e.type}:${e.severity}`)).toEqual(["RAISED:RED", "ESCALATED:RED", "RESOLVED:RED"]);
  });

  it("shows alerts to the planners above the region and nobody else, through GraphQL", async () => {
    await submit(hospital, [history(250).at(-1)!]);
    await forecast(gloves);
    const q = `{ alerts(status: OPEN) { edges { node { id kind severity status message details region { code } product { code } raisedAt } } } }`;
    const seen = async (u: TestUser) => (await gql(u.token, q)).data.alerts.edges.map((e: any) => e.node);
    const [node] = await seen(cityPlanner);
    expect(node).toMatchObject({ kind: "SHORTAGE_RISK", severity: "RED", status: "OPEN", region: { code: "330106" }, product: { code: "GLOVES-NITRILE" } });
    expect(await seen(admin)).toHaveLength(1);
    for (const other of [countyPlanner, otherProvince, maker, supplier]) expect(await seen(other)).toEqual([]);
    // The region filter narrows to a subtree.
    expect((await gql(cityPlanner.token, `{ alerts(regionCode: "330102") { edges { node { id } } } }`)).data.alerts.edges).toEqual([]);
    const bad = await gql(cityPlanner.token, `{ alerts(regionCode: "999999") { edges { node { id } } } }`);
    expect(bad.errors?.[0]?.message).toMatch(/region 999999: not found; see regions \{ code \}/);
    // node() gives the same answer for an alert out of sight as for a missing one.
    const other = await gql(otherProvince.token, `query($id: ID!) { node(id: $id) { id } }`, { id: node.id });
    expect(other.errors?.[0]?.message).toMatch(/not found, or not visible to you/);

    const ack = await gql(cityPlanner.token, `mutation($id: ID!) { acknowledgeAlert(id: $id) { status acknowledgedAt } }`, { id: node.id });
    expect(ack.data.acknowledgeAlert).toMatchObject({ status: "ACKNOWLEDGED" });
    const refused = await gql(countyPlanner.token, `mutation($id: ID!) { resolveAlert(id: $id) { status } }`, { id: node.id });
    expect(refused.errors?.[0]?.message).toMatch(/not found, or not visible to you/);
    const resolved = await gql(cityPlanner.token, `mutation($id: ID!) { resolveAlert(id: $id, note: "gloves sent from the reserve") { status resolution resolveNote } }`, { id: node.id });
    expect(resolved.data.resolveAlert).toEqual({ status: "RESOLVED", resolution: "MANUAL", resolveNote: "gloves sent from the reserve" });
  });
});

describe("alerts from reports and matches", () => {
  beforeAll(async () => {
    await t.db.execute(sql`delete from alert; delete from outbox`);
  });

  it("warns a hospital whose own stock lasts less than a day, and clears when stock arrives", async () => {
    const rows = Array.from({ length: 7 }, (_, i) => ({ siteCode: "HZ-XIHU-H1", productCode: "MASK-SURGICAL", date: day(i - 6), onHand: 1000 - 140 * i, consumed: 140 }));
    let r = await submit(hospital, rows);
    expect((await evaluateReportAlerts(t.db, r.reportIds)).stockout).toMatchObject({ raised: 0 });
    r = await submit(hospital, [{ siteCode: "HZ-XIHU-H1", productCode: "MASK-SURGICAL", date: day(0), onHand: 100, consumed: 60 }]);
    expect((await evaluateReportAlerts(t.db, r.reportIds)).stockout).toMatchObject({ raised: 1 });
    const [a] = await alertRows("STOCKOUT_IMMINENT");
    expect(a).toMatchObject({ severity: "RED", stage: 1 });
    expect(a!.message).toMatch(/Site HZ-XIHU-H1 has 100 .* of MASK-SURGICAL, less than 0\.8 days at about 128\.6 .* a day/);
    const [row] = await t.db.execute<{ organization_id: string }>(sql`select organization_id from alert where id = ${a!.id}::uuid`, "objects");
    expect(row!.organization_id).toBe(world.hospital.id);
    // The hospital's own users see it; another organization's do not.
    const q = `{ alerts(kind: STOCKOUT_IMMINENT) { edges { node { id } } } }`;
    expect((await gql(hospital.token, q)).data.alerts.edges).toHaveLength(1);
    expect((await gql(maker.token, q)).data.alerts.edges).toHaveLength(0);

    r = await submit(hospital, [{ siteCode: "HZ-XIHU-H1", productCode: "MASK-SURGICAL", date: day(0), onHand: 2000, consumed: 60, received: 1960 }]);
    expect((await evaluateReportAlerts(t.db, r.reportIds)).stockout).toMatchObject({ resolved: 1 });
  });

  it("raises DATA_QUALITY for doubtful reports, and resolves it once they are corrected", async () => {
    const rows = Array.from({ length: 20 }, (_, i) => ({ siteCode: "HZ-XIHU-H1", productCode: "GOGGLES", date: day(i - 19), onHand: 500, consumed: 10, received: 10 }));
    await submit(hospital, rows);
    // A typo: 10,000 handed out in a day, and a stock that does not balance.
    let r = await submit(hospital, [{ siteCode: "HZ-XIHU-H1", productCode: "GOGGLES", date: day(0), onHand: 500, consumed: 10000, received: 10 }]);
    const ids = r.reportIds;
    await flagOutliers(t.db, ids);
    expect((await evaluateReportAlerts(t.db, ids)).quality).toMatchObject({ raised: 1 });
    const a = (await alertRows("DATA_QUALITY")).find((x) => x.details.productCode === "GOGGLES");
    expect(a!.message).toMatch(new RegExp(`Site HZ-XIHU-H1, GOGGLES: 1 report of the last 7 days looks doubtful \\(${day(0)}: STOCK_BALANCE_MISMATCH, OUTLIER\\)`));
    expect(a!.message).toMatch(/send corrections with submitReports/);

    r = await submit(hospital, [{ siteCode: "HZ-XIHU-H1", productCode: "GOGGLES", date: day(0), onHand: 500, consumed: 10, received: 10 }]);
    const fixed = r.reportIds;
    await flagOutliers(t.db, fixed);
    expect((await evaluateReportAlerts(t.db, fixed)).quality).toMatchObject({ resolved: 1 });
  });

  it("tells the manufacturer short of an input and proposes supply with SUPPLY_MATCH, resolved when answered", async () => {
    const meltblown = (await t.db.query.productTable.findFirst({ where: { code: "MELTBLOWN-PP" } }))!.id;
    await submit(maker, [
      ...Array.from({ length: 10 }, (_, i) => ({ siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: day(i - 9), onHand: 5000, produced: 1000, capacityPerDay: 1500, shipped: 1000 })),
      { siteCode: "HZ-MASK-1", productCode: "MELTBLOWN-PP", date: day(0), onHand: 10 },
    ]);
    await submit(supplier, [{ siteCode: "NJ-NW-1", productCode: "MELTBLOWN-PP", date: day(0), onHand: 500 }]);
    await recomputeMatches(t.db, meltblown, "UPSTREAM", "test");
    const { supplyMatch, upstream } = await evaluateMatchAlerts(t.db, meltblown, "UPSTREAM");
    expect(supplyMatch).toMatchObject({ raised: 1 });
    expect(upstream).toMatchObject({ raised: 1 });
    const [short] = await alertRows("UPSTREAM_INPUT_SHORTAGE");
    // 1,000 N95 a day at 4 g each: 4 kg a day; 10 kg is 2.5 days: RED; 18 kg more for a week.
    expect(short).toMatchObject({ severity: "RED", stage: 2 });
    expect(short!.details).toMatchObject({ siteCode: "HZ-MASK-1", inputCode: "MELTBLOWN-PP", onHand: 10, dailyUse: 4, daysLeft: 2.5, missingForWeek: 18 });
    const [offer] = await alertRows("SUPPLY_MATCH");
    expect(offer!.message).toMatch(/Nanjing Nonwovens \(site NJ-NW-1\) can ship 18 kg of MELTBLOWN-PP to site HZ-MASK-1 in 上城区 \(330102\)/);
    // The manufacturer sees both; the supplier and the planner of another province see neither.
    const q = `{ alerts { edges { node { kind } } } }`;
    expect((await gql(maker.token, q)).data.alerts.edges.map((e: any) => e.node.kind).sort()).toEqual(["SUPPLY_MATCH", "UPSTREAM_INPUT_SHORTAGE"]);
    expect((await gql(otherProvince.token, q)).data.alerts.edges).toEqual([]);

    const [m] = await t.db.execute<{ id: string }>(sql`select id from match where status = 'PROPOSED' and product_id = ${meltblown}`, "objects");
    await t.db.execute(sql`update match set status = 'ACCEPTED', responded_at = now() where id = ${m!.id}::uuid`);
    await recomputeMatches(t.db, meltblown, "UPSTREAM", "test");
    const after = await evaluateMatchAlerts(t.db, meltblown, "UPSTREAM");
    expect(after.supplyMatch).toMatchObject({ resolved: 1 });
    // The accepted 18 kg cover the week: the shortage is in the band now (2.5 days held), still open, not raised again.
    expect(after.upstream).toMatchObject({ raised: 0, resolved: 0 });
  });
});

import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DEMAND_CHANGED_TOPIC,
  activeScenarios,
  cancelRequest,
  clearDemandScenario,
  openRequestsByRegion,
  postRequest,
  setDemandScenario,
  type DemandScenarioInput,
  type PostRequestInput,
} from "../src/domain/demand.js";
import { localToday } from "../src/domain/reports/validate.js";
import { createPgliteTestDatabase, createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { makeUser, seedWorld, setupActor, type TestUser, type World } from "./helpers/fixtures.js";
import { graphqlClient } from "./helpers/graphql.js";

type UserName = "admin" | "provincePlanner" | "countyPlanner" | "neighbourPlanner" | "makerReporter" | "hospitalProcurement" | "makerProcurement";

let t: TestDatabase;
let world: World;
let gql: ReturnType<typeof graphqlClient>;
const users = {} as Record<UserName, TestUser>;
const regionId = {} as Record<string, number>;
const productId = {} as Record<string, number>;

beforeAll(async () => {
  t = await createTestDatabase();
  world = await seedWorld(t.db);
  users.admin = await makeUser(t.db, "ADMIN");
  users.provincePlanner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330000" });
  users.countyPlanner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330102" });
  users.neighbourPlanner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330106" });
  users.makerReporter = await makeUser(t.db, "REPORTER", { organizationId: world.maker.id });
  users.hospitalProcurement = await makeUser(t.db, "PROCUREMENT", { organizationId: world.hospital.id });
  users.makerProcurement = await makeUser(t.db, "PROCUREMENT", { organizationId: world.maker.id });
  for (const r of await rows<{ id: number; code: string }>(sql`select id, code from region`)) regionId[r.code] = r.id;
  for (const p of await rows<{ id: number; code: string }>(sql`select id, code from product`)) productId[p.code] = p.id;
  gql = graphqlClient(t.db);
});
afterAll(async () => t?.drop());

const rows = <T extends Record<string, unknown>>(query: ReturnType<typeof sql>) => t.db.execute<T>(query, "objects") as Promise<T[]>;

/** Rows of every table these services write, to prove that a refused call wrote nothing. */
async function counts() {
  const [c] = await rows<{ scenarios: number; requests: number; audit: number; outbox: number; closed: number; superseded: number }>(sql`select
    (select count(*)::int from demand_scenario) as scenarios, (select count(*)::int from procurement_request) as requests,
    (select count(*)::int from audit_log) as audit, (select count(*)::int from outbox) as outbox,
    (select count(*)::int from procurement_request where status <> 'OPEN') as closed,
    (select count(*)::int from demand_scenario where superseded_at is not null) as superseded`);
  return c!;
}

async function refused(call: () => Promise<unknown>, code: string, message: string | RegExp) {
  const before = await counts();
  const error = await call().then(
    () => null,
    (e: unknown) => e as { code?: string; message: string },
  );
  expect(error, "the call should have been refused").not.toBeNull();
  expect(error!.code).toBe(code);
  if (typeof message === "string") expect(error!.message).toContain(message);
  else expect(error!.message).toMatch(message);
  expect(await counts()).toEqual(before);
}

const lastOutbox = async () =>
  (await rows<{ topic: string; payload: unknown; xmin: string }>(sql`select topic, payload, xmin::text from outbox order by id desc limit 1`))[0]!;
const lastAudit = async () =>
  (await rows<{ action: string; entity_id: string; before: any; after: any; actor_user_id: string; xmin: string }>(
    sql`select action, entity_id, before, after, actor_user_id, xmin::text from audit_log order by id desc limit 1`,
  ))[0]!;

const scenario = (over: Partial<DemandScenarioInput> = {}): DemandScenarioInput => ({
  regionCode: "330102",
  productCode: "MASK-N95",
  casesPerDay: 120,
  usagePerCasePerDay: 1,
  ...over,
});

describe("setDemandScenario", () => {
  it("lets a county planner set a scenario for their county, with audit and outbox rows written in the same transaction", async () => {
    const before = await counts();
    const row = await setDemandScenario(t.db, users.countyPlanner.actor, scenario({ productCode: "mask-n95", usagePerCasePerDay: 0.5, unit: "Box", note: "ICU surge" }));
    expect(row).toMatchObject({
      regionId: regionId["330102"],
      productId: productId["MASK-N95"],
      casesPerDay: 120,
      usagePerCasePerDay: 10, // half a box of 20
      mode: "OVERRIDE",
      startsOn: null,
      endsOn: null,
      note: "ICU surge",
      createdBy: users.countyPlanner.viewer.userId,
      supersededAt: null,
    });
    expect(await counts()).toEqual({ ...before, scenarios: before.scenarios + 1, audit: before.audit + 1, outbox: before.outbox + 1 });

    const outbox = await lastOutbox();
    expect(outbox.topic).toBe(DEMAND_CHANGED_TOPIC);
    // Ids only: no note, no user, nothing personal.
    expect(outbox.payload).toEqual({ pairs: [{ regionId: regionId["330102"], productId: productId["MASK-N95"] }] });
    const audit = await lastAudit();
    expect(audit).toMatchObject({ action: "demandScenario.set", entity_id: row.id, before: null, actor_user_id: users.countyPlanner.viewer.userId });
    expect(audit.after).toMatchObject({ id: row.id, casesPerDay: 120, usagePerCasePerDay: 10 });
    // Same transaction id on the scenario, its audit row and its outbox event: they commit together.
    const [own] = await rows<{ xmin: string }>(sql`select xmin::text from demand_scenario where id = ${row.id}`);
    expect(new Set([own!.xmin, audit.xmin, outbox.xmin]).size).toBe(1);
  });

  it("supersedes the active scenario of the pair: the old row stays with superseded_at, one stays active", async () => {
    const first = await setDemandScenario(t.db, users.countyPlanner.actor, scenario({ productCode: "GOWN-ISOLATION", casesPerDay: 10, usagePerCasePerDay: 1 }));
    const second = await setDemandScenario(
      t.db,
      users.provincePlanner.actor,
      scenario({ productCode: "GOWN-ISOLATION", casesPerDay: 30, usagePerCasePerDay: 2, mode: "ADD", startsOn: "2026-12-01", endsOn: "2026-12-31" }),
    );
    const stored = await rows<{ id: string; superseded: boolean; cases: number }>(
      sql`select id, superseded_at is not null as superseded, cases_per_day as cases from demand_scenario
          where region_id = ${regionId["330102"]} and product_id = ${productId["GOWN-ISOLATION"]} order by created_at, id`,
    );
    expect(stored).toEqual([
      { id: first.id, superseded: true, cases: 10 },
      { id: second.id, superseded: false, cases: 30 },
    ]);
    const audit = await lastAudit();
    expect(audit.before).toMatchObject({ id: first.id, casesPerDay: 10 });
    expect(audit.after).toMatchObject({ id: second.id, mode: "ADD", startsOn: "2026-12-01", endsOn: "2026-12-31" });
    const [superseded] = await rows<{ xmin: string }>(sql`select xmin::text from demand_scenario where id = ${first.id}`);
    const [inserted] = await rows<{ xmin: string }>(sql`select xmin::text from demand_scenario where id = ${second.id}`);
    expect(superseded!.xmin).toBe(inserted!.xmin);
  });

  it("keeps exactly one active scenario when many planners set the same pair at once", async () => {
    const results = await Promise.all(
      [1, 2, 3, 4, 5, 6].map((n) => setDemandScenario(t.db, users.admin.actor, scenario({ regionCode: "330106", productCode: "GLOVES-NITRILE", casesPerDay: n }))),
    );
    expect(results).toHaveLength(6);
    const [c] = await rows<{ total: number; active: number }>(
      sql`select count(*)::int as total, (count(*) filter (where superseded_at is null))::int as active from demand_scenario
          where region_id = ${regionId["330106"]} and product_id = ${productId["GLOVES-NITRILE"]}`,
    );
    expect(c).toEqual({ total: 6, active: 1 });
  });

  it("lets a province planner plan for any region below it, and an admin anywhere", async () => {
    await setDemandScenario(t.db, users.provincePlanner.actor, scenario({ regionCode: "330106", productCode: "GOGGLES" }));
    await setDemandScenario(t.db, users.provincePlanner.actor, scenario({ regionCode: "330000", productCode: "GOGGLES" }));
    await setDemandScenario(t.db, users.admin.actor, scenario({ regionCode: "320102", productCode: "GOGGLES" }));
  });

  it("refuses other roles, and planners outside their jurisdiction as if the region did not exist, writing nothing", async () => {
    for (const name of ["makerReporter", "hospitalProcurement"] as const) {
      await refused(() => setDemandScenario(t.db, users[name].actor, scenario()), "FORBIDDEN", /only PLANNER users .* and ADMIN users may set demand scenarios; your role is (REPORTER|PROCUREMENT)/);
    }
    await refused(() => setDemandScenario(t.db, setupActor, scenario()), "FORBIDDEN", "your role is none");
    const outside = "not found, or not visible to you: you may plan for 330102 and the regions below it";
    await refused(() => setDemandScenario(t.db, users.countyPlanner.actor, scenario({ regionCode: "330106" })), "NOT_FOUND", `region 330106 ${outside}`);
    await refused(() => setDemandScenario(t.db, users.countyPlanner.actor, scenario({ regionCode: "330100" })), "NOT_FOUND", `region 330100 ${outside}`);
    // An unknown code gets the same words, so codes outside the jurisdiction reveal nothing.
    await refused(() => setDemandScenario(t.db, users.countyPlanner.actor, scenario({ regionCode: "999999" })), "NOT_FOUND", `region 999999 ${outside}`);
    await refused(() => setDemandScenario(t.db, users.provincePlanner.actor, scenario({ regionCode: "320102" })), "NOT_FOUND", "region 320102 not found, or not visible to you");
    await refused(() => setDemandScenario(t.db, users.admin.actor, scenario({ regionCode: "999999" })), "NOT_FOUND", "no region with code 999999; see regions { code }");
    // Refusals of clearing too.
    await refused(() => clearDemandScenario(t.db, users.neighbourPlanner.actor, { regionCode: "330102", productCode: "MASK-N95" }), "NOT_FOUND", "region 330102 not found, or not visible to you");
    await refused(() => clearDemandScenario(t.db, users.makerReporter.actor, { regionCode: "330102", productCode: "MASK-N95" }), "FORBIDDEN", "may clear demand scenarios");
  });

  it("refuses bad input with messages that say what is wrong", async () => {
    const planner = users.countyPlanner.actor;
    const cases: [Partial<DemandScenarioInput>, string, string][] = [
      [{ casesPerDay: -5 }, "BAD_INPUT", "casesPerDay: must be >= 0 (expected cases per day), got -5"],
      [{ casesPerDay: Number.NaN }, "BAD_INPUT", "casesPerDay: must be a finite number (expected cases per day), got NaN"],
      [{ usagePerCasePerDay: Number.POSITIVE_INFINITY }, "BAD_INPUT", "usagePerCasePerDay: must be a finite number (units used per case per day), got Infinity"],
      [{ usagePerCasePerDay: "2" as unknown as number }, "BAD_INPUT", 'usagePerCasePerDay: must be a number (units used per case per day), got "2"'],
      [{ casesPerDay: undefined }, "BAD_INPUT", "casesPerDay: is required"],
      [{ startsOn: "2026-05-01", endsOn: "2026-04-01" }, "BAD_INPUT", "endsOn: must not be before startsOn (2026-05-01), got 2026-04-01"],
      [{ startsOn: "2026-02-30" }, "BAD_INPUT", 'startsOn: must be a calendar date as YYYY-MM-DD, got "2026-02-30"'],
      [{ endsOn: "1/5/2026" }, "BAD_INPUT", 'endsOn: must be a calendar date as YYYY-MM-DD, got "1/5/2026"'],
      [{ mode: "REPLACE" as "ADD" }, "BAD_INPUT", "mode: mode must be one of ADD, OVERRIDE"],
      [{ regionCode: "  " }, "BAD_INPUT", "regionCode: regionCode must not be empty"],
      [{ productCode: "MASK-N96" }, "NOT_FOUND", "unknown product MASK-N96; see products { code } for the catalog"],
      [{ unit: "pallet" }, "BAD_INPUT", 'unit "pallet" is not declared for MASK-N95; use one of piece, box, carton'],
      [{ casesPerDay: 1e9, usagePerCasePerDay: 1e9 }, "BAD_INPUT", "casesPerDay x usagePerCasePerDay is 1000000000000000000 piece a day, more than 1e+15"],
    ];
    for (const [over, code, message] of cases) await refused(() => setDemandScenario(t.db, planner, scenario(over)), code, message);
  });

  it("accepts zero cases (no demand expected) and an explicit base unit", async () => {
    const row = await setDemandScenario(t.db, users.countyPlanner.actor, scenario({ productCode: "FACE-SHIELD", casesPerDay: 0, usagePerCasePerDay: 3, unit: "piece", mode: "ADD" }));
    expect(row).toMatchObject({ casesPerDay: 0, usagePerCasePerDay: 3, mode: "ADD" });
  });
});

describe("clearDemandScenario", () => {
  it("supersedes the active scenario without a replacement; a second clear finds none and writes nothing", async () => {
    const set = await setDemandScenario(t.db, users.countyPlanner.actor, scenario({ productCode: "TEST-ANTIGEN" }));
    const before = await counts();
    expect(await clearDemandScenario(t.db, users.provincePlanner.actor, { regionCode: "330102", productCode: "test-antigen" })).toBe(true);
    expect(await counts()).toEqual({ ...before, superseded: before.superseded + 1, audit: before.audit + 1, outbox: before.outbox + 1 });
    const audit = await lastAudit();
    expect(audit).toMatchObject({ action: "demandScenario.clear", entity_id: set.id });
    expect(audit.after.supersededAt).toBeTruthy();
    expect((await lastOutbox()).payload).toEqual({ pairs: [{ regionId: regionId["330102"], productId: productId["TEST-ANTIGEN"] }] });
    const after = await counts();
    expect(await clearDemandScenario(t.db, users.countyPlanner.actor, { regionCode: "330102", productCode: "TEST-ANTIGEN" })).toBe(false);
    expect(await counts()).toEqual(after);
    expect((await activeScenarios(t.db, productId["TEST-ANTIGEN"]!)).length).toBe(0);
  });
});

describe("activeScenarios", () => {
  it("returns the one active scenario of each region of a product, by region", async () => {
    const product = productId["COVERALL-MEDICAL"]!;
    await setDemandScenario(t.db, users.admin.actor, scenario({ regionCode: "330106", productCode: "COVERALL-MEDICAL", casesPerDay: 5, usagePerCasePerDay: 1 }));
    await setDemandScenario(t.db, users.admin.actor, scenario({ regionCode: "330106", productCode: "COVERALL-MEDICAL", casesPerDay: 8, usagePerCasePerDay: 2, mode: "ADD", startsOn: "2026-12-01" }));
    await setDemandScenario(t.db, users.admin.actor, scenario({ regionCode: "330102", productCode: "COVERALL-MEDICAL", casesPerDay: 4, usagePerCasePerDay: 1, endsOn: "2027-01-31" }));
    const got = await activeScenarios(t.db, product);
    expect(got).toEqual(
      [
        { regionId: regionId["330102"], casesPerDay: 4, usagePerCasePerDay: 1, mode: "OVERRIDE", startsOn: null, endsOn: "2027-01-31" },
        { regionId: regionId["330106"], casesPerDay: 8, usagePerCasePerDay: 2, mode: "ADD", startsOn: "2026-12-01", endsOn: null },
      ].sort((a, b) => a.regionId! - b.regionId!),
    );
  });
});

const NOW = new Date("2026-03-09T17:00:00Z"); // 2026-03-10 01:00 in Shanghai
const request = (over: Partial<PostRequestInput> = {}): PostRequestInput => ({
  siteCode: "HZ-XIHU-H1",
  productCode: "MASK-N95",
  quantity: 2,
  unit: "carton",
  neededBy: "2026-03-20",
  ...over,
});

describe("postRequest", () => {
  it("stores a procurement need in base units for a site of the user's own organization, with audit and outbox rows", async () => {
    const before = await counts();
    const row = await postRequest(t.db, users.hospitalProcurement.actor, request({ note: "ward 3" }), { now: NOW });
    expect(row).toMatchObject({
      organizationId: world.hospital.id,
      siteId: world.hospitalSite.id,
      productId: productId["MASK-N95"],
      quantity: 960, // two cartons of 480
      neededBy: "2026-03-20",
      status: "OPEN",
      note: "ward 3",
      createdBy: users.hospitalProcurement.viewer.userId,
      closedAt: null,
    });
    expect(await counts()).toEqual({ ...before, requests: before.requests + 1, audit: before.audit + 1, outbox: before.outbox + 1 });
    const outbox = await lastOutbox();
    expect(outbox).toMatchObject({ topic: "demand.changed", payload: { pairs: [{ regionId: regionId["330106"], productId: productId["MASK-N95"] }] } });
    const audit = await lastAudit();
    expect(audit).toMatchObject({ action: "request.post", entity_id: row.id });
    const [own] = await rows<{ xmin: string }>(sql`select xmin::text from procurement_request where id = ${row.id}`);
    expect(new Set([own!.xmin, audit.xmin, outbox.xmin]).size).toBe(1);
  });

  it("takes today from the site's time zone and allows up to a year ahead", async () => {
    // At 17:00 UTC on 2026-03-09 it is already 2026-03-10 in Shanghai.
    await refused(
      () => postRequest(t.db, users.hospitalProcurement.actor, request({ neededBy: "2026-03-09" }), { now: NOW }),
      "BAD_INPUT",
      "neededBy 2026-03-09 is in the past (it is 2026-03-10 at site HZ-XIHU-H1); give a date from 2026-03-10 on",
    );
    expect((await postRequest(t.db, users.hospitalProcurement.actor, request({ neededBy: "2026-03-10" }), { now: NOW })).neededBy).toBe("2026-03-10");
    expect((await postRequest(t.db, users.hospitalProcurement.actor, request({ neededBy: "2027-03-10" }), { now: NOW })).neededBy).toBe("2027-03-10");
    await refused(
      () => postRequest(t.db, users.hospitalProcurement.actor, request({ neededBy: "2027-03-11" }), { now: NOW }),
      "BAD_INPUT",
      "neededBy 2027-03-11 is more than a year ahead; give a date up to 2027-03-10",
    );
  });

  it("lets an admin post for any organization's site; the request belongs to the site's organization", async () => {
    const row = await postRequest(t.db, users.admin.actor, request({ siteCode: "NJ-NW-1", productCode: "MELTBLOWN-PP", quantity: 1.5, unit: "tonne" }), { now: NOW });
    expect(row).toMatchObject({ organizationId: world.supplier.id, siteId: world.supplierSite.id, quantity: 1500 });
  });

  it("refuses other roles, other organizations' sites, unknown codes and bad figures, writing nothing", async () => {
    const p = users.hospitalProcurement.actor;
    for (const name of ["makerReporter", "countyPlanner", "provincePlanner"] as const) {
      await refused(() => postRequest(t.db, users[name].actor, request(), { now: NOW }), "FORBIDDEN", /only PROCUREMENT users .* and ADMIN users may post requests; your role is (REPORTER|PLANNER)/);
    }
    const notOurs = "is not a site of your organization; check the code against me { organization { sites { code } } }";
    await refused(() => postRequest(t.db, p, request({ siteCode: "HZ-MASK-1" }), { now: NOW }), "NOT_FOUND", `site HZ-MASK-1 ${notOurs}`);
    // An unknown site gets the same words as someone else's.
    await refused(() => postRequest(t.db, p, request({ siteCode: "NOPE-1" }), { now: NOW }), "NOT_FOUND", `site NOPE-1 ${notOurs}`);
    await refused(() => postRequest(t.db, users.admin.actor, request({ siteCode: "NOPE-1" }), { now: NOW }), "NOT_FOUND", "unknown site NOPE-1; create it with createSite first");
    const cases: [Partial<PostRequestInput>, string, string][] = [
      [{ productCode: "MASK-N96" }, "NOT_FOUND", "unknown product MASK-N96; see products { code } for the catalog"],
      [{ unit: "pallet" }, "BAD_INPUT", 'unit "pallet" is not declared for MASK-N95; use one of piece, box, carton'],
      [{ quantity: 0 }, "BAD_INPUT", "quantity: must be > 0 (the quantity needed), got 0"],
      [{ quantity: -5 }, "BAD_INPUT", "quantity: must be > 0 (the quantity needed), got -5"],
      [{ quantity: Number.NaN }, "BAD_INPUT", "quantity: must be a finite number (the quantity needed), got NaN"],
      [{ quantity: Number.NEGATIVE_INFINITY }, "BAD_INPUT", "quantity: must be a finite number (the quantity needed), got -Infinity"],
      [{ quantity: 1e14, unit: "carton" }, "BAD_INPUT", "quantity of 100000000000000 carton is 48000000000000000 piece, more than 1e+15"],
      [{ neededBy: "2026-13-01" }, "BAD_INPUT", 'neededBy: must be a calendar date as YYYY-MM-DD, got "2026-13-01"'],
      [{ neededBy: undefined }, "BAD_INPUT", "neededBy: must be a calendar date as YYYY-MM-DD, got undefined"],
      [{ note: "x".repeat(2001) }, "BAD_INPUT", "note: note may hold at most 2000 characters"],
    ];
    for (const [over, code, message] of cases) await refused(() => postRequest(t.db, p, request(over), { now: NOW }), code, message);
  });
});

describe("cancelRequest", () => {
  it("cancels an OPEN request of the user's organization, once; other organizations and roles are refused", async () => {
    const row = await postRequest(t.db, users.makerProcurement.actor, request({ siteCode: "HZ-MASK-1", productCode: "GOGGLES", quantity: 3 }), { now: NOW });
    await refused(() => cancelRequest(t.db, users.hospitalProcurement.actor, row.id), "NOT_FOUND", `request ${row.id} not found, or not visible to you`);
    await refused(() => cancelRequest(t.db, users.countyPlanner.actor, row.id), "FORBIDDEN", "may cancel requests; your role is PLANNER");
    await refused(() => cancelRequest(t.db, users.makerReporter.actor, row.id), "FORBIDDEN", "your role is REPORTER");
    await refused(() => cancelRequest(t.db, users.makerProcurement.actor, "00000000-0000-4000-8000-000000000000"), "NOT_FOUND", "not found, or not visible to you");
    await refused(() => cancelRequest(t.db, users.makerProcurement.actor, "not-a-uuid"), "NOT_FOUND", "request not-a-uuid not found, or not visible to you");

    const before = await counts();
    const cancelled = await cancelRequest(t.db, users.makerProcurement.actor, row.id);
    expect(cancelled).toMatchObject({ id: row.id, status: "CANCELLED" });
    expect(cancelled.closedAt).toBeInstanceOf(Date);
    expect(await counts()).toEqual({ ...before, closed: before.closed + 1, audit: before.audit + 1, outbox: before.outbox + 1 });
    expect(await lastAudit()).toMatchObject({ action: "request.cancel", entity_id: row.id, before: { status: "OPEN" }, after: { status: "CANCELLED" } });
    expect((await lastOutbox()).payload).toEqual({ pairs: [{ regionId: regionId["330102"], productId: productId["GOGGLES"] }] });

    // Again: unchanged, nothing written.
    const after = await counts();
    expect(await cancelRequest(t.db, users.makerProcurement.actor, row.id)).toMatchObject({ status: "CANCELLED", closedAt: cancelled.closedAt });
    expect(await counts()).toEqual(after);
  });

  it("lets an admin cancel any request, and refuses to cancel a fulfilled one", async () => {
    const row = await postRequest(t.db, users.hospitalProcurement.actor, request({ productCode: "GOGGLES" }), { now: NOW });
    expect((await cancelRequest(t.db, users.admin.actor, row.id)).status).toBe("CANCELLED");
    const done = await postRequest(t.db, users.hospitalProcurement.actor, request({ productCode: "GOGGLES" }), { now: NOW });
    await t.db.execute(sql`update procurement_request set status = 'FULFILLED', closed_at = now() where id = ${done.id}`);
    await refused(() => cancelRequest(t.db, users.hospitalProcurement.actor, done.id), "CONFLICT", `request ${done.id} is FULFILLED and can no longer be cancelled`);
  });
});

describe("openRequestsByRegion", () => {
  it("sums the OPEN requests of a product per region of the site and needed-by day", async () => {
    const p = users.admin.actor;
    const post = (siteCode: string, quantity: number, neededBy: string) => postRequest(t.db, p, { siteCode, productCode: "TEST-PCR", quantity, neededBy }, { now: NOW });
    await post("HZ-XIHU-H1", 10, "2026-04-01");
    await post("HZ-XIHU-H1", 5, "2026-04-01");
    await post("HZ-XIHU-H1", 1, "2026-04-02");
    await post("HZ-MASK-1", 7, "2026-04-01");
    const gone = await post("HZ-MASK-1", 100, "2026-04-01");
    await cancelRequest(t.db, p, gone.id);
    const got = await openRequestsByRegion(t.db, productId["TEST-PCR"]!);
    const expected = [
      { regionId: regionId["330102"]!, quantity: 7, neededBy: "2026-04-01" },
      { regionId: regionId["330106"]!, quantity: 15, neededBy: "2026-04-01" },
      { regionId: regionId["330106"]!, quantity: 1, neededBy: "2026-04-02" },
    ].sort((a, b) => a.regionId - b.regionId || (a.neededBy < b.neededBy ? -1 : 1));
    expect(got).toEqual(expected);
  });
});

describe("GraphQL", () => {
  const inAWeek = () => localToday(new Date(Date.now() + 7 * 86_400_000), "Asia/Shanghai");
  const postM = `mutation($i: RequestInput!) { postRequest(input: $i) { id quantity neededBy status note site { code } organization { name } product { code } } }`;
  const setM = `mutation($i: DemandScenarioInput!) { setDemandScenario(input: $i) { casesPerDay usagePerCasePerDay dailyDemand mode startsOn endsOn note region { code } product { code } createdAt } }`;
  const ids = {} as Record<string, string>;

  beforeAll(async () => {
    for (const [name, user, siteCode] of [
      ["hospital", "hospitalProcurement", "HZ-XIHU-H1"],
      ["maker", "makerProcurement", "HZ-MASK-1"],
      ["supplier", "admin", "NJ-NW-1"],
    ] as const) {
      const r = await gql(users[user].token, postM, { i: { siteCode, productCode: "EARLOOP", quantity: 2, unit: "bag", neededBy: inAWeek() } });
      expect(r.errors, name).toBeUndefined();
      ids[name] = r.data.postRequest.id;
    }
    for (const [user, regionCode] of [["countyPlanner", "330102"], ["neighbourPlanner", "330106"], ["admin", "320102"]] as const) {
      const r = await gql(users[user].token, setM, { i: { regionCode, productCode: "NOSE-WIRE", casesPerDay: 10, usagePerCasePerDay: 0.5, unit: "reel" } });
      expect(r.errors, regionCode).toBeUndefined();
    }
  });

  it("sets a scenario and answers with its daily demand", async () => {
    const r = await gql(users.countyPlanner.token, setM, {
      i: { regionCode: "330102", productCode: "NITRILE-COMPOUND", casesPerDay: 40, usagePerCasePerDay: 0.25, mode: "ADD", startsOn: "2026-12-01", endsOn: "2026-12-31", note: "winter wave" },
    });
    expect(r.errors).toBeUndefined();
    expect(r.data.setDemandScenario).toMatchObject({
      casesPerDay: 40, usagePerCasePerDay: 0.25, dailyDemand: 10, mode: "ADD", startsOn: "2026-12-01", endsOn: "2026-12-31", note: "winter wave",
      region: { code: "330102" }, product: { code: "NITRILE-COMPOUND" },
    });
    const cleared = await gql(users.countyPlanner.token, 'mutation { a: clearDemandScenario(regionCode: "330102", productCode: "NITRILE-COMPOUND") b: clearDemandScenario(regionCode: "330102", productCode: "NITRILE-COMPOUND") }');
    expect(cleared.data).toEqual({ a: true, b: false });
  });

  it("answers refusals and bad input with their codes and messages", async () => {
    const neighbour = await gql(users.countyPlanner.token, setM, { i: { regionCode: "330106", productCode: "NOSE-WIRE", casesPerDay: 1, usagePerCasePerDay: 1 } });
    expect(neighbour.errors?.[0]).toMatchObject({ message: expect.stringContaining("region 330106 not found, or not visible to you"), extensions: { code: "NOT_FOUND" } });
    const reporter = await gql(users.makerReporter.token, setM, { i: { regionCode: "330102", productCode: "NOSE-WIRE", casesPerDay: 1, usagePerCasePerDay: 1 } });
    expect(reporter.errors?.[0]?.message).toMatch(/^not allowed/);
    const bad = await gql(users.countyPlanner.token, setM, { i: { regionCode: "330102", productCode: "NOSE-WIRE", casesPerDay: -1, usagePerCasePerDay: 1 } });
    expect(bad.errors?.[0]).toMatchObject({ message: "casesPerDay: must be >= 0 (expected cases per day), got -1", extensions: { code: "BAD_INPUT" } });
    const badDate = await gql(users.countyPlanner.token, setM, { i: { regionCode: "330102", productCode: "NOSE-WIRE", casesPerDay: 1, usagePerCasePerDay: 1, startsOn: "2026-02-30" } });
    expect(badDate.errors?.[0]?.message).toContain("must be a calendar date written YYYY-MM-DD");
    const past = await gql(users.hospitalProcurement.token, postM, { i: { siteCode: "HZ-XIHU-H1", productCode: "EARLOOP", quantity: 1, neededBy: "2026-01-01" } });
    expect(past.errors?.[0]).toMatchObject({ message: expect.stringContaining("neededBy 2026-01-01 is in the past"), extensions: { code: "BAD_INPUT" } });
    const foreign = await gql(users.hospitalProcurement.token, postM, { i: { siteCode: "HZ-MASK-1", productCode: "EARLOOP", quantity: 1, neededBy: inAWeek() } });
    expect(foreign.errors?.[0]).toMatchObject({ message: expect.stringContaining("not a site of your organization"), extensions: { code: "NOT_FOUND" } });
    const planner = await gql(users.provincePlanner.token, postM, { i: { siteCode: "HZ-MASK-1", productCode: "EARLOOP", quantity: 1, neededBy: inAWeek() } });
    expect(planner.errors?.[0]?.message).toMatch(/^not allowed/);
  });

  it("lists the active scenarios a planner may see: a county planner never the neighbour's, a province planner all below it", async () => {
    const list = async (user: UserName, regionCode: string, productCode = "NOSE-WIRE") =>
      gql(users[user].token, "query($r: String!, $p: String) { demandScenarios(regionCode: $r, productCode: $p) { region { code } product { code } dailyDemand } }", { r: regionCode, p: productCode });
    const regions = (r: Awaited<ReturnType<typeof list>>) => r.data?.demandScenarios.map((s: any) => s.region.code).sort();

    const own = await list("countyPlanner", "330102");
    expect(own.errors).toBeUndefined();
    expect(own.data.demandScenarios).toEqual([{ region: { code: "330102" }, product: { code: "NOSE-WIRE" }, dailyDemand: 50000 }]);
    for (const code of ["330106", "330100", "330000", "CN", "999999"]) {
      const r = await list("countyPlanner", code);
      expect(r.data, code).toBeNull();
      expect(r.errors?.[0], code).toMatchObject({ message: expect.stringContaining("not found, or not visible to you"), extensions: { code: "NOT_FOUND" } });
    }
    expect(regions(await list("provincePlanner", "330000"))).toEqual(["330102", "330106"]);
    expect(regions(await list("provincePlanner", "330106"))).toEqual(["330106"]);
    expect((await list("provincePlanner", "320000")).errors?.[0]?.message).toContain("not found, or not visible to you");
    expect(regions(await list("admin", "CN"))).toEqual(["320102", "330102", "330106"]);
    expect((await list("admin", "CN", "EARLOOP")).data.demandScenarios).toEqual([]);
    const all = await gql(users.provincePlanner.token, '{ demandScenarios(regionCode: "330000") { product { code } } }');
    expect(new Set(all.data.demandScenarios.map((s: any) => s.product.code))).toContain("GOGGLES");
    for (const user of ["makerReporter", "hospitalProcurement"] as const) expect((await list(user, "330102")).errors?.[0]?.message).toMatch(/^not allowed/);
  });

  it("lists requests: procurement its organization's, planners those at sites in their jurisdiction, admins all; reporters none", async () => {
    const list = async (user: UserName, args = 'productCode: "earloop"') =>
      gql(users[user].token, `{ requests(${args}, first: 100) { edges { node { id quantity status site { code } organization { name } } } } }`);
    const sites = (r: Awaited<ReturnType<typeof list>>) => r.data.requests.edges.map((e: any) => e.node.site.code).sort();
    expect(sites(await list("hospitalProcurement"))).toEqual(["HZ-XIHU-H1"]);
    expect(sites(await list("makerProcurement"))).toEqual(["HZ-MASK-1"]);
    expect(sites(await list("countyPlanner"))).toEqual(["HZ-MASK-1"]);
    expect(sites(await list("neighbourPlanner"))).toEqual(["HZ-XIHU-H1"]);
    expect(sites(await list("provincePlanner"))).toEqual(["HZ-MASK-1", "HZ-XIHU-H1"]);
    expect(sites(await list("admin"))).toEqual(["HZ-MASK-1", "HZ-XIHU-H1", "NJ-NW-1"]);
    const hospital = await list("hospitalProcurement");
    expect(hospital.data.requests.edges[0].node).toMatchObject({ quantity: 20000, status: "OPEN", organization: { name: "Xihu People's Hospital" } });
    expect((await list("makerReporter")).errors?.[0]?.message).toMatch(/^not allowed/);
    expect((await gql(null, "{ requests { edges { node { id } } } }")).errors?.[0]?.message).toContain("not signed in");

    // Status filter and paging.
    await gql(users.makerProcurement.token, "mutation($id: ID!) { cancelRequest(id: $id) { status } }", { id: ids.maker });
    expect(sites(await list("provincePlanner", 'productCode: "EARLOOP", status: OPEN'))).toEqual(["HZ-XIHU-H1"]);
    expect(sites(await list("provincePlanner", 'productCode: "EARLOOP", status: CANCELLED'))).toEqual(["HZ-MASK-1"]);
    const page = await gql(users.admin.token, '{ requests(productCode: "EARLOOP", first: 2) { edges { node { id } } pageInfo { hasNextPage endCursor } } }');
    expect(page.data.requests.edges).toHaveLength(2);
    expect(page.data.requests.pageInfo.hasNextPage).toBe(true);
    const next = await gql(users.admin.token, `{ requests(productCode: "EARLOOP", first: 2, after: "${page.data.requests.pageInfo.endCursor}") { edges { node { id } } pageInfo { hasNextPage } } }`);
    expect(next.data.requests.edges).toHaveLength(1);
  });

  it("refuses node lookups and cancellations of requests outside the viewer's scope", async () => {
    const cases: [UserName, string][] = [
      ["countyPlanner", ids.hospital!],
      ["neighbourPlanner", ids.maker!],
      ["provincePlanner", ids.supplier!],
      ["hospitalProcurement", ids.maker!],
      ["makerReporter", ids.maker!],
    ];
    for (const [user, id] of cases) {
      const r = await gql(users[user].token, "query($id: ID!) { node(id: $id) { id ... on Request { quantity } } }", { id });
      expect(r.data?.node ?? null, user).toBeNull();
      expect(r.errors?.[0]?.message, user).toBe("not found, or not visible to you");
    }
    const own = await gql(users.provincePlanner.token, "query($id: ID!) { node(id: $id) { ... on Request { site { code } } } }", { id: ids.hospital });
    expect(own.data.node).toEqual({ site: { code: "HZ-XIHU-H1" } });
    const other = await gql(users.makerProcurement.token, "mutation($id: ID!) { cancelRequest(id: $id) { status } }", { id: ids.hospital });
    expect(other.errors?.[0]).toMatchObject({ message: expect.stringContaining("not found, or not visible to you"), extensions: { code: "NOT_FOUND" } });
    const mine = await gql(users.hospitalProcurement.token, "mutation($id: ID!) { cancelRequest(id: $id) { id status closedAt } }", { id: ids.hospital });
    expect(mine.data.cancelRequest).toMatchObject({ id: ids.hospital, status: "CANCELLED" });
  });
});

describe("on the embedded PGlite database", () => {
  // PGlite migrates and seeds in-process: slow on a busy machine, so it gets the setup's own time limit.
  let p: TestDatabase;
  let planner: TestUser;
  let buyer: TestUser;
  beforeAll(async () => {
    p = await createPgliteTestDatabase();
    const w = await seedWorld(p.db);
    planner = await makeUser(p.db, "PLANNER", { jurisdictionRegionCode: "330000" });
    buyer = await makeUser(p.db, "PROCUREMENT", { organizationId: w.hospital.id });
  }, 120_000);
  afterAll(async () => p?.drop());

  it("sets, supersedes and clears scenarios, and posts and cancels requests, with their outbox events", async () => {
    await setDemandScenario(p.db, planner.actor, scenario({ casesPerDay: 1 }));
    const second = await setDemandScenario(p.db, planner.actor, scenario({ casesPerDay: 2 }));
    const [product] = await p.db.execute<{ id: number }>(sql`select id from product where code = 'MASK-N95'`, "objects");
    expect((await activeScenarios(p.db, product!.id)).map((s) => s.casesPerDay)).toEqual([2]);
    expect(second.casesPerDay).toBe(2);
    expect(await clearDemandScenario(p.db, planner.actor, { regionCode: "330102", productCode: "MASK-N95" })).toBe(true);
    const req = await postRequest(p.db, buyer.actor, request(), { now: NOW });
    expect((await openRequestsByRegion(p.db, product!.id)).map((r) => r.quantity)).toEqual([960]);
    expect((await cancelRequest(p.db, buyer.actor, req.id)).status).toBe("CANCELLED");
    const [events] = await p.db.execute<{ n: number }>(sql`select count(*)::int as n from outbox where topic = ${DEMAND_CHANGED_TOPIC}`, "objects");
    expect(Number(events!.n)).toBe(5);
  });
});

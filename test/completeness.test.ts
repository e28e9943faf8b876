import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { reportingCompleteness, type CompletenessRow } from "../src/domain/completeness.js";
import { DEFAULT_REPORTING_SCHEDULE, reportingCutoff } from "../src/domain/compliance.js";
import { checkCompliance, clearReportingSchedule, setReportingSchedule } from "../src/domain/compliance.js";
import { createSite } from "../src/domain/organizations.js";
import { submitReports } from "../src/domain/reports/ingest.js";
import { createPgliteTestDatabase, createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { makeUser, seedWorld, setupActor, type TestUser, type World } from "./helpers/fixtures.js";
import { graphqlClient } from "./helpers/graphql.js";

/**
 * A hand-made day, 2026-03-28 (the night before Europe moves to summer time):
 *
 * 330102 Shangcheng: HZ-MASK-1 first reports at 09:00 local (on time; a second product late does
 *   not matter), SC-LATE at 11:00 local (late).
 * 330106 Xihu: HZ-XIHU-H1 first at 09:30 local, corrected at 13:00 (on time: the first
 *   submission counts); XH-BERLIN (Europe/Berlin) at 08:30Z = 10:30 CEST (late: the cut-off is
 *   08:00Z that day, though 09:00Z the day before); XH-SILENT reports only the next day;
 *   XH-NEW was created after the cut-off (not expected, though it reported).
 * 320102 Xuanwu: NJ-NW-1 on time.
 */
const DAY = "2026-03-28";

let t: TestDatabase;
let world: World;
let gql: ReturnType<typeof graphqlClient>;
let admin: TestUser;
let provincePlanner: TestUser;
let countyPlanner: TestUser;
let reporter: TestUser;
let procurement: TestUser;

const execute = (query: ReturnType<typeof sql>) => t.db.execute(query);

/** Reports of a site for a day (one per product), then moves their submission time to `at`. */
async function report(siteCode: string, date: string, at: string, productCode = "MASK-N95") {
  const r = await submitReports(t.db, admin.actor, [{ siteCode, productCode, date, onHand: 10 }], { backfillDays: 7 });
  expect(r.rejected).toEqual([]);
  await execute(sql`update report set submitted_at = ${at}::timestamptz where id = ${r.reportIds[0]!}`);
  return r.reportIds[0]!;
}

beforeAll(async () => {
  t = await createTestDatabase();
  world = await seedWorld(t.db);
  admin = await makeUser(t.db, "ADMIN");
  provincePlanner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330000" });
  countyPlanner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330102" });
  reporter = await makeUser(t.db, "REPORTER", { organizationId: world.maker.id });
  procurement = await makeUser(t.db, "PROCUREMENT", { organizationId: world.hospital.id });
  await createSite(t.db, setupActor, { organizationId: world.maker.id, code: "SC-LATE", name: "Late plant", regionCode: "330102" });
  await createSite(t.db, setupActor, { organizationId: world.hospital.id, code: "XH-BERLIN", name: "Berlin liaison store", regionCode: "330106", timeZone: "Europe/Berlin" });
  await createSite(t.db, setupActor, { organizationId: world.hospital.id, code: "XH-SILENT", name: "Quiet ward", regionCode: "330106" });
  await createSite(t.db, setupActor, { organizationId: world.hospital.id, code: "XH-NEW", name: "New ward", regionCode: "330106" });
  await execute(sql`update site set created_at = '2026-01-01T00:00:00Z'`);
  // Shanghai's cut-off for the day is 2026-03-29 10:00 +08 = 02:00Z; XH-NEW came an hour later.
  await execute(sql`update site set created_at = '2026-03-29T03:00:00Z' where code = 'XH-NEW'`);

  await report("HZ-MASK-1", DAY, "2026-03-29T01:00:00Z");
  await report("HZ-MASK-1", DAY, "2026-03-29T03:00:00Z", "GOGGLES");
  await report("SC-LATE", DAY, "2026-03-29T03:00:00Z");
  const corrected = await report("HZ-XIHU-H1", DAY, "2026-03-29T01:00:00Z");
  // The correction keeps the first version (revision 1, with its submission time) and is itself late.
  const again = await submitReports(t.db, admin.actor, [{ siteCode: "HZ-XIHU-H1", productCode: "MASK-N95", date: DAY, onHand: 12 }], { backfillDays: 7 });
  expect(again.reportIds).toEqual([corrected]);
  await execute(sql`update report_revision set submitted_at = '2026-03-29T01:30:00Z' where report_id = ${corrected} and revision = 1`);
  await execute(sql`update report set submitted_at = '2026-03-29T05:00:00Z' where id = ${corrected}`);
  await report("XH-BERLIN", DAY, "2026-03-29T08:30:00Z");
  await report("XH-BERLIN", "2026-03-27", "2026-03-28T08:30:00Z");
  await report("XH-SILENT", "2026-03-29", "2026-03-29T20:00:00Z");
  await report("XH-NEW", DAY, "2026-03-29T04:00:00Z");
  await report("NJ-NW-1", DAY, "2026-03-28T23:00:00Z");
  gql = graphqlClient(t.db);
});
afterAll(async () => t?.drop());

const row = (regionCode: string, expectedSites: number, reportingSites: number, onTimeSites: number, date = DAY) => ({
  regionCode,
  date,
  expectedSites,
  reportingSites,
  onTimeSites,
  lateSites: reportingSites - onTimeSites,
  missingSites: expectedSites - reportingSites,
  completeness: expectedSites ? reportingSites / expectedSites : null,
  timeliness: expectedSites ? onTimeSites / expectedSites : null,
});
const strip = (rows: CompletenessRow[]) => rows.map(({ regionId: _id, ...rest }) => rest);

describe("reportingCompleteness", () => {
  it("counts expected, reporting and on-time sites for a region and each of its children", async () => {
    expect(strip(await reportingCompleteness(t.db, admin.viewer, { regionCode: "330100", date: DAY }))).toEqual([
      row("330100", 5, 4, 2),
      row("330102", 2, 2, 1),
      row("330106", 3, 2, 1),
    ]);
    const rows = await reportingCompleteness(t.db, admin.viewer, { regionCode: "330100", date: DAY });
    expect(rows[0]).toMatchObject({ completeness: 0.8, timeliness: 0.4 });
    expect(strip(await reportingCompleteness(t.db, admin.viewer, { regionCode: "CN", date: DAY }))).toEqual([
      row("CN", 6, 5, 3),
      row("320000", 1, 1, 1),
      row("330000", 5, 4, 2),
    ]);
  });

  it("moves a site's cut-off with its daylight-saving change", async () => {
    // The same 08:30Z submission is on time for 2026-03-27 (cut-off 10:00 CET = 09:00Z) ...
    expect(reportingCutoff("2026-03-27", "Europe/Berlin").toISOString()).toBe("2026-03-28T09:00:00.000Z");
    expect(strip(await reportingCompleteness(t.db, admin.viewer, { regionCode: "330106", date: "2026-03-27" }))).toEqual([row("330106", 3, 1, 1, "2026-03-27")]);
    // ... and late for 2026-03-28 (cut-off 10:00 CEST = 08:00Z).
    expect(reportingCutoff(DAY, "Europe/Berlin").toISOString()).toBe("2026-03-29T08:00:00.000Z");
    // In October the clocks go back on the 25th: the cut-off for the 24th is 10:00 CET = 09:00Z.
    await report("XH-BERLIN", "2026-10-24", "2026-10-25T08:30:00Z");
    expect(reportingCutoff("2026-10-24", "Europe/Berlin").toISOString()).toBe("2026-10-25T09:00:00.000Z");
    expect(strip(await reportingCompleteness(t.db, admin.viewer, { regionCode: "330106", date: "2026-10-24" }))).toEqual([row("330106", 4, 1, 1, "2026-10-24")]);
  });

  it("is on time strictly before the cut-off", async () => {
    const date = "2026-06-15";
    const cutoff = reportingCutoff(date, "Asia/Shanghai");
    expect(cutoff.toISOString()).toBe("2026-06-16T02:00:00.000Z");
    expect(DEFAULT_REPORTING_SCHEDULE).toEqual({ daysAfter: 1, localTime: "10:00" });
    await report("HZ-MASK-1", date, new Date(cutoff.getTime() - 1).toISOString());
    await report("SC-LATE", date, cutoff.toISOString());
    expect(strip(await reportingCompleteness(t.db, admin.viewer, { regionCode: "330102", date }))).toEqual([row("330102", 2, 2, 1, date)]);
  });

  it("gives null rates when no site was expected (a day before any site existed)", async () => {
    expect(strip(await reportingCompleteness(t.db, admin.viewer, { regionCode: "330000", date: "2025-06-01" }))).toEqual([
      row("330000", 0, 0, 0, "2025-06-01"),
      row("330100", 0, 0, 0, "2025-06-01"),
    ]);
  });

  it("lets planners ask inside their jurisdiction only, and refuses other roles", async () => {
    expect(strip(await reportingCompleteness(t.db, provincePlanner.viewer, { regionCode: "330000", date: DAY }))).toEqual([
      row("330000", 5, 4, 2),
      row("330100", 5, 4, 2),
    ]);
    expect(strip(await reportingCompleteness(t.db, countyPlanner.viewer, { regionCode: "330102", date: DAY }))).toEqual([row("330102", 2, 2, 1)]);
    const refusal = (viewer: TestUser["viewer"] | null, regionCode: string, date = DAY) =>
      reportingCompleteness(t.db, viewer, { regionCode, date }).then(
        () => null,
        (e: { code: string; message: string }) => ({ code: e.code, message: e.message }),
      );
    const hidden = "not found, or not visible to you: you may look at 330102 and the regions below it";
    for (const code of ["330106", "330100", "330000", "999999"]) {
      expect(await refusal(countyPlanner.viewer, code)).toEqual({ code: "NOT_FOUND", message: expect.stringContaining(`region ${code} ${hidden}`) });
    }
    expect(await refusal(provincePlanner.viewer, "320000")).toMatchObject({ code: "NOT_FOUND", message: expect.stringContaining("region 320000 not found, or not visible to you") });
    expect(await refusal(admin.viewer, "999999")).toEqual({ code: "NOT_FOUND", message: "no region with code 999999; see regions { code } for the codes" });
    expect(await refusal(reporter.viewer, "330102")).toEqual({ code: "FORBIDDEN", message: "reporting completeness is for PLANNER and ADMIN users; your role is REPORTER" });
    expect(await refusal(procurement.viewer, "330106")).toMatchObject({ code: "FORBIDDEN" });
    expect(await refusal(null, "330102")).toMatchObject({ code: "FORBIDDEN", message: expect.stringContaining("your role is none") });
    expect(await refusal(admin.viewer, "330102", "2026-02-30")).toEqual({ code: "BAD_INPUT", message: 'date must be a calendar date as YYYY-MM-DD, got "2026-02-30"' });
  });

  it("answers over GraphQL with the regions, and the same refusals", async () => {
    const q = `query($r: String!, $d: Date!) { reportingCompleteness(regionCode: $r, date: $d) {
      region { code level } date expectedSites reportingSites onTimeSites completeness timeliness } }`;
    const r = await gql(provincePlanner.token, q, { r: "330100", d: DAY });
    expect(r.errors).toBeUndefined();
    expect(r.data.reportingCompleteness).toEqual([
      { region: { code: "330100", level: "CITY" }, date: DAY, expectedSites: 5, reportingSites: 4, onTimeSites: 2, completeness: 0.8, timeliness: 0.4 },
      { region: { code: "330102", level: "COUNTY" }, date: DAY, expectedSites: 2, reportingSites: 2, onTimeSites: 1, completeness: 1, timeliness: 0.5 },
      { region: { code: "330106", level: "COUNTY" }, date: DAY, expectedSites: 3, reportingSites: 2, onTimeSites: 1, completeness: 2 / 3, timeliness: 1 / 3 },
    ]);
    const empty = await gql(admin.token, q, { r: "330102", d: "2025-06-01" });
    expect(empty.data.reportingCompleteness).toEqual([
      { region: { code: "330102", level: "COUNTY" }, date: "2025-06-01", expectedSites: 0, reportingSites: 0, onTimeSites: 0, completeness: null, timeliness: null },
    ]);
    const neighbour = await gql(countyPlanner.token, q, { r: "330106", d: DAY });
    expect(neighbour.data).toBeNull();
    expect(neighbour.errors?.[0]).toMatchObject({ message: expect.stringContaining("region 330106 not found, or not visible to you"), extensions: { code: "NOT_FOUND" } });
    for (const user of [reporter, procurement]) expect((await gql(user.token, q, { r: "330102", d: DAY })).errors?.[0]?.message).toMatch(/^not allowed/);
    expect((await gql(null, q, { r: "330102", d: DAY })).errors?.[0]?.message).toContain("not signed in");
    expect((await gql(admin.token, q, { r: "330102", d: "28/03/2026" })).errors?.[0]?.message).toContain("must be a calendar date written YYYY-MM-DD");
  });
});

describe("with a region's own reporting schedule", () => {
  it("judges each site by the schedule of its region, in its own time zone", async () => {
    // Xihu reports by 10:45: 02:45Z in Shanghai (XH-NEW, created 03:00Z, is still not expected) and
    // 08:45Z in Berlin that day (summer time), so XH-BERLIN's 08:30Z report is on time now.
    await setReportingSchedule(t.db, admin.actor, { regionCode: "330106", cutoffLocalTime: "10:45", cutoffDaysAfter: 1 });
    try {
      expect(strip(await reportingCompleteness(t.db, admin.viewer, { regionCode: "330100", date: DAY }))).toEqual([
        row("330100", 5, 4, 3),
        row("330102", 2, 2, 1),
        row("330106", 3, 2, 2),
      ]);
      const q = `query($r: String!, $d: Date!) { reportingCompleteness(regionCode: $r, date: $d) { region { code } onTimeSites lateSites missingSites } }`;
      const r = await gql(provincePlanner.token, q, { r: "330100", d: DAY });
      expect(r.data.reportingCompleteness).toEqual([
        { region: { code: "330100" }, onTimeSites: 3, lateSites: 1, missingSites: 1 },
        { region: { code: "330102" }, onTimeSites: 1, lateSites: 1, missingSites: 0 },
        { region: { code: "330106" }, onTimeSites: 2, lateSites: 0, missingSites: 1 },
      ]);
    } finally {
      await clearReportingSchedule(t.db, admin.actor, { regionCode: "330106" });
    }
    expect(strip(await reportingCompleteness(t.db, admin.viewer, { regionCode: "330106", date: DAY }))).toEqual([row("330106", 3, 2, 1)]);
  });
});

describe("on the embedded PGlite database", () => {
  // PGlite migrates and seeds in-process: slow on a busy machine, so it gets the setup's own time limit.
  let p: TestDatabase;
  let a: TestUser;
  beforeAll(async () => {
    p = await createPgliteTestDatabase();
    await seedWorld(p.db);
    a = await makeUser(p.db, "ADMIN");
  }, 120_000);
  afterAll(async () => p?.drop());

  it("computes the same figures", async () => {
    await p.db.execute(sql`update site set created_at = '2026-01-01T00:00:00Z'`);
    const r = await submitReports(p.db, a.actor, [{ siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: DAY, onHand: 1 }, { siteCode: "HZ-XIHU-H1", productCode: "MASK-N95", date: DAY, onHand: 1 }], { backfillDays: 7 });
    await p.db.execute(sql`update report set submitted_at = case when id = ${r.reportIds[0]!} then '2026-03-29T01:59:59Z'::timestamptz else '2026-03-29T02:00:00Z'::timestamptz end`);
    expect(strip(await reportingCompleteness(p.db, a.viewer, { regionCode: "330100", date: DAY }))).toEqual([row("330100", 2, 2, 1), row("330102", 1, 1, 1), row("330106", 1, 1, 0)]);
    // The compliance check and its alerts run there too (the service's default database).
    const check = await checkCompliance(p.db, new Date("2026-03-29T03:00:00Z"));
    // Three sites, seven due days each (03-22 to 03-28): two reports, nineteen missing days.
    expect(check.recorded).toEqual({ ON_TIME: 1, LATE: 1, MISSING: 19 });
    expect(check.alerts).toMatchObject({ raised: 3 });
    expect((await checkCompliance(p.db, new Date("2026-03-29T03:00:00Z"))).recorded).toEqual({ ON_TIME: 0, LATE: 0, MISSING: 0 });
  });
});

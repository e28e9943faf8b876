import { randomBytes } from "node:crypto";
import { QueueEvents } from "bullmq";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorker, type RunningWorker } from "../jobs/worker.js";
import { alertRecipients } from "../src/domain/alerts/audience.js";
import { reportingCompleteness } from "../src/domain/completeness.js";
import {
  checkCompliance,
  clearReportingSchedule,
  getReportingSchedule,
  overdueKey,
  recheckOverdueReports,
  recheckOverdueSites,
  reportingCutoff,
  setReportingSchedule,
  shiftDate,
  type SetReportingScheduleInput,
} from "../src/domain/compliance.js";
import { createSite } from "../src/domain/organizations.js";
import { localToday } from "../src/domain/reports/validate.js";
import { submitReports } from "../src/domain/reports/ingest.js";
import { createLogger } from "../src/logger.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { TEST_REDIS_URL } from "./helpers/env.js";
import { makeUser, seedWorld, setupActor, type TestUser, type World } from "./helpers/fixtures.js";
import { graphqlClient } from "./helpers/graphql.js";
import { clearRedisPrefix } from "./helpers/redis.js";

const iso = (d: Date) => d.toISOString();
const cutoff = (date: string, zone: string, localTime = "10:00", daysAfter = 1) => iso(reportingCutoff(date, zone, { localTime, daysAfter }));

describe("reportingCutoff", () => {
  it("is 10:00 the next day in the site's zone by default: 02:00 UTC in Asia/Shanghai", () => {
    expect(iso(reportingCutoff("2026-11-19", "Asia/Shanghai"))).toBe("2026-11-20T02:00:00.000Z");
    expect(cutoff("2026-12-31", "Asia/Shanghai")).toBe("2027-01-01T02:00:00.000Z");
    expect(cutoff("2028-02-28", "Asia/Shanghai", "23:59", 1)).toBe("2028-02-29T15:59:00.000Z");
    expect(cutoff("2026-12-28", "Asia/Shanghai", "00:00", 7)).toBe("2027-01-03T16:00:00.000Z");
    expect(cutoff("2026-11-19", "Asia/Shanghai", "23:59", 0)).toBe("2026-11-19T15:59:00.000Z");
    expect(cutoff("2026-11-19", "Asia/Kathmandu")).toBe("2026-11-20T04:15:00.000Z");
  });

  it("moves by an hour in UTC across a daylight-saving change (Europe/Berlin, America/New_York)", () => {
    // Berlin springs forward on 2026-03-29 (02:00 CET -> 03:00 CEST) and falls back on 2026-10-25.
    expect(cutoff("2026-03-27", "Europe/Berlin")).toBe("2026-03-28T09:00:00.000Z");
    expect(cutoff("2026-03-28", "Europe/Berlin")).toBe("2026-03-29T08:00:00.000Z");
    expect(cutoff("2026-10-24", "Europe/Berlin")).toBe("2026-10-25T09:00:00.000Z");
    expect(cutoff("2026-10-23", "Europe/Berlin")).toBe("2026-10-24T08:00:00.000Z");
    // New York springs forward on 2026-03-08 and falls back on 2026-11-01.
    expect(cutoff("2026-03-06", "America/New_York")).toBe("2026-03-07T15:00:00.000Z");
    expect(cutoff("2026-03-07", "America/New_York")).toBe("2026-03-08T14:00:00.000Z");
    expect(cutoff("2026-10-31", "America/New_York")).toBe("2026-11-01T15:00:00.000Z");
    expect(cutoff("2026-10-30", "America/New_York")).toBe("2026-10-31T14:00:00.000Z");
  });

  it("takes the later instant when the cut-off time is skipped or repeated by the change", () => {
    // Skipped: 02:30 does not exist on 2026-03-29 in Berlin; it is read with the offset before the
    // jump (02:30 CET = 03:30 CEST = 01:30Z), the same UTC instant as the day before.
    expect(cutoff("2026-03-27", "Europe/Berlin", "02:30")).toBe("2026-03-28T01:30:00.000Z");
    expect(cutoff("2026-03-28", "Europe/Berlin", "02:30")).toBe("2026-03-29T01:30:00.000Z");
    expect(cutoff("2026-03-29", "Europe/Berlin", "02:30")).toBe("2026-03-30T00:30:00.000Z");
    // Repeated: 02:30 comes twice on 2026-10-25 (00:30Z in CEST, 01:30Z in CET): the second one.
    expect(cutoff("2026-10-23", "Europe/Berlin", "02:30")).toBe("2026-10-24T00:30:00.000Z");
    expect(cutoff("2026-10-24", "Europe/Berlin", "02:30")).toBe("2026-10-25T01:30:00.000Z");
    expect(cutoff("2026-10-25", "Europe/Berlin", "02:30")).toBe("2026-10-26T01:30:00.000Z");
    // The same rule west of UTC (TZDate alone would give 05:30Z, the first 01:30, here).
    expect(cutoff("2026-03-07", "America/New_York", "02:30")).toBe("2026-03-08T07:30:00.000Z");
    expect(cutoff("2026-10-31", "America/New_York", "01:30")).toBe("2026-11-01T06:30:00.000Z");
  });

  it("refuses a malformed time or zone", () => {
    expect(() => reportingCutoff("2026-11-19", "Mars/Olympus")).toThrow('"Mars/Olympus" is not an IANA time zone such as Asia/Shanghai');
    expect(() => reportingCutoff("2026-11-19", "Asia/Shanghai", { localTime: "7:00", daysAfter: 1 })).toThrow("cut-off time must be written HH:MM");
  });
});

let t: TestDatabase;
let world: World;
let admin: TestUser;
beforeAll(async () => {
  t = await createTestDatabase();
  world = await seedWorld(t.db);
  admin = await makeUser(t.db, "ADMIN");
});
afterAll(async () => t?.drop());

const execute = <T extends Record<string, any> = Record<string, unknown>>(query: ReturnType<typeof sql>) => t.db.execute<T>(query, "objects");

/** A report of a site for a day, then its submission time moved to `at`. */
async function report(siteCode: string, date: string, at: string, productCode = "MASK-N95", onHand = 10) {
  const r = await submitReports(t.db, admin.actor, [{ siteCode, productCode, date, onHand }], { backfillDays: 7 });
  expect(r.rejected).toEqual([]);
  await execute(sql`update report set submitted_at = ${at}::timestamptz where id = ${r.reportIds[0]!}`);
  return r.reportIds[0]!;
}

const rowsOf = async (from = "2000-01-01", to = "2999-12-31") =>
  execute<{ site: string; date: string; status: string; cutoff: string; first: string | null }>(
    sql`select s.code as site, rc.date::text as date, rc.status::text as status,
               to_char(rc.cutoff_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as cutoff,
               to_char(rc.first_submitted_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as first
        from report_compliance rc join site s on s.id = rc.site_id
        where rc.date between ${from}::date and ${to}::date
        order by s.code, rc.date`,
  );

const overdueAlerts = () =>
  execute<{ site: string; status: string; resolution: string | null; stage: number; peak_stage: number; severity: string; organization_id: string; region: string; message: string; details: any }>(
    sql`select s.code as site, a.status::text as status, a.resolution::text as resolution, a.stage, a.peak_stage, a.severity::text as severity,
               a.organization_id, r.code as region, a.message, a.details
        from alert a join site s on s.id = a.site_id join region r on r.id = a.region_id
        where a.kind = 'REPORT_OVERDUE' order by s.code, a.raised_at`,
  );

/**
 * Five sites around Berlin's change to summer time (2026-03-29), created on 2026-03-26 at 12:00Z
 * (20:00 in Shanghai), so their first due day is the 26th:
 *   HZ-MASK-1 (Shangcheng, the manufacturer): on time, late, on time (a millisecond before the
 *     cut-off, corrected after it), ...
 *   HZ-XIHU-H1 (Xihu, the hospital): nothing for the 26th and 27th, the 28th exactly at the cut-off.
 *   NJ-NW-1 (Xuanwu, the supplier): nothing.
 *   HZ-NEW (Shangcheng, the manufacturer): created 2026-03-28 03:00Z, an hour after the 27th's cut-off.
 *   XH-BERLIN (Xihu, the hospital, Europe/Berlin): always at 08:30Z, on time while the cut-off is
 *     09:00Z (CET), late once it is 08:00Z (CEST).
 */
describe("checkCompliance", () => {
  const asOf1 = new Date("2026-03-29T02:30:00Z");
  const asOf2 = new Date("2026-03-31T09:00:00Z");
  let xihuId: string;

  beforeAll(async () => {
    await createSite(t.db, setupActor, { organizationId: world.maker.id, code: "HZ-NEW", name: "New line", regionCode: "330102" });
    await createSite(t.db, setupActor, { organizationId: world.hospital.id, code: "XH-BERLIN", name: "Berlin liaison store", regionCode: "330106", timeZone: "Europe/Berlin" });
    await execute(sql`update site set created_at = '2026-03-26T12:00:00Z'`);
    await execute(sql`update site set created_at = '2026-03-28T03:00:00Z' where code = 'HZ-NEW'`);
    xihuId = world.hospitalSite.id;

    await report("HZ-MASK-1", "2026-03-26", "2026-03-27T01:00:00Z");
    await report("HZ-MASK-1", "2026-03-27", "2026-03-28T05:00:00Z");
    const corrected = await report("HZ-MASK-1", "2026-03-28", "2026-03-29T01:59:59.999Z");
    await report("HZ-MASK-1", "2026-03-28", "2026-03-29T02:10:00Z", "MASK-N95", 12);
    expect((await execute<{ revision: number }>(sql`select revision from report where id = ${corrected}`))[0]!.revision).toBe(2);
    await report("HZ-MASK-1", "2026-03-28", "2026-03-29T02:00:00Z", "GOGGLES");
    await report("HZ-XIHU-H1", "2026-03-28", "2026-03-29T02:00:00Z");
    // A report for a day before the site existed does not make the day expected.
    await report("NJ-NW-1", "2026-03-25", "2026-03-26T01:00:00Z");
    await report("XH-BERLIN", "2026-03-26", "2026-03-27T08:30:00Z");
    await report("XH-BERLIN", "2026-03-27", "2026-03-28T08:30:00Z");
  });

  it("marks every due site-day ON_TIME, LATE or MISSING, from the first submission, never before the site existed", async () => {
    const result = await checkCompliance(t.db, asOf1);
    expect(result.recorded).toEqual({ ON_TIME: 4, LATE: 2, MISSING: 6 });
    expect(result.reported).toBe(0);
    expect(await rowsOf()).toEqual([
      { site: "HZ-MASK-1", date: "2026-03-26", status: "ON_TIME", cutoff: "2026-03-27T02:00:00Z", first: "2026-03-27T01:00:00.000Z" },
      { site: "HZ-MASK-1", date: "2026-03-27", status: "LATE", cutoff: "2026-03-28T02:00:00Z", first: "2026-03-28T05:00:00.000Z" },
      // The correction at 02:10Z and the other product at 02:00Z do not make the first submission late.
      { site: "HZ-MASK-1", date: "2026-03-28", status: "ON_TIME", cutoff: "2026-03-29T02:00:00Z", first: "2026-03-29T01:59:59.999Z" },
      { site: "HZ-NEW", date: "2026-03-28", status: "MISSING", cutoff: "2026-03-29T02:00:00Z", first: null },
      { site: "HZ-XIHU-H1", date: "2026-03-26", status: "MISSING", cutoff: "2026-03-27T02:00:00Z", first: null },
      { site: "HZ-XIHU-H1", date: "2026-03-27", status: "MISSING", cutoff: "2026-03-28T02:00:00Z", first: null },
      { site: "HZ-XIHU-H1", date: "2026-03-28", status: "LATE", cutoff: "2026-03-29T02:00:00Z", first: "2026-03-29T02:00:00.000Z" },
      { site: "NJ-NW-1", date: "2026-03-26", status: "MISSING", cutoff: "2026-03-27T02:00:00Z", first: null },
      { site: "NJ-NW-1", date: "2026-03-27", status: "MISSING", cutoff: "2026-03-28T02:00:00Z", first: null },
      { site: "NJ-NW-1", date: "2026-03-28", status: "MISSING", cutoff: "2026-03-29T02:00:00Z", first: null },
      // The 28th's Berlin cut-off (08:00Z) has not passed at 02:30Z.
      { site: "XH-BERLIN", date: "2026-03-26", status: "ON_TIME", cutoff: "2026-03-27T09:00:00Z", first: "2026-03-27T08:30:00.000Z" },
      { site: "XH-BERLIN", date: "2026-03-27", status: "ON_TIME", cutoff: "2026-03-28T09:00:00Z", first: "2026-03-28T08:30:00.000Z" },
    ]);
  });

  it("raises one REPORT_OVERDUE per site with missing days, to the site's organization, escalating with the count", async () => {
    const alerts = await overdueAlerts();
    expect(alerts.map((a) => [a.site, a.status, a.stage, a.severity, a.region])).toEqual([
      ["HZ-NEW", "OPEN", 1, "YELLOW", "330102"],
      ["HZ-XIHU-H1", "OPEN", 2, "ORANGE", "330106"],
      ["NJ-NW-1", "OPEN", 2, "ORANGE", "320102"],
    ]);
    const xihu = alerts[1]!;
    expect(xihu.organization_id).toBe(world.hospital.id);
    expect(xihu.message).toBe(
      "site HZ-XIHU-H1 has not reported for 2026-03-26, 2026-03-27 (due 2026-03-27 10:00 and 2026-03-28 10:00, Asia/Shanghai time); " +
        "submit reports for 2026-03-26, 2026-03-27 with submitReports or a CSV upload",
    );
    expect(xihu.details).toEqual({
      siteCode: "HZ-XIHU-H1",
      timeZone: "Asia/Shanghai",
      missingDates: ["2026-03-26", "2026-03-27"],
      lateDates: ["2026-03-28"],
      cutoffs: { "2026-03-26": "2026-03-27T02:00:00Z", "2026-03-27": "2026-03-28T02:00:00Z" },
    });
    expect(alerts[0]!.organization_id).toBe(world.maker.id);

    // Told to the manufacturer's reporters only: planners follow overdue reports as completeness.
    const reporter = await makeUser(t.db, "REPORTER", { organizationId: world.maker.id });
    const hospitalReporter = await makeUser(t.db, "REPORTER", { organizationId: world.hospital.id });
    await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330000" });
    const [newAlert] = await execute<{ id: string }>(sql`select id from alert where dedupe_key = ${overdueKey((await siteId("HZ-NEW"))!)}`);
    expect((await alertRecipients(t.db, newAlert!.id)).userIds).toEqual([reporter.viewer.userId]);
    expect((await alertRecipients(t.db, newAlert!.id)).userIds).not.toContain(hospitalReporter.viewer.userId);
  });

  it("changes nothing when run again", async () => {
    const before = await execute(sql`select * from report_compliance order by site_id, date`);
    const alertsBefore = await execute(sql`select * from alert order by id`);
    const again = await checkCompliance(t.db, asOf1);
    expect(again).toEqual({
      recorded: { ON_TIME: 0, LATE: 0, MISSING: 0 },
      reported: 0,
      alerts: { raised: 0, escalated: 0, updated: 0, resolved: 0, suppressed: 0, eventIds: [] },
    });
    expect(await execute(sql`select * from report_compliance order by site_id, date`)).toEqual(before);
    expect(await execute(sql`select * from alert order by id`)).toEqual(alertsBefore);
  });

  it("turns missing days LATE and resolves the alert as soon as the site reports them", async () => {
    await report("HZ-XIHU-H1", "2026-03-26", "2026-03-29T03:00:00Z");
    await report("HZ-XIHU-H1", "2026-03-27", "2026-03-29T03:00:00Z");
    const xihu = await recheckOverdueSites(t.db, [xihuId, xihuId], new Date("2026-03-29T03:05:00Z"));
    expect(xihu).toMatchObject({ reported: 2, alerts: { raised: 0, escalated: 0, updated: 0, resolved: 1 } });
    expect((await rowsOf("2026-03-26", "2026-03-27")).filter((r) => r.site === "HZ-XIHU-H1").map((r) => [r.date, r.status, r.first])).toEqual([
      ["2026-03-26", "LATE", "2026-03-29T03:00:00.000Z"],
      ["2026-03-27", "LATE", "2026-03-29T03:00:00.000Z"],
    ]);

    // From the reports of a submission, as the job after each submission does: one day of three.
    const nj = await report("NJ-NW-1", "2026-03-27", "2026-03-29T03:00:00Z");
    expect(await recheckOverdueReports(t.db, [nj], new Date("2026-03-29T03:05:00Z"))).toMatchObject({
      reported: 1,
      alerts: { raised: 0, escalated: 0, updated: 1, resolved: 0 },
    });
    // Nothing missing at the manufacturer's plant: no write, no alert work.
    expect(await recheckOverdueSites(t.db, [world.makerSite.id], new Date("2026-03-29T03:05:00Z"))).toEqual({
      recorded: { ON_TIME: 0, LATE: 0, MISSING: 0 },
      reported: 0,
      alerts: null,
    });

    const alerts = await overdueAlerts();
    expect(alerts.map((a) => [a.site, a.status, a.resolution, a.stage])).toEqual([
      ["HZ-NEW", "OPEN", null, 1],
      ["HZ-XIHU-H1", "RESOLVED", "CLEARED", 2],
      ["NJ-NW-1", "OPEN", null, 2],
    ]);
    expect(alerts[2]!.details).toMatchObject({ missingDates: ["2026-03-26", "2026-03-28"], lateDates: ["2026-03-27"] });
  });

  it("records the days that come due next, across the change to summer time, and escalates", async () => {
    await report("HZ-MASK-1", "2026-03-29", "2026-03-30T01:00:00Z");
    await report("HZ-MASK-1", "2026-03-30", "2026-03-31T01:00:00Z");
    await report("HZ-XIHU-H1", "2026-03-29", "2026-03-30T01:00:00Z");
    // The same 08:30Z as on the 26th and 27th: late now that the cut-off is 10:00 CEST = 08:00Z.
    await report("XH-BERLIN", "2026-03-28", "2026-03-29T08:30:00Z");
    await report("XH-BERLIN", "2026-03-29", "2026-03-30T07:59:00Z");
    // A missing day reported since the last check becomes LATE on this one.
    await report("HZ-NEW", "2026-03-28", "2026-03-31T05:00:00Z");

    const result = await checkCompliance(t.db, asOf2);
    expect(result.recorded).toEqual({ ON_TIME: 4, LATE: 1, MISSING: 6 });
    expect(result.reported).toBe(1);
    expect(result.alerts).toMatchObject({ raised: 2, escalated: 2, updated: 0, resolved: 0 });

    expect((await rowsOf("2026-03-28")).filter((r) => r.site === "XH-BERLIN" || r.site === "HZ-NEW")).toEqual([
      { site: "HZ-NEW", date: "2026-03-28", status: "LATE", cutoff: "2026-03-29T02:00:00Z", first: "2026-03-31T05:00:00.000Z" },
      { site: "HZ-NEW", date: "2026-03-29", status: "MISSING", cutoff: "2026-03-30T02:00:00Z", first: null },
      { site: "HZ-NEW", date: "2026-03-30", status: "MISSING", cutoff: "2026-03-31T02:00:00Z", first: null },
      { site: "XH-BERLIN", date: "2026-03-28", status: "LATE", cutoff: "2026-03-29T08:00:00Z", first: "2026-03-29T08:30:00.000Z" },
      { site: "XH-BERLIN", date: "2026-03-29", status: "ON_TIME", cutoff: "2026-03-30T08:00:00Z", first: "2026-03-30T07:59:00.000Z" },
      { site: "XH-BERLIN", date: "2026-03-30", status: "MISSING", cutoff: "2026-03-31T08:00:00Z", first: null },
    ]);
    const open = (await overdueAlerts()).filter((a) => a.status === "OPEN");
    expect(open.map((a) => [a.site, a.stage, a.peak_stage, a.severity, a.details.missingDates])).toEqual([
      ["HZ-NEW", 2, 2, "ORANGE", ["2026-03-29", "2026-03-30"]],
      ["HZ-XIHU-H1", 1, 1, "YELLOW", ["2026-03-30"]],
      ["NJ-NW-1", 3, 3, "RED", ["2026-03-26", "2026-03-28", "2026-03-29", "2026-03-30"]],
      ["XH-BERLIN", 1, 1, "YELLOW", ["2026-03-30"]],
    ]);
    expect(open[3]!.message).toBe(
      "site XH-BERLIN has not reported for 2026-03-30 (due 2026-03-31 10:00, Europe/Berlin time); submit reports for 2026-03-30 with submitReports or a CSV upload",
    );
    expect((await checkCompliance(t.db, asOf2)).recorded).toEqual({ ON_TIME: 0, LATE: 0, MISSING: 0 });
  });

  it("looks back a bounded window: days whose cut-off passed more than 7 days ago are left alone", async () => {
    const result = await checkCompliance(t.db, new Date("2026-04-20T03:00:00Z"));
    // 04-13 to 04-19 for the four Shanghai sites (cut-offs 04-14 to 04-20 02:00Z), 04-12 to 04-18 for Berlin (08:00Z).
    expect(result.recorded).toEqual({ ON_TIME: 0, LATE: 0, MISSING: 35 });
    expect(await rowsOf("2026-03-31", "2026-04-11")).toEqual([]);
    const dates = await execute<{ site: string; first: string; last: string }>(
      sql`select s.code as site, min(rc.date)::text as first, max(rc.date)::text as last from report_compliance rc join site s on s.id = rc.site_id
          where rc.date > '2026-04-01' group by s.code order by s.code`,
    );
    expect(dates.map((d) => [d.site, d.first, d.last])).toEqual([
      ["HZ-MASK-1", "2026-04-13", "2026-04-19"],
      ["HZ-NEW", "2026-04-13", "2026-04-19"],
      ["HZ-XIHU-H1", "2026-04-13", "2026-04-19"],
      ["NJ-NW-1", "2026-04-13", "2026-04-19"],
      ["XH-BERLIN", "2026-04-12", "2026-04-18"],
    ]);
    // Only the days in the window count: March's missing days no longer do.
    const open = (await overdueAlerts()).filter((a) => a.status === "OPEN");
    expect(open.map((a) => [a.site, a.severity, a.details.missingDates.length, a.details.missingDates[0]])).toEqual([
      ["HZ-MASK-1", "RED", 7, "2026-04-13"],
      ["HZ-NEW", "RED", 7, "2026-04-13"],
      ["HZ-XIHU-H1", "RED", 7, "2026-04-13"],
      ["NJ-NW-1", "RED", 7, "2026-04-13"],
      ["XH-BERLIN", "RED", 7, "2026-04-12"],
    ]);
  });
});

async function siteId(code: string) {
  return (await execute<{ id: string }>(sql`select id from site where code = ${code}`))[0]?.id;
}

describe("reporting schedules per region", () => {
  let s: TestDatabase;
  let sWorld: World;
  let sAdmin: TestUser;
  let provincePlanner: TestUser;
  let countyPlanner: TestUser;
  let reporter: TestUser;
  let gql: ReturnType<typeof graphqlClient>;
  const DAY = "2026-06-15";

  beforeAll(async () => {
    s = await createTestDatabase();
    sWorld = await seedWorld(s.db);
    sAdmin = await makeUser(s.db, "ADMIN");
    provincePlanner = await makeUser(s.db, "PLANNER", { jurisdictionRegionCode: "330000" });
    countyPlanner = await makeUser(s.db, "PLANNER", { jurisdictionRegionCode: "330102" });
    reporter = await makeUser(s.db, "REPORTER", { organizationId: sWorld.maker.id });
    await s.db.execute(sql`update site set created_at = '2026-01-01T00:00:00Z'`);
    gql = graphqlClient(s.db);
  });
  afterAll(async () => s?.drop());

  const schedules = () =>
    s.db.execute<{ code: string; local_time: string; days_after: number }>(
      sql`select r.code, rs.cutoff_local_time as local_time, rs.cutoff_days_after as days_after from reporting_schedule rs join region r on r.id = rs.region_id order by r.code`,
      "objects",
    );
  const audits = () =>
    s.db.execute<{ action: string; entity_id: string; before: any; after: any }>(
      sql`select action, entity_id, before, after from audit_log where entity_type = 'reporting_schedule' order by id`,
      "objects",
    );
  const effective = async (regionCode: string) => {
    const e = await getReportingSchedule(s.db, sAdmin.viewer, { regionCode });
    return { region: e.region.code, localTime: e.localTime, daysAfter: e.daysAfter, setOn: e.setOn?.code ?? null };
  };

  it("applies a region's schedule to every region below it without one of its own, nearest first", async () => {
    expect(await effective("330102")).toEqual({ region: "330102", localTime: "10:00", daysAfter: 1, setOn: null });
    const set = await setReportingSchedule(s.db, sAdmin.actor, { regionCode: "330000", cutoffLocalTime: "08:00", cutoffDaysAfter: 1 });
    expect({ region: set.region.code, localTime: set.localTime, daysAfter: set.daysAfter, setOn: set.setOn?.code }).toEqual({
      region: "330000",
      localTime: "08:00",
      daysAfter: 1,
      setOn: "330000",
    });
    expect(await effective("330102")).toEqual({ region: "330102", localTime: "08:00", daysAfter: 1, setOn: "330000" });
    // The province's planner sets the city: its counties follow the city now, Jiangsu the default.
    await setReportingSchedule(s.db, provincePlanner.actor, { regionCode: "330100", cutoffLocalTime: "12:30", cutoffDaysAfter: 2 });
    expect(await effective("330106")).toEqual({ region: "330106", localTime: "12:30", daysAfter: 2, setOn: "330100" });
    expect(await effective("330000")).toEqual({ region: "330000", localTime: "08:00", daysAfter: 1, setOn: "330000" });
    expect(await effective("320102")).toEqual({ region: "320102", localTime: "10:00", daysAfter: 1, setOn: null });
    await setReportingSchedule(s.db, countyPlanner.actor, { regionCode: "330102", cutoffLocalTime: " 23:59 ", cutoffDaysAfter: 0 });
    expect(await schedules()).toEqual([
      { code: "330000", local_time: "08:00", days_after: 1 },
      { code: "330100", local_time: "12:30", days_after: 2 },
      { code: "330102", local_time: "23:59", days_after: 0 },
    ]);
    expect((await audits()).map((a) => [a.action, a.before?.cutoffLocalTime ?? null, a.after?.cutoffLocalTime])).toEqual([
      ["reportingSchedule.set", null, "08:00"],
      ["reportingSchedule.set", null, "12:30"],
      ["reportingSchedule.set", null, "23:59"],
    ]);
  });

  it("judges compliance and completeness by each site's own region's schedule", async () => {
    // Shangcheng: 23:59 the same day (15:59Z); Xihu: 12:30 two days later (04:30Z); Xuanwu: the default.
    const r = await submitReports(
      s.db,
      sAdmin.actor,
      ["HZ-MASK-1", "HZ-XIHU-H1", "NJ-NW-1"].map((siteCode) => ({ siteCode, productCode: "MASK-N95", date: DAY, onHand: 1 })),
      { backfillDays: 7 },
    );
    // 03:00Z the next day: late in Shangcheng (15:59Z the day before) and Xuanwu (02:00Z), on time in Xihu.
    await s.db.execute(sql`update report set submitted_at = '2026-06-16T03:00:00Z' where id = any(${sql.param(r.reportIds)}::bigint[])`);
    await checkCompliance(s.db, new Date("2026-06-18T00:00:00Z"));
    const rows = await s.db.execute<{ code: string; status: string; cutoff: string }>(
      sql`select s.code, rc.status::text as status, to_char(rc.cutoff_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI"Z"') as cutoff
          from report_compliance rc join site s on s.id = rc.site_id where rc.date = ${DAY} order by s.code`,
      "objects",
    );
    expect(rows).toEqual([
      { code: "HZ-MASK-1", status: "LATE", cutoff: "2026-06-15T15:59Z" },
      { code: "HZ-XIHU-H1", status: "ON_TIME", cutoff: "2026-06-17T04:30Z" },
      { code: "NJ-NW-1", status: "LATE", cutoff: "2026-06-16T02:00Z" },
    ]);
    const completeness = await reportingCompleteness(s.db, sAdmin.viewer, { regionCode: "CN", date: DAY });
    expect(completeness.map((c) => [c.regionCode, c.expectedSites, c.reportingSites, c.onTimeSites, c.lateSites, c.missingSites])).toEqual([
      ["CN", 3, 3, 1, 2, 0],
      ["320000", 1, 1, 0, 1, 0],
      ["330000", 2, 2, 1, 1, 0],
    ]);
  });

  it("clears a region's own schedule, so it follows the region above again", async () => {
    const cleared = await clearReportingSchedule(s.db, countyPlanner.actor, { regionCode: "330102" });
    expect([cleared.region.code, cleared.localTime, cleared.daysAfter, cleared.setOn?.code]).toEqual(["330102", "12:30", 2, "330100"]);
    // Clearing again finds nothing to remove and writes no audit row.
    await clearReportingSchedule(s.db, sAdmin.actor, { regionCode: "330102" });
    const a = await audits();
    expect(a.map((x) => x.action)).toEqual(["reportingSchedule.set", "reportingSchedule.set", "reportingSchedule.set", "reportingSchedule.clear"]);
    expect(a[3]).toMatchObject({ before: { cutoffLocalTime: "23:59", cutoffDaysAfter: 0 }, after: null });
    // Completeness follows at once: Shangcheng's 03:00Z report is on time by Hangzhou's 12:30 two days after.
    const rows = await reportingCompleteness(s.db, sAdmin.viewer, { regionCode: "330102", date: DAY });
    expect(rows.map((c) => [c.regionCode, c.onTimeSites, c.lateSites])).toEqual([["330102", 1, 0]]);
  });

  it("refuses bad inputs and callers with a message that says what to do, and stores nothing", async () => {
    const storedBefore = await schedules();
    const auditsBefore = (await audits()).length;
    const refusal = (actor: TestUser["actor"], input: Partial<SetReportingScheduleInput>) =>
      setReportingSchedule(s.db, actor, { regionCode: "330102", cutoffLocalTime: "10:00", cutoffDaysAfter: 1, ...input } as SetReportingScheduleInput).then(
        () => null,
        (e: { code: string; message: string }) => ({ code: e.code, message: e.message }),
      );
    const hhmm = (got: string) => `cutoffLocalTime must be a time of day written HH:MM, from 00:00 to 23:59 (e.g. "10:00" or "09:30"), got ${got}`;
    expect(await refusal(sAdmin.actor, { cutoffLocalTime: "25:00" })).toEqual({ code: "BAD_INPUT", message: hhmm('"25:00"') });
    expect(await refusal(sAdmin.actor, { cutoffLocalTime: "10:5" })).toEqual({ code: "BAD_INPUT", message: hhmm('"10:5"') });
    expect(await refusal(sAdmin.actor, { cutoffLocalTime: "10:00:00" })).toEqual({ code: "BAD_INPUT", message: hhmm('"10:00:00"') });
    const days = (got: string) => `cutoffDaysAfter must be a whole number of days from 0 to 7 after the reporting day (1 = the next day), got ${got}`;
    expect(await refusal(sAdmin.actor, { cutoffDaysAfter: 9 })).toEqual({ code: "BAD_INPUT", message: days("9") });
    expect(await refusal(sAdmin.actor, { cutoffDaysAfter: -1 })).toEqual({ code: "BAD_INPUT", message: days("-1") });
    expect(await refusal(sAdmin.actor, { cutoffDaysAfter: 1.5 })).toEqual({ code: "BAD_INPUT", message: days("1.5") });
    expect(await refusal(sAdmin.actor, { cutoffLocalTime: "00:00", cutoffDaysAfter: 0 })).toMatchObject({
      code: "BAD_INPUT",
      message: expect.stringContaining('for midnight at the end of the day use cutoffLocalTime "00:00" with cutoffDaysAfter 1'),
    });
    expect(await refusal(sAdmin.actor, { regionCode: "999999" })).toEqual({ code: "NOT_FOUND", message: "no region with code 999999; see regions { code } for the codes" });
    expect(await refusal(sAdmin.actor, { regionCode: "  " })).toMatchObject({ code: "BAD_INPUT", message: expect.stringContaining("regionCode must be the code of a region") });
    const outside = "not found, or not visible to you: you may set reporting schedules for 330102 and the regions below it; see regions { code } for their codes";
    expect(await refusal(countyPlanner.actor, { regionCode: "330100" })).toEqual({ code: "NOT_FOUND", message: `region 330100 ${outside}` });
    expect(await refusal(countyPlanner.actor, { regionCode: "999999" })).toEqual({ code: "NOT_FOUND", message: `region 999999 ${outside}` });
    expect(await refusal(provincePlanner.actor, { regionCode: "320000" })).toMatchObject({ code: "NOT_FOUND", message: expect.stringContaining("you may set reporting schedules for 330000") });
    expect(await refusal(reporter.actor, {})).toEqual({
      code: "FORBIDDEN",
      message: "only PLANNER users (inside their jurisdiction) and ADMIN users may set reporting schedules; your role is REPORTER",
    });
    await expect(clearReportingSchedule(s.db, countyPlanner.actor, { regionCode: "330000" })).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(getReportingSchedule(s.db, reporter.viewer, { regionCode: "330102" })).rejects.toMatchObject({ code: "FORBIDDEN" });
    expect(await schedules()).toEqual(storedBefore);
    expect((await audits()).length).toBe(auditsBefore);
  });

  it("answers over GraphQL, hiding the region a schedule comes from when it is outside the jurisdiction", async () => {
    const fields = "region { code } cutoffLocalTime cutoffDaysAfter inherited setOn { code } updatedAt";
    const set = await gql(provincePlanner.token, `mutation { setReportingSchedule(regionCode: "330000", cutoffLocalTime: "09:00", cutoffDaysAfter: 1) { ${fields} } }`);
    expect(set.errors).toBeUndefined();
    expect(set.data.setReportingSchedule).toMatchObject({ region: { code: "330000" }, cutoffLocalTime: "09:00", cutoffDaysAfter: 1, inherited: false, setOn: { code: "330000" } });
    expect(Date.parse(set.data.setReportingSchedule.updatedAt)).toBeGreaterThan(Date.now() - 60_000);

    const county = await gql(countyPlanner.token, `{ reportingSchedule(regionCode: "330102") { ${fields} } }`);
    expect(county.errors).toBeUndefined();
    expect(county.data.reportingSchedule).toMatchObject({ region: { code: "330102" }, cutoffLocalTime: "12:30", cutoffDaysAfter: 2, inherited: true, setOn: null });
    const province = await gql(provincePlanner.token, `{ reportingSchedule(regionCode: "330106") { ${fields} } }`);
    expect(province.data.reportingSchedule).toMatchObject({ inherited: true, setOn: { code: "330100" } });
    const dflt = await gql(sAdmin.token, `{ reportingSchedule(regionCode: "320102") { ${fields} } }`);
    expect(dflt.data.reportingSchedule).toEqual({ region: { code: "320102" }, cutoffLocalTime: "10:00", cutoffDaysAfter: 1, inherited: true, setOn: null, updatedAt: null });

    const cleared = await gql(sAdmin.token, `mutation { clearReportingSchedule(regionCode: "330100") { ${fields} } }`);
    expect(cleared.data.clearReportingSchedule).toMatchObject({ region: { code: "330100" }, cutoffLocalTime: "09:00", inherited: true, setOn: { code: "330000" } });

    const bad = await gql(sAdmin.token, `mutation { setReportingSchedule(regionCode: "330102", cutoffLocalTime: "25:00", cutoffDaysAfter: 1) { cutoffLocalTime } }`);
    expect(bad.errors?.[0]).toMatchObject({ message: expect.stringContaining('cutoffLocalTime must be a time of day written HH:MM'), extensions: { code: "BAD_INPUT" } });
    const neighbour = await gql(countyPlanner.token, `{ reportingSchedule(regionCode: "330106") { cutoffLocalTime } }`);
    expect(neighbour.errors?.[0]).toMatchObject({ message: expect.stringContaining("region 330106 not found, or not visible to you"), extensions: { code: "NOT_FOUND" } });
    for (const who of [reporter.token, null]) {
      expect((await gql(who, `{ reportingSchedule(regionCode: "330102") { cutoffLocalTime } }`)).errors?.[0]?.message).toMatch(/not allowed|not signed in/);
    }
  });

  it("gives the same instants as PostgreSQL's AT TIME ZONE, around both changes and in both hemispheres", async () => {
    const zones = ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kathmandu"];
    const days = ["2026-03-06", "2026-03-07", "2026-03-27", "2026-03-28", "2026-03-29", "2026-04-04", "2026-10-03", "2026-10-24", "2026-10-25", "2026-10-31", "2026-12-31"];
    const times: [string, number][] = [["10:00", 1], ["02:30", 1], ["01:30", 1], ["02:00", 1], ["03:00", 0], ["23:59", 7]];
    const cases = zones.flatMap((zone) => days.flatMap((date) => times.map(([localTime, daysAfter]) => ({ zone, date, localTime, daysAfter }))));
    const pg = await s.db.execute<{ i: number; at: string }>(
      sql`select c.i, to_char((((c.date + c.days_after) + c.local_time::time) at time zone c.zone) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as at
          from jsonb_to_recordset(${JSON.stringify(cases.map((c, i) => ({ ...c, i, days_after: c.daysAfter, local_time: c.localTime })))}::text::jsonb)
               as c(i int, zone text, date date, local_time text, days_after int)
          order by c.i`,
      "objects",
    );
    const mismatches = cases.filter((c, i) => cutoff(c.date, c.zone, c.localTime, c.daysAfter) !== pg[i]!.at);
    expect(mismatches).toEqual([]);
    expect(pg).toHaveLength(cases.length);
  });
});

describe("the compliance.check job, through a worker", () => {
  const prefix = `{test-${randomBytes(4).toString("hex")}}`;
  const connection = { url: TEST_REDIS_URL, maxRetriesPerRequest: null };
  let w: TestDatabase;
  let wWorld: World;
  let wAdmin: TestUser;
  let worker: RunningWorker;
  let complianceEvents: QueueEvents;
  let reportEvents: QueueEvents;

  beforeAll(async () => {
    w = await createTestDatabase();
    wWorld = await seedWorld(w.db);
    wAdmin = await makeUser(w.db, "ADMIN");
    await w.db.execute(sql`update site set created_at = now() - interval '30 days'`);
    worker = await startWorker({ config: { QUEUE_PREFIX: prefix, IDEMPOTENCY_TTL_HOURS: 72 }, db: w.db, logger: createLogger({ LOG_LEVEL: "silent" }), connection });
    // The quarter-hourly schedule would race the jobs below; they are what is under test.
    await worker.queues.get("compliance")!.removeJobScheduler("compliance-check-quarter-hourly");
    complianceEvents = new QueueEvents("compliance", { connection, prefix });
    reportEvents = new QueueEvents("reports", { connection, prefix });
    await Promise.all([complianceEvents.waitUntilReady(), reportEvents.waitUntilReady()]);
  });
  afterAll(async () => {
    await complianceEvents?.close();
    await reportEvents?.close();
    await worker?.close();
    await clearRedisPrefix(TEST_REDIS_URL, prefix);
    await w?.drop();
  });

  /**
   * Resolves when the job with this id, which the outbox relay may or may not have enqueued yet,
   * has completed; rejects when it fails.
   */
  const finished = (events: QueueEvents, queueName: "reports", jobId: string) =>
    new Promise<void>((resolve, reject) => {
      const off = () => {
        events.off("completed", done);
        events.off("failed", failed);
      };
      const done = ({ jobId: id }: { jobId: string }) => {
        if (id !== jobId) return;
        off();
        resolve();
      };
      const failed = ({ jobId: id, failedReason }: { jobId: string; failedReason: string }) => {
        if (id !== jobId) return;
        off();
        reject(new Error(failedReason));
      };
      events.on("completed", done);
      events.on("failed", failed);
      // It may have finished before the listeners were in place.
      void worker.queues
        .get(queueName)!
        .getJob(jobId)
        .then(async (job) => {
          if (!job || !(await job.isCompleted())) return;
          off();
          resolve();
        }, reject);
    });

  it("marks the missing days and raises alerts; a submission then resolves its site's alert through the reports job", async () => {
    const queue = worker.queues.get("compliance")!;
    const job = await queue.add("compliance.check", {}, { jobId: "compliance-now" });
    const result = (await job.waitUntilFinished(complianceEvents, 20_000)) as { recorded: Record<string, number>; alerts: { raised: number } };
    // Nobody has reported: 7 days in the window for each of the three sites (all in Asia/Shanghai).
    expect(result).toMatchObject({ recorded: { ON_TIME: 0, LATE: 0, MISSING: 21 }, reported: 0, alerts: { raised: 3 } });

    const again = await queue.add("compliance.check", { asOf: new Date().toISOString() }, { jobId: "compliance-again" });
    expect(await again.waitUntilFinished(complianceEvents, 20_000)).toMatchObject({ recorded: { ON_TIME: 0, LATE: 0, MISSING: 0 }, alerts: { raised: 0, resolved: 0 } });

    const missing = await w.db.execute<{ date: string }>(
      sql`select date::text as date from report_compliance where site_id = ${wWorld.makerSite.id}::uuid and status = 'MISSING' order by date`,
      "objects",
    );
    expect(missing).toHaveLength(7);
    expect(missing.at(-1)!.date <= shiftDate(localToday(new Date(), "Asia/Shanghai"), -1)).toBe(true);
    const r = await submitReports(
      w.db,
      wAdmin.actor,
      missing.map(({ date }) => ({ siteCode: "HZ-MASK-1", productCode: "MASK-N95", date, onHand: 5 })),
      { backfillDays: 7 },
    );
    expect(r.rejected).toEqual([]);
    const [event] = await w.db.execute<{ id: number }>(sql`select id from outbox where topic = 'reports.submitted' order by id desc limit 1`, "objects");
    await finished(reportEvents, "reports", `outliers-${event!.id}`);

    const statuses = await w.db.execute<{ status: string; n: number }>(
      sql`select status::text as status, count(*)::int as n from report_compliance where site_id = ${wWorld.makerSite.id}::uuid group by status`,
      "objects",
    );
    expect(statuses).toEqual([{ status: "LATE", n: 7 }]);
    const alerts = await w.db.execute<{ site_id: string; status: string; resolution: string | null }>(
      sql`select site_id, status::text as status, resolution::text as resolution from alert where kind = 'REPORT_OVERDUE' order by site_id`,
      "objects",
    );
    expect(alerts.find((a) => a.site_id === wWorld.makerSite.id)).toMatchObject({ status: "RESOLVED", resolution: "CLEARED" });
    expect(alerts.filter((a) => a.status === "OPEN")).toHaveLength(2);
  });

  it("refuses a malformed asOf without retrying", async () => {
    const queue = worker.queues.get("compliance")!;
    const job = await queue.add("compliance.check", { asOf: "yesterday" } as never, { jobId: "compliance-bad", attempts: 3 });
    await expect(job.waitUntilFinished(complianceEvents, 10_000)).rejects.toThrow(/invalid payload for compliance.check/);
  });
});

// Reporting compliance: when each site's daily report is due (its region's cut-off, in the site's
// own time zone), whether it came on time, late or not at all, and the REPORT_OVERDUE alerts
// that follow up the missing ones.
import { TZDate, tz, tzOffset } from "@date-fns/tz";
import { addDays, format, max, parseISO, set, subDays, subMinutes } from "date-fns";
import { eq, sql, type SQL } from "drizzle-orm";
import type { Database } from "../db/index.js";
import { reportingScheduleTable } from "../db/schema.js";
import { reconcileAlerts, type AlertCondition, type ReconcileResult } from "./alerts/engine.js";
import { writeAudit } from "./audit.js";
import { badInput, forbidden, notFound } from "./errors.js";
import type { RegionRow, RiskLevel } from "./types.js";
import type { Actor, Viewer } from "./viewer.js";

/** When a day's report is due: `localTime` on the day `daysAfter` days later, in the site's zone. */
export interface ReportingSchedule {
  localTime: string;
  daysAfter: number;
}

/** The cut-off of every region that neither has a schedule of its own nor inherits one. */
export const DEFAULT_REPORTING_SCHEDULE: ReportingSchedule = { daysAfter: 1, localTime: "10:00" };

/**
 * How far back the compliance check looks: days whose cut-off passed longer ago are neither
 * recorded nor re-checked, and no longer count towards a REPORT_OVERDUE alert.
 */
export const COMPLIANCE_LOOKBACK_DAYS = 7;

const utc = tz("UTC");
const LOCAL_TIME = /^([01]\d|2[0-3]):([0-5]\d)$/;

/** A calendar date (YYYY-MM-DD) `days` days later (or earlier); no time zone is involved. */
export function shiftDate(date: string, days: number): string {
  return format(addDays(parseISO(date, { in: utc }), days), "yyyy-MM-dd");
}

/**
 * The instant a site's report for `date` is due: `schedule.localTime` on `date` +
 * `schedule.daysAfter`, on the wall clock of `timeZone`.
 *
 * Where a daylight-saving change makes that wall-clock time ambiguous, the later instant wins,
 * so nobody is late who sent while their clock still showed a time before the cut-off: a time
 * the clocks skip (02:30 when 02:00 jumps to 03:00) is read with the offset before the jump
 * (03:30 summer time), and a time they repeat (02:30 when 03:00 falls back to 02:00) is its
 * second occurrence (02:30 winter time). It is also what PostgreSQL's `AT TIME ZONE` gives.
 * @date-fns/tz's TZDate constructor resolves repeated times differently per zone (the earlier one
 * in America/New_York, the later in Europe/Berlin), hence the explicit choice here.
 */
export function reportingCutoff(date: string, timeZone: string, schedule: ReportingSchedule = DEFAULT_REPORTING_SCHEDULE): Date {
  const match = LOCAL_TIME.exec(schedule.localTime);
  if (!match) throw badInput(`cut-off time must be written HH:MM, got ${JSON.stringify(schedule.localTime)}`);
  // The wall-clock reading written as if it were UTC; each candidate offset turns it into an instant.
  const wall = set(addDays(parseISO(date, { in: utc }), schedule.daysAfter), { hours: Number(match[1]), minutes: Number(match[2]) }, { in: utc });
  // Offset changes are days apart, so the offsets a day either side are the only candidates.
  const offsets = [tzOffset(timeZone, subDays(wall, 1)), tzOffset(timeZone, addDays(wall, 1))];
  if (offsets.some(Number.isNaN)) throw badInput(`${JSON.stringify(timeZone)} is not an IANA time zone such as Asia/Shanghai`);
  const candidates = offsets.map((offset) => subMinutes(wall, offset));
  const valid = candidates.filter((instant, i) => tzOffset(timeZone, instant) === offsets[i]);
  return new Date(max(valid.length > 0 ? valid : candidates).getTime());
}

/** The local wall-clock time of an instant in a zone, as `YYYY-MM-DD HH:MM`. */
export const localDateTime = (instant: Date, timeZone: string) => format(new TZDate(instant.getTime(), timeZone), "yyyy-MM-dd HH:mm");

/**
 * Every site matching `where` (over `site s` and its `region rg`) with its effective schedule:
 * that of the nearest region at or above the site's region that has one, else the default. The
 * ancestors are read from the materialised path, one primary-key lookup each.
 */
export function siteSchedulesSql(where: SQL): SQL {
  return sql`select s.id as site_id, s.code as site_code, s.organization_id, s.region_id, rg.path, s.time_zone, s.created_at,
                    coalesce(x.local_time, ${DEFAULT_REPORTING_SCHEDULE.localTime}::text) as local_time,
                    coalesce(x.days_after, ${DEFAULT_REPORTING_SCHEDULE.daysAfter}::int) as days_after
             from region rg
             join site s on s.region_id = rg.id
             left join lateral (
               select rs.cutoff_local_time as local_time, rs.cutoff_days_after as days_after
               from unnest(string_to_array(trim(both '/' from rg.path), '/')::int[]) with ordinality as a(region_id, depth)
               join reporting_schedule rs on rs.region_id = a.region_id
               order by a.depth desc
               limit 1
             ) x on true
             where ${where}`;
}

/** One (zone, schedule) that some site follows. */
export interface ScheduleCombo {
  time_zone: string;
  local_time: string;
  days_after: number;
}

/** The distinct (zone, schedule) pairs of the sites matching `where`: few, however many sites. */
export async function scheduleCombos(db: Database, where: SQL): Promise<ScheduleCombo[]> {
  const rows = await db.execute<ScheduleCombo>(
    sql`select distinct ss.time_zone, ss.local_time, ss.days_after from (${siteSchedulesSql(where)}) ss`,
    "objects",
  );
  return rows.map((r) => ({ ...r, days_after: Number(r.days_after) }));
}

export interface CutoffRow extends ScheduleCombo {
  date: string;
  cutoff_at: string;
}

/**
 * The cut-offs of `dates` for each combination, computed here (date-fns, with time zones) and
 * handed to SQL as rows of {@link cutoffsSql}, so the database never does its own zone arithmetic.
 */
export function cutoffRows(combos: ScheduleCombo[], dates: string[], keep: (cutoff: Date) => boolean = () => true): CutoffRow[] {
  const rows: CutoffRow[] = [];
  for (const combo of combos) {
    for (const date of dates) {
      const cutoff = reportingCutoff(date, combo.time_zone, { localTime: combo.local_time, daysAfter: combo.days_after });
      if (keep(cutoff)) rows.push({ ...combo, date, cutoff_at: cutoff.toISOString() });
    }
  }
  return rows;
}

/** Rows of {@link cutoffRows} as a relation `(time_zone, local_time, days_after, date, cutoff_at)`. */
export const cutoffsSql = (rows: CutoffRow[]) =>
  sql`select * from jsonb_to_recordset(${JSON.stringify(rows)}::text::jsonb) as c(time_zone text, local_time text, days_after int, date date, cutoff_at timestamptz)`;

// ---------------------------------------------------------------------------------------------
// Schedules per region

export interface EffectiveSchedule extends ReportingSchedule {
  region: RegionRow;
  /** The region whose schedule applies (the region itself or the nearest above it); null: the default. */
  setOn: RegionRow | null;
  /** When the applying schedule was set; null for the default. */
  updatedAt: Date | null;
}

async function effectiveSchedule(db: Database, region: RegionRow): Promise<EffectiveSchedule> {
  const [row] = await db.execute<{ region_id: number; local_time: string; days_after: number; updated_at: number }>(
    sql`select rs.region_id, rs.cutoff_local_time as local_time, rs.cutoff_days_after as days_after, extract(epoch from rs.updated_at)::float8 as updated_at
        from unnest(string_to_array(trim(both '/' from ${region.path}::text), '/')::int[]) with ordinality as a(region_id, depth)
        join reporting_schedule rs on rs.region_id = a.region_id
        order by a.depth desc
        limit 1`,
    "objects",
  );
  if (!row) return { region, setOn: null, updatedAt: null, ...DEFAULT_REPORTING_SCHEDULE };
  const setOn = Number(row.region_id) === region.id ? region : ((await db.query.regionTable.findFirst({ where: { id: Number(row.region_id) } })) ?? null);
  return { region, setOn, updatedAt: new Date(Number(row.updated_at) * 1000), localTime: row.local_time, daysAfter: Number(row.days_after) };
}

function requireScheduler(viewer: Viewer | null, what: string): Viewer {
  if (!viewer || (viewer.role !== "ADMIN" && viewer.role !== "PLANNER")) {
    throw forbidden(`only PLANNER users (inside their jurisdiction) and ADMIN users may ${what}; your role is ${viewer?.role ?? "none"}`);
  }
  return viewer;
}

/** A region an admin, or a planner whose jurisdiction holds it, may look at and schedule. */
async function findScheduleRegion(db: Database, viewer: Viewer, regionCode: unknown, what: string): Promise<RegionRow> {
  const code = typeof regionCode === "string" ? regionCode.trim() : "";
  if (!code) throw badInput("regionCode must be the code of a region, e.g. 330000; see regions { code }", { field: "regionCode" });
  const region = await db.query.regionTable.findFirst({ where: { code } });
  if (viewer.role === "ADMIN") {
    if (!region) throw notFound(`no region with code ${code}; see regions { code } for the codes`);
    return region;
  }
  // Unknown and outside the jurisdiction get the same answer, so a planner learns nothing outside it.
  const jurisdiction = viewer.jurisdiction;
  if (!region || !jurisdiction || !region.path.startsWith(jurisdiction.path)) {
    throw notFound(
      `region ${code} not found, or not visible to you: you may ${what} ${jurisdiction?.code ?? "no region"} and the regions below it; see regions { code } for their codes`,
    );
  }
  return region;
}

/** The schedule that applies to a region's sites: its own, else the nearest region's above it, else the default. */
export async function getReportingSchedule(db: Database, viewer: Viewer | null, input: { regionCode: string }): Promise<EffectiveSchedule> {
  const v = requireScheduler(viewer, "read reporting schedules");
  return effectiveSchedule(db, await findScheduleRegion(db, v, input.regionCode, "read the reporting schedules of"));
}

export interface SetReportingScheduleInput {
  regionCode: string;
  cutoffLocalTime: string;
  cutoffDaysAfter: number;
}

function parseSchedule(input: SetReportingScheduleInput): ReportingSchedule {
  const localTime = typeof input.cutoffLocalTime === "string" ? input.cutoffLocalTime.trim() : input.cutoffLocalTime;
  if (typeof localTime !== "string" || !LOCAL_TIME.test(localTime)) {
    throw badInput(
      `cutoffLocalTime must be a time of day written HH:MM, from 00:00 to 23:59 (e.g. "10:00" or "09:30"), got ${JSON.stringify(input.cutoffLocalTime)}`,
      { field: "cutoffLocalTime" },
    );
  }
  const daysAfter = input.cutoffDaysAfter;
  if (typeof daysAfter !== "number" || !Number.isInteger(daysAfter) || daysAfter < 0 || daysAfter > 7) {
    throw badInput(`cutoffDaysAfter must be a whole number of days from 0 to 7 after the reporting day (1 = the next day), got ${JSON.stringify(daysAfter)}`, {
      field: "cutoffDaysAfter",
    });
  }
  if (daysAfter === 0 && localTime === "00:00") {
    throw badInput(
      'a cut-off at 00:00 on the reporting day itself (cutoffDaysAfter 0) falls before the day begins; for midnight at the end of the day use cutoffLocalTime "00:00" with cutoffDaysAfter 1',
      { field: "cutoffDaysAfter" },
    );
  }
  return { localTime, daysAfter };
}

/**
 * Sets the cut-off of a region and of every region below it that has none of its own. Days the
 * compliance check already recorded keep the cut-off they were judged by.
 */
export async function setReportingSchedule(db: Database, actor: Actor, input: SetReportingScheduleInput): Promise<EffectiveSchedule> {
  const viewer = requireScheduler(actor.viewer, "set reporting schedules");
  const schedule = parseSchedule(input);
  return db.transaction(async (tx) => {
    const region = await findScheduleRegion(tx, viewer, input.regionCode, "set reporting schedules for");
    const [before] = await tx.select().from(reportingScheduleTable).where(eq(reportingScheduleTable.regionId, region.id)).for("update");
    const [after] = await tx
      .insert(reportingScheduleTable)
      .values({ regionId: region.id, cutoffLocalTime: schedule.localTime, cutoffDaysAfter: schedule.daysAfter })
      .onConflictDoUpdate({
        target: reportingScheduleTable.regionId,
        set: { cutoffLocalTime: schedule.localTime, cutoffDaysAfter: schedule.daysAfter, updatedAt: sql`now()` },
      })
      .returning();
    await writeAudit(tx, actor, { action: "reportingSchedule.set", entityType: "reporting_schedule", entityId: region.id, before: before ?? null, after });
    return effectiveSchedule(tx, region);
  });
}

/** Removes a region's own schedule: its sites follow the nearest region above it again (or the default). */
export async function clearReportingSchedule(db: Database, actor: Actor, input: { regionCode: string }): Promise<EffectiveSchedule> {
  const viewer = requireScheduler(actor.viewer, "clear reporting schedules");
  return db.transaction(async (tx) => {
    const region = await findScheduleRegion(tx, viewer, input.regionCode, "set reporting schedules for");
    const [before] = await tx.delete(reportingScheduleTable).where(eq(reportingScheduleTable.regionId, region.id)).returning();
    if (before) await writeAudit(tx, actor, { action: "reportingSchedule.clear", entityType: "reporting_schedule", entityId: region.id, before, after: null });
    return effectiveSchedule(tx, region);
  });
}

// ---------------------------------------------------------------------------------------------
// The compliance check

export type ComplianceStatus = "ON_TIME" | "LATE" | "MISSING";

export interface ComplianceCheckResult {
  /** Site-days recorded for the first time, by status. */
  recorded: Record<ComplianceStatus, number>;
  /** MISSING site-days whose report has come since: now LATE (or ON_TIME, if it was sent in time but committed after a check). */
  reported: number;
  /** What the REPORT_OVERDUE alerts did; null when nothing could have changed them. */
  alerts: ReconcileResult | null;
}

/** One compliance writer at a time: the scheduled check and the re-checks after reports. */
const lockCompliance = (tx: Database) => tx.execute(sql`select pg_advisory_xact_lock(hashtextextended('report_compliance', 0))`);

/** The oldest date whose cut-off can fall in the look-back window, for index ranges on date. */
const windowFirstDate = (now: Date) => shiftDate(format(now, "yyyy-MM-dd", { in: utc }), -(COMPLIANCE_LOOKBACK_DAYS + 9));

/**
 * Records, for every site and every day whose cut-off passed within the last
 * {@link COMPLIANCE_LOOKBACK_DAYS} days (and by which the site existed), whether its first report
 * of the day (any product; revision 1 of a corrected report) came before the cut-off (ON_TIME),
 * after it (LATE) or not at all (MISSING); a MISSING day reported since becomes LATE. Then brings
 * the REPORT_OVERDUE alerts in line: one per site with missing days, resolved when none is left.
 * Set-based and idempotent: a second run with the same `now` changes nothing.
 */
export async function checkCompliance(db: Database, now: Date): Promise<ComplianceCheckResult> {
  const windowStart = subDays(now, COMPLIANCE_LOOKBACK_DAYS);
  const firstDate = windowFirstDate(now);
  const lastDate = shiftDate(format(now, "yyyy-MM-dd", { in: utc }), 1);
  const dates: string[] = [];
  for (let d = firstDate; d <= lastDate; d = shiftDate(d, 1)) dates.push(d);

  return db.transaction(async (tx) => {
    await lockCompliance(tx);
    const combos = await scheduleCombos(tx, sql`true`);
    const cutoffs = cutoffRows(combos, dates, (c) => c > windowStart && c <= now);
    const marked = await tx.execute<{ status: ComplianceStatus; inserted: boolean; n: number }>(
      sql`with cutoffs as (${cutoffsSql(cutoffs)}),
          due as (
            select ss.site_id, c.date, c.cutoff_at
            from (${siteSchedulesSql(sql`true`)}) ss
            join cutoffs c on c.time_zone = ss.time_zone and c.local_time = ss.local_time and c.days_after = ss.days_after
            where ss.created_at <= c.cutoff_at
          ),
          -- New site-days, and missing ones that a report may have filled since (judged by the
          -- cut-off they were recorded with).
          pending as materialized (
            select d.site_id, d.date, d.cutoff_at from due d
            where not exists (select 1 from report_compliance rc where rc.site_id = d.site_id and rc.date = d.date)
            union all
            select rc.site_id, rc.date, rc.cutoff_at from report_compliance rc
            where rc.status = 'MISSING' and rc.date >= ${firstDate}::date and rc.cutoff_at > ${windowStart}
          ),
          -- One index range per product on report (product_id, date), over the pending dates only.
          first_submission as (
            select d.site_id, d.date, min(coalesce(rv.submitted_at, d.submitted_at)) as first_at
            from product p
            cross join lateral (
              select r.id, r.site_id, r.date, r.revision, r.submitted_at from report r
              where r.product_id = p.id and r.date between (select min(date) from pending) and (select max(date) from pending)
            ) d
            left join report_revision rv on rv.report_id = d.id and rv.revision = 1 and d.revision > 1
            where (d.site_id, d.date) in (select site_id, date from pending)
            group by d.site_id, d.date
          ),
          ${upsertCompliance(now)}`,
      "objects",
    );
    const result = summarise(marked);
    const alerts = await reconcileOverdue(tx, now, null);
    return { ...result, alerts };
  });
}

/** The tail of the marking statement: judges `pending` against `first_submission` and writes. */
function upsertCompliance(now: Date): SQL {
  return sql`written as (
      insert into report_compliance (site_id, date, status, cutoff_at, first_submitted_at, checked_at)
      select p.site_id, p.date,
             (case when f.first_at is null then 'MISSING' when f.first_at < p.cutoff_at then 'ON_TIME' else 'LATE' end)::compliance_status,
             p.cutoff_at, f.first_at, ${now}
      from pending p left join first_submission f on f.site_id = p.site_id and f.date = p.date
      on conflict (site_id, date) do update
        set status = excluded.status, first_submitted_at = excluded.first_submitted_at, checked_at = excluded.checked_at
        where report_compliance.status = 'MISSING' and excluded.status <> 'MISSING'
      returning status, (xmax = 0) as inserted
    )
    select status, inserted, count(*)::int as n from written group by status, inserted`;
}

function summarise(rows: { status: ComplianceStatus; inserted: boolean; n: number }[]): Omit<ComplianceCheckResult, "alerts"> {
  const recorded: Record<ComplianceStatus, number> = { ON_TIME: 0, LATE: 0, MISSING: 0 };
  let reported = 0;
  for (const r of rows) {
    if (r.inserted) recorded[r.status] += Number(r.n);
    else reported += Number(r.n);
  }
  return { recorded, reported };
}

/**
 * After reports came in: turns the sites' MISSING days that now have a report into LATE (or
 * ON_TIME) and resolves or lowers their REPORT_OVERDUE alerts at once, rather than at the next
 * scheduled check. Cheap when the sites have nothing missing: one index lookup per site.
 */
export async function recheckOverdueSites(db: Database, siteIds: string[], now: Date = new Date()): Promise<ComplianceCheckResult> {
  const ids = [...new Set(siteIds)];
  const none: ComplianceCheckResult = { recorded: { ON_TIME: 0, LATE: 0, MISSING: 0 }, reported: 0, alerts: null };
  if (ids.length === 0) return none;
  const windowStart = subDays(now, COMPLIANCE_LOOKBACK_DAYS);
  const firstDate = windowFirstDate(now);
  const idList = sql`${sql.param(ids)}::uuid[]`;
  const [missing] = await db.execute<{ n: number }>(
    sql`select count(*)::int as n from report_compliance
        where site_id = any(${idList}) and status = 'MISSING' and date >= ${firstDate}::date and cutoff_at > ${windowStart}`,
    "objects",
  );
  if (!missing || Number(missing.n) === 0) return none;

  return db.transaction(async (tx) => {
    await lockCompliance(tx);
    const marked = await tx.execute<{ status: ComplianceStatus; inserted: boolean; n: number }>(
      sql`with pending as materialized (
            select rc.site_id, rc.date, rc.cutoff_at from report_compliance rc
            where rc.site_id = any(${idList}) and rc.status = 'MISSING' and rc.date >= ${firstDate}::date and rc.cutoff_at > ${windowStart}
          ),
          -- Few site-days: the report natural key (site_id, product_id, date) per site.
          first_submission as (
            select p.site_id, p.date, min(coalesce(rv.submitted_at, r.submitted_at)) as first_at
            from pending p
            join report r on r.site_id = p.site_id and r.date = p.date
            left join report_revision rv on rv.report_id = r.id and rv.revision = 1 and r.revision > 1
            group by p.site_id, p.date
          ),
          ${upsertCompliance(now)}`,
      "objects",
    );
    const result = summarise(marked);
    if (result.reported === 0) return { ...result, alerts: null };
    return { ...result, alerts: await reconcileOverdue(tx, now, ids) };
  });
}

/** {@link recheckOverdueSites} for the sites of some reports (the job after a submission has report ids). */
export async function recheckOverdueReports(db: Database, reportIds: number[], now: Date = new Date()): Promise<ComplianceCheckResult> {
  const sites = await db.execute<{ site_id: string }>(
    sql`select distinct site_id from report where id = any(${sql.param(reportIds)}::bigint[])`,
    "objects",
  );
  return recheckOverdueSites(
    db,
    sites.map((s) => s.site_id),
    now,
  );
}

/** The dedupe key of a site's REPORT_OVERDUE alert. */
export const overdueKey = (siteId: string) => `REPORT_OVERDUE:site:${siteId}`;

/** Escalation with the number of missing days in the window: 1, 2-3, 4 or more. */
export function overdueStage(missingDays: number): { stage: number; severity: RiskLevel } {
  if (missingDays >= 4) return { stage: 3, severity: "RED" };
  if (missingDays >= 2) return { stage: 2, severity: "ORANGE" };
  return { stage: 1, severity: "YELLOW" };
}

/**
 * One REPORT_OVERDUE condition per site (all sites, or `siteIds`) with a MISSING day in the
 * window, reconciled over the same sites: the alerts of sites with nothing missing are resolved.
 */
async function reconcileOverdue(tx: Database, now: Date, siteIds: string[] | null): Promise<ReconcileResult> {
  const windowStart = subDays(now, COMPLIANCE_LOOKBACK_DAYS);
  const rows = await tx.execute<{
    site_id: string;
    site_code: string;
    region_id: number;
    organization_id: string;
    time_zone: string;
    missing: string[];
    late: string[];
    cutoffs: string[];
  }>(
    sql`select s.id as site_id, s.code as site_code, s.region_id, s.organization_id, s.time_zone,
               array_agg(rc.date::text order by rc.date) filter (where rc.status = 'MISSING') as missing,
               coalesce(array_agg(rc.date::text order by rc.date) filter (where rc.status = 'LATE'), '{}') as late,
               array_agg(to_char(rc.cutoff_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') order by rc.date) filter (where rc.status = 'MISSING') as cutoffs
        from report_compliance rc join site s on s.id = rc.site_id
        where rc.status <> 'ON_TIME' and rc.date >= ${windowFirstDate(now)}::date and rc.cutoff_at > ${windowStart} and rc.cutoff_at <= ${now}
          ${siteIds ? sql`and rc.site_id = any(${sql.param(siteIds)}::uuid[])` : sql``}
        group by s.id
        having bool_or(rc.status = 'MISSING')
        order by s.code`,
    "objects",
  );
  const conditions: AlertCondition[] = rows.map((r) => {
    const { stage, severity } = overdueStage(r.missing.length);
    const dates = r.missing.join(", ");
    const due = r.cutoffs.map((c) => localDateTime(new Date(c), r.time_zone));
    const dueText = due.length === 1 ? due[0] : `${due.slice(0, -1).join(", ")} and ${due.at(-1)}`;
    return {
      kind: "REPORT_OVERDUE",
      dedupeKey: overdueKey(r.site_id),
      stage,
      severity,
      regionId: Number(r.region_id),
      organizationId: r.organization_id,
      siteId: r.site_id,
      message:
        `site ${r.site_code} has not reported for ${dates} (due ${dueText}, ${r.time_zone} time); ` +
        `submit reports for ${dates} with submitReports or a CSV upload`,
      details: {
        siteCode: r.site_code,
        timeZone: r.time_zone,
        missingDates: r.missing,
        lateDates: r.late,
        cutoffs: Object.fromEntries(r.missing.map((d, i) => [d, r.cutoffs[i]])),
      },
    };
  });
  return reconcileAlerts(tx, siteIds ? { kind: "REPORT_OVERDUE", dedupeKeys: siteIds.map(overdueKey) } : { kind: "REPORT_OVERDUE" }, conditions);
}

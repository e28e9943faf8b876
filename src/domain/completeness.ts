import { sql } from "drizzle-orm";
import type { Database } from "../db/index.js";
import { cutoffRows, cutoffsSql, scheduleCombos, siteSchedulesSql } from "./compliance.js";
import { badInput, forbidden, notFound } from "./errors.js";
import { dateProblem } from "./reports/validate.js";
import type { Viewer } from "./viewer.js";


export interface CompletenessRow {
  regionId: number;
  regionCode: string;
  date: string;
  /** Sites in the region's subtree that existed by the cut-off. */
  expectedSites: number;
  /** Of those, the sites with at least one report (any product) for the date. */
  reportingSites: number;
  /** Of those, the sites whose first submission for the date came before the cut-off. */
  onTimeSites: number;
  /** reportingSites - onTimeSites: reported, but after the cut-off. */
  lateSites: number;
  /** expectedSites - reportingSites: no report for the date (yet). */
  missingSites: number;
  /** reportingSites / expectedSites; null when no site was expected. */
  completeness: number | null;
  /** onTimeSites / expectedSites; null when no site was expected. */
  timeliness: number | null;
}

/**
 * Reporting completeness and timeliness of a region and of each of its direct children (the
 * region first, then the children by code) for one day. A site is on time when its first
 * submission for the day (revision 1, kept in report_revision once corrected) came before its
 * cut-off (its region's schedule, counted in the site's own time zone, so daylight-saving
 * changes move it correctly).
 * Only admins and planners whose jurisdiction holds the region may ask.
 */
export async function reportingCompleteness(
  db: Database,
  viewer: Viewer | null,
  input: { regionCode: string; date: string },
): Promise<CompletenessRow[]> {
  if (!viewer || (viewer.role !== "ADMIN" && viewer.role !== "PLANNER")) {
    throw forbidden(`reporting completeness is for PLANNER and ADMIN users; your role is ${viewer?.role ?? "none"}`);
  }
  const problem = dateProblem(input.date);
  if (problem) throw badInput(`date ${problem}`, { field: "date" });
  const regionCode = String(input.regionCode ?? "").trim();

  const [region] = await db.execute<{ id: number; path: string }>(sql`select id, path from region where code = ${regionCode}`, "objects");
  const jurisdiction = viewer.role === "PLANNER" ? viewer.jurisdiction : null;
  if (!region || (viewer.role === "PLANNER" && !(jurisdiction && region.path.startsWith(jurisdiction.path)))) {
    throw notFound(
      viewer.role === "ADMIN"
        ? `no region with code ${regionCode}; see regions { code } for the codes`
        : `region ${regionCode} not found, or not visible to you: you may look at ${jurisdiction?.code ?? "no region"} and the regions below it; see regions { code } for their codes`,
    );
  }

  // Each site's cut-off comes from its region's schedule and its zone: the few distinct pairs are
  // turned into instants here, with date-fns, and joined in as rows.
  const inSubtree = sql`rg.path ^@ ${region.path}`;
  const cutoffs = cutoffRows(await scheduleCombos(db, inSubtree), [input.date]);
  const date = sql`${input.date}::date`;
  const rows = await db.execute<{ region_id: number; code: string; expected: number; reporting: number; on_time: number }>(
    sql`with grp as (
          select r.id, r.code, r.path, 0 as ord from region r where r.id = ${region.id}
          union all
          select c.id, c.code, c.path, 1 from region c where c.parent_id = ${region.id}
        ),
        -- The sites of the subtree (SP-GiST range on the path) that existed by their cut-off.
        expected_by_cutoff as (
          select ss.site_id as id, ss.path, c.cutoff_at as cutoff
          from (${siteSchedulesSql(inSubtree)}) ss
          join (${cutoffsSql(cutoffs)}) c on c.time_zone = ss.time_zone and c.local_time = ss.local_time and c.days_after = ss.days_after
          where ss.created_at <= c.cutoff_at
        ),
        -- One index range per product on report (product_id, date): the day's reports of all sites.
        first_submission as (
          select d.site_id, min(coalesce(rv.submitted_at, d.submitted_at)) as first_at
          from product p
          cross join lateral (
            select r.id, r.site_id, r.revision, r.submitted_at from report r where r.product_id = p.id and r.date = ${date}
          ) d
          left join report_revision rv on rv.report_id = d.id and rv.revision = 1 and d.revision > 1
          where d.site_id in (select id from expected_by_cutoff)
          group by d.site_id
        )
        select g.id as region_id, g.code,
               count(e.id)::int as expected,
               count(f.site_id)::int as reporting,
               (count(*) filter (where f.first_at < e.cutoff))::int as on_time
        from grp g
        left join expected_by_cutoff e on e.path ^@ g.path
        left join first_submission f on f.site_id = e.id
        group by g.id, g.code, g.ord
        order by g.ord, g.code`,
    "objects",
  );
  const rate = (n: number, of: number) => (of === 0 ? null : n / of);
  return rows.map((r) => {
    const expectedSites = Number(r.expected);
    const reportingSites = Number(r.reporting);
    const onTimeSites = Number(r.on_time);
    return {
      regionId: Number(r.region_id),
      regionCode: r.code,
      date: input.date,
      expectedSites,
      reportingSites,
      onTimeSites,
      lateSites: reportingSites - onTimeSites,
      missingSites: expectedSites - reportingSites,
      completeness: rate(reportingSites, expectedSites),
      timeliness: rate(onTimeSites, expectedSites),
    };
  });
}

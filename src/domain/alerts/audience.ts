// Who may read an alert and who is told about it. One rule for the alerts query, the live
// subscription, webhooks and e-mail: planners whose jurisdiction holds the alert's region, the
// users of the organization concerned, and admins (who may read everything but are not pushed to).
import { sql, type SQL } from "drizzle-orm";
import type { Database } from "../../db/index.js";
import type { AlertKind } from "../types.js";
import type { Viewer } from "../viewer.js";

/**
 * Kinds that planners may read but are not pushed: overdue reports reach them as completeness,
 * doubtful reports are for their reporter to correct (planners see the flags on the reports).
 */
export const NOT_PUSHED_TO_PLANNERS: ReadonlySet<AlertKind> = new Set(["REPORT_OVERDUE", "DATA_QUALITY"]);

/** What the visibility rule needs to know of an alert. */
export interface AlertAudienceKey {
  regionPath: string;
  organizationId: string | null;
}

export function alertVisibleTo(viewer: Viewer | null, alert: AlertAudienceKey): boolean {
  if (!viewer) return false;
  if (viewer.role === "ADMIN") return true;
  if (viewer.role === "PLANNER") return !!viewer.jurisdiction && alert.regionPath.startsWith(viewer.jurisdiction.path);
  return viewer.organizationId !== null && alert.organizationId === viewer.organizationId;
}

/**
 * The same rule as a SQL condition over `alert` (aliased `a`) joined with its `region` (aliased
 * `ar`); false for anyone else.
 */
export function alertVisibleSql(viewer: Viewer | null): SQL {
  if (!viewer) return sql`false`;
  if (viewer.role === "ADMIN") return sql`true`;
  if (viewer.role === "PLANNER") return viewer.jurisdiction ? sql`ar.path ^@ ${viewer.jurisdiction.path}` : sql`false`;
  return viewer.organizationId ? sql`a.organization_id = ${viewer.organizationId}::uuid` : sql`false`;
}

export interface AlertRecipients {
  /** Enabled users to be pushed (e-mail): the planners above the region and the organization's users. */
  userIds: string[];
  /** Enabled webhooks that want this kind: the organization's, the jurisdictions' above the region, admins'. */
  webhookIds: string[];
}

/** The users and webhooks that are told about an alert, read from the current state. */
export async function alertRecipients(db: Database, alertId: string): Promise<AlertRecipients> {
  const rows = await db.execute<{ kind: "user" | "webhook"; id: string }>(
    sql`with a as (
          select a.kind, a.organization_id, r.path from alert a join region r on r.id = a.region_id where a.id = ${alertId}::uuid
        )
        select 'user' as kind, u.id::text as id
        from a join app_user u on u.disabled_at is null and (
          (u.role = 'PLANNER' and a.kind <> all(${sql.param([...NOT_PUSHED_TO_PLANNERS])}::alert_kind[])
             and exists (select 1 from region j where j.id = u.jurisdiction_region_id and a.path ^@ j.path))
          or (u.role in ('REPORTER', 'PROCUREMENT') and u.organization_id = a.organization_id))
        union all
        select 'webhook', w.id::text
        from a join webhook w on w.disabled_at is null and (w.kinds is null or a.kind = any(w.kinds)) and (
          (w.organization_id is not null and w.organization_id = a.organization_id)
          or (w.jurisdiction_region_id is not null and a.kind <> all(${sql.param([...NOT_PUSHED_TO_PLANNERS])}::alert_kind[])
             and exists (select 1 from region j where j.id = w.jurisdiction_region_id and a.path ^@ j.path))
          or (w.organization_id is null and w.jurisdiction_region_id is null))
        order by 1, 2`,
    "objects",
  );
  return {
    userIds: rows.filter((r) => r.kind === "user").map((r) => r.id),
    webhookIds: rows.filter((r) => r.kind === "webhook").map((r) => r.id),
  };
}

// The alert engine: rules say which conditions hold now; this turns them into alerts, one open
// alert per condition, and into the events that people are told about.
import { sql, type SQL } from "drizzle-orm";
import type { Database } from "../../db/index.js";
import { alertEventTable, alertTable } from "../../db/schema.js";
import { requestJobs } from "../outbox.js";
import type { AlertKind, RiskLevel } from "../types.js";

/** A condition a rule found to hold now. */
export interface AlertCondition {
  kind: AlertKind;
  /** Identifies the condition (kind and what it is about); one unresolved alert per key. */
  dedupeKey: string;
  /**
   * How bad it is, higher is worse. >= 1: the alert is raised, or escalated when the stage
   * passes the worst one it has reached. 0: inside the hysteresis band: an open alert stays open
   * (its numbers are updated) but none is raised.
   */
  stage: number;
  severity: RiskLevel;
  regionId: number;
  productId?: number | null;
  organizationId?: string | null;
  siteId?: string | null;
  matchId?: string | null;
  message: string;
  details: Record<string, unknown>;
}

/** The alerts a rule run speaks for: every alert of the kind matching all the given columns. */
export interface AlertScope {
  kind: AlertKind;
  productId?: number;
  siteId?: string;
  organizationId?: string;
  regionId?: number;
  /** Only these dedupe keys. */
  dedupeKeys?: string[];
}

export interface ReconcileResult {
  raised: number;
  escalated: number;
  updated: number;
  resolved: number;
  /** Conditions not raised because someone resolved their alert by hand and they have not worsened since. */
  suppressed: number;
  eventIds: number[];
}

/** Every event is dispatched to the channels by one job, named after the event. */
export const dispatchJobFor = (eventId: number) => ({ name: "alerts.dispatch", data: { eventId }, jobId: `alert-dispatch-${eventId}` });

function scopeSql(scope: AlertScope): SQL {
  const parts: SQL[] = [sql`a.kind = ${scope.kind}`];
  if (scope.productId !== undefined) parts.push(sql`a.product_id = ${scope.productId}`);
  if (scope.siteId !== undefined) parts.push(sql`a.site_id = ${scope.siteId}::uuid`);
  if (scope.organizationId !== undefined) parts.push(sql`a.organization_id = ${scope.organizationId}::uuid`);
  if (scope.regionId !== undefined) parts.push(sql`a.region_id = ${scope.regionId}`);
  if (scope.dedupeKeys !== undefined) parts.push(sql`a.dedupe_key = any(${sql.param(scope.dedupeKeys)}::text[])`);
  return sql.join(parts, sql` and `);
}

function inScope(scope: AlertScope, c: AlertCondition): boolean {
  return (
    c.kind === scope.kind &&
    (scope.productId === undefined || c.productId === scope.productId) &&
    (scope.siteId === undefined || c.siteId === scope.siteId) &&
    (scope.organizationId === undefined || c.organizationId === scope.organizationId) &&
    (scope.regionId === undefined || c.regionId === scope.regionId) &&
    (scope.dedupeKeys === undefined || scope.dedupeKeys.includes(c.dedupeKey))
  );
}

/** jsonb gives objects back with their keys reordered: compare with the keys sorted. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return `{${entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}
/** An update is only written when the alert reads differently, so a rerun on the same data writes nothing. */
const sameJson = (a: unknown, b: unknown) => canonical(a) === canonical(b);

/**
 * Brings the alerts of `scope` in line with `conditions` (all of which must be in the scope):
 * raises, escalates, updates, and resolves (CLEARED) every unresolved alert of the scope whose
 * condition is not in the list. Writes an alert_event per raise, escalation and resolution, and
 * asks for their dispatch, in the caller's transaction. Running it twice with the same
 * conditions changes nothing the second time.
 *
 * Hysteresis: a condition notifies again only when its stage passes the worst it has reached, so
 * one that flaps between two levels notifies once; stage 0 keeps an alert open without raising
 * one. An escalated alert goes back to OPEN even if it was acknowledged: it is worse than what
 * was acknowledged. An alert resolved by hand is not raised again for the same condition until
 * it clears or gets worse than it was.
 */
export async function reconcileAlerts(tx: Database, scope: AlertScope, conditions: AlertCondition[]): Promise<ReconcileResult> {
  const result: ReconcileResult = { raised: 0, escalated: 0, updated: 0, resolved: 0, suppressed: 0, eventIds: [] };
  const byKey = new Map<string, AlertCondition>();
  for (const c of conditions) {
    if (!inScope(scope, c)) throw new Error(`alert condition ${c.dedupeKey} is outside the scope it was reconciled in`);
    if (byKey.has(c.dedupeKey)) throw new Error(`alert condition ${c.dedupeKey} appears twice in one run`);
    byKey.set(c.dedupeKey, c);
  }
  // Runs of one kind take turns: two of them could otherwise both raise the same new condition.
  await tx.execute(sql`select pg_advisory_xact_lock(${0x616c}, hashtext(${scope.kind}))`);

  const open = await tx.execute<{ id: string; dedupe_key: string; stage: number; peak_stage: number; status: string; severity: RiskLevel; message: string; details: unknown; region_id: number; organization_id: string | null; site_id: string | null; match_id: string | null }>(
    sql`select a.id, a.dedupe_key, a.stage, a.peak_stage, a.status, a.severity, a.message, a.details, a.region_id, a.organization_id, a.site_id, a.match_id
        from alert a where a.status <> 'RESOLVED' and ${scopeSql(scope)} for update`,
    "objects",
  );
  const openByKey = new Map(open.map((a) => [a.dedupe_key, a]));
  const keys = [...byKey.keys()];

  // The latest alert of each new condition, when someone resolved it by hand and it has not cleared since.
  const newKeys = keys.filter((k) => !openByKey.has(k) && byKey.get(k)!.stage >= 1);
  const handResolved = newKeys.length
    ? await tx.execute<{ dedupe_key: string; peak_stage: number }>(
        sql`select dedupe_key, peak_stage from (
              select distinct on (dedupe_key) dedupe_key, peak_stage, resolution, condition_cleared_at from alert
              where dedupe_key = any(${sql.param(newKeys)}::text[]) and status = 'RESOLVED'
              order by dedupe_key, resolved_at desc
            ) last where resolution = 'MANUAL' and condition_cleared_at is null`,
        "objects",
      )
    : [];
  const heldBack = new Map(handResolved.map((r) => [r.dedupe_key, r.peak_stage]));

  const events: { alertId: string; type: "RAISED" | "ESCALATED" | "RESOLVED"; severity: RiskLevel; message: string }[] = [];
  const inserts: (typeof alertTable.$inferInsert)[] = [];
  for (const key of newKeys) {
    const c = byKey.get(key)!;
    const peak = heldBack.get(key);
    if (peak !== undefined && c.stage <= peak) {
      result.suppressed++;
      continue;
    }
    inserts.push({
      kind: c.kind,
      dedupeKey: c.dedupeKey,
      severity: c.severity,
      stage: c.stage,
      peakStage: c.stage,
      regionId: c.regionId,
      productId: c.productId ?? null,
      organizationId: c.organizationId ?? null,
      siteId: c.siteId ?? null,
      matchId: c.matchId ?? null,
      message: c.message,
      details: c.details,
    });
  }
  if (inserts.length) {
    const rows = await tx.insert(alertTable).values(inserts).returning({ id: alertTable.id, severity: alertTable.severity, message: alertTable.message });
    for (const r of rows) events.push({ alertId: r.id, type: "RAISED", severity: r.severity, message: r.message });
    result.raised = rows.length;
  }

  const updates: { id: string; stage: number; peak: number; severity: RiskLevel; message: string; details: string; escalate: boolean }[] = [];
  for (const a of open) {
    const c = byKey.get(a.dedupe_key);
    if (!c) continue;
    const escalate = c.stage >= 1 && c.stage > a.peak_stage;
    if (!escalate && c.stage === a.stage && c.severity === a.severity && c.message === a.message && sameJson(c.details, a.details)) continue;
    updates.push({ id: a.id, stage: c.stage, peak: Math.max(a.peak_stage, c.stage), severity: c.severity, message: c.message, details: JSON.stringify(c.details), escalate });
    if (escalate) events.push({ alertId: a.id, type: "ESCALATED", severity: c.severity, message: c.message });
  }
  if (updates.length) {
    await tx.execute(
      sql`update alert a set stage = u.stage, peak_stage = u.peak, severity = u.severity::risk_level, message = u.message,
                 details = u.details::jsonb, updated_at = now(),
                 escalated_at = case when u.escalate = 1 then now() else a.escalated_at end,
                 status = case when u.escalate = 1 then 'OPEN'::alert_status else a.status end
          from unnest(${sql.param(updates.map((u) => u.id))}::uuid[], ${sql.param(updates.map((u) => u.stage))}::int[],
                      ${sql.param(updates.map((u) => u.peak))}::int[], ${sql.param(updates.map((u) => u.severity))}::text[],
                      ${sql.param(updates.map((u) => u.message))}::text[], ${sql.param(updates.map((u) => u.details))}::text[],
                      ${sql.param(updates.map((u) => (u.escalate ? 1 : 0)))}::int[])
               as u(id, stage, peak, severity, message, details, escalate)
          where a.id = u.id`,
    );
    result.escalated = updates.filter((u) => u.escalate).length;
    result.updated = updates.length - result.escalated;
  }

  const cleared = open.filter((a) => !byKey.has(a.dedupe_key));
  if (cleared.length) {
    await tx.execute(
      sql`update alert set status = 'RESOLVED', resolution = 'CLEARED', resolved_at = now(), updated_at = now()
          where id = any(${sql.param(cleared.map((a) => a.id))}::uuid[])`,
    );
    for (const a of cleared) events.push({ alertId: a.id, type: "RESOLVED", severity: a.severity, message: `resolved: the condition cleared. Was: ${a.message}` });
    result.resolved = cleared.length;
  }
  // A condition resolved by hand that has now cleared may be raised again when it comes back.
  await tx.execute(
    sql`update alert a set condition_cleared_at = now()
        where a.status = 'RESOLVED' and a.resolution = 'MANUAL' and a.condition_cleared_at is null and ${scopeSql(scope)}
          and a.dedupe_key <> all(${sql.param(keys)}::text[])`,
  );

  if (events.length) {
    const rows = await tx.insert(alertEventTable).values(events).returning({ id: alertEventTable.id });
    result.eventIds = rows.map((r) => r.id);
    await requestJobs(tx, result.eventIds.map(dispatchJobFor));
  }
  return result;
}

// What people do with alerts: acknowledge them and resolve them by hand.
import { sql } from "drizzle-orm";
import type { Database } from "../../db/index.js";
import { alertEventTable } from "../../db/schema.js";
import { writeAudit } from "../audit.js";
import { DomainError, badInput, forbidden, notFound } from "../errors.js";
import { requestJobs } from "../outbox.js";
import type { Actor } from "../viewer.js";
import { alertVisibleTo } from "./audience.js";
import { dispatchJobFor } from "./engine.js";

interface LockedAlert {
  id: string;
  status: "OPEN" | "ACKNOWLEDGED" | "RESOLVED";
  severity: "GREEN" | "BLUE" | "YELLOW" | "ORANGE" | "RED";
  message: string;
  region_path: string;
  organization_id: string | null;
}

async function lockVisibleAlert(tx: Database, actor: Actor, id: string): Promise<LockedAlert> {
  if (!actor.viewer) throw forbidden("alerts are answered by a signed-in user; send an API token");
  const [a] = await tx.execute<LockedAlert>(
    sql`select a.id, a.status, a.severity, a.message, r.path as region_path, a.organization_id
        from alert a join region r on r.id = a.region_id where a.id = ${id}::uuid for update of a`,
    "objects",
  );
  // One answer for a missing alert and one the viewer may not see, so ids reveal nothing.
  if (!a || !alertVisibleTo(actor.viewer, { regionPath: a.region_path, organizationId: a.organization_id })) {
    throw notFound(`alert ${id}: not found, or not visible to you; list yours with alerts { edges { node { id } } }`);
  }
  return a;
}

/** OPEN -> ACKNOWLEDGED, by whom and when. Acknowledging it again changes nothing. */
export async function acknowledgeAlert(db: Database, actor: Actor, id: string): Promise<void> {
  await db.transaction(async (tx) => {
    const a = await lockVisibleAlert(tx, actor, id);
    if (a.status === "RESOLVED") throw new DomainError("CONFLICT", `alert ${id} is already resolved; nothing to acknowledge`);
    if (a.status === "ACKNOWLEDGED") return;
    await tx.execute(sql`update alert set status = 'ACKNOWLEDGED', acknowledged_at = now(), acknowledged_by = ${actor.viewer!.userId}::uuid, updated_at = now() where id = ${id}::uuid`);
    await writeAudit(tx, actor, { action: "alert.acknowledge", entityType: "alert", entityId: id, before: { status: a.status }, after: { status: "ACKNOWLEDGED" } });
  });
}

/**
 * Resolves an alert by hand, with an optional note. If its condition still holds, it is not
 * raised again until the condition clears or gets worse than it was.
 */
export async function resolveAlert(db: Database, actor: Actor, id: string, note?: string | null): Promise<void> {
  const text = note?.trim() || null;
  if (text && text.length > 1000) throw badInput(`note is too long (${text.length} characters): at most 1,000`, { field: "note" });
  await db.transaction(async (tx) => {
    const a = await lockVisibleAlert(tx, actor, id);
    if (a.status === "RESOLVED") throw new DomainError("CONFLICT", `alert ${id} is already resolved`);
    await tx.execute(
      sql`update alert set status = 'RESOLVED', resolution = 'MANUAL', resolved_at = now(), resolved_by = ${actor.viewer!.userId}::uuid,
                 resolve_note = ${text}, updated_at = now()
          where id = ${id}::uuid`,
    );
    const [event] = await tx
      .insert(alertEventTable)
      .values({ alertId: id, type: "RESOLVED", severity: a.severity, message: `resolved by hand${text ? `: ${text}` : ""}. Was: ${a.message}` })
      .returning({ id: alertEventTable.id });
    await requestJobs(tx, [dispatchJobFor(event!.id)]);
    await writeAudit(tx, actor, { action: "alert.resolve", entityType: "alert", entityId: id, before: { status: a.status }, after: { status: "RESOLVED", resolution: "MANUAL", note: text } });
  });
}

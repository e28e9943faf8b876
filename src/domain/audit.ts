import { auditLogTable } from "../db/schema.js";
import type { Database } from "../db/index.js";
import type { Actor } from "./viewer.js";

export interface AuditEntry {
  action: string;
  entityType: string;
  entityId?: string | number | null;
  before?: unknown;
  after?: unknown;
}

/** Must be called with the transaction of the write it describes, so both commit or neither. */
export async function writeAudit(tx: Database, actor: Actor, entry: AuditEntry): Promise<void> {
  await tx.insert(auditLogTable).values({
    actorUserId: actor.viewer?.userId ?? null,
    actorTokenId: actor.viewer?.tokenId ?? null,
    action: actor.system ? `${entry.action} (${actor.system})` : entry.action,
    entityType: entry.entityType,
    entityId: entry.entityId == null ? null : String(entry.entityId),
    before: entry.before ?? null,
    after: entry.after ?? null,
    requestId: actor.requestId ?? null,
  });
}

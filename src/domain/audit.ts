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

/**
 * Records one write: who (the user and the API token, or the system label), what (action, entity,
 * before and after), when, and in which request. Must be called with the transaction of the
 * write it describes, so both commit or neither (test/audit.test.ts checks every root mutation).
 * Rows are never changed or removed: a trigger refuses UPDATE, DELETE and TRUNCATE of audit_log
 * (drizzle/20261122004543_audit_log_append_only). `before` and `after` are kept for good, so they
 * hold no secrets and no personal data: no token hashes, no webhook secrets, no e-mail addresses,
 * no contact details (say that they were given instead).
 */
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

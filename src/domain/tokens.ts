import { createHash, randomBytes } from "node:crypto";
import { and, eq, isNull, sql } from "drizzle-orm";
import type { Database } from "../db/index.js";
import { apiTokenTable, regionTable, userTable } from "../db/schema.js";
import { writeAudit } from "./audit.js";
import { badInput, notFound } from "./errors.js";
import type { Actor, Viewer } from "./viewer.js";

const TOKEN_PREFIX = "smt_";

/** The token of an `Authorization: Bearer <token>` header, or undefined for any other header. */
export function bearerToken(header: string | null | undefined): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(header ?? "")?.[1];
}

export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

export interface CreateApiTokenInput {
  userId: string;
  name: string;
  expiresAt?: Date | null | undefined;
}

/** Returns the secret once; only its hash is stored. */
export async function createApiToken(db: Database, actor: Actor, input: CreateApiTokenInput) {
  const name = input.name.trim();
  if (!name) throw badInput("name must not be empty; give the token a name that says where it is used");
  if (input.expiresAt && input.expiresAt.getTime() <= Date.now()) {
    throw badInput(`expiresAt ${input.expiresAt.toISOString()} is in the past; give a future time or none`);
  }
  const token = TOKEN_PREFIX + randomBytes(32).toString("base64url");
  return db.transaction(async (tx) => {
    const [user] = await tx.select({ id: userTable.id }).from(userTable).where(eq(userTable.id, input.userId));
    if (!user) throw notFound(`no user with id ${input.userId}; create the user first (createUser)`);
    const [row] = await tx
      .insert(apiTokenTable)
      .values({
        userId: input.userId,
        name,
        tokenHash: hashToken(token),
        prefix: token.slice(0, TOKEN_PREFIX.length + 6),
        expiresAt: input.expiresAt ?? null,
      })
      .returning();
    const { tokenHash: _hash, ...visible } = row!;
    await writeAudit(tx, actor, { action: "apiToken.create", entityType: "api_token", entityId: row!.id, after: visible });
    return { token, apiToken: row! };
  });
}

export async function revokeApiToken(db: Database, actor: Actor, id: string) {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .update(apiTokenTable)
      .set({ revokedAt: sql`coalesce(${apiTokenTable.revokedAt}, now())` })
      .where(eq(apiTokenTable.id, id))
      .returning();
    if (!row) throw notFound(`no API token with id ${id}`);
    await writeAudit(tx, actor, {
      action: "apiToken.revoke",
      entityType: "api_token",
      entityId: id,
      after: { revokedAt: row.revokedAt },
    });
    return row;
  });
}

/**
 * Resolves a bearer token to its viewer, or null when it is unknown, revoked, expired or its
 * user is disabled. `lastUsedAt` is written at most once a minute per token, not per request.
 */
export async function authenticate(db: Database, token: string): Promise<Viewer | null> {
  if (!token.startsWith(TOKEN_PREFIX)) return null;
  const [row] = await db
    .select({
      tokenId: apiTokenTable.id,
      expiresAt: apiTokenTable.expiresAt,
      lastUsedAt: apiTokenTable.lastUsedAt,
      userId: userTable.id,
      role: userTable.role,
      organizationId: userTable.organizationId,
      jurisdictionId: regionTable.id,
      jurisdictionCode: regionTable.code,
      jurisdictionPath: regionTable.path,
    })
    .from(apiTokenTable)
    .innerJoin(userTable, eq(userTable.id, apiTokenTable.userId))
    .leftJoin(regionTable, eq(regionTable.id, userTable.jurisdictionRegionId))
    .where(
      and(eq(apiTokenTable.tokenHash, hashToken(token)), isNull(apiTokenTable.revokedAt), isNull(userTable.disabledAt)),
    );
  if (!row) return null;
  if (row.expiresAt && row.expiresAt.getTime() <= Date.now()) return null;
  if (!row.lastUsedAt || Date.now() - row.lastUsedAt.getTime() > 60_000) {
    await db
      .update(apiTokenTable)
      .set({ lastUsedAt: sql`now()` })
      .where(eq(apiTokenTable.id, row.tokenId));
  }
  return {
    userId: row.userId,
    tokenId: row.tokenId,
    role: row.role,
    organizationId: row.organizationId,
    jurisdiction:
      row.jurisdictionId !== null && row.jurisdictionCode !== null && row.jurisdictionPath !== null
        ? { id: row.jurisdictionId, code: row.jurisdictionCode, path: row.jurisdictionPath }
        : null,
  };
}

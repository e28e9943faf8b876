// Webhook endpoints: who owns one (and so what it receives), registering it with a fresh signing
// secret, and the owner's switches. Delivery itself is in delivery.ts.
import { randomUUID } from "node:crypto";
import { BlockList, isIP } from "node:net";
import { eq, sql } from "drizzle-orm";
import { z } from "zod";
import type { Database } from "../../db/index.js";
import { alertKindEnum, deliveryTable, organizationTable, webhookTable } from "../../db/schema.js";
import { writeAudit } from "../audit.js";
import { DomainError, badInput, notFound } from "../errors.js";
import { parseInput } from "../validation.js";
import type { Actor, Viewer } from "../viewer.js";
import { encryptSecret, generateWebhookSecret } from "./secrets.js";

export type WebhookRow = typeof webhookTable.$inferSelect;

/** More than this per owner is a mistake or abuse: each one receives every alert of its owner. */
export const MAX_WEBHOOKS_PER_OWNER = 20;
const MAX_URL_LENGTH = 2048;

/** Who a webhook belongs to decides what it receives, as for a user of the same role. */
export function webhookOwnedBy(viewer: Viewer | null, webhook: Pick<WebhookRow, "organizationId" | "jurisdictionRegionId">): boolean {
  if (!viewer) return false;
  if (viewer.role === "ADMIN") return true;
  if (viewer.role === "PLANNER") return webhook.jurisdictionRegionId !== null && webhook.jurisdictionRegionId === viewer.jurisdiction?.id;
  return webhook.organizationId !== null && webhook.organizationId === viewer.organizationId;
}

// Addresses inside the service's own network: in production a webhook must not make the worker
// call them (the request would come from inside the firewall).
const internal = new BlockList();
for (const [net, prefix] of [["0.0.0.0", 8], ["10.0.0.0", 8], ["100.64.0.0", 10], ["127.0.0.0", 8], ["169.254.0.0", 16], ["172.16.0.0", 12], ["192.168.0.0", 16]] as const) {
  internal.addSubnet(net, prefix, "ipv4");
}
for (const [net, prefix] of [["::", 128], ["::1", 128], ["fc00::", 7], ["fe80::", 10], ["::ffff:0:0", 96]] as const) internal.addSubnet(net, prefix, "ipv6");

/**
 * What is wrong with a webhook URL, or null: an absolute http(s) URL without credentials; in
 * production https only, and not to a loopback, private or link-local address.
 */
export function webhookUrlProblem(raw: string, production: boolean): string | null {
  const value = raw.trim();
  const example = "e.g. https://alerts.example.org/hooks/supply";
  if (value === "") return `url must not be empty: give the full address that should receive alerts, ${example}`;
  if (value.length > MAX_URL_LENGTH) return `url is longer than ${MAX_URL_LENGTH} characters; use a shorter address`;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `url ${JSON.stringify(value)} is not an absolute URL; give the full address with its scheme, ${example}`;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    return `url must start with https://${production ? "" : " (or http://)"}, got ${url.protocol}; alerts are delivered as HTTP POST requests`;
  }
  if (production && url.protocol !== "https:") return `url must use https:// in production (alerts would cross the network unencrypted), ${example}`;
  if (url.username || url.password) {
    return "url must not contain a user name or password: it is stored and listed in plain text; check the webhook-signature header in your receiver instead";
  }
  if (production) {
    const host = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
    const family = isIP(host);
    const isInternal =
      host === "localhost" || host.endsWith(".localhost") || (family !== 0 && internal.check(host, family === 4 ? "ipv4" : "ipv6"));
    if (isInternal) return `url points to ${host}, an internal address; in production webhooks go to publicly reachable https endpoints only`;
  }
  return null;
}

const registerInput = z.object({
  url: z.string("url must be text"),
  kinds: z
    .array(z.enum(alertKindEnum.enumValues, { message: `each kind must be one of ${alertKindEnum.enumValues.join(", ")}` }))
    .min(1, "kinds must name at least one alert kind; leave it out to receive every kind")
    .nullish(),
  organizationId: z.uuid("organizationId is not a valid organization id").nullish(),
});
export type RegisterWebhookInput = z.input<typeof registerInput>;

/**
 * Registers a webhook for the actor: a reporter's or procurement officer's for their
 * organization, a planner's for their jurisdiction, an admin's for everything (or for the
 * organization named). Returns the row and its signing secret, which is not shown again.
 */
export async function registerWebhook(
  db: Database,
  actor: Actor,
  options: { secretKey: string; production: boolean },
  input: RegisterWebhookInput,
): Promise<{ webhook: WebhookRow; secret: string }> {
  const viewer = actor.viewer;
  if (!viewer) throw new DomainError("UNAUTHENTICATED", "registering a webhook needs a signed-in user; send an API token");
  const values = parseInput(registerInput, input);
  const problem = webhookUrlProblem(values.url, options.production);
  if (problem) throw badInput(problem, { field: "url" });
  const url = new URL(values.url.trim()).href;
  const kinds = values.kinds ? [...new Set(values.kinds)].sort() : null;

  let organizationId: string | null = null;
  let jurisdictionRegionId: number | null = null;
  if (values.organizationId && viewer.role !== "ADMIN") {
    throw badInput(`organizationId is for admins; a ${viewer.role}'s webhooks belong to their own ${viewer.role === "PLANNER" ? "jurisdiction" : "organization"}, so leave it out`, {
      field: "organizationId",
    });
  }
  if (viewer.role === "REPORTER" || viewer.role === "PROCUREMENT") {
    if (!viewer.organizationId) throw badInput(`your ${viewer.role} account has no organization, so a webhook would receive nothing; ask an admin to fix the account`);
    organizationId = viewer.organizationId;
  } else if (viewer.role === "PLANNER") {
    if (!viewer.jurisdiction) throw badInput("your PLANNER account has no jurisdiction, so a webhook would receive nothing; ask an admin to fix the account");
    jurisdictionRegionId = viewer.jurisdiction.id;
  } else {
    organizationId = values.organizationId ?? null;
  }

  return db.transaction(async (tx) => {
    if (organizationId && viewer.role === "ADMIN") {
      const [org] = await tx.select({ id: organizationTable.id }).from(organizationTable).where(eq(organizationTable.id, organizationId));
      if (!org) throw notFound(`no organization with id ${values.organizationId}; see organizations { edges { node { id name } } }`);
    }
    const ownerKey = organizationId ? `organization:${organizationId}` : jurisdictionRegionId !== null ? `region:${jurisdictionRegionId}` : "global";
    const ownerName = organizationId ? "your organization" : jurisdictionRegionId !== null ? "your jurisdiction" : "the admins";
    // One registration per owner at a time, so the limit and the duplicate check hold.
    await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`webhook-owner:${ownerKey}`}, 0))`);
    const existing = await tx
      .select({ id: webhookTable.id, url: webhookTable.url })
      .from(webhookTable)
      .where(
        organizationId
          ? eq(webhookTable.organizationId, organizationId)
          : jurisdictionRegionId !== null
            ? eq(webhookTable.jurisdictionRegionId, jurisdictionRegionId)
            : sql`${webhookTable.organizationId} is null and ${webhookTable.jurisdictionRegionId} is null`,
      );
    if (existing.some((w) => w.url === url)) {
      throw new DomainError("CONFLICT", `${url} is already registered as a webhook of ${ownerName}; see webhooks { url enabled }, or deleteWebhook it first to register it again`);
    }
    if (existing.length >= MAX_WEBHOOKS_PER_OWNER) {
      throw new DomainError("CONFLICT", `${ownerName} already has ${existing.length} webhooks, the most allowed; delete one you no longer use (deleteWebhook) first`);
    }
    const id = randomUUID();
    const secret = generateWebhookSecret();
    const [row] = await tx
      .insert(webhookTable)
      .values({ id, organizationId, jurisdictionRegionId, url, kinds, secretCiphertext: encryptSecret(secret, options.secretKey, id), createdBy: viewer.userId })
      .returning();
    await writeAudit(tx, actor, {
      action: "webhook.register",
      entityType: "webhook",
      entityId: id,
      after: { id, url, kinds, organizationId, jurisdictionRegionId },
    });
    return { webhook: row!, secret };
  });
}

async function findOwnWebhook(tx: Database, viewer: Viewer | null, id: string): Promise<WebhookRow> {
  const [webhook] = z.uuid().safeParse(id).success ? await tx.select().from(webhookTable).where(eq(webhookTable.id, id)).for("update") : [];
  // Another owner's webhook gets the same answer as a missing one: ids reveal nothing.
  if (!webhook || !webhookOwnedBy(viewer, webhook)) throw notFound("webhook not found, or not visible to you; see webhooks { edges { node { id url } } } for yours");
  return webhook;
}

const auditView = (w: WebhookRow) => ({ id: w.id, url: w.url, kinds: w.kinds, disabledAt: w.disabledAt, disabledReason: w.disabledReason });

/** Stops deliveries to the owner's webhook (waiting ones are cancelled); disabling it again changes nothing. */
export async function disableWebhook(db: Database, actor: Actor, id: string): Promise<WebhookRow> {
  return db.transaction(async (tx) => {
    const before = await findOwnWebhook(tx, actor.viewer, id);
    if (before.disabledAt) return before;
    const reason = actor.viewer?.role === "ADMIN" ? "disabled by an admin" : "disabled by its owner";
    const [after] = await tx.update(webhookTable).set({ disabledAt: sql`now()`, disabledReason: reason }).where(eq(webhookTable.id, id)).returning();
    await cancelPendingDeliveries(tx, id, reason);
    await writeAudit(tx, actor, { action: "webhook.disable", entityType: "webhook", entityId: id, before: auditView(before), after: auditView(after!) });
    return after!;
  });
}

/** Resumes deliveries to the owner's webhook (after fixing it), with a clean failure count. */
export async function enableWebhook(db: Database, actor: Actor, id: string): Promise<WebhookRow> {
  return db.transaction(async (tx) => {
    const before = await findOwnWebhook(tx, actor.viewer, id);
    if (!before.disabledAt) return before;
    const [after] = await tx
      .update(webhookTable)
      .set({ disabledAt: null, disabledReason: null, consecutiveFailures: 0 })
      .where(eq(webhookTable.id, id))
      .returning();
    await writeAudit(tx, actor, { action: "webhook.enable", entityType: "webhook", entityId: id, before: auditView(before), after: auditView(after!) });
    return after!;
  });
}

/** Deletes the owner's webhook and its delivery log. */
export async function deleteWebhook(db: Database, actor: Actor, id: string): Promise<WebhookRow> {
  return db.transaction(async (tx) => {
    const before = await findOwnWebhook(tx, actor.viewer, id);
    await tx.delete(webhookTable).where(eq(webhookTable.id, id));
    await writeAudit(tx, actor, { action: "webhook.delete", entityType: "webhook", entityId: id, before: auditView(before) });
    return before;
  });
}

/** Waiting deliveries of a webhook that will not be sent: their jobs find them CANCELLED and stop. */
export async function cancelPendingDeliveries(tx: Database, webhookId: string, reason: string): Promise<void> {
  await tx
    .update(deliveryTable)
    .set({ status: "CANCELLED", lastError: reason })
    .where(sql`${deliveryTable.webhookId} = ${webhookId} and (${deliveryTable.status} = 'PENDING' or (${deliveryTable.status} = 'DIGESTED' and ${deliveryTable.deliveredAt} is null))`);
}

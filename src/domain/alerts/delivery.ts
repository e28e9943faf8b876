// Alert delivery: an alert event becomes one row of the delivery log per push channel and
// recipient (the live subscription, each webhook, each user's e-mail), and each row a job that
// sends it. Alerts live in Postgres first; these are notifications of it, retried with backoff,
// capped per recipient so a storm of alerts is a handful of messages and a digest.
import { createHash } from "node:crypto";
import { sql, type SQL } from "drizzle-orm";
import { Webhook } from "standardwebhooks";
import { alertDeliveryConfigSchema, type AlertDeliveryConfig, type Config } from "../../config.js";
import type { Database } from "../../db/index.js";
import { deliveryTable } from "../../db/schema.js";
import { writeAudit } from "../audit.js";
import { requestJobs, type RelayedJob } from "../outbox.js";
import { systemActor } from "../viewer.js";
import { alertRecipients } from "./audience.js";
import { dispatchJobFor } from "./engine.js";
import { composeAlertMail, composeDigestMail, sendMail } from "./mail.js";
import { SecretDecryptionError, decryptSecret } from "./secrets.js";
import { cancelPendingDeliveries } from "./webhooks.js";

/** The delivery settings of a (possibly partial) configuration, defaults filled in. */
export function deliverySettings(config: Partial<Config>): AlertDeliveryConfig {
  return alertDeliveryConfigSchema.parse(config);
}

/** Attempts already made before this one and how many the job has (from BullMQ). */
export interface Attempt {
  made: number;
  max: number;
}

/**
 * What became of one attempt. `retry`: the caller throws so the queue tries again after its
 * backoff; `failed` and `gone`: no attempt will do better, stop now.
 */
export type DeliveryOutcome =
  | { outcome: "delivered"; statusCode?: number | null }
  | { outcome: "skipped"; reason: string }
  | { outcome: "retry"; error: string }
  | { outcome: "failed"; error: string }
  | { outcome: "gone"; error: string };

/** A digest job runs this long after its window ends, so dispatches still committing at the end are in it. */
export const DIGEST_GRACE_MS = 2_000;

const deliveryJobOptions = (s: AlertDeliveryConfig): RelayedJob["opts"] => ({
  attempts: s.ALERT_DELIVERY_ATTEMPTS,
  backoff: { type: "exponential", delay: s.ALERT_DELIVERY_BACKOFF_MS },
});

/**
 * The id of the digest of a recipient on a channel for the cap window starting at `windowStart`:
 * the same for every dispatch in the window, so they all join one digest (and one job).
 */
export function digestIdFor(channel: "WEBHOOK" | "EMAIL", recipientId: string, windowStart: number): string {
  const h = createHash("sha256").update(`digest:${channel}:${recipientId}:${windowStart}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x80; // RFC 9562 version 8 (custom)
  h[8] = (h[8]! & 0x3f) | 0x80;
  const hex = h.subarray(0, 16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export interface DispatchResult {
  skipped?: string;
  sse: number;
  webhooks: number;
  emails: number;
  digested: number;
}

/**
 * Fans an alert event out to its recipients as they are now: the live subscription, every
 * enabled webhook that wants its kind, and (with SMTP configured) every recipient user's
 * e-mail; marks it dispatched and asks for the jobs that send, all in one transaction. An event
 * already dispatched is left alone, so running this twice sends nothing twice.
 */
export async function dispatchAlertEvent(db: Database, eventId: number, settings: AlertDeliveryConfig): Promise<DispatchResult> {
  return db.transaction(async (tx) => {
    const empty = { sse: 0, webhooks: 0, emails: 0, digested: 0 };
    const [event] = await tx.execute<{ alert_id: string; dispatched: boolean; now_ms: number }>(
      sql`select alert_id, dispatched_at is not null as dispatched, (extract(epoch from now()) * 1000)::float8 as now_ms
          from alert_event where id = ${eventId} for update`,
      "objects",
    );
    if (!event) return { ...empty, skipped: "the event no longer exists (its alert was deleted)" };
    if (event.dispatched) return { ...empty, skipped: "already dispatched" };
    const recipients = await alertRecipients(tx, event.alert_id);
    const jobs: RelayedJob[] = [];

    const [sse] = await tx.insert(deliveryTable).values({ alertEventId: eventId, channel: "SSE" }).onConflictDoNothing().returning({ id: deliveryTable.id });
    if (sse) jobs.push({ name: "alerts.publish", data: { deliveryId: sse.id }, jobId: `publish-${sse.id}` });

    const nowMs = Number(event.now_ms);
    const webhookRows = await insertCapped(tx, "WEBHOOK", eventId, recipients.webhookIds, nowMs, settings, jobs);
    let emailUsers: string[] = [];
    if (settings.SMTP_URL && recipients.userIds.length) {
      const rows = await tx.execute<{ id: string }>(
        sql`select id::text from app_user where id = any(${sql.param(recipients.userIds)}::uuid[]) and email <> '' order by id`,
        "objects",
      );
      emailUsers = rows.map((r) => r.id);
    }
    const emailRows = await insertCapped(tx, "EMAIL", eventId, emailUsers, nowMs, settings, jobs);

    await tx.execute(sql`update alert_event set dispatched_at = now() where id = ${eventId}`);
    await requestJobs(tx, jobs);
    const all = [...webhookRows, ...emailRows];
    return {
      sse: sse ? 1 : 0,
      webhooks: webhookRows.filter((r) => r.status === "PENDING").length,
      emails: emailRows.filter((r) => r.status === "PENDING").length,
      digested: all.filter((r) => r.status === "DIGESTED").length,
    };
  });
}

/**
 * Inserts one row per recipient: PENDING while the recipient has had fewer than the cap of
 * messages in the current window, else DIGESTED into the window's digest, whose job runs when
 * the window ends. Windows are fixed (aligned to the epoch), so every dispatch of a window agrees
 * on its digest without asking anyone.
 */
async function insertCapped(
  tx: Database,
  channel: "WEBHOOK" | "EMAIL",
  eventId: number,
  recipientIds: string[],
  nowMs: number,
  settings: AlertDeliveryConfig,
  jobs: RelayedJob[],
): Promise<{ id: string; status: string }[]> {
  if (recipientIds.length === 0) return [];
  const column = channel === "WEBHOOK" ? sql.raw("webhook_id") : sql.raw("user_id");
  const windowMs = Math.round(settings.ALERT_NOTIFY_WINDOW_MINUTES * 60_000);
  const windowStart = Math.floor(nowMs / windowMs) * windowMs;
  const sorted = [...recipientIds].sort();
  // Two dispatches for one recipient count and insert one after the other, or both would see
  // room under the cap. Sorted, so two dispatches never wait for each other in a circle.
  await tx.execute(
    sql`select pg_advisory_xact_lock(k) from (select hashtextextended('alert-notify:' || ${channel} || ':' || r, 0) as k
        from unnest(${sql.param(sorted)}::text[]) r order by r) s`,
  );
  const counts = await tx.execute<{ recipient: string; n: number }>(
    sql`select ${column}::text as recipient, count(*)::int as n from delivery
        where channel = ${channel}::delivery_channel and ${column} = any(${sql.param(sorted)}::uuid[])
          and created_at >= to_timestamp(${windowStart / 1000}) and digest_id is null and status <> 'CANCELLED'
        group by 1`,
    "objects",
  );
  const sent = new Map(counts.map((c) => [c.recipient, Number(c.n)]));
  const values = sorted.map((recipientId) => {
    const capped = (sent.get(recipientId) ?? 0) >= settings.ALERT_NOTIFY_CAP;
    return {
      alertEventId: eventId,
      channel,
      webhookId: channel === "WEBHOOK" ? recipientId : null,
      userId: channel === "EMAIL" ? recipientId : null,
      status: capped ? ("DIGESTED" as const) : ("PENDING" as const),
      digestId: capped ? digestIdFor(channel, recipientId, windowStart) : null,
    };
  });
  const rows = await tx
    .insert(deliveryTable)
    .values(values)
    .onConflictDoNothing()
    .returning({ id: deliveryTable.id, status: deliveryTable.status, digestId: deliveryTable.digestId });
  const opts = deliveryJobOptions(settings);
  const name = channel === "WEBHOOK" ? "alerts.deliverWebhook" : "alerts.deliverEmail";
  const digests = new Set<string>();
  for (const row of rows) {
    if (row.status === "PENDING") jobs.push({ name, data: { deliveryId: row.id }, jobId: `deliver-${row.id}`, opts });
    else if (row.digestId && !digests.has(row.digestId)) {
      digests.add(row.digestId);
      jobs.push({
        name: "alerts.sendDigest",
        data: { digestId: row.digestId, channel, windowStart },
        jobId: `digest-${row.digestId}`,
        delay: Math.max(0, windowStart + windowMs - Date.now()) + DIGEST_GRACE_MS,
        opts,
      });
    }
  }
  return rows;
}

/** What a message says about an alert: the same for webhooks and e-mail, no personal data. */
export interface AlertMessage {
  /** Global id of the alert, as the GraphQL API takes it (acknowledgeAlert, node). */
  id: string;
  kind: string;
  severity: string;
  status: string;
  message: string;
  regionCode: string;
  regionName: string;
  productCode: string | null;
  productName: string | null;
  details: Record<string, unknown>;
  raisedAt: number;
  updatedAt: number;
  /** What happened that this message is about. */
  event: { type: string; severity: string; message: string; at: number };
}

interface DeliveryRow {
  deliveryId: string;
  deliveryStatus: string;
  webhookId: string | null;
  userId: string | null;
  alert: AlertMessage;
}

/** The GraphQL global id of an alert (Relay style, as every node of the API). */
export const alertGlobalId = (alertId: string) => Buffer.from(`Alert:${alertId}`).toString("base64");

async function loadDeliveries(db: Database, where: SQL): Promise<DeliveryRow[]> {
  const rows = await db.execute<Record<string, string | number | null>>(
    sql`select d.id::text as delivery_id, d.status, d.webhook_id::text, d.user_id::text,
               a.id::text as alert_id, a.kind, a.severity, a.status as alert_status, a.message, a.details::text as details,
               (extract(epoch from a.raised_at) * 1000)::float8 as raised_at, (extract(epoch from a.updated_at) * 1000)::float8 as updated_at,
               r.code as region_code, r.name as region_name, p.code as product_code, p.name as product_name,
               e.type as event_type, e.severity as event_severity, e.message as event_message,
               (extract(epoch from e.created_at) * 1000)::float8 as event_at
        from delivery d
        join alert_event e on e.id = d.alert_event_id
        join alert a on a.id = e.alert_id
        join region r on r.id = a.region_id
        left join product p on p.id = a.product_id
        where ${where}
        order by e.created_at, e.id`,
    "objects",
  );
  const text = (v: string | number | null | undefined) => (v === null || v === undefined ? null : String(v));
  return rows.map((r) => ({
    deliveryId: String(r.delivery_id),
    deliveryStatus: String(r.status),
    webhookId: text(r.webhook_id),
    userId: text(r.user_id),
    alert: {
      id: alertGlobalId(String(r.alert_id)),
      kind: String(r.kind),
      severity: String(r.severity),
      status: String(r.alert_status),
      message: String(r.message),
      regionCode: String(r.region_code),
      regionName: String(r.region_name),
      productCode: text(r.product_code),
      productName: text(r.product_name),
      details: JSON.parse(String(r.details)) as Record<string, unknown>,
      raisedAt: Number(r.raised_at),
      updatedAt: Number(r.updated_at),
      event: { type: String(r.event_type), severity: String(r.event_severity), message: String(r.event_message), at: Number(r.event_at) },
    },
  }));
}

const iso = (ms: number) => new Date(ms).toISOString();

/** The `data` of a webhook message about one alert event. */
export function alertWebhookData(m: AlertMessage) {
  return {
    id: m.id,
    kind: m.kind,
    severity: m.severity,
    status: m.status,
    message: m.message,
    regionCode: m.regionCode,
    productCode: m.productCode,
    details: m.details,
    raisedAt: iso(m.raisedAt),
    updatedAt: iso(m.updatedAt),
    event: { type: m.event.type, severity: m.event.severity, message: m.event.message, at: iso(m.event.at) },
  };
}

/** Standard Webhooks event types: `alert.raised`, `alert.escalated`, `alert.resolved`, and `alert.digest`. */
export const webhookEventType = (eventType: string) => `alert.${eventType.toLowerCase()}`;

interface HttpResult {
  ok: boolean;
  statusCode: number | null;
  error: string | null;
}

/**
 * One signed POST (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`
 * v1 = HMAC-SHA256 over id, timestamp and body). Redirects are not followed: a signed message
 * goes to the registered address only.
 */
export async function postSigned(url: string, secret: string, messageId: string, body: string, timeoutMs: number): Promise<HttpResult> {
  const now = new Date();
  const signature = new Webhook(secret).sign(messageId, now, body);
  try {
    const response = await fetch(url, {
      method: "POST",
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
      headers: {
        "content-type": "application/json",
        "user-agent": "supply-monitor-webhooks/1",
        "webhook-id": messageId,
        "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
        "webhook-signature": signature,
      },
      body,
    });
    const answer = (await response.text().catch(() => "")).replace(/\s+/g, " ").trim().slice(0, 200);
    if (response.status >= 200 && response.status < 300) return { ok: true, statusCode: response.status, error: null };
    if (response.status >= 300 && response.status < 400) {
      const location = response.headers.get("location");
      return {
        ok: false,
        statusCode: response.status,
        error: `HTTP ${response.status} redirect${location ? ` to ${location.slice(0, 200)}` : ""} not followed: register the final URL instead`,
      };
    }
    return { ok: false, statusCode: response.status, error: `HTTP ${response.status}${answer ? `: ${answer}` : ""}` };
  } catch (error) {
    const e = error as Error & { cause?: { code?: string; message?: string } };
    if (e.name === "TimeoutError") return { ok: false, statusCode: null, error: `no answer within ${timeoutMs} ms` };
    return { ok: false, statusCode: null, error: `request failed: ${e.cause?.code ?? e.cause?.message ?? e.message}` };
  }
}

interface WebhookTarget {
  id: string;
  url: string;
  secretCiphertext: string;
  disabledAt: Date | string | null;
}

async function loadWebhook(db: Database, id: string): Promise<WebhookTarget | undefined> {
  const [row] = await db.execute<{ id: string; url: string; secret_ciphertext: string; disabled_at: string | null }>(
    sql`select id::text, url, secret_ciphertext, disabled_at::text from webhook where id = ${id}::uuid`,
    "objects",
  );
  return row && { id: row.id, url: row.url, secretCiphertext: row.secret_ciphertext, disabledAt: row.disabled_at };
}

/**
 * Records one attempt on the rows it was for. Delivered: the rows become DELIVERED (or, for a
 * digest, stay DIGESTED with delivered_at set). Failed on the last attempt: FAILED. Rows
 * cancelled meanwhile stay cancelled.
 */
async function recordAttempt(
  tx: Database,
  ids: string[],
  result: { ok: boolean; statusCode: number | null; error: string | null },
  final: boolean,
  digest: boolean,
): Promise<void> {
  const status = result.ok ? (digest ? "DIGESTED" : "DELIVERED") : final ? "FAILED" : null;
  await tx.execute(
    sql`update delivery set attempts = attempts + 1, last_attempt_at = now(), last_status_code = ${result.statusCode}, last_error = ${result.error},
          delivered_at = ${result.ok ? sql`now()` : sql`delivered_at`},
          status = ${status ? sql`${status}::delivery_status` : sql`status`}
        where id = any(${sql.param(ids)}::uuid[]) and (status <> 'CANCELLED' or ${result.ok})`,
  );
}

/**
 * Sends one webhook message (a delivery or a digest) and records the attempt: 2xx resets the
 * webhook's failure count; 410 Gone disables it (the receiver asked for no more); another
 * failure is retried, and on the last attempt counts as a failed delivery, disabling the
 * webhook after WEBHOOK_DISABLE_AFTER_FAILURES in a row.
 */
async function sendToWebhook(
  db: Database,
  webhook: WebhookTarget,
  deliveryIds: string[],
  messageId: string,
  body: string,
  settings: AlertDeliveryConfig,
  attempt: Attempt,
  digest: boolean,
): Promise<DeliveryOutcome> {
  let secret: string;
  try {
    secret = decryptSecret(webhook.secretCiphertext, settings.SECRET_KEY, webhook.id);
  } catch (error) {
    if (!(error instanceof SecretDecryptionError)) throw error;
    // The same on every attempt: fail the rows now and say why.
    await db.transaction((tx) => recordAttempt(tx, deliveryIds, { ok: false, statusCode: null, error: error.message }, true, digest));
    return { outcome: "failed", error: error.message };
  }
  const result = await postSigned(webhook.url, secret, messageId, body, settings.WEBHOOK_TIMEOUT_MS);
  const final = attempt.made + 1 >= attempt.max;
  return db.transaction(async (tx) => {
    if (result.ok) {
      await recordAttempt(tx, deliveryIds, result, final, digest);
      await tx.execute(sql`update webhook set consecutive_failures = 0 where id = ${webhook.id}::uuid and consecutive_failures <> 0`);
      return { outcome: "delivered", statusCode: result.statusCode };
    }
    if (result.statusCode === 410) {
      const error = "HTTP 410 Gone: the receiver asked for no more deliveries; the webhook is disabled";
      await recordAttempt(tx, deliveryIds, { ...result, error }, true, digest);
      await disableForFailures(tx, webhook.id, `the endpoint answered 410 Gone on ${new Date().toISOString()}, asking for no more deliveries; enableWebhook once it accepts them again`);
      return { outcome: "gone", error };
    }
    await recordAttempt(tx, deliveryIds, result, final, digest);
    if (!final) return { outcome: "retry", error: result.error ?? "failed" };
    const [counted] = await tx.execute<{ n: number }>(
      sql`update webhook set consecutive_failures = consecutive_failures + 1 where id = ${webhook.id}::uuid returning consecutive_failures as n`,
      "objects",
    );
    const failures = Number(counted?.n ?? 0);
    if (failures >= settings.WEBHOOK_DISABLE_AFTER_FAILURES) {
      await disableForFailures(
        tx,
        webhook.id,
        `${failures} deliveries in a row failed after every retry (the last: ${result.error}, ${new Date().toISOString()}); fix the endpoint, then enableWebhook`,
      );
    }
    return { outcome: "failed", error: result.error ?? "failed" };
  });
}

async function disableForFailures(tx: Database, webhookId: string, reason: string): Promise<void> {
  const disabled = await tx.execute<{ id: string }>(
    sql`update webhook set disabled_at = now(), disabled_reason = ${reason} where id = ${webhookId}::uuid and disabled_at is null returning id`,
    "objects",
  );
  if (disabled.length === 0) return;
  await cancelPendingDeliveries(tx, webhookId, "webhook disabled before this was sent");
  await writeAudit(tx, systemActor("alert delivery"), { action: "webhook.disable", entityType: "webhook", entityId: webhookId, after: { disabledReason: reason } });
}

/** Sends one PENDING webhook delivery; anything else (sent, cancelled, gone) is left as it is. */
export async function deliverWebhook(db: Database, deliveryId: string, settings: AlertDeliveryConfig, attempt: Attempt): Promise<DeliveryOutcome> {
  const [row] = await loadDeliveries(db, sql`d.id = ${deliveryId}::uuid and d.channel = 'WEBHOOK'`);
  if (!row) return { outcome: "skipped", reason: "no such webhook delivery (its webhook or alert was deleted)" };
  if (row.deliveryStatus !== "PENDING") return { outcome: "skipped", reason: `already ${row.deliveryStatus}` };
  const webhook = row.webhookId ? await loadWebhook(db, row.webhookId) : undefined;
  if (!webhook || webhook.disabledAt) {
    await db.execute(sql`update delivery set status = 'CANCELLED', last_error = 'webhook disabled before this was sent' where id = ${deliveryId}::uuid and status = 'PENDING'`);
    return { outcome: "skipped", reason: "webhook disabled" };
  }
  const body = JSON.stringify({ type: webhookEventType(row.alert.event.type), timestamp: new Date().toISOString(), data: alertWebhookData(row.alert) });
  return sendToWebhook(db, webhook, [deliveryId], deliveryId, body, settings, attempt, false);
}

/** Sends one PENDING e-mail delivery to the user's address as it is now. */
export async function deliverEmail(db: Database, deliveryId: string, settings: AlertDeliveryConfig, attempt: Attempt): Promise<DeliveryOutcome> {
  const [row] = await loadDeliveries(db, sql`d.id = ${deliveryId}::uuid and d.channel = 'EMAIL'`);
  if (!row) return { outcome: "skipped", reason: "no such e-mail delivery (its user or alert was deleted)" };
  if (row.deliveryStatus !== "PENDING") return { outcome: "skipped", reason: `already ${row.deliveryStatus}` };
  return sendEmail(db, row.userId!, [deliveryId], composeAlertMail(row.alert), settings, attempt, false);
}

async function sendEmail(
  db: Database,
  userId: string,
  deliveryIds: string[],
  content: { subject: string; text: string },
  settings: AlertDeliveryConfig,
  attempt: Attempt,
  digest: boolean,
): Promise<DeliveryOutcome> {
  const cancel = async (reason: string): Promise<DeliveryOutcome> => {
    await db.execute(
      sql`update delivery set status = 'CANCELLED', last_error = ${reason} where id = any(${sql.param(deliveryIds)}::uuid[]) and status in ('PENDING', 'DIGESTED') and delivered_at is null`,
    );
    return { outcome: "skipped", reason };
  };
  if (!settings.SMTP_URL) return cancel("SMTP_URL is no longer set: e-mail is off");
  const [user] = await db.execute<{ email: string; disabled: boolean }>(
    sql`select email, disabled_at is not null as disabled from app_user where id = ${userId}::uuid`,
    "objects",
  );
  if (!user || user.disabled || !user.email) return cancel("the user was disabled or has no e-mail address");
  const result = await sendMail(settings.SMTP_URL, settings.MAIL_FROM, user.email, content);
  const final = result.permanent || attempt.made + 1 >= attempt.max;
  await db.transaction((tx) => recordAttempt(tx, deliveryIds, { ok: result.ok, statusCode: null, error: result.error }, final, digest));
  if (result.ok) return { outcome: "delivered" };
  return final ? { outcome: "failed", error: result.error ?? "failed" } : { outcome: "retry", error: result.error ?? "failed" };
}

/**
 * Sends the digest of one recipient and window: one message listing every alert update the cap
 * held back (a webhook `alert.digest` whose webhook-id is the digest id, or one e-mail).
 */
export async function sendDigest(
  db: Database,
  digest: { digestId: string; channel: "WEBHOOK" | "EMAIL"; windowStart: number },
  settings: AlertDeliveryConfig,
  attempt: Attempt,
): Promise<DeliveryOutcome> {
  const rows = await loadDeliveries(
    db,
    sql`d.digest_id = ${digest.digestId}::uuid and d.channel = ${digest.channel}::delivery_channel and d.status = 'DIGESTED' and d.delivered_at is null`,
  );
  if (rows.length === 0) return { outcome: "skipped", reason: "nothing left to send" };
  const ids = rows.map((r) => r.deliveryId);
  const window = { start: digest.windowStart, end: digest.windowStart + Math.round(settings.ALERT_NOTIFY_WINDOW_MINUTES * 60_000) };
  if (digest.channel === "EMAIL") return sendEmail(db, rows[0]!.userId!, ids, composeDigestMail(rows.map((r) => r.alert), window), settings, attempt, true);

  const webhook = await loadWebhook(db, rows[0]!.webhookId!);
  if (!webhook || webhook.disabledAt) {
    await db.execute(sql`update delivery set status = 'CANCELLED', last_error = 'webhook disabled before this was sent' where id = any(${sql.param(ids)}::uuid[])`);
    return { outcome: "skipped", reason: "webhook disabled" };
  }
  const body = JSON.stringify({
    type: "alert.digest",
    timestamp: new Date().toISOString(),
    data: {
      windowStart: iso(window.start),
      windowEnd: iso(window.end),
      count: rows.length,
      alerts: rows.map((r) => ({ type: webhookEventType(r.alert.event.type), deliveryId: r.deliveryId, ...alertWebhookData(r.alert) })),
    },
  });
  return sendToWebhook(db, webhook, ids, digest.digestId, body, settings, attempt, true);
}

export interface SweepResult {
  /** Events, deliveries and digests whose jobs were asked for again. */
  requested: number;
  /** Deliveries given up on: no job took them within STALE_AFTER_HOURS. */
  expired: number;
}

/** A delivery still waiting after this long has lost its job for good (retries end within half an hour by default). */
export const STALE_AFTER_HOURS = 24;

/**
 * Asks again for the jobs of work that waits too long: events not dispatched and deliveries
 * (and digests) still waiting 10 minutes after they were due, as after a Redis that lost its
 * data. The job ids are the original ones, so a job that still exists is not doubled; what
 * still waits after STALE_AFTER_HOURS is marked FAILED, so the log does not show it as pending
 * for ever.
 */
export async function sweepDeliveries(db: Database, settings: AlertDeliveryConfig, limit = 1000): Promise<SweepResult> {
  return db.transaction(async (tx) => {
    const expired = await tx.execute<{ id: string }>(
      sql`update delivery set status = 'FAILED', last_error = ${`not sent within ${STALE_AFTER_HOURS} hours: its job was lost; the alert itself is in alerts`}
          where channel <> 'SSE' and delivered_at is null and status in ('PENDING', 'DIGESTED')
            and created_at < now() - make_interval(hours => ${STALE_AFTER_HOURS})
          returning id`,
      "objects",
    );
    const events = await tx.execute<{ id: number }>(
      sql`select id::int from alert_event where dispatched_at is null
            and created_at between now() - make_interval(hours => ${STALE_AFTER_HOURS}) and now() - interval '10 minutes'
          order by id limit ${limit}`,
      "objects",
    );
    const windowMs = Math.round(settings.ALERT_NOTIFY_WINDOW_MINUTES * 60_000);
    const deliveries = await tx.execute<{ id: string; channel: "WEBHOOK" | "EMAIL"; digest_id: string | null; window_start: number }>(
      sql`select distinct on (coalesce(digest_id, id)) id::text, channel, digest_id::text,
                 (floor(extract(epoch from created_at) * 1000 / ${windowMs}) * ${windowMs})::float8 as window_start
          from delivery
          where channel <> 'SSE' and delivered_at is null and created_at > now() - make_interval(hours => ${STALE_AFTER_HOURS})
            and ((status = 'PENDING' and created_at < now() - interval '10 minutes')
              -- a digest is due when its window ends
              or (status = 'DIGESTED' and digest_id is not null and created_at < now() - interval '10 minutes' - make_interval(secs => ${windowMs / 1000})))
          order by coalesce(digest_id, id), created_at
          limit ${limit}`,
      "objects",
    );
    const opts = deliveryJobOptions(settings);
    const jobs: RelayedJob[] = [
      ...events.map((e) => dispatchJobFor(e.id)),
      ...deliveries.map((d): RelayedJob =>
        d.digest_id
          ? { name: "alerts.sendDigest", data: { digestId: d.digest_id, channel: d.channel, windowStart: Number(d.window_start) }, jobId: `digest-${d.digest_id}`, opts }
          : { name: d.channel === "WEBHOOK" ? "alerts.deliverWebhook" : "alerts.deliverEmail", data: { deliveryId: d.id }, jobId: `deliver-${d.id}`, opts },
      ),
    ];
    await requestJobs(tx, jobs);
    return { requested: jobs.length, expired: expired.length };
  });
}

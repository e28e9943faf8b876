import { encodeGlobalID } from "@pothos/plugin-relay";
import { sql } from "drizzle-orm";
import { alertEventTypeEnum, deliveryChannelEnum, deliveryStatusEnum } from "../db/schema.js";
import { deleteWebhook, disableWebhook, enableWebhook, registerWebhook, webhookOwnedBy } from "../domain/alerts/webhooks.js";
import type { Viewer } from "../domain/viewer.js";
import { AlertKindEnum } from "./alerts.js";
import { builder } from "./builder.js";
import { RiskLevelEnum } from "./enums.js";
import { OrganizationRef } from "./organizations.js";

export const AlertEventTypeEnum = builder.enumType("AlertEventType", {
  description: "What happened to an alert that people are told about: RAISED, ESCALATED (got worse than it had been) or RESOLVED.",
  values: alertEventTypeEnum.enumValues,
});

const DeliveryChannelEnum = builder.enumType("DeliveryChannel", {
  description: "How people are told: SSE (the alertRaised subscription), WEBHOOK, or EMAIL.",
  values: deliveryChannelEnum.enumValues,
});

const DeliveryStatusEnum = builder.enumType("DeliveryStatus", {
  description:
    "PENDING (being sent, or waiting for a retry), DELIVERED, FAILED (every attempt failed, or the receiver answered 410 Gone), DIGESTED (held back by the per-recipient cap and sent in a digest when its window ended), CANCELLED (its webhook or user was disabled first).",
  values: deliveryStatusEnum.enumValues,
});

/** Webhooks a viewer may manage: admins all; a planner their jurisdiction's; others their organization's. */
function webhookVisibility(viewer: Viewer, w: { organizationId: unknown; jurisdictionRegionId: unknown }) {
  if (viewer.role === "ADMIN") return sql`true`;
  if (viewer.role === "PLANNER") return viewer.jurisdiction ? sql`${w.jurisdictionRegionId} = ${viewer.jurisdiction.id}` : sql`false`;
  return viewer.organizationId ? sql`${w.organizationId} = ${viewer.organizationId}` : sql`false`;
}

export const WebhookRef = builder.drizzleNode("webhookTable", {
  name: "Webhook",
  description:
    "An HTTPS endpoint that receives the alerts its owner would see, as signed JSON POSTs (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature headers). Owned by an organization, a planner's jurisdiction, or (admins') everything.",
  id: { column: (w) => w.id, description: "Global id of the webhook." },
  select: { columns: { organizationId: true, jurisdictionRegionId: true } },
  // Only its owner (and admins) may see it: its URL and failures are the owner's business.
  authScopes: (w, ctx) => webhookOwnedBy(ctx.viewer, w),
  fields: (t) => ({
    url: t.exposeString("url", { description: "Where alerts are POSTed." }),
    kinds: t.field({
      type: [AlertKindEnum],
      nullable: true,
      description: "The alert kinds it receives; null for every kind.",
      select: { columns: { kinds: true } },
      resolve: (w) => w.kinds,
    }),
    secret: t.string({
      nullable: true,
      description:
        "The signing secret (whsec_...), to verify the webhook-signature header. Only in the answer of registerWebhook: it is stored encrypted and never shown again; null everywhere else.",
      resolve: (w) => (w as { secret?: string }).secret ?? null,
    }),
    organization: t.relation("organization", { nullable: true, description: "The organization that owns it, whose alerts it receives; null for a jurisdiction's or an admin's." }),
    jurisdiction: t.relation("jurisdiction", {
      nullable: true,
      description: "The planners' jurisdiction that owns it: it receives the alerts of this region and those below it; null otherwise.",
    }),
    enabled: t.boolean({
      description: "Whether alerts are sent to it; false once disabled by its owner, after 410 Gone, or after repeated failures (see disabledReason).",
      select: { columns: { disabledAt: true } },
      resolve: (w) => w.disabledAt === null,
    }),
    disabledAt: t.expose("disabledAt", { type: "DateTime", nullable: true, description: "When it was disabled, if it is." }),
    disabledReason: t.exposeString("disabledReason", { nullable: true, description: "Why it was disabled, and what to do about it." }),
    consecutiveFailures: t.exposeInt("consecutiveFailures", {
      description: "Deliveries in a row that failed after every retry; at WEBHOOK_DISABLE_AFTER_FAILURES the webhook is disabled. A success resets it.",
    }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was registered." }),
  }),
});

builder.drizzleObject("alertEventTable", {
  name: "AlertEvent",
  description: "Something that happened to an alert that people are told about; each one is sent once to every channel and recipient.",
  select: { with: { alert: { columns: { regionId: true, organizationId: true } } } },
  authScopes: (e) => ({ alertVisible: { regionId: e.alert.regionId, organizationId: e.alert.organizationId } }),
  fields: (t) => ({
    type: t.expose("type", { type: AlertEventTypeEnum, description: "RAISED, ESCALATED or RESOLVED." }),
    severity: t.expose("severity", { type: RiskLevelEnum, description: "The alert's severity when it happened." }),
    message: t.exposeString("message", { description: "The alert's message when it happened." }),
    alert: t.relation("alert", { description: "The alert it happened to." }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it happened." }),
    dispatchedAt: t.expose("dispatchedAt", { type: "DateTime", nullable: true, description: "When it was handed to the channels; null while waiting." }),
  }),
});

builder.drizzleObject("deliveryTable", {
  name: "Delivery",
  description: "One entry of the delivery log: an alert event sent to one recipient on one channel, with every attempt counted.",
  authScopes: { admin: true },
  fields: (t) => ({
    messageId: t.exposeString("id", {
      description: "The message id: sent as the webhook-id header, the same on every retry, so receivers can drop duplicates.",
    }),
    channel: t.expose("channel", { type: DeliveryChannelEnum, description: "SSE, WEBHOOK or EMAIL." }),
    status: t.expose("status", { type: DeliveryStatusEnum, description: "Where it stands." }),
    event: t.relation("event", { nullable: true, description: "The alert event it tells about." }),
    webhook: t.relation("webhook", { nullable: true, description: "The webhook it goes to; null for other channels." }),
    attempts: t.exposeInt("attempts", { description: "Attempts made so far." }),
    lastAttemptAt: t.expose("lastAttemptAt", { type: "DateTime", nullable: true, description: "When the last attempt was made." }),
    lastStatusCode: t.exposeInt("lastStatusCode", { nullable: true, description: "The HTTP status of the last webhook attempt, if an answer came." }),
    lastError: t.exposeString("lastError", { nullable: true, description: "What went wrong on the last failed attempt (e-mail addresses left out)." }),
    deliveredAt: t.expose("deliveredAt", { type: "DateTime", nullable: true, description: "When it was delivered (for DIGESTED: when its digest was)." }),
    digestId: t.exposeString("digestId", {
      nullable: true,
      description: "For DIGESTED entries: the digest that carries it (the webhook-id of the alert.digest message).",
    }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When the event was dispatched to this recipient." }),
  }),
});

builder.queryFields((t) => ({
  webhooks: t.drizzleConnection(
    {
      type: "webhookTable",
      description: "The viewer's webhooks, newest first: their organization's, a planner's jurisdiction's; admins see every one.",
      authScopes: { authenticated: true },
      resolve: (query, _root, _args, ctx) =>
        ctx.db.query.webhookTable.findMany(
          query({ where: { RAW: (w) => webhookVisibility(ctx.viewer!, w) }, orderBy: { createdAt: "desc", id: "desc" } }),
        ),
    },
    { name: "WebhookConnection", description: "A page of webhooks." },
    { name: "WebhookEdge", description: "One webhook of a page, with its cursor." },
  ),
  deliveries: t.drizzleConnection(
    {
      type: "deliveryTable",
      description: "Admin: the delivery log, newest first: every alert event sent (or being sent) to a webhook, an e-mail address or the live subscription.",
      authScopes: { admin: true },
      args: {
        webhookId: t.arg.globalID({ for: WebhookRef, description: "Only deliveries to this webhook." }),
        status: t.arg({ type: DeliveryStatusEnum, description: "Only deliveries with this status." }),
        channel: t.arg({ type: DeliveryChannelEnum, description: "Only this channel." }),
      },
      resolve: (query, _root, args, ctx) =>
        ctx.db.query.deliveryTable.findMany(
          query({
            where: {
              ...(args.webhookId ? { webhookId: args.webhookId.id } : {}),
              ...(args.status ? { status: args.status } : {}),
              ...(args.channel ? { channel: args.channel } : {}),
            },
            orderBy: { createdAt: "desc", id: "desc" },
          }),
        ),
    },
    { name: "DeliveryConnection", description: "A page of the delivery log." },
    { name: "DeliveryEdge", description: "One delivery of a page, with its cursor." },
  ),
}));

builder.mutationFields((t) => ({
  registerWebhook: t.drizzleField({
    type: WebhookRef,
    description:
      "Register an endpoint for the alerts you would see: a reporter's or procurement officer's for their organization, a planner's for their jurisdiction, an admin's for everything (or for organizationId). The answer holds the signing secret, shown this once.",
    authScopes: { authenticated: true },
    args: {
      url: t.arg.string({
        required: true,
        description: "Absolute https:// URL (http:// is accepted outside production) that accepts POST; redirects are not followed.",
      }),
      kinds: t.arg({ type: [AlertKindEnum], description: "Only these alert kinds; leave out for every kind." }),
      organizationId: t.arg.globalID({ for: OrganizationRef, description: "Admins only: register it for this organization instead of for everything." }),
    },
    resolve: async (query, _root, args, ctx) => {
      const { webhook, secret } = await registerWebhook(
        ctx.db,
        ctx.actor,
        { secretKey: ctx.config.SECRET_KEY, production: ctx.config.NODE_ENV === "production" },
        { url: args.url, kinds: args.kinds ?? null, organizationId: args.organizationId?.id ?? null },
      );
      const row = await ctx.db.query.webhookTable.findFirst(query({ where: { id: webhook.id } }));
      return { ...row!, secret };
    },
  }),
  disableWebhook: t.drizzleField({
    type: WebhookRef,
    description: "Stop sending alerts to one of your webhooks; deliveries waiting for it are cancelled. Disabling it again changes nothing.",
    authScopes: { authenticated: true },
    args: { id: t.arg.globalID({ required: true, for: WebhookRef, description: "Global id of the webhook." }) },
    resolve: async (query, _root, args, ctx) => {
      await disableWebhook(ctx.db, ctx.actor, args.id.id);
      return (await ctx.db.query.webhookTable.findFirst(query({ where: { id: args.id.id } })))!;
    },
  }),
  enableWebhook: t.drizzleField({
    type: WebhookRef,
    description: "Resume sending alerts to one of your webhooks (after fixing it), with its failure count back at 0. Alerts raised while it was disabled are not sent.",
    authScopes: { authenticated: true },
    args: { id: t.arg.globalID({ required: true, for: WebhookRef, description: "Global id of the webhook." }) },
    resolve: async (query, _root, args, ctx) => {
      await enableWebhook(ctx.db, ctx.actor, args.id.id);
      return (await ctx.db.query.webhookTable.findFirst(query({ where: { id: args.id.id } })))!;
    },
  }),
  deleteWebhook: t.id({
    description: "Delete one of your webhooks and its delivery log; returns its global id.",
    authScopes: { authenticated: true },
    args: { id: t.arg.globalID({ required: true, for: WebhookRef, description: "Global id of the webhook." }) },
    resolve: async (_root, args, ctx) => {
      const deleted = await deleteWebhook(ctx.db, ctx.actor, args.id.id);
      return encodeGlobalID("Webhook", deleted.id);
    },
  }),
}));

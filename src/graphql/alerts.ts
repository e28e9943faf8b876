import { sql } from "drizzle-orm";
import { GraphQLError } from "graphql";
import { alertKindEnum, alertResolutionEnum, alertStatusEnum } from "../db/schema.js";
import { acknowledgeAlert, resolveAlert } from "../domain/alerts/alerts.js";
import { alertVisibleSql } from "../domain/alerts/audience.js";
import { builder } from "./builder.js";
import { RiskLevelEnum } from "./enums.js";

export const AlertKindEnum = builder.enumType("AlertKind", {
  description:
    "SHORTAGE_RISK: a region's product risk level entered YELLOW or worse; STOCKOUT_IMMINENT: a site will run out within a day or is out; SUPPLY_MATCH: a match proposes supply for a need; UPSTREAM_INPUT_SHORTAGE: a manufacturer holds less raw material than a week of its production needs; REPORT_OVERDUE: a site missed its reporting cut-off; DATA_QUALITY: reports carry quality flags.",
  values: alertKindEnum.enumValues,
});

export const AlertStatusEnum = builder.enumType("AlertStatus", {
  description: "OPEN (new or escalated), ACKNOWLEDGED (someone is on it), RESOLVED (cleared by itself or by hand).",
  values: alertStatusEnum.enumValues,
});

const AlertResolutionEnum = builder.enumType("AlertResolution", {
  description: "How an alert was resolved: CLEARED (its condition no longer holds) or MANUAL (by a person).",
  values: alertResolutionEnum.enumValues,
});

export const AlertObject = builder.drizzleNode("alertTable", {
  name: "Alert",
  description:
    "A condition that needs attention, one alert per condition: it is updated in place while the condition lasts, escalated (and notified again) when it gets worse, and resolved when it clears.",
  id: { column: (a) => a.id, description: "Global id of the alert." },
  select: { columns: { regionId: true, organizationId: true } },
  authScopes: (a) => ({ alertVisible: { regionId: a.regionId, organizationId: a.organizationId } }),
  fields: (t) => ({
    kind: t.expose("kind", { type: AlertKindEnum, description: "What kind of condition it is." }),
    severity: t.expose("severity", { type: RiskLevelEnum, description: "How bad it is now, in the five colours." }),
    status: t.expose("status", { type: AlertStatusEnum, description: "Where it stands." }),
    region: t.relation("region", { description: "The region it concerns (the site's region for site alerts)." }),
    product: t.relation("product", { nullable: true, description: "The product it concerns, if any." }),
    organization: t.relation("organization", { nullable: true, description: "The organization concerned, if any (the site's owner, the requester)." }),
    site: t.relation("site", { nullable: true, description: "The site concerned, if any." }),
    match: t.relation("match", { nullable: true, description: "For SUPPLY_MATCH: the match it is about." }),
    message: t.exposeString("message", { description: "What is wrong and what to do, in a sentence or two." }),
    details: t.expose("details", {
      type: "JSONObject",
      description: "The numbers that explain it, by kind: days of supply, stock-out date, on hand and daily demand, quantities, missing dates, flags.",
    }),
    dedupeKey: t.exposeString("dedupeKey", { description: "The condition it stands for; at most one unresolved alert has a given key." }),
    raisedAt: t.expose("raisedAt", { type: "DateTime", description: "When it was raised." }),
    updatedAt: t.expose("updatedAt", { type: "DateTime", description: "When its figures, severity or status last changed." }),
    escalatedAt: t.expose("escalatedAt", { type: "DateTime", nullable: true, description: "When it last got worse than it had been." }),
    acknowledgedAt: t.expose("acknowledgedAt", { type: "DateTime", nullable: true, description: "When someone acknowledged it." }),
    resolvedAt: t.expose("resolvedAt", { type: "DateTime", nullable: true, description: "When it was resolved." }),
    resolution: t.expose("resolution", { type: AlertResolutionEnum, nullable: true, description: "How it was resolved." }),
    resolveNote: t.exposeString("resolveNote", { nullable: true, description: "The note left when it was resolved by hand." }),
  }),
});

builder.queryFields((t) => ({
  alerts: t.drizzleConnection(
    {
      type: "alertTable",
      description:
        "Alerts the viewer may see, newest first: planners those in their jurisdiction, organizations their own, admins all.",
      authScopes: { authenticated: true },
      args: {
        status: t.arg({ type: AlertStatusEnum, description: "Only this status." }),
        kind: t.arg({ type: AlertKindEnum, description: "Only this kind." }),
        regionCode: t.arg.string({ description: "Only alerts of this region and the regions below it." }),
      },
      resolve: async (query, _root, args, ctx) => {
        let subtree = sql`true`;
        if (args.regionCode != null) {
          const [region] = await ctx.db.execute<{ path: string }>(sql`select path from region where code = ${args.regionCode.trim()}`, "objects");
          if (!region) throw new GraphQLError(`region ${args.regionCode}: not found; see regions { code } for the codes`, { extensions: { code: "NOT_FOUND" } });
          subtree = sql`ar.path ^@ ${region.path}`;
        }
        const visible = alertVisibleSql(ctx.viewer);
        return ctx.db.query.alertTable.findMany(
          query({
            where: {
              ...(args.status ? { status: args.status } : {}),
              ...(args.kind ? { kind: args.kind } : {}),
              RAW: (a) => sql`exists (select 1 from alert a join region ar on ar.id = a.region_id where a.id = ${a.id} and ${visible} and ${subtree})`,
            },
            orderBy: { raisedAt: "desc", id: "desc" },
          }),
        );
      },
    },
    { name: "AlertConnection", description: "A page of alerts." },
    { name: "AlertEdge", description: "One alert of a page, with its cursor." },
  ),
}));

builder.mutationFields((t) => ({
  acknowledgeAlert: t.drizzleField({
    type: AlertObject,
    description: "Marks an alert as being dealt with (OPEN -> ACKNOWLEDGED). An alert that gets worse later opens again.",
    authScopes: { authenticated: true },
    args: { id: t.arg.globalID({ required: true, for: AlertObject, description: "Global id of the alert." }) },
    resolve: async (query, _root, args, ctx) => {
      await acknowledgeAlert(ctx.db, ctx.actor, args.id.id);
      return (await ctx.db.query.alertTable.findFirst(query({ where: { id: args.id.id } })))!;
    },
  }),
  resolveAlert: t.drizzleField({
    type: AlertObject,
    description:
      "Resolves an alert by hand, with an optional note. If its condition still holds it is not raised again until it clears or gets worse.",
    authScopes: { authenticated: true },
    args: {
      id: t.arg.globalID({ required: true, for: AlertObject, description: "Global id of the alert." }),
      note: t.arg.string({ description: "Why or how it was resolved (at most 1,000 characters)." }),
    },
    resolve: async (query, _root, args, ctx) => {
      await resolveAlert(ctx.db, ctx.actor, args.id.id, args.note);
      return (await ctx.db.query.alertTable.findFirst(query({ where: { id: args.id.id } })))!;
    },
  }),
}));

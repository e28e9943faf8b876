import { sql } from "drizzle-orm";
import { submitReports, type SubmitReportsResult } from "../domain/reports/ingest.js";
import type { ReportRow } from "../domain/types.js";
import { builder } from "./builder.js";
import { siteVisibility } from "./organizations.js";

const measureFields = <T extends { exposeFloat: (...args: any[]) => any }>(t: T) => ({
  onHand: t.exposeFloat("onHand", { nullable: true, description: "Stock at the end of the day, in base units." }),
  produced: t.exposeFloat("produced", { nullable: true, description: "Made during the day, in base units." }),
  capacityPerDay: t.exposeFloat("capacityPerDay", { nullable: true, description: "What the lines could make in a day, in base units." }),
  consumed: t.exposeFloat("consumed", { nullable: true, description: "Used during the day, in base units." }),
  received: t.exposeFloat("received", { nullable: true, description: "Received during the day, in base units." }),
  shipped: t.exposeFloat("shipped", { nullable: true, description: "Shipped during the day, in base units." }),
  backlog: t.exposeFloat("backlog", { nullable: true, description: "Ordered but not yet shipped, in base units." }),
  stockoutHours: t.exposeFloat("stockoutHours", { nullable: true, description: "Hours of the day without stock." }),
});

builder.drizzleObject("reportRevisionTable", {
  name: "ReportRevision",
  description: "A superseded version of a report, kept when a correction replaced it.",
  authScopes: { authenticated: true },
  fields: (t) => ({
    revision: t.exposeInt("revision", { description: "Its revision number (1 = first submission)." }),
    ...measureFields(t),
    qualityFlags: t.exposeStringList("qualityFlags", { description: "Quality flags it carried." }),
    submittedAt: t.expose("submittedAt", { type: "DateTime", description: "When this version was submitted." }),
    supersededAt: t.expose("supersededAt", { type: "DateTime", description: "When a correction replaced it." }),
  }),
});

export const ReportRef = builder.drizzleNode("reportTable", {
  name: "Report",
  description: "One site's figures for one product on one local day, in the product's base unit.",
  id: { column: (r) => r.id, description: "Global id of the report." },
  authScopes: (report) => ({ siteReportsVisible: report.siteId }),
  fields: (t) => ({
    site: t.relation("site", { description: "The reporting site." }),
    product: t.relation("product", { description: "The product." }),
    date: t.expose("date", { type: "Date", description: "The site's local day." }),
    ...measureFields(t),
    qualityFlags: t.exposeStringList("qualityFlags", {
      description: "Data-quality findings, not rejections: STOCK_BALANCE_MISMATCH, PRODUCED_ABOVE_CAPACITY, BACKFILL.",
    }),
    revision: t.exposeInt("revision", { description: "1 for the first submission, +1 per correction." }),
    revisions: t.relation("revisions", {
      description: "Earlier versions, newest first: the latest 100 (the revision number says how many there were).",
      query: { orderBy: { revision: "desc" }, limit: 100 },
    }),
    submittedAt: t.expose("submittedAt", { type: "DateTime", description: "When the current version was submitted." }),
  }),
});

const ReportInput = builder.inputType("ReportInput", {
  description: "One report row. Figures may be absent; those present must be finite and >= 0. In a correction, absent figures keep their stored value.",
  fields: (t) => ({
    siteCode: t.string({ required: true, description: "Code of one of your organization's sites." }),
    productCode: t.string({ required: true, description: "Catalog code of the product." }),
    date: t.field({ type: "Date", required: true, description: "The site's local day; at most one day ahead." }),
    unit: t.string({ description: "Unit of the figures: the base unit (default) or a declared pack unit." }),
    onHand: t.float({ description: "Stock at the end of the day." }),
    produced: t.float({ description: "Made during the day." }),
    capacityPerDay: t.float({ description: "What the lines could make in a day." }),
    consumed: t.float({ description: "Used during the day." }),
    received: t.float({ description: "Received during the day." }),
    shipped: t.float({ description: "Shipped during the day." }),
    backlog: t.float({ description: "Ordered but not yet shipped." }),
    stockoutHours: t.float({ description: "Hours without stock (0-24); never converted by unit." }),
  }),
});

const RowErrorRef = builder.objectRef<{ index: number; field: string | null; message: string }>("RowError").implement({
  description: "Why one row of a batch was rejected.",
  fields: (t) => ({
    index: t.exposeInt("index", { description: "Position of the row in the batch, from 0." }),
    field: t.exposeString("field", { nullable: true, description: "The offending field, if one is to blame." }),
    message: t.exposeString("message", { description: "What was wrong and what to send instead." }),
  }),
});

const SubmitReportsPayload = builder.objectRef<SubmitReportsResult>("SubmitReportsPayload").implement({
  description: "Result of a batch: good rows are stored, bad rows listed.",
  fields: (t) => ({
    accepted: t.exposeInt("accepted", { description: "How many rows were stored (new, corrected or unchanged)." }),
    rejected: t.field({ type: [RowErrorRef], description: "One entry per problem found, by row index.", resolve: (p) => p.rejected }),
    replayed: t.boolean({
      description: "True when this answer is the stored result of an earlier request with the same idempotency key.",
      resolve: (p) => p.replayed ?? false,
    }),
    reports: t.drizzleField({
      type: ["reportTable"],
      description: "The stored reports, in the order of the accepted rows.",
      resolve: async (query, payload, _args, ctx) => {
        if (!payload.reportIds.length) return [];
        const rows = await ctx.db.query.reportTable.findMany(query({ where: { id: { in: payload.reportIds } } }));
        const byId = new Map(rows.map((r) => [(r as unknown as ReportRow).id, r]));
        return payload.reportIds.map((id) => byId.get(id)!);
      },
    }),
  }),
});

builder.queryFields((t) => ({
  reports: t.drizzleConnection({
    type: "reportTable",
    description: "Reports the viewer may see, newest day first; filter by site, product and a date range (inclusive).",
    authScopes: { roles: ["ADMIN", "PLANNER", "REPORTER"] },
    args: {
      siteCode: t.arg.string({ description: "Only this site." }),
      productCode: t.arg.string({ description: "Only this product." }),
      from: t.arg({ type: "Date", description: "First day, inclusive." }),
      to: t.arg({ type: "Date", description: "Last day, inclusive." }),
    },
    resolve: (query, _root, args, ctx) =>
      ctx.db.query.reportTable.findMany(
        query({
          where: {
            ...(args.from || args.to ? { date: { ...(args.from ? { gte: args.from } : {}), ...(args.to ? { lte: args.to } : {}) } } : {}),
            RAW: (report) => sql.join(
              [
                sql`${report.siteId} in (select s.id from site s where ${siteVisibility(ctx.viewer!, { organizationId: sql`s.organization_id`, regionId: sql`s.region_id` })})`,
                args.siteCode ? sql`${report.siteId} = (select id from site where code = ${args.siteCode})` : sql`true`,
                args.productCode ? sql`${report.productId} = (select id from product where code = ${args.productCode.toUpperCase()})` : sql`true`,
              ],
              sql` and `,
            ),
          },
          orderBy: { date: "desc", id: "desc" },
        }),
      ),
  }, { name: "ReportConnection", description: "A page of reports." }, { name: "ReportEdge", description: "One report of a page, with its cursor." }),
}));

builder.mutationFields((t) => ({
  submitReports: t.field({
    type: SubmitReportsPayload,
    description:
      "Submit up to 5,000 report rows. Good rows are stored (a repeated site/product/date is a correction; the old version is kept), bad rows are returned with index, field and message. With an idempotencyKey, a repeated request returns the first result.",
    authScopes: { roles: ["REPORTER", "ADMIN"] },
    args: {
      reports: t.arg({ type: [ReportInput], required: true, description: "The rows, at most 5,000." }),
      idempotencyKey: t.arg.string({ description: "Any unique string per batch (a UUID); retries with the same key and body are answered once." }),
    },
    resolve: (_root, args, ctx) =>
      submitReports(ctx.db, ctx.actor, args.reports, {
        idempotencyKey: args.idempotencyKey,
        backfillDays: ctx.config.REPORT_BACKFILL_DAYS,
      }),
  }),
}));

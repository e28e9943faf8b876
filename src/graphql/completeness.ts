import { reportingCompleteness, type CompletenessRow } from "../domain/completeness.js";
import { clearReportingSchedule, getReportingSchedule, setReportingSchedule, type EffectiveSchedule } from "../domain/compliance.js";
import type { RegionRow } from "../domain/types.js";
import { builder } from "./builder.js";
import { RegionRef } from "./regions.js";

type CompletenessRowWithRegion = CompletenessRow & { region: RegionRow };

const CompletenessRowRef = builder.objectRef<CompletenessRowWithRegion>("CompletenessRow").implement({
  description:
    "Reporting compliance of one region (its whole subtree) on one day: how many sites were expected to report, how many did, and how many on time (before the cut-off of the site's region, by default 10:00 the next day, in each site's time zone).",
  authScopes: (row) => ({ $all: { roles: ["ADMIN", "PLANNER"], regionVisible: { id: row.region.id, path: row.region.path } } }),
  fields: (t) => ({
    region: t.field({ type: RegionRef, description: "The region; its figures count its sites and those of every region below it.", resolve: (row) => row.region }),
    date: t.field({ type: "Date", description: "The reporting day (each site's local day).", resolve: (row) => row.date }),
    expectedSites: t.exposeInt("expectedSites", { description: "Sites in the region's subtree that existed by the day's cut-off." }),
    reportingSites: t.exposeInt("reportingSites", { description: "Expected sites with at least one report for the day." }),
    onTimeSites: t.exposeInt("onTimeSites", { description: "Expected sites whose first submission for the day came before the cut-off; later corrections do not make it late." }),
    lateSites: t.exposeInt("lateSites", { description: "Expected sites that reported, but after the cut-off (reportingSites - onTimeSites)." }),
    missingSites: t.exposeInt("missingSites", { description: "Expected sites with no report for the day yet (expectedSites - reportingSites): the ones to follow up." }),
    completeness: t.exposeFloat("completeness", { nullable: true, description: "reportingSites / expectedSites; null when no site was expected." }),
    timeliness: t.exposeFloat("timeliness", { nullable: true, description: "onTimeSites / expectedSites; null when no site was expected." }),
  }),
});

builder.queryFields((t) => ({
  reportingCompleteness: t.field({
    type: [CompletenessRowRef],
    description:
      "Reporting completeness and timeliness on a day for a region (first row) and each region directly below it (by code). Planners: regions in their jurisdiction; admins: any.",
    authScopes: { roles: ["ADMIN", "PLANNER"] },
    args: {
      regionCode: t.arg.string({ required: true, description: "Code of the region; for planners, inside their jurisdiction." }),
      date: t.arg({ type: "Date", required: true, description: "The reporting day." }),
    },
    resolve: async (_root, args, ctx) => {
      const rows = await reportingCompleteness(ctx.db, ctx.viewer, args);
      const regions = await ctx.db.query.regionTable.findMany({ where: { id: { in: rows.map((r) => r.regionId) } } });
      const byId = new Map(regions.map((r) => [r.id, r]));
      return rows.map((r) => ({ ...r, region: byId.get(r.regionId)! }));
    },
  }),
}));

const ReportingScheduleRef = builder.objectRef<EffectiveSchedule>("ReportingSchedule").implement({
  description:
    "When the sites of a region must report each day: by cutoffLocalTime on the day cutoffDaysAfter days after the reporting day, on each site's own clock (its time zone). A region without a schedule of its own follows the nearest region above it that has one, else the default (10:00 the next day).",
  authScopes: (s) => ({ $all: { roles: ["ADMIN", "PLANNER"], regionVisible: { id: s.region.id, path: s.region.path } } }),
  fields: (t) => ({
    region: t.field({ type: RegionRef, description: "The region asked about.", resolve: (s) => s.region }),
    cutoffLocalTime: t.exposeString("localTime", { description: "Local time of day of the cut-off, HH:MM (24-hour clock)." }),
    cutoffDaysAfter: t.exposeInt("daysAfter", { description: "Days after the reporting day on which the cut-off falls (1 = the next day)." }),
    inherited: t.boolean({ description: "True when the region has no schedule of its own (it follows a region above it, or the default).", resolve: (s) => s.setOn?.id !== s.region.id }),
    setOn: t.field({
      type: RegionRef,
      nullable: true,
      description: "The region whose schedule applies (this one or the nearest above it); null for the default, or when that region is outside your jurisdiction.",
      resolve: async (s, _args, ctx) => (s.setOn && (await ctx.access.regionVisible(s.setOn)) ? s.setOn : null),
    }),
    updatedAt: t.field({ type: "DateTime", nullable: true, description: "When the applying schedule was last set; null for the default.", resolve: (s) => s.updatedAt }),
  }),
});

builder.queryFields((t) => ({
  reportingSchedule: t.field({
    type: ReportingScheduleRef,
    description: "The reporting cut-off that applies to a region's sites, and where it comes from. Planners: regions in their jurisdiction; admins: any.",
    authScopes: { roles: ["ADMIN", "PLANNER"] },
    args: { regionCode: t.arg.string({ required: true, description: "Code of the region; for planners, inside their jurisdiction." }) },
    resolve: (_root, args, ctx) => getReportingSchedule(ctx.db, ctx.viewer, args),
  }),
}));

builder.mutationFields((t) => ({
  setReportingSchedule: t.field({
    type: ReportingScheduleRef,
    description:
      "Planner (inside their jurisdiction) or admin: set when the sites of a region and of the regions below it without a schedule of their own must report. Days already checked keep the cut-off they were judged by.",
    authScopes: { roles: ["ADMIN", "PLANNER"] },
    args: {
      regionCode: t.arg.string({ required: true, description: "Code of the region; for planners, inside their jurisdiction." }),
      cutoffLocalTime: t.arg.string({ required: true, description: 'Local time of day, HH:MM from 00:00 to 23:59, e.g. "10:00".' }),
      cutoffDaysAfter: t.arg.int({ required: true, description: "Days after the reporting day, 0 to 7 (1 = the next day)." }),
    },
    resolve: (_root, args, ctx) => setReportingSchedule(ctx.db, ctx.actor, args),
  }),
  clearReportingSchedule: t.field({
    type: ReportingScheduleRef,
    description:
      "Planner (inside their jurisdiction) or admin: remove a region's own schedule, so its sites follow the nearest region above it (or the default) again. Returns the schedule that now applies.",
    authScopes: { roles: ["ADMIN", "PLANNER"] },
    args: { regionCode: t.arg.string({ required: true, description: "Code of the region; for planners, inside their jurisdiction." }) },
    resolve: (_root, args, ctx) => clearReportingSchedule(ctx.db, ctx.actor, args),
  }),
}));

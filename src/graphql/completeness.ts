import { reportingCompleteness, type CompletenessRow } from "../domain/completeness.js";
import type { RegionRow } from "../domain/types.js";
import { builder } from "./builder.js";
import { RegionRef } from "./regions.js";

type CompletenessRowWithRegion = CompletenessRow & { region: RegionRow };

const CompletenessRowRef = builder.objectRef<CompletenessRowWithRegion>("CompletenessRow").implement({
  description:
    "Reporting compliance of one region (its whole subtree) on one day: how many sites were expected to report, how many did, and how many on time (before 10:00 the next day in each site's time zone).",
  authScopes: (row) => ({ $all: { roles: ["ADMIN", "PLANNER"], regionVisible: { id: row.region.id, path: row.region.path } } }),
  fields: (t) => ({
    region: t.field({ type: RegionRef, description: "The region; its figures count its sites and those of every region below it.", resolve: (row) => row.region }),
    date: t.field({ type: "Date", description: "The reporting day (each site's local day).", resolve: (row) => row.date }),
    expectedSites: t.exposeInt("expectedSites", { description: "Sites in the region's subtree that existed by the day's cut-off." }),
    reportingSites: t.exposeInt("reportingSites", { description: "Expected sites with at least one report for the day." }),
    onTimeSites: t.exposeInt("onTimeSites", { description: "Expected sites whose first submission for the day came before the cut-off; later corrections do not make it late." }),
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

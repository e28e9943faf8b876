import { createRegions, regionVisibility } from "../domain/regions.js";
import type { RegionRow } from "../domain/types.js";
import { builder } from "./builder.js";
import { RegionLevelEnum } from "./enums.js";

export const RegionRef = builder.drizzleNode("regionTable", {
  name: "Region",
  description: "An administrative region (country, province, city or county); a planner's jurisdiction is one region and its subtree.",
  id: { column: (r) => r.id, description: "Global id of the region." },
  authScopes: (region) => ({ regionVisible: { id: region.id, path: region.path } }),
  fields: (t) => ({
    code: t.exposeString("code", { description: "Stable code, e.g. CN, 330000 (Zhejiang), 330102 (Shangcheng)." }),
    name: t.exposeString("name", { description: "Official name." }),
    level: t.expose("level", { type: RegionLevelEnum, description: "Administrative level." }),
    latitude: t.exposeFloat("latitude", { nullable: true, description: "Latitude of the centroid, if known." }),
    longitude: t.exposeFloat("longitude", { nullable: true, description: "Longitude of the centroid, if known." }),
    population: t.exposeFloat("population", { nullable: true, description: "Population, if known." }),
  }),
});

// Added separately: a type that refers to itself cannot infer its own type in one initializer.
builder.drizzleObjectFields(RegionRef, (t) => ({
    parent: t.field({
      type: RegionRef,
      nullable: true,
      description: "The region above this one; null at the top of the tree or of the viewer's jurisdiction.",
      select: { with: { parent: true } },
      resolve: async (region, _args, ctx) =>
        region.parent && (await ctx.access.regionVisible(region.parent)) ? region.parent : null,
    }),
    children: t.field({
      type: [RegionRef],
      description: "The regions directly below this one that the viewer may see, by code.",
      select: { with: { children: { orderBy: { code: "asc" } } } },
      resolve: async (region, _args, ctx) => {
        const visible = await Promise.all(region.children.map((c) => ctx.access.regionVisible(c)));
        return region.children.filter((_, i) => visible[i]);
      },
    }),
}));

const RegionInput = builder.inputType("RegionInput", {
  description: "A region to create, or to update by code (name, level, centroid, population).",
  fields: (t) => ({
    code: t.string({ required: true, description: "Stable code, unique across all regions." }),
    name: t.string({ required: true, description: "Official name." }),
    level: t.field({ type: RegionLevelEnum, required: true, description: "Administrative level; lower than the parent's." }),
    parentCode: t.string({ description: "Code of the parent region (existing, or earlier or later in the same list)." }),
    latitude: t.float({ description: "Latitude of the centroid (-90 to 90)." }),
    longitude: t.float({ description: "Longitude of the centroid (-180 to 180)." }),
    population: t.int({ description: "Population." }),
  }),
});

const CreateRegionsPayload = builder
  .objectRef<{ created: number; updated: number; codes: string[] }>("CreateRegionsPayload")
  .implement({
    description: "Result of createRegions.",
    fields: (t) => ({
      created: t.exposeInt("created", { description: "How many regions were new." }),
      updated: t.exposeInt("updated", { description: "How many existing regions were updated." }),
      regions: t.drizzleField({
        type: ["regionTable"],
        description: "The regions of the request, in the order sent.",
        resolve: async (query, payload, _args, ctx) => {
          const rows = await ctx.db.query.regionTable.findMany(query({ where: { code: { in: payload.codes } } }));
          const byCode = new Map(rows.map((r) => [(r as unknown as RegionRow).code, r]));
          return payload.codes.map((c) => byCode.get(c)!);
        },
      }),
    }),
  });

builder.queryFields((t) => ({
  regions: t.drizzleField({
    type: ["regionTable"],
    description:
      "Regions the viewer may see, by code. With parentCode: that region's children; with level: every visible region of that level; with neither: the top of the viewer's visible tree.",
    authScopes: { authenticated: true },
    args: {
      parentCode: t.arg.string({ description: "Only the children of this region." }),
      level: t.arg({ type: RegionLevelEnum, description: "Only regions of this level." }),
    },
    resolve: async (query, _root, args, ctx) => {
      const viewer = ctx.viewer!;
      let parentId: number | undefined;
      if (args.parentCode) {
        const parent = await ctx.db.query.regionTable.findFirst({ where: { code: args.parentCode }, columns: { id: true } });
        if (!parent) return [];
        parentId = parent.id;
      }
      const top = !args.parentCode && !args.level;
      return ctx.db.query.regionTable.findMany(
        query({
          where: {
            ...(parentId !== undefined ? { parentId } : {}),
            ...(args.level ? { level: args.level } : {}),
            ...(top && viewer.role === "ADMIN" ? { parentId: { isNull: true } } : {}),
            ...(top && viewer.role === "PLANNER" ? { id: viewer.jurisdiction?.id ?? -1 } : {}),
            RAW: (region) => regionVisibility(viewer, region),
          },
          orderBy: { code: "asc" },
        }),
      );
    },
  }),
  region: t.drizzleField({
    type: "regionTable",
    nullable: true,
    description: "One region by code; null if it does not exist or is outside what the viewer may see.",
    authScopes: { authenticated: true },
    args: { code: t.arg.string({ required: true, description: "The region's code." }) },
    resolve: (query, _root, args, ctx) =>
      ctx.db.query.regionTable.findFirst(
        query({ where: { code: args.code, RAW: (region) => regionVisibility(ctx.viewer!, region) } }),
      ),
  }),
}));

builder.mutationFields((t) => ({
  createRegions: t.field({
    type: CreateRegionsPayload,
    description: "Admin: create regions or update them by code, all in one transaction. Parents may be in the same list.",
    authScopes: { admin: true },
    args: { input: t.arg({ type: [RegionInput], required: true, description: "Regions, in any order." }) },
    resolve: (_root, args, ctx) => createRegions(ctx.db, ctx.actor, args.input),
  }),
}));


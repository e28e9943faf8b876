import DataLoader from "dataloader";
import { sql } from "drizzle-orm";
import { GraphQLError } from "graphql";
import { matchKindEnum, matchStatusEnum } from "../db/schema.js";
import { respondToMatch } from "../domain/matching/matching.js";
import type { Viewer } from "../domain/viewer.js";
import { builder } from "./builder.js";
import type { Context } from "./context.js";

export const MatchStatusEnum = builder.enumType("MatchStatus", {
  description: "Where a match stands: PROPOSED by the matching job, ACCEPTED (quantity committed), DECLINED, FULFILLED (delivered), EXPIRED (superseded or not answered in time).",
  values: matchStatusEnum.enumValues,
});

export const MatchKindEnum = builder.enumType("MatchKind", {
  description: "DOWNSTREAM: finished goods to a region or request that is short; UPSTREAM: raw material to a manufacturer that lacks it.",
  values: matchKindEnum.enumValues,
});

/**
 * Matches a viewer may see: admins all; planners those going to a region in their jurisdiction;
 * organizations those they supply, receive (upstream) or requested.
 */
export function matchVisibility(viewer: Viewer, m: { fromSiteId: unknown; toSiteId: unknown; toRegionId: unknown }) {
  switch (viewer.role) {
    case "ADMIN":
      return sql`true`;
    case "PLANNER":
      return viewer.jurisdiction ? sql`${m.toRegionId} in (select id from region where path ^@ ${viewer.jurisdiction.path})` : sql`false`;
    default:
      return viewer.organizationId
        ? sql`(${m.fromSiteId} in (select id from site where organization_id = ${viewer.organizationId})
               or ${m.toSiteId} in (select id from site where organization_id = ${viewer.organizationId}))`
        : sql`false`;
  }
}

const PartyRef = builder
  .objectRef<{ organization: string; siteCode: string; siteName: string; regionCode: string; regionName: string }>("MatchParty")
  .implement({
    description: "One side of a match, as the other side needs it to get in touch through their own channels (no personal contact details).",
    authScopes: { authenticated: true },
    fields: (t) => ({
      organization: t.exposeString("organization", { description: "Organization name." }),
      siteCode: t.exposeString("siteCode", { description: "Site code." }),
      siteName: t.exposeString("siteName", { description: "Site name." }),
      regionCode: t.exposeString("regionCode", { description: "Code of the site's region." }),
      regionName: t.exposeString("regionName", { description: "Name of the site's region." }),
    }),
  });

type Party = { organization: string; siteCode: string; siteName: string; regionCode: string; regionName: string };

// One query per page of matches, not two per match: the parties of a request are loaded together.
const partyLoaders = new WeakMap<Context, DataLoader<string, Party | null>>();
function party(ctx: Context, siteId: string | null): Promise<Party | null> {
  if (!siteId) return Promise.resolve(null);
  let loader = partyLoaders.get(ctx);
  if (!loader) {
    loader = new DataLoader(async (ids: readonly string[]) => {
      const rows = await ctx.db.execute<Party & { id: string }>(
        sql`select s.id, o.name as organization, s.code as "siteCode", s.name as "siteName", r.code as "regionCode", r.name as "regionName"
            from site s join organization o on o.id = s.organization_id join region r on r.id = s.region_id
            where s.id = any(${sql.param([...ids])}::uuid[])`,
        "objects",
      );
      const byId = new Map(rows.map(({ id, ...p }) => [id, p]));
      return ids.map((id) => byId.get(id) ?? null);
    });
    partyLoaders.set(ctx, loader);
  }
  return loader.load(siteId);
}

export const MatchRef = builder.drizzleNode("matchTable", {
  name: "Match",
  description: "A proposal to move a quantity of a product from a supplier's site to where it is short, and what became of it.",
  id: { column: (m) => m.id, description: "Global id of the match." },
  select: { columns: { fromSiteId: true, toSiteId: true, toRegionId: true } },
  authScopes: (m) => ({ matchVisible: { fromSiteId: m.fromSiteId, toSiteId: m.toSiteId, toRegionId: m.toRegionId } }),
  fields: (t) => ({
    kind: t.expose("kind", { type: MatchKindEnum, description: "DOWNSTREAM or UPSTREAM." }),
    product: t.relation("product", { description: "What is to be moved." }),
    toRegion: t.relation("toRegion", { description: "Where it is short." }),
    supplier: t.field({
      type: PartyRef,
      description: "The supplying site and organization.",
      select: { columns: { fromSiteId: true } },
      resolve: async (m, _args, ctx) => (await party(ctx, m.fromSiteId))!,
    }),
    recipient: t.field({
      type: PartyRef,
      nullable: true,
      description: "The receiving site: the requesting site, or the manufacturer short of an input; null for a region's shortage.",
      select: { columns: { toSiteId: true } },
      resolve: (m, _args, ctx) => party(ctx, m.toSiteId),
    }),
    request: t.relation("request", { nullable: true, description: "The procurement request it answers, if any." }),
    quantity: t.exposeFloat("quantity", { description: "Quantity in the product's base unit." }),
    distanceKm: t.exposeFloat("distanceKm", { nullable: true, description: "Distance between the regions' centroids (or tree distance x 150 km where one has none)." }),
    urgency: t.exposeFloat("urgency", { description: "Weight of the need it covers (risk level, need date): more urgent need is covered first." }),
    status: t.expose("status", { type: MatchStatusEnum, description: "Where it stands." }),
    reason: t.exposeString("reason", { nullable: true, description: "Why it was declined or expired." }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When the matching job proposed it." }),
    respondedAt: t.expose("respondedAt", { type: "DateTime", nullable: true, description: "When someone last answered it." }),
  }),
});

const BottleneckRef = builder.drizzleObject("bottleneckTable", {
  name: "Bottleneck",
  description: "An input that limits a product's production in a region over the forecast horizon.",
  select: { columns: { regionId: true } },
  authScopes: (b) => ({ regionFiguresVisible: b.regionId }),
  fields: (t) => ({
    region: t.relation("region", { description: "The region (its figures include the regions below it)." }),
    product: t.relation("product", { description: "The product whose production is limited." }),
    input: t.relation("input", { description: "The input the sites do not hold enough of." }),
    lostQuantity: t.exposeFloat("lostQuantity", { description: "Production (base units of the product) the sites' lines could make but the input does not allow." }),
    inputShort: t.exposeFloat("inputShort", { description: "Input (its base units) missing for that production." }),
  }),
});

builder.queryFields((t) => ({
  matches: t.drizzleConnection(
    {
      type: "matchTable",
      description:
        "Matches the viewer may see, newest first: procurement their organization's, a manufacturer its offers and upstream matches, planners those into their jurisdiction.",
      authScopes: { authenticated: true },
      args: {
        productCode: t.arg.string({ description: "Only this product." }),
        status: t.arg({ type: MatchStatusEnum, description: "Only this status." }),
      },
      resolve: (query, _root, args, ctx) =>
        ctx.db.query.matchTable.findMany(
          query({
            where: {
              ...(args.status ? { status: args.status } : {}),
              RAW: (m) =>
                sql.join(
                  [
                    matchVisibility(ctx.viewer!, m),
                    args.productCode ? sql`${m.productId} = (select id from product where code = ${args.productCode.toUpperCase()})` : sql`true`,
                  ],
                  sql` and `,
                ),
            },
            orderBy: { createdAt: "desc", id: "desc" },
          }),
        ),
    },
    { name: "MatchConnection", description: "A page of matches." },
    { name: "MatchEdge", description: "One match of a page, with its cursor." },
  ),
  bottlenecks: t.drizzleField({
    type: [BottleneckRef],
    description: "Which inputs limit which products in the region and below it, per the latest forecasts, largest loss first.",
    authScopes: { roles: ["ADMIN", "PLANNER"] },
    args: {
      regionCode: t.arg.string({ required: true, description: "The region whose subtree to list (itself included)." }),
      productCode: t.arg.string({ description: "Only this product." }),
    },
    resolve: async (query, _root, args, ctx) => {
      const [region] = await ctx.db.execute<{ id: number; path: string }>(sql`select id, path from region where code = ${args.regionCode}`, "objects");
      if (!region || !(await ctx.access.regionFiguresVisible(region.id))) {
        throw new GraphQLError(`region ${args.regionCode}: not found, or not visible to you; ask for a region inside your jurisdiction`, { extensions: { code: "NOT_FOUND" } });
      }
      return ctx.db.query.bottleneckTable.findMany(
        query({
          where: {
            RAW: (b) => sql`${b.forecastId} in (select l.forecast_id from forecast_latest l join region r on r.id = l.region_id where r.path ^@ ${region.path}
              ${args.productCode ? sql`and l.product_id = (select id from product where code = ${args.productCode.toUpperCase()})` : sql``})`,
          },
          orderBy: { lostQuantity: "desc" },
          limit: 500,
        }),
      );
    },
  }),
}));

builder.mutationFields((t) => ({
  respondToMatch: t.drizzleField({
    type: MatchRef,
    description:
      "Accept or decline a match. accept: true takes a PROPOSED match to ACCEPTED (the quantity is committed and not offered again) and an ACCEPTED one to FULFILLED (delivered); accept: false declines it, with a reason (no supply, no need, not contactable, ...).",
    authScopes: { authenticated: true },
    args: {
      id: t.arg.globalID({ required: true, for: MatchRef, description: "Global id of the match." }),
      accept: t.arg.boolean({ required: true, description: "true to accept (or confirm delivery of an accepted match), false to decline." }),
      reason: t.arg.string({ description: "Why; required when declining." }),
    },
    resolve: async (query, _root, args, ctx) => {
      await respondToMatch(ctx.db, ctx.actor, { id: args.id.id, accept: args.accept, reason: args.reason });
      return (await ctx.db.query.matchTable.findFirst(query({ where: { id: args.id.id } })))!;
    },
  }),
}));

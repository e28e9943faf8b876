import { sql, type SQL, type SQLWrapper } from "drizzle-orm";
import { requestStatusEnum } from "../db/schema.js";
import {
  SCENARIO_MODES,
  cancelRequest,
  clearDemandScenario,
  postRequest,
  setDemandScenario,
} from "../domain/demand.js";
import { notFound } from "../domain/errors.js";
import type { Viewer } from "../domain/viewer.js";
import { builder } from "./builder.js";

export const DemandScenarioModeEnum = builder.enumType("DemandScenarioMode", {
  description: "How a scenario's demand combines with the demand forecast from history.",
  values: {
    ADD: { description: "The scenario's demand comes on top of the forecast from history." },
    OVERRIDE: { description: "The scenario's demand replaces the forecast from history." },
  } satisfies Record<(typeof SCENARIO_MODES)[number], unknown>,
});

export const RequestStatusEnum = builder.enumType("RequestStatus", {
  description: "Where a procurement request stands.",
  values: {
    OPEN: { description: "Still needed; counted as demand and offered to matching." },
    FULFILLED: { description: "Delivered; no longer counted." },
    CANCELLED: { description: "Withdrawn by the organization; no longer counted." },
  } satisfies Record<(typeof requestStatusEnum.enumValues)[number], unknown>,
});

/** Requests a viewer may see: admins all, planners those at sites in their jurisdiction, procurement their organization's. */
function requestVisibility(viewer: Viewer, request: { organizationId: SQLWrapper; siteId: SQLWrapper }): SQL {
  switch (viewer.role) {
    case "ADMIN":
      return sql`true`;
    case "PLANNER":
      return viewer.jurisdiction
        ? sql`${request.siteId} in (select s.id from site s join region r on r.id = s.region_id where r.path ^@ ${viewer.jurisdiction.path})`
        : sql`false`;
    case "PROCUREMENT":
      return viewer.organizationId ? sql`${request.organizationId} = ${viewer.organizationId}` : sql`false`;
    default:
      return sql`false`;
  }
}

builder.drizzleObject("demandScenarioTable", {
  name: "DemandScenario",
  description:
    "A planner's demand scenario for a region and product (WHO ESFT style): expected cases per day times usage per case per day, in the product's base unit.",
  // The region's path decides who may see it, whatever field led here.
  select: { columns: { id: true }, with: { region: { columns: { id: true, path: true } } } },
  authScopes: (scenario) => ({
    $all: { roles: ["ADMIN", "PLANNER"], regionVisible: { id: scenario.region.id, path: scenario.region.path } },
  }),
  fields: (t) => ({
    region: t.relation("region", { description: "The region the scenario is for (its sites and those below it)." }),
    product: t.relation("product", { description: "The product the scenario is for." }),
    casesPerDay: t.exposeFloat("casesPerDay", { description: "Expected cases per day in the region." }),
    usagePerCasePerDay: t.exposeFloat("usagePerCasePerDay", { description: "Base units of the product used per case per day." }),
    dailyDemand: t.float({
      description: "casesPerDay x usagePerCasePerDay: the scenario's demand per day, in base units.",
      select: { columns: { casesPerDay: true, usagePerCasePerDay: true } },
      resolve: (s) => s.casesPerDay * s.usagePerCasePerDay,
    }),
    mode: t.expose("mode", { type: DemandScenarioModeEnum, description: "Whether it replaces (OVERRIDE) or adds to (ADD) the forecast from history." }),
    startsOn: t.expose("startsOn", { type: "Date", nullable: true, description: "First day it applies; null = from now on." }),
    endsOn: t.expose("endsOn", { type: "Date", nullable: true, description: "Last day it applies; null = until superseded or cleared." }),
    note: t.exposeString("note", { nullable: true, description: "The planner's note: assumptions, source of the case numbers." }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was set." }),
  }),
});

export const RequestRef = builder.drizzleNode("procurementRequestTable", {
  name: "Request",
  description: "A procurement need: a quantity of a product wanted at a site by a date.",
  id: { column: (r) => r.id, description: "Global id of the request." },
  // Reporters never see requests; planners those at sites in their jurisdiction; procurement their own organization's.
  authScopes: (request) => ({ $all: { roles: ["ADMIN", "PLANNER", "PROCUREMENT"], siteVisible: request.siteId } }),
  fields: (t) => ({
    organization: t.relation("organization", { description: "The organization that needs it (the site's organization)." }),
    site: t.relation("site", { description: "Where it is needed." }),
    product: t.relation("product", { description: "What is needed." }),
    quantity: t.exposeFloat("quantity", { description: "How much, in the product's base unit." }),
    neededBy: t.expose("neededBy", { type: "Date", description: "The day it is needed by (the site's local day)." }),
    status: t.expose("status", { type: RequestStatusEnum, description: "OPEN, FULFILLED or CANCELLED." }),
    note: t.exposeString("note", { nullable: true, description: "The requester's note." }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was posted." }),
    closedAt: t.expose("closedAt", { type: "DateTime", nullable: true, description: "When it was fulfilled or cancelled, if it was." }),
  }),
});

const DemandScenarioInput = builder.inputType("DemandScenarioInput", {
  description: "A demand scenario: it supersedes the active one of the same region and product.",
  fields: (t) => ({
    regionCode: t.string({ required: true, description: "Code of a region in your jurisdiction." }),
    productCode: t.string({ required: true, description: "Catalog code of the product." }),
    casesPerDay: t.float({ required: true, description: "Expected cases per day (finite, >= 0)." }),
    usagePerCasePerDay: t.float({ required: true, description: "Units of the product used per case per day (finite, >= 0), in `unit`." }),
    unit: t.string({ description: "Unit of usagePerCasePerDay: the base unit (default) or a declared pack unit." }),
    mode: t.field({ type: DemandScenarioModeEnum, description: "OVERRIDE (default) replaces the forecast from history; ADD comes on top of it." }),
    startsOn: t.field({ type: "Date", description: "First day it applies; absent = from now on." }),
    endsOn: t.field({ type: "Date", description: "Last day it applies (not before startsOn); absent = open-ended." }),
    note: t.string({ description: "Assumptions or source, up to 2,000 characters." }),
  }),
});

const RequestInput = builder.inputType("RequestInput", {
  description: "A procurement need for one of your organization's sites.",
  fields: (t) => ({
    siteCode: t.string({ required: true, description: "Code of the site that needs it." }),
    productCode: t.string({ required: true, description: "Catalog code of the product." }),
    quantity: t.float({ required: true, description: "How much (finite, > 0), in `unit`." }),
    unit: t.string({ description: "Unit of quantity: the base unit (default) or a declared pack unit." }),
    neededBy: t.field({ type: "Date", required: true, description: "Needed by this day: from today (at the site) to a year ahead." }),
    note: t.string({ description: "A note for planners and suppliers, up to 2,000 characters." }),
  }),
});

builder.queryFields((t) => ({
  requests: t.drizzleConnection(
    {
      type: "procurementRequestTable",
      description:
        "Procurement requests the viewer may see, soonest needed first: procurement their organization's, planners those at sites in their jurisdiction, admins all.",
      authScopes: { roles: ["ADMIN", "PLANNER", "PROCUREMENT"] },
      args: {
        productCode: t.arg.string({ description: "Only this product." }),
        status: t.arg({ type: RequestStatusEnum, description: "Only requests with this status." }),
      },
      resolve: (query, _root, args, ctx) =>
        ctx.db.query.procurementRequestTable.findMany(
          query({
            where: {
              ...(args.status ? { status: args.status } : {}),
              RAW: (request) =>
                sql`${requestVisibility(ctx.viewer!, request)} and ${
                  args.productCode ? sql`${request.productId} = (select id from product where code = ${args.productCode.trim().toUpperCase()})` : sql`true`
                }`,
            },
            orderBy: { neededBy: "asc", id: "asc" },
          }),
        ),
    },
    { name: "RequestConnection", description: "A page of procurement requests." },
    { name: "RequestEdge", description: "One request of a page, with its cursor." },
  ),
  demandScenarios: t.drizzleField({
    type: ["demandScenarioTable"],
    description: "The active demand scenarios of a region and the regions below it, optionally of one product; by region, then product.",
    authScopes: { roles: ["ADMIN", "PLANNER"] },
    args: {
      regionCode: t.arg.string({ required: true, description: "A region you may see; its scenarios and those of the regions below it." }),
      productCode: t.arg.string({ description: "Only this product." }),
    },
    resolve: async (query, _root, args, ctx) => {
      const viewer = ctx.viewer!;
      const region = await ctx.db.query.regionTable.findFirst({ where: { code: args.regionCode.trim() }, columns: { path: true } });
      if (!region || (viewer.role === "PLANNER" && !(viewer.jurisdiction && region.path.startsWith(viewer.jurisdiction.path)))) {
        throw notFound(`region ${args.regionCode} not found, or not visible to you; see regions { code } for the regions you may see`);
      }
      const jurisdiction = viewer.role === "PLANNER" ? viewer.jurisdiction!.path : "/";
      return ctx.db.query.demandScenarioTable.findMany(
        query({
          where: {
            supersededAt: { isNull: true },
            RAW: (s) =>
              sql`${s.regionId} in (select id from region where path ^@ ${region.path} and path ^@ ${jurisdiction}) and ${
                args.productCode ? sql`${s.productId} = (select id from product where code = ${args.productCode.trim().toUpperCase()})` : sql`true`
              }`,
          },
          orderBy: { regionId: "asc", productId: "asc" },
        }),
      );
    },
  }),
}));

builder.mutationFields((t) => ({
  setDemandScenario: t.drizzleField({
    type: "demandScenarioTable",
    description:
      "Planner (inside their jurisdiction) or admin: set the demand scenario of a region and product. It supersedes the active one, which is kept as history, and the forecast of the pair is recomputed.",
    authScopes: { roles: ["ADMIN", "PLANNER"] },
    args: { input: t.arg({ type: DemandScenarioInput, required: true, description: "The scenario." }) },
    resolve: async (query, _root, args, ctx) => {
      const row = await setDemandScenario(ctx.db, ctx.actor, args.input);
      return (await ctx.db.query.demandScenarioTable.findFirst(query({ where: { id: row.id } })))!;
    },
  }),
  clearDemandScenario: t.boolean({
    description: "Planner (inside their jurisdiction) or admin: end the active scenario of a region and product, without a replacement. True if one was active.",
    authScopes: { roles: ["ADMIN", "PLANNER"] },
    args: {
      regionCode: t.arg.string({ required: true, description: "Code of a region in your jurisdiction." }),
      productCode: t.arg.string({ required: true, description: "Catalog code of the product." }),
    },
    resolve: (_root, args, ctx) => clearDemandScenario(ctx.db, ctx.actor, args),
  }),
  postRequest: t.drizzleField({
    type: "procurementRequestTable",
    description: "Procurement (for their organization's sites) or admin: post a need for a product at a site by a date.",
    authScopes: { roles: ["ADMIN", "PROCUREMENT"] },
    args: { input: t.arg({ type: RequestInput, required: true, description: "The request." }) },
    resolve: async (query, _root, args, ctx) => {
      const row = await postRequest(ctx.db, ctx.actor, args.input);
      return (await ctx.db.query.procurementRequestTable.findFirst(query({ where: { id: row.id } })))!;
    },
  }),
  cancelRequest: t.drizzleField({
    type: "procurementRequestTable",
    description: "Procurement (their organization's requests) or admin: cancel an OPEN request. Cancelling a cancelled request again returns it unchanged.",
    authScopes: { roles: ["ADMIN", "PROCUREMENT"] },
    args: { id: t.arg.globalID({ required: true, for: RequestRef, description: "Global id of the request." }) },
    resolve: async (query, _root, args, ctx) => {
      const row = await cancelRequest(ctx.db, ctx.actor, args.id.id);
      return (await ctx.db.query.procurementRequestTable.findFirst(query({ where: { id: row.id } })))!;
    },
  }),
}));

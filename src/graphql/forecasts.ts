import { sql } from "drizzle-orm";
import { GraphQLError } from "graphql";
import { riskLevelEnum } from "../db/schema.js";
import { dateOfDay, dayNumber } from "../domain/reports/validate.js";
import { builder, PAGE_SIZE } from "./builder.js";
import { RiskLevelEnum } from "./enums.js";

type ForecastRow = {
  id: number;
  regionId: number;
  originDate: string;
  demand: number[];
  demandSd: number[];
  supply: number[];
  netInflow: number[];
  stock: number[];
};

const NOT_VISIBLE = "not found, or not visible to you";
const Z80 = 1.2815515655446004;
const Z95 = 1.959963984540054;

/** The region's id and path when the viewer may see its figures; a typed refusal otherwise. */
async function visibleRegion(ctx: { db: import("../db/index.js").Database; access: { regionFiguresVisible(id: number): Promise<boolean> } }, code: string) {
  const [region] = await ctx.db.execute<{ id: number; path: string }>(sql`select id, path from region where code = ${code}`, "objects");
  if (!region || !(await ctx.access.regionFiguresVisible(region.id))) {
    throw new GraphQLError(`region ${code}: ${NOT_VISIBLE}; ask for a region inside your jurisdiction`, { extensions: { code: "NOT_FOUND" } });
  }
  return region;
}

export const ShortageRef = builder.drizzleObject("forecastTable", {
  name: "Shortage",
  description: "The latest shortage outlook of one region for one product: stock, demand, days of supply, stock-out date and risk.",
  authScopes: (f) => ({ regionFiguresVisible: f.regionId }),
  select: { columns: { regionId: true } },
  fields: (t) => ({
    region: t.relation("region", { description: "The region; its figures include every region below it." }),
    product: t.relation("product", { description: "The product." }),
    riskLevel: t.expose("riskLevel", { type: RiskLevelEnum, description: "Five-colour risk, from the days until stock-out and the product's thresholds." }),
    onHand: t.exposeFloat("onHand", { description: "Stock at the end of the origin day, in base units, over every site in the region (each site's last report)." }),
    dailyDemand: t.exposeFloat("dailyDemand", { description: "Mean forecast demand per day over the horizon, in base units." }),
    daysOfSupply: t.exposeFloat("daysOfSupply", { nullable: true, description: "onHand / dailyDemand; null when there is no demand." }),
    daysToStockout: t.exposeFloat("daysToStockout", {
      nullable: true,
      description: "Days until the projected stock runs out, counting production; extrapolated past the horizon; null when it never does.",
    }),
    stockoutDate: t.expose("stockoutDate", { type: "Date", nullable: true, description: "First day the projected stock cannot meet demand; null if not within the horizon." }),
    stockoutProbability7d: t.exposeFloat("stockoutProbability7d", { description: "Probability (0-1) of running out within 7 days, from the demand forecast's uncertainty." }),
    stockoutProbability14d: t.exposeFloat("stockoutProbability14d", { description: "Probability (0-1) of running out within 14 days." }),
    shortageQuantity: t.exposeFloat("shortageQuantity", { description: "Forecast demand over the horizon that expected stock and production cannot meet, in base units." }),
    sites: t.exposeInt("sites", { description: "Sites whose reports went into these figures." }),
    asOf: t.expose("originDate", { type: "Date", description: "The last day of data the forecast saw; its first forecast day is the next one." }),
    computedAt: t.expose("computedAt", { type: "DateTime", description: "When the forecast was computed." }),
  }),
});

const ForecastPointRef = builder
  .objectRef<{ date: string; demand: number; demandLow80: number; demandHigh80: number; demandLow95: number; demandHigh95: number; supply: number; netInflow: number; stock: number }>(
    "ForecastPoint",
  )
  .implement({
    description: "One forecast day, in base units.",
    authScopes: { roles: ["ADMIN", "PLANNER"] },
    fields: (t) => ({
      date: t.expose("date", { type: "Date", description: "The day." }),
      demand: t.exposeFloat("demand", { description: "Expected demand." }),
      demandLow80: t.exposeFloat("demandLow80", { description: "Lower bound of the 80 % prediction interval of demand." }),
      demandHigh80: t.exposeFloat("demandHigh80", { description: "Upper bound of the 80 % prediction interval of demand." }),
      demandLow95: t.exposeFloat("demandLow95", { description: "Lower bound of the 95 % prediction interval of demand." }),
      demandHigh95: t.exposeFloat("demandHigh95", { description: "Upper bound of the 95 % prediction interval of demand." }),
      supply: t.exposeFloat("supply", { description: "Expected production in the region, within capacity and raw material held." }),
      netInflow: t.exposeFloat("netInflow", { description: "Expected other net inflow (deliveries minus shipments away) the history shows; often 0." }),
      stock: t.exposeFloat("stock", { description: "Projected stock at the end of the day (never below 0)." }),
    }),
  });

const ForecastParameterRef = builder.objectRef<{ name: string; value: string }>("ForecastParameter").implement({
  description: "One parameter of the forecast method, for explaining a number.",
    authScopes: { roles: ["ADMIN", "PLANNER"] },
  fields: (t) => ({
    name: t.exposeString("name", { description: "Parameter name, e.g. alpha, phi, parts, scenarioDaily." }),
    value: t.exposeString("value", { description: "Its value." }),
  }),
});

const ForecastAccuracyRef = builder
  .objectRef<{ evaluatedRuns: number; meanAbsoluteError: number | null; naiveMeanAbsoluteError: number | null }>("ForecastAccuracy")
  .implement({
    description: "How good this region's and product's past forecasts were, once what they forecast had happened.",
    authScopes: { roles: ["ADMIN", "PLANNER"] },
    fields: (t) => ({
      evaluatedRuns: t.exposeInt("evaluatedRuns", { description: "Past forecasts scored (of the last 60 days)." }),
      meanAbsoluteError: t.exposeFloat("meanAbsoluteError", {
        nullable: true,
        description: "Mean absolute error of their stock paths over the first 14 days, in base units.",
      }),
      naiveMeanAbsoluteError: t.exposeFloat("naiveMeanAbsoluteError", {
        nullable: true,
        description: "The same for the naive forecast (stock stays as it was): the benchmark.",
      }),
      relativeError: t.float({
        nullable: true,
        description: "meanAbsoluteError / naiveMeanAbsoluteError: below 1 means the forecasts beat the naive one.",
        resolve: (a) => (a.meanAbsoluteError !== null && a.naiveMeanAbsoluteError ? a.meanAbsoluteError / a.naiveMeanAbsoluteError : null),
      }),
    }),
  });

const ForecastRef = builder.drizzleObject("forecastTable", {
  variant: "Forecast",
  description: "The latest forecast of one region for one product, with its daily points, how it was made, and how good earlier ones were.",
  authScopes: (f) => ({ regionFiguresVisible: f.regionId }),
  select: { columns: { regionId: true } },
  fields: (t) => ({
    shortage: t.variant(ShortageRef, { description: "The outlook that follows from this forecast." }),
    method: t.exposeString("method", {
      description: "Demand method: naive, ses, damped-holt or croston-sba for a region forecast from its own sites, bottom-up when it adds up regions below it.",
    }),
    demandSource: t.exposeString("demandSource", {
      description: "What the demand came from: consumption, stock-drawdown, requests, scenario (or +scenario on top), mixed, or none.",
    }),
    parameters: t.field({
      type: [ForecastParameterRef],
      description: "Fitted parameters and inputs of the method.",
      select: { columns: { params: true } },
      resolve: (f) => Object.entries(f.params as Record<string, unknown>).map(([name, value]) => ({ name, value: String(value) })),
    }),
    inputCutoff: t.expose("inputCutoff", { type: "DateTime", description: "Reports submitted after this moment were not seen." }),
    points: t.field({
      type: [ForecastPointRef],
      description: "One point per day of the horizon (28 days), starting the day after asOf.",
      select: {
        columns: { originDate: true, demand: true, demandSd: true, supply: true, netInflow: true, stock: true },
      },
      resolve: (f) => {
        const row = f as unknown as ForecastRow;
        const origin = dayNumber(row.originDate);
        // Normal prediction intervals around the expected demand, clamped at 0 (no negative demand).
        const band = (m: number, sd: number, z: number) => [Math.max(0, m - z * sd), Math.max(0, m + z * sd)] as const;
        return row.demand.map((demand, h) => ({
          date: dateOfDay(origin + h + 1),
          demand,
          demandLow80: band(demand, row.demandSd[h]!, Z80)[0],
          demandHigh80: band(demand, row.demandSd[h]!, Z80)[1],
          demandLow95: band(demand, row.demandSd[h]!, Z95)[0],
          demandHigh95: band(demand, row.demandSd[h]!, Z95)[1],
          supply: row.supply[h]!,
          netInflow: row.netInflow[h]!,
          stock: row.stock[h]!,
        }));
      },
    }),
    accuracy: t.field({
      type: ForecastAccuracyRef,
      description: "Scores of this region's and product's forecasts of the last 60 days whose first 14 days have passed.",
      select: { columns: { regionId: true, productId: true } },
      resolve: async (f, _args, ctx) => {
        const [a] = await ctx.db.execute<{ n: number; mae: number | null; naive: number | null }>(
          sql`select count(*)::int as n, avg(error_mae) as mae, avg(naive_mae) as naive from forecast
              where region_id = ${f.regionId} and product_id = ${f.productId} and evaluated_at is not null and error_days > 0
                and computed_at > now() - interval '60 days'`,
          "objects",
        );
        return { evaluatedRuns: a?.n ?? 0, meanAbsoluteError: a?.mae ?? null, naiveMeanAbsoluteError: a?.naive ?? null };
      },
    }),
  }),
});

builder.queryFields((t) => ({
  shortages: t.drizzleConnection({
    type: ShortageRef,
    description:
      "The latest outlook of the region and every region below it, most urgent first (risk level, then days to stock-out). Planners see their jurisdiction only.",
    authScopes: { roles: ["ADMIN", "PLANNER"] },
    args: {
      regionCode: t.arg.string({ required: true, description: "The region whose subtree to list (itself included)." }),
      productCode: t.arg.string({ description: "Only this product." }),
      minRisk: t.arg({ type: RiskLevelEnum, description: "Only this risk level and worse." }),
    },
    resolve: async (query, _root, args, ctx) => {
      const region = await visibleRegion(ctx, args.regionCode);
      const levels = args.minRisk ? riskLevelEnum.enumValues.slice(riskLevelEnum.enumValues.indexOf(args.minRisk)) : riskLevelEnum.enumValues;
      // The first page, which is what every dashboard asks for again after a forecast write drops
      // the cached answers: it is the first rows of forecast_latest in the same order (each row
      // carries its forecast's risk level and days to stock-out, and its id), so only those few
      // forecasts are fetched instead of every outlook of the subtree. National page of 65,296
      // outlooks, EXPLAIN ANALYZE: 250-440 ms before, 20-31 ms; a province's 2-3 ms against 15. Later
      // pages go by their cursor through the whole subtree.
      const firstPage = args.after == null && args.before == null && args.last == null;
      const pageRows = Math.min(Math.max(args.first ?? PAGE_SIZE.default, 0), PAGE_SIZE.max) + 1;
      return ctx.db.query.forecastTable.findMany(
        query({
          where: {
            // Arrays rather than IN and a join: PostgreSQL then fetches the outlooks by one sorted
            // pass over the index instead of a lookup per id, and finds the subtree's rows without a
            // scan per region (the national planner's 34,774 outlooks, uncached: 216 ms against
            // 311-345 ms, EXPLAIN ANALYZE on the dashboard bench's database).
            RAW: (f) => sql`${f.id} = any(array(
              select l.forecast_id from forecast_latest l
              where l.region_id = any(array(select r.id from region r where r.path ^@ ${region.path}))
                and l.risk_level = any(${sql.param([...levels])}::risk_level[])
                ${args.productCode ? sql`and l.product_id = (select id from product where code = ${args.productCode.toUpperCase()})` : sql``}
              ${
                // An enum sorts in its declared order, which is riskRank's; compared directly, 65,296
                // outlooks sort in 20-30 ms where building enum_range for each took 100.
                firstPage ? sql`order by l.risk_level desc, coalesce(l.days_to_stockout, 1e15), l.forecast_id limit ${pageRows}` : sql``
              }))`,
          },
          extras: {
            riskRank: (f) => sql<number>`array_position(enum_range(null::risk_level), ${f.riskLevel})`,
            // Never running out sorts after any number of days.
            urgency: (f) => sql<number>`coalesce(${f.daysToStockout}, 1e15)`,
          },
          // The id last: outlooks tie on risk and days (never running out, most of all); a unique
          // last key keeps a page boundary inside a tie well defined.
          orderBy: { riskRank: "desc", urgency: "asc", id: "asc" },
        }),
        // The extras used for ordering confuse the inferred row type; the selection is Pothos's own.
      ) as never;
    },
  }, { name: "ShortageConnection", description: "A page of shortage outlooks." }, { name: "ShortageEdge", description: "One outlook of a page, with its cursor." }),

  forecast: t.drizzleField({
    type: ForecastRef,
    nullable: true,
    description: "The latest forecast of a region for a product, with daily points and intervals; null when there is none yet.",
    authScopes: { roles: ["ADMIN", "PLANNER"] },
    args: {
      regionCode: t.arg.string({ required: true, description: "The region." }),
      productCode: t.arg.string({ required: true, description: "The product." }),
    },
    resolve: async (query, _root, args, ctx) => {
      const region = await visibleRegion(ctx, args.regionCode);
      const row = await ctx.db.query.forecastTable.findFirst(
        query({
          where: {
            RAW: (f) => sql`${f.id} = (select forecast_id from forecast_latest where region_id = ${region.id}
              and product_id = (select id from product where code = ${args.productCode.toUpperCase()}))`,
          },
        }),
      );
      return row ?? null;
    },
  }),
}));

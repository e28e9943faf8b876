import { sql } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { evaluateForecasts, markAllDirty, markReportsDirty, recomputeDirty } from "../src/domain/forecast/pipeline.js";
import { relayOutbox } from "../src/domain/outbox.js";
import { flagOutliers, modifiedZ, OUTLIER_FLAG } from "../src/domain/reports/outliers.js";
import { submitReports } from "../src/domain/reports/ingest.js";
import { upsertProduct } from "../src/domain/catalog.js";
import { createOrganization, createSite } from "../src/domain/organizations.js";
import { dateOfDay, dayNumber } from "../src/domain/reports/validate.js";
import { createPgliteTestDatabase, createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { makeUser, seedWorld, setupActor, type TestUser, type World } from "./helpers/fixtures.js";
import { graphqlClient } from "./helpers/graphql.js";

let t: TestDatabase;
let world: World;
let maker: TestUser;
let hospital: TestUser;
/** Yesterday (UTC): the last day of every history below, so no row is in the future anywhere. */
const lastDay = dayNumber(new Date(Date.now() - 86_400_000).toISOString().slice(0, 10));
const day = (offset: number) => dateOfDay(lastDay + offset);

interface Latest {
  code: string;
  on_hand: number;
  daily_demand: number;
  days_of_supply: number | null;
  days_to_stockout: number | null;
  stockout_date: string | null;
  risk_level: string;
  demand: number[];
  supply: number[];
  stock: number[];
  sites: number;
  method: string;
  demand_source: string;
  origin_date: string;
}

async function latest(productCode: string): Promise<Map<string, Latest>> {
  const rows = await t.db.execute<Latest>(
    sql`select r.code, f.on_hand, f.daily_demand, f.days_of_supply, f.days_to_stockout, f.stockout_date::text, f.risk_level,
               f.demand, f.supply, f.stock, f.sites, f.method, f.demand_source, f.origin_date::text
        from forecast_latest l join forecast f on f.id = l.forecast_id join region r on r.id = l.region_id
        where l.product_id = (select id from product where code = ${productCode})`,
    "objects",
  );
  return new Map(rows.map((r) => [r.code, r]));
}

async function submit(user: TestUser, rows: Record<string, unknown>[]) {
  for (let i = 0; i < rows.length; i += 1000) {
    const result = await submitReports(t.db, user.actor, rows.slice(i, i + 1000) as never, { backfillDays: 400 });
    expect(result.rejected).toEqual([]);
  }
}

/** Relays the outbox and recomputes, as the worker does after each burst. */
async function runJobs() {
  await relayOutbox(t.db, async () => {});
  return recomputeDirty(t.db, { trigger: "manual" });
}

beforeAll(async () => {
  t = await createTestDatabase();
  world = await seedWorld(t.db);
  maker = await makeUser(t.db, "REPORTER", { organizationId: world.maker.id });
  hospital = await makeUser(t.db, "REPORTER", { organizationId: world.hospital.id });
});
afterAll(async () => t?.drop());

beforeEach(async () => {
  await t.db.execute(sql`truncate report, report_revision, outbox, forecast_run, forecast, forecast_latest, forecast_dirty, demand_scenario, bottleneck cascade`);
});

describe("projection from reports (answers known by hand)", () => {
  it("constant consumption of 100/day and 1,000 on hand: 10 days of supply, stock-out on day 10, YELLOW", async () => {
    // Deliveries kept the stock at 1,000 while the site used 100 a day; none is promised ahead.
    await submit(hospital, Array.from({ length: 60 }, (_, i) => ({
      siteCode: "HZ-XIHU-H1", productCode: "GLOVES-NITRILE", date: day(i - 59), onHand: 1000, consumed: 100, received: 100,
    })));
    await runJobs();
    const xihu = (await latest("GLOVES-NITRILE")).get("330106")!;
    expect(xihu.origin_date).toBe(day(0));
    expect(xihu.demand_source).toBe("consumption");
    expect(xihu.daily_demand).toBeCloseTo(100, 6);
    expect(xihu.days_of_supply).toBeCloseTo(10, 6);
    expect(xihu.stockout_date).toBe(day(10));
    expect(xihu.days_to_stockout).toBeCloseTo(10, 6);
    expect(xihu.risk_level).toBe("YELLOW");
    expect(xihu.stock.slice(0, 10)).toEqual([900, 800, 700, 600, 500, 400, 300, 200, 100, 0].map((v) => expect.closeTo(v, 6)));
  });

  it("turns ORANGE below 7 days and RED below 3 days or when out, per the product's thresholds", async () => {
    const cases: [number, string][] = [[650, "ORANGE"], [250, "RED"], [0, "RED"], [2500, "BLUE"], [3500, "GREEN"]];
    for (const [onHand, expected] of cases) {
      await t.db.execute(sql`truncate report, report_revision, outbox, forecast_run, forecast, forecast_latest, forecast_dirty cascade`);
      await submit(hospital, Array.from({ length: 30 }, (_, i) => ({
        siteCode: "HZ-XIHU-H1", productCode: "GLOVES-NITRILE", date: day(i - 29), onHand: i === 29 ? onHand : 5000, consumed: 100, received: 100,
      })));
      await runJobs();
      expect((await latest("GLOVES-NITRILE")).get("330106")!.risk_level, `onHand ${onHand}`).toBe(expected);
    }
    // Thresholds are per product: with RED below 12 days, 1,000 at 100/day is RED.
    const gloves = { code: "GLOVES-NITRILE", name: "Nitrile examination gloves", category: "PPE" as const, baseUnit: "pair" };
    await expect(upsertProduct(t.db, setupActor, { ...gloves, riskThresholds: { red: 12, orange: 7, yellow: 14, blue: 30 } })).rejects.toThrow(
      /riskThresholds must grow from red to blue/,
    );
    await upsertProduct(t.db, setupActor, { ...gloves, riskThresholds: { red: 12, orange: 13, yellow: 14, blue: 30 } });
    await t.db.execute(sql`truncate report, report_revision, outbox, forecast_run, forecast, forecast_latest, forecast_dirty cascade`);
    await submit(hospital, Array.from({ length: 30 }, (_, i) => ({
      siteCode: "HZ-XIHU-H1", productCode: "GLOVES-NITRILE", date: day(i - 29), onHand: 1000, consumed: 100, received: 100,
    })));
    await runJobs();
    expect((await latest("GLOVES-NITRILE")).get("330106")!.risk_level).toBe("RED");
    await upsertProduct(t.db, setupActor, { ...gloves, riskThresholds: { red: 3, orange: 7, yellow: 14, blue: 30 } });
  });

  it("does not lower average consumption for days the site was out of stock", async () => {
    // 100/day for 50 days, then 10 days out of stock (nothing on hand, nothing handed out).
    await submit(hospital, Array.from({ length: 60 }, (_, i) => ({
      siteCode: "HZ-XIHU-H1", productCode: "MASK-SURGICAL", date: day(i - 59),
      onHand: i < 50 ? 2000 : 0, consumed: i < 50 ? 100 : 0, received: i < 50 ? 100 : 0,
    })));
    await runJobs();
    const xihu = (await latest("MASK-SURGICAL")).get("330106")!;
    expect(xihu.daily_demand).toBeGreaterThan(95);
    expect(xihu.daily_demand).toBeLessThan(105);
    expect(xihu.risk_level).toBe("RED");
    expect(xihu.stockout_date).toBe(day(0));
  });

  it("a site with melt-blown fabric for 3 days cannot produce masks on day 4", async () => {
    // 10,000 N95 a day at 4 g of melt-blown each = 40 kg a day; 120 kg on hand is 3 days.
    await submit(maker, [
      ...Array.from({ length: 30 }, (_, i) => ({
        siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: day(i - 29), onHand: 50_000, produced: 10_000, shipped: 10_000, capacityPerDay: 12_000,
      })),
      { siteCode: "HZ-MASK-1", productCode: "MELTBLOWN-PP", date: day(0), onHand: 120 },
    ]);
    await runJobs();
    const shangcheng = (await latest("MASK-N95")).get("330102")!;
    expect(shangcheng.supply.slice(0, 5)).toEqual([10_000, 10_000, 10_000, 0, 0].map((v) => expect.closeTo(v, 6)));
    // The bottleneck, by region up the tree: 28 days x 10,000 planned, 30,000 possible; 4 g each.
    const limits = await t.db.execute<{ code: string; input: string; lost_quantity: number; input_short: number }>(
      sql`select r.code, i.code as input, b.lost_quantity, b.input_short from bottleneck b
          join forecast_latest l on l.forecast_id = b.forecast_id join region r on r.id = b.region_id
          join product i on i.id = b.input_product_id where b.product_id = (select id from product where code = 'MASK-N95') order by r.path`,
      "objects",
    );
    expect(limits.map((l) => [l.code, l.input])).toEqual([["CN", "MELTBLOWN-PP"], ["330000", "MELTBLOWN-PP"], ["330100", "MELTBLOWN-PP"], ["330102", "MELTBLOWN-PP"]]);
    for (const l of limits) {
      expect(l.lost_quantity).toBeCloseTo(250_000, 6);
      expect(l.input_short).toBeCloseTo(1000, 6);
    }
    // More melt-blown arrives: the line runs on (at its recent output, within capacity).
    await submit(maker, [{ siteCode: "HZ-MASK-1", productCode: "MELTBLOWN-PP", date: day(0), onHand: 10_000 }]);
    await runJobs();
    expect((await latest("MASK-N95")).get("330102")!.supply.slice(0, 5)).toEqual(new Array(5).fill(expect.closeTo(10_000, 6)));
    const [{ n }] = (await t.db.execute<{ n: number }>(
      sql`select count(*)::int as n from bottleneck b join forecast_latest l on l.forecast_id = b.forecast_id`, "objects")) as [{ n: number }];
    expect(n).toBe(0);
  });

  it("caps production at the latest reported capacity", async () => {
    await submit(maker, Array.from({ length: 20 }, (_, i) => ({
      siteCode: "HZ-MASK-1", productCode: "GOGGLES", date: day(i - 19), onHand: 100, produced: 800, shipped: 800, capacityPerDay: i === 19 ? 500 : 1000,
    })));
    await runJobs();
    expect((await latest("GOGGLES")).get("330102")!.supply[0]).toBeCloseTo(500, 6);
  });
});

describe("every level of the tree", () => {
  it("adds the counties' figures up to their city, province and country", async () => {
    const other = await createOrganization(t.db, setupActor, { name: "Hangzhou City Hospital", kind: "HOSPITAL" });
    await createSite(t.db, setupActor, { organizationId: other.id, code: `HZ-CITY-${Date.now()}`, name: "City ward", regionCode: "330100" });
    const cityReporter = await makeUser(t.db, "REPORTER", { organizationId: other.id });
    const citySite = (await t.db.query.siteTable.findFirst({ where: { organizationId: other.id } }))!.code;
    await submit(hospital, Array.from({ length: 40 }, (_, i) => ({
      siteCode: "HZ-XIHU-H1", productCode: "TEST-ANTIGEN", date: day(i - 39), onHand: 3000 + (i % 5) * 10, consumed: 200 + (i % 7) * 5, received: 200,
    })));
    await submit(maker, Array.from({ length: 40 }, (_, i) => ({
      siteCode: "HZ-MASK-1", productCode: "TEST-ANTIGEN", date: day(i - 39), onHand: 9000, produced: 500, capacityPerDay: 800, consumed: 20 + (i % 3), shipped: 480,
    })));
    await submit(cityReporter, Array.from({ length: 40 }, (_, i) => ({
      siteCode: citySite, productCode: "TEST-ANTIGEN", date: day(i - 39), onHand: 700, consumed: 50 + (i % 4) * 3, received: 50,
    })));
    await runJobs();
    const f = await latest("TEST-ANTIGEN");
    expect([...f.keys()].sort()).toEqual(["330000", "330100", "330102", "330106", "CN"]);
    const [xihu, shangcheng, city, zhejiang, cn] = ["330106", "330102", "330100", "330000", "CN"].map((c) => f.get(c)!) as [Latest, Latest, Latest, Latest, Latest];
    expect(city.sites).toBe(3);
    // The city has its own site besides the two counties: city = counties + own site.
    const ownSite = { onHand: 700 };
    expect(city.on_hand).toBeCloseTo(xihu.on_hand + shangcheng.on_hand + ownSite.onHand, 6);
    const cityOwnDemand = city.demand.map((d, h) => d - xihu.demand[h]! - shangcheng.demand[h]!);
    expect(Math.min(...cityOwnDemand)).toBeGreaterThan(40);
    for (let h = 0; h < 28; h++) {
      expect(city.supply[h]).toBeCloseTo(xihu.supply[h]! + shangcheng.supply[h]!, 6);
      expect(zhejiang.demand[h]).toBeCloseTo(city.demand[h]!, 6);
      expect(cn.demand[h]).toBeCloseTo(zhejiang.demand[h]!, 6);
    }
    expect(cn.on_hand).toBeCloseTo(zhejiang.on_hand, 6);
    expect(zhejiang.daily_demand).toBeCloseTo(xihu.daily_demand + shangcheng.daily_demand + cityOwnDemand.reduce((a, b) => a + b, 0) / 28, 6);
    expect(city.method).toBe("bottom-up");

    // A new report in one county: only its pairs are recomputed, and the sums still hold.
    await submit(hospital, [{ siteCode: "HZ-XIHU-H1", productCode: "TEST-ANTIGEN", date: day(0), onHand: 100, consumed: 260, received: 0 }]);
    const dirty = await t.db.execute<{ code: string }>(sql`select r.code from outbox o cross join lateral jsonb_array_elements(o.payload->'reportIds') as x(id) join report rp on rp.id = x.id::bigint join site s on s.id = rp.site_id join region r on r.id = s.region_id where o.processed_at is null`, "objects");
    expect(dirty.map((d) => d.code)).toEqual(["330106"]);
    const run = await runJobs();
    expect(run.series).toBe(4); // Xihu, Hangzhou, Zhejiang, China; Shangcheng is read back from its stored forecast
    const g = await latest("TEST-ANTIGEN");
    expect(g.get("330102")!.on_hand).toBe(shangcheng.on_hand);
    expect(g.get("330100")!.on_hand).toBeCloseTo(100 + shangcheng.on_hand + 700, 6);
    expect(g.get("CN")!.on_hand).toBeCloseTo(g.get("330100")!.on_hand, 6);
  });

  it("a planner's scenario overrides or adds to the demand of its region, and the parents follow", async () => {
    await submit(hospital, Array.from({ length: 30 }, (_, i) => ({
      siteCode: "HZ-XIHU-H1", productCode: "GOWN-ISOLATION", date: day(i - 29), onHand: 1000, consumed: 100, received: 100,
    })));
    const region = async (code: string) => (await t.db.query.regionTable.findFirst({ where: { code } }))!.id;
    const product = (await t.db.query.productTable.findFirst({ where: { code: "GOWN-ISOLATION" } }))!.id;
    await t.db.execute(sql`insert into demand_scenario (region_id, product_id, cases_per_day, usage_per_case_per_day, mode)
      values (${await region("330106")}, ${product}, 50, 4, 'OVERRIDE')`);
    await markAllDirty(t.db);
    await runJobs();
    let f = await latest("GOWN-ISOLATION");
    expect(f.get("330106")!.daily_demand).toBeCloseTo(200, 6);
    expect(f.get("330106")!.demand_source).toBe("scenario");
    expect(f.get("330106")!.days_of_supply).toBeCloseTo(5, 6);
    expect(f.get("330106")!.risk_level).toBe("ORANGE");
    expect(f.get("330000")!.daily_demand).toBeCloseTo(200, 6);

    await t.db.execute(sql`update demand_scenario set mode = 'ADD'`);
    await markAllDirty(t.db);
    await runJobs();
    f = await latest("GOWN-ISOLATION");
    expect(f.get("330106")!.daily_demand).toBeCloseTo(300, 6);
    expect(f.get("CN")!.daily_demand).toBeCloseTo(300, 6);
  });

  it("adds open procurement requests to demand, spread up to their date", async () => {
    await submit(hospital, Array.from({ length: 30 }, (_, i) => ({
      siteCode: "HZ-XIHU-H1", productCode: "FACE-SHIELD", date: day(i - 29), onHand: 5000, consumed: 100, received: 100,
    })));
    const product = (await t.db.query.productTable.findFirst({ where: { code: "FACE-SHIELD" } }))!.id;
    await t.db.execute(sql`insert into procurement_request (organization_id, site_id, product_id, quantity, needed_by)
      values (${world.hospital.id}, ${world.hospitalSite.id}, ${product}, 1000, ${day(10)})`);
    await markAllDirty(t.db);
    await runJobs();
    const xihu = (await latest("FACE-SHIELD")).get("330106")!;
    expect(xihu.demand[0]).toBeCloseTo(200, 6);
    expect(xihu.demand[9]).toBeCloseTo(200, 6);
    expect(xihu.demand[10]).toBeCloseTo(100, 6);
  });
});

describe("recomputation", () => {
  it("is harmless when run twice, and two runs at once split the products instead of doubling them", async () => {
    await submit(hospital, ["GLOVES-NITRILE", "MASK-SURGICAL", "GOGGLES"].flatMap((productCode) =>
      Array.from({ length: 20 }, (_, i) => ({ siteCode: "HZ-XIHU-H1", productCode, date: day(i - 19), onHand: 500, consumed: 10, received: 10 }))));
    await relayOutbox(t.db, async () => {});
    const [a, b] = await Promise.all([recomputeDirty(t.db, { trigger: "manual" }), recomputeDirty(t.db, { trigger: "manual" })]);
    const again = await recomputeDirty(t.db, { trigger: "manual" });
    expect(again).toMatchObject({ products: 0, series: 0, remaining: 0 });
    const runs = await t.db.execute<{ product_id: number; n: number }>(sql`select product_id, count(*)::int as n from forecast_run group by product_id`, "objects");
    expect(runs.length).toBe(3);
    expect(runs.every((r) => r.n === 1)).toBe(true);
    expect(a.series + b.series).toBe(3 * 4); // Xihu, Hangzhou, Zhejiang and China, per product
  });

  it("keeps a pair dirty when it was marked again while a run computed it", async () => {
    await submit(hospital, Array.from({ length: 20 }, (_, i) => ({ siteCode: "HZ-XIHU-H1", productCode: "GOGGLES", date: day(i - 19), onHand: 500, consumed: 10 })));
    await relayOutbox(t.db, async () => {});
    // Another report for Xihu is relayed while the run computes: its mark survives the run's delete.
    const xihu = (await t.db.query.regionTable.findFirst({ where: { code: "330106" } }))!.id;
    const product = (await t.db.query.productTable.findFirst({ where: { code: "GOGGLES" } }))!.id;
    await recomputeDirty(t.db, {
      trigger: "manual",
      afterDirtyRead: async () => {
        await t.db.execute(sql`update forecast_dirty set last_dirty_at = clock_timestamp() where region_id = ${xihu} and product_id = ${product}`);
      },
    });
    const left = await t.db.execute<{ code: string }>(sql`select r.code from forecast_dirty d join region r on r.id = d.region_id`, "objects");
    expect(left.map((l) => l.code)).toEqual(["330106"]);
  });

  it("scores past forecasts once their days have passed, against the naive forecast", async () => {
    const region = (await t.db.query.regionTable.findFirst({ where: { code: "330106" } }))!.id;
    const product = (await t.db.query.productTable.findFirst({ where: { code: "GOGGLES" } }))!.id;
    const [run] = await t.db.execute<{ id: number }>(sql`insert into forecast_run (trigger, product_id, origin_date, input_cutoff) values ('test', ${product}, ${day(-20)}, now()) returning id::int`, "objects");
    const zeros = `{${new Array(28).fill(0).join(",")}}`;
    const insert = (origin: number, onHand: number, stock: number[]) => t.db.execute(sql`insert into forecast (run_id, region_id, product_id, origin_date, input_cutoff, method, params, demand_source, sites,
        on_hand, daily_demand, stockout_probability_7d, stockout_probability_14d, shortage_quantity, risk_level,
        demand, demand_sd, supply, net_inflow, stock)
      values (${run!.id}, ${region}, ${product}, ${day(origin)}, now(), 'test', '{}', 'test', 1, ${onHand}, 10, 0, 0, 0, 'GREEN',
        ${zeros}, ${zeros}, ${zeros}, ${zeros}, ${sql.param(stock)}::float8[])`);
    // Forecast at day -20 from 1,000: 10 a day down. What happened: 20 a day down.
    await insert(-20, 1000, Array.from({ length: 28 }, (_, h) => 1000 - 10 * (h + 1)));
    for (let k = 1; k <= 20; k++) await insert(-20 + k, 1000 - 20 * k, new Array(28).fill(1000 - 20 * k));
    // Two runs at once share the due forecasts: each scored once. Origins -20..-14 have 14 days behind them.
    const [a, b] = await Promise.all([evaluateForecasts(t.db, 4), evaluateForecasts(t.db, 4)]);
    expect(a + b + (await evaluateForecasts(t.db))).toBe(7);
    const [scored] = await t.db.execute<{ error_days: number; error_mae: number; naive_mae: number }>(
      sql`select error_days, error_mae, naive_mae from forecast where origin_date = ${day(-20)}`, "objects");
    // Errors 10h for h = 1..14: mean 75; naive errors 20h: mean 150.
    expect(scored).toEqual({ error_days: 14, error_mae: 75, naive_mae: 150 });
    expect(await evaluateForecasts(t.db)).toBe(0);
  });
});

describe("outlier flag (robust z-score on median and MAD)", () => {
  it("computes the modified z-score, with a fallback when the MAD is 0", () => {
    expect(modifiedZ(100, [90, 95, 100, 105, 110, 100, 100])).toBe(0);
    expect(modifiedZ(200, [90, 95, 100, 105, 110, 100])).toBeNull(); // fewer than 7 values
    expect(modifiedZ(130, [90, 95, 100, 105, 110, 100, 100, 98])).toBeCloseTo((0.6745 * 30) / 3.5, 6); // median 100, MAD 3.5
    expect(modifiedZ(101, new Array(10).fill(100))).toBe(Infinity);
  });

  it("flags a report far from the site's own history, and clears the flag after a correction", async () => {
    await submit(hospital, Array.from({ length: 20 }, (_, i) => ({
      siteCode: "HZ-XIHU-H1", productCode: "MASK-KN95", date: day(i - 20), onHand: 1000, consumed: 100 + (i % 5) * 3, received: 100 + (i % 5) * 3,
    })));
    const first = await submitReports(t.db, hospital.actor, [{ siteCode: "HZ-XIHU-H1", productCode: "MASK-KN95", date: day(0), onHand: 1000, consumed: 1000, received: 1000 }] as never, { backfillDays: 400 });
    const id = first.reportIds[0]!;
    const found = await flagOutliers(t.db, [id]);
    expect(found.flagged.map((f) => f.measures.map((m) => m.measure).sort())).toEqual([["consumed", "received"]]);
    expect(found.changed).toBe(1);
    expect((await flagOutliers(t.db, [id])).changed).toBe(0); // idempotent
    const [row] = await t.db.execute<{ quality_flags: string[] }>(sql`select quality_flags from report where id = ${id}`, "objects");
    expect(row!.quality_flags).toContain(OUTLIER_FLAG);
    await submitReports(t.db, hospital.actor, [{ siteCode: "HZ-XIHU-H1", productCode: "MASK-KN95", date: day(0), consumed: 104, received: 104 }] as never, { backfillDays: 400 });
    const [kept] = await t.db.execute<{ quality_flags: string[] }>(sql`select quality_flags from report where id = ${id}`, "objects");
    expect(kept!.quality_flags).toContain(OUTLIER_FLAG); // the ingestion leaves the job's flag alone
    expect((await flagOutliers(t.db, [id])).changed).toBe(1);
    const [after] = await t.db.execute<{ quality_flags: string[] }>(sql`select quality_flags from report where id = ${id}`, "objects");
    expect(after!.quality_flags).not.toContain(OUTLIER_FLAG);
  });
});

describe("shortages and forecast in the API", () => {
  beforeEach(async () => {
    await submit(hospital, Array.from({ length: 40 }, (_, i) => ({
      siteCode: "HZ-XIHU-H1", productCode: "MASK-N95", date: day(i - 39), onHand: 400, consumed: 100 + (i % 3), received: 100 + (i % 3),
    })));
    await submit(maker, Array.from({ length: 40 }, (_, i) => ({
      siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: day(i - 39), onHand: 90_000, consumed: 10, produced: 0, received: 10,
    })));
    await runJobs();
  });

  it("lists a province planner's regions most urgent first; a county planner sees only their county", async () => {
    const gql = graphqlClient(t.db);
    const province = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330000" });
    const r = await gql(province.token, `{ shortages(regionCode: "330000", productCode: "MASK-N95") { edges { node { region { code } riskLevel daysOfSupply stockoutDate onHand } } } }`);
    expect(r.errors).toBeUndefined();
    const nodes = r.data.shortages.edges.map((e: any) => e.node);
    // Xihu first (about 4 days of supply); Hangzhou and Zhejiang hold Shangcheng's stock too.
    expect(nodes.map((n: any) => n.region.code)).toEqual(["330106", expect.any(String), expect.any(String), "330102"]);
    expect(nodes.slice(1, 3).map((n: any) => n.region.code).sort()).toEqual(["330000", "330100"]);
    expect(nodes[0]).toMatchObject({ riskLevel: "ORANGE", stockoutDate: day(4) });
    expect(nodes[0].daysOfSupply).toBeCloseTo(400 / 101, 1);

    const red = await gql(province.token, `{ shortages(regionCode: "330000", minRisk: ORANGE) { edges { node { region { code } } } } }`);
    expect(red.data.shortages.edges.map((e: any) => e.node.region.code)).toEqual(["330106"]);

    const county = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330102" });
    const own = await gql(county.token, `{ shortages(regionCode: "330102") { edges { node { region { code } } } } }`);
    expect(own.data.shortages.edges.map((e: any) => e.node.region.code)).toEqual(["330102"]);
    for (const q of [`{ shortages(regionCode: "330106") { edges { node { onHand } } } }`, `{ shortages(regionCode: "330100") { edges { node { onHand } } } }`]) {
      const denied = await gql(county.token, q);
      expect(denied.errors?.[0]?.message).toMatch(/not found, or not visible to you/);
      expect(denied.data).toBeNull();
    }
    const neighbour = await gql(county.token, `{ forecast(regionCode: "330106", productCode: "MASK-N95") { method } }`);
    expect(neighbour.errors?.[0]?.message).toMatch(/not visible/);

    const reporter = await gql(hospital.token, `{ shortages(regionCode: "330106") { edges { node { onHand } } } }`);
    expect(reporter.errors?.[0]?.message).toMatch(/not allowed/);
  });

  it("pages through shortages with cursors", async () => {
    const gql = graphqlClient(t.db);
    const admin = await makeUser(t.db, "ADMIN");
    const seen: string[] = [];
    let after: string | null = null;
    do {
      const r: any = await gql(admin.token, `query($after: String) { shortages(regionCode: "CN", first: 2, after: $after) { edges { node { region { code } } } pageInfo { hasNextPage endCursor } } }`, { after });
      expect(r.errors).toBeUndefined();
      seen.push(...r.data.shortages.edges.map((e: any) => e.node.region.code));
      after = r.data.shortages.pageInfo.hasNextPage ? r.data.shortages.pageInfo.endCursor : null;
    } while (after);
    expect(seen.sort()).toEqual(["330000", "330100", "330102", "330106", "CN"]);
  });

  it("gives the forecast with 28 daily points and ordered intervals", async () => {
    const gql = graphqlClient(t.db);
    const planner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330000" });
    const r = await gql(planner.token, `{ forecast(regionCode: "330106", productCode: "MASK-N95") {
      method demandSource inputCutoff parameters { name value } accuracy { evaluatedRuns relativeError }
      shortage { riskLevel asOf sites }
      points { date demand demandLow80 demandHigh80 demandLow95 demandHigh95 supply stock } } }`);
    expect(r.errors).toBeUndefined();
    const f = r.data.forecast;
    expect(f.demandSource).toBe("consumption");
    expect(f.shortage).toEqual({ riskLevel: "ORANGE", asOf: day(0), sites: 1 });
    expect(f.points).toHaveLength(28);
    expect(f.points[0].date).toBe(day(1));
    for (const p of f.points) {
      expect(p.demandLow95).toBeLessThanOrEqual(p.demandLow80);
      expect(p.demandLow80).toBeLessThanOrEqual(p.demand);
      expect(p.demand).toBeLessThanOrEqual(p.demandHigh80);
      expect(p.demandHigh80).toBeLessThanOrEqual(p.demandHigh95);
    }
    // The spread of daily consumption (100-102) shows in the intervals: they are not points.
    expect(f.points[0].demandHigh95 - f.points[0].demandLow95).toBeGreaterThan(0);
    expect(f.accuracy).toEqual({ evaluatedRuns: 0, relativeError: null });
    const none = await gql(planner.token, `{ forecast(regionCode: "330106", productCode: "TEST-PCR") { method } }`);
    expect(none.errors).toBeUndefined();
    expect(none.data.forecast).toBeNull();
  });
});

it("marks the pairs of given reports and their ancestors dirty, and for a raw material the products made of it", async () => {
  await submit(maker, [
    { siteCode: "HZ-MASK-1", productCode: "GOGGLES", date: day(0), onHand: 5 },
    { siteCode: "HZ-MASK-1", productCode: "MELTBLOWN-PP", date: day(0), onHand: 5 },
  ]);
  const [goggles, meltblown] = await t.db.execute<{ id: number }>(sql`select id::int from report order by id`, "objects");
  expect(await markReportsDirty(t.db, [goggles!.id])).toBe(4);
  const rows = await t.db.execute<{ code: string }>(sql`select r.code from forecast_dirty d join region r on r.id = d.region_id order by r.path`, "objects");
  expect(rows.map((r) => r.code)).toEqual(["CN", "330000", "330100", "330102"]);
  await t.db.execute(sql`truncate forecast_dirty`);
  await markReportsDirty(t.db, [meltblown!.id]);
  const products = await t.db.execute<{ code: string }>(
    sql`select distinct p.code from forecast_dirty d join product p on p.id = d.product_id order by p.code`, "objects");
  const madeOfIt = await t.db.execute<{ code: string }>(
    sql`select p.code from bom_line b join product p on p.id = b.product_id where b.input_product_id = (select id from product where code = 'MELTBLOWN-PP') order by p.code`, "objects");
  expect(madeOfIt.length).toBeGreaterThan(0);
  expect(products.map((p) => p.code)).toEqual([...madeOfIt.map((p) => p.code), "MELTBLOWN-PP"].sort());
});

describe("on the embedded PGlite database", () => {
  let p: TestDatabase;
  // Starting PGlite and migrating it takes seconds: a hook, with the hook timeout.
  beforeAll(async () => {
    p = await createPgliteTestDatabase();
  });
  afterAll(async () => p?.drop());

  it("relays, forecasts every level, flags outliers and scores runs with the same code", async () => {
    const w = await seedWorld(p.db);
    const user = await makeUser(p.db, "REPORTER", { organizationId: w.hospital.id });
    const rows = Array.from({ length: 40 }, (_, i) => ({
      siteCode: "HZ-XIHU-H1", productCode: "GLOVES-NITRILE", date: day(i - 39), onHand: 1000, consumed: i === 39 ? 900 : 100, received: 100,
    }));
    const r = await submitReports(p.db, user.actor, rows as never, { backfillDays: 400 });
    expect(r.rejected).toEqual([]);
    const relayed: number[][] = [];
    await relayOutbox(p.db, async (jobs) => void relayed.push(...jobs.flatMap((j) => (j.name === "reports.flagOutliers" ? [j.data.reportIds as number[]] : []))));
    const run = await recomputeDirty(p.db, { trigger: "manual" });
    expect(run.series).toBe(4);
    const [f] = await p.db.execute<{ risk_level: string; daily_demand: number; stock: number[] }>(
      sql`select f.risk_level, f.daily_demand, f.stock from forecast_latest l join forecast f on f.id = l.forecast_id
          join region r on r.id = l.region_id where r.code = 'CN'`,
      "objects",
    );
    expect(f!.stock).toHaveLength(28);
    expect(f!.daily_demand).toBeGreaterThan(90);
    const outliers = await flagOutliers(p.db, relayed.flat());
    expect(outliers.flagged.map((o) => o.reportId)).toEqual([r.reportIds[39]]);
    expect(await evaluateForecasts(p.db)).toBe(0);
  });
});

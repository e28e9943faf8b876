// Paging through a connection returns every row once, also when many rows tie on what the page is
// ordered by: matches and alerts written by one statement share their timestamp, and most outlooks
// share their risk level and "never runs out". (Matches and alerts used to come back one page
// long: the cursor's Date held milliseconds while the columns held microseconds. `shortages` now
// ends its ordering with the id, so ties cannot straddle a page boundary.)
import { sql, type SQL } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { makeUser, seedWorld, type TestUser, type World } from "./helpers/fixtures.js";
import { graphqlClient } from "./helpers/graphql.js";

let t: TestDatabase;
let world: World;
let admin: TestUser;
let gql: ReturnType<typeof graphqlClient>;

/** Every node of a connection, `first` at a time, following the end cursors. */
async function pageThrough(field: string, args: string, selection: string, first: number): Promise<unknown[]> {
  const nodes: unknown[] = [];
  let after: string | null = null;
  for (let page = 0; page < 1000; page++) {
    const r: any = await gql(admin.token, `query($after: String) { ${field}(${args ? `${args}, ` : ""}first: ${first}, after: $after) { edges { node { ${selection} } } pageInfo { hasNextPage endCursor } } }`, { after });
    expect(r.errors).toBeUndefined();
    const connection = r.data[field];
    nodes.push(...connection.edges.map((e: { node: unknown }) => e.node));
    if (!connection.pageInfo.hasNextPage) return nodes;
    after = connection.pageInfo.endCursor;
  }
  throw new Error("more than 1000 pages");
}

/**
 * One outlook per region and product, as the latest; `risk` and `days` may use `h`, a hash of the
 * region's code and the product's id.
 */
async function insertOutlooks(risk: SQL, days: SQL) {
  const zeros = `{${new Array(28).fill(0).join(",")}}`;
  await t.db.execute(sql`
    with runs as (
      insert into forecast_run (trigger, product_id, origin_date, input_cutoff) select 'test', id, current_date, now() from product returning id, product_id
    ), rows as (
      insert into forecast (run_id, region_id, product_id, origin_date, input_cutoff, method, params, demand_source, sites, on_hand, daily_demand,
        days_to_stockout, stockout_probability_7d, stockout_probability_14d, shortage_quantity, risk_level, demand, demand_sd, supply, net_inflow, stock)
      select runs.id, r.id, runs.product_id, current_date, now(), 'test', '{}', 'test', 1, 100, 0, ${days}, 0, 0, 0, ${risk},
        ${zeros}, ${zeros}, ${zeros}, ${zeros}, ${zeros}
      from runs cross join region r cross join lateral (select abs(hashtext(r.code || runs.product_id)) as h) x
      returning id, region_id, product_id, risk_level, days_to_stockout, computed_at
    )
    insert into forecast_latest (region_id, product_id, forecast_id, risk_level, days_to_stockout, computed_at)
    select region_id, product_id, id, risk_level, days_to_stockout, computed_at from rows`);
}

beforeAll(async () => {
  t = await createTestDatabase();
  world = await seedWorld(t.db);
  admin = await makeUser(t.db, "ADMIN");
  gql = graphqlClient(t.db);
});

afterAll(async () => t?.drop());

describe("paging through connections whose rows tie", () => {
  it("matches written by one statement: every one once", async () => {
    await t.db.execute(sql`
      with run as (insert into match_run (kind, product_id, trigger) select 'DOWNSTREAM', id, 'test' from product where code = 'MASK-N95' returning id, product_id)
      insert into match (run_id, kind, product_id, from_site_id, to_region_id, quantity, cost, urgency)
      select run.id, 'DOWNSTREAM', run.product_id, ${world.makerSite.id}::uuid, (select id from region where code = '330106'), g, g, 1
      from run, generate_series(1, 230) g`);
    const nodes = (await pageThrough("matches", "", "id quantity", 17)) as { id: string }[];
    expect(nodes).toHaveLength(230);
    expect(new Set(nodes.map((n) => n.id)).size).toBe(230);
  });

  it("alerts raised by one statement: every one once", async () => {
    await t.db.execute(sql`
      insert into alert (kind, dedupe_key, severity, stage, peak_stage, region_id, message, details)
      select 'SHORTAGE_RISK', 'paging-' || g, 'RED', 1, 1, (select id from region where code = '330106'), 'paging test ' || g, '{}'::jsonb
      from generate_series(1, 150) g`);
    const nodes = (await pageThrough("alerts", "", "id message", 11)) as { id: string; message: string }[];
    const ours = nodes.filter((n) => n.message.startsWith("paging test "));
    expect(ours).toHaveLength(150);
    expect(new Set(nodes.map((n) => n.id)).size).toBe(nodes.length);
  });

  it("shortages that tie on risk and days to stock-out: every outlook once", async () => {
    await insertOutlooks(sql`'GREEN'`, sql`null`);
    const [expected] = await t.db.execute<{ n: number }>(sql`select count(*)::int as n from forecast_latest`, "objects");
    expect(expected!.n).toBeGreaterThan(100);
    const nodes = (await pageThrough("shortages", `regionCode: "CN"`, "region { code } product { code } riskLevel", 9)) as { region: { code: string }; product: { code: string } }[];
    expect(nodes).toHaveLength(expected!.n);
    expect(new Set(nodes.map((n) => `${n.region.code}/${n.product.code}`)).size).toBe(expected!.n);
  });

  it("shortages: the first page is the head of the whole ordering, with or without filters", async () => {
    // Outlooks of every risk level, days to stock-out with ties and none at all, in no order.
    await t.db.execute(sql`truncate forecast_run, forecast, forecast_latest cascade`);
    await insertOutlooks(sql`(enum_range(null::risk_level))[1 + h % 5]`, sql`case when h % 5 = 0 then null else (h % 13) / 2.0 end`);
    const expected = async (filter: ReturnType<typeof sql>) =>
      (
        await t.db.execute<{ key: string }>(
          sql`select r.code || '/' || p.code as key from forecast_latest l join forecast f on f.id = l.forecast_id
              join region r on r.id = l.region_id join product p on p.id = l.product_id
              where true ${filter}
              order by array_position(enum_range(null::risk_level), f.risk_level) desc, coalesce(f.days_to_stockout, 1e15), f.id`,
          "objects",
        )
      ).map((r) => r.key);
    const keys = (nodes: unknown[]) => (nodes as { region: { code: string }; product: { code: string } }[]).map((n) => `${n.region.code}/${n.product.code}`);
    const firstPage = async (args: string) => {
      const r: any = await gql(admin.token, `{ shortages(${args}) { edges { node { region { code } product { code } } } pageInfo { hasNextPage } } }`);
      expect(r.errors).toBeUndefined();
      return { keys: keys(r.data.shortages.edges.map((e: { node: unknown }) => e.node)), hasNextPage: r.data.shortages.pageInfo.hasNextPage as boolean };
    };

    const all = await expected(sql``);
    expect(all.length).toBeGreaterThan(120);
    for (const first of [1, 7, 100]) expect(await firstPage(`regionCode: "CN", first: ${first}`)).toEqual({ keys: all.slice(0, first), hasNextPage: true });
    expect(await firstPage(`regionCode: "CN"`)).toEqual({ keys: all.slice(0, 20), hasNextPage: true });
    expect(keys(await pageThrough("shortages", `regionCode: "CN"`, "region { code } product { code }", 13))).toEqual(all);

    const orange = await expected(sql`and f.risk_level in ('RED', 'ORANGE') and p.code = 'MASK-N95' and r.path ^@ (select path from region where code = '330000')`);
    expect(orange.length).toBeGreaterThan(0);
    expect(await firstPage(`regionCode: "330000", productCode: "mask-n95", minRisk: ORANGE, first: ${orange.length}`)).toEqual({ keys: orange, hasNextPage: false });
    expect(await firstPage(`regionCode: "330000", productCode: "mask-n95", minRisk: ORANGE, first: 1`)).toEqual({ keys: orange.slice(0, 1), hasNextPage: orange.length > 1 });
  });
});

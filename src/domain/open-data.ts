import { sql } from "drizzle-orm";
import type { Database } from "../db/index.js";

/**
 * Open data: the shortage outlook per region and product, for anyone, without a token. Only
 * aggregates leave: no organization, site, person or reported figure is named or can be worked out.
 *
 * - A cell (region, product) is published only when at least {@link MIN_ORGANIZATIONS} different
 *   organizations report the product in the region's subtree (the most on any of the last 7 days
 *   up to the forecast's day: never more than the organizations behind the figures). Otherwise its
 *   figures are empty and `suppressed` is true; the region and product still appear.
 * - Only ratios and levels are published (risk level, days of supply, stock-out date and
 *   probability, reporting completeness), never a quantity or a count of sites: quantities add up
 *   the tree, so a parent's and the published siblings' would give away a suppressed child's.
 */
export const MIN_ORGANIZATIONS = 3;

/** The published columns, in order, with what each holds: the stable, documented column set. */
export const OPEN_DATA_COLUMNS = [
  ["as_of", "The day the figures describe (the newest reported day of the product), YYYY-MM-DD."],
  ["region_code", "Region code (CN, then GB/T 2260 six-digit codes)."],
  ["region_name", "Region name."],
  ["region_level", "COUNTRY, PROVINCE, CITY or COUNTY."],
  ["parent_code", "Code of the region above; empty for the country."],
  ["product_code", "Product code, e.g. MASK-N95."],
  ["product_name", "Product name."],
  ["suppressed", "true when fewer than 3 organizations report the product in this region: the figures of the row are then empty."],
  ["risk_level", "GREEN, BLUE, YELLOW, ORANGE or RED (RED: under 3 days of supply or out)."],
  ["days_of_supply", "Stock on hand divided by the forecast daily demand, one decimal; empty when there is no demand."],
  ["stockout_date", "The day the forecast stock path reaches zero within 28 days; empty if it does not."],
  ["stockout_probability_14d", "Probability of running out within 14 days, two decimals."],
  ["reporting_completeness", "Share of the sites that reported the product in the last 28 days that have reported on as_of, two decimals."],
  ["computed_at", "When the forecast was computed (UTC, ISO 8601)."],
] as const;

export type OpenDataColumn = (typeof OPEN_DATA_COLUMNS)[number][0];
export type OpenDataRow = Record<OpenDataColumn, string | number | boolean | null>;

const round = (v: number | null, digits: number) => (v === null || !Number.isFinite(v) ? null : Number(v.toFixed(digits)));

/** Every published row, ordered by product, then region path (so parents come before children). */
export async function openDataShortages(db: Database, filter: { productCode?: string } = {}): Promise<OpenDataRow[]> {
  const rows = await db.execute<{
    as_of: string; region_code: string; region_name: string; region_level: string; parent_code: string | null;
    product_code: string; product_name: string; organizations: number | null; risk_level: string; days_of_supply: number | null;
    stockout_date: string | null; stockout_probability_14d: number; expected: number | null; reporting: number | null; computed_at: string;
  }>(
    sql`with latest as (
          select l.region_id, l.product_id, f.origin_date, f.risk_level, f.days_of_supply, f.stockout_date,
                 f.stockout_probability_14d, f.computed_at
          from forecast_latest l join forecast f on f.id = l.forecast_id
          ${filter.productCode ? sql`where l.product_id = (select id from product where code = ${filter.productCode})` : sql``}
        ),
        as_of as (select product_id, max(origin_date) as day from latest group by product_id),
        organizations as (
          select x.region_id, x.product_id, max(u.organizations) as organizations
          from latest x join region_day_rollup u on u.region_id = x.region_id and u.product_id = x.product_id
            and u.date > x.origin_date - 7 and u.date <= x.origin_date
          group by x.region_id, x.product_id
        ),
        -- Completeness from the current inventory: each site's newest report day of the product.
        completeness as (
          select a.region_id, i.product_id, count(*)::int as expected, (count(*) filter (where i.date >= d.day))::int as reporting
          from inventory_current i
          join as_of d on d.product_id = i.product_id and i.date > d.day - 28
          join site s on s.id = i.site_id
          join region leaf on leaf.id = s.region_id
          cross join lateral unnest(string_to_array(trim(both '/' from leaf.path), '/')::int[]) as a(region_id)
          group by a.region_id, i.product_id
        )
        select x.origin_date::text as as_of, r.code as region_code, r.name as region_name, r.level::text as region_level,
               parent.code as parent_code, p.code as product_code, p.name as product_name, o.organizations,
               x.risk_level::text, x.days_of_supply, x.stockout_date::text, x.stockout_probability_14d,
               c.expected, c.reporting, to_char(x.computed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as computed_at
        from latest x
        join region r on r.id = x.region_id
        left join region parent on parent.id = r.parent_id
        join product p on p.id = x.product_id
        left join organizations o on o.region_id = x.region_id and o.product_id = x.product_id
        left join completeness c on c.region_id = x.region_id and c.product_id = x.product_id
        order by p.code, r.path`,
    "objects",
  );
  return rows.map((r) => {
    const suppressed = (r.organizations ?? 0) < MIN_ORGANIZATIONS;
    const hidden = <T>(v: T) => (suppressed ? null : v);
    return {
      as_of: r.as_of,
      region_code: r.region_code,
      region_name: r.region_name,
      region_level: r.region_level,
      parent_code: r.parent_code,
      product_code: r.product_code,
      product_name: r.product_name,
      suppressed,
      risk_level: hidden(r.risk_level),
      days_of_supply: hidden(round(r.days_of_supply, 1)),
      stockout_date: hidden(r.stockout_date),
      stockout_probability_14d: hidden(round(r.stockout_probability_14d, 2)),
      reporting_completeness: hidden(r.expected ? round((r.reporting ?? 0) / r.expected, 2) : null),
      computed_at: r.computed_at,
    };
  });
}

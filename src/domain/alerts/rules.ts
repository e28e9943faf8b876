// The alert rules: each reads the current state (forecasts, matches, reports) and says which
// conditions hold now; the engine turns that into alerts. Each rule re-reads everything it needs,
// so running one twice, or late, is harmless.
import { sql } from "drizzle-orm";
import type { Database } from "../../db/index.js";
import { upstreamNeeds, type MatchKind } from "../matching/matching.js";
import { OUTLIER_FLAG } from "../reports/outliers.js";
import { QualityFlag } from "../reports/quality.js";
import type { RiskLevel } from "../types.js";
import { reconcileAlerts, type AlertCondition, type ReconcileResult } from "./engine.js";

const fmt = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });
const n = (v: number) => fmt.format(v);
/** Figures in details are rounded so that a forecast rerun on the same data does not rewrite the alert. */
const round = (v: number | null, digits = 1) => (v === null || !Number.isFinite(v) ? null : Math.round(v * 10 ** digits) / 10 ** digits);

/**
 * SHORTAGE_RISK stages: YELLOW 1, ORANGE 2, RED 3, and 4 for out of stock (or within a day of
 * it), so running out escalates a RED alert. BLUE is the hysteresis band: it keeps an open alert
 * open but raises none; GREEN clears it.
 */
export function shortageStage(risk: RiskLevel, daysToStockout: number | null, onHand: number): number | null {
  switch (risk) {
    case "RED":
      return onHand <= 0 || (daysToStockout !== null && daysToStockout < 1) ? 4 : 3;
    case "ORANGE":
      return 2;
    case "YELLOW":
      return 1;
    case "BLUE":
      return 0;
    default:
      return null;
  }
}

/**
 * Reconciles a product's SHORTAGE_RISK alerts with its latest forecast in every region. Planners
 * above a region see and receive its alerts, so a parent region is alerted only when its figures
 * are more than one child's.
 */
export async function evaluateShortageAlerts(db: Database, productId: number): Promise<ReconcileResult> {
  return db.transaction(async (tx) => {
    const rows = await tx.execute<{
      region_id: number; code: string; name: string; product_code: string; risk_level: RiskLevel; on_hand: number; daily_demand: number;
      days_of_supply: number | null; days_to_stockout: number | null; stockout_date: string | null; p7: number; p14: number; shortage: number; origin_date: string;
    }>(
      sql`select l.region_id, r.code, r.name, p.code as product_code, f.risk_level, f.on_hand, f.daily_demand, f.days_of_supply,
                 f.days_to_stockout, f.stockout_date::text, f.stockout_probability_7d as p7, f.stockout_probability_14d as p14,
                 f.shortage_quantity as shortage, f.origin_date::text
          from forecast_latest l join forecast f on f.id = l.forecast_id join region r on r.id = l.region_id join product p on p.id = l.product_id
          where l.product_id = ${productId} and l.risk_level in ('BLUE', 'YELLOW', 'ORANGE', 'RED')
            -- A region whose figures all come from one child region says nothing the child's alert
            -- does not: one hospital's shortage is one alert, not one per level of the tree.
            and not exists (
              select 1 from forecast_latest cl join forecast cf on cf.id = cl.forecast_id join region c on c.id = cl.region_id
              where c.parent_id = l.region_id and cl.product_id = l.product_id and cf.sites = f.sites
            )`,
      "objects",
    );
    const conditions: AlertCondition[] = [];
    for (const f of rows) {
      const days = f.days_to_stockout === null ? null : Number(f.days_to_stockout);
      const stage = shortageStage(f.risk_level, days, f.on_hand);
      if (stage === null) continue;
      const out = stage === 4 && f.on_hand <= 0;
      const place = `${f.name} (${f.code})`;
      const message = out
        ? `${place} is out of ${f.product_code}: nothing on hand against ${n(f.daily_demand)} a day of demand. Look at matches for supply.`
        : `${place}: ${f.product_code} runs out in about ${n(days ?? 0)} days${f.stockout_date ? ` (${f.stockout_date})` : ""}: ${n(f.on_hand)} on hand, ${n(f.daily_demand)} a day of demand; risk ${f.risk_level}.`;
      conditions.push({
        kind: "SHORTAGE_RISK",
        dedupeKey: `SHORTAGE_RISK:region:${f.region_id}:product:${productId}`,
        stage,
        severity: f.risk_level,
        regionId: f.region_id,
        productId,
        message,
        details: {
          regionCode: f.code,
          productCode: f.product_code,
          riskLevel: f.risk_level,
          onHand: round(f.on_hand),
          dailyDemand: round(f.daily_demand),
          daysOfSupply: round(f.days_of_supply),
          daysToStockout: round(days),
          stockoutDate: f.stockout_date,
          stockoutProbability7d: round(f.p7, 2),
          stockoutProbability14d: round(f.p14, 2),
          shortageQuantity: round(f.shortage, 0),
          forecastOrigin: f.origin_date,
        },
      });
    }
    return reconcileAlerts(tx, { kind: "SHORTAGE_RISK", productId }, conditions);
  });
}

function severityForUrgency(urgency: number): RiskLevel {
  if (urgency >= 16) return "RED";
  if (urgency >= 8) return "ORANGE";
  if (urgency >= 4) return "YELLOW";
  return "BLUE";
}

/**
 * SUPPLY_MATCH: one alert per proposed match, to the planners of the destination and the
 * receiving organization (the requester, or the manufacturer short of an input); it resolves when
 * the match is answered, expires or is no longer proposed. After an upstream run, also
 * UPSTREAM_INPUT_SHORTAGE for the input.
 */
export async function evaluateMatchAlerts(db: Database, productId: number, kind: MatchKind): Promise<{ supplyMatch: ReconcileResult; upstream?: ReconcileResult }> {
  return db.transaction(async (tx) => {
    const matches = await tx.execute<{
      id: string; kind: MatchKind; to_region_id: number; region_code: string; region_name: string; product_code: string; base_unit: string;
      quantity: number; distance_km: number | null; urgency: number; from_code: string; from_org: string; to_site_id: string | null; to_code: string | null;
      to_org: string | null; request_id: string | null; needed_by: string | null;
    }>(
      sql`select m.id, m.kind, m.to_region_id, r.code as region_code, r.name as region_name, p.code as product_code, p.base_unit,
                 m.quantity, m.distance_km, m.urgency, fs.code as from_code, fo.name as from_org, m.to_site_id, ts.code as to_code,
                 coalesce(q.organization_id, ts.organization_id) as to_org, m.request_id, q.needed_by::text as needed_by
          from match m join region r on r.id = m.to_region_id join product p on p.id = m.product_id
          join site fs on fs.id = m.from_site_id join organization fo on fo.id = fs.organization_id
          left join site ts on ts.id = m.to_site_id left join procurement_request q on q.id = m.request_id
          where m.product_id = ${productId} and m.status = 'PROPOSED'`,
      "objects",
    );
    const conditions: AlertCondition[] = matches.map((m) => ({
      kind: "SUPPLY_MATCH",
      dedupeKey: `SUPPLY_MATCH:match:${m.id}`,
      stage: 1,
      severity: severityForUrgency(m.urgency),
      regionId: m.to_region_id,
      productId,
      organizationId: m.to_org,
      siteId: m.to_site_id,
      matchId: m.id,
      message:
        `${m.from_org} (site ${m.from_code}) can ship ${n(m.quantity)} ${m.base_unit} of ${m.product_code} to ` +
        `${m.to_code ? `site ${m.to_code} in ` : ""}${m.region_name} (${m.region_code})` +
        `${m.needed_by ? ` for the request needed by ${m.needed_by}` : ""}${m.distance_km !== null ? `, ${n(m.distance_km)} km away` : ""}. ` +
        `Accept or decline it with respondToMatch.`,
      details: {
        matchKind: m.kind,
        productCode: m.product_code,
        quantity: round(m.quantity, 0),
        unit: m.base_unit,
        distanceKm: round(m.distance_km, 0),
        fromSiteCode: m.from_code,
        toSiteCode: m.to_code,
        toRegionCode: m.region_code,
        requestNeededBy: m.needed_by,
      },
    }));
    const supplyMatch = await reconcileAlerts(tx, { kind: "SUPPLY_MATCH", productId }, conditions);
    if (kind !== "UPSTREAM") return { supplyMatch };
    return { supplyMatch, upstream: await reconcileUpstream(tx, productId) };
  });
}

/**
 * UPSTREAM_INPUT_SHORTAGE: a manufacturer site holding less of an input than a week of its
 * production needs (ORANGE; under 3 days RED); under 10 days keeps an open alert open.
 */
async function reconcileUpstream(tx: Database, inputId: number): Promise<ReconcileResult> {
  const needs = await upstreamNeeds(tx, inputId);
  const short = needs.filter((u) => u.daysLeft < 10);
  const sites = short.length
    ? await tx.execute<{ id: string; code: string; organization_id: string; input_code: string; unit: string }>(
        sql`select s.id, s.code, s.organization_id, p.code as input_code, p.base_unit as unit
            from site s cross join product p where s.id = any(${sql.param(short.map((u) => u.siteId))}::uuid[]) and p.id = ${inputId}`,
        "objects",
      )
    : [];
  const byId = new Map(sites.map((s) => [s.id, s]));
  const conditions: AlertCondition[] = [];
  for (const u of short) {
    const site = byId.get(u.siteId)!;
    const stage = u.daysLeft < 3 ? 2 : u.daysLeft < 7 ? 1 : 0;
    conditions.push({
      kind: "UPSTREAM_INPUT_SHORTAGE",
      dedupeKey: `UPSTREAM_INPUT_SHORTAGE:site:${u.siteId}:input:${inputId}`,
      stage,
      severity: u.daysLeft < 3 ? "RED" : u.daysLeft < 7 ? "ORANGE" : "YELLOW",
      regionId: u.regionId,
      productId: inputId,
      organizationId: site.organization_id,
      siteId: u.siteId,
      message:
        `Site ${site.code} holds ${n(u.onHand)} ${site.unit} of ${site.input_code}, ${n(u.daysLeft)} days of its production ` +
        `(${n(u.daily)} ${site.unit} a day); ${n(Math.max(0, u.need))} ${site.unit} more are needed for a week. See matches for suppliers.`,
      details: {
        siteCode: site.code,
        inputCode: site.input_code,
        unit: site.unit,
        onHand: round(u.onHand),
        dailyUse: round(u.daily),
        daysLeft: round(u.daysLeft),
        committed: round(u.committed),
        missingForWeek: round(Math.max(0, u.need), 0),
      },
    });
  }
  return reconcileAlerts(tx, { kind: "UPSTREAM_INPUT_SHORTAGE", productId: inputId }, conditions);
}

/** Flags that make a report doubtful (a backfill is only late, not doubtful). */
const DOUBTFUL_FLAGS = [QualityFlag.STOCK_BALANCE, QualityFlag.PRODUCED_ABOVE_CAPACITY, OUTLIER_FLAG];
/** Data-quality and stock-out alerts look at this many days before the newest report. */
const REPORT_WINDOW_DAYS = 7;

/**
 * After reports arrive (and their outlier flags are set), for each (site, product) they touch:
 * STOCKOUT_IMMINENT when a consuming site's own stock lasts less than a day at its recent
 * consumption or it is out, DATA_QUALITY when its reports of the last week carry doubtful flags.
 * Both go to the site's organization and the planners above it.
 */
export async function evaluateReportAlerts(db: Database, reportIds: number[]): Promise<{ stockout: ReconcileResult; quality: ReconcileResult }> {
  return db.transaction(async (tx) => {
    const pairs = await tx.execute<{
      site_id: string; site_code: string; organization_id: string; region_id: number; product_id: number; product_code: string; unit: string;
      latest_date: string | null; on_hand: number | null; stockout_hours: number | null; avg_consumed: number | null; flagged: { date: string; flags: string[] }[] | null;
    }>(
      sql`with pairs as (
            select distinct site_id, product_id from report where id = any(${sql.param(reportIds)}::bigint[])
          )
          select p.site_id, s.code as site_code, s.organization_id, s.region_id, p.product_id, pr.code as product_code, pr.base_unit as unit,
                 l.date::text as latest_date, case when l.on_hand_date = l.date then l.on_hand end as on_hand, l.stockout_hours, u.avg_consumed, q.flagged
          from pairs p join site s on s.id = p.site_id join product pr on pr.id = p.product_id
          left join inventory_current l on l.site_id = p.site_id and l.product_id = p.product_id
          left join lateral (
            -- Recent consumption on days the site was not out of stock: a day without stock is not a day without need.
            select avg(consumed) as avg_consumed from report r
            where r.site_id = p.site_id and r.product_id = p.product_id and r.date > l.date - ${REPORT_WINDOW_DAYS}::int
              and r.consumed is not null and coalesce(r.stockout_hours, 0) = 0 and coalesce(r.on_hand, 1) > 0
          ) u on true
          left join lateral (
            select jsonb_agg(jsonb_build_object('date', r.date::text, 'flags', r.quality_flags) order by r.date) as flagged from report r
            where r.site_id = p.site_id and r.product_id = p.product_id and r.date > current_date - ${REPORT_WINDOW_DAYS}::int
              and r.quality_flags && ${sql.param(DOUBTFUL_FLAGS)}::text[]
          ) q on true`,
      "objects",
    );
    const stockout: AlertCondition[] = [];
    const quality: AlertCondition[] = [];
    const keys = { stockout: [] as string[], quality: [] as string[] };
    for (const p of pairs) {
      const stockoutKey = `STOCKOUT_IMMINENT:site:${p.site_id}:product:${p.product_id}`;
      const qualityKey = `DATA_QUALITY:site:${p.site_id}:product:${p.product_id}`;
      keys.stockout.push(stockoutKey);
      keys.quality.push(qualityKey);
      const base = { regionId: p.region_id, productId: p.product_id, organizationId: p.organization_id, siteId: p.site_id };

      // Only fresh stock figures speak for now: the newest report must be from the last two days.
      const fresh = p.latest_date !== null && Date.parse(p.latest_date) >= Date.now() - 3 * 86_400_000;
      const use = p.avg_consumed === null ? 0 : Number(p.avg_consumed);
      if (fresh && p.on_hand !== null && use > 0) {
        const out = p.on_hand <= 0 || (p.stockout_hours ?? 0) > 0;
        const daysLeft = p.on_hand / use;
        const stage = out ? 2 : daysLeft < 1 ? 1 : daysLeft < 2 ? 0 : null;
        if (stage !== null) {
          stockout.push({
            ...base,
            kind: "STOCKOUT_IMMINENT",
            dedupeKey: stockoutKey,
            stage,
            severity: "RED",
            message: out
              ? `Site ${p.site_code} is out of ${p.product_code} (report of ${p.latest_date}); it uses about ${n(use)} ${p.unit} a day. Post a request or look at matches.`
              : `Site ${p.site_code} has ${n(p.on_hand)} ${p.unit} of ${p.product_code}, less than ${n(Math.max(daysLeft, 0.1))} days at about ${n(use)} ${p.unit} a day. Post a request or look at matches.`,
            details: { siteCode: p.site_code, productCode: p.product_code, unit: p.unit, date: p.latest_date, onHand: round(p.on_hand), dailyUse: round(use), daysLeft: round(daysLeft), stockoutHours: p.stockout_hours },
          });
        }
      }
      const flagged = p.flagged ?? [];
      if (flagged.length) {
        const list = flagged.map((f) => `${f.date}: ${f.flags.filter((x) => DOUBTFUL_FLAGS.includes(x as never)).join(", ")}`);
        quality.push({
          ...base,
          kind: "DATA_QUALITY",
          dedupeKey: qualityKey,
          stage: flagged.length >= 3 ? 2 : 1,
          severity: flagged.length >= 3 ? "ORANGE" : "YELLOW",
          message:
            `Site ${p.site_code}, ${p.product_code}: ${flagged.length > 1 ? `${flagged.length} reports` : "1 report"} of the last ${REPORT_WINDOW_DAYS} days ${flagged.length > 1 ? "look" : "looks"} doubtful (${list.join("; ")}). ` +
            `Check the figures and send corrections with submitReports (same site, product and date).`,
          details: { siteCode: p.site_code, productCode: p.product_code, flagged },
        });
      }
    }
    return {
      stockout: await reconcileAlerts(tx, { kind: "STOCKOUT_IMMINENT", dedupeKeys: keys.stockout }, stockout),
      quality: await reconcileAlerts(tx, { kind: "DATA_QUALITY", dedupeKeys: keys.quality }, quality),
    };
  });
}

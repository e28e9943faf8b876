// Matching (SPEC "Matching"): who can cover a shortage, and who holds the raw material a
// manufacturer lacks. Each run builds a transportation problem for one product and kind, solves it
// exactly (solver.ts), and reconciles the proposals with the stored ones so that a second run on
// the same data changes nothing.
//
// Downstream, for a finished product:
//   demand nodes: open procurement requests (what is not yet covered by accepted matches), and
//     leaf regions whose latest forecast shows a shortage beyond their requests and accepted
//     incoming matches; urgency from the risk level (and, for requests, how soon they are needed);
//   supplier nodes: sites of manufacturers, distributors and reserves with stock on hand (their
//     last report within INPUT_STOCK_MAX_AGE days) not yet committed to accepted matches, plus the
//     spare capacity of their line over LEAD_TIME_DAYS.
// Upstream, for a raw material:
//   demand nodes: manufacturer sites whose production over LEAD_TIME_DAYS needs more of it than
//     they hold (bill of materials x recent output - on hand);
//   supplier nodes: raw-material suppliers' sites holding it, minus what is committed.
// Arcs: every supplier within MAX_DISTANCE_KM of a demand (by the region centroids, haversine), at
// most NEAREST_SUPPLIERS per demand; where a region has no centroid, tree distance stands in at
// TREE_STEP_KM per step. For a request, a supplier whose lead time (1 day + distance at KM_PER_DAY)
// is past the date it is needed by is a forbidden arc too. Cost = distance x quantity.
import { sql } from "drizzle-orm";
import type { Database } from "../../db/index.js";
import { DomainError, forbidden, notFound } from "../errors.js";
import type { Viewer } from "../viewer.js";
import { writeAudit } from "../audit.js";
import { requestJobs } from "../outbox.js";
import type { Actor } from "../viewer.js";
import { haversineKm, treeDistance } from "./distance.js";
import { solveTransport } from "./solver.js";

export const LEAD_TIME_DAYS = 7;
export const MAX_DISTANCE_KM = 2000;
export const NEAREST_SUPPLIERS = 30;
export const TREE_STEP_KM = 150;
/** Road transport covers about this much a day; a shipment's lead time is its distance at that pace, plus a day to load. */
export const KM_PER_DAY = 500;
const STOCK_MAX_AGE = 14;
/** Urgency by risk level: each colour counts twice the one below it. */
export const RISK_URGENCY: Record<string, number> = { GREEN: 1, BLUE: 2, YELLOW: 4, ORANGE: 8, RED: 16 };
/** Proposals below this many base units are noise from floating point, not shipments. */
const MIN_QUANTITY = 1e-6;

export type MatchKind = "DOWNSTREAM" | "UPSTREAM";

interface Node {
  regionId: number;
  path: string;
  lat: number | null;
  lon: number | null;
}
interface DemandNode extends Node {
  need: number;
  urgency: number;
  requestId: string | null;
  toSiteId: string | null;
  /** A request needed in this many days: suppliers whose lead time is longer are forbidden arcs. */
  maxLeadDays?: number;
}

export function leadTimeDays(km: number): number {
  return 1 + Math.ceil(km / KM_PER_DAY);
}
interface SupplierNode extends Node {
  siteId: string;
  available: number;
}

/** Urgency of a request needed `daysLeft` days from the origin: sooner is more urgent. */
export function requestUrgency(daysLeft: number, riskLevel: string | null): number {
  const byDate = daysLeft <= 3 ? 16 : daysLeft <= 7 ? 8 : daysLeft <= 14 ? 4 : daysLeft <= 30 ? 2 : 1;
  return Math.max(byDate, riskLevel ? (RISK_URGENCY[riskLevel] ?? 1) : 1);
}

export function distanceKm(a: Node, b: Node): number {
  if (a.lat !== null && a.lon !== null && b.lat !== null && b.lon !== null) return haversineKm(a.lat, a.lon, b.lat, b.lon);
  return treeDistance(a.path, b.path) * TREE_STEP_KM;
}

/**
 * The nearest suppliers of each demand (at most NEAREST_SUPPLIERS, none beyond MAX_DISTANCE_KM):
 * the arcs of the problem. Forbidden pairs are simply not arcs.
 */
export function buildArcs(suppliers: readonly SupplierNode[], demands: readonly DemandNode[]) {
  const from: number[] = [];
  const to: number[] = [];
  const cost: number[] = [];
  demands.forEach((d, j) => {
    const near = suppliers
      .map((s, i) => ({ i, km: distanceKm(s, d) }))
      .filter((x) => x.km <= MAX_DISTANCE_KM && (d.maxLeadDays === undefined || leadTimeDays(x.km) <= d.maxLeadDays))
      .sort((a, b) => a.km - b.km || a.i - b.i)
      .slice(0, NEAREST_SUPPLIERS);
    for (const x of near) {
      from.push(x.i);
      to.push(j);
      cost.push(x.km);
    }
  });
  return { from: Int32Array.from(from), to: Int32Array.from(to), cost: Float64Array.from(cost) };
}

export interface MatchRunResult {
  runId: number;
  suppliers: number;
  demands: number;
  need: number;
  covered: number;
  proposals: number;
  /** Reconciliation with the stored proposals. */
  inserted: number;
  updated: number;
  expired: number;
}

/** Recomputes the proposals of one product and kind. Running it twice on the same data changes nothing. */
export async function recomputeMatches(db: Database, productId: number, kind: MatchKind, trigger: string): Promise<MatchRunResult> {
  return db.transaction(async (tx) => {
    // One run per product and kind at a time, across workers. A run that finds another one going
    // waits for it rather than skipping: the other may have read older forecasts than the ones
    // that asked for this run, and nothing else would ask again.
    await tx.execute(sql`select pg_advisory_xact_lock(${0x6d61}, ${productId * 2 + (kind === "UPSTREAM" ? 1 : 0)})`);
    const { suppliers, demands } = kind === "DOWNSTREAM" ? await downstreamNodes(tx, productId) : await upstreamNodes(tx, productId);
    const arcs = buildArcs(suppliers, demands);
    const solution = solveTransport({
      supply: Float64Array.from(suppliers.map((s) => s.available)),
      demand: Float64Array.from(demands.map((d) => d.need)),
      urgency: Float64Array.from(demands.map((d) => d.urgency)),
      arcs,
    });
    const proposals: { fromSiteId: string; toRegionId: number; toSiteId: string | null; requestId: string | null; quantity: number; km: number; urgency: number }[] = [];
    for (let a = 0; a < arcs.from.length; a++) {
      const q = solution.flow[a]!;
      if (q <= MIN_QUANTITY) continue;
      const s = suppliers[arcs.from[a]!]!;
      const d = demands[arcs.to[a]!]!;
      proposals.push({ fromSiteId: s.siteId, toRegionId: d.regionId, toSiteId: d.toSiteId, requestId: d.requestId, quantity: q, km: arcs.cost[a]!, urgency: d.urgency });
    }
    const need = demands.reduce((sum, d) => sum + d.need, 0);
    const covered = proposals.reduce((sum, p) => sum + p.quantity, 0);
    const [run] = await tx.execute<{ id: number }>(
      sql`insert into match_run (kind, product_id, trigger, suppliers, demands, arcs, need, covered, cost, proposals, finished_at)
          values (${kind}, ${productId}, ${trigger}, ${suppliers.length}, ${demands.length}, ${arcs.from.length}, ${need}, ${covered},
                  ${solution.cost}, ${proposals.length}, clock_timestamp())
          returning id::int`,
      "objects",
    );
    const runId = run!.id;

    // Reconcile: a proposal for the same supplier, destination and request keeps its row (and id,
    // which people may already be looking at); changed quantities are updated; proposals that
    // are no longer made expire; new ones are inserted.
    const key = (p: { fromSiteId: string; toRegionId: number; toSiteId: string | null; requestId: string | null }) =>
      `${p.fromSiteId}|${p.toRegionId}|${p.toSiteId ?? ""}|${p.requestId ?? ""}`;
    const stored = await tx.execute<{ id: string; from_site_id: string; to_region_id: number; to_site_id: string | null; request_id: string | null; quantity: number }>(
      sql`select id, from_site_id, to_region_id, to_site_id, request_id, quantity from match
          where product_id = ${productId} and kind = ${kind} and status = 'PROPOSED' for update`,
      "objects",
    );
    const storedByKey = new Map(stored.map((m) => [key({ fromSiteId: m.from_site_id, toRegionId: m.to_region_id, toSiteId: m.to_site_id, requestId: m.request_id }), m]));
    let inserted = 0;
    let updated = 0;
    const keep = new Set<string>();
    for (const p of proposals) {
      const existing = storedByKey.get(key(p));
      if (existing) {
        keep.add(existing.id);
        if (Math.abs(existing.quantity - p.quantity) > MIN_QUANTITY) {
          await tx.execute(sql`update match set quantity = ${p.quantity}, run_id = ${runId}, urgency = ${p.urgency}, cost = ${p.km * p.quantity} where id = ${existing.id}`);
          updated++;
        }
        continue;
      }
      await tx.execute(
        sql`insert into match (run_id, kind, product_id, from_site_id, to_region_id, to_site_id, request_id, quantity, distance_km, cost, urgency)
            values (${runId}, ${kind}, ${productId}, ${p.fromSiteId}, ${p.toRegionId}, ${p.toSiteId}, ${p.requestId}, ${p.quantity}, ${p.km}, ${p.km * p.quantity}, ${p.urgency})`,
      );
      inserted++;
    }
    const gone = stored.filter((m) => !keep.has(m.id)).map((m) => m.id);
    if (gone.length) {
      await tx.execute(
        sql`update match set status = 'EXPIRED', reason = 'superseded: the latest matching run no longer proposes it', closed_at = now()
            where id = any(${sql.param(gone)}::uuid[])`,
      );
    }
    await requestJobs(tx, [evaluateMatchesJob(productId, kind, `run-${runId}`)]);
    return { runId, suppliers: suppliers.length, demands: demands.length, need, covered, proposals: proposals.length, inserted, updated, expired: gone.length };
  });
}

async function downstreamNodes(tx: Database, productId: number): Promise<{ suppliers: SupplierNode[]; demands: DemandNode[] }> {
  const demands: DemandNode[] = [];
  // Requests: their quantity minus what accepted (or fulfilled) matches already bring.
  const requests = await tx.execute<{ id: string; site_id: string; region_id: number; path: string; lat: number | null; lon: number | null; open: number; days_left: number; risk: string | null }>(
    sql`select q.id, q.site_id, s.region_id, r.path, r.latitude as lat, r.longitude as lon,
               q.quantity - coalesce((select sum(m.quantity) from match m where m.request_id = q.id and m.status in ('ACCEPTED', 'FULFILLED')), 0) as open,
               (q.needed_by - current_date) as days_left, l.risk_level as risk
        from procurement_request q
        join site s on s.id = q.site_id join region r on r.id = s.region_id
        left join forecast_latest l on l.region_id = s.region_id and l.product_id = q.product_id
        where q.product_id = ${productId} and q.status = 'OPEN'`,
    "objects",
  );
  for (const q of requests) {
    if (q.open > MIN_QUANTITY) {
      demands.push({
        regionId: q.region_id, path: q.path, lat: q.lat, lon: q.lon, need: q.open, urgency: requestUrgency(q.days_left, q.risk), requestId: q.id, toSiteId: q.site_id,
        // A request already late still takes the nearest help (a day's lead time at least).
        maxLeadDays: Math.max(1, q.days_left),
      });
    }
  }
  // Regions: the deepest forecasts with a shortage, less their open requests and accepted incoming matches.
  const regions = await tx.execute<{ region_id: number; path: string; lat: number | null; lon: number | null; need: number; risk: string }>(
    sql`select l.region_id, r.path, r.latitude as lat, r.longitude as lon, l.risk_level as risk,
               f.shortage_quantity
                 - coalesce((select sum(q.quantity) from procurement_request q join site s on s.id = q.site_id
                             where s.region_id = l.region_id and q.product_id = l.product_id and q.status = 'OPEN'), 0)
                 -- Committed to it: accepted, or delivered after the forecast's data was cut off (its
                 -- stock does not show the delivery yet).
                 - coalesce((select sum(m.quantity) from match m where m.to_region_id = l.region_id and m.product_id = l.product_id
                             and m.request_id is null
                             and (m.status = 'ACCEPTED' or (m.status = 'FULFILLED' and m.closed_at > f.input_cutoff))), 0) as need
        from forecast_latest l join forecast f on f.id = l.forecast_id join region r on r.id = l.region_id
        where l.product_id = ${productId} and f.shortage_quantity > 0
          and not exists (select 1 from forecast_latest c join region cr on cr.id = c.region_id
                          where cr.parent_id = l.region_id and c.product_id = l.product_id)`,
    "objects",
  );
  for (const r of regions) {
    if (r.need > MIN_QUANTITY) demands.push({ regionId: r.region_id, path: r.path, lat: r.lat, lon: r.lon, need: r.need, urgency: RISK_URGENCY[r.risk] ?? 1, requestId: null, toSiteId: null });
  }
  const suppliers = await supplierNodes(tx, productId, ["MANUFACTURER", "DISTRIBUTOR", "RESERVE"], true);
  return { suppliers, demands };
}

/** A manufacturer site's use of a raw material: its daily need at recent output, what it holds, what it lacks for LEAD_TIME_DAYS. */
export interface UpstreamNeed {
  siteId: string;
  regionId: number;
  path: string;
  lat: number | null;
  lon: number | null;
  /** Input per day at the site's recent output (bill of materials x average production). */
  daily: number;
  onHand: number;
  /** Committed to it by accepted upstream matches, not yet delivered. */
  committed: number;
  /** Input missing for LEAD_TIME_DAYS of production: daily x days - on hand - committed. */
  need: number;
  /** How long its stock of the input lasts at that pace. */
  daysLeft: number;
}

/** Every manufacturer site that makes something of `inputId`, with its need of it (which may be <= 0). */
export async function upstreamNeeds(tx: Database, inputId: number): Promise<UpstreamNeed[]> {
  // Manufacturers of products made of this input, with their recent output and input on hand.
  const rows = await tx.execute<{ site_id: string; region_id: number; path: string; lat: number | null; lon: number | null; daily: number; on_hand: number; committed: number }>(
    sql`with lines as (
          select s.id as site_id, s.region_id, b.quantity as per_unit,
                 (select avg(r.produced) from report r where r.site_id = s.id and r.product_id = b.product_id
                    and r.produced is not null and r.date > current_date - ${STOCK_MAX_AGE}::int) as level
          from bom_line b join site s on true join organization o on o.id = s.organization_id and o.kind = 'MANUFACTURER'
          where b.input_product_id = ${inputId}
        ), needs as (
          select site_id, region_id, sum(level * per_unit) as daily from lines where level > 0 group by site_id, region_id
        )
        select n.site_id, n.region_id, r.path, r.latitude as lat, r.longitude as lon, n.daily,
               coalesce(h.on_hand, 0) as on_hand,
               coalesce((select sum(m.quantity) from match m where m.to_site_id = n.site_id and m.product_id = ${inputId}
                         and m.kind = 'UPSTREAM' and m.status = 'ACCEPTED'), 0) as committed
        from needs n join region r on r.id = n.region_id
        left join inventory_current h on h.site_id = n.site_id and h.product_id = ${inputId}
          and h.on_hand_date > current_date - ${STOCK_MAX_AGE}::int`,
    "objects",
  );
  return rows.map((r) => {
    const daily = Number(r.daily);
    const onHand = Number(r.on_hand);
    const committed = Number(r.committed);
    return {
      siteId: r.site_id, regionId: r.region_id, path: r.path, lat: r.lat, lon: r.lon, daily, onHand, committed,
      need: daily * LEAD_TIME_DAYS - onHand - committed,
      daysLeft: onHand / daily,
    };
  });
}

async function upstreamNodes(tx: Database, inputId: number): Promise<{ suppliers: SupplierNode[]; demands: DemandNode[] }> {
  const demands: DemandNode[] = (await upstreamNeeds(tx, inputId))
    .filter((r) => r.need > MIN_QUANTITY)
    .map((r) => ({ regionId: r.regionId, path: r.path, lat: r.lat, lon: r.lon, need: r.need, urgency: requestUrgency(r.daysLeft, null), requestId: null, toSiteId: r.siteId }));
  const suppliers = await supplierNodes(tx, inputId, ["RAW_MATERIAL_SUPPLIER", "DISTRIBUTOR"], false);
  return { suppliers, demands };
}

/** Sites that can give: latest stock (and spare capacity) less what accepted matches committed. */
async function supplierNodes(tx: Database, productId: number, kinds: string[], withCapacity: boolean): Promise<SupplierNode[]> {
  const rows = await tx.execute<{ site_id: string; region_id: number; path: string; lat: number | null; lon: number | null; available: number }>(
    sql`select s.id as site_id, s.region_id, r.path, r.latitude as lat, r.longitude as lon,
               coalesce(h.on_hand, 0)
               + ${withCapacity ? sql`coalesce(greatest(0, h.capacity - coalesce(h.produced, 0)), 0) * ${LEAD_TIME_DAYS}::int` : sql`0`}
               - coalesce((select sum(m.quantity) from match m where m.from_site_id = s.id and m.product_id = ${productId}
                           and (m.status = 'ACCEPTED' or (m.status = 'FULFILLED' and m.closed_at > h.reported_at))), 0)
               as available
        from site s join organization o on o.id = s.organization_id and o.kind::text = any(${sql.param(kinds)}::text[])
        join region r on r.id = s.region_id
        join lateral (
          select
            (select on_hand from inventory_current x where x.site_id = s.id and x.product_id = ${productId}
               and x.on_hand_date > current_date - ${STOCK_MAX_AGE}::int) as on_hand,
            -- A shipment delivered after the site's last report is not in its stock figure yet.
            (select max(submitted_at) from report x where x.site_id = s.id and x.product_id = ${productId}) as reported_at,
            (select capacity_per_day from report x where x.site_id = s.id and x.product_id = ${productId} and x.capacity_per_day is not null
               and x.date > current_date - ${STOCK_MAX_AGE}::int order by x.date desc limit 1) as capacity,
            (select avg(produced) from report x where x.site_id = s.id and x.product_id = ${productId} and x.produced is not null
               and x.date > current_date - 7) as produced
        ) h on true`,
    "objects",
  );
  return rows.filter((r) => r.available > MIN_QUANTITY).map((r) => ({ siteId: r.site_id, regionId: r.region_id, path: r.path, lat: r.lat, lon: r.lon, available: r.available }));
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

const NEXT: Record<string, string[]> = {
  PROPOSED: ["ACCEPTED", "DECLINED"],
  ACCEPTED: ["FULFILLED", "DECLINED"],
};

/**
 * Who may answer a match: an admin; the receiving side (the procurement organization of its
 * request, the manufacturer short of an input, a planner whose jurisdiction holds the region);
 * and the supplying organization.
 */
async function mayRespond(tx: Database, viewer: Viewer, m: { from_org: string; to_org: string | null; region_path: string }): Promise<boolean> {
  if (viewer.role === "ADMIN") return true;
  if (viewer.role === "PLANNER") return !!viewer.jurisdiction && m.region_path.startsWith(viewer.jurisdiction.path);
  return viewer.organizationId !== null && (viewer.organizationId === m.from_org || viewer.organizationId === m.to_org);
}

/** PROPOSED -> ACCEPTED or DECLINED; ACCEPTED -> FULFILLED (accept again) or DECLINED (cancelled). */
export async function respondToMatch(db: Database, actor: Actor, input: { id: string; accept: boolean; reason?: string | null }) {
  const viewer = actor.viewer;
  if (!viewer) throw forbidden("answering a match needs a signed-in user");
  const reason = input.reason?.trim() || null;
  if (reason && reason.length > 500) throw new DomainError("BAD_INPUT", "reason is too long: at most 500 characters");
  return db.transaction(async (tx) => {
    const [m] = await tx.execute<{ id: string; status: string; from_org: string; to_org: string | null; region_path: string; quantity: number }>(
      sql`select m.id, m.status, fs.organization_id as from_org,
                 coalesce(q.organization_id, ts.organization_id) as to_org, r.path as region_path, m.quantity
          from match m join site fs on fs.id = m.from_site_id join region r on r.id = m.to_region_id
          left join procurement_request q on q.id = m.request_id left join site ts on ts.id = m.to_site_id
          where m.id = ${input.id} for update of m`,
      "objects",
    );
    if (!m || !(await mayRespond(tx, viewer, m))) throw notFound(`match ${input.id}: not found, or not visible to you`);
    const next = input.accept ? (m.status === "PROPOSED" ? "ACCEPTED" : "FULFILLED") : "DECLINED";
    if (!(NEXT[m.status] ?? []).includes(next)) {
      throw new DomainError("CONFLICT", `match is ${m.status}: it can no longer be ${input.accept ? "accepted" : "declined"}${m.status === "EXPIRED" ? "; look at the newest proposals instead" : ""}`);
    }
    if (next === "DECLINED" && !reason) throw new DomainError("BAD_INPUT", "say why the match is declined (reason), e.g. no supply, no need, not contactable");
    const [row] = await tx.execute<Record<string, unknown>>(
      sql`update match set status = ${next}::match_status, reason = coalesce(${reason}, reason), responded_at = now(), responded_by = ${viewer.userId},
                 closed_at = case when ${next} in ('DECLINED', 'FULFILLED') then now() else closed_at end
          where id = ${input.id} returning id, status, reason`,
      "objects",
    );
    await writeAudit(tx, actor, { action: `match.${next.toLowerCase()}`, entityType: "match", entityId: input.id, before: { status: m.status }, after: row });
    // The product's proposals change with what is committed: recompute them.
    await tx.execute(
      sql`insert into outbox (topic, payload) select 'forecasts.updated', jsonb_build_object('productIds', jsonb_build_array(product_id)) from match where id = ${input.id}`,
    );
    return row!;
  });
}

/** Proposals older than `days` and accepted matches not fulfilled within `acceptedDays` expire. */
export async function expireMatches(db: Database, days = 7, acceptedDays = 30): Promise<number> {
  return db.transaction(async (tx) => {
    const gone = await tx.execute<{ product_id: number; kind: MatchKind }>(
      sql`update match set status = 'EXPIRED', closed_at = now(),
                 reason = case when status = 'PROPOSED' then 'not answered in time' else 'accepted but not fulfilled in time' end
          where (status = 'PROPOSED' and created_at < now() - make_interval(days => ${days}))
             or (status = 'ACCEPTED' and responded_at < now() - make_interval(days => ${acceptedDays}))
          returning product_id, kind`,
      "objects",
    );
    // Their alerts resolve with them.
    const pairs = [...new Set(gone.map((g) => `${g.product_id}|${g.kind}`))].map((k) => k.split("|") as [string, MatchKind]);
    await requestJobs(tx, pairs.map(([productId, kind]) => evaluateMatchesJob(Number(productId), kind, `expire-${Date.now()}`)));
    return gone.length;
  });
}

/** The job that brings SUPPLY_MATCH (and, upstream, UPSTREAM_INPUT_SHORTAGE) alerts in line with the matches. */
export function evaluateMatchesJob(productId: number, kind: MatchKind, cause: string) {
  return { name: "alerts.evaluateMatches", data: { productId, kind }, jobId: `alerts-matches-${kind.toLowerCase()}-${productId}-${cause}` };
}

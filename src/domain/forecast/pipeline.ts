// The forecast job's service: from reports in Postgres to stored forecasts, for every level of
// the region tree (SPEC "Shortage forecasts").
//
// Work arrives as dirty (region, product) pairs (forecast_dirty), written by the outbox relay for
// every region a report touches and all regions above it, and by the daily scheduler for every
// pair with data. A run takes one product at a time under a per-product advisory lock, so two
// workers never compute the same product at once, and handles that product's dirty regions from
// the deepest up. A product with many dirty pairs (the daily recompute) is instead taken by
// top-level subtree (provinces, a few per transaction), each subtree under its own lock, so every
// worker can share it; the regions above the subtrees (the country) come last, from the subtrees'
// stored forecasts, once none of the subtrees they wait for is still dirty:
//
//   node(R) = leaf(R's own sites) + sum of node(C) over R's children C
//
// Leaves are forecast from their sites' daily totals (forecastLeaf); parents only add up their
// children's demand, supply and inflow, so the children's numbers always add up to the parent's.
// A child that is not dirty is read back from its latest stored forecast. Only then is the
// region's own demand scenario applied and the stock path projected.
import { sql } from "drizzle-orm";
import type { Database } from "../../db/index.js";
import { forecastTable, outboxTable } from "../../db/schema.js";
import { dateOfDay, dayNumber } from "../reports/validate.js";
import { addLimits, computeLeaves, HISTORY_DAYS, leafInputs, SITE_ROW_COLUMNS, type InputHolding, type LeafInput, type LeafJob, type NodeOutlook, type SiteRow } from "./leaf-inputs.js";
import type { LeafThreads } from "./leaf-threads.js";
import { project, type RiskThresholds } from "./projection.js";

export const HORIZON = 28;
/** A product's input holding counts only when reported this recently (days before the origin). */
const INPUT_STOCK_MAX_AGE = 14;

interface DirtyRow {
  region_id: number;
  path: string;
  parent_id: number | null;
  last_dirty_at: string;
}

// ---------------------------------------------------------------------------------------------
// Marking work

/**
 * Marks (region, product) pairs and every region above them as needing a new forecast. A pair
 * already dirty is marked again (a newer `last_dirty_at`, so a run computing it now computes it
 * once more: it may have read the old data), unless `keepDirty`: the daily mark brings no new data.
 */
export async function markDirty(db: Database, pairs: readonly { regionId: number; productId: number }[], { keepDirty = false } = {}): Promise<number> {
  if (pairs.length === 0) return 0;
  const rows = await db.execute<{ n: number }>(
    sql`with pairs as (
          select distinct region_id, product_id from unnest(${sql.param(pairs.map((p) => p.regionId))}::int[], ${sql.param(pairs.map((p) => p.productId))}::int[]) as p(region_id, product_id)
        ), up as (
          -- The path lists the region and its ancestors: /1/7/42/.
          select distinct a.id::int as region_id, pairs.product_id
          from pairs join region r on r.id = pairs.region_id
          cross join lateral unnest(string_to_array(trim(both '/' from r.path), '/')) as a(id)
        ), marked as (
          insert into forecast_dirty (region_id, product_id) select region_id, product_id from up
          on conflict (product_id, region_id) do ${keepDirty ? sql`nothing` : sql`update set last_dirty_at = now()`}
          returning 1
        )
        select count(*)::int as n from marked`,
    "objects",
  );
  return rows[0]?.n ?? 0;
}

/** Marks the pairs of the given reports (their site's region and above). */
export async function markReportsDirty(db: Database, reportIds: readonly number[]): Promise<number> {
  if (reportIds.length === 0) return 0;
  // A raw material's stock bounds the supply of what is made from it, so those pairs change too.
  const pairs = await db.execute<{ regionId: number; productId: number }>(
    sql`with touched as (
          select distinct s.region_id, r.product_id
          from report r join site s on s.id = r.site_id where r.id = any(${sql.param(reportIds)}::bigint[])
        )
        select region_id as "regionId", product_id as "productId" from touched
        union
        select t.region_id, b.product_id from touched t join bom_line b on b.input_product_id = t.product_id`,
    "objects",
  );
  return markDirty(db, pairs);
}

/**
 * The daily full recompute: every pair with reports in the history window, or a forecast already.
 * With `freshSince`, pairs forecast since then are left out (with regions above a pair that is
 * not, which must add it up again): the daily job passes the time it was due, so a second
 * attempt (its first worker died) does not redo what the first one finished.
 */
export async function markAllDirty(db: Database, { freshSince }: { freshSince?: Date } = {}): Promise<number> {
  const pairs = await db.execute<{ regionId: number; productId: number }>(
    sql`with base as (
          select distinct s.region_id, r.product_id
          from report r join site s on s.id = r.site_id
          where r.date > (select max(date) from report) - ${HISTORY_DAYS}::int
          union
          select region_id, product_id from forecast_latest
          union
          select region_id, product_id from demand_scenario where superseded_at is null
        )
        select b.region_id as "regionId", b.product_id as "productId" from base b
        ${freshSince ? sql`left join forecast_latest l on l.region_id = b.region_id and l.product_id = b.product_id
        where l.computed_at is null or l.computed_at < ${freshSince.toISOString()}::timestamptz` : sql``}`,
    "objects",
  );
  return markDirty(db, pairs, { keepDirty: true });
}

// ---------------------------------------------------------------------------------------------
// Recomputing

export interface RecomputeOptions {
  trigger: string;
  /** Stop after this many products (the job re-enqueues itself for the rest). */
  maxProducts?: number;
  horizon?: number;
  /** Called after a product's dirty rows were read, inside its transaction: a seam for tests. */
  afterDirtyRead?: (productId: number) => Promise<void>;
  /**
   * A product with more dirty pairs than this is computed by top-level subtree, in transactions
   * of about this many pairs, so that several workers share it (default {@link DEFAULT_CHUNK_PAIRS}).
   */
  chunkPairs?: number;
  /** Asked between transactions: true ends the run there, leaving the rest dirty for another worker (a worker shutting down). */
  shouldStop?: () => boolean;
  /** Threads for the leaves' forecasts; without them, they are computed on the event loop. */
  threads?: LeafThreads;
  /**
   * Products computed at once, each in its own transaction (default {@link DEFAULT_CONCURRENCY}):
   * while one product's series are forecast in this process, another's reports are read or its
   * forecasts written by PostgreSQL on another core.
   */
  concurrency?: number;
}

/** Two: one product in the kernel (Node.js, one core) while PostgreSQL reads or writes another. */
export const DEFAULT_CONCURRENCY = 2;

/** Above this many dirty pairs, a product is shared out by subtree (the daily recompute of a national tree). */
export const DEFAULT_CHUNK_PAIRS = 1000;

export interface RecomputeResult {
  products: number;
  series: number;
  /** Products left (partly) dirty: held by another worker, beyond maxProducts, or the worker is stopping. */
  remaining: number;
  /** Where the time went (ms): reading reports and stored forecasts, forecasting, writing. */
  timings: PhaseTimings;
}

export interface PhaseTimings {
  read: number;
  kernel: number;
  write: number;
}

/**
 * Recomputes dirty pairs, one product (or, for a product with many, one subtree of it) per
 * transaction. Running it twice, or on several workers at once, computes each pair once.
 */
export async function recomputeDirty(db: Database, options: RecomputeOptions): Promise<RecomputeResult> {
  const products = await db.execute<{ product_id: number; n: number }>(
    sql`select product_id, count(*)::int as n from forecast_dirty group by product_id order by min(first_dirty_at)`,
    "objects",
  );
  let done = 0;
  let started = 0;
  let series = 0;
  let skipped = 0;
  const timings: PhaseTimings = { read: 0, kernel: 0, write: 0 };
  const chunkPairs = options.chunkPairs ?? DEFAULT_CHUNK_PAIRS;
  let next = 0;
  const lane = async () => {
    while (next < products.length) {
      const { product_id, n } = products[next++]!;
      if ((options.maxProducts !== undefined && started >= options.maxProducts) || options.shouldStop?.()) {
        skipped++;
        continue;
      }
      started++;
      const r = n > chunkPairs ? await recomputeInChunks(db, product_id, chunkPairs, options, timings) : await recomputeScope(db, product_id, WHOLE, options, timings);
      series += r.series;
      if (r.complete) done++;
      else skipped++;
    }
  };
  // Every lane runs to its end before a failure is passed on: none is left writing behind the caller's back.
  const lanes = await Promise.allSettled(Array.from({ length: Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY) }, lane));
  const failed = lanes.find((l): l is PromiseRejectedResult => l.status === "rejected");
  if (failed) throw failed.reason;
  return { products: done, series, remaining: skipped, timings };
}

const FORECAST_LOCK = 0x5f0c; // namespace of the per-product advisory locks
const FORECAST_SUBTREE_LOCK = 0x5f0d; // namespace of the per-(product, subtree) advisory locks

interface Subtree {
  id: number;
  path: string;
}

/**
 * What one transaction computes of a product's dirty pairs: all of them; the subtrees under some
 * regions whose parent is a root (provinces); or the roots (the country), from their children.
 */
type Scope = { kind: "whole" } | { kind: "subtrees"; roots: Subtree[] } | { kind: "top" };
const WHOLE: Scope = { kind: "whole" };

interface ScopeResult {
  series: number;
  /** False when part of the work was left to another worker (locked, waiting, or stopping). */
  complete: boolean;
}

/**
 * A product shared out by subtree: its dirty subtrees (provinces) packed into transactions of about
 * `chunkPairs` pairs, largest first so that workers sharing the product finish together; each
 * subtree under its own lock, so a subtree another worker holds is skipped whatever the packing.
 * Then the roots, which whoever finishes the last subtree computes.
 */
async function recomputeInChunks(db: Database, productId: number, chunkPairs: number, options: RecomputeOptions, timings: PhaseTimings): Promise<ScopeResult> {
  // A path is /root/child/.../: its third part is the subtree's root (a province, for China's tree).
  const subtrees = await db.execute<Subtree & { n: number }>(
    sql`select c.id, c.path, count(*)::int as n
        from forecast_dirty d join region r on r.id = d.region_id
        join region c on c.id = split_part(r.path, '/', 3)::int
        where d.product_id = ${productId} and r.parent_id is not null
        group by c.id, c.path order by n desc, c.id`,
    "objects",
  );
  // Largest first into the lightest bin: bins of nearly equal size.
  const bins = Array.from({ length: Math.max(1, Math.ceil(subtrees.reduce((n, t) => n + t.n, 0) / chunkPairs)) }, () => ({ n: 0, roots: [] as Subtree[] }));
  for (const t of subtrees) {
    const bin = bins.reduce((a, b) => (b.n < a.n ? b : a));
    bin.n += t.n;
    bin.roots.push({ id: t.id, path: t.path });
  }
  let series = 0;
  let complete = true;
  const scopes: Scope[] = [...bins.filter((b) => b.roots.length).sort((a, b) => b.n - a.n).map((b): Scope => ({ kind: "subtrees", roots: b.roots })), { kind: "top" }];
  for (const scope of scopes) {
    if (options.shouldStop?.()) return { series, complete: false };
    const r = await recomputeScope(db, productId, scope, options, timings);
    series += r.series;
    complete &&= r.complete;
  }
  return { series, complete };
}

/** Computes a scope of a product's dirty pairs in one transaction; incomplete when another worker holds it. */
async function recomputeScope(db: Database, productId: number, scope: Scope, options: RecomputeOptions, timings: PhaseTimings): Promise<ScopeResult> {
  const horizon = options.horizon ?? HORIZON;
  const busy = { series: 0, complete: false };
  return db.transaction(async (tx) => {
    // Whole-product runs exclude each other and every subtree run; subtree runs share the product
    // and exclude each other per subtree (the roots count as one).
    const [lock] = await tx.execute<{ ok: boolean }>(
      scope.kind === "whole"
        ? sql`select pg_try_advisory_xact_lock(${FORECAST_LOCK}, ${productId}) as ok`
        : sql`select pg_try_advisory_xact_lock_shared(${FORECAST_LOCK}, ${productId}) as ok`,
      "objects",
    );
    if (!lock?.ok) return busy;
    let skipped = false;
    if (scope.kind !== "whole") {
      const keys = scope.kind === "top" ? ["top"] : scope.roots.map((r) => String(r.id));
      const held = await tx.execute<{ key: string }>(
        sql`select key from unnest(${sql.param(keys)}::text[]) as k(key)
            where pg_try_advisory_xact_lock(${FORECAST_SUBTREE_LOCK}, hashtext(${productId}::text || ':' || key))`,
        "objects",
      );
      if (held.length === 0) return busy;
      if (scope.kind === "subtrees" && held.length < keys.length) {
        // Another worker holds some of these subtrees: this transaction takes the others.
        const mine = new Set(held.map((h) => h.key));
        scope = { kind: "subtrees", roots: scope.roots.filter((r) => mine.has(String(r.id))) };
        skipped = true;
      }
    }

    if (scope.kind === "top") {
      // The roots add up their children's stored forecasts, so they wait for the subtrees that
      // were dirty when they were marked; subtrees marked since mark the roots again when done.
      const [waiting] = await tx.execute<{ n: number }>(
        sql`select count(*)::int as n from forecast_dirty d join region r on r.id = d.region_id
            where d.product_id = ${productId} and r.parent_id is not null
              and d.first_dirty_at <= (select max(t.first_dirty_at) from forecast_dirty t join region tr on tr.id = t.region_id
                                        where t.product_id = ${productId} and tr.parent_id is null)`,
        "objects",
      );
      if (waiting!.n > 0) return busy;
    }
    const dirty = await tx.execute<DirtyRow>(
      sql`select d.region_id, r.path, r.parent_id, d.last_dirty_at::text
          from forecast_dirty d join region r on r.id = d.region_id
          where d.product_id = ${productId}
            ${scope.kind === "subtrees" ? sql`and r.path ^@ any(${sql.param(scope.roots.map((t) => t.path))}::text[])` : scope.kind === "top" ? sql`and r.parent_id is null` : sql``}`,
      "objects",
    );
    if (dirty.length === 0) return { series: 0, complete: !skipped };
    await options.afterDirtyRead?.(productId);
    const [meta] = await tx.execute<{ origin: string | null; cutoff: string; red: number; orange: number; yellow: number; blue: number }>(
      sql`select (select max(date)::text from report where product_id = ${productId} and date <= current_date + 1) as origin,
                 now()::text as cutoff,
                 risk_red_days as red, risk_orange_days as orange, risk_yellow_days as yellow, risk_blue_days as blue
          from product where id = ${productId}`,
      "objects",
    );
    if (!meta) return { series: 0, complete: !skipped }; // the product is gone; its dirty rows went with it
    let written = 0;
    if (meta.origin) {
      const run = await tx.execute<{ id: number }>(
        // Started once its locks are held (not when its transaction began): runs of one pair never overlap.
        sql`insert into forecast_run (trigger, product_id, origin_date, input_cutoff, started_at)
            values (${options.trigger}, ${productId}, ${meta.origin}, ${meta.cutoff}, clock_timestamp()) returning id::int`,
        "objects",
      );
      const runId = run[0]!.id;
      const thresholds: RiskThresholds = { red: meta.red, orange: meta.orange, yellow: meta.yellow, blue: meta.blue };
      written = await computeAndStore(tx, { productId, runId, origin: meta.origin, cutoff: meta.cutoff, horizon, thresholds, dirty, timings, threads: options.threads });
      await tx.execute(sql`update forecast_run set finished_at = clock_timestamp(), series = ${written} where id = ${runId}`);
      if (written && scope.kind === "subtrees") {
        // The subtrees' roots changed, so their parents must add them up again (clock time: never
        // older than a mark a run of the roots may have read already).
        await tx.execute(
          sql`insert into forecast_dirty (region_id, product_id)
              select distinct parent_id, ${productId}::int from region where id = any(${sql.param(scope.roots.map((t) => t.id))}::int[]) and parent_id is not null
              on conflict (product_id, region_id) do update set last_dirty_at = greatest(forecast_dirty.last_dirty_at, clock_timestamp())`,
        );
      }
      // Matching follows the forecasts, through the outbox like every write that leads to a job;
      // a product shared out by subtree asks once, when its roots are done (after every subtree).
      else if (written) await tx.insert(outboxTable).values({ topic: "forecasts.updated", payload: { productIds: [productId] } });
    }
    // Rows marked again while this ran keep a newer last_dirty_at and stay for the next run.
    await tx.execute(
      sql`delete from forecast_dirty d using unnest(${sql.param(dirty.map((d) => d.region_id))}::int[], ${sql.param(dirty.map((d) => d.last_dirty_at))}::timestamptz[]) as x(region_id, seen)
          where d.product_id = ${productId} and d.region_id = x.region_id and d.last_dirty_at <= x.seen`,
    );
    return { series: written, complete: !skipped };
  });
}

interface ComputeContext {
  productId: number;
  runId: number;
  origin: string;
  cutoff: string;
  horizon: number;
  thresholds: RiskThresholds;
  dirty: DirtyRow[];
  timings: PhaseTimings;
  threads?: LeafThreads;
}

async function computeAndStore(tx: Database, c: ComputeContext): Promise<number> {
  const { horizon } = c;
  const originDay = dayNumber(c.origin);
  const regionIds = c.dirty.map((d) => d.region_id);

  let started = performance.now();
  const [leafJob, stored, scenarios, requests] = await Promise.all([
    readLeafJob(tx, c, regionIds),
    tx.execute<StoredForecast>(
      sql`select c.id as region_id, c.parent_id, f.origin_date::text as origin, f.on_hand, f.demand, f.demand_sd, f.supply, f.net_inflow, f.stock, f.sites,
                 (select coalesce(json_agg(json_build_array(b.input_product_id, b.lost_quantity, b.input_short)), '[]') from bottleneck b where b.forecast_id = f.id) as limits
          from region c
          join forecast_latest l on l.region_id = c.id and l.product_id = ${c.productId}
          join forecast f on f.id = l.forecast_id
          -- Only the children recomputed elsewhere: a dirty child's fresh outlook is computed here
          -- (in a full recompute that is every child, and reading their stored arrays was wasted).
          where c.parent_id = any(${sql.param(regionIds)}::int[]) and c.id <> all(${sql.param(regionIds)}::int[])`,
      "objects",
    ),
    tx.execute<{ region_id: number; daily: number; mode: "ADD" | "OVERRIDE"; starts_on: string | null; ends_on: string | null }>(
      sql`select region_id, cases_per_day * usage_per_case_per_day as daily, mode, starts_on::text, ends_on::text
          from demand_scenario
          where product_id = ${c.productId} and superseded_at is null and region_id = any(${sql.param(regionIds)}::int[])`,
      "objects",
    ),
    tx.execute<{ region_id: number; quantity: number; needed_by: string }>(
      sql`select s.region_id, q.quantity, q.needed_by::text
          from procurement_request q join site s on s.id = q.site_id
          where q.product_id = ${c.productId} and q.status = 'OPEN' and s.region_id = any(${sql.param(regionIds)}::int[])`,
      "objects",
    ),
  ]);

  c.timings.read += performance.now() - started;
  started = performance.now();
  const leaves = new Map<number, NodeOutlook>(c.threads ? await c.threads.run(leafJob) : computeLeaves(leafJob));

  // Open requests are need on top of consumption, spread evenly up to their date.
  for (const q of requests) {
    const leaf = (leaves.get(q.region_id) ?? leaves.set(q.region_id, emptyOutlook(horizon)).get(q.region_id))!;
    const days = Math.min(horizon, Math.max(1, dayNumber(q.needed_by) - originDay));
    for (let h = 0; h < days; h++) leaf.demand[h]! += q.quantity / days;
    leaf.params.openRequests = ((leaf.params.openRequests as number | undefined) ?? 0) + 1;
    if (leaf.demandSource === "none") leaf.demandSource = "requests";
  }

  const computed = new Map<number, NodeOutlook>();
  const childrenOf = new Map<number, NodeOutlook[]>();
  const dirtySet = new Set(regionIds);
  for (const s of stored) {
    if (dirtySet.has(s.region_id)) continue; // not read; recomputed below, its fresh outlook used instead
    const list = childrenOf.get(s.parent_id!) ?? [];
    list.push(shiftStored(s, originDay, horizon));
    childrenOf.set(s.parent_id!, list);
  }
  const scenarioOf = new Map(scenarios.map((s) => [s.region_id, s]));

  // Deepest first, so each parent finds its dirty children already done.
  const depth = (p: string) => p.split("/").length;
  const order = [...c.dirty].sort((a, b) => depth(b.path) - depth(a.path));
  const rows: (typeof forecastTable.$inferInsert)[] = [];
  for (const region of order) {
    const parts = [...(childrenOf.get(region.region_id) ?? [])];
    const own = leaves.get(region.region_id);
    if (own) parts.push(own);
    const scenario = scenarioOf.get(region.region_id);
    if (parts.length === 0 && !scenario) continue; // no data here or below
    const node = parts.length ? sumOutlooks(parts, horizon) : emptyOutlook(horizon);
    // What the parent adds up is this region's outlook, scenario included: a planner's scenario
    // for a city is the city's demand as far as its province is concerned.
    if (scenario) applyScenario(node, scenario, originDay);
    computed.set(region.region_id, node);
    if (region.parent_id !== null) {
      const siblings = childrenOf.get(region.parent_id) ?? [];
      siblings.push(node);
      childrenOf.set(region.parent_id, siblings);
    }
    rows.push(toRow(node, region.region_id, c));
  }

  c.timings.kernel += performance.now() - started;
  started = performance.now();
  // Set-based, one statement per 2,000 forecasts: the daily arrays travel as Postgres array
  // literals in text[] parameters (the ORM's per-row insert was most of the write time).
  for (let i = 0; i < rows.length; i += 2000) await insertForecasts(tx, rows.slice(i, i + 2000));
  const limited = [...computed].flatMap(([regionId, node]) => [...node.limits].map(([inputId, l]) => ({ regionId, inputId, ...l })));
  if (limited.length) {
    await tx.execute(sql`
      insert into bottleneck (forecast_id, region_id, product_id, input_product_id, lost_quantity, input_short)
      select f.id, x.region_id, ${c.productId}, x.input_id, x.lost, x.short
      from unnest(${sql.param(limited.map((l) => l.regionId))}::int[], ${sql.param(limited.map((l) => l.inputId))}::int[],
                  ${sql.param(limited.map((l) => l.lost))}::float8[], ${sql.param(limited.map((l) => l.short))}::float8[]) as x(region_id, input_id, lost, short)
      join forecast f on f.run_id = ${c.runId} and f.region_id = x.region_id`);
  }
  if (rows.length) {
    await tx.execute(
      sql`insert into forecast_latest (region_id, product_id, forecast_id, risk_level, days_to_stockout, computed_at)
          select region_id, product_id, id, risk_level, days_to_stockout, computed_at from forecast where run_id = ${c.runId}
          on conflict (region_id, product_id) do update
            set forecast_id = excluded.forecast_id, risk_level = excluded.risk_level,
                days_to_stockout = excluded.days_to_stockout, computed_at = excluded.computed_at`,
    );
  }
  c.timings.write += performance.now() - started;
  return rows.length;
}

interface StoredForecast {
  region_id: number;
  parent_id: number | null;
  origin: string;
  on_hand: number;
  demand: number[];
  demand_sd: number[];
  supply: number[];
  net_inflow: number[];
  stock: number[];
  sites: number;
  /** [input product id, lost quantity, input short] of its bottlenecks. */
  limits: [number, number, number][] | string;
}

/**
 * A child's stored outlook seen from a later origin: k days on, its expected stock is the stock
 * path's day k and its forecasts start k days in (the last day repeated at the end). This is
 * what the parent uses for a child without new reports since its last forecast.
 */
export function shiftStored(
  s: Pick<StoredForecast, "origin" | "on_hand" | "demand" | "demand_sd" | "supply" | "net_inflow" | "stock" | "sites"> & Partial<Pick<StoredForecast, "limits">>,
  originDay: number,
  horizon: number,
): NodeOutlook {
  const k = Math.max(0, originDay - dayNumber(s.origin));
  const shift = (a: number[]) => Array.from({ length: horizon }, (_, h) => Number(a[Math.min(a.length - 1, h + k)] ?? 0));
  return {
    onHand: k === 0 ? Number(s.on_hand) : Number(s.stock[Math.min(s.stock.length, k) - 1] ?? 0),
    demand: shift(s.demand),
    demandSd: shift(s.demand_sd),
    supply: shift(s.supply),
    netInflow: shift(s.net_inflow),
    sites: s.sites,
    method: "stored",
    params: {},
    demandSource: "stored",
    // (The drivers return json as text or parsed, depending on the driver.)
    limits: new Map(
      (typeof s.limits === "string" ? (JSON.parse(s.limits) as [number, number, number][]) : (s.limits ?? [])).map(([id, lost, short]) => [id, { lost, short }]),
    ),
  };
}

export function emptyOutlook(horizon: number): NodeOutlook {
  const zeros = () => new Array<number>(horizon).fill(0);
  return { onHand: 0, demand: zeros(), demandSd: zeros(), supply: zeros(), netInflow: zeros(), sites: 0, method: "none", params: {}, demandSource: "none", limits: new Map() };
}

/** Children are added as independent: means add, variances add. */
export function sumOutlooks(parts: readonly NodeOutlook[], horizon: number): NodeOutlook {
  if (parts.length === 1) {
    const p = parts[0]!;
    return { ...p, demand: [...p.demand], demandSd: [...p.demandSd], supply: [...p.supply], netInflow: [...p.netInflow], params: { ...p.params }, limits: new Map(p.limits) };
  }
  const out = emptyOutlook(horizon);
  const variance = new Array<number>(horizon).fill(0);
  const sources = new Set<string>();
  for (const p of parts) {
    out.onHand += p.onHand;
    out.sites += p.sites;
    addLimits(out.limits, p.limits);
    sources.add(p.demandSource);
    for (let h = 0; h < horizon; h++) {
      out.demand[h]! += p.demand[h]!;
      variance[h]! += p.demandSd[h]! ** 2;
      out.supply[h]! += p.supply[h]!;
      out.netInflow[h]! += p.netInflow[h]!;
    }
  }
  out.demandSd = variance.map(Math.sqrt);
  out.method = "bottom-up";
  out.params = { parts: parts.length };
  sources.delete("none");
  out.demandSource = sources.size === 1 ? [...sources][0]! : sources.size ? "mixed" : "none";
  return out;
}

export function applyScenario(
  node: NodeOutlook,
  s: { daily: number; mode: "ADD" | "OVERRIDE"; starts_on: string | null; ends_on: string | null },
  originDay: number,
): void {
  const from = s.starts_on ? dayNumber(s.starts_on) : -Infinity;
  const to = s.ends_on ? dayNumber(s.ends_on) : Infinity;
  for (let h = 0; h < node.demand.length; h++) {
    const day = originDay + h + 1;
    if (day < from || day > to) continue;
    if (s.mode === "OVERRIDE") {
      node.demand[h] = s.daily;
      // The planner's figure is taken as given: no spread of its own.
      node.demandSd[h] = 0;
    } else node.demand[h]! += s.daily;
  }
  node.params = { ...node.params, scenarioDaily: s.daily, scenarioMode: s.mode };
  node.demandSource = s.mode === "OVERRIDE" ? "scenario" : `${node.demandSource}+scenario`;
}

function toRow(node: NodeOutlook, regionId: number, c: ComputeContext): typeof forecastTable.$inferInsert {
  const p = project({ onHand: node.onHand, demand: node.demand, demandSd: node.demandSd, supply: node.supply, netInflow: node.netInflow, thresholds: c.thresholds });
  const originDay = dayNumber(c.origin);
  return {
    runId: c.runId,
    regionId,
    productId: c.productId,
    originDate: c.origin,
    inputCutoff: new Date(c.cutoff),
    method: node.method,
    params: node.params,
    demandSource: node.demandSource,
    sites: node.sites,
    onHand: node.onHand,
    dailyDemand: p.dailyDemand,
    daysOfSupply: p.daysOfSupply,
    daysToStockout: Number.isFinite(p.daysToStockout) ? p.daysToStockout : null,
    stockoutDate: p.stockoutDay === null ? null : dateOfDay(originDay + p.stockoutDay),
    stockoutProbability7d: p.stockoutProbability7d,
    stockoutProbability14d: p.stockoutProbability14d,
    shortageQuantity: p.shortageQuantity,
    riskLevel: p.riskLevel,
    demand: node.demand,
    demandSd: node.demandSd,
    supply: node.supply,
    netInflow: node.netInflow,
    stock: p.stock,
  };
}

// ---------------------------------------------------------------------------------------------
// Leaves: the dirty regions' own sites

/**
 * The daily totals of each region's own sites (those of `regionIds` that have reports of the
 * product in the window), and their production forecast.
 */
export async function readLeafInputs(
  tx: Database,
  c: { productId: number; origin: string; horizon: number },
  regionIds: readonly number[],
): Promise<Map<number, LeafInput>> {
  const job = await readLeafJob(tx, c, regionIds);
  return leafInputs(job.rows, new Map(job.holdings), c.horizon);
}

/** What the leaves of `regionIds` are forecast from: their sites' reports and raw material. */
async function readLeafJob(tx: Database, c: { productId: number; origin: string; horizon: number }, regionIds: readonly number[]): Promise<LeafJob> {
  const rows = await readSiteRows(tx, c, regionIds);
  const producers = rows.filter((r) => r.produced !== null).map((r) => r.site_id);
  const holdings = await inputHoldings(tx, c, producers);
  return { rows, holdings: [...holdings], horizon: c.horizon };
}

/**
 * Every site's reports of the product in the window, one row per site with each figure's values
 * as one comma-separated string (a column nobody reported comes back null). A full recompute
 * reads 10 million reports: one JavaScript object per report, or even per site and report, cost
 * more than the forecasts themselves, and PostgreSQL formats a plain array faster than a row of
 * strings. The aggregate's order is not guaranteed, so the days come along and put it right.
 */
async function readSiteRows(tx: Database, c: { productId: number; origin: string }, regionIds: readonly number[]): Promise<SiteRow[]> {
  return tx.execute<SiteRow>(
    sql`select s.id as site_id, s.region_id, x.day, ${sql.join(
      SITE_ROW_COLUMNS.map((col) => sql.raw(`x.${col}`)),
      sql`, `,
    )}
        from site s
        -- Per site, not one GROUP BY over all of them: the planner cannot tell how many sites the
        -- array holds, and a hash aggregate sized for a hundred spilled a product's 3,750 to disk
        -- (twice the CPU). Here each site's reports stream from the index into its own aggregate.
        cross join lateral (
          select count(*) as n, array_to_string(array_agg(r.date - ${c.origin}::date), ',') as day,
                 ${sql.join(
                   SITE_ROW_COLUMNS.map((col) => sql.raw(`case when count(r.${col}) > 0 then array_to_string(array_agg(r.${col}), ',', '') end as ${col}`)),
                   sql`, `,
                 )}
          from report r
          where r.site_id = s.id and r.product_id = ${c.productId} and r.date > ${c.origin}::date - ${HISTORY_DAYS}::int and r.date <= ${c.origin}::date
        ) x
        where s.region_id = any(${sql.param([...regionIds])}::int[]) and x.n > 0
        -- Sites are added up in this order: fixed, so the same reports give the same totals to the last bit.
        order by s.id`,
    "objects",
  );
}

/**
 * Units of the product each producing site can still make from the inputs it holds: the least,
 * over the bill of materials, of input on hand / input per unit. An input the site has never
 * reported holding does not limit it (we do not know), one reported at 0 does.
 */
async function inputHoldings(tx: Database, c: { productId: number; origin: string }, siteIds: string[]): Promise<Map<string, InputHolding[]>> {
  if (siteIds.length === 0) return new Map();
  const rows = await tx.execute<{ site_id: string; input_id: number; per_unit: number; on_hand: number }>(
    sql`select s.site_id, b.input_product_id as input_id, b.quantity as per_unit, latest.on_hand
        from unnest(${sql.param(siteIds)}::uuid[]) as s(site_id)
        cross join bom_line b
        cross join lateral (
          select r.on_hand from report r
          where r.site_id = s.site_id and r.product_id = b.input_product_id and r.on_hand is not null
            and r.date <= ${c.origin}::date and r.date > ${c.origin}::date - ${INPUT_STOCK_MAX_AGE}::int
          order by r.date desc limit 1
        ) latest
        where b.product_id = ${c.productId}`,
    "objects",
  );
  const out = new Map<string, InputHolding[]>();
  for (const r of rows) {
    const list = out.get(r.site_id) ?? [];
    list.push({ inputId: r.input_id, perUnit: Number(r.per_unit), onHand: Number(r.on_hand) });
    out.set(r.site_id, list);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Accuracy of past runs

/** Days after the origin over which a stored forecast is scored. */
export const EVALUATION_DAYS = 14;

/**
 * Scores forecasts whose first EVALUATION_DAYS days have passed: the mean absolute error of the
 * stock path against the on-hand stock that the latest run at each later origin found (the
 * actual aggregated stock of that day), and the same for the naive forecast (the origin's stock
 * held flat). Each forecast is scored once; `limit` bounds one call's work.
 */
export async function evaluateForecasts(db: Database, limit = 20_000): Promise<number> {
  const rows = await db.execute<{ n: number }>(
    sql`with due as (
          select f.id, f.region_id, f.product_id, f.origin_date, f.on_hand, f.stock
          from forecast f
          where f.evaluated_at is null
            and f.origin_date + ${EVALUATION_DAYS}::int <= (
              select max(l.origin_date) from forecast l where l.region_id = f.region_id and l.product_id = f.product_id)
          order by f.id
          limit ${limit}
          -- Two runs at once (a stalled job retried) score different rows instead of the same twice.
          for update of f skip locked
        ), actual as (
          select distinct on (a.region_id, a.product_id, a.origin_date) a.region_id, a.product_id, a.origin_date, a.on_hand
          from forecast a join (select distinct region_id, product_id from due) p using (region_id, product_id)
          order by a.region_id, a.product_id, a.origin_date, a.id desc
        ), errors as (
          select d.id, count(*)::int as n, avg(abs(s.v - a.on_hand)) as mae, avg(abs(d.on_hand - a.on_hand)) as naive
          from due d
          cross join lateral unnest(d.stock[1:${EVALUATION_DAYS}]) with ordinality as s(v, h)
          join actual a on a.region_id = d.region_id and a.product_id = d.product_id and a.origin_date = d.origin_date + s.h::int
          group by d.id
        ), scored as (
          update forecast f set evaluated_at = now(), error_days = coalesce(e.n, 0), error_mae = e.mae, naive_mae = e.naive
          from due d left join errors e on e.id = d.id
          where f.id = d.id
          returning 1
        )
        select count(*)::int as n from scored`,
    "objects",
  );
  return rows[0]?.n ?? 0;
}

type ForecastInsert = typeof forecastTable.$inferInsert;
const ARRAY_COLUMNS = ["demand", "demandSd", "supply", "netInflow", "stock"] as const;

async function insertForecasts(tx: Database, rows: ForecastInsert[]): Promise<void> {
  const col = <K extends keyof ForecastInsert>(k: K) => rows.map((r) => r[k] ?? null);
  const literal = (values: readonly number[]) => `{${values.join(",")}}`;
  const first = rows[0]!;
  await tx.execute(sql`
    insert into forecast (run_id, region_id, product_id, origin_date, input_cutoff, method, params, demand_source, sites,
      on_hand, daily_demand, days_of_supply, days_to_stockout, stockout_date, stockout_probability_7d, stockout_probability_14d,
      shortage_quantity, risk_level, demand, demand_sd, supply, net_inflow, stock)
    select ${first.runId}, x.region_id, ${first.productId}, ${first.originDate}::date, ${(first.inputCutoff as Date).toISOString()}::timestamptz,
      x.method, x.params::jsonb, x.demand_source, x.sites, x.on_hand, x.daily_demand, x.days_of_supply, x.days_to_stockout, x.stockout_date,
      x.p7, x.p14, x.shortage, x.risk::risk_level, x.a0::float8[], x.a1::float8[], x.a2::float8[], x.a3::float8[], x.a4::float8[]
    from unnest(
      ${sql.param(col("regionId"))}::int[], ${sql.param(col("method"))}::text[], ${sql.param(rows.map((r) => JSON.stringify(r.params)))}::text[],
      ${sql.param(col("demandSource"))}::text[], ${sql.param(col("sites"))}::int[], ${sql.param(col("onHand"))}::float8[],
      ${sql.param(col("dailyDemand"))}::float8[], ${sql.param(col("daysOfSupply"))}::float8[], ${sql.param(col("daysToStockout"))}::float8[],
      ${sql.param(col("stockoutDate"))}::date[], ${sql.param(col("stockoutProbability7d"))}::float8[], ${sql.param(col("stockoutProbability14d"))}::float8[],
      ${sql.param(col("shortageQuantity"))}::float8[], ${sql.param(col("riskLevel"))}::text[],
      ${sql.join(ARRAY_COLUMNS.map((k) => sql`${sql.param(rows.map((r) => literal(r[k] as number[])))}::text[]`), sql`, `)}
    ) as x(region_id, method, params, demand_source, sites, on_hand, daily_demand, days_of_supply, days_to_stockout, stockout_date,
           p7, p14, shortage, risk, a0, a1, a2, a3, a4)`);
}

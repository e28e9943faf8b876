// A leaf region's forecast from its sites' reports: the pure part of the forecast job, run on
// worker threads (leaf-threads.ts) or inline. Nothing here touches the database: the pipeline
// reads each site's reports as text (one comma-separated string per figure), and this module
// turns them into the region's daily totals, its production forecast and its outlook.
import { adjustDailyDemand, stockoutShare } from "./consumption.js";
import { forecastLeaf, type LeafHistory } from "./leaf.js";

/** Days of history a leaf forecast sees. */
export const HISTORY_DAYS = 180;
/** Production is forecast at the average of the last this many days with a production figure. */
const PRODUCTION_WINDOW = 7;

/** What a node contributes to its parent: additive quantities only. */
export interface NodeOutlook {
  onHand: number;
  demand: number[];
  demandSd: number[];
  supply: number[];
  netInflow: number[];
  sites: number;
  method: string;
  params: Record<string, number | string>;
  demandSource: string;
  limits: Map<number, Limit>;
}

/** A site's reports of one product in the history window, column by column. */
export interface SiteSeries {
  siteId: string;
  regionId: number;
  /** Each report's day, relative to the origin (0 is the origin, -1 the day before), ascending. */
  day: Float64Array;
  /** One entry per report, NaN where the report left the figure out; null when no report has it. */
  onHand: Float64Array | null;
  consumed: Float64Array | null;
  produced: Float64Array | null;
  received: Float64Array | null;
  shipped: Float64Array | null;
  stockoutHours: Float64Array | null;
  capacityPerDay: Float64Array | null;
}

const SERIES_COLUMNS = [
  ["onHand", "on_hand"],
  ["consumed", "consumed"],
  ["produced", "produced"],
  ["received", "received"],
  ["shipped", "shipped"],
  ["stockoutHours", "stockout_hours"],
  ["capacityPerDay", "capacity_per_day"],
] as const;

/** A leaf region's daily totals and its sites' production forecast. */
export interface LeafInput {
  history: LeafHistory;
  sites: number;
  supply: number[];
  /** Production lost over the horizon to inputs the sites do not hold, by input product. */
  limits: Map<number, Limit>;
}

/** A site's row as the pipeline reads it: each figure's values comma-separated (null: none reported). */
export type SiteRow = { site_id: string; region_id: number; day: string } & Record<(typeof SERIES_COLUMNS)[number][1], string | null>;

export const SITE_ROW_COLUMNS = SERIES_COLUMNS.map(([, col]) => col);

/** A row read by the pipeline as a series, its reports in day order. */
function siteSeries(row: SiteRow): SiteSeries {
  const day = parseNumbers(row.day);
  const series = { siteId: row.site_id, regionId: row.region_id, day } as SiteSeries;
  for (const [key, col] of SERIES_COLUMNS) {
    const text = row[col];
    series[key] = text === null ? null : parseNumbers(text, day.length);
  }
  return inDayOrder(series);
}

/**
 * Each region's daily totals over its sites and their production forecast, with `holdings` the
 * raw material each producing site holds (by site id).
 */
export function leafInputs(rows: readonly SiteRow[], holdings: ReadonlyMap<string, readonly InputHolding[]>, horizon: number): Map<number, LeafInput> {
  const W = HISTORY_DAYS;
  const inputs = new Map<number, LeafInput>();
  for (const row of rows) {
    const site = siteSeries(row);
    let entry = inputs.get(site.regionId);
    if (!entry) {
      entry = { history: emptyHistory(W), sites: 0, supply: new Array<number>(horizon).fill(0), limits: new Map() };
      inputs.set(site.regionId, entry);
    }
    entry.sites++;
    addSite(entry.history, site, W);
    if (site.produced === null) continue;
    const held = holdings.get(site.siteId) ?? [];
    const cap = held.reduce((m, h) => Math.min(m, h.onHand / h.perUnit), Infinity);
    const supply = productionForecast(site, horizon, cap);
    for (let h = 0; h < horizon; h++) entry.supply[h]! += supply[h]!;
    if (held.length) addLimits(entry.limits, inputLimits(productionForecast(site, horizon, Infinity).reduce((a, b) => a + b, 0), held));
  }
  return inputs;
}

/** What a job for the leaf threads carries: a scope's site rows and the producers' raw material. */
export interface LeafJob {
  rows: SiteRow[];
  holdings: [string, InputHolding[]][];
  horizon: number;
}

/** The leaves' outlooks of a job, by region id. */
export function computeLeaves(job: LeafJob): [number, NodeOutlook][] {
  return [...leafInputs(job.rows, new Map(job.holdings), job.horizon)].map(([regionId, input]) => [regionId, leafNode(input, job.horizon)]);
}

/** The series with its reports sorted by day, when they came in another order. */
export function inDayOrder(s: SiteSeries): SiteSeries {
  let sorted = true;
  for (let k = 1; k < s.day.length && sorted; k++) sorted = s.day[k - 1]! < s.day[k]!;
  if (sorted) return s;
  const order = Array.from(s.day.keys()).sort((a, b) => s.day[a]! - s.day[b]!);
  const permute = (a: Float64Array) => Float64Array.from(order, (k) => a[k]!);
  const out = { ...s, day: permute(s.day) };
  for (const [key] of SERIES_COLUMNS) out[key] = s[key] === null ? null : permute(s[key]);
  return out;
}

const COMMA = 44;
const MINUS = 45;
const DOT = 46;
const ZERO = 48;
const POW10 = Array.from({ length: 16 }, (_, k) => 10 ** k);

/**
 * Comma-separated numbers as PostgreSQL prints float8 (an empty field is NaN). Plain decimals of
 * up to 15 digits are read digit by digit: the digits fit a double exactly and so does 10^k (k is
 * at most 15 here), so one division gives the correctly rounded value, the same as Number().
 * Anything else (an exponent, more digits, Infinity) goes to Number().
 */
export function parseNumbers(text: string, expected?: number): Float64Array {
  let count = 1;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === COMMA) count++;
  if (expected !== undefined && count !== expected) throw new Error(`expected ${expected} values, got ${count}`);
  const out = new Float64Array(count);
  let field = 0;
  let start = 0;
  for (let i = 0; i <= text.length; i++) {
    if (i < text.length && text.charCodeAt(i) !== COMMA) continue;
    out[field++] = parseField(text, start, i);
    start = i + 1;
  }
  return out;
}

function parseField(text: string, from: number, to: number): number {
  if (from === to) return NaN;
  let i = from;
  const negative = text.charCodeAt(i) === MINUS;
  if (negative) i++;
  let mantissa = 0;
  let digits = 0;
  let decimals = -1;
  for (; i < to; i++) {
    const ch = text.charCodeAt(i);
    if (ch === DOT && decimals < 0) {
      decimals = 0;
      continue;
    }
    const digit = ch - ZERO;
    if (digit < 0 || digit > 9) return Number(text.slice(from, to));
    mantissa = mantissa * 10 + digit;
    digits++;
    if (decimals >= 0) decimals++;
  }
  if (digits === 0 || digits > 15) return Number(text.slice(from, to));
  const value = decimals > 0 ? mantissa / POW10[decimals]! : mantissa;
  return negative ? -value : value;
}

/** The leaf forecaster applied to one leaf: what the benchmark times on its own. */
export function leafNode({ history: h, sites, supply, limits }: LeafInput, horizon: number): NodeOutlook {
  const outlook = forecastLeaf(h, horizon);
  let onHand = 0;
  for (let i = h.onHand.length - 1; i >= 0; i--) {
    if (h.onHand[i] !== null) {
      onHand = h.onHand[i]!;
      break;
    }
  }
  return {
    onHand,
    demand: [...outlook.demand.mean],
    demandSd: [...outlook.demandSd],
    supply,
    netInflow: [...outlook.netInflow],
    sites,
    method: outlook.demand.method,
    params: { ...outlook.demand.params, ...(outlook.demand.backtest.mase !== null ? { backtestMase: outlook.demand.backtest.mase } : {}) },
    demandSource: outlook.demandSource,
    limits: new Map(limits),
  };
}

function emptyHistory(days: number): LeafHistory {
  const nulls = () => new Array<number | null>(days).fill(null);
  return { onHand: nulls(), consumed: nulls(), produced: nulls(), received: nulls(), shipped: nulls() };
}

/** Report k's figure in a column, null where the report left it out (NaN) or nobody reported it. */
const figure = (column: Float64Array | null, k: number): number | null => (column === null || Number.isNaN(column[k]) ? null : column[k]!);

/** Adds a site's figure of report k (when it has one) to day i of a region's total. */
const addFigure = (total: (number | null)[], i: number, column: Float64Array | null, k: number) => {
  const v = figure(column, k);
  if (v !== null) total[i] = (total[i] ?? 0) + v;
};

/**
 * Adds one site's reports to its region's daily totals. On-hand stock is carried forward from the
 * site's last report, so a site that skips a day does not look like stock vanishing. Consumption
 * is stock-out adjusted per site (a site's stock-out says nothing about its neighbours): a day
 * with reported stock-out hours counts as that share of a day out, and a day that ends with no
 * stock, when no hours are reported, as a whole stock-out day.
 */
export function addSite(h: LeafHistory, s: SiteSeries, W: number): void {
  let carried: number | null = null;
  let k = 0;
  const n = s.day.length;
  const consumed: number[] = [];
  const fractions: number[] = [];
  const consumptionIndex: number[] = [];
  for (let i = 0; i < W; i++) {
    const d = i - (W - 1);
    if (k < n && s.day[k] === d) {
      const onHand = figure(s.onHand, k);
      if (onHand !== null) carried = onHand;
      addFigure(h.produced, i, s.produced, k);
      addFigure(h.received, i, s.received, k);
      addFigure(h.shipped, i, s.shipped, k);
      const used = figure(s.consumed, k);
      if (used !== null) {
        const hours = figure(s.stockoutHours, k);
        consumed.push(used);
        fractions.push(stockoutShare(onHand, hours ?? 0, hours === null ? onHand === 0 : hours >= 24));
        consumptionIndex.push(i);
      }
      k++;
    }
    if (carried !== null) h.onHand[i] = (h.onHand[i] ?? 0) + carried;
  }
  // A day this site did not report is not a day it consumed nothing: without this, a region's
  // total would dip whenever one of its sites reported late. Gaps between two reports take the
  // straight line between them; days after its last report take its last figure.
  const adjusted = adjustDailyDemand(consumed, fractions);
  let prevI = -1;
  let prevV = 0;
  for (let j = 0; j < adjusted.length; j++) {
    const v = adjusted[j]!;
    if (v === null) continue;
    const i = consumptionIndex[j]!;
    if (prevI >= 0) for (let g = prevI + 1; g < i; g++) h.consumed[g] = (h.consumed[g] ?? 0) + (prevV + ((v - prevV) * (g - prevI)) / (i - prevI));
    h.consumed[i] = (h.consumed[i] ?? 0) + v;
    prevI = i;
    prevV = v;
  }
  if (prevI >= 0) for (let g = prevI + 1; g < W; g++) h.consumed[g] = (h.consumed[g] ?? 0) + prevV;
}

/**
 * A site's production for the next days: its recent average output, at most its latest reported
 * capacity, and in all no more than its raw material allows (`inputCap` units in total).
 */
export function productionForecast(s: Pick<SiteSeries, "day" | "produced" | "capacityPerDay">, horizon: number, inputCap: number): number[] {
  // The last PRODUCTION_WINDOW reports with output, of those no more than two windows old (older
  // output says nothing about today's line); added oldest first, as forecasts always have been, so
  // that a recompute of unchanged reports gives the same figures to the last bit.
  let first = s.day.length;
  for (let seen = 0; first > 0 && seen < PRODUCTION_WINDOW && s.produced !== null; ) if (!Number.isNaN(s.produced[--first])) seen++;
  let sum = 0;
  let fresh = 0;
  for (let k = first; k < s.day.length && s.produced !== null; k++) {
    if (Number.isNaN(s.produced[k]) || s.day[k]! <= -2 * PRODUCTION_WINDOW) continue;
    sum += s.produced[k]!;
    fresh++;
  }
  let level = fresh ? sum / fresh : 0;
  if (s.capacityPerDay !== null) {
    for (let k = s.day.length - 1; k >= 0; k--) {
      if (Number.isNaN(s.capacityPerDay[k])) continue;
      level = Math.min(level, s.capacityPerDay[k]!);
      break;
    }
  }
  const out: number[] = [];
  let left = inputCap;
  for (let h = 0; h < horizon; h++) {
    const q = Math.max(0, Math.min(level, left));
    out.push(q);
    left -= q;
  }
  return out;
}

export interface InputHolding {
  inputId: number;
  /** Input base units per unit of the product (bill of materials). */
  perUnit: number;
  onHand: number;
}

/**
 * Inputs that keep a site from making what its line would make over the horizon (`planned`
 * units): for each, the units of product lost and the input missing for them.
 */
export function inputLimits(planned: number, holdings: readonly InputHolding[]): Map<number, Limit> {
  const out = new Map<number, Limit>();
  for (const h of holdings) {
    const units = h.onHand / h.perUnit;
    if (units < planned) out.set(h.inputId, { lost: planned - units, short: (planned - units) * h.perUnit });
  }
  return out;
}

export interface Limit {
  lost: number;
  short: number;
}

export function addLimits(into: Map<number, Limit>, from: ReadonlyMap<number, Limit>): void {
  for (const [id, l] of from) {
    const cur = into.get(id);
    into.set(id, cur ? { lost: cur.lost + l.lost, short: cur.short + l.short } : { ...l });
  }
}


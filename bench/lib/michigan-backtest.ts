// Rolling-origin backtest of the leaf forecast on Michigan's hospital PPE stock: at every origin
// the forecaster sees the region's on-hand series up to that day and nothing after it, and its
// projected stock 7 and 14 days on is scored against what was reported then, next to the naive
// forecast (the last reported stock). The forecast is the service's own: forecastLeaf, then
// project() with no production (hospitals make no PPE).
import { forecastLeaf, type LeafHistory } from "../../src/domain/forecast/leaf.js";
import { project } from "../../src/domain/forecast/projection.js";
import { MICHIGAN_REGIONS, type MichiganDaily } from "./michigan.js";

export const BACKTEST_PRODUCTS = ["N95_Masks", "Surgical_Masks", "Gloves"] as const;
export const BACKTEST_HORIZONS = [7, 14] as const;
/** The first origin has four weeks of history: less tells nothing about weekly movement. */
export const FIRST_ORIGIN = 28;

export interface BacktestOptions {
  /** Score every `stride`-th calendar day as an origin (1: every day with a report). */
  stride?: number;
  /** Replace the forecaster (for comparisons); default forecastLeaf + project. */
  forecaster?: (history: LeafHistory, onHand: number, horizon: number) => number[];
}

export interface HorizonScore {
  /** Mean over origins of |actual - forecast| / scale. */
  mase: number;
  maseNaive: number;
  /** Origins scored (an origin counts where the day h ahead has a report). */
  origins: number;
}

export interface ProductScore {
  product: string;
  byHorizon: Record<number, HorizonScore>;
}

export interface BacktestResult {
  products: ProductScore[];
  /** Per horizon: the mean of the products' MASE, for the forecast and for naive. */
  average: Record<number, { mase: number; maseNaive: number }>;
  /** Series-days the forecaster was called for. */
  forecasts: number;
}

/** The service's forecast: the projected stock path of the leaf outlook, from the last report. */
export function leafProjection(history: LeafHistory, onHand: number, horizon: number): number[] {
  const outlook = forecastLeaf(history, horizon);
  return project({
    onHand,
    demand: outlook.demand.mean,
    demandSd: outlook.demandSd,
    supply: new Array<number>(horizon).fill(0),
    netInflow: outlook.netInflow,
  }).stock;
}

/**
 * MASE denominator at an origin: the mean absolute change between consecutive reports of the past
 * (the in-sample one-step naive error, one step being one report; days without a report are not
 * steps, as the series has no value there).
 */
export function scaleOf(past: readonly (number | null)[]): number {
  let prev: number | null = null;
  let sum = 0;
  let count = 0;
  for (const v of past) {
    if (v === null) continue;
    if (prev !== null) {
      sum += Math.abs(v - prev);
      count++;
    }
    prev = v;
  }
  return count > 0 ? sum / count : 0;
}

function stockHistory(past: readonly (number | null)[]): LeafHistory {
  const nulls = () => new Array<number | null>(past.length).fill(null);
  return { onHand: [...past], consumed: nulls(), produced: nulls(), received: nulls(), shipped: nulls() };
}

export function backtestMichigan(data: MichiganDaily, options: BacktestOptions = {}): BacktestResult {
  const stride = options.stride ?? 1;
  const forecaster = options.forecaster ?? leafProjection;
  const maxH = Math.max(...BACKTEST_HORIZONS);
  const n = data.dates.length;
  let forecasts = 0;
  const products: ProductScore[] = [];
  for (const product of BACKTEST_PRODUCTS) {
    const sums = new Map<number, { m: number; nv: number; count: number }>(BACKTEST_HORIZONS.map((h) => [h, { m: 0, nv: 0, count: 0 }]));
    for (const region of MICHIGAN_REGIONS) {
      const s = data.series.get(region)?.get(product);
      if (!s) throw new Error(`no series for region ${region}, product ${product}`);
      for (let t = FIRST_ORIGIN; t < n - Math.min(...BACKTEST_HORIZONS); t += stride) {
        const last = s[t];
        if (last === null || last === undefined) continue;
        const horizons = BACKTEST_HORIZONS.filter((h) => t + h < n && s[t + h] !== null);
        if (horizons.length === 0) continue;
        const past = s.slice(0, t + 1);
        const scale = scaleOf(past);
        if (scale === 0) continue;
        const path = forecaster(stockHistory(past), last, maxH);
        forecasts++;
        for (const h of horizons) {
          const actual = s[t + h] as number;
          const acc = sums.get(h) as { m: number; nv: number; count: number };
          acc.m += Math.abs(actual - (path[h - 1] as number)) / scale;
          acc.nv += Math.abs(actual - last) / scale;
          acc.count++;
        }
      }
    }
    const byHorizon: Record<number, HorizonScore> = {};
    for (const [h, acc] of sums) byHorizon[h] = { mase: acc.m / acc.count, maseNaive: acc.nv / acc.count, origins: acc.count };
    products.push({ product, byHorizon });
  }
  const average: Record<number, { mase: number; maseNaive: number }> = {};
  for (const h of BACKTEST_HORIZONS) {
    const mean = (f: (p: ProductScore) => number) => products.reduce((a, p) => a + f(p), 0) / products.length;
    average[h] = { mase: mean((p) => (p.byHorizon[h] as HorizonScore).mase), maseNaive: mean((p) => (p.byHorizon[h] as HorizonScore).maseNaive) };
  }
  return { products, average, forecasts };
}

/** The table `npm run backtest -- michigan` prints. */
export function formatBacktest(r: BacktestResult): string {
  const num = (x: number, w = 7) => x.toFixed(3).padStart(w);
  const lines = [
    `${"product".padEnd(16)}${BACKTEST_HORIZONS.map((h) => `| ${`${h}-day MASE`.padEnd(10)} ${"naive".padStart(7)} ${"ratio".padStart(7)} ${"origins".padStart(7)} `).join("")}`,
  ];
  for (const p of r.products) {
    lines.push(
      `${p.product.padEnd(16)}${BACKTEST_HORIZONS.map((h) => {
        const s = p.byHorizon[h] as HorizonScore;
        return `| ${num(s.mase, 10)} ${num(s.maseNaive)} ${num(s.mase / s.maseNaive)} ${String(s.origins).padStart(7)} `;
      }).join("")}`,
    );
  }
  lines.push(
    `${"average".padEnd(16)}${BACKTEST_HORIZONS.map((h) => {
      const a = r.average[h] as { mase: number; maseNaive: number };
      return `| ${num(a.mase, 10)} ${num(a.maseNaive)} ${num(a.mase / a.maseNaive)} ${"".padStart(7)} `;
    }).join("")}`,
  );
  return lines.join("\n");
}

// From a region's stock, its demand forecast and its supply forecast to what a planner acts on:
// the projected stock path, days of supply, the stock-out date and its probability, the shortage
// quantity and the five-colour risk level (SPEC "Shortage forecasts").
import { badInput } from "../errors.js";

export const RISK_LEVELS = ["GREEN", "BLUE", "YELLOW", "ORANGE", "RED"] as const;
export type RiskLevel = (typeof RISK_LEVELS)[number];

/** Days until stock-out below which a level applies (RED also when already out). */
export interface RiskThresholds {
  red: number;
  orange: number;
  yellow: number;
  blue: number;
}
export const DEFAULT_RISK_THRESHOLDS: RiskThresholds = { red: 3, orange: 7, yellow: 14, blue: 30 };

export function checkThresholds(t: RiskThresholds): RiskThresholds {
  const values = [t.red, t.orange, t.yellow, t.blue];
  if (values.some((v) => typeof v !== "number" || !Number.isFinite(v) || v <= 0)) {
    throw badInput(`risk thresholds must be positive numbers of days, got red ${t.red}, orange ${t.orange}, yellow ${t.yellow}, blue ${t.blue}`);
  }
  if (!(t.red < t.orange && t.orange < t.yellow && t.yellow < t.blue)) {
    throw badInput(`risk thresholds must grow from red to blue (red < orange < yellow < blue), got ${values.join(", ")}`);
  }
  return t;
}

export interface ProjectionInput {
  /** Stock at the end of the origin day. */
  onHand: number;
  /** Expected demand for days 1..H. */
  demand: readonly number[];
  /** Standard deviation of each day's demand. */
  demandSd: readonly number[];
  /** Expected production for days 1..H. */
  supply: readonly number[];
  /** Expected other net inflow for days 1..H (may be negative). */
  netInflow: readonly number[];
  thresholds?: RiskThresholds;
}

export interface Projection {
  /** Expected stock at the end of days 1..H; never below 0 (unmet demand is lost, not owed). */
  stock: number[];
  /** Mean daily demand over the horizon. */
  dailyDemand: number;
  /** onHand / dailyDemand; null when there is no demand. */
  daysOfSupply: number | null;
  /**
   * Day after the origin whose demand empties the stock (1 = tomorrow), 0 when already out, null
   * when the stock lasts the horizon.
   */
  stockoutDay: number | null;
  /**
   * Days until the stock runs out, with the stock-out day counted by the share of its demand still
   * met (so 650 at 100 a day is 6.5), extrapolated past the horizon at the last week's net draw
   * (Infinity when it never does); the risk level is read from it.
   */
  daysToStockout: number;
  stockoutProbability7d: number;
  stockoutProbability14d: number;
  /** Demand over the horizon that the expected stock and supply cannot meet. */
  shortageQuantity: number;
  riskLevel: RiskLevel;
}

/** Standard normal CDF (Abramowitz & Stegun 7.1.26 on erf; absolute error below 1.5e-7). */
export function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * z);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-z * z);
  return x >= 0 ? 0.5 * (1 + y) : 0.5 * (1 - y);
}

export function riskLevelFor(daysToStockout: number, thresholds: RiskThresholds = DEFAULT_RISK_THRESHOLDS): RiskLevel {
  if (daysToStockout < thresholds.red) return "RED";
  if (daysToStockout < thresholds.orange) return "ORANGE";
  if (daysToStockout < thresholds.yellow) return "YELLOW";
  if (daysToStockout < thresholds.blue) return "BLUE";
  return "GREEN";
}

export function project(input: ProjectionInput): Projection {
  const { onHand, demand, demandSd, supply, netInflow } = input;
  const thresholds = checkThresholds(input.thresholds ?? DEFAULT_RISK_THRESHOLDS);
  const horizon = demand.length;
  if (horizon === 0) throw badInput("the demand forecast is empty: a projection needs at least one day");
  for (const [name, arr] of [["demand", demand], ["demandSd", demandSd], ["supply", supply], ["netInflow", netInflow]] as const) {
    if (arr.length !== horizon) throw badInput(`${name} has ${arr.length} days but demand has ${horizon}: every series must cover the same horizon`);
    const bad = arr.findIndex((v) => typeof v !== "number" || !Number.isFinite(v) || (name !== "netInflow" && v < 0));
    if (bad >= 0) throw badInput(`${name}[${bad}] is ${String(arr[bad])}: every day needs a finite number${name === "netInflow" ? "" : " >= 0"}`);
  }
  if (!Number.isFinite(onHand) || onHand < 0) throw badInput(`onHand must be a finite number >= 0, got ${onHand}`);

  const stock: number[] = [];
  let level = onHand;
  let shortage = 0;
  let stockoutDay: number | null = null;
  // The stock-out day's share already covered: 1,000 at 100 a day lasts 10.0 days, 650 lasts 6.5.
  let stockoutAt: number | null = null;
  let totalDemand = 0;
  for (let h = 0; h < horizon; h++) {
    const d = demand[h] as number;
    totalDemand += d;
    const available = level + (supply[h] as number) + (netInflow[h] as number);
    if (d > 0 && available <= d) {
      // The day's demand takes the last unit (or cannot be met in full): this is the stock-out day.
      if (stockoutDay === null) {
        stockoutDay = h + 1;
        stockoutAt = h + Math.max(0, available) / d;
      }
      shortage += Math.max(0, d - Math.max(0, available));
    }
    level = Math.max(0, available - d);
    stock.push(level);
  }
  const dailyDemand = totalDemand / horizon;
  const alreadyOut = onHand <= 0 && dailyDemand > 0;
  if (alreadyOut) stockoutDay = 0;

  let daysToStockout: number;
  if (alreadyOut) daysToStockout = 0;
  else if (stockoutAt !== null) daysToStockout = stockoutAt;
  else {
    // Past the horizon: the average net draw of its last week, continued.
    const from = Math.max(0, horizon - 7);
    let draw = 0;
    for (let h = from; h < horizon; h++) draw += (demand[h] as number) - (supply[h] as number) - (netInflow[h] as number);
    draw /= horizon - from;
    daysToStockout = draw > 0 ? horizon + (stock[horizon - 1] as number) / draw : Infinity;
  }

  // Probability that the stock is gone by day h: demand errors of one series persist from day to
  // day (a level that is too low stays too low), so the cumulative standard deviation is the sum
  // of the daily ones, not their root-sum-square; this errs towards warning early. The chance of
  // running out by day h is taken as the largest chance of being out on any day up to h.
  const probabilityBy = (days: number) => {
    if (alreadyOut) return 1;
    let mean = onHand;
    let sd = 0;
    let p = 0;
    for (let h = 0; h < Math.min(days, horizon); h++) {
      mean += (supply[h] as number) + (netInflow[h] as number) - (demand[h] as number);
      sd += Math.max(0, demandSd[h] as number);
      const ph = sd > 0 ? normalCdf(-mean / sd) : mean <= 0 && (demand[h] as number) > 0 ? 1 : 0;
      if (ph > p) p = ph;
    }
    return p;
  };

  return {
    stock,
    dailyDemand,
    daysOfSupply: dailyDemand > 0 ? onHand / dailyDemand : null,
    stockoutDay,
    daysToStockout,
    stockoutProbability7d: probabilityBy(7),
    stockoutProbability14d: probabilityBy(14),
    shortageQuantity: shortage,
    riskLevel: alreadyOut ? "RED" : riskLevelFor(daysToStockout, thresholds),
  };
}

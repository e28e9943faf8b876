// Forecast of one leaf series: one (region, product) at the lowest level that has sites, from the
// region's daily totals. Parents are never forecast directly: their demand, inflow and supply
// are the sums of their children's (bottom-up), so the children's numbers add up to the parent's.
import { badInput } from "../errors.js";
import { MAX_HORIZON, forecastDemand, type DemandForecast } from "./methods.js";

/**
 * Daily totals of a leaf region's sites, oldest first, all arrays the same length, ending with the
 * origin day (the last day the forecast may see). `null` means no site reported that figure that
 * day; a site that reported on-hand stock earlier and not today is carried forward by the caller.
 */
export interface LeafHistory {
  /** End-of-day stock, summed over the sites, each site's last report carried forward. */
  onHand: (number | null)[];
  /** Consumption, stock-out adjusted (OpenLMIS) per site by the caller before summing. */
  consumed: (number | null)[];
  /** Production. */
  produced: (number | null)[];
  /** Received from outside (deliveries), as reported. */
  received: (number | null)[];
  /** Shipped away, as reported. */
  shipped: (number | null)[];
}

export interface LeafOutlook {
  /** Demand for days 1..H after the origin, with intervals. Never negative. */
  demand: DemandForecast;
  /** Standard deviation of each day's demand (for adding children's uncertainty, as independent). */
  demandSd: number[];
  /**
   * Expected net flow into the stock other than the region's own production and consumption,
   * days 1..H (deliveries minus shipments away). May be negative. Zero unless the history shows
   * a flow that the reported figures do not explain.
   */
  netInflow: number[];
  /** Where the demand came from: reported consumption, the drawdown of on-hand stock, or nothing. */
  demandSource: "consumption" | "stock-drawdown" | "none";
}

export type ForecastLeaf = (history: LeafHistory, horizon: number) => LeafOutlook;

// ---------------------------------------------------------------------------------------------
// The leaf forecaster.
//
// Three cases, by what the sites report:
//
// 1. "consumption": enough days with consumption. Demand is forecastDemand (methods.ts) over the
//    daily consumption series, from its first reported day to its last; netInflow is 0. Receipts
//    and shipments are not projected: deliveries are not promised (SPEC "Shortage forecasts":
//    supply is the region's own production, forecast by the caller), and a projection that counts
//    on them warns too late.
//
// 2. "stock-drawdown": no usable consumption, but on-hand stock (the Michigan data is all of this
//    kind). What the stock series shows is the net flow: consumption minus whatever deliveries
//    reached the sites. The two are separated as far as the data allows:
//    - demand: the daily fall of the stock on the days it fell, with days on which it rose
//      treated as unknown (a delivery hides that day's consumption) and filled from the days
//      around them, forecast with forecastDemand like reported consumption;
//    - the net trend: how the stock moved week by week (see `netTrend`). It is 0 unless the
//      history shows a direction the stock keeps: on-hand stock behaves like a random walk with
//      delivery jumps, and extrapolating anything weaker loses to the last value (BENCHMARKS.md,
//      "backtest michigan");
//    - netInflow = demand + net trend, day by day: the replenishment that kept the stock where it
//      was in spite of the consumption. The projected stock then moves by the net trend only.
//    Reported production, receipts and shipments (when a site reports them with its stock) are
//    taken out of the stock changes first, so they are not counted twice: production comes back
//    as the caller's supply forecast, receipts and shipments are not projected (as in case 1).
//
// 3. "none": fewer than two on-hand reports and no consumption: demand 0, nothing inferred.

/** Reported consumption is used when at least this many days have it... */
export const MIN_CONSUMPTION_DAYS = 7;
/** ...and the last of them is at most this many days before the origin (else it is stale). */
export const MAX_CONSUMPTION_AGE = 28;
/** Weekly changes of the stock that must all point the same way before a trend is extrapolated. */
export const TREND_WEEKS = 6;
/** A week's boundary takes the last stock report on or before it, at most this many days older. */
const BOUNDARY_SLACK = 3;
/** Window (days) in which a stock that only fell counts as a plain drawdown (see `netTrend`). */
const DRAWDOWN_WINDOW = 28;
/**
 * A fall of the stock that the next report undoes (by at least half) is a reporting dip, a site
 * missing from the day's total, not consumption, when it is this many times the median move.
 */
const DIP_FACTOR = 5;

/** Falls of the stock beyond this modified z-score against the days before are capped there. */
const OUTLIER_Z = 3.5;
const CLIP_WINDOW = 28;
const CLIP_MIN_DAYS = 7;

const Z80 = 1.2815515655446004;
const Z95 = 1.959963984540054;
const FIELDS = ["onHand", "consumed", "produced", "received", "shipped"] as const;

export const forecastLeaf: ForecastLeaf = (history, horizon) => {
  const n = checkHistory(history, horizon);
  return forecastConsumption(history, n, horizon) ?? forecastDrawdown(history, n, horizon) ?? noneOutlook(horizon);
};

function checkHistory(history: LeafHistory, horizon: number): number {
  if (!Number.isInteger(horizon) || horizon < 1 || horizon > MAX_HORIZON) {
    throw badInput(`horizon must be a whole number of days from 1 to ${MAX_HORIZON}, got ${String(horizon)}`);
  }
  if (history === null || typeof history !== "object") {
    throw badInput(`history must be an object with the arrays ${FIELDS.join(", ")}, got ${String(history)}`);
  }
  const n = Array.isArray(history.onHand) ? history.onHand.length : -1;
  for (const field of FIELDS) {
    const arr = history[field];
    if (!Array.isArray(arr)) throw badInput(`history.${field} must be an array of daily totals (null for a day without a report)`);
    if (arr.length !== n) {
      throw badInput(`history.${field} has ${arr.length} days but history.onHand has ${n}: every series must cover the same days`);
    }
    for (let i = 0; i < n; i++) {
      const v = arr[i];
      if (v === null) continue;
      if (typeof v !== "number") throw badInput(`history.${field}[${i}] is ${String(v)}: every day needs a number, or null when nothing was reported`);
      if (Number.isNaN(v)) throw badInput(`history.${field}[${i}] is NaN: use null for a day without a report`);
      if (!Number.isFinite(v)) throw badInput(`history.${field}[${i}] is ${v}: quantities must be finite`);
      if (v < 0) throw badInput(`history.${field}[${i}] is negative (${v}): daily totals cannot be below 0`);
    }
  }
  return n;
}

// --- case 1: reported consumption ----------------------------------------------------------------

/**
 * The consumption series, from the first reported day to the last. Gaps (days nobody reported
 * consumption) are filled by linear interpolation between the reported days around them: a gap
 * is a missing figure, not a day without demand, and interpolation neither invents a level nor
 * breaks a trend. A day that ended with no stock in the whole region (onHand 0) is censored: what
 * was consumed is what there was, not what was needed, so it counts as at least the value the
 * days with stock around it give (the OpenLMIS reasoning, consumption.ts, at the region's level;
 * the caller has already adjusted each site's own stock-outs).
 */
function forecastConsumption(h: LeafHistory, n: number, horizon: number): LeafOutlook | null {
  let first = -1;
  let last = -1;
  let days = 0;
  for (let i = 0; i < n; i++) {
    if (h.consumed[i] === null) continue;
    if (first < 0) first = i;
    last = i;
    days++;
  }
  if (first < 0 || days < MIN_CONSUMPTION_DAYS || n - 1 - last > MAX_CONSUMPTION_AGE) return null;

  const censored = (i: number) => h.onHand[i] === 0;
  const known: (number | null)[] = [];
  let anyKnown = false;
  for (let i = first; i <= last; i++) {
    const c = censored(i) ? null : h.consumed[i] ?? null;
    known.push(c);
    if (c !== null) anyKnown = true;
  }
  // A region out of stock on every reported day leaves only the censored figures to go by.
  const base = fillGaps(anyKnown ? known : h.consumed.slice(first, last + 1));
  const series = base.map((b, k) => {
    const c = h.consumed[first + k] ?? null;
    return c === null ? b : censored(first + k) && anyKnown ? Math.max(c, b) : c;
  });
  // Days after the last report are forecast too: the outlook starts at the origin.
  const demand = demandForecast(series, horizon, n - 1 - last);
  return { demand, demandSd: demandSdOf(demand), netInflow: new Array<number>(horizon).fill(0), demandSource: "consumption" };
}

// --- case 2: on-hand stock only ----------------------------------------------------------------

interface Move {
  /** Report days the move is between (from < to). */
  from: number;
  to: number;
  /** Change of the stock not explained by reported production, receipts and shipments. */
  change: number;
}

function forecastDrawdown(h: LeafHistory, n: number, horizon: number): LeafOutlook | null {
  const reports: number[] = [];
  for (let i = 0; i < n; i++) if (h.onHand[i] !== null) reports.push(i);
  if (reports.length < 2) return null;
  const lastReport = reports.at(-1) as number;

  // Stock as it would be without the reported flows: u(t) = onHand(t) - cumulative(produced +
  // received - shipped). Its changes are consumption and unreported flows only.
  const explained = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) {
    explained[i + 1] = (explained[i] as number) + (h.produced[i] ?? 0) + (h.received[i] ?? 0) - (h.shipped[i] ?? 0);
  }
  const unexplained = (i: number) => (h.onHand[i] as number) - (explained[i + 1] as number);
  const moves: Move[] = [];
  for (let k = 1; k < reports.length; k++) {
    const from = reports[k - 1] as number;
    const to = reports[k] as number;
    moves.push({ from, to, change: unexplained(to) - unexplained(from) });
  }

  // Daily consumption where the stock fell, unknown where it rose or dipped and came back.
  const dips = reportingDips(moves);
  const daily: (number | null)[] = new Array<number | null>(n).fill(null);
  moves.forEach((m, k) => {
    if (m.change > 0 || dips.has(k)) return;
    const rate = -m.change / (m.to - m.from);
    for (let i = m.from + 1; i <= m.to; i++) daily[i] = rate;
  });
  clipFalls(daily);
  const firstDay = daily.findIndex((v) => v !== null);
  let demand: DemandForecast;
  if (firstDay < 0) {
    // The stock never fell: nothing shows consumption, so none is claimed.
    demand = zeroForecast(horizon);
  } else {
    // From the first fall to the last report; gaps filled as in case 1, and trailing days after
    // the last fall carried at its value.
    const series = fillGaps(daily.slice(firstDay, lastReport + 1));
    demand = demandForecast(series, horizon, n - 1 - lastReport);
  }

  const trend = netTrend(moves, h, unexplained, lastReport);
  const netInflow = demand.mean.map((d) => d + trend);
  // The caller projects from the last reported stock; if that is days old, the trend has been
  // running since, and the first day of the outlook carries it.
  netInflow[0] = (netInflow[0] as number) + trend * (n - 1 - lastReport);
  return { demand, demandSd: demandSdOf(demand), netInflow, demandSource: "stock-drawdown" };
}

/**
 * Moves (by index) that are one half of a reporting dip: a change more than DIP_FACTOR times the
 * median absolute change per day, which the next move reverses by at least half. Both halves are
 * dropped from the consumption estimate (the fall was no consumption, the rise no delivery).
 */
function reportingDips(moves: readonly Move[]): Set<number> {
  // Moves that changed the stock: where sites are carried forward between weekly reports, most
  // days do not move it, and a median of zero would make every real fall look big.
  const perDay = new Float64Array(moves.length);
  let count = 0;
  for (const m of moves) if (m.change !== 0) perDay[count++] = Math.abs(m.change) / (m.to - m.from);
  const typical = median(perDay.subarray(0, count).sort());
  const out = new Set<number>();
  if (typical === 0) return out;
  for (let k = 0; k + 1 < moves.length; k++) {
    const a = moves[k] as Move;
    const b = moves[k + 1] as Move;
    const big = Math.abs(a.change) / (a.to - a.from) > DIP_FACTOR * typical;
    if (big && Math.sign(a.change) === -Math.sign(b.change) && Math.abs(b.change) >= 0.5 * Math.abs(a.change)) {
      out.add(k);
      out.add(k + 1);
    }
  }
  return out;
}

/**
 * Caps each day's fall at the outlier bound of the falls in the CLIP_WINDOW days before it: a
 * modified z-score (Iglewicz & Hoaglin, 0.6745 (x - median) / MAD) of OUTLIER_Z, the test the
 * report outlier flags use (src/domain/reports/outliers.ts). On-hand totals fall by far more than
 * anything is consumed when a site corrects its count or drops out of the day's total, and one
 * such day would otherwise be the demand forecast (the naive method picks the last day). A real
 * rise in consumption still comes through: the bound follows the median within half a window.
 * Needs CLIP_MIN_DAYS days with a fall in the window; with fewer nothing is capped.
 */
function clipFalls(daily: (number | null)[]): void {
  const source = [...daily];
  // The falls of the CLIP_WINDOW days before day i, kept sorted as the window slides: one day
  // leaves and one enters per step, so there is no sort per day (this ran for every day of every
  // series, and sorting dominated the drawdown forecast). Days the stock did not move are left
  // out: with sites carried forward between weekly reports the falls are a few large ones among
  // zeros, and against the zeros every one of them would be an outlier.
  const window = new Float64Array(CLIP_WINDOW);
  const deviations = new Float64Array(CLIP_WINDOW);
  let size = 0;
  for (let i = 0; i < source.length; i++) {
    const leaving = i - CLIP_WINDOW - 1 >= 0 ? source[i - CLIP_WINDOW - 1] : null;
    if (leaving) size = removeSorted(window, size, leaving);
    const entering = i >= 1 ? source[i - 1] : null;
    if (entering) size = insertSorted(window, size, entering);
    const v = source[i];
    if (v === null || v === undefined || size < CLIP_MIN_DAYS) continue;
    const med = median(window, size);
    // The median deviation needs the smallest half of the deviations only.
    sortedDeviations(window, size, med, deviations, (size >> 1) + 1);
    const mad = median(deviations, size);
    // Half the window or more on one value makes the MAD 0: the mean absolute deviation stands in
    // (scaled to the same normal consistency), and with no spread at all nothing is capped.
    let spread = mad / 0.6745;
    if (!(mad > 0)) {
      sortedDeviations(window, size, med, deviations, size);
      let sum = 0;
      for (let k = 0; k < size; k++) sum += deviations[k]!;
      spread = (1.2533 * sum) / size;
    }
    if (spread > 0) daily[i] = Math.min(v, med + OUTLIER_Z * spread);
  }
}

/** Inserts x into the ascending sorted[0..size); returns the new size. */
function insertSorted(sorted: Float64Array, size: number, x: number): number {
  let k = size;
  while (k > 0 && sorted[k - 1]! > x) {
    sorted[k] = sorted[k - 1]!;
    k--;
  }
  sorted[k] = x;
  return size + 1;
}

/** Removes one x from the ascending sorted[0..size) (it is there); returns the new size. */
function removeSorted(sorted: Float64Array, size: number, x: number): number {
  let k = 0;
  while (k < size - 1 && sorted[k] !== x) k++;
  for (; k < size - 1; k++) sorted[k] = sorted[k + 1]!;
  return size - 1;
}

/**
 * The `count` smallest of |x - med| for x in the ascending sorted[0..size), ascending, into out:
 * the deviations below the median grow leftwards and those above it rightwards, so a merge of the
 * two runs sorts them.
 */
function sortedDeviations(sorted: Float64Array, size: number, med: number, out: Float64Array, count: number): void {
  let right = 0;
  while (right < size && sorted[right]! < med) right++;
  let left = right - 1;
  for (let k = 0; k < count; k++) {
    const below = left >= 0 ? med - sorted[left]! : Infinity;
    const above = right < size ? sorted[right]! - med : Infinity;
    if (below <= above) {
      out[k] = below;
      left--;
    } else {
      out[k] = above;
      right++;
    }
  }
}

/**
 * The stock's net change per day that the projection continues (0 when none is established).
 *
 * - A plain drawdown: if the stock has not risen once in the last DRAWDOWN_WINDOW days (at least
 *   two moves there, all falls or flat), nothing is replenishing it, and it keeps falling at the
 *   median weekly rate of those weeks.
 * - Otherwise deliveries arrive, and their timing is unknown. The trend is then taken from the
 *   last TREND_WEEKS whole weeks before the last report: only if the stock moved the same way in
 *   every one of them (a sign test: a driftless series does that with probability
 *   2 * 0.5^6 = 3 %) is the median weekly change continued. On Michigan's hospital stock, trends
 *   that pass weaker tests (fewer weeks, median daily changes, Mann-Kendall on levels) do not
 *   persist: extrapolating them is worse than the last value (BENCHMARKS.md, "backtest michigan").
 */
function netTrend(moves: readonly Move[], h: LeafHistory, unexplained: (day: number) => number, lastReport: number): number {
  // Unexplained stock on a day: the last report on or before it, within the slack.
  const at = (day: number): number | null => {
    if (day < 0) return null;
    for (let i = day; i >= Math.max(0, day - BOUNDARY_SLACK); i--) if (h.onHand[i] !== null) return unexplained(i);
    return null;
  };
  const weeklyChanges = (weeks: number, notBefore: number): number[] => {
    const out: number[] = [];
    for (let w = 0; w < weeks; w++) {
      const endDay = lastReport - 7 * w;
      if (endDay - 7 < notBefore) break;
      const end = at(endDay);
      const start = at(endDay - 7);
      if (end === null || start === null) break;
      out.push(end - start);
    }
    return out;
  };
  const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);

  const recent = moves.filter((m) => m.to > lastReport - DRAWDOWN_WINDOW);
  const first = recent[0];
  if (first && recent.length >= 2 && recent.every((m) => m.change <= 0)) {
    // Week by week, so that sites carried forward between weekly reports (flat days, then one
    // fall) give their true rate; under a week of data, the average rate of the moves.
    const weekly = weeklyChanges(Math.floor(DRAWDOWN_WINDOW / 7), first.from);
    if (weekly.length > 0) return median(sorted(weekly)) / 7;
    return recent.reduce((s, m) => s + m.change, 0) / (lastReport - first.from);
  }
  const weekly = weeklyChanges(TREND_WEEKS, 0);
  if (weekly.length < TREND_WEEKS) return 0;
  if (!weekly.every((c) => c > 0) && !weekly.every((c) => c < 0)) return 0;
  return median(sorted(weekly)) / 7;
}

// --- shared ----------------------------------------------------------------------------------

/**
 * forecastDemand over `series` (which ends `lag` days before the origin), for days 1..horizon
 * after the origin: the model forecasts lag + horizon days and the first `lag` are dropped.
 */
function demandForecast(series: number[], horizon: number, lag: number): DemandForecast {
  const f = forecastDemand(series, { horizon: Math.min(MAX_HORIZON, horizon + lag) });
  // A lag so long that the horizon would pass MAX_HORIZON keeps the last days' forecast.
  const from = Math.min(lag, f.mean.length - horizon);
  const cut = (xs: number[]) => xs.slice(from, from + horizon);
  return { ...f, mean: cut(f.mean), low80: cut(f.low80), high80: cut(f.high80), low95: cut(f.low95), high95: cut(f.high95) };
}

/**
 * Standard deviation of each day's demand, read off the upper interval bounds (the lower ones are
 * cut at 0): for the normal intervals of naive, SES and damped trend, (high - mean) / z is the
 * model's own h-step standard deviation, exactly; for Croston's empirical quantiles it is the
 * normal standard deviation with the same 80 % and 95 % bounds, averaged over the two.
 */
function demandSdOf(f: DemandForecast): number[] {
  return f.mean.map((m, i) => {
    const s80 = ((f.high80[i] as number) - m) / Z80;
    const s95 = ((f.high95[i] as number) - m) / Z95;
    return Math.max(0, (s80 + s95) / 2);
  });
}

function zeroForecast(horizon: number): DemandForecast {
  const zeros = () => new Array<number>(horizon).fill(0);
  return {
    method: "naive",
    params: {},
    classification: "short",
    backtest: { mase: null, maseNaive: null, maeMethod: null, maeNaive: null, origins: 0 },
    mean: zeros(),
    low80: zeros(),
    high80: zeros(),
    low95: zeros(),
    high95: zeros(),
  };
}

function noneOutlook(horizon: number): LeafOutlook {
  return {
    demand: zeroForecast(horizon),
    demandSd: new Array<number>(horizon).fill(0),
    netInflow: new Array<number>(horizon).fill(0),
    demandSource: "none",
  };
}

/**
 * Nulls replaced by linear interpolation between the known values around them; before the first
 * known value the first one, after the last the last one. The input has at least one number.
 */
function fillGaps(values: readonly (number | null)[]): number[] {
  const out: number[] = [];
  let prev = -1;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) continue;
    const from = prev < 0 ? 0 : prev + 1;
    const a = prev < 0 ? v : (values[prev] as number);
    for (let k = from; k < i; k++) out[k] = prev < 0 ? v : a + ((v - a) * (k - prev)) / (i - prev);
    out[i] = v;
    prev = i;
  }
  const lastValue = out[prev] as number;
  for (let k = prev + 1; k < values.length; k++) out[k] = lastValue;
  return out;
}

/** Median of the ascending sorted[0..length) (0 when empty). */
function median(sorted: ArrayLike<number>, length = sorted.length): number {
  if (length === 0) return 0;
  const mid = length >> 1;
  return length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

// Stock-out adjusted consumption (OpenLMIS, "adjusted consumption"; SPEC "Demand").
//
// A day on which a site had nothing to hand out records zero (or partial) consumption because
// supply was missing, not because nobody needed anything. Averaging such days in biases demand
// down exactly where a shortage is happening, and a forecast built on it predicts the shortage
// away. OpenLMIS therefore scales consumption over the days stock was available up to the whole
// window: adjusted = C * D / (D - X), for C units consumed over D days of which X were stock-out
// days. The assumption is that demand on a stocked-out day was the same as on the other days of
// the window; nothing better is known about it.
//
// When X = D there was no day with stock: the window carries no information about demand at all.
// Returning 0 would claim there was no demand during an outage, and any other number would be
// made up, so the result is null with a reason, and the caller must fall back on something that
// does know (a longer window, a planner's scenario, or a procurement request).
import { badInput } from "../errors.js";

export interface ConsumptionDay {
  /** Units consumed (dispensed, used) that day. */
  consumed: number;
  /** Stock on hand at the end of the day (or when reported). */
  onHand?: number | null;
  /** Need that could not be served that day: a quantity, or true when only known to exist. */
  unmetNeed?: number | boolean | null;
  /** Hours without stock that day, when the site reports them. */
  stockoutHours?: number | null;
}

export type AdjustedConsumption =
  | {
      ok: true;
      /** Consumption over the whole window, as if stock had been available every day. */
      adjusted: number;
      /** adjusted / days: the average daily demand. */
      perDay: number;
      days: number;
      stockoutDays: number;
    }
  | { ok: false; adjusted: null; perDay: null; days: number; stockoutDays: number; reason: string };

function finiteNonNegative(value: unknown, name: string): number {
  if (typeof value !== "number" || Number.isNaN(value)) throw badInput(`${name} must be a number, got ${String(value)}`);
  if (!Number.isFinite(value)) throw badInput(`${name} must be finite, got ${value}`);
  if (value < 0) throw badInput(`${name} cannot be negative, got ${value}`);
  return value;
}

/**
 * The share of a day (0..1) that counts as stock-out. A day ending with nothing on hand while need
 * went unmet is a whole stock-out day: the site may have had stock in the morning, but need that
 * arrived later was turned away, so the recorded consumption understates the day. Otherwise the
 * reported stock-out hours count as that fraction of a day, and 24 hours or more as a whole day.
 */
export function stockoutFraction(day: ConsumptionDay, name = "day"): number {
  const hours = day.stockoutHours == null ? 0 : finiteNonNegative(day.stockoutHours, `${name}.stockoutHours`);
  const unmet = typeof day.unmetNeed === "boolean" ? day.unmetNeed : (day.unmetNeed ?? 0) > 0;
  if (day.onHand != null) finiteNonNegative(day.onHand, `${name}.onHand`);
  return stockoutShare(day.onHand ?? null, hours, unmet);
}

/** {@link stockoutFraction} on figures already checked. */
export function stockoutShare(onHand: number | null, stockoutHours: number, unmet: boolean): number {
  if (onHand === 0 && unmet) return 1;
  return Math.min(stockoutHours, 24) / 24;
}

/** OpenLMIS adjusted consumption for `consumed` units over `days` days, `stockoutDays` of them out. */
export function adjustedConsumption(consumed: number, days: number, stockoutDays: number): AdjustedConsumption {
  finiteNonNegative(consumed, "consumed");
  finiteNonNegative(days, "days");
  finiteNonNegative(stockoutDays, "stockoutDays");
  if (days === 0) throw badInput("days must be more than 0: an empty window has no consumption to adjust");
  if (stockoutDays > days) {
    throw badInput(`stockoutDays (${stockoutDays}) cannot exceed days in the window (${days})`);
  }
  if (stockoutDays === days) {
    return {
      ok: false,
      adjusted: null,
      perDay: null,
      days,
      stockoutDays,
      reason: `stocked out on all ${days} days of the window: no day shows what demand was`,
    };
  }
  const adjusted = (consumed * days) / (days - stockoutDays);
  return { ok: true, adjusted, perDay: adjusted / days, days, stockoutDays };
}

/** Adjusted consumption of a window given day by day (stock-out days from `stockoutFraction`). */
export function adjustedConsumptionOfDays(days: readonly ConsumptionDay[]): AdjustedConsumption {
  if (days.length === 0) throw badInput("the window has no days: at least one day of consumption is needed");
  let consumed = 0;
  let stockoutDays = 0;
  days.forEach((d, i) => {
    consumed += finiteNonNegative(d.consumed, `days[${i}].consumed`);
    stockoutDays += stockoutFraction(d, `days[${i}]`);
  });
  return adjustedConsumption(consumed, days.length, stockoutDays);
}

/**
 * A daily demand series for the forecaster, with the same rule applied day by day: a partly
 * stocked-out day is scaled up by 1 / (1 - fraction) (the formula with D = 1), and a whole
 * stock-out day takes the adjusted daily average of the trailing `window` days ending on it.
 * Null where even that window was out the whole time; the caller decides how to fill or drop it.
 */
export function adjustedDailyDemand(days: readonly ConsumptionDay[], window = 28): (number | null)[] {
  if (!Number.isInteger(window) || window < 1) throw badInput(`window must be a whole number of days >= 1, got ${window}`);
  const fractions = days.map((d, i) => stockoutFraction(d, `days[${i}]`));
  const consumed = days.map((d, i) => finiteNonNegative(d.consumed, `days[${i}].consumed`));
  return adjustDailyDemand(consumed, fractions, window);
}

/**
 * {@link adjustedDailyDemand} on figures already checked (stored reports passed validation on the
 * way in), as parallel arrays: the forecast pipeline calls it for every site of every series.
 */
export function adjustDailyDemand(consumed: ArrayLike<number>, fractions: ArrayLike<number>, window = 28): (number | null)[] {
  const out = new Array<number | null>(consumed.length);
  for (let t = 0; t < consumed.length; t++) {
    const f = fractions[t]!;
    if (f < 1) {
      out[t] = consumed[t]! / (1 - f);
      continue;
    }
    const from = Math.max(0, t - window + 1);
    let c = 0;
    let x = 0;
    for (let i = from; i <= t; i++) {
      c += consumed[i]!;
      x += fractions[i]!;
    }
    const days = t - from + 1;
    // adjustedConsumption's rule, without its checks: a window out every day says nothing.
    out[t] = x >= days ? null : (c * days) / (days - x) / days;
  }
  return out;
}

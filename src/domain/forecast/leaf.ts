// Forecast of one leaf series: one (region, product) at the lowest level that has sites, from the
// region's daily totals. Parents are never forecast directly: their demand, inflow and supply
// are the sums of their children's (bottom-up), so the children's numbers add up to the parent's.
import type { DemandForecast } from "./methods.js";

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

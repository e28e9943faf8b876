import type { Measures } from "./validate.js";

export const QualityFlag = {
  /** onHand(t) differs from onHand(t-1) + produced + received - shipped - consumed. */
  STOCK_BALANCE: "STOCK_BALANCE_MISMATCH",
  PRODUCED_ABOVE_CAPACITY: "PRODUCED_ABOVE_CAPACITY",
  /** The date is further in the past than the backfill window: probably late data entry. */
  BACKFILL: "BACKFILL",
} as const;

/**
 * Rounding in pack conversions and counting slips should not raise a flag: a difference up to
 * 1 unit or 1 % of the larger stock figure is tolerated.
 */
export function balanceTolerance(previousOnHand: number, onHand: number): number {
  return Math.max(1, 0.01 * Math.max(previousOnHand, onHand));
}

export function stockBalanceHolds(current: Measures, previousOnHand: number | null): boolean {
  if (current.onHand === null || previousOnHand === null) return true;
  const flows = [current.produced, current.received, current.shipped, current.consumed];
  // With no flow reported there is nothing to balance against, and flagging every
  // onHand-only report would bury the real mismatches.
  if (flows.every((f) => f === null)) return true;
  const expected =
    previousOnHand + (current.produced ?? 0) + (current.received ?? 0) - (current.shipped ?? 0) - (current.consumed ?? 0);
  return Math.abs(current.onHand - expected) <= balanceTolerance(previousOnHand, current.onHand);
}

export function qualityFlags(current: Measures, previousOnHand: number | null, backfill: boolean): string[] {
  const flags: string[] = [];
  if (!stockBalanceHolds(current, previousOnHand)) flags.push(QualityFlag.STOCK_BALANCE);
  if (current.produced !== null && current.capacityPerDay !== null && current.produced > current.capacityPerDay) {
    flags.push(QualityFlag.PRODUCED_ABOVE_CAPACITY);
  }
  if (backfill) flags.push(QualityFlag.BACKFILL);
  return flags;
}

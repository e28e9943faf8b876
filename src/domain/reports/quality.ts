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
  // With no flow reported there is nothing to balance against, and flagging every
  // onHand-only report would bury the real mismatches.
  if (current.produced === null && current.received === null && current.shipped === null && current.consumed === null) return true;
  const expected =
    previousOnHand + (current.produced ?? 0) + (current.received ?? 0) - (current.shipped ?? 0) - (current.consumed ?? 0);
  return Math.abs(current.onHand - expected) <= balanceTolerance(previousOnHand, current.onHand);
}

/** Every combination of the three flags, in their fixed order, indexed by a bit set (1, 2, 4). */
export const FLAG_SETS: readonly (readonly string[])[] = Array.from({ length: 8 }, (_, bits) =>
  Object.freeze(
    [QualityFlag.STOCK_BALANCE, QualityFlag.PRODUCED_ABOVE_CAPACITY, QualityFlag.BACKFILL].filter((_, i) => bits & (1 << i)),
  ),
);
const BITS_BY_FLAGS = new Map(FLAG_SETS.map((flags, bits) => [flags.join(","), bits]));

/** The index in FLAG_SETS of a list of flags equal to one of them, else -1 (other flags, another order). */
export function flagSetIndex(flags: readonly string[]): number {
  if (flags.length === 0) return 0;
  return BITS_BY_FLAGS.get(flags.length === 1 ? flags[0]! : flags.join(",")) ?? -1;
}

/**
 * The flags this module computes, as a shared frozen list (one per combination, so the hot path
 * allocates nothing): STOCK_BALANCE_MISMATCH, PRODUCED_ABOVE_CAPACITY, BACKFILL, in that order.
 */
export function ownQualityFlags(current: Measures, previousOnHand: number | null, backfill: boolean): readonly string[] {
  let bits = 0;
  if (!stockBalanceHolds(current, previousOnHand)) bits |= 1;
  if (current.produced !== null && current.capacityPerDay !== null && current.produced > current.capacityPerDay) bits |= 2;
  if (backfill) bits |= 4;
  return FLAG_SETS[bits]!;
}

export function qualityFlags(current: Measures, previousOnHand: number | null, backfill: boolean): string[] {
  return [...ownQualityFlags(current, previousOnHand, backfill)];
}

import { format } from "date-fns";
import { TZDate } from "@date-fns/tz";

/** The figures of a report, in the order the SPEC lists them. */
export const MEASURES = ["onHand", "produced", "capacityPerDay", "consumed", "received", "shipped", "backlog", "stockoutHours"] as const;
export type Measure = (typeof MEASURES)[number];
export type Measures = Record<Measure, number | null>;

/**
 * One row as a client sent it: GraphQL gives numbers, CSV gives strings, so both are accepted
 * here and checked the same way.
 */
export type ReportRowInput = {
  siteCode?: unknown;
  productCode?: unknown;
  date?: unknown;
  unit?: unknown;
} & Partial<Record<Measure, unknown>>;

export interface RowError {
  index: number;
  field: string | null;
  message: string;
}

export interface ParsedRow {
  index: number;
  siteCode: string;
  productCode: string;
  date: string;
  unit: string | null;
  /** As sent, before unit conversion; `undefined` = not sent (keeps a stored value on correction). */
  values: Partial<Record<Measure, number>>;
}

const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
/** Dates outside this range are typing errors (and year 0 does not exist in PostgreSQL). */
export const EARLIEST_DATE = "1900-01-01";
export const LATEST_DATE = "2999-12-31";
/** No report holds a quadrillion units: larger figures are unit or typing errors. */
export const MAX_QUANTITY = 1e15;

/** Null when `value` is a real calendar date within range, else what is wrong with it. */
export function dateProblem(value: unknown): string | null {
  if (typeof value !== "string" || !DATE.test(value)) return `must be a calendar date as YYYY-MM-DD, got ${show(value)}`;
  // The range first: the day arithmetic below is only meant for years 1900 to 2999.
  if (value < EARLIEST_DATE || value > LATEST_DATE) return `must be between ${EARLIEST_DATE} and ${LATEST_DATE}, got ${value}`;
  if (!isCalendarDate(value)) return `must be a calendar date as YYYY-MM-DD, got ${show(value)}`;
  return null;
}

const show = (v: unknown) => (typeof v === "string" ? JSON.stringify(v) : String(v));

function absent(v: unknown): boolean {
  return v === undefined || v === null || (typeof v === "string" && v.trim() === "");
}

/** Checks one row's own fields (no database): types, formats, ranges. */
export function parseRow(input: ReportRowInput, index: number, errors: RowError[]): ParsedRow | null {
  const before = errors.length;
  const fail = (field: string | null, message: string) => errors.push({ index, field, message: `row ${index}: ${message}` });
  if (typeof input !== "object" || input === null) {
    fail(null, "is not an object with siteCode, productCode, date and figures");
    return null;
  }
  const text = (field: "siteCode" | "productCode", v: unknown): string => {
    if (absent(v)) fail(field, `${field} is required`);
    else if (typeof v !== "string") fail(field, `${field} must be text, got ${show(v)}`);
    else if (v.trim().length > 64) fail(field, `${field} is longer than 64 characters`);
    else if (CONTROL.test(v)) fail(field, `${field} contains control characters; send the plain code`);
    else return v.trim();
    return "";
  };
  const siteCode = text("siteCode", input.siteCode);
  const productCode = text("productCode", input.productCode).toUpperCase();

  let date = "";
  if (absent(input.date)) fail("date", "date is required (YYYY-MM-DD, the site's local day)");
  else {
    const trimmed = typeof input.date === "string" ? input.date.trim() : input.date;
    const problem = dateProblem(trimmed);
    if (problem) fail("date", `date ${problem}`);
    else date = trimmed as string;
  }

  let unit: string | null = null;
  if (!absent(input.unit)) {
    if (typeof input.unit !== "string") fail("unit", `unit must be text, got ${show(input.unit)}`);
    else if (CONTROL.test(input.unit)) fail("unit", "unit contains control characters; send the plain unit name");
    else unit = input.unit.trim();
  }

  const values: Partial<Record<Measure, number>> = {};
  for (const m of MEASURES) {
    const raw = input[m];
    if (absent(raw)) continue;
    let n: number;
    if (typeof raw === "number") n = raw;
    else if (typeof raw === "string" && NUMBER.test(raw.trim())) n = Number(raw.trim());
    else {
      fail(m, `${m} must be a number, got ${show(raw)}`);
      continue;
    }
    if (!Number.isFinite(n)) fail(m, `${m} must be a finite number, got ${show(raw)}`);
    else if (n < 0) fail(m, `${m} must be >= 0, got ${n}`);
    else if (m === "stockoutHours" && n > 24) fail(m, `stockoutHours must be between 0 and 24, got ${n}`);
    else if (n > MAX_QUANTITY) fail(m, `${m} must be at most ${MAX_QUANTITY.toExponential()}, got ${n}; check the figure and its unit`);
    else values[m] = n;
  }
  if (errors.length === before && Object.keys(values).length === 0) {
    fail(null, `no figures given; send at least one of ${MEASURES.join(", ")}`);
  }
  return errors.length === before ? { index, siteCode, productCode, date, unit, values } : null;
}

/** The calendar day it is now in a time zone, as YYYY-MM-DD. */
export function localToday(now: Date, timeZone: string): string {
  return format(new TZDate(now.getTime(), timeZone), "yyyy-MM-dd");
}

const DAY_MS = 86_400_000;

/** True when a YYYY-MM-DD string names a real day (no 2026-02-30): it survives a round trip. */
function isCalendarDate(date: string): boolean {
  const day = dayNumber(date);
  return Number.isInteger(day) && dateOfDay(day) === date;
}

/**
 * Days since 1970-01-01 for a valid YYYY-MM-DD date. Report dates are calendar days without a
 * time zone, so whole-day integers are exact, and far cheaper than date objects on a hot path.
 */
export function dayNumber(date: string): number {
  return Date.UTC(Number(date.slice(0, 4)), Number(date.slice(5, 7)) - 1, Number(date.slice(8, 10))) / DAY_MS;
}

export function dateOfDay(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}


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

/** The figures of one row as sent: `undefined` = not sent (keeps a stored value on correction). */
export type SentMeasures = Record<Measure, number | undefined>;

/** One row that passed the checks of its own fields, with its figures as sent (before unit conversion). */
export interface ParsedRow extends SentMeasures {
  index: number;
  siteCode: string;
  productCode: string;
  date: string;
  /** Days since 1970-01-01 of `date`. */
  day: number;
  unit: string | null;
}

const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;
// eslint-disable-next-line no-control-regex
export const CONTROL = /[\u0000-\u001f\u007f]/;
/**
 * Half of a surrogate pair without its other half: not a character, and neither PostgreSQL text
 * nor JSON can hold it (in `u` mode a whole pair is one code point, so only lone halves match).
 */
export const LONE_SURROGATE = /\p{Cs}/u;
/** Longest unit name the catalog declares (see catalog.ts): anything longer is no unit. */
const MAX_UNIT_LENGTH = 32;
/** How much of a wrong value a message quotes. */
const MAX_SHOWN = 40;
/** Dates outside this range are typing errors (and year 0 does not exist in PostgreSQL). */
export const EARLIEST_DATE = "1900-01-01";
export const LATEST_DATE = "2999-12-31";
/** No report holds a quadrillion units: larger figures are unit or typing errors. */
export const MAX_QUANTITY = 1e15;

/** Null when `value` is a real calendar date within range, else what is wrong with it. */
export function dateProblem(value: unknown): string | null {
  const checked = calendarDay(value);
  return typeof checked === "string" ? checked : null;
}

/** Days since 1970-01-01 of a real calendar date within range, else what is wrong with it. */
function calendarDay(value: unknown): number | string {
  if (typeof value !== "string" || !DATE.test(value)) return `must be a calendar date as YYYY-MM-DD, got ${show(value)}`;
  // The range first: the day arithmetic below is only meant for years 1900 to 2999.
  if (value < EARLIEST_DATE || value > LATEST_DATE) return `must be between ${EARLIEST_DATE} and ${LATEST_DATE}, got ${value}`;
  const day = civilDay(value);
  if (day === null) return `must be a calendar date as YYYY-MM-DD, got ${show(value)}`;
  return day;
}

/**
 * A value as a message quotes it: numbers as they are, anything else as JSON (strings quoted and
 * escaped, so control characters and lone surrogates show as escapes), cut short when long. Never
 * throws, whatever the value (`String({ toString: 1 })` would).
 */
export function show(v: unknown): string {
  if (typeof v === "number") return String(v);
  if (typeof v === "string") {
    return v.length > MAX_SHOWN ? `${JSON.stringify(v.slice(0, MAX_SHOWN))}… (${v.length} characters)` : JSON.stringify(v);
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(v);
  } catch {
    text = undefined;
  }
  if (text === undefined) return v === undefined ? "undefined" : typeof v === "object" ? "an object that is not plain data" : `a ${typeof v}`;
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}… (${text.length} characters)` : text;
}

function absent(v: unknown): boolean {
  return v === undefined || v === null || (typeof v === "string" && v.trim() === "");
}

function fail(errors: RowError[], index: number, field: string | null, message: string): void {
  errors.push({ index, field, message: `row ${index}: ${message}` });
}

/** A code as sent (site or product), trimmed; `undefined` after recording what is wrong with it. */
function code(errors: RowError[], index: number, field: "siteCode" | "productCode", v: unknown): string | undefined {
  if (typeof v === "string") {
    const trimmed = v.trim();
    if (trimmed === "") fail(errors, index, field, `${field} is required`);
    else if (trimmed.length > 64) fail(errors, index, field, `${field} is longer than 64 characters`);
    else if (CONTROL.test(v)) fail(errors, index, field, `${field} contains control characters; send the plain code`);
    else if (LONE_SURROGATE.test(v)) fail(errors, index, field, `${field} is not valid Unicode text (it holds half of a surrogate pair); send the plain code`);
    else return trimmed;
  } else if (v === undefined || v === null) fail(errors, index, field, `${field} is required`);
  else fail(errors, index, field, `${field} must be text, got ${show(v)}`);
  return undefined;
}

/**
 * One figure as sent: `undefined` when absent or wrong (then recorded in `errors`). Spelled out
 * per measure by the caller, so each property read stays monomorphic on the hot path.
 */
function figure(errors: RowError[], index: number, m: Measure, raw: unknown): number | undefined {
  let n: number;
  if (typeof raw === "number") n = raw;
  else if (raw === undefined || raw === null) return undefined;
  else if (typeof raw === "string") {
    const trimmed = raw.trim();
    if (trimmed === "") return undefined;
    if (!NUMBER.test(trimmed)) {
      fail(errors, index, m, `${m} must be a number, got ${show(raw)}`);
      return undefined;
    }
    n = Number(trimmed);
  } else {
    fail(errors, index, m, `${m} must be a number, got ${show(raw)}`);
    return undefined;
  }
  if (!Number.isFinite(n)) fail(errors, index, m, `${m} must be a finite number, got ${show(raw)}`);
  else if (n < 0) fail(errors, index, m, `${m} must be >= 0, got ${n}`);
  else if (m === "stockoutHours" && n > 24) fail(errors, index, m, `stockoutHours must be between 0 and 24, got ${n}`);
  else if (n > MAX_QUANTITY) fail(errors, index, m, `${m} must be at most ${MAX_QUANTITY.toExponential()}, got ${n}; check the figure and its unit`);
  // -0 (as "-0" or from JSON) is stored as 0: the same figure, without a sign that shows in exports.
  else return n === 0 ? 0 : n;
  return undefined;
}

/** Checks one row's own fields (no database): types, formats, ranges. */
export function parseRow(input: ReportRowInput, index: number, errors: RowError[]): ParsedRow | null {
  const before = errors.length;
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    fail(errors, index, null, "is not an object with siteCode, productCode, date and figures");
    return null;
  }
  const siteCode = code(errors, index, "siteCode", input.siteCode);
  const productCode = code(errors, index, "productCode", input.productCode);

  let date = "";
  let day = 0;
  const rawDate = input.date;
  if (absent(rawDate)) fail(errors, index, "date", "date is required (YYYY-MM-DD, the site's local day)");
  else {
    const trimmed = typeof rawDate === "string" ? rawDate.trim() : rawDate;
    const checked = calendarDay(trimmed);
    if (typeof checked === "string") fail(errors, index, "date", `date ${checked}`);
    else {
      date = trimmed as string;
      day = checked;
    }
  }

  let unit: string | null = null;
  const rawUnit = input.unit;
  if (!absent(rawUnit)) {
    if (typeof rawUnit !== "string") fail(errors, index, "unit", `unit must be text, got ${show(rawUnit)}`);
    else if (CONTROL.test(rawUnit)) fail(errors, index, "unit", "unit contains control characters; send the plain unit name");
    else if (LONE_SURROGATE.test(rawUnit)) fail(errors, index, "unit", "unit is not valid Unicode text (it holds half of a surrogate pair); send the plain unit name");
    else if (rawUnit.trim().length > MAX_UNIT_LENGTH) {
      fail(errors, index, "unit", `unit is longer than ${MAX_UNIT_LENGTH} characters, so no product declares it; send the base unit or a pack unit name (products { units { name } })`);
    } else unit = rawUnit.trim();
  }

  const onHand = figure(errors, index, "onHand", input.onHand);
  const produced = figure(errors, index, "produced", input.produced);
  const capacityPerDay = figure(errors, index, "capacityPerDay", input.capacityPerDay);
  const consumed = figure(errors, index, "consumed", input.consumed);
  const received = figure(errors, index, "received", input.received);
  const shipped = figure(errors, index, "shipped", input.shipped);
  const backlog = figure(errors, index, "backlog", input.backlog);
  const stockoutHours = figure(errors, index, "stockoutHours", input.stockoutHours);
  if (errors.length !== before) return null;
  if (
    onHand === undefined && produced === undefined && capacityPerDay === undefined && consumed === undefined &&
    received === undefined && shipped === undefined && backlog === undefined && stockoutHours === undefined
  ) {
    fail(errors, index, null, `no figures given; send at least one of ${MEASURES.join(", ")}`);
    return null;
  }
  return {
    index, siteCode: siteCode!, productCode: productCode!.toUpperCase(), date, day, unit,
    onHand, produced, capacityPerDay, consumed, received, shipped, backlog, stockoutHours,
  };
}

/** The last answer of localToday per time zone, with the minute it holds for. */
const todayByZone = new Map<string, { minute: number; today: string }>();

/**
 * The calendar day it is now in a time zone, as YYYY-MM-DD. Remembered per zone for the current
 * UTC minute (every zone's offset is a whole number of minutes, in force since the early 20th
 * century, so a zone's date cannot change within one): a time-zone conversion costs about a
 * quarter of a millisecond, which was paid once per batch.
 */
export function localToday(now: Date, timeZone: string): string {
  const minute = Math.floor(now.getTime() / 60_000);
  const cached = todayByZone.get(timeZone);
  if (cached !== undefined && cached.minute === minute) return cached.today;
  const today = format(new TZDate(now.getTime(), timeZone), "yyyy-MM-dd");
  if (todayByZone.size > 1000) todayByZone.clear();
  todayByZone.set(timeZone, { minute, today });
  return today;
}

const DAY_MS = 86_400_000;
const DAYS_IN_MONTH = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Digits at `at`, `at + 1`, … of a string already matched by DATE. */
const digits = (s: string, at: number, n: number) => {
  let v = 0;
  for (let i = at; i < at + n; i++) v = v * 10 + (s.charCodeAt(i) - 48);
  return v;
};

/**
 * Days since 1970-01-01 of a YYYY-MM-DD string already matched by DATE (years 1900 to 2999), or
 * null when it names no real day (2026-02-30): the civil-calendar arithmetic of Howard Hinnant's
 * days_from_civil, without date objects (the same numbers as `dayNumber`).
 */
function civilDay(date: string): number | null {
  const year = digits(date, 0, 4);
  const month = digits(date, 5, 2);
  const day = digits(date, 8, 2);
  if (month < 1 || month > 12 || day < 1) return null;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  if (day > DAYS_IN_MONTH[month]! + (leap && month === 2 ? 1 : 0)) return null;
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  return era * 146_097 + yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear - 719_468;
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

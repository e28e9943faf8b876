// Hostile input (issue 6): property-based tests with fast-check over report rows (in process and
// over the real HTTP endpoint) and over the GraphQL endpoint itself (random and malformed
// documents, variables, bodies, methods and query strings). Whatever a client sends, the service
// answers with something other than a 5xx, does not crash, says what was wrong, and stores every
// good row of a batch exactly once and nothing of a bad one.
//
// The runs are reproducible: every property runs with HOSTILE_SEED (printed by fast-check on a
// failure, with the path of the shrunk counterexample). Re-run one with
//   HOSTILE_SEED=<seed> npx vitest run test/hostile-input.test.ts
// and run longer with HOSTILE_RUNS=<factor> (default 1).
//
// The report CSV reader (issue 8) gets the same properties when it exists; until then the rows
// "in process" include what a CSV reader hands over (numbers as text, blanks, padding).
import { METHODS as HTTP_METHODS, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { sql } from "drizzle-orm";
import fc from "fast-check";
import {
  getNamedType,
  isEnumType,
  isInputObjectType,
  isInterfaceType,
  isListType,
  isNonNullType,
  isObjectType,
  isScalarType,
  isUnionType,
  type GraphQLArgument,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLNamedType,
  type GraphQLObjectType,
} from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { DomainError } from "../src/domain/errors.js";
import { MAX_BATCH_ROWS, submitReports, type SubmitReportsResult } from "../src/domain/reports/ingest.js";
import { MEASURES, dateOfDay, dayNumber, localToday, type RowError } from "../src/domain/reports/validate.js";
import { schema } from "../src/graphql/schema.js";
import { createHttpServer } from "../src/http/server.js";
import { createLogger } from "../src/logger.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { makeUser, seedWorld, type TestUser } from "./helpers/fixtures.js";

const SEED = Number(process.env.HOSTILE_SEED ?? 20260306);
const RUNS = Number(process.env.HOSTILE_RUNS ?? 1);
const runs = (n: number) => Math.max(1, Math.round(n * RUNS));
/** fc.assert with the file's seed; fast-check prints the seed and path of a failure. */
const check = (property: fc.IAsyncProperty<any>, numRuns: number) => fc.assert(property, { seed: SEED, numRuns: runs(numRuns) });

let t: TestDatabase;
let server: Server;
let port: number;
let maker: TestUser; // REPORTER of the manufacturer: owns HZ-MASK-1
let admin: TestUser;
let planner: TestUser;
let docUsers: TestUser[]; // users for random documents, so random mutations cannot touch the users above
/** What the service logged at error level: an unexpected error means a masked 5xx-in-disguise. */
const errorLogs: string[] = [];
/** Per product code: the unit names (lower case) and their factor to the base unit. */
const factors = new Map<string, Map<string, number>>();

const SITES = ["HZ-MASK-1", "HZ-XIHU-H1", "NJ-NW-1"];
const PRODUCTS = ["MASK-N95", "MASK-SURGICAL", "MELTBLOWN-PP", "GLOVES-NITRILE", "NOSE-WIRE"];
const FIELDS = new Set<string | null>([null, "siteCode", "productCode", "date", "unit", ...MEASURES]);
const SUBMIT = "mutation($r: [ReportInput!]!, $k: String) { submitReports(reports: $r, idempotencyKey: $k) { accepted replayed rejected { index field message } } }";

beforeAll(async () => {
  t = await createTestDatabase();
  const world = await seedWorld(t.db);
  maker = await makeUser(t.db, "REPORTER", { organizationId: world.maker.id });
  admin = await makeUser(t.db, "ADMIN");
  planner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330000" });
  docUsers = [
    await makeUser(t.db, "REPORTER", { organizationId: world.hospital.id }),
    await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330100" }),
    await makeUser(t.db, "PROCUREMENT", { organizationId: world.hospital.id }),
    await makeUser(t.db, "ADMIN"),
  ];
  const units = await t.db.execute<{ code: string; base_unit: string; name: string | null; factor: number | null }>(
    sql`select p.code, p.base_unit, u.name, u.factor from product p left join pack_unit u on u.product_id = p.id`,
    "objects",
  );
  for (const u of units) {
    let f = factors.get(u.code);
    if (!f) factors.set(u.code, (f = new Map([[u.base_unit.toLowerCase(), 1]])));
    if (u.name !== null) f.set(u.name.toLowerCase(), Number(u.factor));
  }
  const config = loadConfig({ NODE_ENV: "test", LOG_LEVEL: "error" });
  const logger = createLogger(config, { write: (line: string) => void errorLogs.push(line) });
  server = createHttpServer({ config, db: t.db, logger, ready: async () => {} });
  port = await new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
});
afterAll(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await t?.drop();
});

// ---------------------------------------------------------------------------------------------
// HTTP

interface Answer {
  status: number;
  contentType: string;
  text: string;
  json?: any;
}

async function request(method: string, pathAndQuery: string, body?: string, headers: Record<string, string> = {}): Promise<Answer> {
  // What was logged before belongs to an earlier request (or a failed run that fast-check shrinks).
  if (pathAndQuery !== "/healthz") errorLogs.length = 0;
  const response = await fetch(`http://127.0.0.1:${port}${pathAndQuery}`, {
    method,
    headers,
    body: method === "GET" || method === "HEAD" ? undefined : body,
  });
  const text = await response.text();
  const contentType = response.headers.get("content-type") ?? "";
  let json: unknown;
  if (contentType.includes("json")) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  return { status: response.status, contentType, text, json };
}

const graphql = (token: string | null, body: string, headers: Record<string, string> = {}) =>
  request("POST", "/graphql", body, { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers });

/** Whether the server still answers, and logged no unexpected error while answering. */
async function expectAlive(context: string) {
  const health = await request("GET", "/healthz");
  expect(health.status, `/healthz after ${context}`).toBe(200);
  // Taken out, so one failure does not fail every later check too.
  expect(errorLogs.splice(0), `unexpected errors logged after ${context}`).toEqual([]);
}

const show = (v: unknown) => {
  const s = typeof v === "string" ? v : JSON.stringify(v) ?? String(v);
  return s.length > 300 ? `${s.slice(0, 300)}… (${s.length} characters)` : s;
};

/**
 * A message a person can act on: says what, not how the server broke. What it quotes of the
 * client's own input (in double quotes, or `echoed` verbatim) is left out of the checks: a client
 * may well send the text "select" or "TypeError".
 */
function expectHonestMessage(message: unknown, context: string, echoed: unknown[] = []) {
  expect(typeof message, `message is text: ${context}`).toBe("string");
  let m = (message as string).replace(/"(?:[^"\\]|\\.)*"/g, '""');
  for (const e of echoed) {
    if (typeof e !== "string" || !e.trim()) continue;
    for (const variant of [e, e.trim(), e.trim().toUpperCase()]) m = m.split(variant).join("");
  }
  expect((message as string).trim().length, `message is not empty: ${context}`).toBeGreaterThan(5);
  expect(m, `masked internal error: ${context}`).not.toMatch(/^Unexpected error\b/);
  expect(m, `stack trace in message: ${context}`).not.toMatch(/\n\s+at |\bat (async )?\w+ \(|node_modules|\.ts:\d+|\.js:\d+/);
  expect(m, `SQL in message: ${context}`).not.toMatch(/\bselect\b.*\bfrom\b|\binsert into\b|\bupdate \w+ set\b|\bdelete from\b|violates .*constraint|syntax error at or near/is);
  expect(m, `internals in message: ${context}`).not.toMatch(/\[object \w+\]|Cannot read propert|is not a function|TypeError|RangeError|Maximum call stack/);
}

/**
 * A GraphQL answer to a client's mistake or a success: never a 5xx, a JSON body, and when it is
 * an error, a first error with a message that says what was wrong.
 */
function expectGraphQLAnswer(a: Answer, context: string) {
  const where = `${context} -> ${a.status} ${a.contentType} ${show(a.text)}`;
  expect(a.status, `5xx: ${where}`).toBeLessThan(500);
  expect(a.json, `not a JSON body: ${where}`).toBeTypeOf("object");
  expect(a.json, `not a JSON object: ${where}`).not.toBeNull();
  if (Array.isArray(a.json)) {
    // A batch (a JSON array of operations) is answered with one result per operation.
    expect(a.json.length, `an empty batch answered without an error: ${where}`).toBeGreaterThan(0);
    for (const result of a.json) expectGraphQLResult(result, a.status, where);
  } else expectGraphQLResult(a.json, a.status, where);
}

function expectGraphQLResult(result: unknown, status: number, where: string) {
  expect(result, `not a JSON object: ${where}`).toBeTypeOf("object");
  const { data, errors } = result as { data?: unknown; errors?: { message: unknown }[] };
  if (errors === undefined) {
    expect(status, `success without data: ${where}`).toBe(200);
    expect(data, `neither data nor errors: ${where}`).toBeTypeOf("object");
    return;
  }
  expect(Array.isArray(errors) && errors.length > 0, `errors is a non-empty list: ${where}`).toBe(true);
  for (const e of errors) expectHonestMessage(e.message, where);
}

// ---------------------------------------------------------------------------------------------
// Report rows: generators

/** The site's local day, as the server computes it: rows up to this day are never in the future. */
const today = () => localToday(new Date(), "Asia/Shanghai");
const dayFromToday = (offset: number) => dateOfDay(dayNumber(today()) + offset);

// Spaces only: a code or unit with a tab or line break is refused as holding control characters.
const padded = (s: fc.Arbitrary<string>) => fc.tuple(fc.constantFrom("", " ", "  "), s, fc.constantFrom("", " ")).map(([a, b, c]) => a + b + c);
const casing = (s: string) => fc.constantFrom(s, s.toUpperCase(), s.toLowerCase(), s[0]!.toUpperCase() + s.slice(1));

/** A finite number in range, as GraphQL or CSV would carry it. */
const goodFigure = (csv: boolean) =>
  fc.oneof(
    fc.integer({ min: 0, max: 1_000_000 }),
    fc.double({ min: 0, max: 1e9, noNaN: true, noDefaultInfinity: true }),
    fc.constantFrom(0, -0, 5e-324, 1e-300, 0.1, 1e9),
    ...(csv ? [fc.integer({ min: 0, max: 100_000 }).map((n) => ` ${n} `), fc.constantFrom("1e3", "+12", ".5", "7.", "0")] : []),
  );

/**
 * A row that must be accepted: a site of the actor, a known product in one of its units, a day
 * of the last three weeks (or tomorrow: one day ahead is allowed), at least one figure in range.
 */
const goodRow = (sites: string[], csv: boolean) =>
  fc
    .record(
      {
        siteCode: padded(fc.constantFrom(...sites)),
        productCode: fc.constantFrom(...PRODUCTS).chain((p) => padded(casing(p))),
        date: fc.integer({ min: -20, max: 1 }).map(dayFromToday),
        onHand: goodFigure(csv),
        produced: goodFigure(csv),
        capacityPerDay: goodFigure(csv),
        consumed: goodFigure(csv),
        received: goodFigure(csv),
        shipped: goodFigure(csv),
        backlog: goodFigure(csv),
        stockoutHours: fc.oneof(fc.integer({ min: 0, max: 24 }), fc.double({ min: 0, max: 24, noNaN: true })),
      },
      { requiredKeys: ["siteCode", "productCode", "date"] },
    )
    .chain((row) =>
      fc.option(fc.constantFrom(...factors.get(row.productCode.trim().toUpperCase())!.keys()).chain(casing), { nil: undefined }).map((unit) => {
        const withFigure = MEASURES.some((m) => row[m] !== undefined) ? row : { ...row, onHand: 1 };
        return { ...withFigure, ...(unit === undefined ? {} : { unit }) } as Record<string, unknown>;
      }),
    );

/** Numbers that are not figures: NaN, infinities, negatives, huge and beyond a day's hours. */
const badNumber = fc.constantFrom(NaN, Infinity, -Infinity, -1, -1e-300, -5e-324, 1e15 + 1, 1e300, Number.MAX_VALUE, 25, -0.5);
/** Text that is not what a field wants: empty, blank, control characters, lone surrogates, huge, lookalikes. */
const badText = fc.oneof(
  fc.string(),
  fc.string({ unit: "binary", maxLength: 80 }),
  fc.string({ unit: "grapheme", maxLength: 80 }),
  fc.constantFrom(
    "", " ", "\u0000", "a\u0000b", "\ud800", "x\udfffy", "\u202e", "NaN", "Infinity", "-0", "0x10", "1e400", "1,5", "１２", "12a",
    "2026-02-30", "2026-13-01", "0000-01-01", "1899-12-31", "3000-01-01", "99999-01-01", "2026-3-1", "2026-03-01T00:00:00Z",
    "20260301", "'; drop table report; --", "\"", "\\", "HZ-MASK-1\n", "mask-n95", "MASK-N95 ", "box\u0000", "tonne ", "Carton",
    "x".repeat(65), "y".repeat(10_000), "𝟙𝟚", "ǅ", "ß", "İ",
  ),
);
/** Any JSON-ish value, including what JSON cannot carry (in process, as a CSV reader or a script could pass). */
const anyValue = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  { weight: 2, arbitrary: badText },
  { weight: 2, arbitrary: badNumber },
  { weight: 1, arbitrary: fc.constantFrom(null, undefined, true, false, [], {}, [1], { toString: 1 }, { valueOf: () => 1 }, { toJSON: 5 }) },
);

/** A row with any field replaced by anything, extra fields or required ones missing. */
const hostileRow = (sites: string[], csv: boolean) =>
  fc.oneof(
    {
      weight: 6,
      arbitrary: fc
        .tuple(
          goodRow(sites, csv),
          fc.array(fc.constantFrom("siteCode", "productCode", "date", "unit", ...MEASURES), { minLength: 1, maxLength: 4 }),
          fc.array(anyValue, { minLength: 4, maxLength: 4 }),
          fc.array(fc.constantFrom("siteCode", "productCode", "date", "unit", ...MEASURES), { maxLength: 2 }),
          fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 2 }),
        )
        .map(([row, fields, values, dropped, extra]) => {
          const out: Record<string, unknown> = { ...extra, ...row };
          fields.forEach((f, i) => (out[f] = values[i]));
          for (const f of dropped) delete out[f];
          return out;
        }),
    },
    { weight: 1, arbitrary: anyValue },
    { weight: 1, arbitrary: fc.object({ maxDepth: 1 }) },
  ) as fc.Arbitrary<Record<string, unknown>>; // or anything else: the service must cope

const rowsOf = (sites: string[], csv: boolean) =>
  fc.array(fc.oneof({ weight: 1, arbitrary: goodRow(sites, csv).map((row) => ({ good: true, row })) }, { weight: 1, arbitrary: hostileRow(sites, csv).map((row) => ({ good: false, row })) }), { maxLength: 25 });

// ---------------------------------------------------------------------------------------------
// Report rows: the oracle

interface StoredRow {
  id: number;
  revision: number;
  measures: (number | null)[];
  flags: string[];
}
/** Every report, by natural key `site|product|date`. */
async function snapshot(): Promise<Map<string, StoredRow>> {
  const rows = await t.db.execute<Record<string, any>>(
    sql`select s.code as site, p.code as product, r.date::text as date, r.id::int as id, r.revision, r.on_hand, r.produced,
               r.capacity_per_day, r.consumed, r.received, r.shipped, r.backlog, r.stockout_hours, r.quality_flags
        from report r join site s on s.id = r.site_id join product p on p.id = r.product_id`,
    "objects",
  );
  const cols = ["on_hand", "produced", "capacity_per_day", "consumed", "received", "shipped", "backlog", "stockout_hours"];
  return new Map(
    rows.map((r) => [
      `${r.site}|${r.product}|${r.date}`,
      { id: r.id, revision: r.revision, measures: cols.map((c) => (r[c] === null ? null : Number(r[c]))), flags: r.quality_flags },
    ]),
  );
}

/** Counters the batch must move together or not at all. */
async function counters() {
  const [row] = await t.db.execute<{ outbox: number; audit: number; keys: number }>(
    sql`select (select count(*)::int from outbox where topic = 'reports.submitted') as outbox,
               (select count(*)::int from audit_log where action = 'reports.submit') as audit,
               (select count(*)::int from idempotency_key where operation = 'submitReports') as keys`,
    "objects",
  );
  return row!;
}

/** Nothing half-written anywhere: each report has exactly its earlier versions, each is in an outbox event. */
async function expectConsistent(context: string) {
  const broken = await t.db.execute<{ id: number; revision: number; versions: number; top: number }>(
    sql`select r.id::int as id, r.revision, v.versions, v.top from report r
        cross join lateral (select count(*)::int as versions, coalesce(max(revision), 0)::int as top from report_revision where report_id = r.id) v
        where v.versions <> r.revision - 1 or v.top <> r.revision - 1`,
    "objects",
  );
  expect(broken, `reports whose revisions are not 1..revision-1, ${context}`).toEqual([]);
  const unannounced = await t.db.execute<{ id: number }>(
    sql`select r.id::int as id from report r where not exists (
          select 1 from outbox o where o.topic = 'reports.submitted' and o.payload -> 'reportIds' @> to_jsonb(r.id))`,
    "objects",
  );
  expect(unannounced, `reports in no outbox event, ${context}`).toEqual([]);
}

const isBlank = (v: unknown) => v === undefined || v === null || (typeof v === "string" && v.trim() === "");

/** A row as the service must understand it when it accepts it. */
function normalized(row: Record<string, unknown>) {
  const product = String(row.productCode).trim().toUpperCase();
  const unit = isBlank(row.unit) ? null : String(row.unit).trim().toLowerCase();
  const factor = unit === null ? 1 : factors.get(product)?.get(unit);
  const sent = MEASURES.map((m) => {
    const v = row[m];
    if (isBlank(v)) return undefined;
    return typeof v === "string" ? Number(v.trim()) : (v as number);
  });
  return { key: `${String(row.siteCode).trim()}|${product}|${String(row.date).trim()}`, factor, sent };
}

const sameNumber = (a: number | null, b: number | null) => a === b; // -0 === 0, as PostgreSQL compares them

/**
 * Checks one batch's answer against the database before and after it: every rejected row is
 * explained, good rows are stored exactly once with the figures sent (in base units), rejected
 * rows change nothing, and the batch's other writes (outbox, audit, idempotency) moved with it.
 */
function expectBatchOutcome(
  rows: { good: boolean; row: Record<string, unknown> }[],
  result: Pick<SubmitReportsResult, "accepted" | "rejected" | "replayed">,
  before: Map<string, StoredRow>,
  after: Map<string, StoredRow>,
  context: string,
) {
  const where = (i?: number) => `${context}${i === undefined ? "" : `, row ${i}: ${show(rows[i]!.row)}`}`;
  const rejectedRows = new Set<number>();
  for (const e of result.rejected as RowError[]) {
    expect(Number.isInteger(e.index) && e.index >= 0 && e.index < rows.length, `index in range: ${show(e)}, ${where()}`).toBe(true);
    expect(FIELDS.has(e.field), `field ${show(e.field)} is a ReportInput field, ${where(e.index)}`).toBe(true);
    expect(e.message.startsWith(`row ${e.index}: `), `message names the row: ${show(e.message)}, ${where(e.index)}`).toBe(true);
    const row: unknown = rows[e.index]!.row;
    expectHonestMessage(e.message.slice(`row ${e.index}: `.length), where(e.index), row !== null && typeof row === "object" ? Object.values(row) : [row]);
    expect(e.message.length, `message of reasonable length: ${show(e.message)}`).toBeLessThanOrEqual(400);
    if (e.field !== null) {
      const stem = e.field === "siteCode" ? "site" : e.field === "productCode" ? "product" : e.field;
      expect(e.message, `message names its field, ${where(e.index)}`).toContain(stem);
    }
    rejectedRows.add(e.index);
  }
  expect(result.accepted, `accepted + rejected = rows, ${where()}`).toBe(rows.length - rejectedRows.size);

  if (result.replayed) {
    expect(after, `a replay writes nothing, ${context}`).toEqual(before);
    return;
  }
  // Checked in plain code, with one assertion at the end: a batch has up to 5,000 rows.
  const problems: string[] = [];
  const touched = new Set<string>();
  const acceptedKeys = new Map<string, number>();
  const today1 = dayFromToday(1);
  rows.forEach(({ good, row }, i) => {
    const problem = (what: string) => problems.push(`${what}, ${where(i)}`);
    if (rejectedRows.has(i)) {
      if (!good) return;
      // A good row is only ever refused as a repeat of an earlier row of the batch with the same key.
      const errors = (result.rejected as RowError[]).filter((e) => e.index === i);
      const earlier = errors.length === 1 ? /^row \d+: same site, product and date as row (\d+);/.exec(errors[0]!.message) : null;
      if (!earlier) problem(`good row refused: ${show(errors)}`);
      else if (!(Number(earlier[1]) < i && normalized(rows[Number(earlier[1])]!.row).key === normalized(row).key)) problem(`refused as a repeat of row ${earlier[1]}, which it is not`);
      return;
    }
    const { key, factor, sent } = normalized(row);
    if (acceptedKeys.has(key)) problem(`two accepted rows (${acceptedKeys.get(key)} and ${i}) for one key`);
    acceptedKeys.set(key, i);
    if (typeof factor !== "number") return problem("accepted in an undeclared unit");
    const date = key.split("|")[2]!;
    if (!(date >= "1900-01-01" && date <= today1)) problem(`accepted date ${date}`);
    const now = after.get(key);
    if (!now) return problem(`accepted but not stored under ${key}`);
    const old = before.get(key);
    const expected = MEASURES.map((m, k) => {
      const v = sent[k];
      if (v === undefined) return old ? old.measures[k]! : null;
      return m === "stockoutHours" ? v : v * factor;
    });
    expected.forEach((v, k) => {
      if (!sameNumber(now.measures[k]!, v)) problem(`${MEASURES[k]} stored ${now.measures[k]}, expected ${v}`);
      if (Object.is(now.measures[k], -0)) problem(`${MEASURES[k]} stored as -0`);
    });
    const unchanged = old !== undefined && old.measures.every((v, k) => sameNumber(v, expected[k]!));
    const revision = old === undefined ? 1 : unchanged ? old.revision : old.revision + 1;
    if (now.revision !== revision) problem(`revision ${now.revision} of ${key}, expected ${revision}`);
    if (old && now.id !== old.id) problem(`a correction changed the report's id from ${old.id} to ${now.id}`);
    touched.add(key);
  });
  // Nothing else changed, except quality flags of neighbours (a corrected day re-balances the next).
  for (const [key, was] of before) {
    if (touched.has(key)) continue;
    const now = after.get(key);
    if (!now || now.id !== was.id || now.revision !== was.revision || !now.measures.every((v, k) => Object.is(v, was.measures[k]))) {
      problems.push(`report ${key} changed without an accepted row for it: ${show(was)} -> ${show(now)}, ${context}`);
    }
  }
  for (const key of after.keys()) {
    if (!before.has(key) && !touched.has(key)) problems.push(`report ${key} appeared without an accepted row for it, ${context}`);
  }
  expect(problems).toEqual([]);
}

/** The counters after a batch that was answered (not refused as a whole). */
function expectCountersMoved(was: Awaited<ReturnType<typeof counters>>, now: Awaited<ReturnType<typeof counters>>, result: { accepted: number; replayed?: boolean }, keyed: boolean, context: string) {
  if (result.replayed) {
    expect(now, `a replay writes nothing, ${context}`).toEqual(was);
    return;
  }
  expect(now, `one audit row, one outbox event when rows were stored, one idempotency record when keyed, ${context}`).toEqual({
    outbox: was.outbox + (result.accepted > 0 ? 1 : 0),
    audit: was.audit + 1,
    keys: was.keys + (keyed ? 1 : 0),
  });
}

/** Idempotency keys as clients (and attackers) send them. */
const idempotencyKey = fc.oneof(
  { weight: 4, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.uuid() },
  { weight: 1, arbitrary: fc.constantFrom("k1", " k1 ", "k2", "") },
  { weight: 1, arbitrary: badText },
);
/** The state of the keys used so far, per user (trimmed as the service trims them). */
const usedKeys = new Map<string, { body: string; result: { accepted: number; rejected: RowError[] } }>();
const keyOf = (user: TestUser, key: string | undefined) => {
  const k = key?.trim();
  return k ? `${user.viewer.userId}|${k}` : null;
};
/** The body as the idempotency check compares it: absent and null fields are the same. */
const canonical = (rows: unknown[]) =>
  JSON.stringify(
    rows.map((row) =>
      row !== null && typeof row === "object"
        ? Object.fromEntries(Object.entries(row).filter(([, v]) => v !== null && v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1)))
        : row,
    ),
  );

describe("report rows, in process", () => {
  it("never crash; each rejected row is explained; good rows are stored exactly once, bad ones not at all", async () => {
    const batch = fc.tuple(fc.constantFrom("maker", "admin"), fc.boolean()).chain(([who, csv]) =>
      fc.record({ who: fc.constant(who), rows: rowsOf(who === "admin" ? SITES : ["HZ-MASK-1"], csv), key: idempotencyKey }),
    );
    await check(
      fc.asyncProperty(batch, async ({ who, rows, key }) => {
        const user = who === "admin" ? admin : maker;
        const context = `${who} sends ${rows.length} rows${key === undefined ? "" : ` with key ${show(key)}`}`;
        const [before, was] = [await snapshot(), await counters()];
        let result: SubmitReportsResult;
        try {
          result = await submitReports(t.db, user.actor, rows.map((r) => r.row), { backfillDays: 7, idempotencyKey: key });
        } catch (error) {
          // Refused as a whole: only a bad key may do that, with a message, and nothing is written.
          expect(error, `${context} threw ${String(error)}`).toBeInstanceOf(DomainError);
          expectHonestMessage((error as DomainError).message, context);
          expect(["BAD_INPUT", "IDEMPOTENCY_KEY_REUSED"]).toContain((error as DomainError).code);
          if ((error as DomainError).code === "BAD_INPUT") expect((error as DomainError).message).toContain("idempotencyKey");
          else expect(usedKeys.get(keyOf(user, key)!)?.body, `${context}: a new key refused as reused`).not.toBe(canonical(rows.map((r) => r.row)));
          expect(await snapshot()).toEqual(before);
          expect(await counters()).toEqual(was);
          return;
        }
        const k = keyOf(user, key);
        const earlier = k === null ? undefined : usedKeys.get(k);
        expect(!!result.replayed, `${context}: replayed only for a key used before`).toBe(earlier !== undefined);
        if (earlier) expect({ accepted: result.accepted, rejected: result.rejected }).toEqual(earlier.result);
        else if (k !== null) usedKeys.set(k, { body: canonical(rows.map((r) => r.row)), result: { accepted: result.accepted, rejected: result.rejected } });
        const after = await snapshot();
        expectBatchOutcome(rows, result, before, after, context);
        expect(result.reportIds).toHaveLength(result.accepted);
        expectCountersMoved(was, await counters(), result, k !== null, context);
        await expectConsistent(context);
      }),
      60,
    );
  });

  // What the properties found, kept as concrete examples.
  it("explains values whose text form is broken, huge or not text at all (regressions)", async () => {
    const base = { siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: dayFromToday(-2) };
    const cases: [Record<string, unknown>, string | null, RegExp][] = [
      // String({ toString: 1 }) throws: the whole batch failed with a TypeError instead of a row error.
      [{ ...base, onHand: { toString: 1 } }, "onHand", /onHand must be a number, got \{"toString":1\}/],
      [{ ...base, date: { toString: 1 } }, "date", /date must be a calendar date as YYYY-MM-DD, got \{"toString":1\}/],
      [{ ...base, siteCode: { toString: 1 } }, "siteCode", /siteCode must be text, got \{"toString":1\}/],
      // An empty list read "got " with nothing after it.
      [{ ...base, produced: [] }, "produced", /produced must be a number, got \[\]/],
      [{ ...base, unit: ["box"] }, "unit", /unit must be text, got \["box"\]/],
      // A 10,000-character value was quoted in full in the message (and stored with the idempotency record).
      [{ ...base, onHand: "9".repeat(5) + "x".repeat(10_000) }, "onHand", /onHand must be a number, got "99999x+"… \(10005 characters\)$/],
      [{ ...base, unit: "u".repeat(10_000) }, "unit", /unit is longer than 32 characters/],
      // Lone surrogates cannot be stored in PostgreSQL text or JSON: refused with a reason, not a failed batch.
      [{ ...base, siteCode: "HZ-\ud800" }, "siteCode", /siteCode is not valid Unicode text/],
      [{ ...base, productCode: "\udfffMASK" }, "productCode", /productCode is not valid Unicode text/],
      [{ ...base, unit: "box\ud800" }, "unit", /unit is not valid Unicode text/],
      // A row that is a list is not a row.
      [["HZ-MASK-1", "MASK-N95"] as never, null, /is not an object with siteCode, productCode, date and figures/],
    ];
    for (const key of [undefined, "regression-key-1"]) {
      const result = await submitReports(t.db, maker.actor, cases.map(([row]) => row), { backfillDays: 7, idempotencyKey: key });
      expect(result.accepted).toBe(0);
      cases.forEach(([, field, message], i) => {
        const errors = result.rejected.filter((e) => e.index === i);
        expect(errors, `case ${i}`).toHaveLength(1);
        expect(errors[0]!.field, `case ${i}`).toBe(field);
        expect(errors[0]!.message, `case ${i}`).toMatch(message);
      });
    }
  });

  it("stores -0 as 0 (regression)", async () => {
    const row = { siteCode: "HZ-MASK-1", productCode: "EARLOOP", date: dayFromToday(-3), onHand: -0, produced: "-0", unit: "bag" };
    const result = await submitReports(t.db, maker.actor, [row], { backfillDays: 7 });
    expect(result).toMatchObject({ accepted: 1, rejected: [] });
    const stored = (await snapshot()).get(`HZ-MASK-1|EARLOOP|${row.date}`)!;
    expect(Object.is(stored.measures[0], 0) && Object.is(stored.measures[1], 0)).toBe(true);
  });

  it("refuses idempotency keys that cannot be stored, saying why (regressions)", async () => {
    for (const [key, message] of [
      // NUL: PostgreSQL text cannot hold it; answered "use ids exactly as this API returned them".
      ["a\u0000b", /idempotencyKey contains control characters/],
      // A lone surrogate: the audit row's JSON refused it; answered "invalid input syntax for type json".
      ["\ud800", /idempotencyKey is not valid Unicode text/],
      ["k".repeat(201), /idempotencyKey is longer than 200 characters/],
    ] as const) {
      const was = await counters();
      const error = await submitReports(t.db, maker.actor, [{ siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: dayFromToday(0), onHand: 1 }], {
        backfillDays: 7,
        idempotencyKey: key,
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DomainError);
      expect((error as DomainError).code).toBe("BAD_INPUT");
      expect((error as DomainError).message).toMatch(message);
      expect(await counters()).toEqual(was);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Report rows over HTTP

/** A value that JSON.stringify cannot write but a JSON body can carry: a raw number token. */
class RawNumber {
  constructor(readonly token: string) {}
}
/** JSON text with RawNumber tokens written as they are. */
function toJson(value: unknown): string {
  if (value instanceof RawNumber) return value.token;
  if (Array.isArray(value)) return `[${value.map(toJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    return `{${Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}
const rawNumber = fc.constantFrom("1e400", "-1e400", "1e-400", "-0", "-0.0", "5e-324", "123456789012345678901234567890", "0.00000000000000000000001", "1E3", "9007199254740993").map((s) => new RawNumber(s));
/** The number a JSON parser reads from a raw token. */
const numberOf = (v: unknown) => (v instanceof RawNumber ? Number(v.token) : v);

/** Values GraphQL accepts for a field (so the batch is not refused at coercion), but the service may not. */
const typedHostileRow = (sites: string[]) =>
  fc
    .tuple(
      goodRow(sites, false),
      fc.array(
        fc.oneof(
          fc.record({ f: fc.constantFrom("siteCode", "productCode", "unit"), v: badText.filter((s) => s.length < 2000) }),
          fc.record({ f: fc.constantFrom("siteCode"), v: fc.constantFrom(...SITES, "NOPE") }),
          fc.record({ f: fc.constantFrom("date"), v: fc.constantFrom("1900-01-01", "2999-12-31", "2000-02-29", dayFromToday(2), dayFromToday(400), "1969-12-31") }),
          fc.record({ f: fc.constantFrom(...MEASURES), v: fc.oneof(fc.constantFrom(-1, -0.001, 1e15 + 2, 1e300, 25, 1e308), rawNumber, fc.double({ noNaN: true, noDefaultInfinity: true })) }),
        ),
        { minLength: 1, maxLength: 3 },
      ),
    )
    .map(([row, changes]) => {
      const out = { ...row };
      for (const { f, v } of changes) out[f] = v;
      return out;
    });

describe("report rows over HTTP", () => {
  it("never a 5xx; coercion errors name the value and change nothing; accepted rows are stored exactly once", async () => {
    const batch = fc.record({
      who: fc.constantFrom("maker", "admin", "planner", "nobody"),
      rows: fc.array(
        fc.oneof(
          { weight: 3, arbitrary: goodRow(["HZ-MASK-1"], false).map((row) => ({ good: true, row })) },
          { weight: 3, arbitrary: typedHostileRow(SITES).map((row) => ({ good: false, row })) },
          { weight: 1, arbitrary: hostileRow(SITES, false).map((row) => ({ good: false, row })) },
        ),
        { maxLength: 25 },
      ),
      key: idempotencyKey,
      rawVariables: fc.option(fc.jsonValue({ maxDepth: 3 }), { freq: 8 }),
    });
    await check(
      fc.asyncProperty(batch, async ({ who, rows, key, rawVariables }) => {
        const user = who === "admin" ? admin : who === "maker" ? maker : who === "planner" ? planner : null;
        const variables = rawVariables ?? { r: rows.map((r) => r.row), ...(key === undefined ? {} : { k: key }) };
        const body = `{"query":${JSON.stringify(SUBMIT)},"variables":${toJson(variables)}}`;
        const context = `${who} posts ${show(body)}`;
        const [before, was] = [await snapshot(), await counters()];
        const answer = await graphql(user?.token ?? null, body);
        expectGraphQLAnswer(answer, context);
        const { data, errors } = answer.json as { data?: any; errors?: { message: string; extensions?: { code?: string } }[] };
        if (errors) {
          expect(await snapshot(), `an error answer wrote reports, ${context}`).toEqual(before);
          expect(await counters(), `an error answer wrote, ${context}`).toEqual(was);
          const first = errors[0]!.message;
          if (rawVariables !== null) return;
          if (first.startsWith("Variable ")) expect(first, context).toMatch(/^Variable "\$[rk]" (got invalid value .* at "[rk](\[\d+\](\.\w+)?)?"; |of required type "\[ReportInput!\]!" was not provided)/s);
          else if (user === null) expect(first, context).toContain("not signed in");
          else if (user === planner) expect(first, context).toMatch(/^not allowed: /);
          else expect(first, context).toMatch(/idempotencyKey/);
          return;
        }
        expect(user === maker || user === admin, `${who} was allowed to submit`).toBe(true);
        if (rawVariables !== null) return; // random variables that happened to be a valid batch: no oracle for them
        // Rows reached the service as GraphQL coerced them: raw number tokens are the numbers JSON reads.
        const sent = rows.map(({ good, row }) => ({ good, row: Object.fromEntries(Object.entries(row).map(([f, v]) => [f, numberOf(v)])) }));
        const result = data.submitReports as { accepted: number; replayed: boolean; rejected: RowError[] };
        const k = keyOf(user!, key);
        const earlier = k === null ? undefined : usedKeys.get(k);
        expect(result.replayed, `${context}: replayed only for a key used before`).toBe(earlier !== undefined);
        if (earlier) expect({ accepted: result.accepted, rejected: result.rejected }).toEqual(earlier.result);
        else if (k !== null) usedKeys.set(k, { body: canonical(sent.map((r) => r.row)), result: { accepted: result.accepted, rejected: result.rejected } });
        expectBatchOutcome(sent, result, before, await snapshot(), context);
        expectCountersMoved(was, await counters(), result, k !== null, context);
        await expectConsistent(context);
        await expectAlive(context);
      }),
      60,
    );
  });

  it("refuses idempotency keys that cannot be stored with a message about the key (regressions)", async () => {
    const row = { siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: dayFromToday(0), onHand: 3 };
    for (const [key, message] of [["\u0000", /idempotencyKey contains control characters/], ["\ud800", /idempotencyKey is not valid Unicode text/]] as const) {
      const answer = await graphql(maker.token, JSON.stringify({ query: SUBMIT, variables: { r: [row], k: key } }));
      expectGraphQLAnswer(answer, `key ${show(key)}`);
      expect(answer.json.errors[0]).toMatchObject({ message: expect.stringMatching(message), extensions: { code: "BAD_INPUT" } });
    }
    // A site code with a lone surrogate under a key: the stored answer's JSON refused the message quoting it.
    const answer = await graphql(maker.token, JSON.stringify({ query: SUBMIT, variables: { r: [row, { ...row, siteCode: "\udc00" }], k: "lone-surrogate-row" } }));
    expectGraphQLAnswer(answer, "lone surrogate in a keyed batch");
    expect(answer.json.data.submitReports).toMatchObject({ accepted: 1, rejected: [{ index: 1, field: "siteCode", message: expect.stringContaining("not valid Unicode text") }] });
    await expectAlive("idempotency keys");
  });
});

// ---------------------------------------------------------------------------------------------
// The GraphQL endpoint: documents

const PUNCTUATION = ["{", "}", "(", ")", "[", "]", ":", "$", "!", "@", "...", "=", "|", "&", ",", "\"", '"""', "#", "\n"];
const KEYWORDS = ["query", "mutation", "subscription", "fragment", "on", "true", "false", "null", "schema", "type", "input", "enum", "directive", "@include(if: true)", "@skip(if: $v)", "@deprecated"];
const schemaNames = (() => {
  const names = new Set<string>();
  for (const type of Object.values(schema.getTypeMap())) {
    names.add(type.name);
    if (isObjectType(type) || isInterfaceType(type) || isInputObjectType(type)) {
      for (const field of Object.values(type.getFields())) {
        names.add(field.name);
        if ("args" in field) for (const arg of field.args) names.add(arg.name);
      }
    }
    if (isEnumType(type)) for (const v of type.getValues()) names.add(v.name);
  }
  return [...names];
})();
const LITERALS = ['"HZ-MASK-1"', '"330100"', '""', '"\\u0000"', '"\\ud800"', '"\\"', "0", "-1", "1e400", "2147483648", "3.5", "[1, 2]", "{a: 1}", "$v", "$r", "\"2026-02-30\"", "\"UmVwb3J0OjE=\""];

const tokenSoup = fc
  .tuple(
    fc.array(fc.oneof(fc.constantFrom(...PUNCTUATION), fc.constantFrom(...KEYWORDS), fc.constantFrom(...schemaNames), fc.constantFrom(...LITERALS), fc.string({ maxLength: 4 })), { maxLength: 60 }),
    fc.constantFrom(" ", "", "\n", ","),
  )
  .map(([tokens, sep]) => tokens.join(sep));

/** A small deterministic PRNG, so a generated document is a function of its seed. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, pick, chance: (p: number) => next() < p };
}
type Rng = ReturnType<typeof prng>;

/** A literal for an input type: mostly of the right shape, sometimes not. */
function literal(rng: Rng, type: GraphQLInputType, depth = 0): string {
  if (rng.chance(0.03) || depth > 4) return rng.pick(LITERALS);
  if (isNonNullType(type)) return literal(rng, type.ofType, depth);
  if (isListType(type)) return `[${Array.from({ length: rng.int(3) }, () => literal(rng, type.ofType, depth + 1)).join(", ")}]`;
  if (isEnumType(type)) return rng.chance(0.9) ? rng.pick(type.getValues()).name : "NOT_A_VALUE";
  if (isInputObjectType(type)) {
    const fields = Object.values(type.getFields()).filter((f) => isNonNullType(f.type) || rng.chance(0.5));
    return `{${fields.map((f) => `${f.name}: ${literal(rng, f.type, depth + 1)}`).join(", ")}}`;
  }
  switch ((type as GraphQLNamedType).name) {
    case "Int":
      return String(rng.chance(0.9) ? rng.pick([0, 1, 5, 20, 100]) : rng.pick([101, -1, 2 ** 31]));
    case "Float":
      return String(rng.pick([0, 1.5, -2, 1e20, 5e-324]));
    case "Boolean":
      return rng.pick(["true", "false"]);
    case "Date":
      return JSON.stringify(rng.chance(0.8) ? dayFromToday(-rng.int(30)) : rng.pick(["2026-02-30", "1899-01-01", "x"]));
    case "DateTime":
      return JSON.stringify(rng.pick([new Date().toISOString(), "2026-13-01T00:00:00Z", "yesterday"]));
    case "ID":
      return JSON.stringify(rng.pick(["", "UmVwb3J0OjE=", "UmVnaW9uOjE=", "T3JnYW5pemF0aW9uOm5vcGU=", "x", "\u0000"]));
    case "JSONObject":
      return rng.pick(["{a: 1}", "{}", "1", '"x"']);
    default:
      return JSON.stringify(
        rng.chance(0.85)
          ? rng.pick(["HZ-MASK-1", "HZ-XIHU-H1", "MASK-N95", "mask-n95", "MELTBLOWN-PP", "330100", "330106", "CN", "https://example.org/hook", "reason"])
          : rng.pick(["", " ", "\u0000", "a\u0000b", "\ud800", "x".repeat(300), "330100\n", "%", "'; select 1; --"]),
      );
  }
}

/** A selection set over a type of the schema: real fields with random arguments, sometimes wrong ones. */
function selection(rng: Rng, type: GraphQLNamedType, depth: number, maxDepth: number, vars: Map<string, string>): string {
  if (isUnionType(type) || isInterfaceType(type)) {
    const options = isUnionType(type) ? type.getTypes() : schema.getPossibleTypes(type);
    const parts = ["__typename", ...options.filter(() => rng.chance(0.4)).map((o) => `... on ${o.name} ${selection(rng, o, depth + 1, maxDepth, vars)}`)];
    return `{ ${parts.join(" ")} }`;
  }
  if (!isObjectType(type)) return "";
  const fields = Object.values((type as GraphQLObjectType).getFields());
  // Distinct fields: the same field twice with other arguments is only a validation error.
  const chosen = [...new Set(Array.from({ length: type === schema.getSubscriptionType() ? 1 : 1 + rng.int(3) }, () => rng.pick(fields)))];
  const parts = chosen.map((field: GraphQLField<unknown, unknown>) => {
    const alias = rng.chance(0.1) ? `a${rng.int(1000)}: ` : "";
    const name = rng.chance(0.02) ? `${field.name}X` : field.name;
    const args = field.args
      .filter((a: GraphQLArgument) => isNonNullType(a.type) ? rng.chance(0.9) : rng.chance(0.4))
      .map((a: GraphQLArgument) => {
        if (rng.chance(0.2)) {
          const v = `v${vars.size}`;
          vars.set(v, rng.chance(0.95) ? String(a.type) : rng.pick(["String", "Int!", "[ID!]!", "Nope", "Date"]));
          return `${a.name}: $${v}`;
        }
        return `${a.name}: ${literal(rng, a.type)}`;
      });
    if (rng.chance(0.02)) args.push(`bogus: 1`);
    const named = getNamedType(field.type);
    const sub =
      isScalarType(named) || isEnumType(named) ? (rng.chance(0.02) ? " { x }" : "")
      : depth >= maxDepth ? (rng.chance(0.02) ? "" : " { __typename }")
      : ` ${selection(rng, named, depth + 1, maxDepth, vars)}`;
    return `${alias}${name}${args.length ? `(${args.join(", ")})` : ""}${sub}`;
  });
  return `{ ${parts.join(" ")} }`;
}

function randomDocument(seed: number): { query: string; variableNames: string[] } {
  const rng = prng(seed);
  const operation = rng.pick(["query", "query", "query", "mutation", "subscription", ""] as const);
  const root = operation === "mutation" ? schema.getMutationType()! : operation === "subscription" ? schema.getSubscriptionType()! : schema.getQueryType()!;
  const vars = new Map<string, string>();
  const body = selection(rng, root, 0, 1 + rng.int(5), vars);
  const declared = [...vars].map(([name, type]) => `$${name}: ${type}`).join(", ");
  const head = operation === "" && !vars.size ? "" : `${operation || "query"}${rng.chance(0.3) ? " Op" : ""}${declared ? `(${declared})` : ""} `;
  return { query: head + body, variableNames: [...vars.keys()] };
}

const tokens = () => fc.constantFrom<(TestUser | null)[]>(null, ...docUsers).map((u) => u?.token ?? null);
const anyVariables = (names: string[]) =>
  fc.oneof(
    { weight: 2, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
    {
      weight: 6,
      arbitrary: fc.record(
        Object.fromEntries(names.map((n) => [n, fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom("HZ-MASK-1", "330100", "MASK-N95", dayFromToday(0), 1, 20, true, [], {}))])) as Record<string, fc.Arbitrary<unknown>>,
      ),
    },
  );

describe("the GraphQL endpoint, with random documents", () => {
  it("answers any string, unicode string or token soup with a located error, never a 5xx", async () => {
    const query = fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: "binary", maxLength: 200 }), fc.string({ unit: "grapheme", maxLength: 100 }), tokenSoup);
    await check(
      fc.asyncProperty(query, tokens(), fc.option(fc.jsonValue({ maxDepth: 2 })), fc.option(fc.string({ maxLength: 20 })), async (q, token, variables, operationName) => {
        const body = JSON.stringify({ query: q, ...(variables === null ? {} : { variables }), ...(operationName === null ? {} : { operationName }) });
        const answer = await graphql(token, body);
        expectGraphQLAnswer(answer, `POST ${show(body)}`);
        await expectAlive(`POST ${show(body)}`);
      }),
      120,
    );
  });

  it("answers schema-shaped documents with random arguments and variables with data or an error that says what was wrong", async () => {
    const document = fc.noShrink(fc.integer()).map(randomDocument);
    await check(
      fc.asyncProperty(
        document.chain((d) => fc.tuple(fc.constant(d), anyVariables(d.variableNames), tokens())),
        async ([{ query }, variables, token]) => {
          const body = JSON.stringify({ query, ...(variables === undefined ? {} : { variables }) });
          const answer = await graphql(token, body);
          expectGraphQLAnswer(answer, `POST ${show(body)}`);
          await expectAlive(`POST ${show(body)}`);
        },
      ),
      150,
    );
  });

  it("answers deep nesting and long alias lists with an error or data, never a crash", async () => {
    const nested = fc.oneof(
      fc.integer({ min: 1, max: 3000 }).map((n) => `{ regions { ${"children { ".repeat(n)}code${" }".repeat(n)} } }`),
      fc.integer({ min: 1, max: 3000 }).map((n) => `{ regions(parentCode: ${"[".repeat(n)}"CN"${"]".repeat(n)}) { code } }`),
      fc.integer({ min: 1, max: 3000 }).map((n) => `query($v: ${"[".repeat(n)}String${"]".repeat(n)}) { me { role } }`),
      fc.integer({ min: 1, max: 3000 }).map((n) => `{ ${"me { organization { sites { organization { ".repeat(Math.ceil(n / 4))}name${" } } } }".repeat(Math.ceil(n / 4))} }`),
      fc.integer({ min: 1, max: 5000 }).map((n) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: __typename`).join(" ")} }`),
      fc.integer({ min: 1, max: 2000 }).map((n) => `{ ${Array.from({ length: n }, (_, i) => `r${i}: regions { code }`).join(" ")} }`),
      fc.integer({ min: 1, max: 2000 }).map((n) => `query ${"@include(if: true) ".repeat(n)} { me { role } }`),
      fc.integer({ min: 1, max: 500 }).map((n) => `{ ...F0 } ${Array.from({ length: n }, (_, i) => `fragment F${i} on Query { me { role } ...F${i + 1} }`).join(" ")} fragment F${n} on Query { __typename }`),
    );
    await check(
      fc.asyncProperty(nested, tokens(), async (query, token) => {
        const answer = await graphql(token, JSON.stringify({ query }));
        expectGraphQLAnswer(answer, `POST ${show(query)}`);
        await expectAlive(`POST ${show(query)}`);
      }),
      40,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The GraphQL endpoint: bodies, methods, headers and query strings

const CONTENT_TYPES = [
  "application/json", "application/json; charset=utf-8", "application/graphql-response+json", "application/graphql", "text/plain", "",
  "application/x-www-form-urlencoded", "multipart/form-data", "multipart/form-data; boundary=x", "application/xml", "json", "*/*", "application/json; charset=utf-16",
];
const ACCEPTS = [undefined, "application/json", "application/graphql-response+json", "*/*", "application/json, text/plain", "text/plain", "application/xml", "image/png"];
// (fetch refuses to send TRACE, TRACK and CONNECT.)
const METHODS_NODE_PARSES = new Set(HTTP_METHODS);
const METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "PROPFIND", "QUERY", "X-Y"];
const AUTHS = [undefined, "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer x y", "Bearer \u00ff", "Token abc", "Bearer " + "a".repeat(5000)];

const body = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.string({ unit: "binary", maxLength: 200 }),
  fc.json({ maxDepth: 3 }),
  fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify({ query: v })),
  fc.record({ query: fc.oneof(fc.string(), tokenSoup), variables: fc.jsonValue({ maxDepth: 2 }), operationName: fc.jsonValue({ maxDepth: 1 }), extensions: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
  fc.constantFrom("", "{", "}", "[]", "[{}]", "null", "1", '"x"', "true", '{"query":', '{"query": "{ me { role } }"', '{"query":"{ me { role } }"}', '{"query":"{ me { role } }","query":1}', "\u0000", "\ufeff{}", "{\"query\":\"\\ud800\"}", "query=%7B%7D", "--x\r\n\r\n--x--"),
  fc.integer({ min: 10_000, max: 200_000 }).map((n) => JSON.stringify({ query: `{ me { role } } #${"x".repeat(n)}` })),
  fc.integer({ min: 10_000, max: 200_000 }).map((n) => JSON.stringify({ query: "{ __typename }", variables: { pad: "y".repeat(n) } })),
);
const queryString = fc.oneof(
  fc.constant(""),
  fc.webQueryParameters().map((q) => `?${q}`),
  fc
    .array(fc.tuple(fc.constantFrom("query", "variables", "operationName", "extensions", "x"), fc.oneof(fc.string({ maxLength: 30 }), tokenSoup, fc.json({ maxDepth: 1 }), fc.constantFrom("{", "%", "%E0%A4%A", "{me{role}}", "mutation{__typename}", "null", "5"))), { maxLength: 4 })
    .map((pairs) => `?${pairs.map(([k, v]) => `${k}=${v.startsWith("%") ? v : encodeURIComponent(v)}`).join("&")}`),
);

/**
 * An answer over HTTP to anything sent to /graphql: never a 5xx, and a body that tells a client
 * what was wrong (a JSON error; OPTIONS and HEAD answer without a body; a GET that wants HTML gets GraphiQL).
 */
function expectHttpAnswer(method: string, a: Answer, context: string) {
  expect(a.status, `5xx: ${context} -> ${a.status} ${show(a.text)}`).toBeLessThan(500);
  // A method Node's HTTP parser does not know never reaches the service: the parser answers 400.
  if (!METHODS_NODE_PARSES.has(method)) return expect(a.status, context).toBe(400);
  if (method === "HEAD" || (method === "OPTIONS" && a.status === 204)) return;
  if (a.contentType.includes("text/html") && method === "GET") return;
  expectGraphQLAnswer(a, context);
}

describe("the GraphQL endpoint, with malformed requests", () => {
  it("answers any method, content type, accept, authorization, query string and body with a JSON error or data, never a 5xx", async () => {
    await check(
      fc.asyncProperty(
        fc.constantFrom(...METHODS),
        queryString,
        fc.constantFrom(...CONTENT_TYPES),
        fc.constantFrom(...ACCEPTS),
        fc.oneof(fc.constantFrom(...AUTHS), tokens().map((tk) => (tk ? `Bearer ${tk}` : undefined))),
        body,
        async (method, qs, contentType, accept, authorization, payload) => {
          const headers: Record<string, string> = {
            ...(contentType ? { "content-type": contentType } : {}),
            ...(accept ? { accept } : {}),
            ...(authorization !== undefined ? { authorization } : {}),
          };
          const context = `${method} /graphql${show(qs)} ${show(headers)} ${show(payload)}`;
          const answer = await request(method, `/graphql${qs}`, payload, headers);
          expectHttpAnswer(method, answer, context);
          await expectAlive(context);
        },
      ),
      200,
    );
  });

  it("answers what the properties found with a message that says what was wrong (regressions for server.ts)", async () => {
    const cases: [string, string, string | undefined, Record<string, string>][] = [
      // Malformed JSON in the query string: yoga's JSON.parse error was masked as "Unexpected error." (INTERNAL_SERVER_ERROR).
      ["GET", "/graphql?query=%7Bme%7Brole%7D%7D&variables=%7B", undefined, {}],
      ["GET", "/graphql?query=%7Bme%7Brole%7D%7D&extensions=%7B", undefined, {}],
      // Unsupported content type or accept: 415 and 406 with an empty body.
      ["POST", "/graphql", '{"query":"{ me { role } }"}', { "content-type": "text/plain" }],
      ["POST", "/graphql", '{"query":"{ me { role } }"}', {}],
      ["POST", "/graphql", '{"query":"{ me { role } }"}', { "content-type": "application/json", accept: "application/xml" }],
      // An empty batch was answered 200 with an empty list: no result, no error.
      ["POST", "/graphql", "[]", { "content-type": "application/json" }],
      // 3,000 nested selections or list literals overflowed the stack: "Unexpected error." instead of a limit.
      ["POST", "/graphql", JSON.stringify({ query: `{ regions { ${"children { ".repeat(3000)}code${" }".repeat(3000)} } }` }), { "content-type": "application/json" }],
      ["POST", "/graphql", JSON.stringify({ query: `{ regions(parentCode: ${"[".repeat(3000)}"CN"${"]".repeat(3000)}) { code } }` }), { "content-type": "application/json" }],
      ["POST", "/graphql", JSON.stringify({ query: `query($v: ${"[".repeat(3000)}String${"]".repeat(3000)}) { me { role } }` }), { "content-type": "application/json" }],
    ];
    for (const [method, path, payload, headers] of cases) {
      const context = `${method} ${show(path)} ${show(headers)} ${show(payload)}`;
      expectHttpAnswer(method, await request(method, path, payload, { authorization: `Bearer ${maker.token}`, ...headers }), context);
      await expectAlive(context);
    }
  });
});

// Last: they store thousands of reports, which every snapshot above would have to read again.
describe("batches at the limit", () => {
  it("refuses a batch over the limit as a whole, and takes one at the limit", async () => {
    await check(
      fc.asyncProperty(fc.constantFrom(MAX_BATCH_ROWS - 1, MAX_BATCH_ROWS, MAX_BATCH_ROWS + 1, 3 * MAX_BATCH_ROWS), hostileRow(["HZ-MASK-1"], true), async (size, hostile) => {
        const rows = Array.from({ length: size }, (_, i) =>
          i % 100 === 7 ? { good: false, row: hostile as Record<string, unknown> } : { good: true, row: { siteCode: "HZ-MASK-1", productCode: PRODUCTS[i % PRODUCTS.length], date: dayFromToday(-Math.floor(i / PRODUCTS.length)), onHand: i } },
        );
        const [before, was] = [await snapshot(), await counters()];
        const context = `a batch of ${size} rows`;
        if (size > MAX_BATCH_ROWS) {
          const error = await submitReports(t.db, maker.actor, rows.map((r) => r.row), { backfillDays: 7 }).catch((e: unknown) => e);
          expect(error).toBeInstanceOf(DomainError);
          expect((error as DomainError).code).toBe("BATCH_TOO_LARGE");
          expect((error as DomainError).message).toContain(`at most ${MAX_BATCH_ROWS.toLocaleString("en")} rows, got ${size.toLocaleString("en")}`);
          expect(await counters()).toEqual(was);
          return;
        }
        const result = await submitReports(t.db, maker.actor, rows.map((r) => r.row), { backfillDays: 7 });
        expectBatchOutcome(rows, result, before, await snapshot(), context);
        expectCountersMoved(was, await counters(), result, false, context);
        await expectConsistent(context);
      }),
      4,
    );
  });

  it("answers a batch just over the limit with BATCH_TOO_LARGE, and stores one at the limit", async () => {
    for (const size of [MAX_BATCH_ROWS, MAX_BATCH_ROWS + 1]) {
      const rows = Array.from({ length: size }, (_, i) => ({ siteCode: "HZ-MASK-1", productCode: PRODUCTS[Math.floor(i / 1000) % PRODUCTS.length], date: dayFromToday(-(i % 1000)), consumed: i }));
      const was = await counters();
      const answer = await graphql(maker.token, JSON.stringify({ query: SUBMIT, variables: { r: rows } }));
      expectGraphQLAnswer(answer, `${size} rows`);
      if (size > MAX_BATCH_ROWS) {
        expect(answer.json.errors[0]).toMatchObject({ message: expect.stringContaining("split it into smaller batches"), extensions: { code: "BATCH_TOO_LARGE" } });
        expect(await counters()).toEqual(was);
      } else {
        expect(answer.json.data.submitReports).toMatchObject({ accepted: size, rejected: [] });
      }
    }
    await expectConsistent("batches at and over the limit");
    await expectAlive("batches at and over the limit");
  });
});

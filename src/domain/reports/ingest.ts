import { createHash } from "node:crypto";
import { and, eq, sql, type SQL } from "drizzle-orm";
import type { Database } from "../../db/index.js";
import { idempotencyKeyTable, outboxTable } from "../../db/schema.js";
import { writeAudit } from "../audit.js";
import { productsByCode } from "../catalog.js";
import { DomainError, findCause, forbidden } from "../errors.js";
import { isUniqueViolation } from "../validation.js";
import type { Actor, Viewer } from "../viewer.js";
import { FLAG_SETS, QualityFlag, flagSetIndex, ownQualityFlags } from "./quality.js";
import {
  CONTROL,
  LONE_SURROGATE,
  MAX_QUANTITY,
  MEASURES,
  dayNumber,
  localToday,
  parseRow,
  type Measures,
  type ParsedRow,
  type ReportRowInput,
  type RowError,
} from "./validate.js";

export const MAX_BATCH_ROWS = 5000;
export const REPORTS_SUBMITTED_TOPIC = "reports.submitted";

export interface SubmitReportsOptions {
  idempotencyKey?: string | null | undefined;
  backfillDays: number;
  now?: Date;
}

export interface SubmitReportsResult {
  accepted: number;
  rejected: RowError[];
  /** Ids of the stored reports, in the order of the accepted rows. */
  reportIds: number[];
  /** True when this is the stored first result of an earlier request with the same key. */
  replayed?: boolean;
}

const COLUMN: Record<(typeof MEASURES)[number], string> = {
  onHand: "on_hand",
  produced: "produced",
  capacityPerDay: "capacity_per_day",
  consumed: "consumed",
  received: "received",
  shipped: "shipped",
  backlog: "backlog",
  stockoutHours: "stockout_hours",
};
const measureColumns = sql.raw(MEASURES.map((m) => COLUMN[m]).join(", "));
const EPOCH = sql.raw("date '1970-01-01'");

/**
 * Stores a batch of daily reports: every good row is stored, every bad one is returned with its
 * index, field and a message. All writes of a batch (reports, revisions, outbox event, audit
 * row, idempotency record) commit together. Writes are set-based (`unnest`), never per row.
 */
export async function submitReports(
  db: Database,
  actor: Actor,
  inputs: readonly ReportRowInput[],
  options: SubmitReportsOptions,
): Promise<SubmitReportsResult> {
  const viewer = actor.viewer;
  if (!viewer || (viewer.role !== "REPORTER" && viewer.role !== "ADMIN")) {
    throw forbidden("only REPORTER and ADMIN users may submit reports");
  }
  if (inputs.length > MAX_BATCH_ROWS) {
    throw new DomainError(
      "BATCH_TOO_LARGE",
      `a batch may hold at most ${MAX_BATCH_ROWS.toLocaleString("en")} rows, got ${inputs.length.toLocaleString("en")}; split it into smaller batches`,
    );
  }
  const idempotencyKey = options.idempotencyKey?.trim() || null;
  if (idempotencyKey !== null) {
    // The key is stored as text and quoted in the audit row's JSON, neither of which holds these.
    const problem =
      idempotencyKey.length > 200 ? "is longer than 200 characters"
      : CONTROL.test(idempotencyKey) ? "contains control characters"
      : LONE_SURROGATE.test(idempotencyKey) ? "is not valid Unicode text (it holds half of a surrogate pair)"
      : null;
    if (problem) throw new DomainError("BAD_INPUT", `idempotencyKey ${problem}; use a UUID or a short unique string`);
  }
  const now = options.now ?? new Date();

  const parseErrors: RowError[] = [];
  const parsed: ParsedRow[] = [];
  for (let i = 0; i < inputs.length; i++) {
    const row = parseRow(inputs[i]!, i, parseErrors);
    if (row !== null) parsed.push(row);
  }

  const attempt = () =>
    db.transaction(async (tx) => {
      if (idempotencyKey !== null) {
        const replay = await claimIdempotencyKey(tx, viewer, idempotencyKey, inputs);
        if (replay) return { ...replay, replayed: true };
      }
      // A fresh list per attempt: a retried transaction must not report a row twice.
      const rejected = [...parseErrors];
      const resolved = await resolveRows(db, tx, viewer, parsed, rejected, now, options.backfillDays);
      const reportIds = await storeRows(tx, viewer, resolved);
      rejected.sort((a, b) => a.index - b.index);
      const result: SubmitReportsResult = { accepted: reportIds.length, rejected, reportIds };

      if (reportIds.length) {
        await tx.insert(outboxTable).values({ topic: REPORTS_SUBMITTED_TOPIC, payload: { reportIds } });
      }
      await writeAudit(tx, actor, {
        action: "reports.submit",
        entityType: "report",
        // The report ids travel in the outbox event; each report row records who submitted it and when.
        after: { rows: inputs.length, accepted: result.accepted, rejected: new Set(rejected.map((r) => r.index)).size, idempotencyKey },
      });
      if (idempotencyKey !== null) {
        await tx
          .update(idempotencyKeyTable)
          .set({ response: result })
          .where(idempotencyRow(viewer, idempotencyKey));
      }
      return result;
      // READ COMMITTED whatever the server's default: each statement must see what batches that
      // held the same sites' locks before us committed (storeRows relies on it).
    }, { isolationLevel: "read committed" });
  // Site locks are taken in id order, so batches should not deadlock; if Postgres still aborts
  // one (a deadlock, a serialization failure, or a key another writer stored meanwhile), the
  // whole transaction rolled back and running it again is safe.
  for (let tries = 1; ; tries++) {
    try {
      return await attempt();
    } catch (error) {
      if (!isRetryable(error)) throw error;
      if (tries >= 3) throw new DomainError("CONFLICT", "the batch collided with concurrent batches three times; send it again in a moment");
    }
  }
}

const isRetryable = (error: unknown) =>
  !!findCause(error, (e) => e.code === "40P01" || e.code === "40001") || isUniqueViolation(error, "report_natural_key");

/** The idempotency record of one user's key for submitReports. */
const idempotencyRow = (viewer: Viewer, key: string) =>
  and(
    eq(idempotencyKeyTable.userId, viewer.userId),
    eq(idempotencyKeyTable.operation, "submitReports"),
    eq(idempotencyKeyTable.key, key),
  );

/**
 * Records the key before doing the work. A concurrent request with the same key blocks on the
 * primary key until this transaction ends, then sees the stored result.
 */
async function claimIdempotencyKey(tx: Database, viewer: Viewer, idempotencyKey: string, inputs: readonly ReportRowInput[]) {
  // Omitted and null fields mean the same, so they hash the same. A row that is not an object
  // (refused, but part of the body) hashes as itself, so [5] and ["x"] are different batches.
  const canonical = inputs.map((row) =>
    row !== null && typeof row === "object" && !Array.isArray(row)
      ? Object.fromEntries(Object.entries(row).filter(([, v]) => v !== null && v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1)))
      : row,
  );
  const requestHash = createHash("sha256").update(JSON.stringify(canonical)).digest("hex");
  const inserted = await tx
    .insert(idempotencyKeyTable)
    .values({ userId: viewer.userId, operation: "submitReports", key: idempotencyKey, requestHash })
    .onConflictDoNothing()
    .returning({ key: idempotencyKeyTable.key });
  if (inserted.length) return null;
  const [stored] = await tx
    .select()
    .from(idempotencyKeyTable)
    .where(idempotencyRow(viewer, idempotencyKey));
  if (!stored || stored.requestHash !== requestHash) {
    throw new DomainError(
      "IDEMPOTENCY_KEY_REUSED",
      `idempotencyKey ${JSON.stringify(idempotencyKey)} was already used with a different batch; use a new key for new data`,
    );
  }
  return stored.response as SubmitReportsResult;
}

/**
 * A row that passed every check, as it will be stored: one object per row and attempt (a retried
 * transaction starts again from the parsed rows). Its figures are the merged ones, in base units,
 * once storeRows has merged it with the stored report of its key.
 */
interface ResolvedRow extends NewReport {
  index: number;
  sent: ParsedRow;
  /** Base units per unit sent. */
  factor: number;
  series: Series;
  /** Key within the batch: `series.no * span + (day - firstDay + 1)`, see {@link Batch}. */
  key: number;
  backfill: boolean;
  /** The stored report of the same key, if any (then this row is a correction or a repeat). */
  existing: StoredReport | undefined;
  id: number;
  /** The next row of the same series in the batch. */
  nextInSeries: ResolvedRow | undefined;
}

/** One site's figures of one product: the rows of the batch that belong to it, as a list. */
interface Series {
  /** Dense number of the series within the batch, from 0. */
  no: number;
  siteId: string;
  productId: number;
  first: ResolvedRow | undefined;
  last: ResolvedRow | undefined;
  count: number;
}

/**
 * The rows that passed every check, in the order they were sent. Report keys are small numbers
 * local to the batch: `series.no * span + (day - firstDay + 1)`, so the day before and after any
 * row (and any day of a read range) is `key - 1` and `key + 1` of the same series.
 */
interface Batch {
  rows: ResolvedRow[];
  series: Series[];
  /** The sites of the accepted rows. */
  sites: BatchSite[];
  firstDay: number;
  span: number;
  byKey: KeyTable<ResolvedRow>;
}

/** A stored report read around the batch, with everything a merge and a re-flag need. */
interface StoredReport extends Measures {
  id: number;
  qualityFlags: string[];
}

interface BatchSite {
  id: string;
  code: string;
  timeZone: string;
  /** Series of this site, by product id. */
  series: Map<number, Series>;
}

/**
 * Values by batch key. Keys are dense for daily reporting (a few days of each series), so a
 * preallocated array serves them without hashing; a batch whose days spread far apart gets a Map.
 */
class KeyTable<V> {
  private readonly slots: (V | undefined)[] | undefined;
  private readonly map: Map<number, V> | undefined;
  /** `size`: one more than the largest key; `entries`: about how many will be set. */
  constructor(size: number, entries: number) {
    if (size <= 4 * entries + 4096) this.slots = new Array<V | undefined>(size);
    else this.map = new Map();
  }
  get(key: number): V | undefined {
    return this.slots ? this.slots[key] : this.map!.get(key);
  }
  set(key: number, value: V): void {
    if (this.slots) this.slots[key] = value;
    else this.map!.set(key, value);
  }
}

const EMPTY_BATCH: Batch = { rows: [], series: [], sites: [], firstDay: 0, span: 0, byKey: new KeyTable(0, 0) };
const NO_FLAGS: readonly string[] = Object.freeze([]);

/**
 * Checks what needs the database: sites, ownership, products, units, dates, duplicates. Locks the
 * rows' sites (see lockSites) in the same statement that looks them up.
 */
async function resolveRows(
  cacheKey: Database,
  tx: Database,
  viewer: Viewer,
  rows: ParsedRow[],
  rejected: RowError[],
  now: Date,
  backfillDays: number,
): Promise<Batch> {
  if (!rows.length) return EMPTY_BATCH;
  const siteCodes = new Set<string>();
  const productCodes = new Set<string>();
  for (const r of rows) {
    siteCodes.add(r.siteCode);
    productCodes.add(r.productCode);
  }
  const [sites, products] = await Promise.all([
    lockSites(tx, viewer, [...siteCodes]),
    productsByCode(cacheKey, tx, [...productCodes]),
  ]);
  const siteByCode = new Map<string, BatchSite>();
  for (const s of sites) siteByCode.set(s.code, { id: s.id, code: s.code, timeZone: s.time_zone, series: new Map() });
  const todayByZone = new Map<string, { today: string; day: number }>();
  const series: Series[] = [];
  const accepted: ResolvedRow[] = [];
  let firstDay = Infinity;
  let lastDay = -Infinity;

  for (const row of rows) {
    const before = rejected.length;
    const index = row.index;
    // Another organization's site is not even read (lockSites), so it is treated exactly like an
    // unknown one, and no later check (such as the site's local date) tells a reporter anything about it.
    const site = siteByCode.get(row.siteCode);
    const product = products.get(row.productCode);
    if (!site) {
      // The same words for "unknown" and "someone else's": a reporter learns nothing about other organizations.
      fail(
        rejected,
        index,
        "siteCode",
        viewer.role === "ADMIN"
          ? `unknown site ${row.siteCode}; create it with createSite first`
          : `site ${row.siteCode} is not a site of your organization; check the code against me { organization { sites { code } } }`,
      );
    }
    let factor = 1;
    if (!product) {
      fail(rejected, index, "productCode", `unknown product ${row.productCode}; see products { code } for the catalog`);
    } else if (row.unit !== null && row.unit !== product.baseUnit) {
      const f = product.factors.get(row.unit.toLowerCase());
      if (f === undefined) {
        fail(rejected, index, "unit", `unit ${JSON.stringify(row.unit)} is not declared for ${product.code}; use one of ${product.unitNames.join(", ")}`);
      } else factor = f;
    }
    if (factor !== 1) {
      for (const m of MEASURES) {
        const v = row[m];
        if (v === undefined || m === "stockoutHours") continue;
        const converted = v * factor;
        if (!Number.isFinite(converted) || converted > MAX_QUANTITY) {
          fail(rejected, index, m, `${m} of ${v} ${row.unit} is ${converted} ${product!.baseUnit}, more than ${MAX_QUANTITY.toExponential()}; check the figure and its unit`);
        }
      }
    }
    let backfill = false;
    const day = row.day;
    if (site) {
      let zone = todayByZone.get(site.timeZone);
      if (zone === undefined) {
        const today = localToday(now, site.timeZone);
        todayByZone.set(site.timeZone, (zone = { today, day: dayNumber(today) }));
      }
      if (day > zone.day + 1) {
        fail(rejected, index, "date", `date ${row.date} is in the future (it is ${zone.today} at site ${site.code}); a report may be at most one day ahead`);
      }
      backfill = day < zone.day - backfillDays;
    }
    if (rejected.length !== before) continue;
    let s = site!.series.get(product!.id);
    if (s === undefined) {
      s = { no: series.length, siteId: site!.id, productId: product!.id, first: undefined, last: undefined, count: 0 };
      site!.series.set(product!.id, s);
      series.push(s);
    }
    if (day < firstDay) firstDay = day;
    if (day > lastDay) lastDay = day;
    accepted.push({
      index, sent: row, factor, series: s, siteId: s.siteId, productId: s.productId, day, key: 0, backfill, existing: undefined,
      onHand: null, produced: null, capacityPerDay: null, consumed: null, received: null, shipped: null, backlog: null, stockoutHours: null,
      flags: NO_FLAGS, id: 0, nextInSeries: undefined,
    });
  }
  if (!accepted.length) return EMPTY_BATCH;

  // Room for a day either side of the batch's days: the reads go one day further each way.
  const span = lastDay - firstDay + 3;
  const byKey = new KeyTable<ResolvedRow>(series.length * span, accepted.length);
  const resolved: ResolvedRow[] = [];
  for (const r of accepted) {
    r.key = r.series.no * span + (r.day - firstDay + 1);
    const first = byKey.get(r.key);
    if (first !== undefined) {
      fail(rejected, r.index, null, `same site, product and date as row ${first.index}; send each report once per batch`);
      continue;
    }
    byKey.set(r.key, r);
    const s = r.series;
    if (s.last === undefined) s.first = r;
    else s.last.nextInSeries = r;
    s.last = r;
    s.count++;
    resolved.push(r);
  }
  const batchSites = [...siteByCode.values()].filter((site) => site.series.size > 0);
  return { rows: resolved, series, sites: batchSites, firstDay, span, byKey };
}

function fail(rejected: RowError[], index: number, field: string | null, message: string) {
  rejected.push({ index, field, message: `row ${index}: ${message}` });
}

/**
 * The batch's sites the viewer may report for, locked in id order. One site's figures form one
 * series: batches touching the same sites take turns (row locks on the sites, in id order, so never
 * a deadlock), so every stored day a batch reads later, for corrections and for quality flags,
 * stays as read until it commits. Row locks live in the tuples, not in the shared lock table, so a
 * batch may touch any number of sites. Other organizations' sites are neither read nor locked.
 */
async function lockSites(tx: Database, viewer: Viewer, codes: string[]) {
  const own = viewer.role === "ADMIN" ? sql`` : sql` and organization_id = ${viewer.organizationId}::uuid`;
  return tx.execute<{ id: string; code: string; time_zone: string }>(
    sql`select id, code, time_zone from site where code = any(${sql.param(codes)}::text[])${own} order by id for no key update`,
    "objects",
  );
}

const sameMeasures = (a: Measures, b: Measures) =>
  a.onHand === b.onHand &&
  a.produced === b.produced &&
  a.capacityPerDay === b.capacityPerDay &&
  a.consumed === b.consumed &&
  a.received === b.received &&
  a.shipped === b.shipped &&
  a.backlog === b.backlog &&
  a.stockoutHours === b.stockoutHours;
const sameFlags = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((f, i) => f === b[i]);

/** Flags computed here; any other flag (from later checks, such as OUTLIER) is kept as it is. */
const OWN_FLAGS = new Set<string>(Object.values(QualityFlag));
const otherFlags = (flags: string[]) => (flags.length === 0 ? flags : flags.filter((f) => !OWN_FLAGS.has(f)));
const withOthers = (own: readonly string[], others: string[]) => (others.length === 0 ? own : [...own, ...others]);

/**
 * The spans to read for a batch: each run of nearby days of a series, widened by a day on each
 * side (the day before balances a day; the day after is balanced by it). A site's series with the
 * same span are read together, one range scan per product within one index scan (`product_id =
 * ANY(…)`): daily reporting sends every product of a site for the same days, so that is one scan
 * per site, measured a quarter cheaper in PostgreSQL than one nested-loop probe per series.
 */
function rangesToRead(batch: Batch) {
  const sites: number[] = [];
  const products: string[] = [];
  const from: number[] = [];
  const to: number[] = [];
  const days: number[] = [];
  for (let i = 0; i < batch.sites.length; i++) {
    // Products by span ("first,last"), in the order met.
    const spans = new Map<string, number[]>();
    const add = (productId: number, first: number, last: number) => {
      const span = `${first - 1},${last + 1}`;
      const list = spans.get(span);
      if (list) list.push(productId);
      else spans.set(span, [productId]);
    };
    for (const s of batch.sites[i]!.series.values()) {
      if (s.first === undefined) continue;
      if (s.count === 1) {
        add(s.productId, s.first.day, s.first.day);
        continue;
      }
      // The days of the series in order: an insertion sort, as a series has few days in a batch.
      days.length = 0;
      for (let r: ResolvedRow | undefined = s.first; r !== undefined; r = r.nextInSeries) {
        let j = days.length;
        while (j > 0 && days[j - 1]! > r.day) {
          days[j] = days[j - 1]!;
          j--;
        }
        days[j] = r.day;
      }
      let first = days[0]!;
      let last = first;
      for (let j = 1; j < days.length; j++) {
        const day = days[j]!;
        // A gap of one or two days costs less to read than a second scan.
        if (day - last > 3) {
          add(s.productId, first, last);
          first = day;
        }
        last = day;
      }
      add(s.productId, first, last);
    }
    for (const [span, ids] of spans) {
      const comma = span.indexOf(",");
      sites.push(i + 1);
      products.push(`"{${ids.join(",")}}"`);
      from.push(Number(span.slice(0, comma)));
      to.push(Number(span.slice(comma + 1)));
    }
  }
  return { sites, products, from, to };
}

/**
 * The stored reports of the days around the batch, by batch key: in full for the batch's own days
 * and the days after them (`stored`), their stock only for the day before each run of the batch's
 * days (`stockBefore`), the one figure that day is needed for (it balances the day after it).
 */
async function loadReports(tx: Database, batch: Batch) {
  const k = rangesToRead(batch);
  const rows = await tx.execute<[number, number, number, number | null, string | null]>(
    // LATERAL makes one index scan per span; a plain join lets the planner hash the whole report
    // table for every batch, a cost that grows with the table (measured: a full scan).
    // (Measured too: OFFSET 0 in the LATERAL subquery, to rule out the merge join the planner
    // still picks while the table is small, made it probe report_product_date_idx and filter
    // every site's rows, twice the PostgreSQL time.)
    sql`select k.site, r.product_id, r.date - ${EPOCH}, r.on_hand,
               case when r.date > ${EPOCH} + k.first_day
                    then json_build_array(r.id, ${sql.raw(MEASURES.slice(1).map((m) => `r.${COLUMN[m]}`).join(", "))}, r.quality_flags)::text end
        from unnest(${intArray(k.sites)}::int[], ${sql.param(`{${k.products.join(",")}}`)}::text[],
                    ${intArray(k.from)}::int[], ${intArray(k.to)}::int[])
          as k(site, products, first_day, last_day)
        join lateral (
          select * from report r
          where r.site_id = (${sql.param(`{${batch.sites.map((site) => site.id).join(",")}}`)}::uuid[])[k.site]
            and r.product_id = any(k.products::int[])
            and r.date between ${EPOCH} + k.first_day and ${EPOCH} + k.last_day
        ) r on true`,
    "arrays",
  );
  const { span, firstDay } = batch;
  const stored = new KeyTable<StoredReport>(batch.series.length * span, batch.rows.length);
  const stockBefore = new KeyTable<number | null>(batch.series.length * span, batch.rows.length);
  for (const [site, productId, day, onHand, full] of rows) {
    const series = batch.sites[Number(site) - 1]!.series.get(Number(productId))!;
    const key = series.no * span + (Number(day) - firstDay + 1);
    if (full === null) {
      stockBefore.set(key, onHand === null ? null : Number(onHand));
      continue;
    }
    const [id, produced, capacityPerDay, consumed, received, shipped, backlog, stockoutHours, qualityFlags] = JSON.parse(full) as [
      number, number | null, number | null, number | null, number | null, number | null, number | null, number | null, string[] | null,
    ];
    stored.set(key, {
      id: Number(id),
      onHand: onHand === null ? null : Number(onHand),
      produced, capacityPerDay, consumed, received, shipped, backlog, stockoutHours,
      qualityFlags: qualityFlags ?? [],
    });
  }
  return { stored, stockBefore };
}

/**
 * New keys are inserted in one statement. Existing keys are corrections: the stored version is
 * copied to `report_revision` and replaced, in one statement. Figures equal to the stored ones
 * write nothing but, where a neighbour changed, their flags. Returns the report ids of the rows.
 */
async function storeRows(tx: Database, viewer: Viewer, batch: Batch): Promise<number[]> {
  const rows = batch.rows;
  if (!rows.length) return [];
  // The sites are locked (resolveRows), so the stored days read here stay as read until we commit.
  const { stored, stockBefore } = await loadReports(tx, batch);

  // Sent figures (in base units) replace stored ones; figures not sent keep their stored value.
  // Every row is merged first: a batch may carry several consecutive days of the same series.
  for (const r of rows) {
    const e = stored.get(r.key);
    const sent = r.sent;
    const f = r.factor;
    r.existing = e;
    r.onHand = sent.onHand === undefined ? (e ? e.onHand : null) : sent.onHand * f;
    r.produced = sent.produced === undefined ? (e ? e.produced : null) : sent.produced * f;
    r.capacityPerDay = sent.capacityPerDay === undefined ? (e ? e.capacityPerDay : null) : sent.capacityPerDay * f;
    r.consumed = sent.consumed === undefined ? (e ? e.consumed : null) : sent.consumed * f;
    r.received = sent.received === undefined ? (e ? e.received : null) : sent.received * f;
    r.shipped = sent.shipped === undefined ? (e ? e.shipped : null) : sent.shipped * f;
    r.backlog = sent.backlog === undefined ? (e ? e.backlog : null) : sent.backlog * f;
    // Hours are never converted by unit.
    r.stockoutHours = sent.stockoutHours === undefined ? (e ? e.stockoutHours : null) : sent.stockoutHours;
  }
  const stockOn = (key: number): number | null => {
    const inBatch = batch.byKey.get(key);
    if (inBatch !== undefined) return inBatch.onHand;
    const full = stored.get(key);
    return full !== undefined ? full.onHand : (stockBefore.get(key) ?? null);
  };
  const fresh: ResolvedRow[] = [];
  const corrections: ResolvedRow[] = [];
  const reflagged: { id: number; flags: readonly string[] }[] = [];
  for (const r of rows) {
    const e = r.existing;
    const unchanged = e !== undefined && sameMeasures(e, r);
    // BACKFILL says the figures arrived late. Re-sending them unchanged later changes nothing
    // about when they arrived, so an unchanged report keeps its own verdict.
    const backfill = unchanged ? e.qualityFlags.includes(QualityFlag.BACKFILL) : r.backfill;
    // Flags from other checks (computed elsewhere, later) are kept as they are.
    r.flags = withOthers(ownQualityFlags(r, stockOn(r.key - 1), backfill), e ? otherFlags(e.qualityFlags) : []);
    if (!e) fresh.push(r);
    else if (!unchanged) {
      corrections.push(r);
      r.id = e.id;
    } else {
      r.id = e.id;
      // Same figures, but a corrected neighbour in this batch may change the flags: no new revision.
      if (!sameFlags(r.flags, e.qualityFlags)) reflagged.push({ id: e.id, flags: r.flags });
    }
  }

  if (fresh.length) {
    const ids = await insertNewReports(tx, viewer.userId, fresh);
    for (let i = 0; i < fresh.length; i++) fresh[i]!.id = ids[i]!;
  }
  if (corrections.length) {
    const ids = intArray(corrections.map((r) => r.existing!.id));
    await tx.execute(
      sql`with superseded as (
            insert into report_revision (report_id, revision, ${measureColumns}, quality_flags, submitted_at, submitted_by, superseded_by)
            select id, revision, ${measureColumns}, quality_flags, submitted_at, submitted_by, ${viewer.userId}::uuid
            from report where id = any(${ids}::bigint[])
          )
          update report r set ${sql.raw(MEASURES.map((m) => `${COLUMN[m]} = u.${COLUMN[m]}`).join(", "))},
            quality_flags = ${flagsFrom("u.flags")}, revision = r.revision + 1, submitted_at = now(), submitted_by = ${viewer.userId}::uuid
          from unnest(${ids}::bigint[], ${measureArrays(corrections)}, ${flagsArray(corrections)}::text[])
            as u(id, ${measureColumns}, flags)
          where r.id = u.id and r.id = any(${ids}::bigint[])`,
    );
  }

  // A new or corrected day t changes whether a stored day t+1 outside the batch balances.
  for (const r of rows) {
    const next = stored.get(r.key + 1);
    if (!next || batch.byKey.get(r.key + 1) !== undefined) continue;
    const flags = withOthers(ownQualityFlags(next, r.onHand, next.qualityFlags.includes(QualityFlag.BACKFILL)), otherFlags(next.qualityFlags));
    if (!sameFlags(flags, next.qualityFlags)) reflagged.push({ id: next.id, flags });
  }
  await updateFlags(tx, reflagged);
  return rows.map((r) => r.id);
}

/** A new report as the storage step takes it: figures in base units, flags computed. */
export interface NewReport extends Measures {
  siteId: string;
  productId: number;
  /** Days since 1970-01-01. */
  day: number;
  flags: readonly string[];
}

/**
 * The storage step for new reports: one set-based INSERT of the whole batch, no per-row ORM
 * work. Returns the new ids in the order of `rows`. Exported for the ingest benchmark, which
 * times this very statement against a bare INSERT of the same rows.
 */
export async function insertNewReports(tx: Database, submittedBy: string, rows: readonly NewReport[]): Promise<number[]> {
  if (!rows.length) return [];
  const sites = new SiteList();
  const siteNumbers = rows.map((r) => sites.indexOf(r.siteId));
  // Flags go as the number of their combination when every row has one of the eight combinations
  // of this module's flags (always so for new reports), else as text.
  const flagSets = rows.map((r) => flagSetIndex(r.flags));
  const flags = flagSets.every((f) => f >= 0)
    ? { param: sql`${intArray(flagSets)}::int[]`, value: FLAG_SET_CASE }
    : { param: sql`${flagsArray(rows)}::text[]`, value: flagsFrom("flags") };
  const inserted = await tx.execute<[string, string, number, number]>(
    // Sites go as a list of the batch's distinct sites and a number per row: a few dozen uuids to
    // send and parse instead of one per row.
    sql`insert into report (site_id, product_id, date, ${measureColumns}, quality_flags, submitted_by)
        select (${sites.param()}::uuid[])[site], product_id, ${EPOCH} + day, ${measureColumns}, ${flags.value}, ${submittedBy}::uuid
        from unnest(${intArray(siteNumbers)}::int[], ${intArray(rows.map((r) => r.productId))}::int[], ${intArray(rows.map((r) => r.day))}::int[],
                    ${measureArrays(rows)}, ${flags.param})
          as u(site, product_id, day, ${measureColumns}, flags)
        -- No ON CONFLICT: storeRows read these keys as absent, at READ COMMITTED, under the
        -- sites' row locks, so no other batch can have written them since.
        returning id, site_id, product_id, date - ${EPOCH}`,
    "arrays",
  );
  // RETURNING promises no order. PostgreSQL returns the rows as it inserted them, in the order
  // sent, so each returned key is checked against the row sent at its place; should any differ,
  // the ids are matched by key instead.
  const ids = new Array<number>(rows.length);
  let inOrder = inserted.length === rows.length;
  for (let i = 0; inOrder && i < rows.length; i++) {
    const [id, siteId, productId, day] = inserted[i]!;
    const r = rows[i]!;
    if (siteId === r.siteId && Number(productId) === r.productId && Number(day) === r.day) ids[i] = Number(id);
    else inOrder = false;
  }
  if (!inOrder) {
    const key = (siteId: string, productId: unknown, day: unknown) => `${siteId.toLowerCase()}|${Number(productId)}|${Number(day)}`;
    const byKey = new Map(inserted.map(([id, siteId, productId, day]) => [key(siteId, productId, day), Number(id)]));
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      const id = byKey.get(key(r.siteId, r.productId, r.day));
      if (id === undefined) throw new Error(`insertNewReports: no id returned for row ${i} of ${rows.length}`);
      ids[i] = id;
    }
  }
  return ids;
}

/** The stored flags of each combination of this module's flags, by its number (see FLAG_SETS). */
const FLAG_SET_CASE = sql.raw(
  `case flags ${FLAG_SETS.map((set, bits) => `when ${bits} then '{${set.join(",")}}'::text[]`).join(" ")} end`,
);

async function updateFlags(tx: Database, updates: { id: number; flags: readonly string[] }[]) {
  if (!updates.length) return;
  const ids = intArray(updates.map((u) => u.id));
  await tx.execute(
    sql`update report r set quality_flags = ${flagsFrom("u.flags")}
        from unnest(${ids}::bigint[], ${flagsArray(updates)}::text[]) as u(id, flags)
        where r.id = u.id and r.id = any(${ids}::bigint[])`,
  );
}

/** The distinct sites of a statement, numbered from 1 (PostgreSQL arrays count from 1). */
class SiteList {
  private readonly ids: string[] = [];
  private readonly numbers = new Map<string, number>();
  readonly indexOf = (siteId: string): number => {
    let n = this.numbers.get(siteId);
    if (n === undefined) {
      this.ids.push(siteId);
      this.numbers.set(siteId, (n = this.ids.length));
    }
    return n;
  };
  /** A `uuid[]` parameter of the sites in their numbering (uuids need no quoting). */
  param = () => sql.param(`{${this.ids.join(",")}}`);
}

// Array parameters are sent as PostgreSQL array literals built here: numbers need no quoting, so
// one join replaces the driver's per-element quoting and escaping (measured: the largest single
// cost of serialising a batch).

/** An `int[]`/`bigint[]` literal. */
const intArray = (values: readonly number[]) => sql.param(`{${values.join(",")}}`);

/** Reused buffers for the literals (filled and joined synchronously, so never shared by two batches). */
const columns: (number | string)[][] = MEASURES.map(() => []);

/** The eight `float8[]` parameters of the measures, NULL where a figure is null. */
function measureArrays(rows: readonly Measures[]): SQL {
  const [onHand, produced, capacityPerDay, consumed, received, shipped, backlog, stockoutHours] = columns as [
    (number | string)[], (number | string)[], (number | string)[], (number | string)[],
    (number | string)[], (number | string)[], (number | string)[], (number | string)[],
  ];
  for (const c of columns) c.length = rows.length;
  // One pass, each figure read by name (a keyed read by measure name costs several times more).
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    onHand[i] = r.onHand ?? "NULL";
    produced[i] = r.produced ?? "NULL";
    capacityPerDay[i] = r.capacityPerDay ?? "NULL";
    consumed[i] = r.consumed ?? "NULL";
    received[i] = r.received ?? "NULL";
    shipped[i] = r.shipped ?? "NULL";
    backlog[i] = r.backlog ?? "NULL";
    stockoutHours[i] = r.stockoutHours ?? "NULL";
  }
  const literals = columns.map((c) => sql`${sql.param(`{${c.join(",")}}`)}::float8[]`);
  for (const c of columns) c.length = 0;
  return sql.join(literals, sql`, `);
}

/**
 * Each report's flags as one element of a `text[]` literal: the flags joined by commas (split again
 * by {@link flagsFrom}), quoted. The elements of the shared flag lists are computed once.
 */
const flagElements = new Map<readonly string[], string>();
const flagElement = (flags: readonly string[]) => {
  let element = flagElements.get(flags);
  if (element === undefined) {
    element = `"${flags.join(",").replace(/["\\]/g, "\\$&")}"`;
    if (Object.isFrozen(flags)) flagElements.set(flags, element);
  }
  return element;
};
const flagsArray = (rows: readonly { flags: readonly string[] }[]) => sql.param(`{${rows.map((r) => flagElement(r.flags)).join(",")}}`);
const flagsFrom = (column: string) => sql.raw(`case when ${column} = '' then '{}'::text[] else string_to_array(${column}, ',') end`);

import { createHash } from "node:crypto";
import { and, eq, inArray, sql } from "drizzle-orm";
import type { Database } from "../../db/index.js";
import { idempotencyKeyTable, outboxTable, siteTable } from "../../db/schema.js";
import { writeAudit } from "../audit.js";
import { DomainError, findCause, forbidden } from "../errors.js";
import { isUniqueViolation } from "../validation.js";
import type { Actor, Viewer } from "../viewer.js";
import { QualityFlag, qualityFlags } from "./quality.js";
import {
  MAX_QUANTITY,
  MEASURES,
  dayNumber,
  localToday,
  parseRow,
  type Measure,
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

interface ResolvedRow {
  row: ParsedRow;
  siteId: string;
  productId: number;
  /** Days since 1970-01-01 of the report date. */
  day: number;
  /** `siteId|productId|`: a report's key is this plus its day number. */
  series: string;
  key: string;
  /** The figures sent, converted to base units. */
  base: Partial<Measures>;
  backfill: boolean;
}

interface StoredReport extends Measures {
  id: number;
  series: string;
  day: number;
  qualityFlags: string[];
}

const seriesOf = (siteId: string, productId: number) => `${siteId}|${productId}|`;

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
  if (idempotencyKey !== null && idempotencyKey.length > 200) {
    throw new DomainError("BAD_INPUT", "idempotencyKey is longer than 200 characters; use a UUID or a short unique string");
  }
  const now = options.now ?? new Date();

  const parseErrors: RowError[] = [];
  const parsed = inputs.map((input, i) => parseRow(input, i, parseErrors)).filter((r): r is ParsedRow => r !== null);

  const attempt = () =>
    db.transaction(async (tx) => {
      if (idempotencyKey !== null) {
        const replay = await claimIdempotencyKey(tx, viewer, idempotencyKey, inputs);
        if (replay) return { ...replay, replayed: true };
      }
      // A fresh list per attempt: a retried transaction must not report a row twice.
      const rejected = [...parseErrors];
      const resolved = await resolveRows(tx, viewer, parsed, rejected, now, options.backfillDays);
      const reportIds = await storeRows(tx, viewer, resolved);
      rejected.sort((a, b) => a.index - b.index);
      const result: SubmitReportsResult = { accepted: resolved.length, rejected, reportIds };

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
  // Omitted and null fields mean the same, so they hash the same.
  const canonical = inputs.map((row) =>
    Object.fromEntries(Object.entries(row ?? {}).filter(([, v]) => v !== null && v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1))),
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

/** Checks what needs the database: sites, ownership, products, units, dates, duplicates. */
async function resolveRows(
  tx: Database,
  viewer: Viewer,
  rows: ParsedRow[],
  rejected: RowError[],
  now: Date,
  backfillDays: number,
): Promise<ResolvedRow[]> {
  if (!rows.length) return [];
  const siteCodes = [...new Set(rows.map((r) => r.siteCode))];
  const productCodes = [...new Set(rows.map((r) => r.productCode))];
  const [sites, products] = await Promise.all([
    tx
      .select({ id: siteTable.id, code: siteTable.code, organizationId: siteTable.organizationId, timeZone: siteTable.timeZone })
      .from(siteTable)
      .where(inArray(siteTable.code, siteCodes)),
    tx.query.productTable.findMany({
      where: { code: { in: productCodes } },
      columns: { id: true, code: true, baseUnit: true },
      with: { units: { columns: { name: true, factor: true } } },
    }),
  ]);
  const siteByCode = new Map(sites.map((s) => [s.code, s]));
  const productByCode = new Map(products.map((p) => [p.code, p]));
  const todayByZone = new Map<string, { today: string; day: number }>();
  const seen = new Map<string, number>();
  const resolved: ResolvedRow[] = [];

  for (const row of rows) {
    const fail = (field: string | null, message: string) => rejected.push({ index: row.index, field, message: `row ${row.index}: ${message}` });
    const found = siteByCode.get(row.siteCode);
    // Another organization's site is treated exactly like an unknown one, so that no later check
    // (such as the site's local date) tells a reporter anything about it.
    const site = found && (viewer.role === "ADMIN" || found.organizationId === viewer.organizationId) ? found : undefined;
    const product = productByCode.get(row.productCode);
    let ok = true;
    if (!site) {
      // The same words for "unknown" and "someone else's": a reporter learns nothing about other organizations.
      fail(
        "siteCode",
        viewer.role === "ADMIN"
          ? `unknown site ${row.siteCode}; create it with createSite first`
          : `site ${row.siteCode} is not a site of your organization; check the code against me { organization { sites { code } } }`,
      );
      ok = false;
    }
    let factor = 1;
    if (!product) {
      fail("productCode", `unknown product ${row.productCode}; see products { code } for the catalog`);
      ok = false;
    } else if (row.unit !== null && row.unit.toLowerCase() !== product.baseUnit.toLowerCase()) {
      const unit = product.units.find((u) => u.name.toLowerCase() === row.unit!.toLowerCase());
      if (!unit) {
        const declared = [product.baseUnit, ...product.units.map((u) => u.name)].join(", ");
        fail("unit", `unit ${JSON.stringify(row.unit)} is not declared for ${product.code}; use one of ${declared}`);
        ok = false;
      } else factor = unit.factor;
    }
    for (const [m, v] of Object.entries(row.values) as [Measure, number][]) {
      if (m === "stockoutHours" || factor === 1) continue;
      const base = v * factor;
      if (!Number.isFinite(base) || base > MAX_QUANTITY) {
        fail(m, `${m} of ${v} ${row.unit} is ${base} ${product!.baseUnit}, more than ${MAX_QUANTITY.toExponential()}; check the figure and its unit`);
        ok = false;
      }
    }
    let backfill = false;
    const day = dayNumber(row.date);
    if (site) {
      let zone = todayByZone.get(site.timeZone);
      if (zone === undefined) {
        const today = localToday(now, site.timeZone);
        todayByZone.set(site.timeZone, (zone = { today, day: dayNumber(today) }));
      }
      if (day > zone.day + 1) {
        fail("date", `date ${row.date} is in the future (it is ${zone.today} at site ${site.code}); a report may be at most one day ahead`);
        ok = false;
      }
      backfill = day < zone.day - backfillDays;
    }
    if (!ok) continue;
    const series = seriesOf(site!.id, product!.id);
    const k = series + day;
    const first = seen.get(k);
    if (first !== undefined) {
      fail(null, `same site, product and date as row ${first}; send each report once per batch`);
      continue;
    }
    seen.set(k, row.index);
    let base = row.values;
    if (factor !== 1) {
      base = {};
      for (const m of MEASURES) {
        const v = row.values[m];
        if (v !== undefined) base[m] = m === "stockoutHours" ? v : v * factor;
      }
    }
    resolved.push({ row, siteId: site!.id, productId: product!.id, day, series, key: k, base, backfill });
  }
  return resolved;
}

const sameMeasures = (a: Measures, b: Measures) => MEASURES.every((m) => a[m] === b[m]);
const EPOCH = sql.raw("date '1970-01-01'");
const sameFlags = (a: string[], b: string[]) => a.length === b.length && a.every((f, i) => f === b[i]);

/** Stored reports of a series over a span of days, both ends included. */
interface DayRange {
  siteId: string;
  productId: number;
  from: number;
  to: number;
}

/**
 * The spans to read for a batch: each run of nearby days of a series, widened by a day on each
 * side (the day before balances a day; the day after is balanced by it). One index range scan
 * per run, instead of three probes per row.
 */
function rangesToRead(rows: ResolvedRow[]): DayRange[] {
  const bySeries = new Map<string, ResolvedRow[]>();
  for (const r of rows) {
    const list = bySeries.get(r.series);
    if (list) list.push(r);
    else bySeries.set(r.series, [r]);
  }
  const ranges: DayRange[] = [];
  for (const list of bySeries.values()) {
    const days = list.map((r) => r.day).sort((a, b) => a - b);
    let from = days[0]!;
    let to = from;
    for (const day of days.slice(1)) {
      // A gap of one or two days costs less to read than a second scan.
      if (day - to > 3) {
        ranges.push({ siteId: list[0]!.siteId, productId: list[0]!.productId, from: from - 1, to: to + 1 });
        from = day;
      }
      to = day;
    }
    ranges.push({ siteId: list[0]!.siteId, productId: list[0]!.productId, from: from - 1, to: to + 1 });
  }
  return ranges;
}

async function loadReports(tx: Database, ranges: DayRange[]): Promise<StoredReport[]> {
  if (!ranges.length) return [];
  const rows = await tx.execute<Record<string, unknown>>(
    // LATERAL makes one index range scan per span; a plain join lets the planner hash the whole
    // report table for every batch, a cost that grows with the table (measured: a full scan).
    sql`select r.id::text as id, k.site_id, k.product_id, (r.date - ${EPOCH}) as day, ${sql.raw(MEASURES.map((m) => `r.${COLUMN[m]}`).join(", "))}, r.quality_flags
        from unnest(${sql.param(ranges.map((k) => k.siteId))}::uuid[], ${sql.param(ranges.map((k) => k.productId))}::int[],
                    ${sql.param(ranges.map((k) => k.from))}::int[], ${sql.param(ranges.map((k) => k.to))}::int[])
          as k(site_id, product_id, first_day, last_day)
        join lateral (
          select * from report r
          where r.site_id = k.site_id and r.product_id = k.product_id and r.date between ${EPOCH} + k.first_day and ${EPOCH} + k.last_day
        ) r on true`,
    "objects",
  );
  return rows.map((r) => {
    const report = {
      id: Number(r.id),
      series: seriesOf(r.site_id as string, Number(r.product_id)),
      day: Number(r.day),
      qualityFlags: (r.quality_flags as string[] | null) ?? [],
    } as StoredReport;
    for (const m of MEASURES) {
      const v = r[COLUMN[m]];
      report[m] = v === null ? null : Number(v);
    }
    return report;
  });
}

const flagsParam = (rows: { flags: string[] }[]) => sql.param(rows.map((r) => r.flags.join(",")));
const flagsFrom = (column: string) => sql.raw(`case when ${column} = '' then '{}'::text[] else string_to_array(${column}, ',') end`);
const measureParams = (rows: Measures[]) =>
  sql.join(
    MEASURES.map((m) => sql`${sql.param(rows.map((r) => r[m]))}::float8[]`),
    sql`, `,
  );

/**
 * New keys are inserted in one statement. Existing keys are corrections: the stored version is
 * copied to `report_revision` and replaced, in one statement. Figures equal to the stored ones
 * write nothing but, where a neighbour changed, their flags.
 */
async function storeRows(tx: Database, viewer: Viewer, input: ResolvedRow[]): Promise<number[]> {
  if (!input.length) return [];
  // One site's figures form one series: batches touching the same sites take turns (row locks on
  // the sites, in id order, so never a deadlock), so every stored day a batch reads, for
  // corrections and for quality flags, stays as read until it commits. Row locks live in the
  // tuples, not in the shared lock table, so a batch may touch any number of sites.
  await tx.execute(
    sql`select id from site where id = any(${sql.param([...new Set(input.map((r) => r.siteId))])}::uuid[]) order by id for no key update`,
  );
  // Key order keeps each series' days together for the range reads and the merge below.
  const rows = [...input].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const inBatch = new Set(rows.map((r) => r.key));

  const stored = new Map<string, StoredReport>();
  for (const report of await loadReports(tx, rangesToRead(rows))) stored.set(report.series + report.day, report);

  const merged = mergeAll(rows, stored);
  const ids = new Map<ResolvedRow, number>();
  const fresh: Merged[] = [];
  const corrections: Merged[] = [];
  const reflagged: { id: number; flags: string[] }[] = [];
  for (const m of merged) {
    if (!m.existing) fresh.push(m);
    else if (!sameMeasures(m.existing, m.values)) corrections.push(m);
    else {
      ids.set(m.row, m.existing.id);
      // Same figures, but a corrected neighbour in this batch may change the flags: no new revision.
      if (!sameFlags(m.flags, m.existing.qualityFlags)) reflagged.push({ id: m.existing.id, flags: m.flags });
    }
  }

  if (fresh.length) {
    const got = await insertNewReports(
      tx,
      viewer.userId,
      fresh.map((m) => ({ siteId: m.row.siteId, productId: m.row.productId, day: m.row.day, values: m.values, flags: m.flags })),
    );
    for (const m of fresh) ids.set(m.row, got.get(m.row.key)!);
  }
  if (corrections.length) {
    const reportIds = sql.param(corrections.map((m) => m.existing!.id));
    await tx.execute(
      sql`with superseded as (
            insert into report_revision (report_id, revision, ${measureColumns}, quality_flags, submitted_at, submitted_by, superseded_by)
            select id, revision, ${measureColumns}, quality_flags, submitted_at, submitted_by, ${viewer.userId}::uuid
            from report where id = any(${reportIds}::bigint[])
          )
          update report r set ${sql.raw(MEASURES.map((m) => `${COLUMN[m]} = u.${COLUMN[m]}`).join(", "))},
            quality_flags = ${flagsFrom("u.flags")}, revision = r.revision + 1, submitted_at = now(), submitted_by = ${viewer.userId}::uuid
          from unnest(${reportIds}::bigint[], ${measureParams(corrections.map((m) => m.values))}, ${flagsParam(corrections)}::text[])
            as u(id, ${measureColumns}, flags)
          where r.id = u.id and r.id = any(${reportIds}::bigint[])`,
    );
    for (const m of corrections) ids.set(m.row, m.existing!.id);
  }

  // A new or corrected day t changes whether a stored day t+1 outside the batch balances.
  const current = new Map(merged.map((m) => [m.row.key, m.values]));
  for (const m of merged) {
    const nextKey = m.row.series + (m.row.day + 1);
    const next = stored.get(nextKey);
    if (!next || inBatch.has(nextKey)) continue;
    const kept = next.qualityFlags.filter((f) => !OWN_FLAGS.has(f));
    const flags = [...qualityFlags(next, current.get(m.row.key)!.onHand, next.qualityFlags.includes(QualityFlag.BACKFILL)), ...kept];
    if (!sameFlags(flags, next.qualityFlags)) reflagged.push({ id: next.id, flags });
  }
  await updateFlags(tx, reflagged);
  return input.map((r) => ids.get(r)!);
}

export interface NewReport {
  siteId: string;
  productId: number;
  /** Days since 1970-01-01. */
  day: number;
  values: Measures;
  flags: string[];
}

/**
 * The storage step for new reports: one set-based INSERT of the whole batch, no per-row ORM
 * work. Returns the new ids by `siteId|productId|day`. Exported for the ingest benchmark, which
 * times this very statement against a bare INSERT of the same rows.
 */
export async function insertNewReports(tx: Database, submittedBy: string, rows: NewReport[]): Promise<Map<string, number>> {
  const inserted = await tx.execute<{ id: string; site_id: string; product_id: number; day: number }>(
    sql`insert into report (site_id, product_id, date, ${measureColumns}, quality_flags, submitted_by)
        select u.site_id, u.product_id, ${EPOCH} + u.day, ${sql.raw(MEASURES.map((m) => `u.${COLUMN[m]}`).join(", "))}, ${flagsFrom("u.flags")}, ${submittedBy}::uuid
        from unnest(${sql.param(rows.map((r) => r.siteId))}::uuid[], ${sql.param(rows.map((r) => r.productId))}::int[],
                    ${sql.param(rows.map((r) => r.day))}::int[], ${measureParams(rows.map((r) => r.values))}, ${flagsParam(rows)}::text[])
          as u(site_id, product_id, day, ${measureColumns}, flags)
        -- No ON CONFLICT: storeRows read these keys as absent, at READ COMMITTED, under the
        -- sites' row locks, so no other batch can have written them since.
        returning id::text as id, site_id, product_id, (date - ${EPOCH}) as day`,
    "objects",
  );
  return new Map(inserted.map((r) => [seriesOf(r.site_id, Number(r.product_id)) + Number(r.day), Number(r.id)]));
}

/** Flags computed here; any other flag (from later checks) is kept as it is. */
const OWN_FLAGS = new Set<string>(Object.values(QualityFlag));

interface Merged {
  row: ResolvedRow;
  existing: StoredReport | undefined;
  values: Measures;
  flags: string[];
}

/** Sent figures replace stored ones; figures not sent keep their stored value. */
function mergeAll(rows: ResolvedRow[], stored: Map<string, StoredReport>): Merged[] {
  // Merge every row first: a batch may carry several consecutive days of the same site.
  const values = new Map<string, Measures>();
  const merged = rows.map((r): Merged => {
    const existing = stored.get(r.key);
    const v = {} as Measures;
    for (const m of MEASURES) v[m] = r.base[m] ?? existing?.[m] ?? null;
    values.set(r.key, v);
    return { row: r, existing, values: v, flags: [] };
  });
  for (const m of merged) {
    const prevKey = m.row.series + (m.row.day - 1);
    const previous = values.get(prevKey) ?? stored.get(prevKey);
    const existing = m.existing;
    // BACKFILL says the figures arrived late. Re-sending them unchanged later changes nothing
    // about when they arrived, so an unchanged report keeps its own verdict.
    const backfill = existing && sameMeasures(existing, m.values) ? existing.qualityFlags.includes(QualityFlag.BACKFILL) : m.row.backfill;
    // Flags from other checks (computed elsewhere, later) are kept as they are.
    const others = existing ? existing.qualityFlags.filter((f) => !OWN_FLAGS.has(f)) : [];
    m.flags = [...qualityFlags(m.values, previous?.onHand ?? null, backfill), ...others];
  }
  return merged;
}

async function updateFlags(tx: Database, updates: { id: number; flags: string[] }[]) {
  if (!updates.length) return;
  await tx.execute(
    sql`update report r set quality_flags = ${flagsFrom("u.flags")}
        from unnest(${sql.param(updates.map((u) => u.id))}::bigint[], ${flagsParam(updates)}::text[]) as u(id, flags)
        where r.id = u.id and r.id = any(${sql.param(updates.map((u) => u.id))}::bigint[])`,
  );
}


import { createHash } from "node:crypto";
import { and, eq, inArray, sql } from "drizzle-orm";
import type { Database } from "../../db/index.js";
import { idempotencyKeyTable, outboxTable, siteTable } from "../../db/schema.js";
import { writeAudit } from "../audit.js";
import { DomainError, forbidden } from "../errors.js";
import type { Actor, Viewer } from "../viewer.js";
import { qualityFlags } from "./quality.js";
import {
  MAX_QUANTITY,
  MEASURES,
  QUANTITIES,
  localToday,
  parseRow,
  shiftDate,
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
  factor: number;
  backfill: boolean;
}

interface StoredReport extends Measures {
  id: number;
  siteId: string;
  productId: number;
  date: string;
  qualityFlags: string[];
}

const key = (siteId: string, productId: number, date: string) => `${siteId}|${productId}|${date}`;

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
        after: { rows: inputs.length, accepted: result.accepted, rejected: new Set(rejected.map((r) => r.index)).size, idempotencyKey, reportIds },
      });
      if (idempotencyKey !== null) {
        await tx
          .update(idempotencyKeyTable)
          .set({ response: result })
          .where(
            and(
              eq(idempotencyKeyTable.userId, viewer.userId),
              eq(idempotencyKeyTable.operation, "submitReports"),
              eq(idempotencyKeyTable.key, idempotencyKey),
            ),
          );
      }
      return result;
    });
  // Two batches touching the same keys can deadlock despite the ordered writes (a correction and
  // a first submission racing); Postgres aborts one, and running it again is safe.
  for (let tries = 1; ; tries++) {
    try {
      return await attempt();
    } catch (error) {
      if (!isRetryable(error)) throw error;
      if (tries >= 3) throw new DomainError("CONFLICT", "the batch collided with concurrent batches three times; send it again in a moment");
    }
  }
}

function isRetryable(error: unknown): boolean {
  for (let e: any = error; e; e = e.cause) if (e.code === "40P01" || e.code === "40001") return true;
  return false;
}

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
    .where(
      and(
        eq(idempotencyKeyTable.userId, viewer.userId),
        eq(idempotencyKeyTable.operation, "submitReports"),
        eq(idempotencyKeyTable.key, idempotencyKey),
      ),
    );
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
  const todayByZone = new Map<string, string>();
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
    if (site) {
      let today = todayByZone.get(site.timeZone);
      if (today === undefined) todayByZone.set(site.timeZone, (today = localToday(now, site.timeZone)));
      if (row.date > shiftDate(today, 1)) {
        fail("date", `date ${row.date} is in the future (it is ${today} at site ${site.code}); a report may be at most one day ahead`);
        ok = false;
      }
      backfill = row.date < shiftDate(today, -backfillDays);
    }
    if (!ok) continue;
    const k = key(site!.id, product!.id, row.date);
    const first = seen.get(k);
    if (first !== undefined) {
      fail(null, `same site, product and date as row ${first}; send each report once per batch`);
      continue;
    }
    seen.set(k, row.index);
    resolved.push({ row, siteId: site!.id, productId: product!.id, factor, backfill });
  }
  return resolved;
}

function toBase(r: ResolvedRow): Partial<Measures> {
  const out: Partial<Measures> = {};
  for (const [m, v] of Object.entries(r.row.values) as [keyof Measures, number][]) {
    out[m] = m === "stockoutHours" || r.factor === 1 ? v : v * r.factor;
  }
  return out;
}

const EMPTY: Measures = Object.fromEntries(MEASURES.map((m) => [m, null])) as Measures;
const sameMeasures = (a: Measures, b: Measures) => MEASURES.every((m) => a[m] === b[m]);

async function loadReports(tx: Database, keys: { siteId: string; productId: number; date: string }[], lock: boolean) {
  if (!keys.length) return [];
  const rows = await tx.execute<Record<string, unknown>>(
    sql`select r.id::text as id, r.site_id, r.product_id, r.date::text as date, ${sql.raw(MEASURES.map((m) => `r.${COLUMN[m]}`).join(", "))}, r.quality_flags
        from report r
        join unnest(${sql.param(keys.map((k) => k.siteId))}::uuid[], ${sql.param(keys.map((k) => k.productId))}::int[], ${sql.param(keys.map((k) => k.date))}::date[])
          as k(site_id, product_id, date)
          on r.site_id = k.site_id and r.product_id = k.product_id and r.date = k.date
        ${lock ? sql`order by r.id for update of r` : sql``}`,
    "objects",
  );
  return rows.map(
    (r): StoredReport => ({
      id: Number(r.id),
      siteId: r.site_id as string,
      productId: Number(r.product_id),
      date: r.date as string,
      ...(Object.fromEntries(MEASURES.map((m) => [m, r[COLUMN[m]] === null ? null : Number(r[COLUMN[m]])])) as Measures),
      qualityFlags: (r.quality_flags as string[] | null) ?? [],
    }),
  );
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
 * copied to `report_revision` and replaced, in two statements. A key inserted concurrently by
 * another batch after we looked is caught by ON CONFLICT and retried as a correction.
 */
async function storeRows(tx: Database, viewer: Viewer, input: ResolvedRow[]): Promise<number[]> {
  if (!input.length) return [];
  // One site's figures form one series: batches touching the same sites take turns (row locks on
  // the sites, in id order, so never a deadlock), and every neighbouring day a batch reads for its
  // quality flags is final. Row locks live in the tuples, not in the shared lock table.
  await tx.execute(
    sql`select id from site where id = any(${sql.param([...new Set(input.map((r) => r.siteId))])}::uuid[]) order by id for no key update`,
  );
  // Writing in key order makes concurrent batches lock index entries in the same order.
  const rows = [...input].sort((a, b) => compareKeys(key(a.siteId, a.productId, a.row.date), key(b.siteId, b.productId, b.row.date)));
  const byKey = new Map(rows.map((r) => [key(r.siteId, r.productId, r.row.date), r]));
  const stored = new Map<string, StoredReport>();
  const remember = (list: StoredReport[]) => list.forEach((s) => stored.set(key(s.siteId, s.productId, s.date), s));

  const keysOf = (list: ResolvedRow[]) => list.map((r) => ({ siteId: r.siteId, productId: r.productId, date: r.row.date }));
  // Neighbouring days outside the batch: the day before balances this one, the day after is balanced by it.
  const neighbours = rows.flatMap((r) =>
    [-1, 1]
      .map((d) => ({ siteId: r.siteId, productId: r.productId, date: shiftDate(r.row.date, d) }))
      .filter((k) => !byKey.has(key(k.siteId, k.productId, k.date))),
  );
  const [current, around] = await Promise.all([loadReports(tx, keysOf(rows), true), loadReports(tx, dedupeKeys(neighbours), false)]);
  remember(current);
  remember(around);

  const ids = new Map<ResolvedRow, number>();
  let pending = rows;
  for (let attempt = 0; attempt < 2 && pending.length; attempt++) {
    const merged = mergeAll(pending, stored);
    const fresh = merged.filter((m) => !m.existing);
    const corrections = merged.filter((m) => m.existing && !sameMeasures(m.existing, m.values));
    const unchanged = merged.filter((m) => m.existing && sameMeasures(m.existing, m.values));
    for (const m of unchanged) ids.set(m.row, m.existing!.id);
    // Same figures, but a corrected neighbour in this batch may change the flags: no new revision.
    await updateFlags(
      tx,
      unchanged.filter((m) => m.flags.join(",") !== m.existing!.qualityFlags.join(",")).map((m) => ({ id: m.existing!.id, flags: m.flags })),
    );

    const raced: ResolvedRow[] = [];
    if (fresh.length) {
      const inserted = await tx.execute<{ id: string; site_id: string; product_id: number; date: string }>(
        sql`insert into report (site_id, product_id, date, ${measureColumns}, quality_flags, submitted_by)
            select u.site_id, u.product_id, u.date, ${sql.raw(MEASURES.map((m) => `u.${COLUMN[m]}`).join(", "))}, ${flagsFrom("u.flags")}, ${viewer.userId}::uuid
            from unnest(${sql.param(fresh.map((m) => m.row.siteId))}::uuid[], ${sql.param(fresh.map((m) => m.row.productId))}::int[],
                        ${sql.param(fresh.map((m) => m.row.row.date))}::date[], ${measureParams(fresh.map((m) => m.values))}, ${flagsParam(fresh)}::text[])
              as u(site_id, product_id, date, ${measureColumns}, flags)
            on conflict (site_id, product_id, date) do nothing
            returning id::text as id, site_id, product_id, date::text as date`,
        "objects",
      );
      const got = new Map(inserted.map((r) => [key(r.site_id, Number(r.product_id), r.date), Number(r.id)]));
      for (const m of fresh) {
        const id = got.get(key(m.row.siteId, m.row.productId, m.row.row.date));
        if (id === undefined) raced.push(m.row);
        else ids.set(m.row, id);
      }
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
            where r.id = u.id`,
      );
      for (const m of corrections) ids.set(m.row, m.existing!.id);
    }
    for (const m of merged) {
      stored.set(key(m.row.siteId, m.row.productId, m.row.row.date), { ...(m.existing ?? { id: ids.get(m.row)! }), ...m.values, siteId: m.row.siteId, productId: m.row.productId, date: m.row.row.date, qualityFlags: m.flags } as StoredReport);
    }
    if (raced.length) remember(await loadReports(tx, keysOf(raced), true));
    pending = raced;
  }
  if (pending.length) {
    throw new DomainError("CONFLICT", `reports kept changing under a concurrent batch (${pending.length} rows); send the batch again`);
  }

  await refreshNextDayFlags(tx, around, stored, byKey);
  return input.map((r) => ids.get(r)!);
}

const compareKeys = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function dedupeKeys<T extends { siteId: string; productId: number; date: string }>(keys: T[]): T[] {
  const m = new Map(keys.map((k) => [key(k.siteId, k.productId, k.date), k]));
  return [...m.values()];
}

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
  const merged = rows.map((r) => {
    const k = key(r.siteId, r.productId, r.row.date);
    const existing = stored.get(k);
    const base: Measures = existing ? pickMeasures(existing) : { ...EMPTY };
    const v = { ...base, ...toBase(r) };
    values.set(k, v);
    return { row: r, existing, values: v, flags: [] as string[] };
  });
  for (const m of merged) {
    const prevKey = key(m.row.siteId, m.row.productId, shiftDate(m.row.row.date, -1));
    // `stored` also holds the merged values of rows written in an earlier pass of this batch.
    const previous = values.get(prevKey) ?? stored.get(prevKey);
    m.flags = qualityFlags(m.values, previous?.onHand ?? null, m.row.backfill);
  }
  return merged;
}

function pickMeasures(s: Measures): Measures {
  return Object.fromEntries(MEASURES.map((m) => [m, s[m]])) as Measures;
}

/** A correction of day t changes whether day t+1's stock balance holds; keep its flag true. */
async function refreshNextDayFlags(tx: Database, around: StoredReport[], stored: Map<string, StoredReport>, byKey: Map<string, ResolvedRow>) {
  const updates: { id: number; flags: string[] }[] = [];
  for (const next of around) {
    const prevKey = key(next.siteId, next.productId, shiftDate(next.date, -1));
    if (!byKey.has(prevKey)) continue;
    const previous = stored.get(prevKey)!;
    const backfill = next.qualityFlags.includes("BACKFILL");
    const flags = qualityFlags(next, previous.onHand, backfill);
    // Flags that this module does not compute (later checks) are kept as they are.
    const kept = next.qualityFlags.filter((f) => !["STOCK_BALANCE_MISMATCH", "PRODUCED_ABOVE_CAPACITY", "BACKFILL"].includes(f));
    const all = [...flags, ...kept];
    if (all.join(",") !== next.qualityFlags.join(",")) updates.push({ id: next.id, flags: all });
  }
  await updateFlags(tx, updates);
}

async function updateFlags(tx: Database, updates: { id: number; flags: string[] }[]) {
  if (!updates.length) return;
  await tx.execute(
    sql`update report r set quality_flags = ${flagsFrom("u.flags")}
        from unnest(${sql.param(updates.map((u) => u.id))}::bigint[], ${flagsParam(updates)}::text[]) as u(id, flags)
        where r.id = u.id`,
  );
}

export { QUANTITIES };

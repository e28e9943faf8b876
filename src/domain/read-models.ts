import { sql } from "drizzle-orm";
import type { Database } from "../db/index.js";

// The read models are derived from `report`, never written any other way. Their definitions are
// the SQL functions of migration `read_models` (refresh_inventory_current,
// refresh_region_day_rollup): the outbox relay, the rollup job and the rebuild call them, and
// test/read-models.test.ts shows the incremental result equals the rebuild.

/**
 * Brings `inventory_current` up to date for the series of these reports; called by the outbox
 * relay in its transaction, before it enqueues the jobs the reports cause (whose readers expect
 * it current), so the cost stays off the request path.
 *
 * Two relays may handle reports of the same series at once, and a relay whose statement started
 * before the other's reports committed would write older figures over newer ones. So the rows are
 * first locked (new series get a placeholder row, locked the same way), in key order so two relays
 * cannot deadlock, and derived only then, by a statement whose snapshot sees every report
 * committed before the lock was granted.
 */
export async function refreshInventoryFor(tx: Database, reportIds: readonly number[]): Promise<number> {
  if (reportIds.length === 0) return 0;
  await tx.execute(
    sql`insert into inventory_current as c (site_id, product_id, report_id, date)
        select distinct on (site_id, product_id) site_id, product_id, id, date
        from report where id = any(${sql.param(reportIds)}::bigint[])
        order by site_id, product_id
        -- Locks the row without writing it: "all rows will be locked when the ON CONFLICT DO
        -- UPDATE action is taken", whatever the WHERE says.
        on conflict (site_id, product_id) do update set date = excluded.date where false`,
  );
  const rows = await tx.execute<{ n: number }>(
    sql`select coalesce(refresh_inventory_current(array_agg(site_id), array_agg(product_id)), 0) as n
        from (select distinct site_id, product_id from report where id = any(${sql.param(reportIds)}::bigint[])) k`,
    "objects",
  );
  return rows[0]?.n ?? 0;
}

/** Marks the (product, day) slices of these reports for the rollup job; called by the outbox relay. */
export async function markRollupsDirty(tx: Database, reportIds: readonly number[]): Promise<number> {
  if (reportIds.length === 0) return 0;
  const rows = await tx.execute<{ n: number }>(
    sql`with marked as (
          insert into rollup_dirty (product_id, date)
          select distinct product_id, date from report where id = any(${sql.param(reportIds)}::bigint[])
          order by 1, 2
          on conflict (product_id, date) do update set dirty_at = now()
          returning 1
        ) select count(*)::int as n from marked`,
    "objects",
  );
  return rows[0]?.n ?? 0;
}

export interface RollupRefresh {
  slices: number;
  rows: number;
}

/**
 * Refreshes the dirty rollup slices, `chunk` at a time, each chunk in its own transaction. Several
 * workers may run it at once: each claims slices the others have not locked. A slice marked again
 * while it is being refreshed is refreshed again by the next run.
 */
export async function refreshDirtyRollups(db: Database, chunk = 20): Promise<RollupRefresh> {
  const total: RollupRefresh = { slices: 0, rows: 0 };
  for (;;) {
    const done = await db.transaction(async (tx) => {
      const rows = await tx.execute<{ rows: number }>(
        sql`with claimed as (
              delete from rollup_dirty where (product_id, date) in (
                select product_id, date from rollup_dirty order by dirty_at, product_id, date limit ${chunk} for update skip locked
              ) returning product_id, date
            )
            select refresh_region_day_rollup(product_id, date) as rows from claimed`,
        "objects",
      );
      return { slices: rows.length, rows: rows.reduce((n, r) => n + r.rows, 0) };
    });
    total.slices += done.slices;
    total.rows += done.rows;
    if (done.slices < chunk) return total;
  }
}

/**
 * Throws the read models away and derives them again from every report: what to run after
 * restoring reports from elsewhere, or to prove the incremental path right.
 */
export async function rebuildReadModels(db: Database): Promise<{ inventory: number; slices: number; rollups: number }> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`truncate inventory_current, region_day_rollup, rollup_dirty`);
    const inventory = await tx.execute<{ n: number }>(
      sql`select coalesce(refresh_inventory_current(array_agg(site_id), array_agg(product_id)), 0) as n
          from (select distinct site_id, product_id from report) k`,
      "objects",
    );
    const rollups = await tx.execute<{ slices: number; rows: number }>(
      sql`select count(*)::int as slices, coalesce(sum(refresh_region_day_rollup(product_id, date)), 0)::int as rows
          from (select distinct product_id, date from report) s`,
      "objects",
    );
    return { inventory: inventory[0]?.n ?? 0, slices: rollups[0]?.slices ?? 0, rollups: rollups[0]?.rows ?? 0 };
  });
}

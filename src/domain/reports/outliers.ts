// Outlier check of new reports against the site's own history (SPEC "Reports": a robust z-score
// on median and MAD, as DHIS2's outlier detection does). It runs as a job after the report is
// stored, not in the write path: it reads up to OUTLIER_WINDOW days per report, and a late flag
// costs nothing, while a slower submitReports costs every reporter.
//
// The job owns the OUTLIER flag: it sets or clears it from the report's current figures each
// time it runs, and the ingestion keeps it untouched (it is not one of the ingestion's flags), so a
// correction is re-checked by the job that its outbox event triggers.
import { sql } from "drizzle-orm";
import type { Database } from "../../db/index.js";

export const OUTLIER_FLAG = "OUTLIER";
/** Days of the site's own history a report is compared with. */
export const OUTLIER_WINDOW = 90;
/** Fewer earlier values than this make no robust estimate of spread. */
export const OUTLIER_MIN_HISTORY = 7;
/** Iglewicz & Hoaglin: |modified z| above 3.5 is a potential outlier. DHIS2 uses 3 on its z-score. */
export const OUTLIER_THRESHOLD = 3.5;
const MEASURES = [
  ["onHand", "on_hand"],
  ["consumed", "consumed"],
  ["produced", "produced"],
  ["received", "received"],
  ["shipped", "shipped"],
] as const;

/**
 * Modified z-score 0.6745 (x - median) / MAD. When half or more of the history is one value the
 * MAD is 0; then the mean absolute deviation stands in (scaled by 1.2533 to the same normal
 * consistency), and when that is 0 too the history is constant and any other value stands out.
 */
export function modifiedZ(value: number, history: readonly number[]): number | null {
  if (history.length < OUTLIER_MIN_HISTORY) return null;
  const sorted = [...history].sort((a, b) => a - b);
  const median = medianOf(sorted);
  const deviations = sorted.map((v) => Math.abs(v - median)).sort((a, b) => a - b);
  const mad = medianOf(deviations);
  if (mad > 0) return (0.6745 * (value - median)) / mad;
  const meanAd = deviations.reduce((s, d) => s + d, 0) / deviations.length;
  if (meanAd > 0) return (value - median) / (1.2533 * meanAd);
  return value === median ? 0 : value > median ? Infinity : -Infinity;
}

function medianOf(sorted: readonly number[]): number {
  const n = sorted.length;
  return n % 2 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
}

export interface OutlierFinding {
  reportId: number;
  /** Measures found outlying, with their modified z-score. */
  measures: { measure: string; z: number }[];
}

/**
 * Sets or clears OUTLIER on each of the reports from its current figures; returns what it found.
 * Idempotent: a second run finds the same and writes nothing.
 */
export async function flagOutliers(db: Database, reportIds: readonly number[]): Promise<{ flagged: OutlierFinding[]; changed: number }> {
  if (reportIds.length === 0) return { flagged: [], changed: 0 };
  const rows = await db.execute<Record<string, unknown> & { id: number; flags: string[]; history: Record<string, number[]> }>(
    sql`select r.id::int as id, r.quality_flags as flags, r.on_hand, r.consumed, r.produced, r.received, r.shipped,
               jsonb_build_object(
                 'on_hand', coalesce(jsonb_agg(h.on_hand) filter (where h.on_hand is not null), '[]'),
                 'consumed', coalesce(jsonb_agg(h.consumed) filter (where h.consumed is not null), '[]'),
                 'produced', coalesce(jsonb_agg(h.produced) filter (where h.produced is not null), '[]'),
                 'received', coalesce(jsonb_agg(h.received) filter (where h.received is not null), '[]'),
                 'shipped', coalesce(jsonb_agg(h.shipped) filter (where h.shipped is not null), '[]')
               ) as history
        from report r
        left join report h on h.site_id = r.site_id and h.product_id = r.product_id
          and h.date < r.date and h.date >= r.date - ${OUTLIER_WINDOW}::int
        where r.id = any(${sql.param([...reportIds])}::bigint[])
        group by r.id`,
    "objects",
  );
  const flagged: OutlierFinding[] = [];
  const set: number[] = [];
  const clear: number[] = [];
  for (const row of rows) {
    const measures: { measure: string; z: number }[] = [];
    for (const [name, column] of MEASURES) {
      const value = row[column] as number | null;
      if (value === null || value === undefined) continue;
      const z = modifiedZ(Number(value), row.history[column] ?? []);
      if (z !== null && Math.abs(z) > OUTLIER_THRESHOLD) measures.push({ measure: name, z });
    }
    const has = row.flags.includes(OUTLIER_FLAG);
    if (measures.length) flagged.push({ reportId: row.id, measures });
    if (measures.length && !has) set.push(row.id);
    if (!measures.length && has) clear.push(row.id);
  }
  // Array operations on the row as it is now, so a flag another writer changed meanwhile stays.
  if (set.length) {
    await db.execute(sql`update report set quality_flags = array_append(array_remove(quality_flags, ${OUTLIER_FLAG}), ${OUTLIER_FLAG}) where id = any(${sql.param(set)}::bigint[])`);
  }
  if (clear.length) {
    await db.execute(sql`update report set quality_flags = array_remove(quality_flags, ${OUTLIER_FLAG}) where id = any(${sql.param(clear)}::bigint[])`);
  }
  return { flagged, changed: set.length + clear.length };
}

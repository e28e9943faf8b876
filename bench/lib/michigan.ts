// Michigan's hospital PPE tracking (dmorl/MichiganHospitalData, CC0 1.0): reading and cleaning the
// region totals of the daily reporting period, for the forecast benches and tests.
//
// The file has one row per region and date with the stock on hand of each PPE product, summed
// over the region's hospitals, and `Reporting_PPE`, the share of hospitals that reported PPE.
// Its dirty values, and what `loadMichiganDaily` does with each (counts in `MichiganCleaning`):
//
// - malformed counts: `3,621,35`, `64,767,68`, `4,92,231`, `3,98,124` have thousands separators in
//   the wrong places (a digit lost or added; the neighbours cannot say which). Dropped, as are
//   empty cells (weekends and holidays after May 2020 have no row at all; some rows are empty).
// - rows that are not a report: `Reporting_PPE` reads "data from 4/23" (a copy of the day before)
//   or a share below 50 % (2020-11-12: "1%" in every region, the values copied from 11-11).
//   Dropped. Otherwise the share (58-94 %) says nothing about the stock: the day-to-day changes of
//   the share and of the stock are uncorrelated (|r| <= 0.11 for each product), so the totals are
//   not rescaled by it.
// - stale copies: a row whose products all equal an earlier row of the same region (2020-09-24
//   repeats 09-14 in region 1; 12-11 repeats 12-09; some days repeat the day before). Sums over
//   dozens of hospitals do not repeat to the unit, so these are the earlier report sent again,
//   not a new count. Dropped (44 rows with the shared file's three products).
// - state-wide glitches: on 2020-05-27 every region's surgical masks fell to 3-45 % of the day
//   before, and on 2020-08-20 every region's gloves to 1-21 %; both came back at the next report.
//   A product whose median change over the regions that day is a halving or a doubling is
//   dropped for that day in every region. This uses only that day and earlier ones; the next
//   largest median change in the period is a factor 1.26, so nothing is decided at the margin.
//
// Left as they are: single-region jumps, including a few that reverse days later (region 3's N95
// masks read about 3.3 times their level from 2020-11-16 to 11-20). When one happens it looks like
// a delivery or a hospital joining the count, most large jumps (88 % of those above 3 times the
// mean move) persist, and deciding with hindsight which ones were errors would clean the test
// data with knowledge no forecaster has.
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "csv-parse/sync";

/** The source file as kept next to the repository (`../shared/...` from the repository root). */
export const MICHIGAN_SHARED_CSV = fileURLToPath(
  new URL("../../../shared/data/michigan-ppe/MichiganOverview_HospitalTracking.csv", import.meta.url),
);
/** The daily-period slice kept with the tests (see test/fixtures/README.md). */
export const MICHIGAN_FIXTURE_CSV = fileURLToPath(new URL("../../test/fixtures/michigan-ppe-daily.csv", import.meta.url));

export const MICHIGAN_REGIONS = ["1", "2N", "2S", "3", "5", "6", "7", "8"] as const;
/** Reported daily until this date, then weekly: only the daily part is a daily series. */
export const MICHIGAN_DAILY = { from: "2020-04-02", to: "2021-02-03" } as const;
/** A row whose Reporting_PPE share is below this (percent) is not a region total. */
export const MIN_REPORTING_SHARE = 50;
/** A product's median one-day change over the regions beyond this factor is a reporting glitch. */
export const STATEWIDE_GLITCH_FACTOR = 2;

/**
 * A cell is a count when it is plain digits or digits grouped by thousands ("1,234,567"). Cells
 * such as `3,621,35` or `64,767,68` have commas in the wrong places: a digit was lost or added, and
 * the neighbouring days cannot tell which, so they are not guessed at but dropped like empty cells.
 */
export function parseCount(cell: string | undefined): number | null {
  const s = (cell ?? "").trim();
  if (/^\d+$/.test(s) || /^\d{1,3}(,\d{3})+$/.test(s)) return Number(s.replaceAll(",", ""));
  return null;
}

/** The source rows (header names as keys), BOM stripped. */
export function readMichiganRows(path: string): Record<string, string>[] {
  return parse(readFileSync(path), { columns: true, bom: true, skip_empty_lines: true, relax_column_count: true }) as Record<string, string>[];
}

/** The shared file when it is there, else the vendored slice, with a note saying which. */
export function resolveMichiganCsv(): { path: string; note: string | null } {
  if (existsSync(MICHIGAN_SHARED_CSV)) return { path: MICHIGAN_SHARED_CSV, note: null };
  return {
    path: MICHIGAN_FIXTURE_CSV,
    note: `note: ${MICHIGAN_SHARED_CSV} not found; using the vendored daily slice ${MICHIGAN_FIXTURE_CSV} (no Reporting_PPE column: the copies it marks are caught as stale copies)`,
  };
}

export interface MichiganCleaning {
  /** Cells that were empty (rows present, figure missing). */
  empty: number;
  /** Cells with malformed thousands separators, as `date region product 'cell'`. */
  malformed: string[];
  /** Rows dropped because Reporting_PPE says they are not a report ("data from ...", < 50 %). */
  notReports: number;
  /** Rows dropped as exact copies of an earlier row of the same region. */
  staleCopies: number;
  /** Rows repeated for the same region and date (the first is kept). */
  duplicates: number;
  /** Product-days dropped in every region as a state-wide glitch, as `date product`. */
  statewide: string[];
}

export interface MichiganDaily {
  /** Calendar days of the daily period, oldest first. */
  dates: string[];
  products: readonly string[];
  /** Stock on hand per region and product, one value per calendar day, null where none is kept. */
  series: Map<string, Map<string, (number | null)[]>>;
  cleaning: MichiganCleaning;
}

function dayList(from: string, to: string): string[] {
  const out: string[] = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`); t += 86_400_000) {
    out.push(new Date(t).toISOString().slice(0, 10));
  }
  return out;
}

/**
 * On-hand stock per region and product over the calendar days of the daily period, cleaned as the
 * header of this file describes. Days without a kept value are null (never interpolated: the
 * backtest would score forecasts against values we made up).
 */
export function loadMichiganDaily(path: string, products: readonly string[]): MichiganDaily {
  const dates = dayList(MICHIGAN_DAILY.from, MICHIGAN_DAILY.to);
  const dayIndex = new Map(dates.map((d, i) => [d, i]));
  const cleaning: MichiganCleaning = { empty: 0, malformed: [], notReports: 0, staleCopies: 0, duplicates: 0, statewide: [] };
  const series = new Map<string, Map<string, (number | null)[]>>();
  for (const region of MICHIGAN_REGIONS) {
    series.set(region, new Map(products.map((p) => [p, new Array<number | null>(dates.length).fill(null)])));
  }

  const rows = readMichiganRows(path)
    .filter((r) => dayIndex.has(r.Date ?? "") && series.has(r.Region ?? ""))
    .sort((a, b) => (a.Date ?? "").localeCompare(b.Date ?? ""));
  const seen = new Set<string>();
  const earlier = new Map<string, string[]>(MICHIGAN_REGIONS.map((r) => [r, []]));
  for (const r of rows) {
    const region = r.Region as string;
    const date = r.Date as string;
    if (seen.has(`${region} ${date}`)) {
      cleaning.duplicates++;
      continue;
    }
    seen.add(`${region} ${date}`);
    const values = products.map((p) => {
      const cell = (r[p] ?? "").trim();
      const v = parseCount(cell);
      if (v === null) {
        if (cell === "") cleaning.empty++;
        else cleaning.malformed.push(`${date} ${region} ${p} '${cell}'`);
      }
      return v;
    });
    if (values.every((v) => v === null)) continue;
    const share = (r.Reporting_PPE ?? "").trim();
    const percent = /^(\d+(?:\.\d+)?)%$/.exec(share);
    if (/^data from/i.test(share) || (percent && Number(percent[1]) < MIN_REPORTING_SHARE)) {
      cleaning.notReports++;
      continue;
    }
    // The whole row (the products read) as a key; at least two figures, so a lone repeated
    // count (a small region's stock that did not move) is not taken for a copied report.
    const key = values.join("|");
    const previous = earlier.get(region) as string[];
    if (values.filter((v) => v !== null).length >= 2 && previous.includes(key)) {
      cleaning.staleCopies++;
      continue;
    }
    previous.push(key);
    const t = dayIndex.get(date) as number;
    products.forEach((p, k) => {
      (series.get(region)?.get(p) as (number | null)[])[t] = values[k] as number | null;
    });
  }

  // State-wide glitches, day by day, each region's change against its last kept value.
  for (const p of products) {
    const last = new Map<string, number>();
    for (let t = 0; t < dates.length; t++) {
      const changes: number[] = [];
      for (const region of MICHIGAN_REGIONS) {
        const v = series.get(region)?.get(p)?.[t];
        const before = last.get(region);
        if (v !== null && v !== undefined && before !== undefined) changes.push(Math.log(Math.max(v, 1) / Math.max(before, 1)));
      }
      changes.sort((a, b) => a - b);
      const mid = changes.length >> 1;
      const median = changes.length % 2 ? (changes[mid] as number) : ((changes[mid - 1] as number) + (changes[mid] as number)) / 2;
      if (changes.length >= MICHIGAN_REGIONS.length / 2 && Math.abs(median) > Math.log(STATEWIDE_GLITCH_FACTOR)) {
        cleaning.statewide.push(`${dates[t]} ${p}`);
        for (const region of MICHIGAN_REGIONS) (series.get(region)?.get(p) as (number | null)[])[t] = null;
      }
      for (const region of MICHIGAN_REGIONS) {
        const v = series.get(region)?.get(p)?.[t];
        if (v !== null && v !== undefined) last.set(region, v);
      }
    }
  }
  return { dates, products, series, cleaning };
}

// Forecast accuracy on real data: `npx tsx bench/forecast-accuracy.ts [horizon]`.
// Michigan's hospital PPE stock per region (daily period), rolling-origin backtest of
// forecastDemand against the naive forecast. The test asserts the same comparison; this prints
// the per-series table the test keeps quiet about.
import { fileURLToPath } from "node:url";
import { forecastDemand, rollingOriginBacktest, type ForecastMethod } from "../src/domain/forecast/methods.js";
import { MICHIGAN_DAILY, MICHIGAN_FIXTURE_CSV, MICHIGAN_REGIONS, parseCount, readMichiganRows } from "./lib/michigan.js";

// Reading and parsing live in bench/lib/michigan.ts (shared with `npm run backtest -- michigan`).
export { MICHIGAN_DAILY, MICHIGAN_REGIONS, parseCount };
/** The daily-period slice of the source file, kept with the tests (see test/fixtures/README.md). */
export const MICHIGAN_CSV = MICHIGAN_FIXTURE_CSV;
export const MICHIGAN_PRODUCTS = ["N95_Masks", "Surgical_Masks", "Gloves", "Isolation_Gowns"] as const;

export interface MichiganSeries {
  region: string;
  product: string;
  /** Reporting dates kept, one per value. */
  dates: string[];
  values: number[];
  /** Cells dropped as empty or malformed. */
  dropped: number;
}

/**
 * One series per region and product over the daily period. The series steps from one reporting
 * day to the next: the file has no rows on most weekends and holidays after May 2020, and
 * interpolating two days in seven would score forecasts against values we made up. For the same
 * reason a dropped cell is removed rather than interpolated. Series with fewer than
 * `minPoints` values (a product not reported in the period) are left out.
 */
export function loadMichiganSeries(path = MICHIGAN_CSV, minPoints = 60): MichiganSeries[] {
  const rows = readMichiganRows(path);
  const daily = rows
    .filter((r) => (r.Date ?? "") >= MICHIGAN_DAILY.from && (r.Date ?? "") <= MICHIGAN_DAILY.to)
    .sort((a, b) => (a.Date ?? "").localeCompare(b.Date ?? ""));
  const out: MichiganSeries[] = [];
  for (const region of MICHIGAN_REGIONS) {
    const regionRows = daily.filter((r) => r.Region === region);
    for (const product of MICHIGAN_PRODUCTS) {
      const s: MichiganSeries = { region, product, dates: [], values: [], dropped: 0 };
      for (const r of regionRows) {
        const v = parseCount(r[product]);
        if (v === null) {
          s.dropped++;
          continue;
        }
        s.dates.push(r.Date ?? "");
        s.values.push(v);
      }
      if (s.values.length >= minPoints) out.push(s);
    }
  }
  return out;
}

export interface SeriesAccuracy {
  series: MichiganSeries;
  /** Method forecastDemand chose at the last origin. */
  method: ForecastMethod;
  methods: Record<string, number>;
  origins: number;
  maseMethod: number;
  maseNaive: number;
}

/**
 * Origins every `step` points over the last `span` points of the series, each with `horizon`
 * future points to score against.
 */
export function backtestOrigins(length: number, horizon: number, span = 70, step = 7): number[] {
  const origins: number[] = [];
  for (let o = length - horizon; o >= Math.max(length - horizon - span, 28); o -= step) origins.unshift(o);
  return origins;
}

export function michiganAccuracy(horizon = 14, all = loadMichiganSeries()): SeriesAccuracy[] {
  return all.map((series) => {
    const methods: Record<string, number> = {};
    let method: ForecastMethod = "naive";
    const result = rollingOriginBacktest(
      series.values,
      (past, h) => {
        const f = forecastDemand(past, { horizon: h });
        methods[f.method] = (methods[f.method] ?? 0) + 1;
        method = f.method;
        return f.mean;
      },
      { horizon, origins: backtestOrigins(series.values.length, horizon) },
    );
    return { series, method, methods, origins: result.origins, maseMethod: result.maseMethod, maseNaive: result.maseNaive };
  });
}

function main() {
  const horizon = Number(process.argv[2] ?? 14);
  const started = performance.now();
  const rows = michiganAccuracy(horizon);
  const ms = performance.now() - started;
  const pad = (s: string | number, w: number) => String(s).padEnd(w);
  const num = (x: number) => x.toFixed(3).padStart(7);
  console.log(`Michigan PPE on hand, daily period ${MICHIGAN_DAILY.from}..${MICHIGAN_DAILY.to}, horizon ${horizon}`);
  console.log(`${pad("series", 20)}${pad("n", 5)}${pad("drop", 5)}${pad("orig", 5)}${pad("method (last origin)", 22)}  MASE fc  MASE naive  ratio`);
  for (const r of rows) {
    console.log(
      `${pad(`${r.series.region}/${r.series.product}`, 20)}${pad(r.series.values.length, 5)}${pad(r.series.dropped, 5)}${pad(r.origins, 5)}${pad(r.method, 22)}${num(r.maseMethod)}  ${num(r.maseNaive)}  ${num(r.maseMethod / r.maseNaive)}`,
    );
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log("");
  for (const product of MICHIGAN_PRODUCTS) {
    const p = rows.filter((r) => r.series.product === product);
    if (p.length === 0) continue;
    console.log(
      `${pad(product, 20)}mean MASE forecast ${num(mean(p.map((r) => r.maseMethod)))}  naive ${num(mean(p.map((r) => r.maseNaive)))}  ratio of means ${num(mean(p.map((r) => r.maseMethod)) / mean(p.map((r) => r.maseNaive)))}`,
    );
  }
  const mM = mean(rows.map((r) => r.maseMethod));
  const mN = mean(rows.map((r) => r.maseNaive));
  const chosen: Record<string, number> = {};
  for (const r of rows) for (const [m, c] of Object.entries(r.methods)) chosen[m] = (chosen[m] ?? 0) + c;
  console.log(`${pad("all", 20)}mean MASE forecast ${num(mM)}  naive ${num(mN)}  ratio of means ${num(mM / mN)}`);
  console.log(`${rows.length} series, methods chosen over all origins: ${JSON.stringify(chosen)}, ${(ms / 1000).toFixed(1)} s`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();

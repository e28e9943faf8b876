// Forecast backtests on real data: `npm run backtest -- <data set> [options]`.
//
// `michigan`: Michigan's hospital PPE on-hand stock per region (daily period 2020-04-02 ..
// 2021-02-03), N95 masks, surgical masks and gloves. At every origin the service's leaf forecast
// (forecastLeaf, then project) sees only the past, and its projected stock 7 and 14 days on is
// scored by MASE next to the naive forecast (the last reported stock). See bench/lib/michigan.ts
// for the data cleaning and bench/lib/michigan-backtest.ts for the scoring.
import { fileURLToPath } from "node:url";
import { BACKTEST_HORIZONS, BACKTEST_PRODUCTS, backtestMichigan, formatBacktest, type BacktestResult } from "./lib/michigan-backtest.js";
import { MICHIGAN_DAILY, loadMichiganDaily, resolveMichiganCsv } from "./lib/michigan.js";

/** The goal of the issue: below 1.0 for every product, 0.9 or lower on average. */
export const GOAL = { perProduct: 1.0, average: 0.9 } as const;

export const USAGE = `Usage: npm run backtest -- <data set> [--stride N]

Data sets:
  michigan   Michigan hospital PPE on-hand stock by region, daily period ${MICHIGAN_DAILY.from}..${MICHIGAN_DAILY.to}
             (../shared/data/michigan-ppe/MichiganOverview_HospitalTracking.csv, else the vendored slice
             test/fixtures/michigan-ppe-daily.csv). Prints per product the MASE of the 7- and 14-day-ahead
             stock forecast (forecastLeaf + project) and of the naive forecast, and their ratio.

Options:
  --stride N   use every N-th day as a forecast origin (default 1: every day with a report)
  --help       this text`;

const DATA_SETS = ["michigan"] as const;

export function goalVerdict(r: BacktestResult): string[] {
  const lines: string[] = [];
  for (const h of BACKTEST_HORIZONS) {
    const worst = Math.max(...r.products.map((p) => (p.byHorizon[h]?.mase ?? NaN) / (p.byHorizon[h]?.maseNaive ?? NaN)));
    const a = r.average[h] as { mase: number; maseNaive: number };
    const avg = a.mase / a.maseNaive;
    const ok = worst < GOAL.perProduct && avg <= GOAL.average;
    lines.push(
      `${h}-day: worst product ratio ${worst.toFixed(3)} (goal < ${GOAL.perProduct.toFixed(1)}), average ratio ${avg.toFixed(3)} (goal <= ${GOAL.average.toFixed(1)}): ${ok ? "goal met" : "goal NOT met"}`,
    );
  }
  return lines;
}

function parseArgs(argv: string[]): { dataSet: string | undefined; stride: number; help: boolean } {
  let dataSet: string | undefined;
  let stride = 1;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "--help" || a === "-h") help = true;
    else if (a === "--stride") {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`--stride needs a whole number >= 1, got ${argv[i] ?? "nothing"}`);
      stride = v;
    } else if (a.startsWith("-")) throw new Error(`unknown option ${a}`);
    else if (dataSet === undefined) dataSet = a;
    else throw new Error(`one data set at a time, got "${dataSet}" and "${a}"`);
  }
  return { dataSet, stride, help };
}

function runMichigan(stride: number): void {
  const { path, note } = resolveMichiganCsv();
  if (note) console.log(note);
  const started = performance.now();
  const data = loadMichiganDaily(path, BACKTEST_PRODUCTS);
  const c = data.cleaning;
  console.log(`Michigan hospital PPE on hand, ${data.dates.length} days ${MICHIGAN_DAILY.from}..${MICHIGAN_DAILY.to}, 8 regions, ${path}`);
  console.log(
    `cleaning: ${c.empty} empty cells, ${c.malformed.length} malformed (${c.malformed.join("; ")}), ` +
      `${c.notReports} rows not a report (Reporting_PPE), ${c.staleCopies} stale copies of an earlier row, ` +
      `${c.duplicates} duplicate rows, state-wide glitches dropped: ${c.statewide.join("; ") || "none"}`,
  );
  const result = backtestMichigan(data, { stride });
  const seconds = (performance.now() - started) / 1000;
  console.log(`origins: every ${stride === 1 ? "" : `${stride}th `}day with a report from day 28 on; MASE scale: mean absolute change between consecutive reports before the origin`);
  console.log("");
  console.log(formatBacktest(result));
  console.log("");
  for (const line of goalVerdict(result)) console.log(line);
  console.log(`${result.forecasts} forecasts, ${seconds.toFixed(1)} s`);
}

function main(argv: string[]): number {
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(argv);
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  if (args.dataSet === undefined) {
    console.error(`name a data set (${DATA_SETS.join(", ")})\n\n${USAGE}`);
    return 2;
  }
  if (!(DATA_SETS as readonly string[]).includes(args.dataSet)) {
    console.error(`unknown data set "${args.dataSet}": the data sets are ${DATA_SETS.join(", ")}\n\n${USAGE}`);
    return 2;
  }
  runMichigan(args.stride);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main(process.argv.slice(2));

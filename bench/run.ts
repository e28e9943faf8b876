// Benchmark entry: `npm run bench -- <name> [options]`. Each benchmark prints a baseline and our
// path measured in the same run; the recorded figures live in BENCHMARKS.md.
import { ALERTS_USAGE, runAlertsBench } from "./alerts.js";
import { DASHBOARD_USAGE, runDashboardBench } from "./dashboard.js";
import { FORECAST_USAGE, runForecastBench } from "./forecast.js";
import { INGEST_USAGE, runIngestBench } from "./ingest.js";
import { MATCH_USAGE, runMatchBench } from "./match.js";
import { SCALE_USAGE, runScaleBench } from "./scale.js";
import { PLANS_USAGE, runPlansBench } from "./plans.js";

interface Bench {
  usage: string;
  run(argv: string[]): Promise<void>;
}

const BENCHES: Record<string, Bench> = {
  ingest: { usage: INGEST_USAGE, run: runIngestBench },
  forecast: { usage: FORECAST_USAGE, run: runForecastBench },
  match: { usage: MATCH_USAGE, run: runMatchBench },
  alerts: { usage: ALERTS_USAGE, run: runAlertsBench },
  scale: { usage: SCALE_USAGE, run: runScaleBench },
  dashboard: { usage: DASHBOARD_USAGE, run: runDashboardBench },
  plans: { usage: PLANS_USAGE, run: runPlansBench },
};

const USAGE = `Usage: npm run bench -- <name> [options]

Benchmarks:
${Object.values(BENCHES)
  .map((b) => b.usage)
  .join("\n")}`;

const [name, ...argv] = process.argv.slice(2);
const bench = name === undefined ? undefined : BENCHES[name];
if (!bench) {
  console.error(name === undefined ? USAGE : `unknown benchmark "${name}"\n\n${USAGE}`);
  process.exit(2);
}
try {
  await bench.run(argv);
} catch (error) {
  // Database errors may quote a whole batch; the first lines and the stack are what helps.
  const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
  console.error(text.length > 4000 ? `${text.slice(0, 2000)}\n…\n${text.slice(-2000)}` : text);
  process.exitCode = 1;
}

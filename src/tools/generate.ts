// `npm run generate -- --sites N --days D`: a national data set through the service's write path.
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../config.js";
import { openDatabase } from "../db/index.js";
import { DatabaseLockedError } from "../db/pglite-lock.js";
import { DomainError } from "../domain/errors.js";
import {
  DEFAULT_OUTBREAK_PROVINCE,
  DEFAULT_SEED,
  FINISHED_GOODS,
  GENERATE_LIMITS,
  generateNational,
  resolveOptions,
  type GenerateNationalOptions,
} from "./national-data.js";

export const GENERATE_USAGE = `Usage: npm run generate -- --sites N --days D [--products P] [--seed S] [--outbreak-province CODE] [--concurrency C]

Writes a realistic national data set: China's region tree and the catalog (as \`cli regions seed cn\`
and \`cli catalog seed\` do), hospitals spread over the counties by province population (2020
census), manufacturers concentrated in the provinces that made masks and PPE in 2020, raw-material
suppliers next to them, and D days of daily reports ending yesterday (UTC) with an outbreak wave in
one province: consumption rising and falling there, stock-outs, deliveries, production bounded by
capacity and by raw material. Reports are stored through submitReports, as the API stores them.

Options:
  --sites N               sites in all (${GENERATE_LIMITS.sites.min.toLocaleString("en")} to ${GENERATE_LIMITS.sites.max.toLocaleString("en")}): about 94 % hospitals,
                          4.5 % manufacturers' plants, 1.5 % raw-material suppliers' sites
  --days D                days of reports (${GENERATE_LIMITS.days.min} to ${GENERATE_LIMITS.days.max})
  --products P            the first P finished goods of the catalog (1 to ${FINISHED_GOODS.length}, default ${FINISHED_GOODS.length}):
                          ${FINISHED_GOODS.join(", ")}
  --seed S                seed of the random figures (default ${DEFAULT_SEED}); the same seed gives the same data
  --outbreak-province C   province code of the outbreak (default ${DEFAULT_OUTBREAK_PROVINCE}, Hubei; 42 works too)
  --concurrency C         batches written at once (default 3)
  -h, --help              shows this text

Every hospital reports each of the P products every day; a manufacturer reports what it makes and
the raw materials it uses; a supplier what it makes: about sites x P x days reports in all.
The database is DATABASE_URL, or else the embedded one in DATA_DIR (default ./.data), which can
only be used while \`npm start\` is stopped. The database must not hold an earlier generated data
set; an interrupted run leaves a partial one, so start again with an empty database.
`;

export class UsageError extends Error {}

const RANGES: Record<string, { min: number; max: number }> = {
  sites: GENERATE_LIMITS.sites,
  days: GENERATE_LIMITS.days,
  products: { min: 1, max: FINISHED_GOODS.length },
  seed: GENERATE_LIMITS.seed,
  concurrency: GENERATE_LIMITS.concurrency,
};

/** Parses the command line into generator options; every mistake is a UsageError saying what to give. */
export function parseGenerateArgs(argv: string[]): (GenerateNationalOptions & { help?: false }) | { help: true } {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        sites: { type: "string" },
        days: { type: "string" },
        products: { type: "string" },
        seed: { type: "string" },
        "outbreak-province": { type: "string" },
        concurrency: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    const e = error as Error & { code?: string };
    const unknown = /^Unknown option '([^']+)'/.exec(e.message);
    if (unknown) throw new UsageError(`unknown option ${unknown[1]}; the options are --sites, --days, --products, --seed, --outbreak-province, --concurrency, --help`);
    // `--days -2`: parseArgs takes "-2" for an option, not a value.
    const ambiguous = /^Option '(--[\w-]+)' argument is ambiguous/.exec(e.message);
    if (ambiguous) {
      const name = ambiguous[1]!.slice(2);
      const value = argv[argv.indexOf(ambiguous[1]!) + 1];
      const range = RANGES[name];
      throw new UsageError(
        range ? `--${name} must be a whole number from ${range.min.toLocaleString("en")} to ${range.max.toLocaleString("en")}, got "${value}"` : `--${name} needs a value, got "${value}"`,
      );
    }
    const missing = /^Option '(--[\w-]+)/.exec(e.message);
    if (missing && /argument missing/.test(e.message)) throw new UsageError(`${missing[1]} needs a value, as in --sites 300 --days 10`);
    throw new UsageError(e.message);
  }
  if (values.help) return { help: true };
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"; every value follows its option, as in --sites 300 --days 10`);
  const number = (name: string, required: boolean): number | undefined => {
    const { min, max } = RANGES[name]!;
    const raw = values[name] as string | undefined;
    if (raw === undefined) {
      if (required) throw new UsageError(`--${name} is required, as in --sites 300 --days 10`);
      return undefined;
    }
    const n = /^\d[\d_,]*$/.test(raw.trim()) ? Number(raw.trim().replace(/[_,]/g, "")) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new UsageError(`--${name} must be a whole number from ${min.toLocaleString("en")} to ${max.toLocaleString("en")}, got "${raw}"`);
    }
    return n;
  };
  const options: GenerateNationalOptions = {
    sites: number("sites", true)!,
    days: number("days", true)!,
  };
  const products = number("products", false);
  const seed = number("seed", false);
  const concurrency = number("concurrency", false);
  if (products !== undefined) options.products = products;
  if (seed !== undefined) options.seed = seed;
  if (concurrency !== undefined) options.concurrency = concurrency;
  if (values["outbreak-province"] !== undefined) options.outbreakProvince = values["outbreak-province"] as string;
  try {
    resolveOptions(options);
  } catch (error) {
    if (error instanceof DomainError) throw new UsageError(`--${error.message.replace("outbreakProvince", "outbreak-province")}`);
    throw error;
  }
  return options;
}

const fmt = (n: number) => Math.round(n).toLocaleString("en");

async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseGenerateArgs>;
  try {
    parsed = parseGenerateArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`error: ${error.message}\n\nRun npm run generate -- --help for the options.\n`);
    return 2;
  }
  if (parsed.help) {
    process.stdout.write(GENERATE_USAGE);
    return 0;
  }
  const options = parsed;
  try {
    const config = loadConfig();
    const concurrency = options.concurrency ?? 3;
    const handle = openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR, poolSize: concurrency + 1 });
    try {
      await handle.migrate();
      const started = performance.now();
      let reportsStarted = started;
      let lastPrint = 0;
      const tty = process.stderr.isTTY;
      const result = await generateNational(handle.db, {
        ...options,
        onProgress: ({ done, total }) => {
          const now = performance.now();
          if (done === 0) reportsStarted = now;
          if (done < total && now - lastPrint < (tty ? 500 : 5000)) return;
          lastPrint = now;
          const seconds = Math.max(0.001, (now - reportsStarted) / 1000);
          const line = `reports ${fmt(done)} / ${fmt(total)} (${((100 * done) / total).toFixed(1)} %), ${fmt(done / seconds)} rows/s`;
          process.stderr.write(tty ? `\r${line}   ` : `${line}\n`);
        },
      });
      if (tty) process.stderr.write("\n");
      const finished = performance.now();
      const writing = (finished - reportsStarted) / 1000;
      process.stdout.write(
        [
          `regions:           ${fmt(result.regions)}`,
          `organizations:     ${fmt(result.organizations)}`,
          `sites:             ${fmt(result.sites)}`,
          `reports:           ${fmt(result.reports)} (${result.firstDay} to ${result.lastDay})`,
          `rejected rows:     ${fmt(result.rejected)}${result.rejectedExamples.length ? `, e.g. ${result.rejectedExamples.join("; ")}` : ""}`,
          `outbreak province: ${result.outbreakProvince}`,
          `time:              ${((finished - started) / 1000).toFixed(1)} s in all; reports ${writing.toFixed(1)} s, ${fmt(result.reports / writing)} rows/s`,
          "",
        ].join("\n"),
      );
      return result.rejected ? 1 : 0;
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (error instanceof DomainError || error instanceof ConfigError || error instanceof DatabaseLockedError) {
      process.stderr.write(`error: ${error.message}\n`);
    } else {
      process.stderr.write(`error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    }
    return 1;
  }
}

// Run only as the command, not when a test imports the parser.
const isCommand = () => {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
};
if (isCommand()) process.exitCode = await main(process.argv.slice(2));

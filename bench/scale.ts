// `npm run bench -- scale`: the service's own worker processes (`src/main.ts worker`), one and then
// two of them against one PostgreSQL and one Redis, on the two paths that load workers: reports
// sent over HTTP until everything they lead to is done, and the daily full forecast recompute.
// Prints the time of each, the speed-up of two workers over one, and the work found done twice
// (every count should be 0). The data comes from the ingest and forecast benchmarks' generators.
import { randomBytes } from "node:crypto";
import { availableParallelism, cpus, loadavg, totalmem } from "node:os";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { Queue } from "bullmq";
import postgres from "postgres";
import { connect } from "./lib/pg.js";
import { sql } from "drizzle-orm";
import { QUEUES } from "../jobs/definitions.js";
import { openDatabase, type Database } from "../src/db/index.js";
import { dateOfDay, dayNumber } from "../src/domain/reports/validate.js";
import { doubleWork, waitAllDone, type DoubleWork } from "../test/faults/harness.js";
import { clearRedisPrefix } from "../test/helpers/redis.js";
import { generateReports, seed as seedForecastTree } from "./forecast.js";
import { generateBatches, httpContender, runAll, seed as seedReporters, startApi, type ApiChild, type Batch } from "./ingest.js";

export const SCALE_USAGE = `  scale      ingestion (HTTP, until every job it leads to is done) and the full forecast recompute, with 1 and with 2 worker processes
             --rows N (20000 reports over HTTP) --clients N (4) --leaves N (1000 counties) --products N (4) --days N (90)
             --workers 1,2 (worker counts to compare) --only ingest,forecast`;

const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const REDIS_URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";

interface Options {
  rows: number;
  clients: number;
  leaves: number;
  products: number;
  days: number;
  workers: number[];
  only: ("ingest" | "forecast")[];
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      rows: { type: "string", default: "20000" },
      clients: { type: "string", default: "4" },
      leaves: { type: "string", default: "1000" },
      products: { type: "string", default: "4" },
      days: { type: "string", default: "90" },
      workers: { type: "string", default: "1,2" },
      only: { type: "string", default: "ingest,forecast" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(SCALE_USAGE);
    process.exit(0);
  }
  const int = (name: string, v: string, min: number, max: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be a whole number from ${min} to ${max}, got ${v}`);
    return n;
  };
  const workers = values.workers.split(",").map((w) => int("workers", w.trim(), 1, 16));
  const only = values.only.split(",").map((o) => o.trim());
  const unknown = only.filter((o) => o !== "ingest" && o !== "forecast");
  if (unknown.length) throw new Error(`--only takes ingest and/or forecast (comma-separated), got ${unknown.join(", ")}`);
  return {
    rows: int("rows", values.rows, 1000, 5_000_000),
    clients: int("clients", values.clients, 1, 64),
    leaves: int("leaves", values.leaves, 30, 20_000),
    products: int("products", values.products, 1, 16),
    days: int("days", values.days, 30, 400),
    workers,
    only: only as Options["only"],
  };
}

interface Run {
  path: "ingest" | "forecast";
  workers: number;
  /** Units of work: report rows, or forecast series. */
  units: number;
  /** Until the reports were acknowledged (ingest) or the forecasts written (forecast). */
  firstSeconds: number;
  /** Until every job they led to was done (outliers, rollups, forecasts, alerts, matching). */
  doneSeconds: number;
  /** Forecast series written per worker process, by BullMQ's processedBy. */
  split: number[];
  /** What the workers did, counted in Postgres, and where their time went, from BullMQ's records. */
  work: string;
  jobTime: string;
  doubled: DoubleWork;
  load: string;
}

const load = () => loadavg().map((l) => l.toFixed(2)).join(" ");

function databaseUrl(name: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** `count` worker processes and (with `api`) one API process on the database, under their own queue prefix. */
async function startProcesses(url: string, prefix: string, count: number, api: boolean): Promise<{ api?: ApiChild; workers: ApiChild[]; stop(): Promise<void> }> {
  const env = { QUEUE_PREFIX: prefix, REDIS_URL, DATABASE_POOL_SIZE: "6" };
  const started = await Promise.allSettled([
    ...(api ? [startApi(url, [], { mode: "api", env })] : []),
    ...Array.from({ length: count }, () => startApi(url, [], { mode: "worker", env })),
  ]);
  const children = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  const stop = async () => {
    await Promise.all(children.map((c) => c.stop()));
  };
  const failed = started.find((s) => s.status === "rejected");
  if (failed) {
    await stop();
    throw (failed as PromiseRejectedResult).reason;
  }
  return { api: api ? children[0] : undefined, workers: api ? children.slice(1) : children, stop };
}

/** The series each worker process wrote in forecast jobs finished since `since` (ms). */
async function seriesByWorker(queue: Queue, workers: ApiChild[], since: number): Promise<number[]> {
  const jobs = await queue.getJobs(["completed"]);
  return workers.map((w) =>
    jobs
      .filter((j) => (j.finishedOn ?? 0) >= since && j.processedBy?.endsWith(`:${w.child.pid}`))
      .reduce((n, j) => n + ((j.returnvalue as { series?: number } | null)?.series ?? 0), 0),
  );
}

/** Runs and events the workers wrote since `since`. */
async function workDone(db: Database, since: Date): Promise<string> {
  const [w] = await db.execute<Record<string, number>>(
    sql`select (select count(*) from forecast_run where started_at >= ${since.toISOString()}::timestamptz)::int as "forecast runs",
               (select count(*) from match_run where started_at >= ${since.toISOString()}::timestamptz)::int as "match runs",
               (select count(*) from alert_event where created_at >= ${since.toISOString()}::timestamptz)::int as "alert events",
               (select count(*) from delivery where created_at >= ${since.toISOString()}::timestamptz)::int as "deliveries"`,
    "objects",
  );
  return Object.entries(w!).map(([k, v]) => `${k} ${v.toLocaleString("en")}`).join(", ");
}

/** Seconds spent per job name in jobs finished since `since` (BullMQ keeps the last 1,000 per queue). */
async function jobSeconds(queues: Queue[], since: number): Promise<string> {
  const by = new Map<string, { n: number; ms: number }>();
  for (const q of queues) {
    for (const j of await q.getJobs(["completed", "failed"])) {
      if (!j?.finishedOn || !j.processedOn || j.finishedOn < since) continue;
      const e = by.get(j.name) ?? { n: 0, ms: 0 };
      e.n++;
      e.ms += j.finishedOn - j.processedOn;
      by.set(j.name, e);
    }
  }
  return [...by]
    .sort((a, b) => b[1].ms - a[1].ms)
    .slice(0, 6)
    .map(([name, e]) => `${name} ${e.n} x, ${(e.ms / 1000).toFixed(1)} s`)
    .join("; ");
}

async function withQueues<T>(prefix: string, use: (queues: Queue[]) => Promise<T>): Promise<T> {
  const connection = { url: REDIS_URL, maxRetriesPerRequest: null };
  const queues = Object.keys(QUEUES).map((name) => new Queue(name, { connection, prefix }));
  try {
    return await use(queues);
  } finally {
    await Promise.all(queues.map((q) => q.close()));
    await clearRedisPrefix(REDIS_URL, prefix);
  }
}

/**
 * Reports over HTTP (the ingest bench's rows and 4 reporting organizations, one API process),
 * timed until acknowledged and until every job they led to is done; a fresh database per run.
 */
async function ingestRun(o: Options, workers: number, admin: postgres.Sql): Promise<Run> {
  const name = `supply_bench_${randomBytes(5).toString("hex")}`;
  await admin.unsafe(`create database "${name}"`);
  const url = databaseUrl(name);
  const handle = openDatabase({ url, dataDir: "", poolSize: 2 });
  const prefix = `{bench-scale-${randomBytes(4).toString("hex")}}`;
  try {
    const world = await seedReporters(url, 50, 4);
    const perOrg = world.orgs.map((org, i) => generateBatches(Math.ceil(o.rows / world.orgs.length), 1000, org.sites, world.products, i));
    const batches: Batch[] = [];
    const total = perOrg.reduce((n, g) => n + g.batches.length, 0);
    for (let i = 0; batches.length < total; i++) for (const g of perOrg) if (g.batches[i]) batches.push(g.batches[i]!);
    const rows = batches.reduce((n, b) => n + b.size, 0);
    return await withQueues(prefix, async (queues) => {
      const processes = await startProcesses(url, prefix, workers, true);
      try {
        const before = load();
        const since = Date.now();
        const t0 = performance.now();
        await runAll(httpContender(processes.api!, world.orgs.map((org) => org.token)), batches, o.clients);
        const acknowledged = (performance.now() - t0) / 1000;
        await waitAllDone(handle.db, queues, 30 * 60_000);
        const done = (performance.now() - t0) / 1000;
        const split = await seriesByWorker(queues.find((q) => q.name === "forecast")!, processes.workers, since);
        const work = await workDone(handle.db, new Date(since));
        const jobTime = await jobSeconds(queues, since);
        return { path: "ingest", workers, units: rows, firstSeconds: acknowledged, doneSeconds: done, split, work, jobTime, doubled: await doubleWork(handle.db), load: `${before} -> ${load()}` };
      } finally {
        await processes.stop();
      }
    });
  } finally {
    await handle.close();
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
  }
}

/** The daily job (`forecast.recomputeAll`) on the forecast bench's tree, from empty forecast tables each run. */
async function forecastRun(db: Database, url: string, workers: number): Promise<Run> {
  await db.execute(sql`truncate forecast_run, forecast, forecast_latest, forecast_dirty, bottleneck, outbox, alert, match_run, match cascade`);
  await db.execute(sql`checkpoint`);
  const prefix = `{bench-scale-${randomBytes(4).toString("hex")}}`;
  return withQueues(prefix, async (queues) => {
    const processes = await startProcesses(url, prefix, workers, false);
    try {
      const forecast = queues.find((q) => q.name === "forecast")!;
      const before = load();
      const since = Date.now();
      const [{ started, startedMs }] = (await db.execute<{ started: string; startedMs: number }>(
        sql`select t::text as started, (extract(epoch from t) * 1000)::float8 as "startedMs" from clock_timestamp() t`,
        "objects",
      )) as [{ started: string; startedMs: number }];
      const t0 = performance.now();
      await forecast.add("forecast.recomputeAll", {}, { jobId: `scale-${workers}` });
      await waitAllDone(db, queues, 30 * 60_000);
      const done = (performance.now() - t0) / 1000;
      // Written: when the last forecast run of the recompute finished (the database's clock).
      const [w] = await db.execute<{ s: number }>(
        sql`select extract(epoch from max(finished_at) - ${started}::timestamptz)::float8 as s from forecast_run where started_at >= ${started}::timestamptz`,
        "objects",
      );
      const written = w!.s;
      const [n] = await db.execute<{ n: number }>(sql`select count(*)::int as n from forecast_latest`, "objects");
      const split = await seriesByWorker(forecast, processes.workers, since);
      const work = await workDone(db, new Date(startedMs));
      const jobTime = await jobSeconds(queues, since);
      return { path: "forecast", workers, units: n!.n, firstSeconds: written, doneSeconds: done, split, work, jobTime, doubled: await doubleWork(db, new Date(startedMs)), load: `${before} -> ${load()}` };
    } finally {
      await processes.stop();
    }
  });
}

const doubledText = (d: DoubleWork) => Object.values(d).reduce<number>((n, v) => n + (v ?? 0), 0);

export async function runScaleBench(argv: string[]): Promise<void> {
  const o = parseOptions(argv);
  const admin = connect(ADMIN_URL, { max: 1, onnotice: () => {} });
  const runs: Run[] = [];
  try {
    const [{ version }] = (await admin`select current_setting('server_version') as version`) as unknown as [{ version: string }];
    console.log(`command: npm run bench -- scale ${argv.join(" ")}`.trimEnd());
    console.log(
      `machine: ${availableParallelism()} CPUs (${cpus()[0]?.model ?? "?"}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, PostgreSQL ${version}; ` +
        `load average ${load()} (shared with other work)`,
    );

    if (o.only.includes("ingest")) {
      console.log(`\ningestion: ${o.rows.toLocaleString("en")} report rows in batches of 1,000 from ${o.clients} clients to one API process, 4 organizations x 50 sites x 16 products; a fresh database per run`);
      for (const w of o.workers) {
        runs.push(await ingestRun(o, w, admin));
        console.log(`  ${w} worker(s): done in ${runs.at(-1)!.doneSeconds.toFixed(1)} s`);
      }
    }
    if (o.only.includes("forecast")) {
      const name = `supply_bench_${randomBytes(5).toString("hex")}`;
      await admin.unsafe(`create database "${name}"`);
      const url = databaseUrl(name);
      const handle = openDatabase({ url, dataDir: "", poolSize: 2 });
      try {
        await handle.migrate();
        const t0 = performance.now();
        await seedForecastTree(handle.db, o);
        await generateReports(handle.db, o, dateOfDay(dayNumber(new Date().toISOString().slice(0, 10)) - 1));
        // As autovacuum would by then: without statistics on site, a subtree's read is planned as a scan of the whole product.
        await handle.db.execute(sql`analyze`);
        const [c] = await handle.db.execute<{ reports: number; regions: number }>(sql`select (select count(*) from report)::int as reports, (select count(*) from region)::int as regions`, "objects");
        console.log(
          `\nfull recompute: the forecast bench's tree (${c!.regions.toLocaleString("en")} regions, one site per county), ${o.products} products, ` +
            `${c!.reports.toLocaleString("en")} reports over ${o.days} days, written in ${((performance.now() - t0) / 1000).toFixed(0)} s`,
        );
        for (const w of o.workers) {
          runs.push(await forecastRun(handle.db, url, w));
          console.log(`  ${w} worker(s): forecasts written in ${runs.at(-1)!.firstSeconds.toFixed(1)} s`);
        }
      } finally {
        await handle.close();
        await admin.unsafe(`drop database if exists "${name}" with (force)`);
      }
    }

    console.log("\n| path | workers | units | first (s) | all jobs done (s) | units/s (done) | speed-up | series per worker | done twice | load average (before -> after) |");
    console.log("|---|--:|--:|--:|--:|--:|--:|---|--:|---|");
    for (const r of runs) {
      const base = runs.find((b) => b.path === r.path && b.workers === Math.min(...o.workers));
      const unit = r.path === "ingest" ? "rows" : "series";
      console.log(
        `| ${r.path} | ${r.workers} | ${r.units.toLocaleString("en")} ${unit} | ${r.firstSeconds.toFixed(2)} | ${r.doneSeconds.toFixed(2)} | ${Math.round(r.units / r.doneSeconds).toLocaleString("en")} | ` +
          `${base ? (base.doneSeconds / r.doneSeconds).toFixed(2) : "-"} | ${r.split.map((n) => n.toLocaleString("en")).join(" / ")} | ${doubledText(r.doubled)} | ${r.load} |`,
      );
    }
    console.log("\n'first': ingest = every batch acknowledged; forecast = the last forecast run of the recompute finished.");
    console.log("'done twice' adds up, per run: forecasts per (region, product, run) > 1, pairs forecast by overlapping runs, pairs forecast more than once");
    console.log("since the recompute started (forecast), match proposals, alerts and deliveries made twice:");
    for (const r of runs) console.log(`  ${r.path}, ${r.workers} worker(s): ${JSON.stringify(r.doubled)}`);
    console.log("\nwhat the workers did (Postgres), and the job time by job name (BullMQ's records, summed over workers):");
    for (const r of runs) console.log(`  ${r.path}, ${r.workers} worker(s): ${r.work}\n    ${r.jobTime}`);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

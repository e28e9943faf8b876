// `npm run bench -- forecast`: a full recompute of every (region, product) forecast, from Postgres
// back to Postgres, next to the bare forecasting kernel on the same series in memory; then the time
// from submitReports returning to the new forecast being readable, with the worker idle.
import { randomBytes } from "node:crypto";
import { availableParallelism, loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { connect, postgresPidsFor } from "./lib/pg.js";
import { sql } from "drizzle-orm";
import { startWorker } from "../jobs/worker.js";
import { openDatabase, type Database } from "../src/db/index.js";
import { seedCatalog } from "../src/domain/catalog.js";
import { HORIZON, markAllDirty, readLeafInputs, recomputeDirty } from "../src/domain/forecast/pipeline.js";
import { leafNode, type LeafInput } from "../src/domain/forecast/leaf-inputs.js";
import { leafThreadCount, startLeafThreads } from "../src/domain/forecast/leaf-threads.js";
import { workerConfigSchema } from "../src/config.js";
import { submitReports } from "../src/domain/reports/ingest.js";
import { dateOfDay, dayNumber } from "../src/domain/reports/validate.js";
import { authenticate, createApiToken } from "../src/domain/tokens.js";
import { createUser } from "../src/domain/users.js";
import { createRegions } from "../src/domain/regions.js";
import { systemActor } from "../src/domain/viewer.js";
import { createLogger } from "../src/logger.js";
import { cpuSnapshot, cpuSpent, peakRssMiB } from "./lib/system.js";
import { clearRedisPrefix } from "../test/helpers/redis.js";

export const FORECAST_USAGE = `  forecast   full forecast recompute vs the bare kernel, and report-to-forecast latency
             --leaves N (3750 counties) --products N (16) --days N (180) --samples N (40 latency samples) --keep (leave the database for inspection)
             --threads N (leaf forecast threads of the recompute; default what a worker starts, 0 = on the event loop)
             --database NAME (run on a database kept by --keep instead of seeding a new one; its forecasts are replaced)`;

interface Options {
  keep: boolean;
  leaves: number;
  products: number;
  days: number;
  samples: number;
  threads: number;
  database: string | undefined;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      leaves: { type: "string", default: "3750" },
      products: { type: "string", default: "16" },
      days: { type: "string", default: "180" },
      samples: { type: "string", default: "40" },
      keep: { type: "boolean", default: false },
      database: { type: "string" },
      // What a worker starts by default (src/config.ts, jobs/worker.ts).
      threads: { type: "string", default: String(leafThreadCount(workerConfigSchema.parse({}))) },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(FORECAST_USAGE);
    process.exit(0);
  }
  const int = (name: string, v: string, min: number, max: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be a whole number from ${min} to ${max}, got ${v}`);
    return n;
  };
  return {
    keep: values.keep,
    leaves: int("leaves", values.leaves, 30, 20_000),
    products: int("products", values.products, 1, 16),
    days: int("days", values.days, 30, 400),
    samples: int("samples", values.samples, 1, 1000),
    threads: int("threads", values.threads, 0, 64),
    database: values.database,
  };
}

const ADMIN_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const REDIS_URL = process.env.REDIS_URL ?? process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const actor = systemActor("bench");

/**
 * A synthetic tree shaped like China's (30 provinces, 10 cities each, the leaves spread over the
 * cities), one reporting hospital site per leaf county.
 */
export async function seed(db: Database, o: Pick<Options, "leaves">) {
  await seedCatalog(db, actor);
  const regions: Parameters<typeof createRegions>[2] = [{ code: "CN", name: "China", level: "COUNTRY" }];
  for (let p = 0; p < 30; p++) {
    regions.push({ code: `P${p}`, name: `Province ${p}`, level: "PROVINCE", parentCode: "CN" });
    for (let c = 0; c < 10; c++) regions.push({ code: `P${p}C${c}`, name: `City ${p}.${c}`, level: "CITY", parentCode: `P${p}` });
  }
  for (let k = 0; k < o.leaves; k++) {
    const city = k % 300;
    regions.push({ code: `L${k}`, name: `County ${k}`, level: "COUNTY", parentCode: `P${Math.floor(city / 10)}C${city % 10}` });
  }
  await createRegions(db, actor, regions);
  await db.execute(sql`insert into organization (name, kind) values ('Bench hospitals', 'HOSPITAL')`);
  await db.execute(sql`insert into site (organization_id, code, name, region_id)
    select (select id from organization limit 1), 'S' || r.code, 'Site ' || r.code, r.id from region r where r.level = 'COUNTY'`);
}

/**
 * Reports for every site and product over `days` days ending yesterday, written in one INSERT …
 * SELECT (the data is the input of this benchmark, not what it measures): consumption with a
 * weekly pattern, a trend and noise, an outbreak wave in a tenth of the counties, occasional
 * stock-outs (stock 0 with stock-out hours), intermittent demand for PCR tests; stock moves by
 * consumption and deliveries.
 */
export async function generateReports(db: Database, o: Pick<Options, "products" | "days">, lastDay: string) {
  await db.execute(sql`
    insert into report (site_id, product_id, date, on_hand, consumed, received, stockout_hours)
    select s.id, p.id, d.day,
      case when out then 0 else round((2000 + 1500 * sin(d.i / 9.0 + s.k) + 800 * u2)::numeric, 0)::float8 end,
      case when out then 0 else demand end,
      case when d.i % 7 = s.k % 7 then round((demand * 7)::numeric, 0)::float8 else 0 end,
      case when out then 24 else 0 end
    from (select id, region_id, row_number() over (order by id) as k from site) s
    cross join (select id, code from product order by id limit ${o.products}) p
    cross join lateral (select g as i, (${lastDay}::date - (${o.days - 1} - g))::date as day from generate_series(0, ${o.days - 1}) g) d
    cross join lateral (select
        ((hashtextextended(s.id::text || p.id || d.i, 1) & 1048575) / 1048575.0) as u1,
        ((hashtextextended(s.id::text || p.id || d.i, 2) & 1048575) / 1048575.0) as u2) r
    cross join lateral (select
        (r.u1 < 0.01) as out,
        case when p.code = 'TEST-PCR' and r.u1 > 0.3 then 0
             else round((
               (50 + (s.k % 200)) * (1 + 0.2 * sin(2 * pi() * d.i / 7.0)) * (1 + 0.002 * d.i)
               * (case when s.k % 10 = 0 then 1 + 3 * exp(-power((d.i - ${Math.floor(o.days * 0.7)}) / 15.0, 2)) else 1 end)
               * (0.8 + 0.4 * r.u2))::numeric, 0)::float8 end as demand) v`);
  // A table in service has been vacuumed by autovacuum all along, so its pages but the newest are
  // all-visible and the forecast's reads are index-only scans; one bulk insert has not yet.
  await db.execute(sql`vacuum analyze report`);
  // Nor is it still writing out a 2 GB bulk load: without this, the recompute shares the disk
  // and a core with the checkpoint of the seed.
  await db.execute(sql`checkpoint`);
}

export async function runForecastBench(argv: string[]) {
  const o = parseOptions(argv);
  const name = o.database ?? `supply_bench_${randomBytes(5).toString("hex")}`;
  const admin = connect(ADMIN_URL, { max: 1, onnotice: () => {} });
  if (!o.database) await admin.unsafe(`create database "${name}"`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const handle = openDatabase({ url: url.toString(), dataDir: "", poolSize: 4 });
  const dropAll = async () => {
    await handle.close().catch(() => {});
    if (o.keep || o.database) {
      console.log(`kept database ${name}; drop it with: psql -h 127.0.0.1 -U postgres -c 'drop database "${name}"'`);
      await admin.end();
      return;
    }
    await admin.unsafe(`drop database if exists "${name}" with (force)`).catch(() => {});
    await admin.end();
  };
  process.once("SIGINT", () => void dropAll().then(() => process.exit(130)));
  try {
    const db = handle.db;
    await handle.migrate();
    const [version] = await db.execute<{ v: string }>(sql`select version() as v`, "objects");
    let lastDay = dateOfDay(dayNumber(new Date().toISOString().slice(0, 10)) - 1);
    console.log(`database ${name} (${version!.v.split(" ").slice(0, 2).join(" ")}), node ${process.version}, ${availableParallelism()} CPUs, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
    let t0 = performance.now();
    if (o.database) {
      // A kept database: its reports are the input; the forecasts of earlier runs go.
      const [last] = await db.execute<{ d: string | null }>(sql`select max(date)::text as d from report`, "objects");
      if (!last?.d) throw new Error(`database ${name} has no reports: pass a database kept by \`npm run bench -- forecast --keep\``);
      lastDay = last.d;
      await db.execute(sql`truncate forecast, forecast_latest, forecast_run, bottleneck, forecast_dirty cascade`);
    } else {
      await seed(db, o);
      await generateReports(db, o, lastDay);
    }
    const [counts] = await db.execute<{ reports: number; sites: number; regions: number }>(
      sql`select (select count(*) from report)::int as reports, (select count(*) from site)::int as sites, (select count(*) from region)::int as regions`,
      "objects",
    );
    const leafSeries = counts!.sites * o.products;
    console.log(
      `${o.database ? "reused" : "seeded"} ${counts!.regions} regions, ${counts!.sites} sites, ${o.products} products, ${counts!.reports.toLocaleString("en")} reports over ${o.days} days ending ${lastDay} in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    console.log(`${leafSeries.toLocaleString("en")} leaf (county, product) series of ${o.days} days; horizon ${HORIZON} days; recompute with ${o.threads || "no"} leaf forecast thread(s)\n`);

    // Kernel: the same leaf inputs the pipeline builds, read beforehand (not timed).
    const products = await db.execute<{ id: number }>(sql`select id from product order by id limit ${o.products}`, "objects");
    const leafIds = (await db.execute<{ id: number }>(sql`select id from region where level = 'COUNTY'`, "objects")).map((r) => r.id);
    const inputs: LeafInput[] = [];
    for (const p of products) {
      const m = await readLeafInputs(db, { productId: p.id, origin: lastDay, horizon: HORIZON }, leafIds);
      inputs.push(...m.values());
    }
    t0 = performance.now();
    let methods = new Map<string, number>();
    for (const input of inputs) {
      const node = leafNode(input, HORIZON);
      methods.set(node.method, (methods.get(node.method) ?? 0) + 1);
    }
    const kernelSeconds = (performance.now() - t0) / 1000;
    methods = new Map([...methods.entries()].sort((a, b) => b[1] - a[1]));

    // Pipeline: the daily job's work, from marking every pair to the last forecast row written.
    const threads = o.threads > 0 ? startLeafThreads(o.threads) : undefined;
    const postgresPids = () => postgresPidsFor(admin, name);
    const pidsBefore = await postgresPids();
    const cpuBefore = cpuSnapshot(undefined, pidsBefore);
    t0 = performance.now();
    await markAllDirty(db);
    const result = await recomputeDirty(db, { trigger: "bench", threads }).finally(() => threads?.close());
    const pipelineSeconds = (performance.now() - t0) / 1000;
    const cpu = cpuSpent(cpuBefore, cpuSnapshot(undefined, [...new Set([...pidsBefore, ...(await postgresPids())])]));
    const [written] = await db.execute<{ n: number }>(sql`select count(*)::int as n from forecast_latest`, "objects");

    const rows = [
      ["bare kernel: forecastLeaf on each leaf, in memory", inputs.length, kernelSeconds],
      ["full recompute: Postgres -> forecasts -> Postgres (all levels)", result.series, pipelineSeconds],
    ] as const;
    console.log("| contender | series | seconds | series/s |");
    console.log("|---|--:|--:|--:|");
    for (const [label, n, s] of rows) console.log(`| ${label} | ${n.toLocaleString("en")} | ${s.toFixed(2)} | ${Math.round(n / s).toLocaleString("en")} |`);
    const leafRate = inputs.length / pipelineSeconds;
    const tm = result.timings;
    console.log(`\nfull recompute, where the time went: reading ${(tm.read / 1000).toFixed(1)} s, forecasting (kernel, sums, projections) ${(tm.kernel / 1000).toFixed(1)} s, writing ${(tm.write / 1000).toFixed(1)} s, other ${(pipelineSeconds - (tm.read + tm.kernel + tm.write) / 1000).toFixed(1)} s`);
    console.log(
      `full recompute, CPU: this process (event loop and leaf threads) ${cpu.bench.toFixed(1)} s, PostgreSQL ${cpu.postgres?.toFixed(1) ?? "?"} s, other processes ${cpu.other?.toFixed(1) ?? "?"} s; machine busy ${cpu.machineBusy === undefined ? "?" : Math.round(cpu.machineBusy * 100)} %`,
    );
    console.log(`methods chosen for the leaves: ${[...methods].map(([m, n]) => `${m} ${n}`).join(", ")}`);
    console.log(`forecasts stored: ${written!.n.toLocaleString("en")} (leaves and every region above them)`);
    console.log(`full recompute: ${pipelineSeconds.toFixed(1)} s (goal < 60 s) ${pipelineSeconds < 60 ? "met" : "MISSED"}`);
    console.log(
      `pipeline leaf series/s / kernel series/s = ${(leafRate / (inputs.length / kernelSeconds)).toFixed(2)} (goal >= 0.5) ${leafRate / (inputs.length / kernelSeconds) >= 0.5 ? "met" : "MISSED"}`,
    );

    // Latency: one report at a time into an idle worker; time until its county's forecast shows it.
    const prefix = `{bench-${randomBytes(4).toString("hex")}}`;
    // Before the worker starts: a refusal here must not leave it running (and the process with it).
    // One user per run: a kept database (--database) has the earlier runs' users.
    const user = await createUser(db, actor, { name: "bench admin", email: `bench-${randomBytes(4).toString("hex")}@example.com`, role: "ADMIN" });
    const viewer = (await authenticate(db, (await createApiToken(db, actor, { userId: user.id, name: "bench" })).token))!;
    const worker = await startWorker({
      config: { QUEUE_PREFIX: prefix, IDEMPOTENCY_TTL_HOURS: 72 },
      db,
      logger: createLogger({ LOG_LEVEL: "silent" }),
      connection: { url: REDIS_URL, maxRetriesPerRequest: null },
    });
    const latencies: number[] = [];
    const sites = await db.execute<{ code: string; region_id: number }>(sql`select code, region_id from site order by random() limit ${o.samples}`, "objects");
    const [product] = await db.execute<{ id: number; code: string }>(sql`select id, code from product order by id limit 1`, "objects");
    try {
      for (const [i, site] of sites.entries()) {
        const onHand = 123_000 + i;
        const before = performance.now();
        const r = await submitReports(db, { viewer }, [{ siteCode: site.code, productCode: product!.code, date: lastDay, onHand, consumed: 100 }], { backfillDays: 7 });
        if (r.accepted !== 1) throw new Error(`report refused: ${JSON.stringify(r.rejected)}`);
        const returned = performance.now();
        for (;;) {
          const [f] = await db.execute<{ on_hand: number }>(
            sql`select f.on_hand from forecast_latest l join forecast f on f.id = l.forecast_id where l.region_id = ${site.region_id} and l.product_id = ${product!.id}`,
            "objects",
          );
          if (f?.on_hand === onHand) break;
          if (performance.now() - returned > 30_000) throw new Error("the forecast did not update within 30 s");
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        latencies.push(performance.now() - returned);
        void before;
      }
    } finally {
      await worker.close();
      await clearRedisPrefix(REDIS_URL, prefix);
    }
    latencies.sort((a, b) => a - b);
    const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.ceil(p * latencies.length) - 1)]!;
    console.log(
      `\nsubmitReports returned -> forecast readable, ${latencies.length} single reports into an idle worker: p50 ${(q(0.5) / 1000).toFixed(2)} s, p95 ${(q(0.95) / 1000).toFixed(2)} s, max ${(q(1) / 1000).toFixed(2)} s (goal p95 < 2 s) ${q(0.95) < 2000 ? "met" : "MISSED"}`,
    );
    console.log(`peak RSS of the bench process: ${peakRssMiB("self") ?? "?"} MiB`);
  } finally {
    await dropAll();
  }
}

// `npm run bench -- plans`: do the planner's reads stay flat as history grows? The same reads are
// timed on a short history, then again after older days were added (the newest days unchanged),
// next to the DISTINCT ON over history that the current-inventory read model replaces; the
// EXPLAIN (ANALYZE, BUFFERS) of each read on the long history is printed for BENCHMARKS.md.
import { randomBytes } from "node:crypto";
import { availableParallelism, loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { connect } from "./lib/pg.js";
import { sql, type SQL } from "drizzle-orm";
import { openDatabase, type Database } from "../src/db/index.js";
import { rebuildReadModels } from "../src/domain/read-models.js";
import { dateOfDay, dayNumber } from "../src/domain/reports/validate.js";
import { generateReports, seed } from "./forecast.js";

export const PLANS_USAGE = `  plans      the planner's reads (day range, region subtree, current inventory, rollups) on a short
             and on a long history, with their query plans
             --leaves N (3750 counties, one site each) --products N (4) --short N (30 days) --long N (180 days) --runs N (7) --keep`;

const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

interface Read {
  name: string;
  query: (p: Params) => SQL;
}
interface Params {
  productId: number;
  provinceId: number;
  provincePath: string;
  lastDay: string;
}

const READS: Read[] = [
  {
    name: "day range, whole country: one product's last 7 days",
    query: (p) => sql`select count(*), sum(on_hand), sum(consumed) from report
      where product_id = ${p.productId} and date > ${p.lastDay}::date - 7 and date <= ${p.lastDay}::date`,
  },
  {
    name: "region subtree, day range: a province's daily totals over 28 days",
    query: (p) => sql`select r.date, sum(r.on_hand), sum(r.consumed) from region g
      join site s on s.region_id = g.id
      join report r on r.site_id = s.id and r.product_id = ${p.productId} and r.date > ${p.lastDay}::date - 28 and r.date <= ${p.lastDay}::date
      where g.path ^@ ${p.provincePath} group by r.date`,
  },
  {
    name: "rollups: the same province's 28 days from region_day_rollup",
    query: (p) => sql`select date, on_hand, consumed, sites from region_day_rollup
      where region_id = ${p.provinceId} and product_id = ${p.productId} and date > ${p.lastDay}::date - 28 and date <= ${p.lastDay}::date`,
  },
  {
    name: "current inventory of a province, read model (inventory_current)",
    query: (p) => sql`select count(*), sum(i.on_hand) from region g join site s on s.region_id = g.id
      join inventory_current i on i.site_id = s.id and i.product_id = ${p.productId}
      where g.path ^@ ${p.provincePath}`,
  },
  {
    name: "current inventory of the country, read model (inventory_current)",
    query: (p) => sql`select count(*), sum(on_hand) from inventory_current where product_id = ${p.productId}`,
  },
  {
    name: "baseline: current inventory of the country, DISTINCT ON over history",
    query: (p) => sql`select count(*), sum(on_hand) from (
      select distinct on (site_id) site_id, on_hand from report where product_id = ${p.productId} and on_hand is not null
      order by site_id, date desc) x`,
  },
];

function parseOptions(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      leaves: { type: "string", default: "3750" },
      products: { type: "string", default: "4" },
      short: { type: "string", default: "30" },
      long: { type: "string", default: "180" },
      runs: { type: "string", default: "7" },
      keep: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(PLANS_USAGE);
    process.exit(0);
  }
  const int = (name: string, v: string, min: number, max: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be a whole number from ${min} to ${max}, got ${v}`);
    return n;
  };
  const o = {
    leaves: int("leaves", values.leaves, 30, 20_000),
    products: int("products", values.products, 1, 16),
    short: int("short", values.short, 8, 400),
    long: int("long", values.long, 9, 2000),
    runs: int("runs", values.runs, 1, 100),
    keep: values.keep,
  };
  if (o.long <= o.short) throw new Error(`--long (${o.long}) must be more days than --short (${o.short})`);
  return o;
}

async function timeRead(db: Database, query: SQL, runs: number): Promise<{ median: number; rows: number }> {
  await db.execute<Record<string, unknown>>(query, "objects"); // warm the cache: what is measured is the plan, not the disk
  const times: number[] = [];
  let rows = 0;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    rows = (await db.execute<Record<string, unknown>>(query, "objects")).length;
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)]!, rows };
}

export async function runPlansBench(argv: string[]) {
  const o = parseOptions(argv);
  const name = `supply_plans_${randomBytes(5).toString("hex")}`;
  const admin = connect(ADMIN_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const handle = openDatabase({ url: url.toString(), dataDir: "", poolSize: 2 });
  try {
    const db = handle.db;
    await handle.migrate();
    const [version] = await db.execute<{ v: string }>(sql`select version() as v`, "objects");
    console.log(`database ${name} (${version!.v.split(" ").slice(0, 2).join(" ")}), node ${process.version}, ${availableParallelism()} CPUs, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
    const lastDay = dateOfDay(dayNumber(new Date().toISOString().slice(0, 10)) - 1);
    await seed(db, o);
    const [product] = await db.execute<{ id: number }>(sql`select id from product order by id limit 1`, "objects");
    const [province] = await db.execute<{ id: number; path: string }>(sql`select id, path from region where code = 'P0'`, "objects");
    const params: Params = { productId: product!.id, provinceId: province!.id, provincePath: province!.path, lastDay };

    const results: { days: number; reports: number; times: { median: number; rows: number }[] }[] = [];
    let t0 = performance.now();
    await generateReports(db, { products: o.products, days: o.short }, lastDay);
    for (const [days, extra] of [[o.short, 0], [o.long, o.long - o.short]] as const) {
      if (extra > 0) {
        t0 = performance.now();
        // Older days only: the newest days, and so every read's answer, stay as they were.
        await generateReports(db, { products: o.products, days: extra }, dateOfDay(dayNumber(lastDay) - o.short));
      }
      await rebuildReadModels(db);
      await db.execute(sql`vacuum analyze`);
      const [{ n }] = (await db.execute<{ n: number }>(sql`select count(*)::int as n from report`, "objects")) as [{ n: number }];
      console.log(`${days} days of history: ${n.toLocaleString("en")} reports (${o.leaves} sites x ${o.products} products), loaded and read models rebuilt in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      const times = [];
      for (const read of READS) times.push(await timeRead(db, read.query(params), o.runs));
      results.push({ days, reports: n, times });
    }

    console.log(`\nmedian of ${o.runs} runs after a warm-up, ms (same answers on both histories: only older days were added)\n`);
    console.log(`| read | ${results.map((r) => `${r.days} days (${(r.reports / 1e6).toFixed(2)}M reports)`).join(" | ")} | long / short |`);
    console.log(`|---|${results.map(() => "--:|").join("")}--:|`);
    READS.forEach((read, i) => {
      const [a, b] = results.map((r) => r.times[i]!.median) as [number, number];
      console.log(`| ${read.name} | ${results.map((r) => r.times[i]!.median.toFixed(2)).join(" | ")} | ${(b / a).toFixed(2)} |`);
    });

    console.log(`\nplans on ${o.long} days of history (EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY OFF)):`);
    for (const read of READS) {
      const plan = await db.execute<{ "QUERY PLAN": string }>(sql`explain (analyze, buffers, costs off, summary off) ${read.query(params)}`, "objects");
      console.log(`\n-- ${read.name}\n${plan.map((r) => r["QUERY PLAN"]).join("\n")}`);
    }
  } finally {
    await handle.close().catch(() => {});
    if (o.keep) console.log(`kept database ${name}; drop it with: psql -h 127.0.0.1 -U postgres -c 'drop database "${name}"'`);
    else await admin.unsafe(`drop database if exists "${name}" with (force)`).catch(() => {});
    await admin.end();
  }
}

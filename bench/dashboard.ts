// `npm run bench -- dashboard`: the planner dashboard's `shortages` query over HTTP at national
// scale (5 million reports by default), for a province planner and the national planner, with the
// response cache and without it, next to the same question answered by a hand-written GROUP BY over
// the raw reports. Then how long a cached answer can outlive a forecast write (the invalidation
// window), and where the API's CPU goes per request.
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { connect } from "./lib/pg.js";
import { openDatabase, type Database } from "../src/db/index.js";
import { markAllDirty, recomputeDirty } from "../src/domain/forecast/pipeline.js";
import { authenticate, createApiToken } from "../src/domain/tokens.js";
import { createUser } from "../src/domain/users.js";
import { systemActor } from "../src/domain/viewer.js";
import { createResponseInvalidator } from "../src/http/response-cache.js";
import { createLogger } from "../src/logger.js";
import { generateNational } from "../src/tools/national-data.js";
import { clearRedisPrefix } from "../test/helpers/redis.js";
import { closeHttpClients, postGraphql } from "./lib/http.js";
import { formatProfile, summarizeProfile, type CpuProfile } from "./lib/profile.js";
import { processTreeCpuSeconds } from "./lib/system.js";
import { startApi as startIngestApi, type ApiChild } from "./ingest.js";

export const DASHBOARD_USAGE = `  dashboard  the shortages query over HTTP (32 clients, cached and not) for a province and the national planner, vs a raw GROUP BY
             --sites N (20000) --days N (25) --products N (10): the generated data set (5 million reports)
             --clients N (32) --duration S (10 per measurement) --raw-runs N (5 GROUP BY runs per planner; 0 skips them)
             --keep (keep the database and reuse it on the next run with the same sizes) --profile (CPU profile of a cached run)
             --api-processes N (one per core): API_PROCESSES of the API measured; its CPU is all of them together`;

interface Options {
  sites: number;
  days: number;
  products: number;
  clients: number;
  durationMs: number;
  rawRuns: number;
  keep: boolean;
  profile: boolean;
  apiProcesses: number;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      sites: { type: "string", default: "20000" },
      days: { type: "string", default: "25" },
      products: { type: "string", default: "10" },
      clients: { type: "string", default: "32" },
      duration: { type: "string", default: "10" },
      "raw-runs": { type: "string", default: "5" },
      keep: { type: "boolean", default: false },
      profile: { type: "boolean", default: false },
      "api-processes": { type: "string", default: String(availableParallelism()) },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(DASHBOARD_USAGE);
    process.exit(0);
  }
  const int = (name: string, v: string, min: number, max: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be a whole number from ${min} to ${max}, got ${v}`);
    return n;
  };
  return {
    sites: int("sites", values.sites, 10, 200_000),
    days: int("days", values.days, 8, 730),
    products: int("products", values.products, 1, 10),
    clients: int("clients", values.clients, 1, 512),
    durationMs: int("duration", values.duration, 1, 600) * 1000,
    rawRuns: int("raw-runs", values["raw-runs"], 0, 100),
    keep: values.keep,
    profile: values.profile,
    apiProcesses: int("api-processes", values["api-processes"], 1, 64),
  };
}

const ADMIN_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const REDIS_URL = process.env.REDIS_URL ?? process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const actor = systemActor("bench");
const READY = "supply bench dashboard: data set complete";

const SHORTAGES = `query Dashboard($region: String!) {
  shortages(regionCode: $region, first: 20) {
    edges { node { region { code name } product { code } riskLevel onHand dailyDemand daysOfSupply daysToStockout stockoutDate } }
  }
}`;

const ratio = (base: number, ours: number) => (Number.isNaN(base) ? "-" : `${Math.round(base / ours).toLocaleString("en")}x`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const load = () => loadavg().map((l) => l.toFixed(2)).join(" ");

function quantile(sorted: readonly number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]! : NaN;
}

// ---------------------------------------------------------------------------------------------
// The data set

/**
 * The database of this size: with --keep a fixed name, reused when an earlier run finished
 * loading it (marked by a comment on the database); otherwise a new one, dropped at the end.
 */
async function openBenchDatabase(o: Options, admin: postgres.Sql) {
  const name = o.keep ? `supply_bench_dashboard_${o.sites}s_${o.days}d_${o.products}p` : `supply_bench_${randomBytes(5).toString("hex")}`;
  let reused = false;
  if (o.keep) {
    const [row] = await admin<{ comment: string | null }[]>`select shobj_description(oid, 'pg_database') as comment from pg_database where datname = ${name}`;
    if (row?.comment === READY) reused = true;
    else if (row) await admin.unsafe(`drop database "${name}" with (force)`);
  }
  if (!reused) await admin.unsafe(`create database "${name}"`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const handle = openDatabase({ url: url.toString(), dataDir: "", poolSize: 6 });
  return { name, url: url.toString(), handle, reused };
}

/** The national data set, written through submitReports like any reporter's batches. */
async function loadData(db: Database, o: Options) {
  let last = 0;
  const started = performance.now();
  const result = await generateNational(db, {
    sites: o.sites,
    days: o.days,
    products: o.products,
    concurrency: 3,
    onProgress: ({ done, total }) => {
      if (done === total || performance.now() - last > 15_000) {
        last = performance.now();
        const rate = done / Math.max(1, (performance.now() - started) / 1000);
        console.log(`  reports ${done.toLocaleString("en")} / ${total.toLocaleString("en")} (${Math.round(rate).toLocaleString("en")}/s, load ${load()})`);
      }
    },
  });
  if (result.rejected) throw new Error(`the generator had ${result.rejected} rows rejected: ${result.rejectedExamples.join("; ")}`);
  return result;
}

// ---------------------------------------------------------------------------------------------
// The raw GROUP BY: the question answered from the reports alone

/**
 * The shortages page answered from the reports alone: each site's latest stock and its mean
 * consumption over the last 7 days, added up into every region of the subtree (a region holds its
 * own sites and all below it), days of supply, the risk level from the product's thresholds, most
 * urgent first, the first 20.
 */
function rawShortages(db: Database, rootPath: string) {
  return db.execute<{ code: string; product: string; risk: string; on_hand: number; daily: number; days: number | null }>(
    sql`with latest as (
          select distinct on (r.site_id, r.product_id) r.site_id, r.product_id, r.on_hand
          from report r join site s on s.id = r.site_id join region g on g.id = s.region_id
          where g.path ^@ ${rootPath} and r.on_hand is not null
          order by r.site_id, r.product_id, r.date desc
        ),
        recent as (
          select r.site_id, r.product_id, avg(r.consumed) as daily
          from report r join site s on s.id = r.site_id join region g on g.id = s.region_id
          where g.path ^@ ${rootPath} and r.consumed is not null and r.date > (select max(date) from report) - 7
          group by r.site_id, r.product_id
        ),
        per_region as (
          select a.id::int as region_id, l.product_id, sum(l.on_hand) as on_hand, sum(coalesce(c.daily, 0)) as daily
          from latest l
          left join recent c on c.site_id = l.site_id and c.product_id = l.product_id
          join site s on s.id = l.site_id join region g on g.id = s.region_id
          cross join lateral unnest(string_to_array(trim(both '/' from g.path), '/')::int[]) as a(id)
          join region sub on sub.id = a.id and sub.path ^@ ${rootPath}
          group by a.id, l.product_id
        ),
        graded as (
          select x.*, x.on_hand / nullif(x.daily, 0) as days,
                 case when x.daily = 0 then 5
                      when x.on_hand / x.daily < p.risk_red_days then 1
                      when x.on_hand / x.daily < p.risk_orange_days then 2
                      when x.on_hand / x.daily < p.risk_yellow_days then 3
                      when x.on_hand / x.daily < p.risk_blue_days then 4 else 5 end as rank,
                 p.code as product
          from per_region x join product p on p.id = x.product_id
        )
        select r.code, g.product, (array['RED','ORANGE','YELLOW','BLUE','GREEN'])[g.rank] as risk, g.on_hand, g.daily, g.days
        from graded g join region r on r.id = g.region_id
        order by g.rank, g.days nulls last
        limit 20`,
    "objects",
  );
}

// ---------------------------------------------------------------------------------------------
// The API child and the load

/** The API child: bench/ingest.ts's, with this bench's queue prefix and room under the read rate limit. */
const startApi = (url: string, prefix: string, env: Record<string, string>, nodeArgs: string[] = []) =>
  // 32 clients of one token send far more than a planner would.
  startIngestApi(url, nodeArgs, { mode: "api", env: { QUEUE_PREFIX: prefix, RATE_LIMIT_READS_PER_MINUTE: "100000000", ...env } });

const post = postGraphql;

interface LoadResult {
  requests: number;
  failures: number;
  p50: number;
  p95: number;
  p99: number;
  perSecond: number;
  /** CPU of the API process per request, µs. */
  apiCpuUs: number;
  /** CPU of this process (the load generator) per request, µs. */
  clientCpuUs: number;
}

/**
 * One keep-alive HTTP/1.1 connection sending a prepared request and reading answers by their
 * Content-Length. The load generator shares the machine's CPUs with the API it measures, and
 * node:http's client spends about as much per request as the API's cache hit; this spends a
 * fraction of it. One request at a time per connection, no pipelining: a client as a browser is.
 */
function rawConnection(port: number) {
  const socket = net.connect({ host: "127.0.0.1", port, noDelay: true });
  let buffered: Buffer = Buffer.alloc(0);
  let waiting: { resolve: (r: { status: number; body: Buffer }) => void; reject: (e: Error) => void } | null = null;
  const fail = (error: Error) => {
    waiting?.reject(error);
    waiting = null;
  };
  socket.on("error", fail);
  socket.on("close", () => fail(new Error("the API closed the connection")));
  socket.on("data", (chunk: Buffer) => {
    buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
    const end = buffered.indexOf("\r\n\r\n");
    if (end < 0 || !waiting) return;
    const head = buffered.subarray(0, end).toString("latin1");
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (!length) return fail(new Error(`an answer without Content-Length: ${head}`));
    const total = end + 4 + Number(length[1]);
    if (buffered.length < total) return;
    const body = buffered.subarray(end + 4, total);
    buffered = buffered.subarray(total);
    const done = waiting;
    waiting = null;
    done.resolve({ status: Number(head.slice(9, 12)), body });
  });
  return {
    send(request: Buffer) {
      return new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
        waiting = { resolve, reject };
        socket.write(request);
      });
    },
    close: () => socket.destroy(),
  };
}

/** `clients` loops, each sending the query as soon as the previous answer arrived, for `durationMs`. */
async function runLoad(api: ApiChild, token: string, body: string, clients: number, durationMs: number, expected: string): Promise<LoadResult> {
  const latencies: number[] = [];
  let failures = 0;
  let firstFailure = "";
  const request = Buffer.from(
    `POST /graphql HTTP/1.1\r\nhost: 127.0.0.1:${api.port}\r\ncontent-type: application/json\r\nauthorization: Bearer ${token}\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  const wanted = Buffer.from(expected);
  const connections = Array.from({ length: clients }, () => rawConnection(api.port));
  const apiCpu0 = processTreeCpuSeconds(api.child.pid!) ?? 0;
  const own0 = process.cpuUsage();
  const started = performance.now();
  const end = started + durationMs;
  try {
    await Promise.all(
      connections.map(async (connection) => {
        while (performance.now() < end) {
          const t0 = performance.now();
          const r = await connection.send(request);
          latencies.push(performance.now() - t0);
          // The answer must be the right one, not only fast: same bytes as the first (cached or not).
          if (r.status !== 200 || !r.body.equals(wanted)) {
            failures++;
            firstFailure ||= `${r.status} ${r.body.toString().slice(0, 300)}`;
          }
        }
      }),
    );
  } finally {
    for (const c of connections) c.close();
  }
  const elapsed = performance.now() - started;
  const own = process.cpuUsage(own0);
  const apiCpu = (processTreeCpuSeconds(api.child.pid!) ?? 0) - apiCpu0;
  if (failures) console.log(`  ${failures} answers differed from the first; the first of them: ${firstFailure}`);
  latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    failures,
    p50: quantile(latencies, 0.5),
    p95: quantile(latencies, 0.95),
    p99: quantile(latencies, 0.99),
    perSecond: latencies.length / (elapsed / 1000),
    apiCpuUs: (apiCpu * 1e6) / latencies.length,
    clientCpuUs: ((own.user + own.system) / latencies.length),
  };
}

interface Planner {
  label: string;
  code: string;
  path: string;
  token: string;
  sites: number;
}

// ---------------------------------------------------------------------------------------------

export async function runDashboardBench(argv: string[]) {
  const o = parseOptions(argv);
  const admin = connect(ADMIN_URL, { max: 1, onnotice: () => {} });
  const { name, url, handle, reused } = await openBenchDatabase(o, admin);
  const prefix = `{bench-dashboard-${randomBytes(4).toString("hex")}}`;
  const children: ApiChild[] = [];
  const cleanup = async () => {
    for (const c of children) await c.stop().catch(() => {});
    await handle.close().catch(() => {});
    await clearRedisPrefix(REDIS_URL, prefix).catch(() => {});
    if (o.keep) console.log(`\nkept database ${name} for the next run; drop it with: psql -h 127.0.0.1 -U postgres -c 'drop database "${name}"'`);
    else await admin.unsafe(`drop database if exists "${name}" with (force)`).catch(() => {});
    await admin.end();
  };
  const onSignal = () => void cleanup().then(() => process.exit(130));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const db = handle.db;
    await handle.migrate();
    const [version] = await db.execute<{ v: string }>(sql`select version() as v`, "objects");
    console.log(
      `database ${name} (${version!.v.split(" ").slice(0, 2).join(" ")}), node ${process.version}, ${availableParallelism()} CPUs, load average ${load()}`,
    );

    // 1. Data and forecasts.
    if (reused) {
      console.log(`reusing the data set loaded by an earlier --keep run`);
    } else {
      console.log(`loading ${o.sites.toLocaleString("en")} sites x ${o.days} days x up to ${o.products} products through submitReports (minutes) ...`);
      let t0 = performance.now();
      const generated = await loadData(db, o);
      console.log(`  ${generated.reports.toLocaleString("en")} reports, ${generated.sites.toLocaleString("en")} sites, ${generated.regions.toLocaleString("en")} regions in ${seconds(performance.now() - t0)}`);
      t0 = performance.now();
      await markAllDirty(db);
      let series = 0;
      for (;;) {
        const r = await recomputeDirty(db, { trigger: "bench" });
        series += r.series;
        if (r.remaining === 0) break;
      }
      await db.execute(sql`analyze`);
      console.log(`  forecasts: ${series.toLocaleString("en")} (region, product) series in ${seconds(performance.now() - t0)}`);
      await admin.unsafe(`comment on database "${name}" is '${READY}'`);
    }
    const [counts] = await db.execute<{ reports: number; sites: number; forecasts: number; first: string; last: string }>(
      sql`select (select count(*) from report)::int as reports, (select count(*) from site)::int as sites,
                 (select count(*) from forecast_latest)::int as forecasts, (select min(date)::text from report) as first, (select max(date)::text from report) as last`,
      "objects",
    );
    console.log(
      `data: ${counts!.reports.toLocaleString("en")} reports of ${counts!.sites.toLocaleString("en")} sites, ${counts!.first} .. ${counts!.last}; ${counts!.forecasts.toLocaleString("en")} latest forecasts`,
    );

    // 2. The planners: the whole country, and the province with the most sites.
    const [country] = await db.execute<{ code: string; path: string }>(sql`select code, path from region where parent_id is null order by id limit 1`, "objects");
    const [province] = await db.execute<{ code: string; name: string; path: string; sites: number }>(
      sql`select p.code, p.name, p.path, count(s.id)::int as sites from region p join region r on r.path ^@ p.path join site s on s.region_id = r.id
          where p.parent_id = (select id from region where code = ${country!.code}) group by p.id order by count(s.id) desc limit 1`,
      "objects",
    );
    const tag = randomBytes(3).toString("hex");
    const plannerFor = async (label: string, code: string, regionPath: string, sites: number): Promise<Planner> => {
      const user = await createUser(db, actor, { name: `bench ${label}`, email: `bench-${label}-${tag}@example.com`, role: "PLANNER", jurisdictionRegionCode: code });
      const { token } = await createApiToken(db, actor, { userId: user.id, name: "bench dashboard" });
      return { label, code, path: regionPath, token, sites };
    };
    const planners = [
      await plannerFor("province", province!.code, province!.path, province!.sites),
      await plannerFor("national", country!.code, country!.path, counts!.sites),
    ];
    const bodyFor = (p: Planner) => JSON.stringify({ query: SHORTAGES, variables: { region: p.code } });

    // 3. The raw GROUP BY, a warm-up run and then timed runs.
    const raw = new Map<string, { p50: number; p95: number; rows: number; top: string }>();
    for (const p of o.rawRuns ? planners : []) {
      await rawShortages(db, p.path);
      const times: number[] = [];
      let rows: Awaited<ReturnType<typeof rawShortages>> = [];
      for (let i = 0; i < o.rawRuns; i++) {
        const t0 = performance.now();
        rows = await rawShortages(db, p.path);
        times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      const top = rows[0] ? `${rows[0].code} ${rows[0].product} ${rows[0].risk} ${rows[0].days?.toFixed(1) ?? "-"} days` : "none";
      raw.set(p.label, { p50: quantile(times, 0.5), p95: quantile(times, 0.95), rows: rows.length, top });
      console.log(`raw GROUP BY, ${p.label} (${p.code}, ${p.sites.toLocaleString("en")} sites): ${times.map((t) => t.toFixed(0)).join(", ")} ms; most urgent: ${top} (load ${load()})`);
    }

    // 4. What a token lookup costs when it is not cached (the token cache keeps it off the hot path).
    {
      const n = 2000;
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await authenticate(db, planners[0]!.token);
      console.log(`token lookup in Postgres, one at a time: ${(((performance.now() - t0) * 1000) / n).toFixed(0)} µs each`);
    }

    // 5. HTTP: cached, cached without the token cache, and without the response cache.
    const configurations: { label: string; env: Record<string, string> }[] = [
      { label: "cached", env: {} },
      { label: "cached, tokens looked up per request", env: { AUTH_CACHE_SECONDS: "0" } },
      { label: "uncached (read models only)", env: { RESPONSE_CACHE_TTL_SECONDS: "0" } },
    ];
    const results: { config: string; planner: Planner; r: LoadResult; bytes: number }[] = [];
    for (const c of configurations) {
      const api = await startApi(url, prefix, { API_PROCESSES: String(o.apiProcesses), ...c.env });
      children.push(api);
      try {
        for (const p of planners) {
          const body = bodyFor(p);
          const first = await post(api.port, p.token, body);
          const parsed = JSON.parse(first.body) as { data?: { shortages?: { edges: unknown[] } }; errors?: { message: string }[] };
          if (first.status !== 200 || parsed.errors || !parsed.data?.shortages?.edges.length) throw new Error(`the ${p.label} planner's query failed: ${first.body.slice(0, 500)}`);
          // Warm-up (JIT, connections, the cache entry), then the measurement.
          await runLoad(api, p.token, body, o.clients, Math.min(2000, o.durationMs), first.body);
          const r = await runLoad(api, p.token, body, o.clients, o.durationMs, first.body);
          results.push({ config: c.label, planner: p, r, bytes: Buffer.byteLength(first.body) });
          console.log(
            `  ${c.label}, ${p.label}: p50 ${r.p50.toFixed(2)} ms, p95 ${r.p95.toFixed(2)} ms, ${Math.round(r.perSecond).toLocaleString("en")}/s (load ${load()})`,
          );
        }
      } finally {
        await api.stop();
        children.splice(children.indexOf(api), 1);
      }
    }

    console.log(`\nshortages(regionCode, first: 20) over HTTP, ${o.clients} concurrent clients, API_PROCESSES=${o.apiProcesses}, ${o.durationMs / 1000} s per row; raw GROUP BY: ${o.rawRuns} runs after a warm-up`);
    console.log("| planner | path | p50 ms | p95 ms | p99 ms | req/s | API CPU µs/req | client CPU µs/req | raw GROUP BY p95 / p95 |");
    console.log("|---|---|--:|--:|--:|--:|--:|--:|--:|");
    for (const p of planners) {
      const base = raw.get(p.label) ?? { p50: NaN, p95: NaN };
      for (const { config, r } of results.filter((x) => x.planner === p)) {
        console.log(
          `| ${p.label} ${p.code} | ${config} | ${r.p50.toFixed(2)} | ${r.p95.toFixed(2)} | ${r.p99.toFixed(2)} | ${Math.round(r.perSecond).toLocaleString("en")} | ${r.apiCpuUs.toFixed(0)} | ${r.clientCpuUs.toFixed(0)} | ${ratio(base.p95, r.p95)} |`,
        );
      }
      if (raw.has(p.label)) console.log(`| ${p.label} ${p.code} | raw GROUP BY over the reports (SQL) | ${base.p50.toFixed(0)} | ${base.p95.toFixed(0)} | | ${(1000 / base.p50).toFixed(2)} | | | 1x |`);
    }
    for (const p of planners) {
      const cached = results.find((x) => x.planner === p && x.config === "cached")!;
      const base = raw.get(p.label) ?? { p50: NaN, p95: NaN };
      const ok = cached.r.p95 <= 5 && base.p95 / cached.r.p95 >= 100;
      console.log(
        `${p.label}: cached p95 ${cached.r.p95.toFixed(2)} ms (goal <= 5 ms), ${ratio(base.p95, cached.r.p95)} the raw GROUP BY (goal >= 100x): ${ok ? "met" : "MISSED"}; answer ${cached.bytes.toLocaleString("en")} bytes`,
      );
    }

    // 6. The invalidation window: a forecast row changes (as the job writes one), the worker's
    // invalidation is published, and one client asks until it sees the new figure.
    const api = await startApi(url, prefix, {});
    children.push(api);
    const invalidator = createResponseInvalidator({ url: REDIS_URL, prefix, logger: createLogger({ LOG_LEVEL: "silent" }) });
    try {
      const p = planners[0]!;
      const body = bodyFor(p);
      const onHandOf = (text: string) => (JSON.parse(text) as { data: { shortages: { edges: { node: { onHand: number } }[] } } }).data.shortages.edges[0]!.node.onHand;
      const first = await post(api.port, p.token, body);
      const top = (JSON.parse(first.body) as { data: { shortages: { edges: { node: { region: { code: string }; product: { code: string } } }[] } } }).data.shortages.edges[0]!.node;
      const [f] = await db.execute<{ id: number }>(
        sql`select l.forecast_id::int as id from forecast_latest l join region r on r.id = l.region_id join product p on p.id = l.product_id
            where r.code = ${top.region.code} and p.code = ${top.product.code}`,
        "objects",
      );
      const trials = 30;
      const toPublished: number[] = [];
      const lastStaleSent: number[] = [];
      const firstFreshSent: number[] = [];
      let staleAnswers = 0;
      let staleAfterFresh = 0;
      for (let i = 0; i < trials; i++) {
        const before = onHandOf((await post(api.port, p.token, body)).body);
        if (onHandOf((await post(api.port, p.token, body)).body) !== before) throw new Error("the answer changed without a write");
        const delta = i % 2 === 0 ? 1 : -1;
        await db.execute(sql`update forecast set on_hand = on_hand + ${delta} where id = ${f!.id}`);
        const committed = performance.now();
        const published = invalidator.invalidate("bench").then(() => toPublished.push(performance.now() - committed));
        // Four clients ask in a loop; times are ms after the commit.
        let lastStale = 0;
        let freshSent = Infinity;
        let freshReceived = Infinity;
        await Promise.all(
          Array.from({ length: 4 }, async () => {
            while (performance.now() - committed < freshReceived + 20) {
              const sent = performance.now() - committed;
              const value = onHandOf((await post(api.port, p.token, body)).body);
              if (value === before + delta) {
                freshSent = Math.min(freshSent, sent);
                freshReceived = Math.min(freshReceived, performance.now() - committed);
              } else {
                staleAnswers++;
                lastStale = Math.max(lastStale, sent);
                if (sent > freshReceived) staleAfterFresh++;
              }
              if (sent > 10_000) throw new Error("no fresh answer within 10 s of the invalidation");
            }
          }),
        );
        lastStaleSent.push(lastStale);
        firstFreshSent.push(freshSent);
        await published;
      }
      const stats = (xs: number[]) => {
        xs.sort((a, b) => a - b);
        return `p50 ${quantile(xs, 0.5).toFixed(2)} ms, p95 ${quantile(xs, 0.95).toFixed(2)} ms, max ${quantile(xs, 1).toFixed(2)} ms`;
      };
      console.log(
        `\ninvalidation window, ${trials} forecast writes into an idle API, 4 clients asking in a loop (times after the commit):\n` +
          `  the worker's publish taken by Redis: ${stats(toPublished)}\n` +
          `  last request answered with the old figure was sent at: ${stats(lastStaleSent)} (${staleAnswers} stale answers in all)\n` +
          `  first request answered with the new figure was sent at: ${stats(firstFreshSent)}\n` +
          `  stale answers to requests sent after a fresh answer had arrived: ${staleAfterFresh}`,
      );
    } finally {
      await invalidator.close();
      await api.stop();
      children.splice(children.indexOf(api), 1);
    }

    // 7. Where the API's CPU goes on the cached path.
    if (o.profile) {
      const dir = mkdtempSync(path.join(tmpdir(), "supply-bench-prof-"));
      try {
        const profiled = await startApi(url, prefix, {}, ["--cpu-prof", "--cpu-prof-dir", dir, "--cpu-prof-interval", "200"]);
        children.push(profiled);
        const p = planners[0]!;
        const body = bodyFor(p);
        const first = await post(profiled.port, p.token, body);
        await runLoad(profiled, p.token, body, o.clients, 2000, first.body);
        const window = { fromUs: Number(process.hrtime.bigint() / 1000n), toUs: 0 };
        const r = await runLoad(profiled, p.token, body, o.clients, o.durationMs, first.body);
        window.toUs = Number(process.hrtime.bigint() / 1000n);
        await profiled.stop();
        children.splice(children.indexOf(profiled), 1);
        console.log(`\nprofiled cached run (${p.label}): ${Math.round(r.perSecond).toLocaleString("en")}/s, p95 ${r.p95.toFixed(2)} ms, API CPU ${r.apiCpuUs.toFixed(0)} µs/request`);
        const file = readdirSync(dir).find((x) => x.endsWith(".cpuprofile"));
        if (!file) throw new Error(`the API process wrote no CPU profile:\n${profiled.output()}`);
        console.log(formatProfile("API child, cached shortages under load", summarizeProfile(JSON.parse(readFileSync(path.join(dir, file), "utf8")) as CpuProfile, window), 25));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    console.log(`\nload average at the end: ${load()}`);
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    closeHttpClients();
    await cleanup();
  }
}

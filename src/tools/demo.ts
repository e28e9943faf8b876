// `npm run demo`: a national emergency in one command, on the embedded database. Loads China's
// region tree, the catalog, a few hundred hospitals, manufacturers and raw-material suppliers
// with 60 days of reports and an outbreak in one province (src/tools/national-data.ts, through
// the same write path as the API), runs forecasts, matching and alerts, prints what a planner
// wants to know first with tokens and URLs to look further, then serves the API and the worker.
import { spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import cliProgress from "cli-progress";
import { sql } from "drizzle-orm";
import { ConfigError, loadConfig } from "../config.js";
import { openDatabase, type Database } from "../db/index.js";
import { evaluateMatchAlerts, evaluateReportAlerts, evaluateShortageAlerts } from "../domain/alerts/rules.js";
import { DomainError } from "../domain/errors.js";
import { recomputeDirty } from "../domain/forecast/pipeline.js";
import { recomputeMatches } from "../domain/matching/matching.js";
import { relayOutbox } from "../domain/outbox.js";
import { refreshDirtyRollups } from "../domain/read-models.js";
import { createApiToken } from "../domain/tokens.js";
import type { Role } from "../domain/types.js";
import { createUser } from "../domain/users.js";
import { systemActor } from "../domain/viewer.js";
import { DEFAULT_OUTBREAK_PROVINCE, generateNational, SITE_CODE_PREFIX } from "./national-data.js";

const USAGE = `Usage: npm run demo [-- options]

Loads a national emergency into the embedded database (DATA_DIR, default ./.data), computes
forecasts, matches and alerts, prints the reddest regions, the top matches and the open alerts
with tokens and URLs, then runs the service (API and worker) until Ctrl-C.

Options:
  --sites N        sites to generate (default 200: hospitals, manufacturers, suppliers)
  --days N         days of reports ending yesterday (default 60)
  --outbreak CODE  province of the outbreak (default ${DEFAULT_OUTBREAK_PROVINCE}, Hubei)
  --fresh          delete the embedded data in DATA_DIR first (not with DATABASE_URL)
  --no-serve       stop after printing instead of running the service
  --help           this text`;

const actor = systemActor("demo");
const ROOT = fileURLToPath(new URL("../..", import.meta.url));

function options(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      sites: { type: "string", default: "200" },
      days: { type: "string", default: "60" },
      outbreak: { type: "string", default: DEFAULT_OUTBREAK_PROVINCE },
      fresh: { type: "boolean", default: false },
      "no-serve": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  const int = (name: string, v: string, min: number, max: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got "${v}"`);
    return n;
  };
  return {
    help: values.help,
    sites: int("sites", values.sites, 20, 5000),
    days: int("days", values.days, 14, 365),
    outbreak: values.outbreak,
    fresh: values.fresh,
    serve: !values["no-serve"],
  };
}

class UsageError extends Error {}

/** A step with a bar when its size is known, else a line when it is done. */
async function step<T>(label: string, run: (bar: cliProgress.SingleBar) => Promise<T>, describe: (r: T) => string): Promise<T> {
  const bar = new cliProgress.SingleBar(
    { format: `  ${label.padEnd(22)} [{bar}] {percentage}% | {value}/{total} | {duration_formatted}`, hideCursor: true, clearOnComplete: true, stream: process.stderr },
    cliProgress.Presets.shades_classic,
  );
  const t0 = performance.now();
  try {
    const result = await run(bar);
    bar.stop();
    process.stderr.write(`  ✓ ${label.padEnd(20)} ${describe(result)} (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
    return result;
  } catch (error) {
    bar.stop();
    throw error;
  }
}

async function token(db: Database, name: string, role: Role, scope: { organizationId?: string; jurisdictionRegionCode?: string }) {
  const email = `${name.toLowerCase().replace(/[^a-z0-9]+/g, "-")}@demo.local`;
  let [user] = await db.execute<{ id: string }>(sql`select id from app_user where email = ${email}`, "objects");
  if (!user) user = await createUser(db, actor, { name, email, role, ...scope });
  return (await createApiToken(db, actor, { userId: user.id, name: "demo" })).token;
}

async function load(db: Database, o: ReturnType<typeof options>) {
  let bar: cliProgress.SingleBar | undefined;
  const generated = await step(
    "reports",
    async (b) => {
      bar = b;
      return generateNational(db, {
        sites: o.sites,
        days: o.days,
        outbreakProvince: o.outbreak,
        onProgress: ({ done, total }) => (done === 0 ? bar!.start(total, 0) : bar!.update(done)),
      });
    },
    (r) => `${r.reports.toLocaleString("en")} reports from ${r.sites} sites of ${r.organizations} organizations, ${r.firstDay}..${r.lastDay}, outbreak in ${r.outbreakProvince}`,
  );
  // The relay's work, done here: dirty forecast pairs and rollup slices. The jobs it would ask
  // for are run below, directly, so the demo does not wait for queues.
  await step(
    "forecasts",
    async () => {
      while ((await relayOutbox(db, async () => {})).events > 0);
      await refreshDirtyRollups(db);
      return recomputeDirty(db, { trigger: "demo" });
    },
    (r) => `${r.series.toLocaleString("en")} (region, product) series`,
  );
  const products = await db.execute<{ id: number; code: string; raw: boolean }>(
    sql`select id, code, category = 'RAW_MATERIAL' as raw from product order by id`,
    "objects",
  );
  await step(
    "matching",
    async (b) => {
      b.start(products.length, 0);
      let proposed = 0;
      for (const p of products) {
        const r = await recomputeMatches(db, p.id, p.raw ? "UPSTREAM" : "DOWNSTREAM", "demo");
        proposed += r.proposals;
        b.increment();
      }
      return proposed;
    },
    (n) => `${n} matches proposed`,
  );
  await step(
    "alerts",
    async (b) => {
      b.start(products.length, 0);
      for (const p of products) {
        if (!p.raw) await evaluateShortageAlerts(db, p.id);
        await evaluateMatchAlerts(db, p.id, p.raw ? "UPSTREAM" : "DOWNSTREAM");
        b.increment();
      }
      const last = await db.execute<{ id: number }>(sql`select id::int from report where date = ${generated.lastDay}::date`, "objects");
      for (let i = 0; i < last.length; i += 5000) await evaluateReportAlerts(db, last.slice(i, i + 5000).map((r) => r.id));
      const [{ n }] = (await db.execute<{ n: number }>(sql`select count(*)::int as n from alert where status <> 'RESOLVED'`, "objects")) as [{ n: number }];
      return n;
    },
    (n) => `${n} open alerts`,
  );
  return generated.outbreakProvince;
}

async function summary(db: Database, outbreak: string, port: number) {
  const red = await db.execute<{ code: string; name: string; level: string; product: string; risk: string; days: number | null }>(
    sql`select r.code, r.name, r.level::text as level, p.code as product, l.risk_level::text as risk, l.days_to_stockout as days
        from forecast_latest l join region r on r.id = l.region_id join product p on p.id = l.product_id
        where r.level in ('PROVINCE', 'CITY')
        order by l.risk_level desc, coalesce(l.days_to_stockout, 1e15), r.code limit 8`,
    "objects",
  );
  const matches = await db.execute<{ product: string; quantity: number; from_region: string; to_region: string; km: number | null }>(
    sql`select p.code as product, m.quantity, fr.name as from_region, tr.name as to_region, m.distance_km as km
        from match m join product p on p.id = m.product_id join site s on s.id = m.from_site_id join region fr on fr.id = s.region_id
        join region tr on tr.id = m.to_region_id
        where m.status = 'PROPOSED' order by m.quantity desc limit 5`,
    "objects",
  );
  const alerts = await db.execute<{ kind: string; n: number; red: number }>(
    sql`select kind::text, count(*)::int as n, (count(*) filter (where severity = 'RED'))::int as red from alert where status <> 'RESOLVED' group by kind order by n desc`,
    "objects",
  );
  const n = (v: number) => Math.round(v).toLocaleString("en");
  const out: string[] = [""];
  out.push("Reddest regions (province and city level):");
  for (const r of red) out.push(`  ${r.risk.padEnd(6)} ${r.name} (${r.code}, ${r.level.toLowerCase()}) ${r.product}: ${r.days === null ? "no stock-out ahead" : `runs out in ${r.days.toFixed(1)} days`}`);
  out.push("", "Top proposed matches:");
  for (const m of matches) out.push(`  ${n(m.quantity)} ${m.product} from ${m.from_region} to ${m.to_region}${m.km === null ? "" : ` (${n(m.km)} km)`}`);
  if (!matches.length) out.push("  none");
  out.push("", "Open alerts:");
  for (const a of alerts) out.push(`  ${String(a.n).padStart(5)} ${a.kind}${a.red ? ` (${a.red} RED)` : ""}`);

  const national = await token(db, "Demo national planner", "PLANNER", { jurisdictionRegionCode: "CN" });
  const provincial = await token(db, `Demo planner ${outbreak}`, "PLANNER", { jurisdictionRegionCode: outbreak });
  const admin = await token(db, "Demo admin", "ADMIN", {});
  const [hospital] = await db.execute<{ id: string; name: string; site: string }>(
    sql`select o.id, o.name, s.code as site from organization o join site s on s.organization_id = o.id
        join region r on r.id = s.region_id
        where o.kind = 'HOSPITAL' and s.code like ${`${SITE_CODE_PREFIX}%`} and r.path ^@ (select path from region where code = ${outbreak})
        order by s.code limit 1`,
    "objects",
  );
  const reporter = hospital ? await token(db, `Demo reporter ${hospital.site}`, "REPORTER", { organizationId: hospital.id }) : null;
  const base = `http://localhost:${port}`;
  out.push(
    "",
    "Tokens (new ones each run; keep them private):",
    `  national planner (CN):        ${national}`,
    `  planner of ${outbreak}:          ${provincial}`,
    `  admin:                        ${admin}`,
    ...(reporter && hospital ? [`  reporter of ${hospital.name} (site ${hospital.site}): ${reporter}`] : []),
    "",
    "Look further:",
    `  planner's page:   ${base}/dashboard/   (paste a planner token)`,
    `  GraphQL:          ${base}/graphql`,
    `  open data:        ${base}/open-data/shortages.csv`,
    `  queues (admin):   ${base}/admin/queues`,
    ...(reporter && hospital
      ? [`  upload a CSV:     curl -H "Authorization: Bearer ${reporter}" -F file=@reports.csv ${base}/imports`, `                    (columns siteCode,productCode,date,onHand,consumed,...; site ${hospital.site})`]
      : []),
  );
  process.stdout.write(`${out.join("\n")}\n`);
}

async function main(argv: string[]): Promise<number> {
  let o: ReturnType<typeof options>;
  try {
    o = options(argv);
  } catch (error) {
    process.stderr.write(`error: ${(error as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (o.help) {
    process.stderr.write(`${USAGE}\n`);
    return 0;
  }
  const config = loadConfig();
  if (o.fresh) {
    if (config.DATABASE_URL) {
      process.stderr.write("error: --fresh deletes the embedded data in DATA_DIR; with DATABASE_URL set, empty that database yourself\n");
      return 2;
    }
    await rm(config.DATA_DIR, { recursive: true, force: true });
  }
  const started = performance.now();
  const handle = openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR, poolSize: 4 });
  let outbreak = o.outbreak;
  try {
    await handle.migrate();
    const [{ n }] = (await handle.db.execute<{ n: number }>(sql`select count(*)::int as n from site where code like ${`${SITE_CODE_PREFIX}%`}`, "objects")) as [{ n: number }];
    process.stderr.write(`Demo on the ${handle.kind === "pglite" ? `embedded database in ${config.DATA_DIR}` : "database at DATABASE_URL"}\n`);
    if (n > 0) {
      process.stderr.write(`  it already holds a generated data set (${n} sites): showing it (npm run demo -- --fresh starts over)\n`);
    } else {
      outbreak = await load(handle.db, o);
    }
    await summary(handle.db, outbreak, config.PORT);
  } catch (error) {
    if (error instanceof DomainError) {
      process.stderr.write(`\nerror: ${error.message}\n`);
      return 1;
    }
    throw error;
  } finally {
    await handle.close();
  }
  process.stderr.write(`\nready in ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
  if (!o.serve) return 0;

  process.stderr.write(`starting the service on port ${config.PORT} (Ctrl-C to stop; npm start serves the same data later)\n`);
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: ROOT,
    stdio: "inherit",
    // The service parses its own configuration from this environment; the demo only quiets its
    // logs (unless LOG_LEVEL was set) so the printout above stays readable.
    // eslint-disable-next-line no-restricted-properties
    env: { ...process.env, LOG_LEVEL: config.LOG_LEVEL === "info" ? "warn" : config.LOG_LEVEL },
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => child.kill(signal));
  return new Promise((resolve) => child.on("exit", (code) => resolve(code ?? 1)));
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`${error instanceof ConfigError ? error.message : (error as Error).stack}\n`);
    process.exit(1);
  },
);

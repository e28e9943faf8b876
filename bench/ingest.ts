// Report ingestion throughput: a bare set-based INSERT (the floor any implementation pays) against
// the storage step (submitReports in-process) and the whole HTTP GraphQL path of the real service.
// Every contender writes the same logical rows into an empty `report` table, with the same number
// of concurrent clients and the same batch size. See BENCHMARKS.md for recorded figures.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { connect, postgresPidsFor } from "./lib/pg.js";
import { openDatabase, type Database } from "../src/db/index.js";
import { seedCatalog } from "../src/domain/catalog.js";
import { createOrganization, createSite } from "../src/domain/organizations.js";
import { createRegions } from "../src/domain/regions.js";
import { insertNewReports, submitReports, type NewReport } from "../src/domain/reports/ingest.js";
import { dayNumber, localToday } from "../src/domain/reports/validate.js";
import { freePort } from "../src/redis.js";
import type { ReportRowInput } from "../src/domain/reports/validate.js";
import { authenticate, createApiToken } from "../src/domain/tokens.js";
import { createUser } from "../src/domain/users.js";
import { systemActor, type Viewer } from "../src/domain/viewer.js";
import { closeHttpClients, postGraphql } from "./lib/http.js";
import { formatProfile, profileInProcess, summarizeProfile, type CpuProfile } from "./lib/profile.js";
import { cpuSnapshot, cpuSpent, peakRssMiB, processCpuSeconds, type CpuSpent } from "./lib/system.js";
import { seededRandom } from "../src/tools/random.js";

export const INGEST_USAGE = `  ingest [--rows N] [--repeat N] [--batch N] [--clients N] [--orgs N] [--warmup N] [--sites N]
         [--only baseline,write,storage,http] [--profile] [--profile-dir DIR]
      Report ingestion: a bare unnest INSERT vs the storage step (insertNewReports, the write
      submitReports sends) vs the whole submitReports call in-process vs HTTP GraphQL submitReports.
      Each of --orgs reporting organizations (default: one per client, as in a national system
      where concurrent batches come from different reporters) has --sites sites; batches of the
      organizations are interleaved. --orgs 1 makes every client write the same sites' series,
      the worst case for the per-site ordering of writes.
      Defaults: --rows 200000 --repeat 5 --batch 1000 --clients 4 --warmup 10 (batches) --sites 50.
      Contenders run in rounds (each once per round, in turn), so a slow spell of a shared machine
      falls on all of them.
      --profile adds one extra, untimed run of the storage step and of the HTTP path under a CPU
      profiler and prints where the JavaScript time goes; --profile-dir keeps the API child's
      .cpuprofile there (open it in Chrome DevTools). Needs PostgreSQL and Redis; set
      BENCH_DATABASE_URL (admin connection, default postgres://postgres@127.0.0.1:5432/postgres)
      and BENCH_REDIS_URL (default redis://127.0.0.1:6379) to use others.`;

const PROJECT_ROOT = fileURLToPath(new URL("..", import.meta.url));
const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const REDIS_URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const BACKFILL_DAYS = 7; // the service's default REPORT_BACKFILL_DAYS
const CONTENDERS = ["baseline", "write", "storage", "http"] as const;
type ContenderName = (typeof CONTENDERS)[number];
const LABEL: Record<ContenderName, string> = {
  baseline: "bare INSERT … SELECT unnest (postgres.js)",
  write: "storage step: insertNewReports (the write of submitReports)",
  storage: "whole service call: submitReports in-process",
  http: "HTTP GraphQL submitReports (api child)",
};

interface Options {
  rows: number;
  repeat: number;
  batch: number;
  clients: number;
  warmup: number;
  sites: number;
  only: ContenderName[];
  orgs: number;
  profile: boolean;
  profileDir: string | undefined;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      rows: { type: "string" },
      repeat: { type: "string" },
      batch: { type: "string" },
      clients: { type: "string" },
      orgs: { type: "string" },
      warmup: { type: "string" },
      sites: { type: "string" },
      only: { type: "string" },
      profile: { type: "boolean" },
      "profile-dir": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(`Usage: npm run bench -- \n${INGEST_USAGE}`);
    process.exit(0);
  }
  const int = (name: string, raw: string | undefined, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER) => {
    if (raw === undefined) return fallback;
    const n = Number(raw.replace(/[_,]/g, ""));
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be a whole number from ${min} to ${max}, got "${raw}"`);
    return n;
  };
  const only = (values.only ?? CONTENDERS.join(",")).split(",").map((s) => s.trim()) as ContenderName[];
  for (const c of only) if (!CONTENDERS.includes(c)) throw new Error(`--only takes a list of ${CONTENDERS.join(", ")}; got "${c}"`);
  return {
    rows: int("rows", values.rows, 200_000, 1),
    repeat: int("repeat", values.repeat, 5, 1),
    batch: int("batch", values.batch, 1000, 1, 5000),
    clients: int("clients", values.clients, 4, 1, 64),
    warmup: int("warmup", values.warmup, 10, 0),
    sites: int("sites", values.sites, 50, 1, 10_000),
    orgs: int("orgs", values.orgs, int("clients", values.clients, 4, 1, 64), 1, 64),
    only,
    profile: (values.profile ?? false) || values["profile-dir"] !== undefined,
    profileDir: values["profile-dir"],
  };
}

// ---------------------------------------------------------------------------------------------
// Data


interface Site {
  id: string;
  code: string;
}
interface Product {
  id: number;
  code: string;
  baseUnit: string;
}

/** One batch in the three shapes the contenders take; all hold the same logical rows. */
export interface Batch {
  size: number;
  /** Index of the reporting organization whose sites the batch holds. */
  org: number;
  /** Column arrays for the bare INSERT, with site and product already resolved to ids. */
  columns: {
    siteId: string[];
    productId: number[];
    date: string[];
    onHand: number[];
    produced: number[];
    capacityPerDay: number[];
    consumed: number[];
    received: number[];
    shipped: number[];
    backlog: number[];
    stockoutHours: number[];
  };
  /** Rows as a client sends them to submitReports. */
  inputs: ReportRowInput[];
  /** The HTTP request body, serialised ahead of time so the clients spend no CPU on it. */
  body: string;
}

const MUTATION = "mutation($r:[ReportInput!]!){ submitReports(reports:$r){ accepted rejected { index message } } }";

const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * Daily reports, day by day: on each day every site reports every product (as live reporting
 * arrives), ending yesterday (UTC) so no date is in the future for any site's time zone. Stock
 * evolves per site and product: onHand(t) = onHand(t-1) + produced + received - consumed - shipped.
 */
export function generateBatches(rows: number, batchSize: number, sites: Site[], products: Product[], org = 0): { batches: Batch[]; firstDay: string; lastDay: string } {
  const random = seededRandom(20_200_124); // the same rows on every run
  const series = sites.length * products.length;
  const days = Math.ceil(rows / series);
  const end = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate()) - 86_400_000;
  const start = end - (days - 1) * 86_400_000;
  const capacity = Array.from({ length: series }, () => Math.round(500 + random() * 49_500));
  const stock = capacity.map((c) => Math.round(c * (1 + random() * 4)));

  const batches: Batch[] = [];
  let current: Batch | undefined;
  let made = 0;
  for (let d = 0; d < days && made < rows; d++) {
    const date = isoDay(start + d * 86_400_000);
    for (let s = 0; s < sites.length && made < rows; s++) {
      for (let p = 0; p < products.length && made < rows; p++) {
        const k = s * products.length + p;
        const cap = capacity[k]!;
        // About 1 % of days run over nominal capacity (overtime), as real plants report.
        const produced = Math.round(cap * (random() < 0.01 ? 1.02 + random() * 0.1 : 0.55 + random() * 0.45));
        const received = random() < 0.3 ? Math.round(random() * cap * 0.5) : 0;
        const consumed = Math.round(produced * random() * 0.05);
        let shipped = Math.round((produced + received) * (0.7 + random() * 0.4));
        const before = stock[k]!;
        let onHand = before + produced + received - consumed - shipped;
        if (onHand < 0) {
          shipped += onHand;
          onHand = 0;
        }
        stock[k] = onHand;
        const backlog = Math.round(random() * cap * 0.8);
        const stockoutHours = onHand === 0 ? Math.round(random() * 24) : 0;
        const site = sites[s]!;
        const product = products[p]!;

        if (!current || current.size === batchSize) {
          current = {
            size: 0,
            org,
            columns: {
              siteId: [], productId: [], date: [], onHand: [], produced: [], capacityPerDay: [],
              consumed: [], received: [], shipped: [], backlog: [], stockoutHours: [],
            },
            inputs: [],
            body: "",
          };
          batches.push(current);
        }
        const c = current.columns;
        c.siteId.push(site.id);
        c.productId.push(product.id);
        c.date.push(date);
        c.onHand.push(onHand);
        c.produced.push(produced);
        c.capacityPerDay.push(cap);
        c.consumed.push(consumed);
        c.received.push(received);
        c.shipped.push(shipped);
        c.backlog.push(backlog);
        c.stockoutHours.push(stockoutHours);
        current.inputs.push({
          siteCode: site.code, productCode: product.code, date, unit: product.baseUnit,
          onHand, produced, capacityPerDay: cap, consumed, received, shipped, backlog, stockoutHours,
        });
        current.size++;
        made++;
      }
    }
  }
  for (const b of batches) b.body = JSON.stringify({ query: MUTATION, variables: { r: b.inputs } });
  return { batches, firstDay: isoDay(start), lastDay: isoDay(start + (days - 1) * 86_400_000) };
}

// ---------------------------------------------------------------------------------------------
// Database set-up

function databaseUrl(name: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

interface Reporter {
  sites: Site[];
  token: string;
  viewer: Viewer;
}

export interface World {
  orgs: Reporter[];
  products: Product[];
}

export async function seed(url: string, siteCount: number, orgCount: number): Promise<World> {
  const handle = openDatabase({ url, dataDir: "", poolSize: 2 });
  try {
    await handle.migrate();
    const db = handle.db;
    const actor = systemActor("bench");
    await seedCatalog(db, actor);
    await createRegions(db, actor, [
      { code: "CN", name: "中国", level: "COUNTRY" },
      { code: "330000", name: "浙江省", level: "PROVINCE", parentCode: "CN", latitude: 30.27, longitude: 120.15 },
      { code: "330100", name: "杭州市", level: "CITY", parentCode: "330000" },
      { code: "330102", name: "上城区", level: "COUNTY", parentCode: "330100" },
      { code: "330106", name: "西湖区", level: "COUNTY", parentCode: "330100" },
      { code: "330110", name: "余杭区", level: "COUNTY", parentCode: "330100" },
    ]);
    const counties = ["330102", "330106", "330110"];
    const orgs: Reporter[] = [];
    for (let o = 1; o <= orgCount; o++) {
      const org = await createOrganization(db, actor, { name: `Bench Mask Works ${o}`, kind: "MANUFACTURER", contactEmail: `ops${o}@bench.example` });
      const sites: Site[] = [];
      for (let i = 1; i <= siteCount; i++) {
        const code = `BENCH-${o}-${String(i).padStart(3, "0")}`;
        const site = await createSite(db, actor, { organizationId: org.id, code, name: `Plant ${i}`, regionCode: counties[i % counties.length]! });
        sites.push({ id: site.id, code: site.code });
      }
      const user = await createUser(db, actor, { name: `Bench reporter ${o}`, email: `reporter${o}@bench.example`, role: "REPORTER", organizationId: org.id });
      const { token } = await createApiToken(db, actor, { userId: user.id, name: "bench" });
      const viewer = await authenticate(db, token);
      if (!viewer) throw new Error("the freshly created API token does not authenticate");
      orgs.push({ sites, token, viewer });
    }
    const products = (await db.query.productTable.findMany({ columns: { id: true, code: true, baseUnit: true }, orderBy: { code: "asc" } })) as Product[];
    return { orgs, products };
  } finally {
    await handle.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Contenders

interface Contender {
  name: ContenderName;
  /** Pid of a separate service process whose CPU and memory are measured, if any. */
  childPid?: number | undefined;
  runBatch(batch: Batch): Promise<void>;
  /** Called before each timed run; returns a note about the run, read after it. */
  beginRun?(): () => string;
  close(): Promise<void>;
}

function bareInsertContender(url: string, clients: number): Contender {
  const sql = connect(url, { max: clients, onnotice: () => {} });
  return {
    name: "baseline",
    async runBatch({ columns: c }) {
      await sql`
        insert into report (site_id, product_id, date, on_hand, produced, capacity_per_day, consumed, received, shipped, backlog, stockout_hours)
        select * from unnest(
          ${c.siteId}::uuid[], ${c.productId}::int[], ${c.date}::date[],
          ${c.onHand}::float8[], ${c.produced}::float8[], ${c.capacityPerDay}::float8[],
          ${c.consumed}::float8[], ${c.received}::float8[], ${c.shipped}::float8[],
          ${c.backlog}::float8[], ${c.stockoutHours}::float8[])`;
    },
    close: () => sql.end({ timeout: 5 }),
  };
}

/** Wraps `db.transaction` so the time spent from BEGIN to COMMIT is added up. */
function timingTransactions(db: Database, spent: { ms: number }): Database {
  return new Proxy(db, {
    get(target, prop, receiver) {
      if (prop !== "transaction") return Reflect.get(target, prop, receiver);
      const transaction: Database["transaction"] = async (work, config) => {
        const t0 = performance.now();
        try {
          return await target.transaction(work, config);
        } finally {
          spent.ms += performance.now() - t0;
        }
      };
      return transaction;
    },
  });
}

const NO_FLAGS: readonly string[] = Object.freeze([]);
const BACKFILL_ONLY: readonly string[] = Object.freeze(["BACKFILL"]);

/**
 * The storage step alone: the very INSERT statement submitReports sends for new reports
 * (`insertNewReports`, imported, not copied), with the rows already validated and merged, as the
 * service has them at that point. Autocommit, like the bare insert.
 */
function writeContender(url: string, clients: number, userId: string, backfillBefore: number): Contender {
  const handle = openDatabase({ url, dataDir: "", poolSize: clients });
  const prepared = new Map<Batch, NewReport[]>();
  const rowsOf = (batch: Batch): NewReport[] => {
    let rows = prepared.get(batch);
    if (!rows) {
      const c = batch.columns;
      rows = c.siteId.map((siteId, i) => {
        const day = dayNumber(c.date[i]!);
        return {
          siteId,
          productId: c.productId[i]!,
          day,
          onHand: c.onHand[i]!, produced: c.produced[i]!, capacityPerDay: c.capacityPerDay[i]!, consumed: c.consumed[i]!,
          received: c.received[i]!, shipped: c.shipped[i]!, backlog: c.backlog[i]!, stockoutHours: c.stockoutHours[i]!,
          // Shared frozen lists, as the service's flag computation gives them.
          flags: day < backfillBefore ? BACKFILL_ONLY : NO_FLAGS,
        };
      });
      prepared.set(batch, rows);
    }
    return rows;
  };
  return {
    name: "write",
    async runBatch(batch) {
      const ids = await insertNewReports(handle.db, userId, rowsOf(batch));
      if (ids.length !== batch.size) throw new Error(`insertNewReports stored ${ids.length} of ${batch.size} rows`);
    },
    close: () => handle.close(),
  };
}

function storageContender(url: string, clients: number, viewers: Viewer[]): Contender {
  const handle = openDatabase({ url, dataDir: "", poolSize: clients });
  const inTransaction = { ms: 0 };
  const inCall = { ms: 0 };
  const db = timingTransactions(handle.db, inTransaction);
  return {
    name: "storage",
    async runBatch(batch) {
      const t0 = performance.now();
      const result = await submitReports(db, { viewer: viewers[batch.org]! }, batch.inputs, { backfillDays: BACKFILL_DAYS });
      inCall.ms += performance.now() - t0;
      if (result.accepted !== batch.size || result.rejected.length) {
        throw new Error(`submitReports accepted ${result.accepted} of ${batch.size}; first rejections: ${JSON.stringify(result.rejected.slice(0, 3))}`);
      }
    },
    beginRun() {
      inTransaction.ms = 0;
      inCall.ms = 0;
      return () =>
        `${((100 * inTransaction.ms) / inCall.ms).toFixed(1)} % of the time in submitReports is inside db.transaction (BEGIN…COMMIT); ` +
        `the rest is the per-row validation before it`;
    },
    close: () => handle.close(),
  };
}

export interface ApiChild {
  child: ChildProcess;
  port: number;
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts `node --import tsx src/main.ts api` (or another mode: bench scale starts workers too)
 * against the bench database and waits for /readyz.
 */
export async function startApi(url: string, extraNodeArgs: string[] = [], { mode = "api", env = {} }: { mode?: "api" | "worker"; env?: Record<string, string> } = {}): Promise<ApiChild> {
  const port = await freePort();
  const child = spawn(process.execPath, [...extraNodeArgs, "--import", "tsx", "src/main.ts", mode], {
    cwd: PROJECT_ROOT,
    env: {
      ...process.env,
      DATABASE_URL: url,
      REDIS_URL,
      PORT: String(port),
      HOST: "127.0.0.1",
      LOG_LEVEL: "warn",
      NODE_ENV: "production",
      DATABASE_POOL_SIZE: "8",
      // Production refuses to start without its own key; this one only lives as long as the bench.
      SECRET_KEY: randomBytes(32).toString("base64"),
      // The bench measures throughput: one token may send far more batches than a reporter would.
      RATE_LIMIT_WRITES_PER_MINUTE: "1000000",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let tail = "";
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-8000);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const api: ApiChild = {
    child,
    port,
    output: () => tail,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the API process exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${tail}`);
    }
    try {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`);
      if (res.status === 200) break;
      await res.arrayBuffer();
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await api.stop();
      throw new Error(`the API process was not ready within 90 s:\n${tail}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return api;
}

interface SubmitResponse {
  data?: { submitReports?: { accepted: number; rejected: { index: number; message: string }[] } | null } | null;
  errors?: { message: string }[];
}

export function httpContender(api: ApiChild, tokens: string[]): Contender {
  return {
    name: "http",
    childPid: api.child.pid,
    async runBatch(batch) {
      const res = await postGraphql(api.port, tokens[batch.org]!, batch.body);
      const text = res.body;
      let body: SubmitResponse;
      try {
        body = JSON.parse(text) as SubmitResponse;
      } catch {
        throw new Error(`HTTP ${res.status}, not JSON: ${text.slice(0, 500)}`);
      }
      const payload = body.data?.submitReports;
      if (res.status !== 200 || body.errors?.length || !payload || payload.accepted !== batch.size || payload.rejected.length) {
        throw new Error(
          `submitReports over HTTP failed for a batch of ${batch.size}: HTTP ${res.status}, ` +
            `accepted ${payload?.accepted ?? "-"}, rejected ${JSON.stringify(payload?.rejected.slice(0, 3) ?? [])}, ` +
            `errors ${JSON.stringify(body.errors?.slice(0, 3) ?? [])}`,
        );
      }
    },
    close: () => {
      closeHttpClients();
      return api.stop();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Running

/** Runs every batch once, `clients` at a time, each client taking the next unsent batch. */
export async function runAll(contender: Contender, batches: Batch[], clients: number): Promise<void> {
  let next = 0;
  const client = async () => {
    while (next < batches.length) await contender.runBatch(batches[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(clients, batches.length) }, client));
}

interface RunResult {
  seconds: number;
  cpu: CpuSpent;
  note: string | undefined;
  /** Autovacuum and autoanalyze runs on `report` that finished during the run. */
  autovacuums: { vacuum: number; analyze: number };
}

interface ContenderResult {
  name: ContenderName;
  rows: number;
  runs: RunResult[];
  median: RunResult;
  childPeakRssMiB?: number | undefined;
}

const median = (runs: RunResult[]) => [...runs].sort((a, b) => a.seconds - b.seconds)[Math.floor((runs.length - 1) / 2)]!;

interface Control {
  /** Empties the tables a batch writes to and checkpoints, so every run starts alike. */
  reset(): Promise<void>;
  countReports(): Promise<number>;
  /** PostgreSQL processes working for the benchmark: its database's backends and the writers. */
  postgresPids(): Promise<number[]>;
  /** How often autovacuum has vacuumed and analysed `report` so far. */
  autovacuums(): Promise<{ vacuum: number; analyze: number }>;
}

/**
 * Times every contender `options.repeat` times, in rounds (each contender once per round, in
 * turn), so a slow spell of the shared machine falls on all of them rather than on one.
 */
async function measureInRounds(contenders: Contender[], batches: Batch[], rows: number, options: Options, control: Control): Promise<ContenderResult[]> {
  const { reset, countReports } = control;
  if (options.warmup > 0) {
    for (const contender of contenders) {
      await reset();
      await runAll(contender, batches.slice(0, options.warmup), options.clients);
    }
  }
  const runs = contenders.map((): RunResult[] => []);
  for (let r = 0; r < options.repeat; r++) {
    for (const [i, contender] of contenders.entries()) {
      await reset();
      const readNote = contender.beginRun?.();
      const vacuumsBefore = await control.autovacuums();
      const pids = await control.postgresPids();
      const before = cpuSnapshot(contender.childPid, pids);
      const t0 = performance.now();
      await runAll(contender, batches, options.clients);
      const seconds = (performance.now() - t0) / 1000;
      const after = cpuSnapshot(contender.childPid, [...new Set([...pids, ...(await control.postgresPids())])]);
      const cpu = cpuSpent(before, after);
      const vacuums = await control.autovacuums();
      const stored = await countReports();
      if (stored !== rows) throw new Error(`${contender.name}: expected ${rows} reports stored, found ${stored}`);
      const av = { vacuum: vacuums.vacuum - vacuumsBefore.vacuum, analyze: vacuums.analyze - vacuumsBefore.analyze };
      runs[i]!.push({ seconds, cpu, note: readNote?.(), autovacuums: av });
      console.log(
        `  ${contender.name} run ${r + 1}/${options.repeat}: ${seconds.toFixed(2)} s, ${Math.round(rows / seconds).toLocaleString("en")} rows/s` +
          ` (autovacuum on report: ${av.vacuum} vacuum, ${av.analyze} analyze; other processes ${fmt(cpu.other)} CPU s)`,
      );
    }
  }
  return contenders.map((contender, i) => ({
    name: contender.name,
    rows,
    runs: runs[i]!,
    median: median(runs[i]!),
    childPeakRssMiB: contender.childPid === undefined ? undefined : peakRssMiB(contender.childPid),
  }));
}

function table(header: string[], rows: string[][], rightAligned: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (rightAligned[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(" | ")} |`;
  const rule = `|${widths.map((w, i) => (rightAligned[i] ? `${"-".repeat(w + 1)}:` : `${"-".repeat(w + 2)}`)).join("|")}|`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}

const fmt = (n: number | undefined, digits = 2) => (n === undefined ? "-" : n.toFixed(digits));

function report(results: ContenderResult[], options: Options, benchPeakRss: number | undefined): void {
  const base = results.find((r) => r.name === "baseline");
  const rate = (r: ContenderResult) => r.rows / r.median.seconds;
  console.log("\nThroughput (median of %d timed runs; %d clients, batches of %d rows):\n", options.repeat, options.clients, options.batch);
  console.log(
    table(
      ["contender", "rows", "seconds (median)", "rows/s", "ratio to baseline", "all runs (s)"],
      results.map((r) => [
        LABEL[r.name],
        r.rows.toLocaleString("en"),
        r.median.seconds.toFixed(2),
        Math.round(rate(r)).toLocaleString("en"),
        base ? (rate(r) / rate(base)).toFixed(2) : "-",
        r.runs.map((x) => x.seconds.toFixed(2)).join(", "),
      ]),
      [false, true, true, true, true, false],
    ),
  );
  console.log(
    `\nCPU seconds spent during the median run (${availableParallelism()} CPUs = ${availableParallelism()} CPU-seconds per wall second at most; ` +
      `PostgreSQL = the bench database's backends and the WAL/checkpoint writers):\n`,
  );
  console.log(
    table(
      ["contender", "wall s", "bench process", "API child", "PostgreSQL", "other processes", "machine busy", "our CPU s per 10k rows"],
      results.map((r) => {
        const c = r.median.cpu;
        const ours = c.bench + (c.api ?? 0) + (c.postgres ?? 0);
        return [
          LABEL[r.name],
          r.median.seconds.toFixed(2),
          fmt(c.bench),
          fmt(c.api),
          fmt(c.postgres),
          fmt(c.other),
          c.machineBusy === undefined ? "-" : `${(100 * c.machineBusy).toFixed(0)} %`,
          fmt((ours * 10_000) / r.rows, 3),
        ];
      }),
      [false, true, true, true, true, true, true, true],
    ),
  );
  const others = results.filter((r) => r.median.cpu.otherByCommand.length);
  if (others.length) {
    console.log("\nOther processes during the median runs (CPU s; not part of the benchmark, they only compete for the cores):");
    for (const r of others) {
      console.log(`  ${LABEL[r.name]}: ${r.median.cpu.otherByCommand.slice(0, 5).map((o) => `${o.comm} ${o.cpu.toFixed(2)}`).join(", ")}`);
    }
  }
  for (const r of results) if (r.median.note) console.log(`\n${LABEL[r.name]}: ${r.median.note}`);
  console.log("");
  const goal = (name: ContenderName, label: string, target: number) => {
    const r = results.find((x) => x.name === name);
    if (!r || !base) return;
    const ratio = rate(r) / rate(base);
    console.log(`${label} / bare insert = ${ratio.toFixed(2)} (goal >= ${target}) ${ratio >= target ? "met" : "MISSED"}`);
  };
  goal("http", "HTTP GraphQL path", 0.5);
  goal("write", "storage step (the set-based write)", 0.9);
  const service = results.find((x) => x.name === "storage");
  if (service && base) console.log(`whole service call / bare insert = ${(rate(service) / rate(base)).toFixed(2)} (no goal; the storage step plus validation, lookups, locks, reads, outbox, audit)`);
  console.log("");
  console.log(`peak RSS of the bench process: ${fmt(benchPeakRss, 0)} MiB (holds the generated rows of every contender)`);
  const http = results.find((r) => r.name === "http");
  if (http) console.log(`peak RSS of the API child: ${fmt(http.childPeakRssMiB, 0)} MiB (VmHWM)`);
}

export async function runIngestBench(argv: string[]): Promise<void> {
  const options = parseOptions(argv);
  const dbName = `supply_bench_${randomBytes(5).toString("hex")}`;
  const url = databaseUrl(dbName);
  const admin = connect(ADMIN_URL, { max: 1, onnotice: () => {} });
  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async () => {
    for (const step of cleanups.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        console.error(`cleanup: ${(error as Error).message}`);
      }
    }
  };
  const onSignal = () => {
    console.error("\ninterrupted: stopping the API process and dropping the bench database");
    void cleanup().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  cleanups.push(() => admin.end({ timeout: 5 }));
  try {
    const [{ version }] = (await admin`select current_setting('server_version') as version`) as unknown as [{ version: string }];
    await admin.unsafe(`create database "${dbName}"`);
    cleanups.push(async () => {
      await admin.unsafe(`drop database if exists "${dbName}" with (force)`);
      console.log(`dropped database ${dbName}`);
    });
    console.log(
      `database ${dbName} (PostgreSQL ${version}), node ${process.version}, ${availableParallelism()} CPUs, ` +
        `load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}, ${options.rows.toLocaleString("en")} rows`,
    );

    const world = await seed(url, options.sites, options.orgs);
    // Each organization reports its share of the rows; their batches are interleaved, so the
    // clients, each taking the next batch, mostly carry different organizations' batches at once.
    const perOrg = world.orgs.map((o, i) =>
      generateBatches(Math.ceil(options.rows / options.orgs), options.batch, o.sites, world.products, i),
    );
    const batches: Batch[] = [];
    for (let i = 0; batches.length < perOrg.reduce((n, g) => n + g.batches.length, 0); i++) {
      for (const g of perOrg) if (g.batches[i]) batches.push(g.batches[i]!);
    }
    const { firstDay, lastDay } = perOrg[0]!;
    console.log(
      `seeded ${world.orgs.length} organizations x ${options.sites} sites x ${world.products.length} products; ${batches.length} batches of ${options.batch}, ` +
        `days ${firstDay} .. ${lastDay}, ordered day by day`,
    );

    const control = connect(url, { max: 1, onnotice: () => {} });
    cleanups.push(() => control.end({ timeout: 5 }));
    const controlPid = Number((await control`select pg_backend_pid() as pid`)[0]!.pid);
    const reset = async () => {
      // audit_log is append-only (a trigger refuses TRUNCATE); its one row per batch does not weigh on the runs.
      await control`truncate report, report_revision, outbox, idempotency_key restart identity cascade`;
      await control`checkpoint`;
    };
    const ctl: Control = {
      reset,
      countReports: async () => Number((await control`select count(*)::int as n from report`)[0]!.n),
      autovacuums: async () => {
        const [row] = await control`select autovacuum_count::int as vacuum, autoanalyze_count::int as analyze
                                    from pg_stat_user_tables where relname = 'report'`;
        return { vacuum: Number(row?.vacuum ?? 0), analyze: Number(row?.analyze ?? 0) };
      },
      postgresPids: () => postgresPidsFor(admin, dbName, controlPid),
    };

    const contenders: Contender[] = [];
    let results: ContenderResult[];
    try {
      for (const name of options.only) {
        if (name === "baseline") contenders.push(bareInsertContender(url, options.clients));
        else if (name === "write") {
          // The service flags reports older than its backfill window; the prepared rows carry the same flag.
          const backfillBefore = dayNumber(localToday(new Date(), "Asia/Shanghai")) - BACKFILL_DAYS;
          contenders.push(writeContender(url, options.clients, world.orgs[0]!.viewer.userId, backfillBefore));
        } else if (name === "storage") contenders.push(storageContender(url, options.clients, world.orgs.map((o) => o.viewer)));
        else {
          const api = await startApi(url);
          cleanups.push(() => api.stop());
          contenders.push(httpContender(api, world.orgs.map((o) => o.token)));
        }
      }
      console.log(`\nruns, in rounds of ${options.only.map((n) => LABEL[n]).join(" / ")}:`);
      results = await measureInRounds(contenders, batches, options.rows, options, ctl);
    } finally {
      for (const contender of contenders) await contender.close();
    }
    report(results, options, peakRssMiB("self"));

    if (options.profile) await profileRuns(url, world, batches, options, reset);
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    await cleanup();
  }
}

/** One extra, untimed run each of the storage step and of the HTTP path, under a CPU profiler. */
async function profileRuns(url: string, world: World, batches: Batch[], options: Options, reset: () => Promise<void>): Promise<void> {
  console.log("\nProfiles (one extra run each, not part of the figures above):\n");
  if (options.only.includes("storage")) {
    const contender = storageContender(url, options.clients, world.orgs.map((o) => o.viewer));
    try {
      await reset();
      await runAll(contender, batches.slice(0, options.warmup), options.clients);
      await reset();
      const { profile } = await profileInProcess(() => runAll(contender, batches, options.clients));
      console.log(formatProfile("storage step, bench process", summarizeProfile(profile)));
    } finally {
      await contender.close();
    }
  }
  if (options.only.includes("http")) {
    const dir = mkdtempSync(path.join(tmpdir(), "supply-bench-prof-"));
    try {
      const api = await startApi(url, ["--cpu-prof", "--cpu-prof-dir", dir, "--cpu-prof-interval", "1000"]);
      const contender = httpContender(api, world.orgs.map((o) => o.token));
      let cpu = 0;
      const window = { fromUs: 0, toUs: Number.MAX_SAFE_INTEGER };
      try {
        await reset();
        await runAll(contender, batches.slice(0, options.warmup), options.clients);
        await reset();
        const before = processCpuSeconds(api.child.pid!) ?? 0;
        const t0 = performance.now();
        window.fromUs = Number(process.hrtime.bigint() / 1000n);
        await runAll(contender, batches, options.clients);
        window.toUs = Number(process.hrtime.bigint() / 1000n);
        cpu = (processCpuSeconds(api.child.pid!) ?? 0) - before;
        console.log(`\nHTTP run under the profiler: ${((performance.now() - t0) / 1000).toFixed(2)} s wall, API child ${cpu.toFixed(2)} CPU s`);
      } finally {
        await contender.close();
      }
      const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
      if (!file) throw new Error(`the API process wrote no CPU profile into ${dir}:\n${api.output()}`);
      const profile = JSON.parse(readFileSync(path.join(dir, file), "utf8")) as CpuProfile;
      if (options.profileDir) {
        mkdirSync(options.profileDir, { recursive: true });
        const kept = path.join(options.profileDir, `api-${new Date().toISOString().replace(/[:.]/g, "-")}.cpuprofile`);
        copyFileSync(path.join(dir, file), kept);
        console.log(`API child profile kept in ${kept}`);
      }
      console.log(formatProfile("API child, during the run", summarizeProfile(profile, window)));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

// Real processes and real faults on loopback: the service's own entry point (`src/main.ts`) in
// child processes, a private Redis with an append-only file on its own port that can be stopped
// and started, and a TCP proxy in front of PostgreSQL that can cut every connection.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import type { Database } from "../../src/db/index.js";
import { freePort } from "../../src/redis.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** A TCP proxy: `cut()` drops every connection and refuses new ones, as a network partition would. */
export class TcpProxy {
  private server: Server | undefined;
  private sockets = new Set<Socket>();
  private down = false;
  port = 0;
  constructor(private readonly targetPort: number) {}

  async listen(): Promise<number> {
    this.server = createServer((client) => {
      if (this.down) return client.destroy();
      const upstream = createConnection({ host: "127.0.0.1", port: this.targetPort });
      this.sockets.add(client).add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on("error", drop).on("close", drop);
      upstream.on("error", drop).on("close", drop);
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.port = (this.server!.address() as { port: number }).port;
    return this.port;
  }
  cut() {
    this.down = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
  restore() {
    this.down = false;
  }
  async close() {
    this.cut();
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

/** A private redis-server with an append-only file, on its own port, that can be stopped and started again. */
export class PrivateRedis {
  private child: ChildProcess | undefined;
  readonly dir = mkdtempSync(path.join(tmpdir(), "supply-faults-redis-"));
  port = 0;
  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    this.port ||= await freePort();
    const child = spawn("redis-server", ["--port", String(this.port), "--bind", "127.0.0.1", "--dir", this.dir, "--appendonly", "yes", "--appendfsync", "always", "--save", ""], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      let out = "";
      child.stdout!.on("data", (c: Buffer) => {
        out += c.toString();
        if (out.includes("Ready to accept connections")) resolve();
      });
      child.once("exit", (code) => reject(new Error(`redis-server exited with ${code}: ${out.slice(-400)}`)));
    });
    child.stdout!.resume();
    child.stderr!.resume();
  }
  /** SIGTERM: Redis writes its append-only file and exits, as a restart by an operator would. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
  }
  async close() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface ServiceProcess {
  child: ChildProcess;
  port: number;
  /** What it printed (JSON log lines), for the failure message. */
  output(): string;
  /** Resolves when it has exited. */
  exited: Promise<number | null>;
}

/** Starts `src/main.ts <mode>` with the given environment; resolves once it answers /healthz. */
export async function startService(mode: "api" | "worker" | "all" | "migrate", env: Record<string, string>): Promise<ServiceProcess> {
  const port = mode === "migrate" ? 0 : await freePort();
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", mode], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", NODE_ENV: "test", LOG_LEVEL: "warn", PORT: String(port), HOST: "127.0.0.1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (c: Buffer) => (output = (output + c.toString()).slice(-20_000)));
  child.stderr!.on("data", (c: Buffer) => (output = (output + c.toString()).slice(-20_000)));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const service: ServiceProcess = { child, port, output: () => output, exited };
  if (mode === "migrate") return service;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${mode} exited with ${child.exitCode} before it was ready:\n${output}`);
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false);
    if (ok) return service;
    if (Date.now() > deadline) throw new Error(`${mode} did not answer /healthz within 60 s:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function stopService(service: ServiceProcess | undefined, signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
  if (!service || service.child.exitCode !== null || service.child.signalCode !== null) return service?.child.exitCode ?? null;
  service.child.kill(signal);
  return service.exited;
}

export interface Row {
  siteCode: string;
  productCode: string;
  date: string;
  onHand: number;
  consumed: number;
}

/**
 * Sends report batches as a careful client does: each batch with its own idempotency key, sent
 * again with the same key after any failure (a refused connection, a 5xx, an "unavailable, retry"
 * answer) until it is acknowledged. Counts what was acknowledged and what it took.
 */
export class Reporter {
  acknowledged: Row[] = [];
  /** When each batch was acknowledged. */
  ackTimes: number[] = [];
  attempts = 0;
  failures = new Map<string, number>();

  constructor(
    private readonly urls: () => string[],
    private readonly token: string,
  ) {}

  /** How long after `since` the first batch was acknowledged. */
  firstAckAfter(since: number): number | null {
    const after = this.ackTimes.filter((t) => t >= since);
    return after.length ? Math.min(...after) - since : null;
  }

  async send(rows: Row[], giveUpAfterMs = 60_000): Promise<void> {
    const key = randomUUID();
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      const urls = this.urls();
      const url = urls[attempt % urls.length]!;
      this.attempts++;
      let problem: string;
      try {
        const response = await fetch(`${url}/graphql`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${this.token}` },
          body: JSON.stringify({
            query: "mutation($r: [ReportInput!]!, $k: String) { submitReports(reports: $r, idempotencyKey: $k) { accepted rejected { index message } } }",
            variables: { r: rows, k: key },
          }),
          signal: AbortSignal.timeout(15_000),
        });
        const body = (await response.json().catch(() => ({}))) as { data?: any; errors?: { message: string; extensions?: { code?: string } }[] };
        if (response.ok && body.data?.submitReports) {
          const r = body.data.submitReports;
          if (r.rejected.length) throw new Error(`rows refused: ${JSON.stringify(r.rejected.slice(0, 3))}`);
          this.acknowledged.push(...rows);
          this.ackTimes.push(Date.now());
          return;
        }
        problem = `HTTP ${response.status} ${body.errors?.[0]?.extensions?.code ?? ""} ${body.errors?.[0]?.message ?? ""}`.trim();
      } catch (error) {
        if ((error as Error).message.startsWith("rows refused")) throw error;
        problem = (error as Error & { cause?: { code?: string } }).cause?.code ?? (error as Error).name;
      }
      this.failures.set(problem, (this.failures.get(problem) ?? 0) + 1);
      if (Date.now() - started > giveUpAfterMs) throw new Error(`a batch was not acknowledged within ${giveUpAfterMs} ms; last problem: ${problem}`);
      await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** Math.min(attempt, 5))));
    }
  }
}

/** Unique rows: one per (site, product, day), so each acknowledged row must be stored exactly once. */
export function rowsFor(sites: string[], products: string[], startDay: number, count: number, dayOf: (n: number) => string): Row[] {
  const rows: Row[] = [];
  for (let i = 0; rows.length < count; i++) {
    const site = sites[i % sites.length]!;
    const product = products[Math.floor(i / sites.length) % products.length]!;
    const day = startDay + Math.floor(i / (sites.length * products.length));
    rows.push({ siteCode: site, productCode: product, date: dayOf(day), onHand: 1000 + (i % 97), consumed: 10 + (i % 7) });
  }
  return rows;
}

export interface Verdict {
  acknowledged: number;
  stored: number;
  duplicated: number;
  lost: number;
  /** (region, product) pairs whose latest forecast did not see their last report. */
  staleForecasts: number;
  duplicateAlerts: number;
}

/** Waits until the relay and the forecast job have caught up (nothing left in the outbox or dirty). */
export async function waitQuiet(db: Database, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [s] = await db.execute<{ pending: number; dirty: number }>(
      sql`select (select count(*) from outbox where processed_at is null)::int as pending, (select count(*) from forecast_dirty)::int as dirty`,
      "objects",
    );
    if (s!.pending === 0 && s!.dirty === 0) return;
    if (Date.now() > deadline) throw new Error(`not caught up after ${timeoutMs} ms: ${s!.pending} outbox events, ${s!.dirty} dirty pairs`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function verdict(db: Database, acknowledged: Row[]): Promise<Verdict> {
  const key = (r: { siteCode: string; productCode: string; date: string }) => `${r.siteCode}|${r.productCode}|${r.date}`;
  const stored = await db.execute<{ k: string; revision: number; on_hand: number }>(
    sql`select s.code || '|' || p.code || '|' || r.date::text as k, r.revision, r.on_hand
        from report r join site s on s.id = r.site_id join product p on p.id = r.product_id`,
    "objects",
  );
  const byKey = new Map(stored.map((r) => [r.k, r]));
  let lost = 0;
  let duplicated = 0;
  for (const row of acknowledged) {
    const s = byKey.get(key(row));
    if (!s || s.on_hand !== row.onHand) lost++;
    // Each row was sent in one batch under one idempotency key: a second revision means it was applied twice.
    else if (s.revision > 1) duplicated++;
  }
  const [stale] = await db.execute<{ n: number }>(
    sql`select count(*)::int as n from (
          select s.region_id, r.product_id, max(r.submitted_at) as last_report
          from report r join site s on s.id = r.site_id group by 1, 2
        ) x left join forecast_latest l on l.region_id = x.region_id and l.product_id = x.product_id
        left join forecast f on f.id = l.forecast_id
        where f.id is null or f.input_cutoff < x.last_report`,
    "objects",
  );
  const [dups] = await db.execute<{ n: number }>(
    sql`select (select count(*) from (select dedupe_key from alert where status <> 'RESOLVED' group by 1 having count(*) > 1) d)::int
             + (select count(*) from (select alert_id, type, created_at from alert_event group by 1, 2, 3 having count(*) > 1) e)::int as n`,
    "objects",
  );
  return { acknowledged: acknowledged.length, stored: stored.length, duplicated, lost, staleForecasts: stale!.n, duplicateAlerts: dups!.n };
}

export const uniquePrefix = () => `{faults-${randomBytes(4).toString("hex")}}`;

/**
 * Work done twice, counted in the database (every figure should be 0):
 * - `forecastsPerRun`: (region, product, run) with more than one forecast;
 * - `overlappingForecasts`: pairs forecast by two runs that overlapped in time (two workers on one pair at once);
 * - `forecastsSince`: with `since`, pairs forecast more than once since then (a full recompute computes each once);
 * - `matches`: a proposal for one supplier, destination and request made more than once;
 * - `alerts`: a dedupe key with two unresolved alerts, or an alert raised (or escalated at one moment) twice;
 * - `deliveries`: an alert event sent twice to one recipient on one channel.
 */
export interface DoubleWork {
  forecastsPerRun: number;
  overlappingForecasts: number;
  forecastsSince: number | null;
  matches: number;
  alerts: number;
  deliveries: number;
}

export async function doubleWork(db: Database, since?: Date): Promise<DoubleWork> {
  const [row] = await db.execute<Record<keyof DoubleWork, number | null>>(
    sql`select
          (select count(*) from (select 1 from forecast group by run_id, region_id, product_id having count(*) > 1) x)::int as "forecastsPerRun",
          (select count(*) from forecast a join forecast b on b.region_id = a.region_id and b.product_id = a.product_id and b.id > a.id
             join forecast_run ra on ra.id = a.run_id join forecast_run rb on rb.id = b.run_id
           where ra.started_at < rb.finished_at and rb.started_at < ra.finished_at)::int as "overlappingForecasts",
          ${since
            ? sql`(select count(*) from (select 1 from forecast where computed_at >= ${since.toISOString()}::timestamptz group by region_id, product_id having count(*) > 1) x)::int`
            : sql`null::int`} as "forecastsSince",
          (select count(*) from (select 1 from match where status = 'PROPOSED'
             group by product_id, kind, from_site_id, to_region_id, to_site_id, request_id having count(*) > 1) x)::int as "matches",
          ((select count(*) from (select 1 from alert where status <> 'RESOLVED' group by dedupe_key having count(*) > 1) x)
           + (select count(*) from (select 1 from alert_event where type = 'RAISED' group by alert_id having count(*) > 1) x)
           + (select count(*) from (select 1 from alert_event group by alert_id, type, created_at having count(*) > 1) x))::int as "alerts",
          (select count(*) from (select 1 from delivery group by alert_event_id, channel, webhook_id, user_id having count(*) > 1) x)::int as "deliveries"`,
    "objects",
  );
  return row as unknown as DoubleWork;
}

/**
 * Waits until nothing is left to do: no outbox event or dirty forecast pair in Postgres, and no
 * job waiting, running or delayed in the queues (the schedulers' next runs aside), twice in a row.
 */
export async function waitAllDone(db: Database, queues: { getJobs(types: ("waiting" | "active" | "delayed" | "prioritized" | "waiting-children")[]): Promise<({ id?: string | undefined } | undefined)[]> }[], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let quietChecks = 0;
  for (;;) {
    const [s] = await db.execute<{ pending: number; dirty: number }>(
      sql`select (select count(*) from outbox where processed_at is null)::int as pending, (select count(*) from forecast_dirty)::int as dirty`,
      "objects",
    );
    let jobs = 0;
    for (const q of queues) jobs += (await q.getJobs(["waiting", "active", "delayed", "prioritized", "waiting-children"])).filter((j) => j && !j.id?.startsWith("repeat:")).length;
    quietChecks = s!.pending === 0 && s!.dirty === 0 && jobs === 0 ? quietChecks + 1 : 0;
    if (quietChecks >= 2) return;
    if (Date.now() > deadline) throw new Error(`not done after ${timeoutMs} ms: ${s!.pending} outbox events, ${s!.dirty} dirty pairs, ${jobs} jobs`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

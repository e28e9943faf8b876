import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../src/db/index.js";
import type { ReportRowInput } from "../src/domain/reports/validate.js";
import { parseGenerateArgs } from "../src/tools/generate.js";
import {
  FINISHED_GOODS,
  MANUFACTURING_PROVINCES,
  PROVINCE_POPULATION_2020,
  generateNational,
  initialState,
  planNational,
  reportDay,
  resolveOptions,
  timeline,
  yesterdayUtc,
  type GenerateNationalResult,
} from "../src/tools/national-data.js";
import { createPgliteTestDatabase, createTestDatabase, type TestDatabase } from "./helpers/db.js";

const rows = <T extends Record<string, unknown>>(db: Database, query: ReturnType<typeof sql>) => db.execute<T>(query, "objects") as Promise<T[]>;
const one = async <T extends Record<string, unknown>>(db: Database, query: ReturnType<typeof sql>) => (await rows<T>(db, query))[0]!;

/** Everything a generation writes, counted: a refused run must change none of it. */
const footprint = (db: Database) =>
  one<Record<string, number>>(
    db,
    sql`select (select count(*)::int from site) as sites, (select count(*)::int from organization) as organizations,
               (select count(*)::int from report) as reports, (select count(*)::int from app_user) as users,
               (select count(*)::int from api_token) as tokens, (select count(*)::int from audit_log) as audit,
               (select count(*)::int from region) as regions, (select count(*)::int from product) as products,
               (select count(*)::int from outbox) as outbox`,
  );

/** Every stored figure of every report, as one digest: equal digests, equal data sets. */
const fingerprint = async (db: Database) =>
  (
    await one<{ md5: string }>(
      db,
      sql`select md5(string_agg(concat_ws('|', s.code, p.code, r.date, r.on_hand, r.produced, r.capacity_per_day, r.consumed,
                                          r.received, r.shipped, r.backlog, r.stockout_hours, r.quality_flags::text), ','
                                order by s.code, p.code, r.date)) as md5
          from report r join site s on s.id = r.site_id join product p on p.id = r.product_id`,
    )
  ).md5;

const root = fileURLToPath(new URL("..", import.meta.url));

/** The command with a bad option, as a child process (it must fail before opening any database). */
function runCliWithBadOption() {
  const env = { ...process.env, DATABASE_URL: "postgres://nobody@127.0.0.1:1/none" };
  return new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/tools/generate.ts", "--sites", "1.5", "--days", "3"], { cwd: root, env });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stderr }));
  });
}

// The small runs (PGlite, and PostgreSQL for comparison) and the command line run while the large
// run below writes: most of their time is PGlite's migration and starting tsx, not our work.
const smallOptions = { sites: 40, days: 5, products: 4, seed: 11, outbreakProvince: "44" };
let pglite: TestDatabase | undefined;
let postgresSmall: TestDatabase | undefined;
let small: Promise<[GenerateNationalResult, GenerateNationalResult]>;
let cli: ReturnType<typeof runCliWithBadOption>;
beforeAll(() => {
  cli = runCliWithBadOption();
  small = Promise.all([
    createPgliteTestDatabase().then((d) => generateNational((pglite = d).db, smallOptions)),
    createTestDatabase().then((d) => generateNational((postgresSmall = d).db, smallOptions)),
  ]);
  // Reported by the tests that await it.
  small.catch(() => {});
});
afterAll(async () => {
  await small.catch(() => {});
  await pglite?.drop();
  await postgresSmall?.drop();
});

describe("national data generator on PostgreSQL: 300 sites, 10 days", () => {
  let handle: TestDatabase;
  let db: Database;
  let result: GenerateNationalResult;
  const progress: { done: number; total: number }[] = [];

  beforeAll(async () => {
    handle = await createTestDatabase();
    db = handle.db;
    result = await generateNational(db, { sites: 300, days: 10, seed: 7, onProgress: (p) => progress.push(p) });
  });
  afterAll(() => handle?.drop());

  it("writes the sites and one report per series and day, none rejected, none flagged", async () => {
    expect(result).toMatchObject({ sites: 300, rejected: 0, outbreakProvince: "420000", lastDay: yesterdayUtc() });
    expect(result.regions).toBeGreaterThan(3000);
    const counts = await one<{ sites: number; reports: number; series: number; days: number; first: string; last: string; flagged: number }>(
      db,
      sql`select (select count(*)::int from site) as sites, count(*)::int as reports,
                 count(distinct (site_id, product_id))::int as series, count(distinct date)::int as days,
                 min(date)::text as first, max(date)::text as last,
                 count(*) filter (where quality_flags <> '{}')::int as flagged
          from report`,
    );
    expect(counts).toEqual({ sites: 300, reports: result.reports, series: result.reports / 10, days: 10, first: result.firstDay, last: result.lastDay, flagged: 0 });
    // Every series reports every day.
    const gaps = await one<{ n: number }>(db, sql`select count(*)::int as n from (select 1 from report group by site_id, product_id having count(*) <> 10) g`);
    expect(gaps.n).toBe(0);
    // Hospitals report each of the 10 finished goods; producers what they make and use.
    const byKind = await rows<{ kind: string; sites: number; reports: number; products: number }>(
      db,
      sql`select o.kind::text as kind, count(distinct s.id)::int as sites, count(r.id)::int as reports, count(distinct r.product_id)::int as products
          from site s join organization o on o.id = s.organization_id left join report r on r.site_id = s.id group by 1 order by 1`,
    );
    const kinds = Object.fromEntries(byKind.map((k) => [k.kind, k]));
    expect(kinds.HOSPITAL!.reports).toBe(kinds.HOSPITAL!.sites * 10 * 10);
    expect(kinds.HOSPITAL!.products).toBe(10);
    expect(kinds.MANUFACTURER!.sites).toBeGreaterThanOrEqual(10);
    expect(kinds.RAW_MATERIAL_SUPPLIER!.sites).toBeGreaterThanOrEqual(3);
    expect(byKind.reduce((n, k) => n + k.sites, 0)).toBe(300);
    expect(byKind.reduce((n, k) => n + k.reports, 0)).toBe(result.reports);
    expect(progress.at(-1)).toEqual({ done: result.reports, total: result.reports });
  });

  it("concentrates manufacturers in the manufacturing provinces and spreads hospitals over every province", async () => {
    const where = await rows<{ kind: string; province: string; sites: number }>(
      db,
      sql`select o.kind::text as kind, p.code as province, count(*)::int as sites
          from site s join organization o on o.id = s.organization_id join region r on r.id = s.region_id
          join region p on r.path ^@ p.path and p.level = 'PROVINCE'
          group by 1, 2`,
    );
    const manufacturers = where.filter((w) => w.kind === "MANUFACTURER");
    const inManufacturingProvinces = manufacturers.filter((w) => w.province in MANUFACTURING_PROVINCES).reduce((n, w) => n + w.sites, 0);
    const allManufacturers = manufacturers.reduce((n, w) => n + w.sites, 0);
    expect(inManufacturingProvinces / allManufacturers).toBeGreaterThanOrEqual(0.8);
    const hospitals = where.filter((w) => w.kind === "HOSPITAL");
    expect(hospitals.map((h) => h.province).sort()).toEqual(Object.keys(PROVINCE_POPULATION_2020).sort());
    // By population: Guangdong (126 M) has several times Tibet's (3.6 M) one or two hospitals.
    const count = (code: string) => hospitals.find((h) => h.province === code)!.sites;
    expect(count("440000")).toBeGreaterThan(4 * count("540000"));
    // Suppliers stand in a city where a manufacturer has a plant.
    const lonely = await one<{ n: number }>(
      db,
      sql`with placed as (
            select o.kind, case when r.level = 'COUNTY' then r.parent_id else r.id end as city
            from site s join organization o on o.id = s.organization_id join region r on r.id = s.region_id)
          select count(*)::int as n from placed sup
          where sup.kind = 'RAW_MATERIAL_SUPPLIER' and not exists (select 1 from placed m where m.kind = 'MANUFACTURER' and m.city = sup.city)`,
    );
    expect(lonely.n).toBe(0);
  });

  it("runs the outbreak wave in the chosen province: consumption peaks far above the others', stock-outs there", async () => {
    // Each province's peak day of hospital consumption of N95 respirators against its first day.
    const waves = await rows<{ province: string; rise: number; stockouts: number }>(
      db,
      sql`with daily as (
            select p.code as province, rp.date, sum(rp.consumed) as consumed, count(*) filter (where rp.stockout_hours > 0) as stockouts
            from report rp join product pr on pr.id = rp.product_id and pr.code = 'MASK-N95'
            join site s on s.id = rp.site_id join organization o on o.id = s.organization_id and o.kind = 'HOSPITAL'
            join region r on r.id = s.region_id join region p on r.path ^@ p.path and p.level = 'PROVINCE'
            group by 1, 2)
          select province, (max(consumed) / nullif(min(consumed) filter (where date = ${result.firstDay}::date), 0))::float8 as rise,
                 sum(stockouts)::int as stockouts
          from daily group by 1`,
    );
    const outbreak = waves.find((w) => w.province === "420000")!;
    const others = waves.filter((w) => w.province !== "420000");
    expect(outbreak.rise).toBeGreaterThan(4);
    expect(Math.max(...others.map((o) => o.rise))).toBeLessThan(outbreak.rise / 2);
    expect(outbreak.stockouts).toBeGreaterThan(0);
    expect(others.reduce((n, o) => n + o.stockouts, 0)).toBeLessThan(outbreak.stockouts / 10);
    // Deliveries replenish stock, and production stays within capacity.
    const flows = await one<{ deliveries: number; hospitalRows: number; overCapacity: number; produced: number }>(
      db,
      sql`select count(*) filter (where o.kind = 'HOSPITAL' and r.received > 0)::int as deliveries,
                 count(*) filter (where o.kind = 'HOSPITAL')::int as "hospitalRows",
                 count(*) filter (where r.produced > r.capacity_per_day)::int as "overCapacity",
                 count(*) filter (where r.produced > 0)::int as produced
          from report r join site s on s.id = r.site_id join organization o on o.id = s.organization_id`,
    );
    expect(flows.deliveries / flows.hospitalRows).toBeGreaterThan(0.1);
    expect(flows.deliveries / flows.hospitalRows).toBeLessThan(0.7);
    expect(flows.overCapacity).toBe(0);
    expect(flows.produced).toBeGreaterThan(0);
    // Mask plants report the melt-blown fabric they use.
    const meltblown = await one<{ n: number }>(
      db,
      sql`select count(distinct r.site_id)::int as n from report r join product p on p.id = r.product_id and p.code = 'MELTBLOWN-PP'
          join site s on s.id = r.site_id join organization o on o.id = s.organization_id and o.kind = 'MANUFACTURER'
          where r.consumed > 0`,
    );
    expect(meltblown.n).toBeGreaterThan(0);
  });

  it("refuses bad options and a second run, writing nothing", async () => {
    const before = await footprint(db);
    await expect(generateNational(db, { sites: 0, days: 10 })).rejects.toThrow(/sites must be a whole number from 1 to 200,000, got 0/);
    await expect(generateNational(db, { sites: 10, days: 1.5 })).rejects.toThrow(/days must be a whole number from 1 to 730, got 1.5/);
    await expect(generateNational(db, { sites: 10, days: 5, products: 11 })).rejects.toThrow(/products must be .* got 11 \(the catalog has 10 finished goods: MASK-SURGICAL/);
    await expect(generateNational(db, { sites: 10, days: 5, outbreakProvince: "330100" })).rejects.toThrow(
      /outbreakProvince must be the code of a province, got "330100"; one of 110000 北京市/,
    );
    await expect(generateNational(db, { sites: 10, days: 5 })).rejects.toThrow(
      /already holds 300 generated sites \(codes GEN-…\) with [\d,]+ reports from an earlier run; .*Generate into a new database/,
    );
    expect(await footprint(db)).toEqual(before);
  });
});

describe("the generator's command line", () => {
  it("parses options and explains each mistake", () => {
    expect(parseGenerateArgs(["--sites", "20,000", "--days", "25", "--seed", "3", "--outbreak-province", "44"])).toEqual({
      sites: 20_000, days: 25, seed: 3, outbreakProvince: "44",
    });
    expect(parseGenerateArgs(["--help"])).toEqual({ help: true });
    const refused = (argv: string[]) => {
      try {
        parseGenerateArgs(argv);
      } catch (error) {
        return (error as Error).message;
      }
      return "accepted";
    };
    expect(refused(["--sites", "300"])).toMatch(/^--days is required/);
    expect(refused(["--sites", "abc", "--days", "3"])).toBe('--sites must be a whole number from 1 to 200,000, got "abc"');
    expect(refused(["--sites", "3", "--days", "-2"])).toBe('--days must be a whole number from 1 to 730, got "-2"');
    expect(refused(["--sites", "3", "--days", "731"])).toBe('--days must be a whole number from 1 to 730, got "731"');
    expect(refused(["--sites", "3", "--days", "3", "--products", "0"])).toBe('--products must be a whole number from 1 to 10, got "0"');
    expect(refused(["--sites", "3", "--days", "3", "--bogus"])).toMatch(/^unknown option --bogus; the options are --sites, --days/);
    expect(refused(["--sites", "3", "--days", "3", "extra"])).toMatch(/^unexpected argument "extra"/);
    expect(refused(["--sites", "3", "--days", "3", "--outbreak-province", "99"])).toMatch(/^--outbreak-province must be the code of a province, got "99"/);
    expect(refused(["--sites", "3", "--days"])).toBe("--days needs a value, as in --sites 300 --days 10");
  });

  it("exits with 2 and the reason on a bad option, before opening any database", async () => {
    const { code, stderr } = await cli;
    expect(code).toBe(2);
    expect(stderr).toContain('error: --sites must be a whole number from 1 to 200,000, got "1.5"');
    expect(stderr).not.toMatch(/^\s+at /m);
  });
});

describe("figures from the seed", () => {
  it("are the same for the same seed and differ for another", () => {
    const figures = (seed: number) => {
      const options = resolveOptions({ ...smallOptions, seed });
      const plan = planNational(options);
      const time = timeline(options.days, "2020-02-10");
      const out: ReportRowInput[] = [];
      plan.sites.forEach((site, i) => {
        const state = initialState(site, i, seed, options.outbreakProvince);
        for (let t = 0; t < options.days; t++) reportDay(state, t, time, out);
      });
      return out;
    };
    expect(figures(11)).toEqual(figures(11));
    expect(figures(12)).not.toEqual(figures(11));
  });
});

describe("national data generator on the embedded PGlite database", () => {
  it("writes the same data set as PostgreSQL for the same seed", async () => {
    const [onPglite, onPostgres] = await small;
    expect(onPglite).toEqual(onPostgres);
    expect(onPglite).toMatchObject({ sites: 40, rejected: 0, outbreakProvince: "440000" });
    const counted = await one<{ n: number; products: number }>(
      pglite!.db,
      sql`select count(*)::int as n, count(distinct product_id) filter (where s.code like 'GEN-H-%')::int as products
          from report r join site s on s.id = r.site_id`,
    );
    expect(counted).toEqual({ n: onPglite.reports, products: 4 });
    expect(await fingerprint(pglite!.db)).toBe(await fingerprint(postgresSmall!.db));
    expect(FINISHED_GOODS.slice(0, 4)).toEqual(["MASK-SURGICAL", "MASK-N95", "MASK-KN95", "COVERALL-MEDICAL"]);
  });
});

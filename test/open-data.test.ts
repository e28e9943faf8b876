import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { parse } from "csv-parse/sync";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { recomputeDirty } from "../src/domain/forecast/pipeline.js";
import { OPEN_DATA_COLUMNS } from "../src/domain/open-data.js";
import { createOrganization, createSite } from "../src/domain/organizations.js";
import { relayOutbox } from "../src/domain/outbox.js";
import { refreshDirtyRollups } from "../src/domain/read-models.js";
import { submitReports } from "../src/domain/reports/ingest.js";
import type { ReportRowInput } from "../src/domain/reports/validate.js";
import { createHttpServer } from "../src/http/server.js";
import { createLogger } from "../src/logger.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { makeUser, seedWorld, setupActor, type World } from "./helpers/fixtures.js";

// Figures no derived value can produce by chance: if one shows up in the export, a reported figure leaked.
const SECRET_STOCK = 7_310_953;
const SECRET_USE = 413_297;

describe("open data", () => {
  let t: TestDatabase;
  let world: World;
  let server: Server;
  let base: string;
  const secrets: string[] = [];

  beforeAll(async () => {
    t = await createTestDatabase();
    world = await seedWorld(t.db);
    const admin = await makeUser(t.db, "ADMIN");
    // Xihu: the hospital and two more organizations (three: published). Shangcheng: one hospital
    // alone (suppressed), with personal contact details and recognizable figures.
    const loner = await createOrganization(t.db, setupActor, {
      name: "Shangcheng Lone Hospital", kind: "HOSPITAL",
      contactName: "Wang Xiaoming", contactEmail: "wang.xiaoming@lone.example", contactPhone: "+86 571 8888 0000",
    });
    const clinicA = await createOrganization(t.db, setupActor, { name: "Xihu Clinic A", kind: "HOSPITAL" });
    const clinicB = await createOrganization(t.db, setupActor, { name: "Xihu Clinic B", kind: "HOSPITAL" });
    const sites = [
      { org: world.hospital, code: world.hospitalSite.code, stock: 3000, use: 200 },
      { org: clinicA, code: "XH-CLINIC-A", stock: 1500, use: 100, region: "330106" },
      { org: clinicB, code: "XH-CLINIC-B", stock: 800, use: 50, region: "330106" },
      { org: loner, code: "SC-LONE-1", stock: SECRET_STOCK, use: SECRET_USE, region: "330102" },
    ];
    for (const s of sites) if (s.region) await createSite(t.db, setupActor, { organizationId: s.org.id, code: s.code, name: `${s.code} ward`, regionCode: s.region });
    secrets.push(
      ...sites.map((s) => s.code), ...sites.map((s) => s.org.name), "ward", "Wang Xiaoming", "wang.xiaoming", "8888", "lone.example",
      String(SECRET_STOCK), String(SECRET_USE), world.hospital.id, loner.id, clinicA.id, clinicB.id,
    );
    const today = new Date();
    const rows: ReportRowInput[] = [];
    for (let d = 20; d >= 1; d--) {
      const date = new Date(today.getTime() - d * 86_400_000).toISOString().slice(0, 10);
      for (const s of sites) rows.push({ siteCode: s.code, productCode: "MASK-N95", date, onHand: s.stock - (20 - d) * s.use * 0.1, consumed: s.use });
    }
    const r = await submitReports(t.db, admin.actor, rows, { backfillDays: 30 });
    expect(r.rejected).toEqual([]);
    while ((await relayOutbox(t.db, async () => {})).events > 0);
    await refreshDirtyRollups(t.db);
    await recomputeDirty(t.db, { trigger: "reports" });

    const config = loadConfig({ NODE_ENV: "test", LOG_LEVEL: "silent" });
    server = createHttpServer({ config, db: t.db, logger: createLogger(config), ready: async () => {} });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/open-data`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
    await t?.drop();
  });

  it("publishes the documented columns, in order, as CSV and as JSON, with the same rows", async () => {
    const csv = await fetch(`${base}/shortages.csv`);
    expect(csv.status).toBe(200);
    expect(csv.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    const text = await csv.text();
    const names = OPEN_DATA_COLUMNS.map(([n]) => n);
    expect(text.split("\n")[0]).toBe(names.join(","));
    const csvRows = parse(text, { columns: true }) as Record<string, string>[];

    const json = await fetch(`${base}/shortages.json`);
    expect(json.status).toBe(200);
    const body = (await json.json()) as { columns: { name: string; description: string }[]; rows: Record<string, unknown>[]; suppressionThreshold: number };
    expect(body.columns.map((c) => c.name)).toEqual(names);
    expect(body.suppressionThreshold).toBe(3);
    for (const row of body.rows) expect(Object.keys(row)).toEqual(names);
    expect(csvRows.map((r) => `${r.region_code}/${r.product_code}/${r.suppressed}`)).toEqual(
      body.rows.map((r) => `${r.region_code}/${r.product_code}/${r.suppressed}`),
    );
    // The whole tree of the reporting regions is there: country, province, city, both counties.
    expect(body.rows.filter((r) => r.product_code === "MASK-N95").map((r) => r.region_code).sort()).toEqual(["330000", "330100", "330102", "330106", "CN"]);
  });

  it("suppresses every cell with fewer than 3 reporting organizations, exactly those, and publishes the others", async () => {
    const body = (await (await fetch(`${base}/shortages.json?product=mask-n95`)).json()) as { rows: Record<string, unknown>[] };
    const byRegion = new Map(body.rows.map((r) => [r.region_code, r]));
    expect(byRegion.get("330102")).toMatchObject({ suppressed: true, risk_level: null, days_of_supply: null, stockout_date: null, stockout_probability_14d: null, reporting_completeness: null });
    expect(byRegion.get("330106")).toMatchObject({ suppressed: false, reporting_completeness: 1 });
    expect(byRegion.get("330106")!.risk_level).toMatch(/^(GREEN|BLUE|YELLOW|ORANGE|RED)$/);
    expect(typeof byRegion.get("330106")!.days_of_supply).toBe("number");
    // Checked against the raw reports, independently of the rollups: distinct organizations
    // reporting in the subtree on the last 7 days up to the newest day.
    for (const row of body.rows) {
      const [{ n }] = await t.db.execute<{ n: number }>(
        sql`select count(distinct s.organization_id)::int as n from report r join site s on s.id = r.site_id
            join region leaf on leaf.id = s.region_id join product p on p.id = r.product_id
            where p.code = ${row.product_code as string} and leaf.path ^@ (select path from region where code = ${row.region_code as string})
              and r.date > ${row.as_of as string}::date - 7 and r.date <= ${row.as_of as string}::date`,
        "objects",
      ) as [{ n: number }];
      expect(row.suppressed, `${row.region_code as string}: ${n} organizations`).toBe(n < 3);
      if (row.suppressed) for (const k of ["risk_level", "days_of_supply", "stockout_date", "stockout_probability_14d", "reporting_completeness"]) expect(row[k]).toBeNull();
    }
  });

  it("never shows an organization, a site, a person, an id or a reported figure", async () => {
    for (const format of ["csv", "json"]) {
      const text = await (await fetch(`${base}/shortages.${format}`)).text();
      for (const secret of secrets) expect(text.includes(secret), `${format} contains ${secret}`).toBe(false);
      // No uuid of anything, and no figure with more digits than a ratio or a day count has.
      expect(text).not.toMatch(/[0-9a-f]{8}-[0-9a-f]{4}-/i);
      // (Region codes, GB/T 2260, are six digits: taken out first.)
      const codes = (await t.db.execute<{ code: string }>(sql`select code from region`, "objects")).map((r) => r.code);
      const figures = codes.reduce((s, code) => s.replaceAll(code, ""), text).replace(/\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}Z)?/g, "");
      expect(figures).not.toMatch(/\d{5,}/);
    }
  });

  it("answers with cache headers, 304 for an unchanged ETag, HEAD without a body, and clear errors", async () => {
    const first = await fetch(`${base}/shortages.csv`);
    expect(first.headers.get("cache-control")).toBe("public, max-age=300");
    const etag = first.headers.get("etag")!;
    expect(etag).toMatch(/^"[\w-]+"$/);
    expect(first.headers.get("last-modified")).toMatch(/GMT$/);
    const again = await fetch(`${base}/shortages.csv`, { headers: { "if-none-match": etag } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe("");
    const head = await fetch(`${base}/shortages.json`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get("content-length"))).toBeGreaterThan(100);

    const unknown = await fetch(`${base}/shortages.csv?region=330000`);
    expect(unknown.status).toBe(400);
    expect(await unknown.text()).toMatch(/unknown query parameter "region".*product=CODE/);
    const bad = await fetch(`${base}/shortages.csv?product=${encodeURIComponent("x' or 1=1")}`);
    expect(bad.status).toBe(400);
    expect(await bad.text()).toMatch(/product must be a product code such as MASK-N95/);
    const post = await fetch(`${base}/shortages.json`, { method: "POST", body: "{}" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    // No token needed, and one given changes nothing.
    const withToken = await fetch(`${base}/shortages.csv`, { headers: { authorization: "Bearer nonsense" } });
    expect(withToken.status).toBe(200);
  });
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { relayOutbox, type RelayedJob } from "../src/domain/outbox.js";
import { rebuildReadModels, refreshDirtyRollups } from "../src/domain/read-models.js";
import { submitReports } from "../src/domain/reports/ingest.js";
import type { ReportRowInput } from "../src/domain/reports/validate.js";
import { createOrganization, createSite } from "../src/domain/organizations.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { makeUser, seedWorld, setupActor, type TestUser, type World } from "./helpers/fixtures.js";
import { seededRandom } from "../src/tools/random.js";

const NOW = new Date("2026-03-20T04:00:00Z");
const opts = { backfillDays: 30, now: NOW };
const PRODUCTS = ["MASK-N95", "MASK-SURGICAL", "GLOVES-NITRILE"];

describe("read models", () => {
  let t: TestDatabase;
  let world: World;
  let admin: TestUser;
  const sites: string[] = [];
  const relayedJobs: RelayedJob[] = [];

  const relayAll = async () => {
    for (;;) {
      const r = await relayOutbox(t.db, async (jobs) => void relayedJobs.push(...jobs));
      if (r.events === 0) return;
    }
  };
  const inventory = () =>
    t.db.execute<Record<string, unknown>>(
      sql`select site_id, product_id, report_id::int, date::text, on_hand, on_hand_date::text, produced, capacity_per_day, consumed,
                 received, shipped, backlog, stockout_hours
          from inventory_current order by site_id, product_id`,
      "objects",
    );
  const rollups = () =>
    t.db.execute<Record<string, unknown>>(
      sql`select region_id, product_id, date::text, sites, organizations, on_hand, produced, capacity_per_day, consumed, received, shipped, stockout_sites
          from region_day_rollup order by region_id, product_id, date`,
      "objects",
    );
  const submit = async (rows: ReportRowInput[]) => {
    const r = await submitReports(t.db, admin.actor, rows, opts);
    expect(r.rejected).toEqual([]);
    await relayAll();
    return r;
  };

  beforeAll(async () => {
    t = await createTestDatabase();
    world = await seedWorld(t.db);
    admin = await makeUser(t.db, "ADMIN");
    sites.push(world.makerSite.code, world.hospitalSite.code, world.supplierSite.code);
    // A second organization in Xihu and a second site of the hospital, so subtree counts of sites
    // and of organizations differ.
    const clinic = await createOrganization(t.db, setupActor, { name: "Xihu Clinic", kind: "HOSPITAL" });
    for (const [org, code, region] of [
      [clinic.id, "HZ-XIHU-C1", "330106"],
      [world.hospital.id, "HZ-XIHU-H2", "330106"],
      [clinic.id, "NJ-C1", "320102"],
    ] as const) {
      await createSite(t.db, setupActor, { organizationId: org, code, name: code, regionCode: region });
      sites.push(code);
    }
  });
  afterAll(async () => t?.drop());

  it("keeps the newest report and the newest stock figure per site and product as reports arrive", async () => {
    const site = world.hospitalSite.code;
    await submit([{ siteCode: site, productCode: "MASK-N95", date: "2026-03-10", onHand: 100, consumed: 10 }]);
    // Older (backfilled) days do not displace the newest one.
    await submit([{ siteCode: site, productCode: "MASK-N95", date: "2026-03-08", onHand: 500, consumed: 30 }]);
    // A newer day without a stock figure: the newest report, but stock stays the 10th's.
    await submit([{ siteCode: site, productCode: "MASK-N95", date: "2026-03-12", consumed: 12 }]);
    const [row] = (await inventory()).filter((r) => r.site_id === world.hospitalSite.id);
    expect(row).toMatchObject({ date: "2026-03-12", consumed: 12, on_hand: 100, on_hand_date: "2026-03-10" });
    // A correction of the newest day that adds stock moves the stock figure to it.
    await submit([{ siteCode: site, productCode: "MASK-N95", date: "2026-03-12", onHand: 80 }]);
    const [after] = (await inventory()).filter((r) => r.site_id === world.hospitalSite.id);
    expect(after).toMatchObject({ date: "2026-03-12", consumed: 12, on_hand: 80, on_hand_date: "2026-03-12" });
  });

  it("rolls each day up every region's subtree once the relay has marked it, and asks for the job once per window", async () => {
    relayedJobs.length = 0;
    await submit([
      { siteCode: "HZ-XIHU-C1", productCode: "MASK-N95", date: "2026-03-12", onHand: 20, consumed: 4, stockoutHours: 0 },
      { siteCode: "HZ-XIHU-H2", productCode: "MASK-N95", date: "2026-03-12", onHand: 0, consumed: 5, stockoutHours: 6 },
      { siteCode: "NJ-C1", productCode: "MASK-N95", date: "2026-03-12", onHand: 7, consumed: 1 },
    ]);
    await relayAll();
    const rollupJobs = relayedJobs.filter((j) => j.name === "readModels.refreshRollups");
    expect(rollupJobs.length).toBeGreaterThanOrEqual(1);
    expect(rollupJobs[0]!.jobId).toMatch(/^rollups-\d+$/);
    expect(await refreshDirtyRollups(t.db)).toMatchObject({ slices: 3 }); // N95 on the 8th, 10th and 12th
    const codeOf = new Map(
      (await t.db.execute<{ id: number; code: string }>(sql`select id, code from region`, "objects")).map((r) => [r.id, r.code]),
    );
    const day = (await rollups()).filter((r) => r.date === "2026-03-12").map((r) => ({ ...r, region: codeOf.get(r.region_id as number) }));
    const of = (code: string) => day.find((r) => r.region === code);
    expect(of("330106")).toMatchObject({ sites: 3, organizations: 2, on_hand: 100, consumed: 21, stockout_sites: 1 });
    expect(of("320102")).toMatchObject({ sites: 1, organizations: 1, on_hand: 7, consumed: 1, stockout_sites: 0 });
    expect(of("330100")).toMatchObject({ sites: 3, organizations: 2, on_hand: 100 });
    // The clinic reports from both provinces: counted once in the country.
    expect(of("CN")).toMatchObject({ sites: 4, organizations: 2, on_hand: 107, consumed: 22, stockout_sites: 1 });
    // No reports below Shangcheng that day: no row rather than a row of zeros.
    expect(of("330102")).toBeUndefined();
    // Nothing is left to refresh, and a second run finds nothing.
    expect(await refreshDirtyRollups(t.db)).toEqual({ slices: 0, rows: 0 });
  });

  it("two refreshers running at once share the dirty slices without refreshing one twice", async () => {
    await t.db.execute(sql`insert into rollup_dirty (product_id, date) select p.id, d::date from product p,
      generate_series('2026-02-01'::date, '2026-02-20'::date, '1 day') d`);
    const dirty = (await t.db.execute<{ n: number }>(sql`select count(*)::int as n from rollup_dirty`, "objects"))[0]!.n;
    const [a, b] = await Promise.all([refreshDirtyRollups(t.db, 7), refreshDirtyRollups(t.db, 7)]);
    expect(a.slices + b.slices).toBe(dirty);
    expect((await t.db.execute<{ n: number }>(sql`select count(*)::int as n from rollup_dirty`, "objects"))[0]!.n).toBe(0);
  });

  it("two relays handling reports of the same series at once leave it as the reports say, without deadlocking", async () => {
    // Batches touching the same series in different orders, so the relays lock overlapping keys.
    for (let d = 1; d <= 12; d++) {
      const date = `2026-02-${String(d).padStart(2, "0")}`;
      const rows: ReportRowInput[] = sites.map((siteCode, i) => ({ siteCode, productCode: PRODUCTS[(d + i) % PRODUCTS.length]!, date, onHand: 100 + d, consumed: d }));
      expect((await submitReports(t.db, admin.actor, d % 2 ? rows : rows.reverse(), opts)).rejected).toEqual([]);
    }
    const relayLoop = async () => {
      while ((await relayOutbox(t.db, async () => {}, 1)).events > 0);
    };
    await Promise.all([relayLoop(), relayLoop()]);
    const incremental = await inventory();
    await rebuildReadModels(t.db);
    expect(await inventory()).toEqual(incremental);
  });

  it("after many random batches, corrections and backfills, a rebuild from the reports equals what was kept incrementally", async () => {
    const random = seededRandom(20261122);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
    for (let batch = 0; batch < 25; batch++) {
      const rows = new Map<string, ReportRowInput>();
      const n = 1 + Math.floor(random() * 12);
      for (let i = 0; i < n; i++) {
        const siteCode = pick(sites);
        const productCode = pick(PRODUCTS);
        const date = `2026-03-${String(1 + Math.floor(random() * 19)).padStart(2, "0")}`;
        const row: ReportRowInput = { siteCode, productCode, date };
        if (random() < 0.8) row.onHand = Math.round(random() * 1000);
        if (random() < 0.7) row.consumed = Math.round(random() * 100);
        if (random() < 0.3) row.produced = Math.round(random() * 200);
        if (random() < 0.2) row.stockoutHours = Math.round(random() * 24);
        if (Object.keys(row).length === 3) row.received = 1;
        rows.set(`${siteCode}/${productCode}/${date}`, row);
      }
      // Not through submit(): the relay runs only now and then, so one run takes several batches.
      expect((await submitReports(t.db, admin.actor, [...rows.values()], opts)).rejected).toEqual([]);
      // The relay and the job run now and then, as they would between bursts.
      if (random() < 0.4) {
        await relayAll();
        await refreshDirtyRollups(t.db);
      }
    }
    await relayAll();
    await refreshDirtyRollups(t.db);
    const incremental = { inventory: await inventory(), rollups: await rollups() };
    expect(incremental.inventory.length).toBeGreaterThan(15);
    expect(incremental.rollups.length).toBeGreaterThan(100);

    const rebuilt = await rebuildReadModels(t.db);
    expect(rebuilt.inventory).toBe(incremental.inventory.length);
    expect(rebuilt.rollups).toBe(incremental.rollups.length);
    expect(await inventory()).toEqual(incremental.inventory);
    expect(await rollups()).toEqual(incremental.rollups);

    // And the rebuild is what the reports say, computed here another way for the country.
    const check = await t.db.execute<{ date: string; product_id: number; sites: number; on_hand: number | null }>(
      sql`select r.date::text, r.product_id, count(*)::int as sites, sum(r.on_hand) as on_hand from report r group by 1, 2 order by 2, 1`,
      "objects",
    );
    const cn = (await t.db.execute<{ id: number }>(sql`select id from region where code = 'CN'`, "objects"))[0]!.id;
    const national = (await rollups()).filter((r) => r.region_id === cn).map((r) => ({ date: r.date, product_id: r.product_id, sites: r.sites, on_hand: r.on_hand }));
    expect(national).toEqual(check.map((c) => ({ date: c.date, product_id: c.product_id, sites: c.sites, on_hand: c.on_hand })));
  });
});

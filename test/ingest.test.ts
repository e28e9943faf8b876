import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { submitReports, MAX_BATCH_ROWS } from "../src/domain/reports/ingest.js";
import { DomainError } from "../src/domain/errors.js";
import { createBackend, type Backend, type TestDatabase } from "./helpers/db.js";
import { makeUser, seedWorld, type TestUser, type World } from "./helpers/fixtures.js";

const NOW = new Date("2026-03-10T04:00:00Z"); // 12:00 in Asia/Shanghai, 2026-03-10
const opts = { backfillDays: 7, now: NOW };

describe.each<Backend>(["postgres", "pglite"])("report ingestion on %s", (backend) => {
  let t: TestDatabase;
  let world: World;
  let reporter: TestUser;
  let otherReporter: TestUser;
  let admin: TestUser;
  let planner: TestUser;

  beforeAll(async () => {
    t = await createBackend(backend);
    world = await seedWorld(t.db);
    reporter = await makeUser(t.db, "REPORTER", { organizationId: world.maker.id });
    otherReporter = await makeUser(t.db, "REPORTER", { organizationId: world.hospital.id });
    admin = await makeUser(t.db, "ADMIN");
    planner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330000" });
  });
  afterAll(async () => t?.drop());

  const stored = async (siteCode: string, productCode: string, date: string) => {
    const rows = await t.db.execute<Record<string, unknown>>(
      sql`select r.id::int as id, r.on_hand, r.produced, r.capacity_per_day, r.consumed, r.received, r.shipped, r.stockout_hours, r.quality_flags, r.revision
          from report r join site s on s.id = r.site_id join product p on p.id = r.product_id
          where s.code = ${siteCode} and p.code = ${productCode} and r.date = ${date}::date`,
      "objects",
    );
    return rows[0];
  };

  it("stores good rows in base units and reports each bad row with index, field and message", async () => {
    const result = await submitReports(
      t.db,
      reporter.actor,
      [
        { siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: "2026-03-01", unit: "box", onHand: 100, produced: 50, capacityPerDay: 60 },
        { siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: "2026-03-02", onHand: -5 },
        { siteCode: "HZ-MASK-1", productCode: "MASK-SURGICAL", date: "2026-03-02", unit: "Carton", onHand: 1.5 },
        { siteCode: "NOPE", productCode: "MASK-N95", date: "2026-03-02", onHand: 1 },
        { siteCode: "HZ-MASK-1", productCode: "MASK-XYZ", date: "2026-03-02", onHand: 1 },
        { siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: "2026-03-02", unit: "crate", onHand: 1 },
        { siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: "2026-03-12", onHand: 1 },
        { siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: "2026-02-30", onHand: 1 },
        { siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: "2026-03-03", onHand: "12a" },
        { siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: "2026-03-03", onHand: Number.NaN },
        { siteCode: "HZ-XIHU-H1", productCode: "MASK-N95", date: "2026-03-03", onHand: 3 },
        { siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: "2026-03-03" },
        { siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: "2026-03-01", onHand: 7 },
        { siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: "2026-03-11", stockoutHours: 25 },
        { siteCode: "HZ-MASK-1", productCode: "GLOVES-NITRILE", date: "2026-03-11", onHand: "40", consumed: "2.5" },
      ],
      opts,
    );
    expect(result.accepted).toBe(3);
    expect(result.reportIds).toHaveLength(3);
    const byIndex = Object.fromEntries(result.rejected.map((r) => [r.index, r]));
    expect(byIndex[1]).toEqual({ index: 1, field: "onHand", message: "row 1: onHand must be >= 0, got -5" });
    expect(byIndex[3]!.field).toBe("siteCode");
    expect(byIndex[3]!.message).toContain("not a site of your organization");
    expect(byIndex[4]).toMatchObject({ field: "productCode", message: expect.stringContaining("unknown product MASK-XYZ") });
    expect(byIndex[5]).toMatchObject({ field: "unit", message: expect.stringContaining("use one of piece, box, carton") });
    expect(byIndex[6]).toMatchObject({ field: "date", message: expect.stringContaining("in the future") });
    expect(byIndex[7]).toMatchObject({ field: "date", message: expect.stringContaining("YYYY-MM-DD") });
    expect(byIndex[8]).toMatchObject({ field: "onHand", message: 'row 8: onHand must be a number, got "12a"' });
    expect(byIndex[9]).toMatchObject({ field: "onHand", message: expect.stringContaining("finite") });
    expect(byIndex[10]).toMatchObject({ field: "siteCode", message: expect.stringContaining("not a site of your organization") });
    expect(byIndex[11]).toMatchObject({ field: null, message: expect.stringContaining("no figures given") });
    expect(byIndex[12]).toMatchObject({ field: null, message: "row 12: same site, product and date as row 0; send each report once per batch" });
    expect(byIndex[13]).toMatchObject({ field: "stockoutHours" });
    expect(result.rejected.map((r) => r.index)).toEqual([1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);

    expect(await stored("HZ-MASK-1", "MASK-N95", "2026-03-01")).toMatchObject({ on_hand: 2000, produced: 1000, capacity_per_day: 1200, revision: 1 });
    expect(await stored("HZ-MASK-1", "MASK-SURGICAL", "2026-03-02")).toMatchObject({ on_hand: 3000 });
    // Tomorrow (local) is accepted: a night shift may close its day after midnight.
    expect(await stored("HZ-MASK-1", "GLOVES-NITRILE", "2026-03-11")).toMatchObject({ on_hand: 40, consumed: 2.5 });
    expect(await stored("HZ-MASK-1", "MASK-N95", "2026-03-02")).toBeUndefined();
  });

  it("rejects, row by row, what would only fail in the database or leak another organization's site", async () => {
    const r = await submitReports(
      t.db,
      reporter.actor,
      [
        { siteCode: "HZ-MASK-1", productCode: "MASK-SURGICAL", date: "2026-02-01", unit: "carton", onHand: 1e306 },
        { siteCode: "HZ-XIHU-H1", productCode: "MASK-N95", date: "2099-01-01", onHand: 1 },
        { siteCode: "NO-SUCH-SITE", productCode: "MASK-N95", date: "2099-01-01", onHand: 1 },
        { siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: "0000-06-01", onHand: 1 },
        { siteCode: "HZ-MASK\u0000-1", productCode: "MASK-N95", date: "2026-03-01", onHand: 1 },
        { siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: "2026-03-01", onHand: 2e15 },
        { siteCode: "HZ-MASK-1", productCode: "GOGGLES", date: "2026-03-01", onHand: 5 },
      ],
      opts,
    );
    expect(r.accepted).toBe(1);
    expect(r.rejected.map((e) => [e.index, e.field])).toEqual([
      [0, "onHand"],
      [1, "siteCode"],
      [2, "siteCode"],
      [3, "date"],
      [4, "siteCode"],
      [5, "onHand"],
    ]);
    expect(r.rejected[0]!.message).toContain("check the figure and its unit");
    // A foreign site and an unknown one get the same single answer: nothing about the site leaks.
    const bare = (m: string, code: string) => m.replace(/^row \d+: /, "").replace(code, "X");
    expect(bare(r.rejected[1]!.message, "HZ-XIHU-H1")).toBe(bare(r.rejected[2]!.message, "NO-SUCH-SITE"));
    expect(r.rejected[3]!.message).toContain("between 1900-01-01 and 2999-12-31");
    expect(r.rejected[4]!.message).toContain("control characters");
  });

  it("keeps the old figures as a revision on correction, merging figures not re-sent", async () => {
    const first = await submitReports(t.db, reporter.actor, [{ siteCode: "HZ-MASK-1", productCode: "TEST-PCR", date: "2026-03-05", onHand: 500, produced: 100 }], opts);
    const second = await submitReports(t.db, admin.actor, [{ siteCode: "HZ-MASK-1", productCode: "TEST-PCR", date: "2026-03-05", unit: "kit", onHand: 10 }], opts);
    expect(second.reportIds).toEqual(first.reportIds);
    expect(await stored("HZ-MASK-1", "TEST-PCR", "2026-03-05")).toMatchObject({ on_hand: 480, produced: 100, revision: 2 });
    const revisions = await t.db.execute<Record<string, unknown>>(
      sql`select revision, on_hand, produced, submitted_by::text as by, superseded_by::text as superseded from report_revision where report_id = ${first.reportIds[0]}`,
      "objects",
    );
    expect(revisions).toEqual([{ revision: 1, on_hand: 500, produced: 100, by: reporter.viewer.userId, superseded: admin.viewer.userId }]);
    // Sending the same figures again changes nothing and writes no revision.
    await submitReports(t.db, admin.actor, [{ siteCode: "HZ-MASK-1", productCode: "TEST-PCR", date: "2026-03-05", onHand: 480 }], opts);
    expect(await stored("HZ-MASK-1", "TEST-PCR", "2026-03-05")).toMatchObject({ revision: 2 });
  });

  it("flags stock balance, production above capacity and backfill without rejecting", async () => {
    const r = await submitReports(
      t.db,
      reporter.actor,
      [
        { siteCode: "HZ-MASK-1", productCode: "MASK-KN95", date: "2026-03-06", onHand: 1000 },
        { siteCode: "HZ-MASK-1", productCode: "MASK-KN95", date: "2026-03-07", onHand: 1100, produced: 300, shipped: 200 },
        { siteCode: "HZ-MASK-1", productCode: "MASK-KN95", date: "2026-03-08", onHand: 5000, produced: 900, capacityPerDay: 800, shipped: 0 },
        { siteCode: "HZ-MASK-1", productCode: "MASK-KN95", date: "2026-02-01", onHand: 3 },
      ],
      opts,
    );
    expect(r.rejected).toEqual([]);
    expect((await stored("HZ-MASK-1", "MASK-KN95", "2026-03-07"))!.quality_flags).toEqual([]);
    expect((await stored("HZ-MASK-1", "MASK-KN95", "2026-03-08"))!.quality_flags).toEqual(["STOCK_BALANCE_MISMATCH", "PRODUCED_ABOVE_CAPACITY"]);
    expect((await stored("HZ-MASK-1", "MASK-KN95", "2026-02-01"))!.quality_flags).toEqual(["BACKFILL"]);
    // Correcting the 7th so the 8th balances clears the 8th's balance flag.
    await submitReports(t.db, reporter.actor, [{ siteCode: "HZ-MASK-1", productCode: "MASK-KN95", date: "2026-03-07", onHand: 4100, produced: 3300 }], opts);
    expect((await stored("HZ-MASK-1", "MASK-KN95", "2026-03-08"))!.quality_flags).toEqual(["PRODUCED_ABOVE_CAPACITY"]);
  });

  it("re-flags an unchanged day when the day before it is corrected in the same batch", async () => {
    const day1 = { siteCode: "HZ-MASK-1", productCode: "FACE-SHIELD", date: "2026-03-05", onHand: 100 };
    const day2 = { siteCode: "HZ-MASK-1", productCode: "FACE-SHIELD", date: "2026-03-06", onHand: 150, produced: 50 };
    await submitReports(t.db, reporter.actor, [day1, day2], opts);
    expect((await stored("HZ-MASK-1", "FACE-SHIELD", "2026-03-06"))!.quality_flags).toEqual([]);
    await submitReports(t.db, reporter.actor, [{ ...day1, onHand: 200 }, day2], opts);
    expect(await stored("HZ-MASK-1", "FACE-SHIELD", "2026-03-06")).toMatchObject({ quality_flags: ["STOCK_BALANCE_MISMATCH"], revision: 1 });
  });

  it("keeps a report's backfill verdict when the same figures are sent again later", async () => {
    const row = { siteCode: "HZ-MASK-1", productCode: "COVERALL-MEDICAL", date: "2026-03-05", onHand: 7 };
    await submitReports(t.db, reporter.actor, [row], { backfillDays: 7, now: new Date("2026-03-06T04:00:00Z") });
    await submitReports(t.db, reporter.actor, [row], { backfillDays: 7, now: new Date("2026-03-16T04:00:00Z") });
    expect(await stored("HZ-MASK-1", "COVERALL-MEDICAL", "2026-03-05")).toMatchObject({ quality_flags: [], revision: 1 });
    // A correction sent that late is late data entry: the new figures are flagged.
    await submitReports(t.db, reporter.actor, [{ ...row, onHand: 8 }], { backfillDays: 7, now: new Date("2026-03-16T04:00:00Z") });
    expect(await stored("HZ-MASK-1", "COVERALL-MEDICAL", "2026-03-05")).toMatchObject({ quality_flags: ["BACKFILL"], revision: 2 });
  });

  it("replays the first result for a repeated idempotency key and refuses the key with other data", async () => {
    const rows = [{ siteCode: "HZ-MASK-1", productCode: "GOGGLES", date: "2026-03-09", onHand: 10 }];
    const first = await submitReports(t.db, reporter.actor, rows, { ...opts, idempotencyKey: "batch-1" });
    const again = await submitReports(t.db, reporter.actor, rows, { ...opts, idempotencyKey: "batch-1" });
    expect(again).toEqual({ ...first, replayed: true });
    const revisionsAfter = await stored("HZ-MASK-1", "GOGGLES", "2026-03-09");
    expect(revisionsAfter).toMatchObject({ revision: 1 });
    await expect(
      submitReports(t.db, reporter.actor, [{ ...rows[0]!, onHand: 11 }], { ...opts, idempotencyKey: "batch-1" }),
    ).rejects.toMatchObject({ code: "IDEMPOTENCY_KEY_REUSED", message: expect.stringContaining("use a new key") });
    // An omitted figure and a null one are the same request.
    const withNull = await submitReports(t.db, reporter.actor, [{ ...rows[0]!, produced: null }], { ...opts, idempotencyKey: "batch-1" });
    expect(withNull.replayed).toBe(true);
    // Keys belong to their user: another user's identical key is a new request.
    const admins = await submitReports(t.db, admin.actor, rows, { ...opts, idempotencyKey: "batch-1" });
    expect(admins.replayed).toBeUndefined();
  });

  it("refuses over-large batches and non-reporters as a whole, storing nothing", async () => {
    const before = await t.db.execute<{ n: number }>(sql`select count(*)::int as n from report`, "objects");
    const big = Array.from({ length: MAX_BATCH_ROWS + 1 }, (_, i) => ({ siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: "2026-01-01", onHand: i }));
    await expect(submitReports(t.db, reporter.actor, big, opts)).rejects.toMatchObject({ code: "BATCH_TOO_LARGE", message: expect.stringContaining("at most 5,000 rows") });
    await expect(submitReports(t.db, planner.actor, [{ siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: "2026-03-01", onHand: 1 }], opts)).rejects.toBeInstanceOf(DomainError);
    const after = await t.db.execute<{ n: number }>(sql`select count(*)::int as n from report`, "objects");
    expect(after[0]!.n).toBe(before[0]!.n);
  });

  it("writes the outbox event and the audit row in the same transaction as the reports", async () => {
    const r = await submitReports(t.db, otherReporter.actor, [{ siteCode: "HZ-XIHU-H1", productCode: "MASK-N95", date: "2026-03-09", onHand: 40, consumed: 12 }], opts);
    const outbox = await t.db.execute<{ payload: { reportIds: number[] } }>(sql`select payload from outbox order by id desc limit 1`, "objects");
    expect(outbox[0]!.payload.reportIds).toEqual(r.reportIds);
    const audit = await t.db.execute<{ actor: string; action: string }>(sql`select actor_user_id::text as actor, action from audit_log order by id desc limit 1`, "objects");
    expect(audit[0]).toEqual({ actor: otherReporter.viewer.userId, action: "reports.submit" });
  });

  it("stores a full batch of 5,000 rows", async () => {
    const rows = Array.from({ length: MAX_BATCH_ROWS }, (_, i) => ({
      siteCode: "HZ-MASK-1",
      productCode: ["MASK-SURGICAL", "GOWN-ISOLATION", "FACE-SHIELD", "TEST-ANTIGEN", "COVERALL-MEDICAL"][i % 5]!,
      date: new Date(Date.UTC(2020, 0, 1) + Math.floor(i / 5) * 86_400_000).toISOString().slice(0, 10),
      onHand: i,
    }));
    const r = await submitReports(t.db, reporter.actor, rows, opts);
    expect(r.accepted).toBe(MAX_BATCH_ROWS);
    expect(new Set(r.reportIds).size).toBe(MAX_BATCH_ROWS);
  });
});

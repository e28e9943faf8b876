import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { submitReports } from "../src/domain/reports/ingest.js";
import { openDatabase } from "../src/db/index.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { makeUser, seedWorld, type TestUser } from "./helpers/fixtures.js";

// PGlite has one connection, so concurrency is a PostgreSQL-only concern.
// A wide backfill window keeps the flags under test free of BACKFILL.
const opts = { backfillDays: 100_000, now: new Date("2026-03-10T04:00:00Z") };
let t: TestDatabase;
let reporter: TestUser;

beforeAll(async () => {
  t = await createTestDatabase();
  const world = await seedWorld(t.db);
  reporter = await makeUser(t.db, "REPORTER", { organizationId: world.maker.id });
});
afterAll(async () => t?.drop());

describe("concurrent report batches", () => {
  it("lets concurrent batches with overlapping keys finish, keeping every version once", async () => {
    const days = Array.from({ length: 40 }, (_, i) => new Date(Date.UTC(2024, 0, 1 + i)).toISOString().slice(0, 10));
    const batch = (onHand: number, reverse: boolean) =>
      (reverse ? [...days].reverse() : days).map((date) => ({ siteCode: "HZ-MASK-1", productCode: "GLOVES-NITRILE", date, onHand }));
    const results = await Promise.all([1, 2, 3, 4, 5, 6].map((n) => submitReports(t.db, reporter.actor, batch(n, n % 2 === 0), opts)));
    expect(results.map((r) => r.accepted)).toEqual([40, 40, 40, 40, 40, 40]);
    const rows = await t.db.execute<{ revision: number; revisions: number }>(
      sql`select r.revision, (select count(*)::int from report_revision v where v.report_id = r.id) as revisions
          from report r join product p on p.id = r.product_id where p.code = 'GLOVES-NITRILE' and r.date < '2024-03-01'`,
      "objects",
    );
    expect(rows).toHaveLength(40);
    // Six different values per key: one insert and five corrections, each kept as a revision.
    for (const row of rows) expect(row).toEqual({ revision: 6, revisions: 5 });
  });

  it("keeps the stock-balance flag right when neighbouring days arrive in concurrent batches", async () => {
    for (let round = 0; round < 10; round++) {
      const day1 = new Date(Date.UTC(2023, 0, 1 + 2 * round)).toISOString().slice(0, 10);
      const day2 = new Date(Date.UTC(2023, 0, 2 + 2 * round)).toISOString().slice(0, 10);
      await Promise.all([
        submitReports(t.db, reporter.actor, [{ siteCode: "HZ-MASK-1", productCode: "MASK-KN95", date: day1, onHand: 100 }], opts),
        submitReports(t.db, reporter.actor, [{ siteCode: "HZ-MASK-1", productCode: "MASK-KN95", date: day2, onHand: 500, produced: 10 }], opts),
      ]);
      const flags = await t.db.execute<{ quality_flags: string[] }>(
        sql`select r.quality_flags from report r join product p on p.id = r.product_id where p.code = 'MASK-KN95' and r.date = ${day2}::date`,
        "objects",
      );
      // 100 + 10 is not 500, whichever batch committed first.
      expect(flags[0]!.quality_flags, `round ${round}`).toEqual(["STOCK_BALANCE_MISMATCH"]);
    }
  });

  it("stays correct on a server whose default isolation is REPEATABLE READ", async () => {
    const name = new URL(t.url!).pathname.slice(1);
    await t.db.execute(sql.raw(`alter database "${name}" set default_transaction_isolation = 'repeatable read'`));
    const strict = openDatabase({ url: t.url, dataDir: "", poolSize: 4 });
    try {
      for (let round = 0; round < 5; round++) {
        const date = new Date(Date.UTC(2022, 0, 1 + round)).toISOString().slice(0, 10);
        const results = await Promise.all(
          [1, 2, 3].map((n) => submitReports(strict.db, reporter.actor, [{ siteCode: "HZ-MASK-1", productCode: "MASK-N95", date, onHand: n }], opts)),
        );
        expect(results.map((r) => r.accepted)).toEqual([1, 1, 1]);
      }
    } finally {
      await strict.close();
    }
  });
});

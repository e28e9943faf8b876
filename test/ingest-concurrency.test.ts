import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { submitReports } from "../src/domain/reports/ingest.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { makeUser, seedWorld, type TestUser } from "./helpers/fixtures.js";

// PGlite has one connection, so concurrency is a PostgreSQL-only concern.
const opts = { backfillDays: 7, now: new Date("2026-03-10T04:00:00Z") };
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

});

-- The natural key also carries the figures the forecast reads, so reading a series' window is an
-- index-only scan of consecutive index entries instead of one heap page per day (reports arrive
-- day by day, so a series' rows sit on as many pages as it has days). Writes keep one index per
-- row; only the entries get wider. drizzle's index builder has no INCLUDE, so src/db/schema.ts
-- still declares the plain key, under the same name.
DROP INDEX "report_natural_key";--> statement-breakpoint
CREATE UNIQUE INDEX "report_natural_key" ON "report" ("site_id","product_id","date")
  INCLUDE ("on_hand","consumed","produced","received","shipped","stockout_hours","capacity_per_day");

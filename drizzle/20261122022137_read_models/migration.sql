CREATE TABLE "inventory_current" (
	"site_id" uuid,
	"product_id" integer,
	"report_id" bigint NOT NULL,
	"date" date NOT NULL,
	"on_hand" double precision,
	"on_hand_date" date,
	"produced" double precision,
	"capacity_per_day" double precision,
	"consumed" double precision,
	"received" double precision,
	"shipped" double precision,
	"backlog" double precision,
	"stockout_hours" double precision,
	CONSTRAINT "inventory_current_pkey" PRIMARY KEY("site_id","product_id")
);
--> statement-breakpoint
CREATE TABLE "region_day_rollup" (
	"region_id" integer,
	"product_id" integer,
	"date" date,
	"sites" integer NOT NULL,
	"organizations" integer NOT NULL,
	"on_hand" double precision,
	"produced" double precision,
	"capacity_per_day" double precision,
	"consumed" double precision,
	"received" double precision,
	"shipped" double precision,
	"stockout_sites" integer NOT NULL,
	"refreshed_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "region_day_rollup_pkey" PRIMARY KEY("region_id","product_id","date")
);
--> statement-breakpoint
CREATE TABLE "rollup_dirty" (
	"product_id" integer,
	"date" date,
	"dirty_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "rollup_dirty_pkey" PRIMARY KEY("product_id","date")
);
--> statement-breakpoint
CREATE INDEX "region_day_rollup_slice_idx" ON "region_day_rollup" ("product_id","date");--> statement-breakpoint
ALTER TABLE "inventory_current" ADD CONSTRAINT "inventory_current_site_id_site_id_fkey" FOREIGN KEY ("site_id") REFERENCES "site"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "inventory_current" ADD CONSTRAINT "inventory_current_product_id_product_id_fkey" FOREIGN KEY ("product_id") REFERENCES "product"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "region_day_rollup" ADD CONSTRAINT "region_day_rollup_region_id_region_id_fkey" FOREIGN KEY ("region_id") REFERENCES "region"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "region_day_rollup" ADD CONSTRAINT "region_day_rollup_product_id_product_id_fkey" FOREIGN KEY ("product_id") REFERENCES "product"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "rollup_dirty" ADD CONSTRAINT "rollup_dirty_product_id_product_id_fkey" FOREIGN KEY ("product_id") REFERENCES "product"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "inventory_current" SET (fillfactor = 70);
--> statement-breakpoint
-- The read models' definitions live here, once, as functions: the rollup job and
-- `npm run cli -- read-models rebuild` call them; the report write path upserts inventory_current
-- from the figures it holds, and test/read-models.test.ts shows that gives what the function derives.
-- Each (site, product) key: its newest report, and the newest stock figure (which the newest
-- report may lack).
CREATE FUNCTION refresh_inventory_current(p_sites uuid[], p_products integer[]) RETURNS integer
LANGUAGE sql AS $$
  with keys as (
    select distinct site_id, product_id from unnest(p_sites, p_products) as k(site_id, product_id)
  ), upserted as (
    insert into inventory_current as c (site_id, product_id, report_id, date, on_hand, on_hand_date, produced,
      capacity_per_day, consumed, received, shipped, backlog, stockout_hours)
    select k.site_id, k.product_id, l.id, l.date, o.on_hand, o.date, l.produced,
      l.capacity_per_day, l.consumed, l.received, l.shipped, l.backlog, l.stockout_hours
    from keys k
    cross join lateral (
      select r.id, r.date, r.produced, r.capacity_per_day, r.consumed, r.received, r.shipped, r.backlog, r.stockout_hours
      from report r where r.site_id = k.site_id and r.product_id = k.product_id order by r.date desc limit 1
    ) l
    left join lateral (
      select r.on_hand, r.date from report r
      where r.site_id = k.site_id and r.product_id = k.product_id and r.on_hand is not null order by r.date desc limit 1
    ) o on true
    on conflict (site_id, product_id) do update set
      report_id = excluded.report_id, date = excluded.date, on_hand = excluded.on_hand, on_hand_date = excluded.on_hand_date,
      produced = excluded.produced, capacity_per_day = excluded.capacity_per_day, consumed = excluded.consumed,
      received = excluded.received, shipped = excluded.shipped, backlog = excluded.backlog, stockout_hours = excluded.stockout_hours
    where (c.report_id, c.date, c.on_hand, c.on_hand_date, c.produced, c.capacity_per_day, c.consumed, c.received, c.shipped, c.backlog, c.stockout_hours)
      is distinct from (excluded.report_id, excluded.date, excluded.on_hand, excluded.on_hand_date, excluded.produced, excluded.capacity_per_day,
        excluded.consumed, excluded.received, excluded.shipped, excluded.backlog, excluded.stockout_hours)
    returning 1
  )
  select count(*)::integer from upserted
$$;
--> statement-breakpoint
-- One (product, day) slice of the rollups, replaced whole: every region that has a reporting
-- site in its subtree gets a row adding up those sites' reports; regions with none get no row.
CREATE FUNCTION refresh_region_day_rollup(p_product integer, p_date date) RETURNS integer
LANGUAGE sql AS $$
  delete from region_day_rollup where product_id = p_product and date = p_date;
  with inserted as (
    insert into region_day_rollup (region_id, product_id, date, sites, organizations, on_hand, produced,
      capacity_per_day, consumed, received, shipped, stockout_sites)
    select a.region_id, p_product, p_date, count(*)::integer, count(distinct s.organization_id)::integer,
      sum(r.on_hand), sum(r.produced), sum(r.capacity_per_day), sum(r.consumed), sum(r.received), sum(r.shipped),
      (count(*) filter (where r.on_hand = 0 or r.stockout_hours > 0))::integer
    from report r
    join site s on s.id = r.site_id
    join region leaf on leaf.id = s.region_id
    cross join lateral unnest(string_to_array(trim(both '/' from leaf.path), '/')::integer[]) as a(region_id)
    where r.product_id = p_product and r.date = p_date
    group by a.region_id
    returning 1
  )
  select count(*)::integer from inserted
$$;
--> statement-breakpoint
-- Databases that already hold reports get their read models now.
SELECT refresh_inventory_current(array_agg(site_id), array_agg(product_id))
FROM (SELECT DISTINCT site_id, product_id FROM report) k;
--> statement-breakpoint
SELECT count(refresh_region_day_rollup(product_id, date)) FROM (SELECT DISTINCT product_id, date FROM report) s;

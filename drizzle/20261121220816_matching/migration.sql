CREATE TYPE "match_kind" AS ENUM('DOWNSTREAM', 'UPSTREAM');--> statement-breakpoint
CREATE TYPE "match_status" AS ENUM('PROPOSED', 'ACCEPTED', 'DECLINED', 'FULFILLED', 'EXPIRED');--> statement-breakpoint
CREATE TABLE "bottleneck" (
	"forecast_id" bigint,
	"region_id" integer NOT NULL,
	"product_id" integer NOT NULL,
	"input_product_id" integer,
	"lost_quantity" double precision NOT NULL,
	"input_short" double precision NOT NULL,
	CONSTRAINT "bottleneck_pkey" PRIMARY KEY("forecast_id","input_product_id")
);
--> statement-breakpoint
CREATE TABLE "match_run" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "match_run_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"kind" "match_kind" NOT NULL,
	"product_id" integer NOT NULL,
	"trigger" text NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone,
	"suppliers" integer DEFAULT 0 NOT NULL,
	"demands" integer DEFAULT 0 NOT NULL,
	"arcs" integer DEFAULT 0 NOT NULL,
	"need" double precision DEFAULT 0 NOT NULL,
	"covered" double precision DEFAULT 0 NOT NULL,
	"cost" double precision DEFAULT 0 NOT NULL,
	"proposals" integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "match" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"run_id" bigint NOT NULL,
	"kind" "match_kind" NOT NULL,
	"product_id" integer NOT NULL,
	"from_site_id" uuid NOT NULL,
	"to_region_id" integer NOT NULL,
	"to_site_id" uuid,
	"request_id" uuid,
	"quantity" double precision NOT NULL,
	"distance_km" double precision,
	"cost" double precision NOT NULL,
	"urgency" double precision NOT NULL,
	"status" "match_status" DEFAULT 'PROPOSED'::"match_status" NOT NULL,
	"reason" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"responded_at" timestamp with time zone,
	"responded_by" uuid,
	"closed_at" timestamp with time zone,
	CONSTRAINT "match_quantity_positive" CHECK ("quantity" > 0 and "quantity" < 'Infinity')
);
--> statement-breakpoint
CREATE INDEX "bottleneck_region_idx" ON "bottleneck" ("region_id","product_id");--> statement-breakpoint
CREATE INDEX "match_product_status_idx" ON "match" ("product_id","status");--> statement-breakpoint
CREATE INDEX "match_from_site_idx" ON "match" ("from_site_id");--> statement-breakpoint
CREATE INDEX "match_to_region_idx" ON "match" ("to_region_id");--> statement-breakpoint
CREATE INDEX "match_request_idx" ON "match" ("request_id");--> statement-breakpoint
ALTER TABLE "bottleneck" ADD CONSTRAINT "bottleneck_forecast_id_forecast_id_fkey" FOREIGN KEY ("forecast_id") REFERENCES "forecast"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "bottleneck" ADD CONSTRAINT "bottleneck_region_id_region_id_fkey" FOREIGN KEY ("region_id") REFERENCES "region"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "bottleneck" ADD CONSTRAINT "bottleneck_product_id_product_id_fkey" FOREIGN KEY ("product_id") REFERENCES "product"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "bottleneck" ADD CONSTRAINT "bottleneck_input_product_id_product_id_fkey" FOREIGN KEY ("input_product_id") REFERENCES "product"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "match_run" ADD CONSTRAINT "match_run_product_id_product_id_fkey" FOREIGN KEY ("product_id") REFERENCES "product"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "match" ADD CONSTRAINT "match_run_id_match_run_id_fkey" FOREIGN KEY ("run_id") REFERENCES "match_run"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "match" ADD CONSTRAINT "match_product_id_product_id_fkey" FOREIGN KEY ("product_id") REFERENCES "product"("id") ON DELETE RESTRICT;--> statement-breakpoint
ALTER TABLE "match" ADD CONSTRAINT "match_from_site_id_site_id_fkey" FOREIGN KEY ("from_site_id") REFERENCES "site"("id") ON DELETE RESTRICT;--> statement-breakpoint
ALTER TABLE "match" ADD CONSTRAINT "match_to_region_id_region_id_fkey" FOREIGN KEY ("to_region_id") REFERENCES "region"("id") ON DELETE RESTRICT;--> statement-breakpoint
ALTER TABLE "match" ADD CONSTRAINT "match_to_site_id_site_id_fkey" FOREIGN KEY ("to_site_id") REFERENCES "site"("id") ON DELETE RESTRICT;--> statement-breakpoint
ALTER TABLE "match" ADD CONSTRAINT "match_request_id_procurement_request_id_fkey" FOREIGN KEY ("request_id") REFERENCES "procurement_request"("id") ON DELETE RESTRICT;
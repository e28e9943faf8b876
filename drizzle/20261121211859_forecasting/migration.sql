CREATE TYPE "request_status" AS ENUM('OPEN', 'FULFILLED', 'CANCELLED');--> statement-breakpoint
CREATE TYPE "risk_level" AS ENUM('GREEN', 'BLUE', 'YELLOW', 'ORANGE', 'RED');--> statement-breakpoint
CREATE TYPE "scenario_mode" AS ENUM('ADD', 'OVERRIDE');--> statement-breakpoint
CREATE TABLE "demand_scenario" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"region_id" integer NOT NULL,
	"product_id" integer NOT NULL,
	"cases_per_day" double precision NOT NULL,
	"usage_per_case_per_day" double precision NOT NULL,
	"mode" "scenario_mode" NOT NULL,
	"starts_on" date,
	"ends_on" date,
	"note" text,
	"created_by" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"superseded_at" timestamp with time zone,
	CONSTRAINT "demand_scenario_figures_valid" CHECK ("cases_per_day" >= 0 and "cases_per_day" < 'Infinity' and "usage_per_case_per_day" >= 0 and "usage_per_case_per_day" < 'Infinity'),
	CONSTRAINT "demand_scenario_period" CHECK ("ends_on" is null or "starts_on" is null or "starts_on" <= "ends_on")
);
--> statement-breakpoint
CREATE TABLE "forecast_dirty" (
	"region_id" integer,
	"product_id" integer,
	"first_dirty_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_dirty_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "forecast_dirty_pkey" PRIMARY KEY("product_id","region_id")
);
--> statement-breakpoint
CREATE TABLE "forecast_latest" (
	"region_id" integer,
	"product_id" integer,
	"forecast_id" bigint NOT NULL,
	"risk_level" "risk_level" NOT NULL,
	"days_to_stockout" double precision,
	"computed_at" timestamp with time zone NOT NULL,
	CONSTRAINT "forecast_latest_pkey" PRIMARY KEY("region_id","product_id")
);
--> statement-breakpoint
CREATE TABLE "forecast_run" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "forecast_run_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"trigger" text NOT NULL,
	"product_id" integer,
	"origin_date" date NOT NULL,
	"input_cutoff" timestamp with time zone NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone,
	"series" integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "forecast" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "forecast_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"run_id" bigint NOT NULL,
	"region_id" integer NOT NULL,
	"product_id" integer NOT NULL,
	"origin_date" date NOT NULL,
	"input_cutoff" timestamp with time zone NOT NULL,
	"computed_at" timestamp with time zone DEFAULT now() NOT NULL,
	"method" text NOT NULL,
	"params" jsonb NOT NULL,
	"demand_source" text NOT NULL,
	"sites" integer NOT NULL,
	"on_hand" double precision NOT NULL,
	"daily_demand" double precision NOT NULL,
	"days_of_supply" double precision,
	"days_to_stockout" double precision,
	"stockout_date" date,
	"stockout_probability_7d" double precision NOT NULL,
	"stockout_probability_14d" double precision NOT NULL,
	"shortage_quantity" double precision NOT NULL,
	"risk_level" "risk_level" NOT NULL,
	"demand" double precision[] NOT NULL,
	"demand_sd" double precision[] NOT NULL,
	"demand_low80" double precision[] NOT NULL,
	"demand_high80" double precision[] NOT NULL,
	"demand_low95" double precision[] NOT NULL,
	"demand_high95" double precision[] NOT NULL,
	"supply" double precision[] NOT NULL,
	"net_inflow" double precision[] NOT NULL,
	"stock" double precision[] NOT NULL,
	"evaluated_at" timestamp with time zone,
	"error_days" integer,
	"error_mae" double precision,
	"naive_mae" double precision
);
--> statement-breakpoint
CREATE TABLE "procurement_request" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"organization_id" uuid NOT NULL,
	"site_id" uuid NOT NULL,
	"product_id" integer NOT NULL,
	"quantity" double precision NOT NULL,
	"needed_by" date NOT NULL,
	"status" "request_status" DEFAULT 'OPEN'::"request_status" NOT NULL,
	"note" text,
	"created_by" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"closed_at" timestamp with time zone,
	CONSTRAINT "procurement_request_quantity_valid" CHECK ("quantity" > 0 and "quantity" < 'Infinity')
);
--> statement-breakpoint
ALTER TABLE "product" ADD COLUMN "risk_red_days" double precision DEFAULT 3 NOT NULL;--> statement-breakpoint
ALTER TABLE "product" ADD COLUMN "risk_orange_days" double precision DEFAULT 7 NOT NULL;--> statement-breakpoint
ALTER TABLE "product" ADD COLUMN "risk_yellow_days" double precision DEFAULT 14 NOT NULL;--> statement-breakpoint
ALTER TABLE "product" ADD COLUMN "risk_blue_days" double precision DEFAULT 30 NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "demand_scenario_active_key" ON "demand_scenario" ("region_id","product_id") WHERE "superseded_at" is null;--> statement-breakpoint
CREATE INDEX "forecast_latest_risk_idx" ON "forecast_latest" ("product_id","risk_level");--> statement-breakpoint
CREATE INDEX "forecast_pair_idx" ON "forecast" ("region_id","product_id","origin_date");--> statement-breakpoint
CREATE INDEX "forecast_run_idx" ON "forecast" ("run_id");--> statement-breakpoint
CREATE INDEX "procurement_request_organization_idx" ON "procurement_request" ("organization_id");--> statement-breakpoint
CREATE INDEX "procurement_request_open_idx" ON "procurement_request" ("product_id","needed_by") WHERE "status" = 'OPEN';--> statement-breakpoint
ALTER TABLE "demand_scenario" ADD CONSTRAINT "demand_scenario_region_id_region_id_fkey" FOREIGN KEY ("region_id") REFERENCES "region"("id") ON DELETE RESTRICT;--> statement-breakpoint
ALTER TABLE "demand_scenario" ADD CONSTRAINT "demand_scenario_product_id_product_id_fkey" FOREIGN KEY ("product_id") REFERENCES "product"("id") ON DELETE RESTRICT;--> statement-breakpoint
ALTER TABLE "forecast_dirty" ADD CONSTRAINT "forecast_dirty_region_id_region_id_fkey" FOREIGN KEY ("region_id") REFERENCES "region"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "forecast_dirty" ADD CONSTRAINT "forecast_dirty_product_id_product_id_fkey" FOREIGN KEY ("product_id") REFERENCES "product"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "forecast_latest" ADD CONSTRAINT "forecast_latest_region_id_region_id_fkey" FOREIGN KEY ("region_id") REFERENCES "region"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "forecast_latest" ADD CONSTRAINT "forecast_latest_product_id_product_id_fkey" FOREIGN KEY ("product_id") REFERENCES "product"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "forecast_latest" ADD CONSTRAINT "forecast_latest_forecast_id_forecast_id_fkey" FOREIGN KEY ("forecast_id") REFERENCES "forecast"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "forecast_run" ADD CONSTRAINT "forecast_run_product_id_product_id_fkey" FOREIGN KEY ("product_id") REFERENCES "product"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "forecast" ADD CONSTRAINT "forecast_run_id_forecast_run_id_fkey" FOREIGN KEY ("run_id") REFERENCES "forecast_run"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "forecast" ADD CONSTRAINT "forecast_region_id_region_id_fkey" FOREIGN KEY ("region_id") REFERENCES "region"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "forecast" ADD CONSTRAINT "forecast_product_id_product_id_fkey" FOREIGN KEY ("product_id") REFERENCES "product"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "procurement_request" ADD CONSTRAINT "procurement_request_organization_id_organization_id_fkey" FOREIGN KEY ("organization_id") REFERENCES "organization"("id") ON DELETE RESTRICT;--> statement-breakpoint
ALTER TABLE "procurement_request" ADD CONSTRAINT "procurement_request_site_id_site_id_fkey" FOREIGN KEY ("site_id") REFERENCES "site"("id") ON DELETE RESTRICT;--> statement-breakpoint
ALTER TABLE "procurement_request" ADD CONSTRAINT "procurement_request_product_id_product_id_fkey" FOREIGN KEY ("product_id") REFERENCES "product"("id") ON DELETE RESTRICT;--> statement-breakpoint
ALTER TABLE "product" ADD CONSTRAINT "product_risk_thresholds_ordered" CHECK (0 < "risk_red_days" and "risk_red_days" < "risk_orange_days" and "risk_orange_days" < "risk_yellow_days" and "risk_yellow_days" < "risk_blue_days");
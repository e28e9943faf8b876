CREATE TYPE "alert_event_type" AS ENUM('RAISED', 'ESCALATED', 'RESOLVED');--> statement-breakpoint
CREATE TYPE "alert_kind" AS ENUM('SHORTAGE_RISK', 'STOCKOUT_IMMINENT', 'SUPPLY_MATCH', 'UPSTREAM_INPUT_SHORTAGE', 'REPORT_OVERDUE', 'DATA_QUALITY');--> statement-breakpoint
CREATE TYPE "alert_resolution" AS ENUM('CLEARED', 'MANUAL');--> statement-breakpoint
CREATE TYPE "alert_status" AS ENUM('OPEN', 'ACKNOWLEDGED', 'RESOLVED');--> statement-breakpoint
CREATE TYPE "compliance_status" AS ENUM('ON_TIME', 'LATE', 'MISSING');--> statement-breakpoint
CREATE TYPE "delivery_channel" AS ENUM('SSE', 'WEBHOOK', 'EMAIL');--> statement-breakpoint
CREATE TYPE "delivery_status" AS ENUM('PENDING', 'DELIVERED', 'FAILED', 'DIGESTED', 'CANCELLED');--> statement-breakpoint
CREATE TABLE "alert_event" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "alert_event_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"alert_id" uuid NOT NULL,
	"type" "alert_event_type" NOT NULL,
	"severity" "risk_level" NOT NULL,
	"message" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"dispatched_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "alert" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"kind" "alert_kind" NOT NULL,
	"dedupe_key" text NOT NULL,
	"status" "alert_status" DEFAULT 'OPEN'::"alert_status" NOT NULL,
	"severity" "risk_level" NOT NULL,
	"stage" integer NOT NULL,
	"peak_stage" integer NOT NULL,
	"region_id" integer NOT NULL,
	"product_id" integer,
	"organization_id" uuid,
	"site_id" uuid,
	"match_id" uuid,
	"message" text NOT NULL,
	"details" jsonb NOT NULL,
	"raised_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"escalated_at" timestamp with time zone,
	"acknowledged_at" timestamp with time zone,
	"acknowledged_by" uuid,
	"resolved_at" timestamp with time zone,
	"resolved_by" uuid,
	"resolution" "alert_resolution",
	"resolve_note" text,
	"condition_cleared_at" timestamp with time zone,
	CONSTRAINT "alert_resolution_consistent" CHECK (("status" = 'RESOLVED') = ("resolved_at" is not null and "resolution" is not null))
);
--> statement-breakpoint
CREATE TABLE "delivery" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"alert_event_id" bigint,
	"channel" "delivery_channel" NOT NULL,
	"webhook_id" uuid,
	"user_id" uuid,
	"status" "delivery_status" DEFAULT 'PENDING'::"delivery_status" NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"last_attempt_at" timestamp with time zone,
	"last_status_code" integer,
	"last_error" text,
	"delivered_at" timestamp with time zone,
	"digest_id" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "delivery_event_recipient_key" UNIQUE NULLS NOT DISTINCT("alert_event_id","channel","webhook_id","user_id")
);
--> statement-breakpoint
CREATE TABLE "report_compliance" (
	"site_id" uuid,
	"date" date,
	"status" "compliance_status" NOT NULL,
	"cutoff_at" timestamp with time zone NOT NULL,
	"first_submitted_at" timestamp with time zone,
	"checked_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "report_compliance_pkey" PRIMARY KEY("site_id","date")
);
--> statement-breakpoint
CREATE TABLE "reporting_schedule" (
	"region_id" integer PRIMARY KEY,
	"cutoff_local_time" text NOT NULL,
	"cutoff_days_after" integer NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "reporting_schedule_time_format" CHECK ("cutoff_local_time" ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'),
	CONSTRAINT "reporting_schedule_days_after_range" CHECK ("cutoff_days_after" between 0 and 7)
);
--> statement-breakpoint
CREATE TABLE "webhook" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"organization_id" uuid,
	"jurisdiction_region_id" integer,
	"url" text NOT NULL,
	"kinds" "alert_kind"[],
	"secret_ciphertext" text NOT NULL,
	"created_by" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"consecutive_failures" integer DEFAULT 0 NOT NULL,
	"disabled_at" timestamp with time zone,
	"disabled_reason" text,
	CONSTRAINT "webhook_one_owner" CHECK ("organization_id" is null or "jurisdiction_region_id" is null)
);
--> statement-breakpoint
CREATE INDEX "alert_event_alert_idx" ON "alert_event" ("alert_id");--> statement-breakpoint
CREATE UNIQUE INDEX "alert_open_dedupe_key" ON "alert" ("dedupe_key") WHERE "status" <> 'RESOLVED';--> statement-breakpoint
CREATE INDEX "alert_dedupe_key_idx" ON "alert" ("dedupe_key","raised_at");--> statement-breakpoint
CREATE INDEX "alert_region_idx" ON "alert" ("region_id","raised_at");--> statement-breakpoint
CREATE INDEX "alert_organization_idx" ON "alert" ("organization_id","raised_at");--> statement-breakpoint
CREATE INDEX "alert_open_kind_idx" ON "alert" ("kind","product_id") WHERE "status" <> 'RESOLVED';--> statement-breakpoint
CREATE INDEX "delivery_webhook_idx" ON "delivery" ("webhook_id","created_at");--> statement-breakpoint
CREATE INDEX "delivery_user_idx" ON "delivery" ("user_id","created_at");--> statement-breakpoint
CREATE INDEX "delivery_pending_idx" ON "delivery" ("created_at") WHERE "status" = 'PENDING';--> statement-breakpoint
CREATE INDEX "report_compliance_date_idx" ON "report_compliance" ("date","status");--> statement-breakpoint
CREATE INDEX "webhook_organization_idx" ON "webhook" ("organization_id");--> statement-breakpoint
ALTER TABLE "alert_event" ADD CONSTRAINT "alert_event_alert_id_alert_id_fkey" FOREIGN KEY ("alert_id") REFERENCES "alert"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "alert" ADD CONSTRAINT "alert_region_id_region_id_fkey" FOREIGN KEY ("region_id") REFERENCES "region"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "alert" ADD CONSTRAINT "alert_product_id_product_id_fkey" FOREIGN KEY ("product_id") REFERENCES "product"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "alert" ADD CONSTRAINT "alert_organization_id_organization_id_fkey" FOREIGN KEY ("organization_id") REFERENCES "organization"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "alert" ADD CONSTRAINT "alert_site_id_site_id_fkey" FOREIGN KEY ("site_id") REFERENCES "site"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "alert" ADD CONSTRAINT "alert_match_id_match_id_fkey" FOREIGN KEY ("match_id") REFERENCES "match"("id") ON DELETE SET NULL;--> statement-breakpoint
ALTER TABLE "alert" ADD CONSTRAINT "alert_acknowledged_by_app_user_id_fkey" FOREIGN KEY ("acknowledged_by") REFERENCES "app_user"("id") ON DELETE SET NULL;--> statement-breakpoint
ALTER TABLE "alert" ADD CONSTRAINT "alert_resolved_by_app_user_id_fkey" FOREIGN KEY ("resolved_by") REFERENCES "app_user"("id") ON DELETE SET NULL;--> statement-breakpoint
ALTER TABLE "delivery" ADD CONSTRAINT "delivery_alert_event_id_alert_event_id_fkey" FOREIGN KEY ("alert_event_id") REFERENCES "alert_event"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "delivery" ADD CONSTRAINT "delivery_webhook_id_webhook_id_fkey" FOREIGN KEY ("webhook_id") REFERENCES "webhook"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "delivery" ADD CONSTRAINT "delivery_user_id_app_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "app_user"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "report_compliance" ADD CONSTRAINT "report_compliance_site_id_site_id_fkey" FOREIGN KEY ("site_id") REFERENCES "site"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "reporting_schedule" ADD CONSTRAINT "reporting_schedule_region_id_region_id_fkey" FOREIGN KEY ("region_id") REFERENCES "region"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "webhook" ADD CONSTRAINT "webhook_organization_id_organization_id_fkey" FOREIGN KEY ("organization_id") REFERENCES "organization"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "webhook" ADD CONSTRAINT "webhook_jurisdiction_region_id_region_id_fkey" FOREIGN KEY ("jurisdiction_region_id") REFERENCES "region"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "webhook" ADD CONSTRAINT "webhook_created_by_app_user_id_fkey" FOREIGN KEY ("created_by") REFERENCES "app_user"("id") ON DELETE SET NULL;
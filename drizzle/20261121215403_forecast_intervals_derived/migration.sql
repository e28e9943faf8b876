ALTER TABLE "forecast" DROP COLUMN "demand_low80";--> statement-breakpoint
ALTER TABLE "forecast" DROP COLUMN "demand_high80";--> statement-breakpoint
ALTER TABLE "forecast" DROP COLUMN "demand_low95";--> statement-breakpoint
ALTER TABLE "forecast" DROP COLUMN "demand_high95";
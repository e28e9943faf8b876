ALTER TABLE "report_revision" DROP CONSTRAINT "report_revision_submitted_by_app_user_id_fkey";--> statement-breakpoint
ALTER TABLE "report_revision" DROP CONSTRAINT "report_revision_superseded_by_app_user_id_fkey";--> statement-breakpoint
ALTER TABLE "report" DROP CONSTRAINT "report_submitted_by_app_user_id_fkey";
CREATE TYPE "import_format" AS ENUM('CSV', 'XLSX');--> statement-breakpoint
CREATE TYPE "import_status" AS ENUM('UPLOADING', 'QUEUED', 'RUNNING', 'DONE', 'FAILED');--> statement-breakpoint
CREATE TABLE "import_chunk" (
	"import_id" uuid,
	"seq" integer,
	"data" bytea NOT NULL,
	CONSTRAINT "import_chunk_pkey" PRIMARY KEY("import_id","seq")
);
--> statement-breakpoint
CREATE TABLE "import_rejected_row" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "import_rejected_row_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"import_id" uuid NOT NULL,
	"line" integer NOT NULL,
	"field" text,
	"message" text NOT NULL,
	"row_values" jsonb
);
--> statement-breakpoint
CREATE TABLE "import" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	"organization_id" uuid,
	"uploaded_by" uuid NOT NULL,
	"token_id" uuid NOT NULL,
	"filename" text,
	"sha256" text,
	"size_bytes" bigint DEFAULT 0 NOT NULL,
	"format" "import_format",
	"encoding" text,
	"idempotency_key" text,
	"status" "import_status" DEFAULT 'UPLOADING'::"import_status" NOT NULL,
	"rows_total" integer,
	"rows_done" integer DEFAULT 0 NOT NULL,
	"rows_accepted" integer DEFAULT 0 NOT NULL,
	"rows_rejected" integer DEFAULT 0 NOT NULL,
	"batches_done" integer DEFAULT 0 NOT NULL,
	"runs" integer DEFAULT 0 NOT NULL,
	"error_message" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "import_rejected_row_line_idx" ON "import_rejected_row" ("import_id","line","id");--> statement-breakpoint
CREATE UNIQUE INDEX "import_organization_content_key" ON "import" ("organization_id","sha256") WHERE "organization_id" is not null and "status" <> 'UPLOADING';--> statement-breakpoint
CREATE UNIQUE INDEX "import_user_content_key" ON "import" ("uploaded_by","sha256") WHERE "organization_id" is null and "status" <> 'UPLOADING';--> statement-breakpoint
CREATE UNIQUE INDEX "import_idempotency_key" ON "import" ("uploaded_by","idempotency_key") WHERE "idempotency_key" is not null;--> statement-breakpoint
CREATE INDEX "import_uploading_idx" ON "import" ("created_at") WHERE "status" = 'UPLOADING';--> statement-breakpoint
ALTER TABLE "import_chunk" ADD CONSTRAINT "import_chunk_import_id_import_id_fkey" FOREIGN KEY ("import_id") REFERENCES "import"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "import_rejected_row" ADD CONSTRAINT "import_rejected_row_import_id_import_id_fkey" FOREIGN KEY ("import_id") REFERENCES "import"("id") ON DELETE CASCADE;--> statement-breakpoint
ALTER TABLE "import" ADD CONSTRAINT "import_organization_id_organization_id_fkey" FOREIGN KEY ("organization_id") REFERENCES "organization"("id") ON DELETE RESTRICT;--> statement-breakpoint
ALTER TABLE "import" ADD CONSTRAINT "import_uploaded_by_app_user_id_fkey" FOREIGN KEY ("uploaded_by") REFERENCES "app_user"("id") ON DELETE RESTRICT;
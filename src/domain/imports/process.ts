// The imports.process job's work: an uploaded file's rows go through submitReports batch by batch,
// as the uploader (so every check, read model, outbox event and audit row of the write path
// applies, and only the uploader's organization's sites are accepted), with progress recorded and
// announced after each batch and the rejected lines kept for download.
//
// The file is read twice: once to count its lines and find problems of the whole file (a header
// that is not one, an unclosed quote) before anything is stored, then to store it. Each batch
// carries an idempotency key derived from the import and the batch number, and the count of
// stored batches moves on in the transaction that keeps the batch's rejected lines, so a job run
// again, on any worker, resumes after the last stored batch and never stores one twice.
import { and, eq, inArray, sql } from "drizzle-orm";
import type { Database } from "../../db/index.js";
import { importRejectedRowTable, importTable } from "../../db/schema.js";
import type { Logger } from "../../logger.js";
import { DomainError } from "../errors.js";
import type { CsvLineError, CsvRow } from "../reports/csv.js";
import { submitReports } from "../reports/ingest.js";
import type { RowError } from "../reports/validate.js";
import type { Actor, Viewer } from "../viewer.js";
import type { ImportProgressEvent } from "./progress.js";
import { ImportFileProblem, fileProblemMessage, importBatches, isFileProblem } from "./read.js";
import type { ImportRow } from "./upload.js";

/** Rows per submitReports batch (it takes up to 5,000): progress every few hundred milliseconds. */
export const IMPORT_BATCH_ROWS = 1000;

export interface ProcessImportOptions {
  backfillDays: number;
  batchSize?: number;
  /** Announces progress to subscribers; a failure is logged, not fatal (the state is in Postgres). */
  publish?: (event: ImportProgressEvent) => Promise<void>;
  logger?: Logger;
  /** True once the worker is shutting down: the import stops after its current batch and resumes on a retry. */
  shouldStop?: () => boolean;
  /** This is the job's last attempt: an unexpected error fails the import instead of leaving it to a retry. */
  lastAttempt?: boolean;
}

export interface ImportOutcome {
  status: ImportRow["status"] | "GONE";
  rowsDone?: number;
  rowsAccepted?: number;
  rowsRejected?: number;
  batches?: number;
}

/** The import must end FAILED with this message; retrying would not help. */
class ImportStop extends Error {}

type RejectedRow = typeof importRejectedRowTable.$inferInsert;

/**
 * Processes one import: QUEUED or RUNNING (a resumed run) ends DONE or FAILED; any other state is
 * left as it is, so running it twice does no harm.
 */
export async function processImport(db: Database, importId: string, options: ProcessImportOptions): Promise<ImportOutcome> {
  const batchSize = options.batchSize ?? IMPORT_BATCH_ROWS;
  const announce = async () => {
    try {
      await options.publish?.({ importId });
    } catch (error) {
      options.logger?.warn({ err: (error as Error).message, importId }, "import progress could not be announced; subscribers see it on their next check");
    }
  };
  const [claimed] = await db
    .update(importTable)
    .set({ status: "RUNNING", startedAt: sql`coalesce(${importTable.startedAt}, now())`, updatedAt: sql`now()` })
    .where(and(eq(importTable.id, importId), inArray(importTable.status, ["QUEUED", "RUNNING"])))
    .returning();
  if (!claimed) {
    const [row] = await db.select({ status: importTable.status }).from(importTable).where(eq(importTable.id, importId));
    return { status: row?.status ?? "GONE" };
  }
  await announce();
  const fail = async (message: string) => {
    await db
      .update(importTable)
      .set({ status: "FAILED", errorMessage: message, finishedAt: sql`now()`, updatedAt: sql`now()` })
      .where(and(eq(importTable.id, importId), inArray(importTable.status, ["QUEUED", "RUNNING"])));
    await announce();
    return { status: "FAILED" as const };
  };

  try {
    const format = claimed.format ?? "CSV";
    const actor: Actor = { viewer: await uploader(db, claimed), requestId: `import-${importId}`, system: "import" };
    let row = claimed;
    if (row.rowsTotal === null) row = await countLines(db, row, format, batchSize);

    let n = 0;
    let lastErrorLine = 0;
    for await (const batch of importBatches(db, importId, format, batchSize)) {
      n++;
      // A line's errors may be split between two batches: it is counted with the first.
      const errorLines = new Set(batch.errors.map((e) => e.line).filter((line) => line !== lastErrorLine));
      if (batch.errors.length) lastErrorLine = batch.errors[batch.errors.length - 1]!.line;
      if (n <= row.batchesDone) continue;
      if (batch.errors.some(isFileProblem)) throw new ImportStop(fileProblemMessage(batch.errors.find(isFileProblem)!));

      const result = batch.rows.length
        ? await submitReports(db, actor, batch.rows.map((r) => r.row), { idempotencyKey: `import:${importId}:${n}`, backfillDays: options.backfillDays })
        : { accepted: 0, rejected: [] as RowError[] };
      const rejected = [...lineErrors(importId, batch.errors), ...rowErrors(importId, batch.rows, result.rejected)];
      const rejectedRows = new Set(result.rejected.map((r) => r.index)).size;
      await db.transaction(async (tx) => {
        const [moved] = await tx
          .update(importTable)
          .set({
            batchesDone: n,
            rowsDone: sql`${importTable.rowsDone} + ${batch.rows.length + errorLines.size}`,
            rowsAccepted: sql`${importTable.rowsAccepted} + ${result.accepted}`,
            rowsRejected: sql`${importTable.rowsRejected} + ${rejectedRows + errorLines.size}`,
            updatedAt: sql`now()`,
          })
          // Another run that got here first (a job taken over from a worker thought dead) counted it already.
          .where(and(eq(importTable.id, importId), eq(importTable.batchesDone, n - 1), eq(importTable.status, "RUNNING")))
          .returning({ id: importTable.id });
        if (moved && rejected.length) await tx.insert(importRejectedRowTable).values(rejected);
      });
      await announce();
      if (options.shouldStop?.()) throw new Error(`the worker is shutting down; the import resumes after batch ${n} on the job's next attempt`);
    }

    const [done] = await db
      .update(importTable)
      .set({ status: "DONE", finishedAt: sql`now()`, updatedAt: sql`now()` })
      .where(and(eq(importTable.id, importId), eq(importTable.status, "RUNNING")))
      .returning();
    await announce();
    if (!done) return { status: "GONE" };
    return { status: done.status, rowsDone: done.rowsDone, rowsAccepted: done.rowsAccepted, rowsRejected: done.rowsRejected, batches: n };
  } catch (error) {
    if (error instanceof ImportStop || error instanceof ImportFileProblem) return fail(error.message);
    // A refusal of the write path (other than a collision, which a retry gets past) is the same every time.
    if (error instanceof DomainError && error.code !== "CONFLICT") return fail(`${error.message}; nothing more was stored`);
    if (options.lastAttempt) {
      await fail(
        `the import stopped after repeated errors (${(error as Error).message}); upload the same file again to resume after the rows already stored`,
      );
    }
    throw error;
  }
}

/** First reading: how many data lines there are, and no problem of the whole file. */
async function countLines(db: Database, row: ImportRow, format: "CSV" | "XLSX", batchSize: number): Promise<ImportRow> {
  let total = 0;
  let encoding: string | null = null;
  let lastErrorLine = 0;
  for await (const batch of importBatches(db, row.id, format, batchSize)) {
    encoding = batch.encoding;
    const problem = batch.errors.find(isFileProblem);
    if (problem) throw new ImportStop(fileProblemMessage(problem));
    total += batch.rows.length + new Set(batch.errors.map((e) => e.line).filter((line) => line !== lastErrorLine)).size;
    if (batch.errors.length) lastErrorLine = batch.errors[batch.errors.length - 1]!.line;
  }
  const [counted] = await db
    .update(importTable)
    .set({ rowsTotal: total, ...(format === "CSV" && encoding ? { encoding } : {}), updatedAt: sql`now()` })
    .where(eq(importTable.id, row.id))
    .returning();
  return counted ?? row;
}

/**
 * The uploader as a viewer, as they are now: their rows are submitted as them, for their
 * organization's sites. An account disabled or moved since the upload stops the import.
 */
async function uploader(db: Database, row: ImportRow): Promise<Viewer> {
  const [user] = await db.execute<{ role: Viewer["role"]; organization_id: string | null; disabled: boolean; jid: number | null; jcode: string | null; jpath: string | null }>(
    sql`select u.role, u.organization_id, u.disabled_at is not null as disabled, r.id as jid, r.code as jcode, r.path as jpath
        from app_user u left join region r on r.id = u.jurisdiction_region_id where u.id = ${row.uploadedBy}`,
    "objects",
  );
  if (!user || user.disabled) {
    throw new ImportStop("the account that uploaded the file has been disabled since; ask a colleague with an active account to upload it again");
  }
  if ((user.role !== "REPORTER" && user.role !== "ADMIN") || (user.role === "REPORTER" && user.organization_id !== row.organizationId)) {
    throw new ImportStop("the uploader's role or organization has changed since the upload, so the rows cannot be submitted as them; upload the file again");
  }
  return {
    userId: row.uploadedBy,
    tokenId: row.tokenId,
    role: user.role,
    organizationId: user.organization_id,
    jurisdiction: user.jid !== null && user.jcode !== null && user.jpath !== null ? { id: user.jid, code: user.jcode, path: user.jpath } : null,
  };
}

function lineErrors(importId: string, errors: CsvLineError[]): RejectedRow[] {
  return errors.map((e) => ({ importId, line: e.line, field: e.column ?? null, message: e.message, rowValues: null }));
}

/** submitReports' rejections, by file line: its messages name the row's index in the batch, here its line. */
function rowErrors(importId: string, rows: CsvRow[], rejected: RowError[]): RejectedRow[] {
  const lineOf = (index: number) => rows[index]?.line ?? index;
  return rejected.map((r) => ({
    importId,
    line: lineOf(r.index),
    field: r.field,
    message: r.message.replace(/^row \d+: /, `line ${lineOf(r.index)}: `).replace(/\bas row (\d+);/, (_, i: string) => `as line ${lineOf(Number(i))};`),
    rowValues: rows[r.index]?.row ?? null,
  }));
}

// Receiving a report file (SPEC "Public API": importReportsCsv, and POST /imports): the bytes are
// written to Postgres in pieces as they arrive, so that neither the API process nor the worker that
// reads them later ever holds the whole file, and any worker on any machine can read it. A file
// that is refused (empty, not a CSV file or a workbook, too large, a header that is not one) leaves
// nothing behind; one that is accepted is queued for the imports.process job in the same
// transaction as its audit row.
import { createHash } from "node:crypto";
import { and, eq, isNull, ne, sql } from "drizzle-orm";
import type { Database } from "../../db/index.js";
import { importChunkTable, importTable } from "../../db/schema.js";
import { writeAudit } from "../audit.js";
import { DomainError, badInput, forbidden } from "../errors.js";
import { requestJobs } from "../outbox.js";
import { readReportsCsv } from "../reports/csv.js";
import { CONTROL, LONE_SURROGATE } from "../reports/validate.js";
import type { Actor, Viewer } from "../viewer.js";

export type ImportRow = typeof importTable.$inferSelect;
export type ImportFormat = NonNullable<ImportRow["format"]>;

/** Size of the stored pieces: large enough for few rows per file, small enough to hold one at a time. */
export const CHUNK_BYTES = 1024 * 1024;
/**
 * The first bytes, kept while the rest streams to the database. The CSV reader detects the
 * encoding from as many, and given exactly as many it takes more to follow, so a character cut at
 * their end is no decoding error.
 */
const HEAD_BYTES = 64 * 1024;
/** An upload that never finished (its API process died) is deleted by a later upload after this long. */
const ABANDONED_AFTER = sql.raw("interval '1 day'");

const HOW_TO_SAVE = 'save the report as "CSV UTF-8 (comma delimited)" or as an Excel workbook (.xlsx) and upload that';

/** Where an import's state and rejected lines are served (src/http/imports.ts), on the API's own host. */
export const importUrls = (id: string) => ({ statusUrl: `/imports/${id}`, rejectedRowsUrl: `/imports/${id}/rejected.csv` });

/** Job id of an import's n-th run: the first is `import-<id>`, a re-run after a failure gets a new one. */
export const importJobId = (id: string, run: number) => (run <= 1 ? `import-${id}` : `import-${id}-${run}`);

/** The file is larger than the upload limit. */
export class UploadTooLargeError extends DomainError {
  constructor(readonly limitBytes: number) {
    super(
      "BAD_INPUT",
      `the file is larger than the upload limit of ${formatBytes(limitBytes)} (UPLOAD_LIMIT_BYTES); split it into several files of fewer rows and upload each`,
      { reason: "PAYLOAD_TOO_LARGE", limitBytes },
    );
  }
}

export const formatBytes = (n: number) =>
  n >= 1024 * 1024 ? `${(n / (1024 * 1024)).toFixed(n % (1024 * 1024) === 0 ? 0 : 1)} MiB` : `${Math.ceil(n / 1024)} KiB`;

/** The idempotency key as stored (trimmed, null when blank), or a refusal that says what is wrong. */
export function importIdempotencyKey(key: string | null | undefined): string | null {
  const trimmed = key?.trim() || null;
  if (trimmed === null) return null;
  // The batches' keys derive from the import id, not from this one; it is still stored and quoted in messages.
  const problem =
    trimmed.length > 200 ? "is longer than 200 characters"
    : CONTROL.test(trimmed) ? "contains control characters"
    : LONE_SURROGATE.test(trimmed) ? "is not valid Unicode text (it holds half of a surrogate pair)"
    : null;
  if (problem) throw badInput(`idempotencyKey ${problem}; use a UUID or a short unique string`);
  return trimmed;
}

/** Only those who may submit reports may upload them (the rows are submitted as the uploader). */
export function checkUploader(viewer: Viewer | null): Viewer {
  if (!viewer || (viewer.role !== "REPORTER" && viewer.role !== "ADMIN")) {
    throw forbidden("only REPORTER and ADMIN users may upload report files");
  }
  return viewer;
}

/** A file whose bytes are stored (import status UPLOADING) and checked, waiting for finishUpload. */
export interface StagedUpload {
  id: string;
  sha256: string;
  size: number;
  format: ImportFormat;
  encoding: string | null;
}

/**
 * Stores the bytes of `source` as the pieces of a new import, hashing them on the way, then checks
 * what it can from the first bytes. Throws (a DomainError saying what to do) and leaves nothing when
 * the file is refused or the source fails.
 */
export async function stageUpload(
  db: Database,
  viewer: Viewer,
  source: AsyncIterable<Uint8Array>,
  options: { filename?: string | null; limitBytes: number },
): Promise<StagedUpload> {
  checkUploader(viewer);
  await db.execute(sql`delete from import where status = 'UPLOADING' and created_at < now() - ${ABANDONED_AFTER}`);
  const [row] = await db
    .insert(importTable)
    .values({
      organizationId: viewer.organizationId,
      uploadedBy: viewer.userId,
      tokenId: viewer.tokenId,
      filename: cleanFilename(options.filename),
    })
    .returning({ id: importTable.id });
  const id = row!.id;
  try {
    const hash = createHash("sha256");
    const head: Buffer[] = [];
    let headBytes = 0;
    let size = 0;
    let seq = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let checked: { format: ImportFormat; encoding: string | null } | null = null;
    const flush = async () => {
      if (pendingBytes === 0) return;
      const data = Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      await db.insert(importChunkTable).values({ importId: id, seq: seq++, data });
    };
    for await (const piece of source) {
      const bytes = Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
      if (bytes.length === 0) continue;
      size += bytes.length;
      if (size > options.limitBytes) throw new UploadTooLargeError(options.limitBytes);
      hash.update(bytes);
      if (headBytes < HEAD_BYTES) {
        const part = bytes.subarray(0, HEAD_BYTES - headBytes);
        head.push(Buffer.from(part));
        headBytes += part.length;
        // A file that is no report file is refused here, before the rest of it is stored.
        if (headBytes >= HEAD_BYTES) checked = await checkFile(Buffer.concat(head, headBytes), false);
      }
      pending.push(bytes);
      pendingBytes += bytes.length;
      // Written while the upload goes on: the loop pulls the next piece only once this is stored.
      if (pendingBytes >= CHUNK_BYTES) await flush();
    }
    await flush();
    const { format, encoding } = checked ?? (await checkFile(Buffer.concat(head, headBytes), true));
    const sha256 = hash.digest("hex");
    await db.update(importTable).set({ sha256, sizeBytes: size, format, encoding }).where(eq(importTable.id, id));
    return { id, sha256, size, format, encoding };
  } catch (error) {
    await discardUpload(db, id);
    throw error;
  }
}

/** Deletes an upload that will not be queued, with its pieces. */
export async function discardUpload(db: Database, id: string): Promise<void> {
  await db.delete(importTable).where(and(eq(importTable.id, id), eq(importTable.status, "UPLOADING")));
}

/**
 * Queues a staged upload, or answers with the import that already holds the same content (from
 * the uploader's organization, or for an admin without one, from the same user) or the same
 * idempotency key, discarding the new copy. A FAILED import uploaded again is queued again: it
 * resumes after its last stored batch. Returns the import and whether it was there before.
 */
export async function finishUpload(
  db: Database,
  actor: Actor,
  staged: StagedUpload,
  options: { idempotencyKey?: string | null },
): Promise<{ import: ImportRow; existing: boolean }> {
  const viewer = checkUploader(actor.viewer);
  const key = importIdempotencyKey(options.idempotencyKey);
  try {
    const result = await db.transaction(async (tx) => {
      // Two uploads of the same content (or key) at once: the second waits here and finds the first.
      const owner = viewer.organizationId ?? `user:${viewer.userId}`;
      await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`import:${owner}:${staged.sha256}`}, 0))`);
      if (key !== null) await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`import-key:${viewer.userId}:${key}`}, 0))`);
      if (key !== null) {
        const [same] = await tx
          .select()
          .from(importTable)
          .where(and(eq(importTable.uploadedBy, viewer.userId), eq(importTable.idempotencyKey, key), ne(importTable.status, "UPLOADING")));
        if (same) {
          if (same.sha256 !== staged.sha256) {
            throw new DomainError(
              "IDEMPOTENCY_KEY_REUSED",
              `idempotencyKey ${JSON.stringify(key)} was already used for another file (${same.filename ?? "import"} of ${same.createdAt.toISOString()}); use a new key for a new file`,
            );
          }
          return { import: await requeueIfFailed(tx, actor, same), existing: true };
        }
      }
      const [earlier] = await tx
        .select()
        .from(importTable)
        .where(
          and(
            viewer.organizationId !== null ? eq(importTable.organizationId, viewer.organizationId) : and(isNull(importTable.organizationId), eq(importTable.uploadedBy, viewer.userId)),
            eq(importTable.sha256, staged.sha256),
            ne(importTable.status, "UPLOADING"),
          ),
        );
      if (earlier) return { import: await requeueIfFailed(tx, actor, earlier), existing: true };

      const [queued] = await tx
        .update(importTable)
        .set({ status: "QUEUED", idempotencyKey: key, runs: 1, updatedAt: sql`now()` })
        .where(and(eq(importTable.id, staged.id), eq(importTable.status, "UPLOADING")))
        .returning();
      if (!queued) throw new Error(`upload ${staged.id} is no longer waiting to be queued`);
      await requestJobs(tx, [{ name: "imports.process", data: { importId: queued.id }, jobId: importJobId(queued.id, 1) }]);
      await writeAudit(tx, actor, {
        action: "reports.import",
        entityType: "import",
        entityId: queued.id,
        // Not the file name: it may well name a person.
        after: { id: queued.id, sha256: queued.sha256, sizeBytes: queued.sizeBytes, format: queued.format, idempotencyKey: key },
      });
      return { import: queued, existing: false };
    });
    if (result.existing) await discardUpload(db, staged.id);
    return result;
  } catch (error) {
    await discardUpload(db, staged.id);
    throw error;
  }
}

async function requeueIfFailed(tx: Database, actor: Actor, row: ImportRow): Promise<ImportRow> {
  if (row.status !== "FAILED") return row;
  const [again] = await tx
    .update(importTable)
    .set({ status: "QUEUED", runs: sql`${importTable.runs} + 1`, errorMessage: null, finishedAt: null, updatedAt: sql`now()` })
    .where(and(eq(importTable.id, row.id), eq(importTable.status, "FAILED")))
    .returning();
  await requestJobs(tx, [{ name: "imports.process", data: { importId: again!.id }, jobId: importJobId(again!.id, again!.runs) }]);
  await writeAudit(tx, actor, {
    action: "reports.import.retry",
    entityType: "import",
    entityId: row.id,
    before: { status: row.status, batchesDone: row.batchesDone },
    after: { status: again!.status, run: again!.runs },
  });
  return again!;
}

/** A file name as shown back: its last path segment, without control characters, at most 200 characters. */
function cleanFilename(name: string | null | undefined): string | null {
  const base = name?.split(/[\\/]/).pop()?.replace(new RegExp(CONTROL.source, "g"), "").replace(/\p{Cs}/gu, "").trim();
  return base ? base.slice(0, 200) : null;
}

/** Binary files people upload by mistake, by their first bytes. */
const NOT_A_REPORT_FILE: [number[], string][] = [
  [[0x25, 0x50, 0x44, 0x46], "a PDF document"],
  [[0x89, 0x50, 0x4e, 0x47], "a PNG image"],
  [[0xff, 0xd8, 0xff], "a JPEG image"],
  [[0x47, 0x49, 0x46, 0x38], "a GIF image"],
  [[0x1f, 0x8b], "a gzip archive"],
  [[0x37, 0x7a, 0xbc, 0xaf], "a 7-Zip archive"],
  [[0x52, 0x61, 0x72, 0x21], "a RAR archive"],
  [[0xd0, 0xcf, 0x11, 0xe0], "an old Excel .xls workbook (or another Office 97-2003 file)"],
];
const startsWith = (bytes: Buffer, magic: number[]) => magic.every((b, i) => bytes[i] === b);
const ZIP = [0x50, 0x4b, 0x03, 0x04];

/**
 * The format of a file from its first bytes (content, never the name: a workbook is a zip
 * archive), and for CSV files what the reader says about their first line, so that a file
 * whose header is wrong is refused at once instead of failing in the background. `whole`: the
 * bytes are the whole file.
 */
async function checkFile(first: Buffer, whole: boolean): Promise<{ format: ImportFormat; encoding: string | null }> {
  if (whole && first.toString("latin1").trim() === "") {
    throw badInput("the file is empty; upload a CSV file whose first line is the header (siteCode,productCode,date,unit,onHand,...) followed by one line per report, or an Excel workbook (.xlsx) laid out the same way");
  }
  if (startsWith(first, ZIP)) return { format: "XLSX", encoding: null };
  const known = NOT_A_REPORT_FILE.find(([magic]) => startsWith(first, magic));
  if (known) throw badInput(`the file is ${known[1]}, not a CSV file or an Excel .xlsx workbook; ${HOW_TO_SAVE}`);
  const utf16 =
    (first[0] === 0xff && first[1] === 0xfe) || (first[0] === 0xfe && first[1] === 0xff) || first[1] === 0 || first[0] === 0;
  if (!utf16 && first.includes(0)) throw badInput(`the file holds binary data (NUL bytes), so it is not a CSV file or an Excel .xlsx workbook; ${HOW_TO_SAVE}`);

  // The first line the reader finds: a row, a line error, or a problem of the whole file. Data
  // rows start on line 2 at the earliest, so an error on line 1 is always one of the whole file
  // (empty, undecodable, a header that is not one); the job reports any later one.
  const reader = readReportsCsv(
    (async function* () {
      yield first;
    })(),
    { batchSize: 1 },
  );
  try {
    const next = await reader.next();
    if (next.done) {
      if (whole) {
        throw badInput("the file holds a header but no report rows; add one line per report below the header and upload it again");
      }
      return { format: "CSV", encoding: null };
    }
    const [problem] = next.value.errors;
    if (problem && problem.line === 1 && next.value.rows.length === 0) throw badInput(`${problem.message}; nothing was stored, correct the file and upload it again`);
    return { format: "CSV", encoding: next.value.encoding };
  } finally {
    await reader.return(undefined);
  }
}

// Reading a stored import back, piece by piece, as batches of report rows: CSV files through the
// streaming CSV reader, .xlsx workbooks through read-excel-file and then the same reader, so both
// get the same header rules, the same cell checks and the same messages (the row number of the
// sheet is the line).
import { Readable } from "node:stream";
import { and, eq } from "drizzle-orm";
import { stringify } from "csv-stringify/sync";
import { readSheet } from "read-excel-file/node";
import type { Database } from "../../db/index.js";
import { importChunkTable } from "../../db/schema.js";
import { readReportsCsv, type CsvBatch, type CsvLineError } from "../reports/csv.js";
import type { ImportFormat } from "./upload.js";

/** A problem of the whole file: the import fails with this message and stores nothing. */
export class ImportFileProblem extends Error {}

/** The stored bytes of an import, one piece (about 1 MB) at a time. */
export async function* importBytes(db: Database, importId: string): AsyncGenerator<Buffer, void, undefined> {
  for (let seq = 0; ; seq++) {
    const [chunk] = await db
      .select({ data: importChunkTable.data })
      .from(importChunkTable)
      .where(and(eq(importChunkTable.importId, importId), eq(importChunkTable.seq, seq)));
    if (!chunk) return;
    const data = chunk.data as Uint8Array;
    yield Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  }
}

/** The file as batches of rows and line errors, in line order; the same batches on every reading. */
export function importBatches(db: Database, importId: string, format: ImportFormat, batchSize: number): AsyncGenerator<CsvBatch, void, undefined> {
  return format === "XLSX"
    ? readReportsCsv(workbookAsCsv(db, importId), { batchSize, encoding: "utf-8" })
    : readReportsCsv(importBytes(db, importId), { batchSize });
}

// readReportsCsv reports problems of the whole file as line errors too. Data rows start on line 2
// at the earliest, so an error on line 1 is always one (empty, undecodable, a header that is not
// one); further down, these are the endings of the reader's messages after which it stops reading.
const STOPPED_READING = /(No row was read|; rows before this line were read, the rest of the file was not)$/;

/** True when the error is about the file as a whole: reading stopped there. */
export const isFileProblem = (e: CsvLineError) => e.line === 1 || STOPPED_READING.test(e.message);

/** The message of a file problem, for an import that stored nothing because of it. */
export const fileProblemMessage = (e: CsvLineError) =>
  `${e.message.replace(/; rows before this line were read, the rest of the file was not$/, "")}; nothing was stored, correct the file and upload it again`;

/**
 * The first sheet of a workbook as CSV text, one line per sheet row (read-excel-file keeps empty
 * rows, so line n is row n): dates as YYYY-MM-DD, numbers as written by JavaScript (which the
 * reader reads back exactly), line breaks inside cells as spaces.
 */
async function* workbookAsCsv(db: Database, importId: string): AsyncGenerator<string, void, undefined> {
  let rows: unknown[][];
  try {
    // read-excel-file reads a workbook whole (its format keeps shared strings apart from the
    // sheet); the upload limit bounds it.
    rows = await readSheet(Readable.from(importBytes(db, importId)));
  } catch (error) {
    const name = (error as Error)?.name;
    if (name === "InvalidInputError" || name === "InvalidSpreadsheetError" || name === "SheetNotFoundError") {
      throw new ImportFileProblem(
        `the file is a zip archive but not an Excel workbook that can be read (${(error as Error).message}); save the report as an Excel workbook (.xlsx) or as "CSV UTF-8 (comma delimited)" and upload that`,
      );
    }
    throw error;
  }
  for (let at = 0; at < rows.length; at += 1000) {
    yield stringify(rows.slice(at, at + 1000).map((row) => row.map(cellText)), { record_delimiter: "\n" });
  }
}

function cellText(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? "" : value.toISOString().slice(0, 10);
  if (typeof value === "boolean") return value ? "TRUE" : "FALSE";
  return String(value).replace(/\r\n|\r|\n/g, " ");
}

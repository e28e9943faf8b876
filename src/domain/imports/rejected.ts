// The rejected lines of an import as a CSV file (GET /imports/<id>/rejected.csv): what was wrong,
// where, and the line's values in the upload's own columns, so the file can be corrected and sent
// again. Written a page at a time: an import of a bad file may reject every one of its lines.
import { sql } from "drizzle-orm";
import { stringify } from "csv-stringify/sync";
import type { Database } from "../../db/index.js";
import { CSV_COLUMNS } from "../reports/csv.js";

export const REJECTED_COLUMNS = ["line", "field", "message", ...CSV_COLUMNS] as const;
const PAGE = 1000;

const cell = (value: unknown) => (value === null || value === undefined ? "" : typeof value === "object" ? JSON.stringify(value) : String(value));

/**
 * The CSV text, in pieces: a byte-order mark (Excel reads UTF-8 as such only with one; the
 * upload accepts it), the header, then the rejected lines in line order.
 */
export async function* rejectedRowsCsv(db: Database, importId: string): AsyncGenerator<string, void, undefined> {
  yield `\uFEFF${stringify([REJECTED_COLUMNS as unknown as string[]], { record_delimiter: "\r\n" })}`;
  let after = { line: 0, id: "0" };
  for (;;) {
    const rows = await db.execute<{ id: string; line: number; field: string | null; message: string; row_values: Record<string, unknown> | null }>(
      sql`select id::text as id, line, field, message, row_values from import_rejected_row
          where import_id = ${importId}::uuid and (line, id) > (${after.line}::int, ${after.id}::bigint)
          order by line, id limit ${PAGE}`,
      "objects",
    );
    if (rows.length === 0) return;
    yield stringify(
      rows.map((r) => [String(r.line), r.field ?? "", r.message, ...CSV_COLUMNS.map((c) => cell(r.row_values?.[c]))]),
      { record_delimiter: "\r\n" },
    );
    const last = rows[rows.length - 1]!;
    after = { line: last.line, id: last.id };
  }
}

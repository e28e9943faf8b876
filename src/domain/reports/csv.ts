// The streaming reader of report CSV files (SPEC "Reports", "Public API": importReportsCsv).
// It turns bytes into rows for submitReports and line-numbered errors for the person who made the
// file, in constant memory: the source is read a chunk at a time, decoded, parsed by csv-parse and
// handed over in batches, so a file is never held whole.
//
// It checks the file (encoding, CSV structure, header, cells that cannot be numbers as sent); the
// rows' own checks are parseRow's (validate.ts), which the upload runs through submitReports.
import { CsvError, Parser } from "csv-parse";
import { MEASURES, type Measure, type ReportRowInput } from "./validate.js";

/** The columns of a report file, as the SPEC names them and in its order. */
export const CSV_COLUMNS = ["siteCode", "productCode", "date", "unit", ...MEASURES] as const;
export type CsvColumn = (typeof CSV_COLUMNS)[number];
const REQUIRED_COLUMNS: readonly CsvColumn[] = ["siteCode", "productCode", "date"];

/** One data record of the file: `line` is the line it starts on (the header is line 1). */
export interface CsvRow {
  line: number;
  row: ReportRowInput;
}

/** What is wrong with one line (or with the whole file, then on the line where reading stopped). */
export interface CsvLineError {
  line: number;
  /** The column the problem is in, by its SPEC name, when it is in one. */
  column?: string;
  message: string;
}

export type CsvEncoding = "utf-8" | "utf-16le" | "utf-16be" | "gb18030";

export interface CsvBatch {
  rows: CsvRow[];
  errors: CsvLineError[];
  /** How the file was decoded (detected from its first bytes). */
  encoding: CsvEncoding;
  /**
   * Bytes taken from the source so far (at most a chunk ahead of the rows handed over): against
   * the file's size, the progress of an import.
   */
  bytesRead: number;
}

export interface ReadReportsCsvOptions {
  /** Most rows plus errors per batch; default 1,000 (submitReports takes up to 5,000). */
  batchSize?: number;
  /** Force an encoding instead of detecting it. */
  encoding?: CsvEncoding;
}

export const DEFAULT_CSV_BATCH = 1000;
/** How many bytes the encoding is guessed from: enough for hundreds of lines of a real file. */
const SNIFF_BYTES = 64 * 1024;
/** Source chunks are cut to this size, so one huge chunk cannot make one huge batch. */
const FEED_BYTES = 64 * 1024;
/**
 * A report line is a dozen short cells; a record longer than this is an unclosed quote swallowing
 * the rest of the file, and without a bound it would be held in memory whole.
 */
const MAX_RECORD_CHARS = 64 * 1024;
/** How much of a wrong cell or header a message quotes. */
const MAX_SHOWN = 40;

// validate.ts's NUMBER (not exported there): cells it would accept are handed over as numbers.
const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
/**
 * "1,234", "1,234.5", "1.234,5", "1,5": a comma in a number is a thousands separator in some
 * places and a decimal comma in others (Excel writes what the machine's locale says), so it is
 * refused with an explanation rather than guessed: a wrong guess is off by a factor of 1,000.
 */
const COMMA_NUMBER = /^[+-]?[\d.]*\d,[\d.,]*$/;
const LINE_BREAK = /\r\n|\r|\n/g;

const HEADER_LIST = CSV_COLUMNS.join(",");
/** Header cell, normalized: case, spaces, "_" and "-" do not matter ("on_hand", "On Hand"). */
const normalizeName = (name: string) => name.trim().toLowerCase().replace(/[\s_-]+/g, "");
const COLUMN_BY_NAME = new Map<string, CsvColumn>(CSV_COLUMNS.map((c) => [normalizeName(c), c]));
const MEASURE_SET = new Set<string>(MEASURES);

const show = (s: string) => (s.length > MAX_SHOWN ? `${JSON.stringify(s.slice(0, MAX_SHOWN))}… (${s.length} characters)` : JSON.stringify(s));

/** A file problem found while reading: reading stops, the message says where and why. */
class StopReading extends Error {
  constructor(readonly lineError: CsvLineError) {
    super(lineError.message);
  }
}

/**
 * Reads a report CSV file as batches of rows (each with its line) and per-line errors, in file
 * order. Problems of the file or of a line are errors in the batches, never exceptions; an error
 * of the source itself (a broken upload stream) is thrown. Stopping the iteration early releases
 * the source.
 */
export async function* readReportsCsv(
  source: AsyncIterable<Uint8Array | string>,
  options: ReadReportsCsvOptions = {},
): AsyncGenerator<CsvBatch, void, undefined> {
  const chunks = byteChunks(source);
  try {
    yield* readChunks(chunks, options);
  } finally {
    // Whether the file was read to its end, refused early or left by the caller: release the source.
    await chunks.return(undefined);
  }
}

async function* readChunks(chunks: AsyncGenerator<Buffer, void, undefined>, options: ReadReportsCsvOptions): AsyncGenerator<CsvBatch, void, undefined> {
  const batchSize = Math.max(1, Math.floor(options.batchSize ?? DEFAULT_CSV_BATCH));
  let encoding: CsvEncoding = options.encoding ?? "utf-8";
  let rows: CsvRow[] = [];
  let errors: CsvLineError[] = [];
  let bytesRead = 0;
  const batch = (): CsvBatch => {
    const out = { rows, errors, encoding, bytesRead };
    rows = [];
    errors = [];
    return out;
  };

  // Sniff: gather the first bytes, then decide how to decode (BOM, else UTF-8 unless invalid).
  const head: Buffer[] = [];
  let headBytes = 0;
  let ended = false;
  for (;;) {
    if (headBytes >= SNIFF_BYTES) break;
    const next = await chunks.next();
    if (next.done) {
      ended = true;
      break;
    }
    head.push(next.value);
    headBytes += next.value.length;
    bytesRead += next.value.length;
  }
  const first = Buffer.concat(head);
  if (first.length === 0 || (ended && first.toString("latin1").trim() === "")) {
    yield { rows: [], errors: [emptyFile(1)], encoding, bytesRead };
    return;
  }
  const detected = options.encoding ? { encoding: options.encoding } : detectEncoding(first, ended);
  if ("problem" in detected) {
    yield { rows: [], errors: [{ line: 1, message: detected.problem }], encoding, bytesRead };
    return;
  }
  encoding = detected.encoding;

  // The header is the first record that is not blank; lines are counted here, not by csv-parse
  // (whose count is off by one per CRLF inside a quoted field).
  let nextLine = 1;
  let header: (CsvColumn | null)[] | null = null;
  const onRecord = (record: string[]) => {
    const line = nextLine;
    nextLine += 1 + lineBreaksIn(record);
    if (record.every((cell) => cell === "")) return; // blank line, or a row of commas from Excel
    if (header === null) {
      header = readHeader(record, line);
      return;
    }
    readRecord(record, line, header, encoding, rows, errors);
  };
  const parser = new Parser({
    // Line ends of any origin, each one line (as editors count them).
    record_delimiter: ["\r\n", "\n", "\r"],
    // Each record is checked against the header here, with a message that says so.
    relax_column_count: true,
    // `5" box`: a quote inside an unquoted cell is a character, as Excel writes it.
    relax_quotes: true,
    // Spaces around cells and around quoted cells (` "a,b" `) are not part of the value.
    trim: true,
    max_record_size: MAX_RECORD_CHARS,
    // Records are taken synchronously as they are parsed, so none is buffered in the stream and
    // every record before an error has been counted when the error comes.
    on_record: (record: string[]) => {
      onRecord(record);
      return null;
    },
  });
  parser.on("error", () => {}); // errors arrive through the write and end callbacks below
  parser.resume();
  const decoder = new TextDecoder(encoding); // drops a BOM; bad bytes become U+FFFD, flagged per cell
  const feed = (text: string) =>
    new Promise<Error | null | undefined>((resolve) => parser.write(Buffer.from(text, "utf8"), (error) => resolve(error)));
  const finish = () =>
    new Promise<Error | undefined>((resolve) => {
      parser.once("error", resolve);
      parser.once("finish", () => resolve(undefined));
      parser.end();
    });
  const stopped = (error: unknown): CsvLineError => {
    if (error instanceof StopReading) return error.lineError;
    if (error instanceof CsvError) return csvProblem(error, nextLine);
    throw error;
  };

  try {
    let pending: Buffer | null = first;
    let problem: CsvLineError | null = null;
    while (problem === null) {
      let bytes: Buffer | null = pending;
      pending = null;
      if (bytes === null && !ended) {
        const next = await chunks.next();
        if (next.done) ended = true;
        else {
          bytes = next.value;
          bytesRead += bytes.length;
        }
      }
      if (bytes === null) break;
      for (let at = 0; at < bytes.length && problem === null; at += FEED_BYTES) {
        const text = decoder.decode(bytes.subarray(at, at + FEED_BYTES), { stream: true });
        if (text === "") continue;
        try {
          const error = await feed(text);
          if (error) problem = stopped(error);
        } catch (error) {
          problem = stopped(error);
        }
        while (rows.length + errors.length >= batchSize) yield take(batchSize);
      }
    }
    if (problem === null) {
      const rest = decoder.decode();
      try {
        const error = (rest === "" ? undefined : await feed(rest)) ?? (await finish());
        if (error) problem = stopped(error);
      } catch (error) {
        problem = stopped(error);
      }
    }
    if (problem !== null) errors.push(problem);
    else if (header === null) errors.push(emptyFile(1));
    while (rows.length + errors.length > batchSize) yield take(batchSize);
    if (rows.length + errors.length > 0) yield batch();
  } finally {
    parser.destroy();
  }

  /** The first `n` rows and errors, in line order (an error and a row never share a line). */
  function take(n: number): CsvBatch {
    const out: CsvBatch = { rows: [], errors: [], encoding, bytesRead };
    let r = 0;
    let e = 0;
    while (r + e < n && (r < rows.length || e < errors.length)) {
      if (e >= errors.length || (r < rows.length && rows[r]!.line < errors[e]!.line)) out.rows.push(rows[r++]!);
      else out.errors.push(errors[e++]!);
    }
    rows = rows.slice(r);
    errors = errors.slice(e);
    return out;
  }
}

/** The source as Buffers, whatever it yields (a Readable with an encoding set yields strings). */
async function* byteChunks(source: AsyncIterable<Uint8Array | string>): AsyncGenerator<Buffer, void, undefined> {
  for await (const chunk of source) {
    if (typeof chunk === "string") yield Buffer.from(chunk, "utf8");
    else if (chunk.length > 0) yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
  }
}

const emptyFile = (line: number): CsvLineError => ({
  line,
  message: `the file is empty: the first line must be the header ${HEADER_LIST} (siteCode, productCode and date are required, the other columns optional), then one line per report`,
});

/**
 * The encoding of a file from its first bytes: a byte-order mark says it; else UTF-8 if they are
 * valid UTF-8 (ASCII is both); else GB18030, which older Chinese office software writes (a superset
 * of GBK and GB2312, and any byte sequence that is not UTF-8 is most likely it here).
 */
function detectEncoding(first: Buffer, whole: boolean): { encoding: CsvEncoding } | { problem: string } {
  if (first[0] === 0xef && first[1] === 0xbb && first[2] === 0xbf) return { encoding: "utf-8" };
  if (first[0] === 0xff && first[1] === 0xfe) return { encoding: "utf-16le" };
  if (first[0] === 0xfe && first[1] === 0xff) return { encoding: "utf-16be" };
  const save = "save it from the spreadsheet as \"CSV UTF-8 (comma delimited)\" and upload that";
  if (first[0] === 0x50 && first[1] === 0x4b && first[2] === 0x03 && first[3] === 0x04) {
    return { problem: `the file is a zip archive (an Excel .xlsx workbook?), not a CSV file; ${save}` };
  }
  if (first[0] === 0xd0 && first[1] === 0xcf && first[2] === 0x11 && first[3] === 0xe0) {
    return { problem: `the file is an old Excel .xls workbook, not a CSV file; ${save}` };
  }
  // UTF-16 without a byte-order mark: the header is ASCII, so every other byte is NUL.
  if (first.length >= 4 && first[0] !== 0 && first[1] === 0 && first[2] !== 0 && first[3] === 0) return { encoding: "utf-16le" };
  if (first.length >= 4 && first[0] === 0 && first[1] !== 0 && first[2] === 0 && first[3] !== 0) return { encoding: "utf-16be" };
  // A file that starts with a NUL byte is no text in any encoding read here.
  if (first[0] === 0) return { problem: `the file starts with NUL bytes, so it is not a text CSV file; ${save}` };
  try {
    // `stream` while more follows: the first bytes may end inside a character.
    new TextDecoder("utf-8", { fatal: true }).decode(first, { stream: !whole });
    return { encoding: "utf-8" };
  } catch {
    return { encoding: "gb18030" };
  }
}

/** Line breaks inside the cells of a record (a quoted cell may hold some). */
function lineBreaksIn(record: string[]): number {
  let n = 0;
  for (const cell of record) if (cell.includes("\n") || cell.includes("\r")) n += cell.match(LINE_BREAK)!.length;
  return n;
}

/** The columns of the header record, by position (null: an unnamed column, e.g. Excel's trailing ones). */
function readHeader(record: string[], line: number): (CsvColumn | null)[] {
  const columns: (CsvColumn | null)[] = [];
  const unknown: string[] = [];
  const seen = new Set<CsvColumn>();
  const twice = new Set<CsvColumn>();
  for (const cell of record) {
    // A BOM the decoder did not drop (a second one, or one in a forced encoding) is not a name.
    const name = cell.replace(/^\uFEFF/, "").trim();
    if (name === "") {
      columns.push(null);
      continue;
    }
    const column = COLUMN_BY_NAME.get(normalizeName(name));
    if (column === undefined) unknown.push(name);
    else if (seen.has(column)) twice.add(column);
    else seen.add(column);
    columns.push(column ?? null);
  }
  const problems: string[] = [];
  if (unknown.length) {
    const separator = record.length === 1 && /[;\t|]/.test(record[0]!) ? "; the columns must be separated by commas, not by ; or tabs" : "";
    problems.push(`unknown column${unknown.length > 1 ? "s" : ""} ${unknown.map(show).join(", ")}${separator}`);
  }
  if (twice.size) problems.push(`column${twice.size > 1 ? "s" : ""} ${[...twice].join(", ")} given more than once`);
  const missing = REQUIRED_COLUMNS.filter((c) => !seen.has(c));
  if (missing.length && !unknown.length) problems.push(`missing required column${missing.length > 1 ? "s" : ""} ${missing.join(", ")}`);
  else if (missing.length) problems.push(`required column${missing.length > 1 ? "s" : ""} ${missing.join(", ")} not found`);
  if (problems.length) {
    throw new StopReading({
      line,
      message: `line ${line}: the header is not valid: ${problems.join("; ")}. The header names the columns of the file, in any order and in any letter case: ${HEADER_LIST} (siteCode, productCode and date are required). No row was read`,
    });
  }
  return columns;
}

/** One data record: a row, or the errors of its line. */
function readRecord(
  record: string[],
  line: number,
  header: (CsvColumn | null)[],
  encoding: CsvEncoding,
  rows: CsvRow[],
  errors: CsvLineError[],
): void {
  if (record.length !== header.length) {
    errors.push({
      line,
      message: `line ${line}: has ${record.length} value${record.length === 1 ? "" : "s"}, the header has ${header.length} column${header.length === 1 ? "" : "s"}; a value with a comma or a line break must be quoted ("1,5")`,
    });
    return;
  }
  const before = errors.length;
  const row: Record<string, unknown> = {};
  for (let i = 0; i < record.length; i++) {
    const cell = record[i]!;
    if (cell === "") continue; // empty = absent (a correction keeps the stored value)
    const column = header[i];
    if (column === undefined || column === null) {
      errors.push({ line, message: `line ${line}: column ${i + 1} has no name in the header but holds ${show(cell)}; name it or leave it empty` });
      continue;
    }
    if (cell.includes("\uFFFD")) {
      errors.push({
        line,
        column,
        message: `line ${line}: ${column} holds bytes that are not valid ${encoding.toUpperCase()} text (read as ${show(cell)}); save the file as "CSV UTF-8" and upload it again`,
      });
      continue;
    }
    row[column] = MEASURE_SET.has(column) ? figure(cell, column as Measure, line, errors) : cell;
  }
  if (errors.length === before) rows.push({ line, row: row as ReportRowInput });
}

/**
 * A figure cell as submitReports should see it: a number when it is one, else the text as sent,
 * so that parseRow says what is wrong with it ("onHand must be a number, got \"abc\"", "must be
 * >= 0, got -5"). Numbers with a comma are refused here, see COMMA_NUMBER.
 */
function figure(cell: string, column: Measure, line: number, errors: CsvLineError[]): unknown {
  if (NUMBER.test(cell)) {
    const n = Number(cell);
    // Too large for a double: the text keeps what was written, for parseRow's message.
    return Number.isFinite(n) ? n : cell;
  }
  if (COMMA_NUMBER.test(cell)) {
    errors.push({
      line,
      column,
      message: `line ${line}: ${column} must be a number written without thousands separators and with a decimal point (1234 or 1.5), got ${show(cell)}; a comma is not read, as it is a thousands separator in some places and a decimal comma in others`,
    });
  }
  return cell;
}

/** A CSV structure error from csv-parse, as a message on the line of the record it stopped in. */
function csvProblem(error: CsvError, line: number): CsvLineError {
  const rest = "; rows before this line were read, the rest of the file was not";
  switch (error.code) {
    case "CSV_QUOTE_NOT_CLOSED":
      return { line, message: `line ${line}: a quoted value starting on this line is never closed (a closing " is missing)${rest}` };
    case "CSV_MAX_RECORD_SIZE":
      return {
        line,
        message: `line ${line}: the record starting on this line is longer than ${MAX_RECORD_CHARS.toLocaleString("en")} characters, most likely a " that is never closed${rest}`,
      };
    case "CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE":
    case "CSV_INVALID_CLOSING_QUOTE":
      return {
        line,
        message: `line ${line}: a quoted value is followed by more text before the next comma; inside quotes write a quote as "" ("5"" box")${rest}`,
      };
    default:
      return { line, message: `line ${line}: the file is not valid CSV here (${error.message})${rest}` };
  }
}

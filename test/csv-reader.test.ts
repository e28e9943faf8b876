// The report CSV reader (issue 8's upload reads through it): files as people make them (BOM or
// not, CRLF or LF, quoted cells, GB18030 from older Chinese office software, UTF-16), broken files
// (a line-numbered error, never an exception), a 100,000-row file read as a stream in bounded
// memory, and fast-check properties over random bytes, random CSV-ish text and random headers.
//
// The properties are reproducible: they run with CSV_SEED (fast-check prints the seed and path of
// a failure). Re-run one with CSV_SEED=<seed> npx vitest run test/csv-reader.test.ts, and longer
// with CSV_RUNS=<factor> (default 1).
import { Readable } from "node:stream";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CSV_COLUMNS, readReportsCsv, type CsvBatch, type CsvLineError, type CsvRow, type ReadReportsCsvOptions } from "../src/domain/reports/csv.js";
import { MEASURES, parseRow, type RowError } from "../src/domain/reports/validate.js";

const SEED = Number(process.env.CSV_SEED ?? 20261122);
const RUNS = Number(process.env.CSV_RUNS ?? 1);
const runs = (n: number) => Math.max(1, Math.round(n * RUNS));
const check = (property: fc.IAsyncProperty<any>, numRuns: number) => fc.assert(property, { seed: SEED, numRuns: runs(numRuns) });

const HEADER = CSV_COLUMNS.join(",");
const FIELDS = new Set<string>(CSV_COLUMNS);

/** The bytes as a source of chunks of the given sizes (cycled), as an upload stream delivers them. */
async function* chunked(bytes: Uint8Array, sizes: readonly number[] = [bytes.length || 1]): AsyncGenerator<Buffer> {
  let i = 0;
  for (let at = 0; at < bytes.length; i++) {
    const size = Math.max(1, sizes[i % sizes.length]!);
    yield Buffer.from(bytes.subarray(at, at + size));
    at += size;
  }
}

interface ReadResult {
  rows: CsvRow[];
  errors: CsvLineError[];
  batches: CsvBatch[];
}

async function read(input: Uint8Array | string, options?: ReadReportsCsvOptions & { chunks?: number[] }): Promise<ReadResult> {
  const bytes = typeof input === "string" ? Buffer.from(input, "utf8") : input;
  const batches: CsvBatch[] = [];
  for await (const batch of readReportsCsv(chunked(bytes, options?.chunks), options)) batches.push(batch);
  return { rows: batches.flatMap((b) => b.rows), errors: batches.flatMap((b) => b.errors), batches };
}

/** Lines of the text, as the reader counts them (a line break of any kind ends one). */
const lineCount = (text: string) => (text.match(/\r\n|\r|\n/g)?.length ?? 0) + 1;

/** Every error is on a line of the file, says where it is, and names a real column if any. */
function expectWellFormedErrors(errors: CsvLineError[], lines: number) {
  for (const e of errors) {
    expect(Number.isInteger(e.line)).toBe(true);
    expect(e.line).toBeGreaterThanOrEqual(1);
    expect(e.line).toBeLessThanOrEqual(lines);
    expect(e.message.length).toBeGreaterThan(10);
    expect(e.message.startsWith(`line ${e.line}: `) || e.message.startsWith("the file ")).toBe(true);
    if (e.column !== undefined) {
      expect(FIELDS.has(e.column)).toBe(true);
      expect(e.message).toContain(e.column);
    }
  }
}

/** Runs parseRow (submitReports' own checks) on every row: it must not throw, whatever the row. */
function validate(rows: CsvRow[]) {
  const errors: RowError[] = [];
  const parsed = rows.map((r, i) => parseRow(r.row, i, errors));
  for (const e of errors) {
    expect(e.field === null || FIELDS.has(e.field)).toBe(true);
    expect(e.message).toMatch(/^row \d+: /);
  }
  return { parsed, errors };
}

describe("good files", () => {
  const body = [
    "HZ-MASK-1,MASK-N95,2026-03-01,box,120,40,50,,,10,5,0",
    '"HZ, Xihu",mask-n95,2026-03-02,,"7",,,,,,,',
    '"multi\nline",MASK-N95,2026-03-03,,1e3,,,,,,,',
    'HZ-MASK-1,MASK-N95,2026-03-04,"5"" box",.5,,,,,,,24',
  ];
  for (const bom of [false, true]) {
    for (const eol of ["\n", "\r\n"]) {
      it(`reads rows with their lines (${bom ? "with" : "without"} BOM, ${eol === "\n" ? "LF" : "CRLF"})`, async () => {
        const text = (bom ? "\uFEFF" : "") + `${[HEADER, ...body].join("\n")}\n`.replace(/\n/g, eol);
        // One byte at a time as well: a BOM, a CRLF and the characters split across chunks.
        for (const chunks of [undefined, [1], [3, 7]]) {
          const { rows, errors, batches } = await read(text, { chunks });
          expect(errors).toEqual([]);
          expect(batches.every((b) => b.encoding === "utf-8")).toBe(true);
          expect(rows.map((r) => r.line)).toEqual([2, 3, 4, 6]);
          expect(rows[0]!.row).toEqual({
            siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: "2026-03-01", unit: "box",
            onHand: 120, produced: 40, capacityPerDay: 50, shipped: 10, backlog: 5, stockoutHours: 0,
          });
          expect(rows[1]!.row).toEqual({ siteCode: "HZ, Xihu", productCode: "mask-n95", date: "2026-03-02", onHand: 7 });
          expect(rows[2]!.row.siteCode).toBe(`multi${eol}line`);
          expect(rows[2]!.row.onHand).toBe(1000);
          expect(rows[3]!.row).toMatchObject({ unit: '5" box', onHand: 0.5, stockoutHours: 24 });
          const { errors: rowErrors } = validate(rows);
          // Only the code with a line break is refused, by submitReports' own check.
          expect(rowErrors.map((e) => [e.index, e.field])).toEqual([[2, "siteCode"]]);
        }
      });
    }
  }

  it("takes the header in any order, letter case and spacing, and old Mac CR line ends", async () => {
    const { rows, errors } = await read(" ONHAND ,Date,site_code,Product Code\r5,2026-03-01,S1,P1\r\r,2026-03-02,S2,P2\r");
    expect(errors).toEqual([]);
    expect(rows).toEqual([
      { line: 2, row: { onHand: 5, date: "2026-03-01", siteCode: "S1", productCode: "P1" } },
      { line: 4, row: { date: "2026-03-02", siteCode: "S2", productCode: "P2" } },
    ]);
    // An absent figure stays absent, and submitReports says the row has none.
    expect(validate(rows).errors.map((e) => e.message)).toEqual([expect.stringContaining("row 1: no figures given")]);
  });

  it("skips blank lines and rows of commas, and ignores empty unnamed columns (Excel's trailing ones)", async () => {
    const { rows, errors } = await read("siteCode,productCode,date,onHand,,\n\nS,P,2026-03-01,1,,\n,,,,,\n  \nS,P,2026-03-02,2,,\nS,P,2026-03-03,3,x,\n");
    expect(rows.map((r) => [r.line, r.row.onHand])).toEqual([[3, 1], [6, 2]]);
    expect(errors).toEqual([{ line: 7, message: expect.stringMatching(/^line 7: column 5 has no name in the header but holds "x"/) }]);
  });

  it("reads a GB18030 file (older Chinese office software), detected from its bytes, in any chunking", async () => {
    // 杭州 = BA BC D6 DD, 箱 = CF E4 (GBK, a subset of GB18030); 𠀀 (U+20000) = 95 32 82 36, four bytes.
    const gb = (...parts: (string | number[])[]) => Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "latin1") : Buffer.from(p))));
    const file = gb(
      "siteCode,productCode,date,unit,onHand\r\n",
      [0xba, 0xbc, 0xd6, 0xdd], "-1,MASK-N95,2026-03-01,", [0xcf, 0xe4], ",12\r\n",
      '"', [0x95, 0x32, 0x82, 0x36], ', ', [0xcf, 0xe4], '",MASK-N95,2026-03-02,', [0xcf, 0xe4], ",3\r\n",
    );
    for (const chunks of [undefined, [1], [2, 3]]) {
      const { rows, errors, batches } = await read(file, { chunks });
      expect(errors).toEqual([]);
      expect(batches[0]!.encoding).toBe("gb18030");
      expect(rows).toEqual([
        { line: 2, row: { siteCode: "杭州-1", productCode: "MASK-N95", date: "2026-03-01", unit: "箱", onHand: 12 } },
        { line: 3, row: { siteCode: "𠀀, 箱", productCode: "MASK-N95", date: "2026-03-02", unit: "箱", onHand: 3 } },
      ]);
      expect(validate(rows).errors).toEqual([]);
    }
  });

  it("reads UTF-16 with a byte-order mark, or without one (told by the NUL bytes of the header), little and big endian", async () => {
    const text = "siteCode,productCode,date,unit,onHand\n杭州-1,MASK-N95,2026-03-01,箱,12\n";
    const le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, "utf16le")]);
    const be = Buffer.from(le);
    be.swap16();
    for (const [file, encoding] of [[le, "utf-16le"], [be, "utf-16be"], [le.subarray(2), "utf-16le"], [be.subarray(2), "utf-16be"]] as const) {
      const { rows, errors, batches } = await read(file, { chunks: [5] });
      expect(errors).toEqual([]);
      expect(batches[0]!.encoding).toBe(encoding);
      expect(rows).toEqual([{ line: 2, row: { siteCode: "杭州-1", productCode: "MASK-N95", date: "2026-03-01", unit: "箱", onHand: 12 } }]);
    }
  });

  it("hands over batches of at most batchSize, in line order", async () => {
    const lines = Array.from({ length: 25 }, (_, i) => (i % 5 === 4 ? "S,P,2026-03-01,1,2" : `S,P,2026-03-01,${i}`));
    const { batches } = await read([HEADER.split(",").slice(0, 4).join(","), ...lines].join("\n"), { batchSize: 7 });
    expect(batches.map((b) => b.rows.length + b.errors.length)).toEqual([7, 7, 7, 4]);
    const order = batches.flatMap((b) => [...b.rows.map((r) => r.line), ...b.errors.map((e) => e.line)].sort((x, y) => x - y));
    expect(order).toEqual(Array.from({ length: 25 }, (_, i) => i + 2));
  });

  it("accepts a Node Readable, including one that yields strings", async () => {
    const text = "siteCode,productCode,date,onHand\nS,P,2026-03-01,1\n";
    for (const source of [Readable.from([Buffer.from(text)]), Readable.from([text]), Readable.from([Buffer.from(text)]).setEncoding("utf8")]) {
      const rows: CsvRow[] = [];
      for await (const batch of readReportsCsv(source)) rows.push(...batch.rows);
      expect(rows).toEqual([{ line: 2, row: { siteCode: "S", productCode: "P", date: "2026-03-01", onHand: 1 } }]);
    }
  });
});

describe("files with problems", () => {
  it("an empty file (or only blank lines) is one clear error", async () => {
    for (const file of ["", "\uFEFF", "\n\r\n  \n", ",,,\n"]) {
      const { rows, errors } = await read(file);
      expect(rows).toEqual([]);
      expect(errors).toEqual([{ line: 1, message: expect.stringMatching(/^the file is empty: the first line must be the header siteCode,productCode,date,unit,onHand,/) }]);
    }
  });

  it("a file of only a header has no rows and no error", async () => {
    for (const file of [HEADER, `${HEADER}\r\n`, `\uFEFF${HEADER}\n\n`]) expect(await read(file)).toMatchObject({ rows: [], errors: [] });
  });

  it("a bad header is one error naming the unknown, missing or repeated columns and the allowed ones", async () => {
    const unknown = await read("siteCode,productCode,date,onHnad,foo\nS,P,2026-03-01,1,2\n");
    expect(unknown.rows).toEqual([]);
    expect(unknown.errors).toHaveLength(1);
    expect(unknown.errors[0]!.line).toBe(1);
    expect(unknown.errors[0]!.message).toMatch(/^line 1: the header is not valid: unknown columns "onHnad", "foo"\. .*siteCode,productCode,date,unit,onHand,produced,capacityPerDay,consumed,received,shipped,backlog,stockoutHours/);

    const missing = await read("siteCode,onHand\nS,1\n");
    expect(missing.errors).toEqual([{ line: 1, message: expect.stringContaining("missing required columns productCode, date") }]);
    const twice = await read("siteCode,productCode,date,onHand,ON_HAND\n");
    expect(twice.errors).toEqual([{ line: 1, message: expect.stringContaining("column onHand given more than once") }]);
    const semicolons = await read("siteCode;productCode;date;onHand\nS;P;2026-03-01;1\n");
    expect(semicolons.errors[0]!.message).toContain("separated by commas, not by ; or tabs");
    // The header is the first line that is not blank.
    expect((await read("\n\nsiteCode,nope\n")).errors[0]!.line).toBe(3);
  });

  it("a line with more or fewer values than the header is an error on that line; the others are read", async () => {
    const { rows, errors } = await read("siteCode,productCode,date,onHand\nS,P,2026-03-01\nS,P,2026-03-02,1,234\nS,P,2026-03-03,3\n");
    expect(rows.map((r) => r.line)).toEqual([4]);
    expect(errors).toEqual([
      { line: 2, message: expect.stringMatching(/^line 2: has 3 values, the header has 4 columns/) },
      { line: 3, message: expect.stringMatching(/^line 3: has 5 values, the header has 4 columns; a value with a comma .* must be quoted/) },
    ]);
  });

  it("refuses numbers with a comma (thousands separator or decimal comma) rather than guessing", async () => {
    const { rows, errors } = await read('siteCode,productCode,date,onHand,produced\nS,P,2026-03-01,"1,234",1\nS,P,2026-03-02,1,"1,5"\nS,P,2026-03-03,"1.234,5",\n');
    expect(rows).toEqual([]);
    expect(errors.map((e) => [e.line, e.column])).toEqual([[2, "onHand"], [3, "produced"], [4, "onHand"]]);
    expect(errors[0]!.message).toBe(
      'line 2: onHand must be a number written without thousands separators and with a decimal point (1234 or 1.5), got "1,234"; a comma is not read, as it is a thousands separator in some places and a decimal comma in others',
    );
  });

  it("hands other wrong figures to submitReports' checks, which say what is wrong", async () => {
    const { rows, errors } = await read(`siteCode,productCode,date,onHand,stockoutHours\nS,P,2026-03-01,-5,\nS,P,2026-03-02,abc,\nS,P,2026-03-03,1${"0".repeat(400)},\nS,P,2026-03-04,1,25\n`);
    expect(errors).toEqual([]);
    expect(rows.map((r) => r.row.onHand)).toEqual([-5, "abc", `1${"0".repeat(400)}`, 1]);
    expect(validate(rows).errors.map((e) => e.message)).toEqual([
      "row 0: onHand must be >= 0, got -5",
      'row 1: onHand must be a number, got "abc"',
      expect.stringMatching(/^row 2: onHand must be a finite number, got "1000/),
      "row 3: stockoutHours must be between 0 and 24, got 25",
    ]);
  });

  it("an unclosed quote stops reading with an error on the line where it opens; the rows before are read", async () => {
    const { rows, errors } = await read('siteCode,productCode,date,onHand\r\nS,P,2026-03-01,1\r\n"S\r\nX",P,2026-03-02,2\r\nS,"P,2026-03-03,3\r\nS,P,2026-03-04,4\r\n');
    expect(rows.map((r) => r.line)).toEqual([2, 3]);
    expect(errors).toEqual([{ line: 5, message: expect.stringMatching(/^line 5: a quoted value starting on this line is never closed .* the rest of the file was not/) }]);
  });

  it("an unclosed quote early in a long file stops at a bounded record size instead of holding the file", async () => {
    const file = `siteCode,productCode,date,onHand\nS,"P,2026-03-01,1\n${"S,P,2026-03-02,1\n".repeat(20_000)}`;
    const { rows, errors } = await read(file);
    expect(rows).toEqual([]);
    expect(errors).toEqual([{ line: 2, message: expect.stringMatching(/^line 2: the record starting on this line is longer than 65,536 characters, most likely a " that is never closed/) }]);
  });

  it("text after a closing quote is an error on its line", async () => {
    const { errors } = await read('siteCode,productCode,date,onHand\nS,P,2026-03-01,1\nS,"P"x,2026-03-02,1\n');
    expect(errors).toEqual([{ line: 3, message: expect.stringMatching(/^line 3: a quoted value is followed by more text/) }]);
  });

  it("bytes that are not valid in the detected encoding are an error naming the line and column", async () => {
    // ASCII for the first 64 KiB (read as UTF-8), then a GBK byte pair: UTF-8 cannot read it.
    const filler = "S,P,2026-03-01,1\n".repeat(5000);
    const file = Buffer.concat([Buffer.from(`siteCode,productCode,date,unit\n${filler}`), Buffer.from("S,P,2026-03-02,"), Buffer.from([0xcf, 0xe4]), Buffer.from("\n")]);
    const { rows, errors } = await read(file, { chunks: [4096] });
    expect(rows).toHaveLength(5000);
    expect(errors).toEqual([{ line: 5002, column: "unit", message: expect.stringMatching(/^line 5002: unit holds bytes that are not valid UTF-8 text .*save the file as "CSV UTF-8"/) }]);
  });

  it("a forced encoding reads what detection cannot (GB18030 after 64 KiB of ASCII)", async () => {
    const filler = "S,P,2026-03-01,1\n".repeat(5000);
    const file = Buffer.concat([Buffer.from(`siteCode,productCode,date,unit\n${filler}S,P,2026-03-02,`), Buffer.from([0xcf, 0xe4]), Buffer.from("\n")]);
    const { rows, errors, batches } = await read(file, { chunks: [4096], encoding: "gb18030" });
    expect(errors).toEqual([]);
    expect(rows.at(-1)).toEqual({ line: 5002, row: { siteCode: "S", productCode: "P", date: "2026-03-02", unit: "箱" } });
    // bytesRead, for an import's progress: it grows with the batches and ends at the file's size.
    const progress = batches.map((b) => b.bytesRead);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(progress.at(-1)).toBe(file.length);
  });

  it("a workbook or a binary file is refused as not CSV", async () => {
    let released = false;
    async function* workbook() {
      try {
        yield Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x06, 0x00]);
        for (;;) yield Buffer.alloc(4096, 0x41);
      } finally {
        released = true;
      }
    }
    const xlsx: CsvLineError[] = [];
    for await (const batch of readReportsCsv(workbook())) xlsx.push(...batch.errors);
    expect(xlsx).toEqual([{ line: 1, message: expect.stringContaining("Excel .xlsx workbook") }]);
    // Refused from its first bytes: the rest is not read, and the source is released.
    expect(released).toBe(true);
    const binary = await read(Buffer.from([0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x7f]));
    expect(binary.errors).toEqual([{ line: 1, message: expect.stringContaining("starts with NUL bytes") }]);
  });

  it("an error of the source itself is thrown, not reported as a line", async () => {
    async function* broken() {
      yield Buffer.from("siteCode,productCode,date,onHand\nS,P,2026-03-01,1\n");
      throw new Error("connection reset");
    }
    await expect(async () => {
      for await (const batch of readReportsCsv(broken())) void batch;
    }).rejects.toThrow("connection reset");
  });

  it("stopping early releases the source", async () => {
    let released = false;
    async function* endless() {
      try {
        yield Buffer.from(`${HEADER}\n`);
        for (;;) yield Buffer.from("S,P,2026-03-01,,1,,,,,,,\n".repeat(100));
      } finally {
        released = true;
      }
    }
    for await (const batch of readReportsCsv(endless(), { batchSize: 10 })) {
      expect(batch.rows).toHaveLength(10);
      break;
    }
    expect(released).toBe(true);
  });
});

describe("a large file", () => {
  it("reads 100,000 rows as a stream in bounded memory, pulling the source only as batches are taken", async () => {
    const ROWS = 100_000;
    let pulledBytes = 0;
    let pulledRows = 0;
    async function* generated() {
      yield Buffer.from(`${HEADER}\r\n`);
      for (let i = 0; i < ROWS; i += 100) {
        let chunk = "";
        for (let j = i; j < i + 100; j++) {
          chunk += `SITE-${j % 997},"MASK-N95",${2026 - (j % 3)}-0${1 + (j % 9)}-1${j % 10},箱,${j},${j % 7},,${j % 11}.5,,,${j % 13},\r\n`;
        }
        pulledBytes += Buffer.byteLength(chunk);
        pulledRows += 100;
        yield Buffer.from(chunk);
      }
    }
    const before = process.memoryUsage().heapUsed;
    let maxGrowth = 0;
    let maxAhead = 0;
    let seen = 0;
    let lastLine = 1;
    let validated = 0;
    for await (const batch of readReportsCsv(Readable.from(generated()), { batchSize: 1000 })) {
      expect(batch.errors).toEqual([]);
      expect(batch.rows.length).toBeLessThanOrEqual(1000);
      for (const r of batch.rows) {
        expect(r.line).toBe(lastLine + 1);
        lastLine = r.line;
      }
      seen += batch.rows.length;
      // Streaming: the reader is never far ahead of what it handed over (a chunk of its own and
      // the stream's buffer), whatever the file's size.
      maxAhead = Math.max(maxAhead, pulledRows - seen);
      maxGrowth = Math.max(maxGrowth, process.memoryUsage().heapUsed - before);
      if (seen % 10_000 === 0) {
        const errors: RowError[] = [];
        batch.rows.forEach((r, i) => parseRow(r.row, i, errors));
        expect(errors).toEqual([]);
        validated += batch.rows.length;
      }
    }
    expect(seen).toBe(ROWS);
    expect(lastLine).toBe(ROWS + 1);
    expect(validated).toBe(10_000);
    expect(pulledBytes).toBeGreaterThan(5_000_000);
    expect(maxAhead).toBeLessThan(5000);
    expect(maxGrowth).toBeLessThan(100 * 1024 * 1024);
  });
});

// --- properties -----------------------------------------------------------------------------

/** Cells of every kind a spreadsheet or a hostile client may write. */
const cell = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom("", " ", "S1", "杭州-1", "MASK-N95", "2026-03-01", "2026-02-30", "箱", "box", "0", "12", "-5", "1e3", ".5", "1,234", "1.234,5", "NaN", "Infinity", "\uFEFF", "\u0000", "\uFFFD") },
  { weight: 2, arbitrary: fc.double({ noNaN: false }).map(String) },
  { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom('"', ",", "\n", "\r", " ", "a", "1", ".", "箱", "\t", "\u0001") , maxLength: 12 }) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 8 }) },
);

/** A header name: a real column in any spelling, an unknown name, or nothing. */
const headerName = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...CSV_COLUMNS).chain((c) => fc.constantFrom(c, c.toLowerCase(), c.toUpperCase(), ` ${c} `, c.replace(/([A-Z])/g, "_$1"))) },
  { weight: 1, arbitrary: fc.constantFrom("", "foo", "site", "on hand ", "Σ") },
);

const quoteCell = (v: string, mode: "always" | "needed" | "never") =>
  mode === "never" || (mode === "needed" && !/[",\r\n]|^\s|\s$/u.test(v)) ? v : `"${v.replace(/"/g, '""')}"`;

describe("properties", () => {
  it("random bytes in random chunks: never throws; every error is on a line of the file; rows validate without throwing", async () => {
    await check(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 600 }),
          // Bytes after a real header, so the data path is taken as well.
          fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.concat([Buffer.from(`${HEADER}\n`), b])),
        ),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 4 }),
        async (bytes, chunks) => {
          const { rows, errors, batches } = await read(bytes, { chunks });
          const encoding = batches[0]?.encoding ?? "utf-8";
          const lines = lineCount(new TextDecoder(encoding).decode(bytes));
          expectWellFormedErrors(errors, lines);
          for (const r of rows) expect(r.line).toBeGreaterThanOrEqual(2);
          for (const r of rows) expect(r.line).toBeLessThanOrEqual(lines);
          validate(rows);
        },
      ),
      300,
    );
  });

  it("random CSV-ish files: every data line is a row or errors, at the line it starts on, with its cells as written", async () => {
    await check(
      fc.asyncProperty(
        fc.uniqueArray(fc.constantFrom(...CSV_COLUMNS), { minLength: 1, maxLength: CSV_COLUMNS.length }),
        fc.array(fc.array(cell, { maxLength: 14 }), { maxLength: 12 }),
        fc.constantFrom<"always" | "needed">("always", "needed"),
        fc.constantFrom("\n", "\r\n", "\r"),
        fc.boolean(),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 3 }),
        async (columns, records, mode, eol, bom, chunks) => {
          // Shape most records like the header, so that most reach the cell checks.
          const shaped = records.map((r, i) => (i % 3 === 2 ? r : columns.map((_, j) => r[j] ?? "")));
          let text = (bom ? "\uFEFF" : "") + columns.join(",") + eol;
          let line = 2;
          const starts: number[] = [];
          for (const r of shaped) {
            starts.push(line);
            const written = r.map((v) => quoteCell(v, mode)).join(",") + eol;
            text += written;
            line += (written.match(/\r\n|\r|\n/g)?.length ?? 0);
          }
          const { rows, errors } = await read(text, { chunks });
          expectWellFormedErrors(errors, lineCount(text));
          const valid = ["siteCode", "productCode", "date"].every((c) => columns.includes(c as never));
          if (!valid) {
            expect(rows).toEqual([]);
            expect(errors).toEqual([{ line: 1, message: expect.stringContaining("missing required column") }]);
            return;
          }
          const rowAt = new Map(rows.map((r) => [r.line, r.row]));
          const errorLines = new Set(errors.map((e) => e.line));
          shaped.forEach((r, i) => {
            const at = starts[i]!;
            // Cells as the file holds them: the UTF-8 round trip turns lone surrogates into U+FFFD.
            const cells = r.map((v) => Buffer.from(v, "utf8").toString("utf8"));
            if (cells.every((v) => v === "")) {
              expect(rowAt.has(at) || errorLines.has(at)).toBe(false);
              return;
            }
            // A line is a row or errors, never both, never neither.
            expect(rowAt.has(at) !== errorLines.has(at)).toBe(true);
            const row = rowAt.get(at);
            if (!row) return;
            expect(cells).toHaveLength(columns.length);
            const expected: Record<string, unknown> = {};
            columns.forEach((c, j) => {
              const v = cells[j]!;
              if (v === "") return;
              const number = (MEASURES as readonly string[]).includes(c) && /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(v) && Number.isFinite(Number(v));
              expected[c] = number ? Number(v) : v;
            });
            expect(row).toEqual(expected);
          });
          validate(rows);
        },
      ),
      300,
    );
  });

  it("random headers: valid ones read every row; any other is one error at line 1 naming the problem", async () => {
    await check(
      // A header of blank names is a blank line, and the header is the first line that is not.
      fc.asyncProperty(fc.array(headerName, { minLength: 1, maxLength: 14 }).filter((names) => names.some((n) => n.trim() !== "")), async (names) => {
        const text = `${names.join(",")}\n${names.map(() => "").join(",")}\n${names.map((n, i) => (n.trim() === "" ? "" : i + 1)).join(",")}\n`;
        const { rows, errors } = await read(text);
        const norm = (n: string) => n.trim().toLowerCase().replace(/[\s_-]+/g, "");
        const named = names.filter((n) => n.trim() !== "");
        const known = named.map((n) => CSV_COLUMNS.find((c) => norm(c) === norm(n)));
        const unknown = named.filter((_, i) => known[i] === undefined);
        const resolved = known.filter((c) => c !== undefined);
        const ok = unknown.length === 0 && new Set(resolved).size === resolved.length && ["siteCode", "productCode", "date"].every((c) => resolved.includes(c as never));
        if (ok) {
          expect(errors).toEqual([]);
          expect(rows.map((r) => r.line)).toEqual([3]);
        } else {
          expect(rows).toEqual([]);
          expect(errors).toHaveLength(1);
          expect(errors[0]!.line).toBe(1);
          for (const u of unknown) expect(errors[0]!.message).toContain(JSON.stringify(u.trim()));
          expect(errors[0]!.message).toContain(HEADER);
        }
      }),
      300,
    );
  });

  it("random CSV-ish text with stray quotes: never throws; errors on lines of the file; rows validate", async () => {
    await check(
      fc.asyncProperty(
        fc.array(fc.array(cell, { maxLength: 13 }), { maxLength: 10 }),
        fc.constantFrom<"always" | "needed" | "never">("never", "needed"),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 3 }),
        async (records, mode, chunks) => {
          const text = `${HEADER}\n${records.map((r) => r.map((v) => quoteCell(v, mode)).join(",")).join("\n")}`;
          const { rows, errors } = await read(text, { chunks });
          const lines = lineCount(Buffer.from(text).toString("utf8"));
          expectWellFormedErrors(errors, lines);
          for (const r of rows) expect(r.line).toBeLessThanOrEqual(lines);
          validate(rows);
        },
      ),
      300,
    );
  });
});

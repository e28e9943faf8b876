import { eq, inArray, sql, type AnyColumn, type SQL } from "drizzle-orm";
import { alias } from "drizzle-orm/pg-core";
import { z } from "zod";
import type { Database } from "../db/index.js";
import { regionLevelEnum, regionTable, siteTable } from "../db/schema.js";
import { writeAudit } from "./audit.js";
import { badInput } from "./errors.js";
import type { RegionLevel } from "./types.js";
import type { Actor, Viewer } from "./viewer.js";
import { parseInput } from "./validation.js";

export const REGION_LEVELS = regionLevelEnum.enumValues;
const LEVEL_RANK: Record<RegionLevel, number> = { COUNTRY: 0, PROVINCE: 1, CITY: 2, COUNTY: 3 };

const regionInput = z.object({
  code: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/, "code must be 1-32 letters, digits, '.', '_' or '-'"),
  name: z.string().trim().min(1, "name must not be empty").max(200),
  level: z.enum(REGION_LEVELS, { message: `level must be one of ${REGION_LEVELS.join(", ")}` }),
  parentCode: z.string().trim().min(1).nullish(),
  latitude: z.number().min(-90).max(90).nullish(),
  longitude: z.number().min(-180).max(180).nullish(),
  population: z.number().int().min(0).nullish(),
});
export type RegionInput = z.input<typeof regionInput>;

export interface CreateRegionsResult {
  created: number;
  updated: number;
  codes: string[];
}

/**
 * Creates regions, or updates name, level, centroid and population of existing codes, in one
 * transaction. Parents may come in the same batch in any order; a region never changes parent
 * (that would move a whole subtree out of someone's jurisdiction behind their back).
 */
export async function createRegions(db: Database, actor: Actor, inputs: RegionInput[]): Promise<CreateRegionsResult> {
  if (inputs.length === 0) return { created: 0, updated: 0, codes: [] };
  if (inputs.length > 20_000) throw badInput(`at most 20,000 regions per call, got ${inputs.length}; split the list`);
  const rows = inputs.map((input, i) => {
    try {
      return parseInput(regionInput, input);
    } catch (error) {
      throw badInput(`region ${i} (${String(input.code)}): ${(error as Error).message}`);
    }
  });
  const byCode = new Map<string, (typeof rows)[number]>();
  for (const row of rows) {
    if (byCode.has(row.code)) throw badInput(`region code ${row.code} appears twice in the list; send each code once`);
    if ((row.latitude == null) !== (row.longitude == null)) {
      throw badInput(`region ${row.code}: give both latitude and longitude, or neither`);
    }
    byCode.set(row.code, row);
  }

  return db.transaction(async (tx) => {
    const referenced = [...new Set(rows.flatMap((r) => (r.parentCode ? [r.code, r.parentCode] : [r.code])))];
    const parent = alias(regionTable, "parent");
    const existing = new Map(
      (
        await tx
          .select({ code: regionTable.code, level: regionTable.level, parentCode: parent.code })
          .from(regionTable)
          .leftJoin(parent, eq(parent.id, regionTable.parentId))
          .where(inArray(regionTable.code, referenced))
      ).map((r) => [r.code, r]),
    );

    // Depth within this batch: rows whose parent already exists (or is none) go first.
    const depth = new Map<string, number>();
    const depthOf = (code: string, seen: Set<string>): number => {
      const known = depth.get(code);
      if (known !== undefined) return known;
      const row = byCode.get(code)!;
      let d = 0;
      if (row.parentCode) {
        if (row.parentCode === row.code) throw badInput(`region ${row.code} cannot be its own parent`);
        const parentInBatch = byCode.get(row.parentCode);
        const parentStored = existing.get(row.parentCode);
        if (!parentInBatch && !parentStored) {
          throw badInput(`region ${row.code}: parent ${row.parentCode} does not exist; create the parent first or include it in the list`);
        }
        const parentLevel = parentInBatch?.level ?? parentStored!.level;
        if (LEVEL_RANK[parentLevel] >= LEVEL_RANK[row.level]) {
          throw badInput(`region ${row.code} is a ${row.level} but its parent ${row.parentCode} is a ${parentLevel}; a child must be a lower level`);
        }
        if (parentInBatch) {
          if (seen.has(row.parentCode)) throw badInput(`regions ${[...seen].join(" > ")} form a cycle; fix the parent codes`);
          d = depthOf(row.parentCode, new Set([...seen, code])) + 1;
        }
      }
      const stored = existing.get(row.code);
      if (stored && stored.level !== row.level) {
        throw badInput(`region ${row.code} is a ${stored.level}; its level cannot change to ${row.level} (its parent and children are ordered by level)`);
      }
      if (stored && (stored.parentCode ?? null) !== (row.parentCode ?? null)) {
        throw badInput(
          `region ${row.code} already exists under ${stored.parentCode ?? "no parent"}, not ${row.parentCode ?? "no parent"}; regions cannot be moved`,
        );
      }
      depth.set(code, d);
      return d;
    };
    for (const code of byCode.keys()) depthOf(code, new Set([code]));

    const levels = new Map<number, (typeof rows)[number][]>();
    for (const row of rows) {
      const d = depth.get(row.code)!;
      levels.set(d, [...(levels.get(d) ?? []), row]);
    }
    let created = 0;
    let updated = 0;
    for (const d of [...levels.keys()].sort((a, b) => a - b)) {
      const group = levels.get(d)!;
      const result = await tx.execute<{ inserted: boolean }>(
        sql`insert into region (id, code, name, level, parent_id, path, latitude, longitude, population)
            select n.id, n.code, n.name, n.level::region_level, p.id, coalesce(p.path, '/') || n.id || '/', n.lat, n.lon, n.pop
            from (
              select nextval(pg_get_serial_sequence('region', 'id'))::int as id, u.*
              from unnest(${sql.param(group.map((r) => r.code))}::text[], ${sql.param(group.map((r) => r.name))}::text[],
                          ${sql.param(group.map((r) => r.level))}::text[], ${sql.param(group.map((r) => r.parentCode ?? null))}::text[],
                          ${sql.param(group.map((r) => r.latitude ?? null))}::float8[], ${sql.param(group.map((r) => r.longitude ?? null))}::float8[],
                          ${sql.param(group.map((r) => r.population ?? null))}::bigint[])
                   as u(code, name, level, parent_code, lat, lon, pop)
            ) n
            left join region p on p.code = n.parent_code
            on conflict (code) do update set name = excluded.name, level = excluded.level,
              latitude = excluded.latitude, longitude = excluded.longitude, population = excluded.population
            returning (xmax = 0) as inserted`,
        "objects",
      );
      const inserted = result.filter((r) => r.inserted).length;
      created += inserted;
      updated += result.length - inserted;
    }
    const codes = rows.map((r) => r.code);
    await writeAudit(tx, actor, { action: "regions.create", entityType: "region", after: { created, updated, codes } });
    return { created, updated, codes };
  });
}

/**
 * Which regions a viewer may see: admins all; planners their jurisdiction's subtree; reporters
 * and procurement only the regions where their organization has sites. `region` may be the table
 * or an alias (drizzle's relational queries pass an aliased table).
 */
export function regionVisibility(viewer: Viewer, region: { id: AnyColumn; path: AnyColumn } = regionTable): SQL {
  switch (viewer.role) {
    case "ADMIN":
      return sql`true`;
    case "PLANNER":
      return viewer.jurisdiction ? sql`${region.path} ^@ ${viewer.jurisdiction.path}` : sql`false`;
    default:
      return viewer.organizationId
        ? sql`${region.id} in (select ${siteTable.regionId} from ${siteTable} where ${siteTable.organizationId} = ${viewer.organizationId})`
        : sql`false`;
  }
}

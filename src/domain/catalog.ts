import { eq, inArray, sql } from "drizzle-orm";
import { z } from "zod";
import type { Database } from "../db/index.js";
import { bomLineTable, packUnitTable, productCategoryEnum, productTable, reportTable } from "../db/schema.js";
import { writeAudit } from "./audit.js";
import { badInput } from "./errors.js";
import type { Actor } from "./viewer.js";
import { parseInput } from "./validation.js";

const PRODUCT_CODE = /^[A-Z0-9][A-Z0-9-]{0,47}$/;
const UNIT_NAME = /^[\p{L}\p{N}][\p{L}\p{N} ._-]{0,31}$/u;

const productInput = z.object({
  code: z.string().trim().toUpperCase().regex(PRODUCT_CODE, "code must be 1-48 capital letters, digits or '-', such as MASK-N95"),
  name: z.string().trim().min(1, "name must not be empty").max(200),
  category: z.enum(productCategoryEnum.enumValues, { message: `category must be one of ${productCategoryEnum.enumValues.join(", ")}` }),
  baseUnit: z.string().trim().regex(UNIT_NAME, "baseUnit must be a short unit name such as piece, pair, test or kg"),
  units: z
    .array(
      z.object({
        name: z.string().trim().regex(UNIT_NAME, "unit name must be a short name such as box or carton"),
        factor: z.number().positive("factor must be > 0: how many base units one pack holds").finite(),
      }),
    )
    .max(50)
    .nullish(),
  inputs: z
    .array(
      z.object({
        productCode: z.string().trim().toUpperCase(),
        quantity: z.number().positive("quantity must be > 0: input base units per one base unit of the product").finite(),
      }),
    )
    .max(50)
    .nullish(),
  /** Days until stock-out below which a region turns each colour; absent = keep (new: 3, 7, 14, 30). */
  riskThresholds: z
    .object({
      red: z.number().positive("riskThresholds.red must be > 0 days").finite(),
      orange: z.number().positive("riskThresholds.orange must be > 0 days").finite(),
      yellow: z.number().positive("riskThresholds.yellow must be > 0 days").finite(),
      blue: z.number().positive("riskThresholds.blue must be > 0 days").finite(),
    })
    .refine((t) => t.red < t.orange && t.orange < t.yellow && t.yellow < t.blue, {
      message: "riskThresholds must grow from red to blue (red < orange < yellow < blue), in days until stock-out",
    })
    .nullish(),
});
export type UpsertProductInput = z.input<typeof productInput>;

/**
 * Creates a product or updates it by code. `units` and `inputs`, when given, replace the
 * product's pack units and bill of materials; when absent they are left as they are.
 */
export async function upsertProduct(db: Database, actor: Actor, input: UpsertProductInput) {
  const values = parseInput(productInput, input);
  const unitNames = new Set<string>([values.baseUnit.toLowerCase()]);
  for (const unit of values.units ?? []) {
    const key = unit.name.toLowerCase();
    if (unitNames.has(key)) throw badInput(`unit ${unit.name} is declared twice (or equals the base unit); unit names must be distinct, ignoring case`);
    unitNames.add(key);
  }
  const inputCodes = (values.inputs ?? []).map((i) => i.productCode);
  if (new Set(inputCodes).size !== inputCodes.length) throw badInput("inputs list the same productCode twice; give each input once");
  if (inputCodes.includes(values.code)) throw badInput(`${values.code} cannot be an input of itself`);

  return db.transaction(async (tx) => {
    const [before] = await tx.select().from(productTable).where(eq(productTable.code, values.code));
    if (before && before.baseUnit !== values.baseUnit) {
      const [used] = await tx.select({ id: reportTable.id }).from(reportTable).where(eq(reportTable.productId, before.id)).limit(1);
      if (used) {
        throw badInput(`${values.code} already has reports stored in ${before.baseUnit}; its base unit cannot change. Declare ${values.baseUnit} as a pack unit instead`);
      }
    }
    const thresholds = values.riskThresholds
      ? {
          riskRedDays: values.riskThresholds.red,
          riskOrangeDays: values.riskThresholds.orange,
          riskYellowDays: values.riskThresholds.yellow,
          riskBlueDays: values.riskThresholds.blue,
        }
      : {};
    const [product] = await tx
      .insert(productTable)
      .values({ code: values.code, name: values.name, category: values.category, baseUnit: values.baseUnit, ...thresholds })
      .onConflictDoUpdate({
        target: productTable.code,
        set: { name: values.name, category: values.category, baseUnit: values.baseUnit, ...thresholds, updatedAt: sql`now()` },
      })
      .returning();
    if (values.units) {
      await tx.delete(packUnitTable).where(eq(packUnitTable.productId, product!.id));
      if (values.units.length) {
        await tx.insert(packUnitTable).values(values.units.map((u) => ({ productId: product!.id, name: u.name, factor: u.factor })));
      }
    }
    if (values.inputs) {
      const inputs = inputCodes.length
        ? await tx.select({ id: productTable.id, code: productTable.code }).from(productTable).where(inArray(productTable.code, inputCodes))
        : [];
      const idByCode = new Map(inputs.map((p) => [p.code, p.id]));
      const missing = inputCodes.filter((c) => !idByCode.has(c));
      if (missing.length) throw badInput(`inputs name unknown products ${missing.join(", ")}; upsert those products first`);
      await tx.delete(bomLineTable).where(eq(bomLineTable.productId, product!.id));
      if (values.inputs.length) {
        await tx.insert(bomLineTable).values(
          values.inputs.map((i) => ({ productId: product!.id, inputProductId: idByCode.get(i.productCode)!, quantity: i.quantity })),
        );
      }
    }
    await writeAudit(tx, actor, {
      action: before ? "product.update" : "product.create",
      entityType: "product",
      entityId: product!.code,
      before: before ?? null,
      after: { ...product, units: values.units, inputs: values.inputs },
    });
    return product!;
  });
}

/** A product as report ingestion needs it: its id and units, for unit conversion. */
export interface CatalogProduct {
  id: number;
  code: string;
  baseUnit: string;
  /** The base unit and the declared pack units, by lower-case name, with their factor (1 for the base unit). */
  factors: Map<string, number>;
  /** The base unit, then the pack units by name, for messages. */
  unitNames: string[];
  /** `xmin` and `updated_at` of the product row this was read with. */
  version: string;
}

/**
 * Per-process cache of products by code, one per database handle. Every use checks it against the
 * database (see {@link productsByCode}), so it saves the reads of units, never a check.
 */
const productCaches = new WeakMap<object, Map<string, CatalogProduct>>();

/**
 * The products named by `codes` (those that exist), with their units, as of this statement.
 *
 * Cached per process and checked on every call: one index probe per code reads the product row's
 * `xmin` and `updated_at`, and only products whose row changed since they were cached are read
 * again with their units. This is sound because pack units change only in {@link upsertProduct},
 * which always rewrites the product row (`ON CONFLICT DO UPDATE`, a new row version with a new
 * `xmin`) in the same transaction: units that differ from the cached ones come with a product row
 * version that differs too. A product and its units are read in one statement, so a cached entry
 * is one consistent snapshot. `cacheKey` is the long-lived database handle (`tx` may be a
 * transaction of it).
 */
export async function productsByCode(cacheKey: object, tx: Database, codes: readonly string[]): Promise<Map<string, CatalogProduct>> {
  let cache = productCaches.get(cacheKey);
  if (!cache) productCaches.set(cacheKey, (cache = new Map()));
  const found = new Map<string, CatalogProduct>();
  if (!codes.length) return found;
  const current = await tx.execute<{ code: string; version: string }>(
    sql`select code, xmin::text || '/' || updated_at::text as version from product where code = any(${sql.param(codes)}::text[])`,
    "objects",
  );
  const stale: string[] = [];
  for (const { code, version } of current) {
    const cached = cache.get(code);
    if (cached && cached.version === version) found.set(code, cached);
    else stale.push(code);
  }
  if (!stale.length) return found;
  const rows = await tx.execute<{ id: number; code: string; base_unit: string; version: string; name: string | null; factor: number | null }>(
    sql`select p.id, p.code, p.base_unit, p.xmin::text || '/' || p.updated_at::text as version, u.name, u.factor
        from product p left join pack_unit u on u.product_id = p.id
        where p.code = any(${sql.param(stale)}::text[])
        order by p.code, u.name`,
    "objects",
  );
  for (const r of rows) {
    let product = found.get(r.code);
    if (!product || product.version !== r.version) {
      product = {
        id: Number(r.id),
        code: r.code,
        baseUnit: r.base_unit,
        factors: new Map([[r.base_unit.toLowerCase(), 1]]),
        unitNames: [r.base_unit],
        version: r.version,
      };
      found.set(r.code, product);
      cache.set(r.code, product);
    }
    if (r.name !== null) {
      product.factors.set(r.name.toLowerCase(), Number(r.factor));
      product.unitNames.push(r.name);
    }
  }
  return found;
}

/**
 * The SPEC's default catalog. Bill-of-materials quantities are typical published figures
 * (a surgical mask holds about 1 g of melt-blown fabric, an N95 about 4 g, a coverall about
 * 0.25 kg of nonwoven); raw materials come first so products can name them as inputs.
 */
export const DEFAULT_CATALOG: UpsertProductInput[] = [
  { code: "MELTBLOWN-PP", name: "Melt-blown polypropylene fabric", category: "RAW_MATERIAL", baseUnit: "kg", units: [{ name: "tonne", factor: 1000 }] },
  { code: "SPUNBOND-PP", name: "Spunbond polypropylene nonwoven", category: "RAW_MATERIAL", baseUnit: "kg", units: [{ name: "tonne", factor: 1000 }] },
  { code: "NOSE-WIRE", name: "Mask nose wire", category: "RAW_MATERIAL", baseUnit: "piece", units: [{ name: "reel", factor: 10000 }] },
  { code: "EARLOOP", name: "Elastic ear loop", category: "RAW_MATERIAL", baseUnit: "piece", units: [{ name: "bag", factor: 10000 }] },
  { code: "NITRILE-COMPOUND", name: "Nitrile butadiene rubber compound", category: "RAW_MATERIAL", baseUnit: "kg", units: [{ name: "tonne", factor: 1000 }] },
  { code: "PCR-REAGENT", name: "PCR reagent (per test)", category: "RAW_MATERIAL", baseUnit: "test", units: [{ name: "kit", factor: 96 }] },
  {
    code: "MASK-SURGICAL", name: "Medical surgical mask", category: "MASK", baseUnit: "piece",
    units: [{ name: "box", factor: 50 }, { name: "carton", factor: 2000 }],
    inputs: [{ productCode: "MELTBLOWN-PP", quantity: 0.001 }, { productCode: "SPUNBOND-PP", quantity: 0.002 }, { productCode: "NOSE-WIRE", quantity: 1 }, { productCode: "EARLOOP", quantity: 2 }],
  },
  {
    code: "MASK-N95", name: "N95 respirator", category: "MASK", baseUnit: "piece",
    units: [{ name: "box", factor: 20 }, { name: "carton", factor: 480 }],
    inputs: [{ productCode: "MELTBLOWN-PP", quantity: 0.004 }, { productCode: "SPUNBOND-PP", quantity: 0.006 }, { productCode: "NOSE-WIRE", quantity: 1 }],
  },
  {
    code: "MASK-KN95", name: "KN95 respirator", category: "MASK", baseUnit: "piece",
    units: [{ name: "box", factor: 20 }, { name: "carton", factor: 1000 }],
    inputs: [{ productCode: "MELTBLOWN-PP", quantity: 0.003 }, { productCode: "SPUNBOND-PP", quantity: 0.005 }, { productCode: "NOSE-WIRE", quantity: 1 }, { productCode: "EARLOOP", quantity: 2 }],
  },
  {
    code: "COVERALL-MEDICAL", name: "Medical protective coverall", category: "PPE", baseUnit: "piece",
    units: [{ name: "carton", factor: 50 }], inputs: [{ productCode: "SPUNBOND-PP", quantity: 0.25 }],
  },
  {
    code: "GOWN-ISOLATION", name: "Isolation gown", category: "PPE", baseUnit: "piece",
    units: [{ name: "carton", factor: 100 }], inputs: [{ productCode: "SPUNBOND-PP", quantity: 0.08 }],
  },
  { code: "GOGGLES", name: "Medical goggles", category: "PPE", baseUnit: "piece", units: [{ name: "carton", factor: 200 }] },
  { code: "FACE-SHIELD", name: "Face shield", category: "PPE", baseUnit: "piece", units: [{ name: "carton", factor: 200 }] },
  {
    code: "GLOVES-NITRILE", name: "Nitrile examination gloves", category: "PPE", baseUnit: "pair",
    units: [{ name: "box", factor: 50 }, { name: "carton", factor: 500 }], inputs: [{ productCode: "NITRILE-COMPOUND", quantity: 0.008 }],
  },
  {
    code: "TEST-PCR", name: "SARS-CoV-2 PCR test", category: "TEST_KIT", baseUnit: "test",
    units: [{ name: "kit", factor: 48 }], inputs: [{ productCode: "PCR-REAGENT", quantity: 1 }],
  },
  { code: "TEST-ANTIGEN", name: "SARS-CoV-2 antigen rapid test", category: "TEST_KIT", baseUnit: "test", units: [{ name: "box", factor: 25 }] },
];

/** Idempotent: running it again brings the default products back to these values. */
export async function seedCatalog(db: Database, actor: Actor): Promise<number> {
  for (const product of DEFAULT_CATALOG) await upsertProduct(db, actor, product);
  return DEFAULT_CATALOG.length;
}

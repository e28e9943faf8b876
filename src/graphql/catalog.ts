import { upsertProduct } from "../domain/catalog.js";
import { builder } from "./builder.js";
import { ProductCategoryEnum } from "./enums.js";

const RiskThresholdsRef = builder.objectRef<{ red: number; orange: number; yellow: number; blue: number }>("RiskThresholds").implement({
  description: "Days until stock-out that set a region's colour: below red is RED (as is being out), below orange ORANGE, below yellow YELLOW, below blue BLUE, else GREEN.",
  authScopes: { authenticated: true },
  fields: (t) => ({
    red: t.exposeFloat("red", { description: "RED below this many days (default 3)." }),
    orange: t.exposeFloat("orange", { description: "ORANGE below this many days (default 7)." }),
    yellow: t.exposeFloat("yellow", { description: "YELLOW below this many days (default 14)." }),
    blue: t.exposeFloat("blue", { description: "BLUE below this many days (default 30)." }),
  }),
});

const RiskThresholdsInput = builder.inputType("RiskThresholdsInput", {
  description: "Risk thresholds in days until stock-out; they must grow from red to blue.",
  fields: (t) => ({
    red: t.float({ required: true, description: "RED below this many days." }),
    orange: t.float({ required: true, description: "ORANGE below this many days." }),
    yellow: t.float({ required: true, description: "YELLOW below this many days." }),
    blue: t.float({ required: true, description: "BLUE below this many days." }),
  }),
});

export const ProductRef = builder.drizzleNode("productTable", {
  name: "Product",
  description: "A catalog item (finished product or raw material). Every stored quantity is in its base unit.",
  id: { column: (p) => p.id, description: "Global id of the product." },
  authScopes: { authenticated: true },
  fields: (t) => ({
    code: t.exposeString("code", { description: "Stable code, e.g. MASK-N95 or MELTBLOWN-PP." }),
    name: t.exposeString("name", { description: "Human-readable name." }),
    category: t.expose("category", { type: ProductCategoryEnum, description: "Product family." }),
    baseUnit: t.exposeString("baseUnit", { description: "The unit all quantities are stored in (piece, pair, test, kg)." }),
    units: t.relation("units", { description: "Pack units reporters may send, with their factor to the base unit.", query: { orderBy: { factor: "asc" } } }),
    inputs: t.relation("inputs", { description: "Bill of materials: what one base unit of this product is made of." }),
    riskThresholds: t.field({
      type: RiskThresholdsRef,
      description: "Days until stock-out below which a region is RED, ORANGE, YELLOW or BLUE for this product.",
      select: { columns: { riskRedDays: true, riskOrangeDays: true, riskYellowDays: true, riskBlueDays: true } },
      resolve: (p) => ({ red: p.riskRedDays, orange: p.riskOrangeDays, yellow: p.riskYellowDays, blue: p.riskBlueDays }),
    }),
  }),
});

builder.drizzleObject("packUnitTable", {
  name: "PackUnit",
  description: "A named pack of the product, such as a box of 50.",
  authScopes: { authenticated: true },
  fields: (t) => ({
    name: t.exposeString("name", { description: "Unit name as reporters write it (case does not matter)." }),
    factor: t.exposeFloat("factor", { description: "Base units in one pack." }),
  }),
});

builder.drizzleObject("bomLineTable", {
  name: "BomLine",
  description: "One input of a product's bill of materials.",
  authScopes: { authenticated: true },
  fields: (t) => ({
    input: t.relation("input", { description: "The input product (usually a raw material)." }),
    quantity: t.exposeFloat("quantity", { description: "Input base units needed per base unit of the product." }),
  }),
});

const PackUnitInput = builder.inputType("PackUnitInput", {
  description: "A pack unit of a product.",
  fields: (t) => ({
    name: t.string({ required: true, description: "Unit name, distinct from the base unit and other packs." }),
    factor: t.float({ required: true, description: "Base units per pack (> 0)." }),
  }),
});

const BomLineInput = builder.inputType("BomLineInput", {
  description: "One input of a bill of materials.",
  fields: (t) => ({
    productCode: t.string({ required: true, description: "Code of the input product; it must exist." }),
    quantity: t.float({ required: true, description: "Input base units per base unit of the product (> 0)." }),
  }),
});

const ProductInput = builder.inputType("ProductInput", {
  description: "A product to create, or to update by code.",
  fields: (t) => ({
    code: t.string({ required: true, description: "Stable code (capital letters, digits, '-')." }),
    name: t.string({ required: true, description: "Human-readable name." }),
    category: t.field({ type: ProductCategoryEnum, required: true, description: "Product family." }),
    baseUnit: t.string({ required: true, description: "Base unit; cannot change once reports exist." }),
    units: t.field({ type: [PackUnitInput], description: "Replaces the pack units when given." }),
    inputs: t.field({ type: [BomLineInput], description: "Replaces the bill of materials when given." }),
    riskThresholds: t.field({ type: RiskThresholdsInput, description: "Replaces the risk thresholds when given (new products: 3, 7, 14, 30 days)." }),
  }),
});

builder.queryFields((t) => ({
  products: t.drizzleField({
    type: ["productTable"],
    description: "The catalog, by code, optionally one category.",
    authScopes: { authenticated: true },
    args: { category: t.arg({ type: ProductCategoryEnum, description: "Only this category." }) },
    resolve: (query, _root, args, ctx) =>
      ctx.db.query.productTable.findMany(query({ where: args.category ? { category: args.category } : {}, orderBy: { code: "asc" } })),
  }),
}));

builder.mutationFields((t) => ({
  upsertProduct: t.drizzleField({
    type: "productTable",
    description: "Admin: create a product or update it by code; units and inputs, when given, replace the stored ones.",
    authScopes: { admin: true },
    args: { input: t.arg({ type: ProductInput, required: true, description: "The product." }) },
    resolve: async (query, _root, args, ctx) => {
      const product = await upsertProduct(ctx.db, ctx.actor, args.input);
      return (await ctx.db.query.productTable.findFirst(query({ where: { id: product.id } })))!;
    },
  }),
}));

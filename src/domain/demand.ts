import { addYears, format, parseISO } from "date-fns";
import { and, asc, eq, isNull, sql } from "drizzle-orm";
import { z } from "zod";
import type { Database } from "../db/index.js";
import {
  demandScenarioTable,
  outboxTable,
  procurementRequestTable,
  regionTable,
  scenarioModeEnum,
  siteTable,
} from "../db/schema.js";
import { writeAudit } from "./audit.js";
import { DomainError, badInput, findCause, forbidden, notFound } from "./errors.js";
import { MAX_QUANTITY, dateProblem, localToday } from "./reports/validate.js";
import { isUniqueViolation, parseInput } from "./validation.js";
import type { Actor, Viewer } from "./viewer.js";

/**
 * Outbox topic of every change to demand (a scenario set or cleared, a request posted or
 * cancelled). Payload `{ pairs: [{ regionId, productId }] }`: ids only, never personal data.
 */
export const DEMAND_CHANGED_TOPIC = "demand.changed";

export interface DemandChangedPayload {
  pairs: { regionId: number; productId: number }[];
}

export const SCENARIO_MODES = scenarioModeEnum.enumValues;
export type ScenarioMode = (typeof SCENARIO_MODES)[number];

const NOTE_MAX = 2000;
const show = (v: unknown) => (typeof v === "string" ? JSON.stringify(v) : String(v));

/** A finite number >= 0 (or > 0), at most MAX_QUANTITY, with a message that names what came. */
const amount = (what: string, { positive }: { positive: boolean }) =>
  z.unknown().transform((v, ctx) => {
    const fail = (message: string) => {
      ctx.addIssue({ code: "custom", message });
      return z.NEVER;
    };
    if (v === undefined || v === null) return fail(`is required (${what})`);
    if (typeof v !== "number") return fail(`must be a number (${what}), got ${show(v)}`);
    if (!Number.isFinite(v)) return fail(`must be a finite number (${what}), got ${v}`);
    if (positive ? v <= 0 : v < 0) return fail(`must be ${positive ? "> 0" : ">= 0"} (${what}), got ${v}`);
    if (v > MAX_QUANTITY) return fail(`must be at most ${MAX_QUANTITY.toExponential()}, got ${v}; check the figure and its unit`);
    return v;
  });

const calendarDate = z.unknown().transform((v, ctx) => {
  const problem = dateProblem(v);
  if (problem) {
    ctx.addIssue({ code: "custom", message: problem });
    return z.NEVER;
  }
  return v as string;
});

const code = (field: string) => z.string(`${field} must be text`).trim().min(1, `${field} must not be empty`).max(64, `${field} is longer than 64 characters`);
const unit = z.string("unit must be text").trim().max(64).nullish().transform((u) => (u ? u : null));
const note = z
  .string("note must be text")
  .trim()
  .max(NOTE_MAX, `note may hold at most ${NOTE_MAX} characters`)
  .nullish()
  .transform((n) => (n ? n : null));

interface ProductWithUnits {
  id: number;
  code: string;
  baseUnit: string;
  units: { name: string; factor: number }[];
}

/**
 * Converts `value` given in `unitName` (the base unit when absent; case does not matter) to the
 * product's base unit, as submitReports does. An undeclared unit is refused with the list of
 * declared ones; a result too large for any real need is refused as a unit or typing error.
 */
export function toBaseUnits(product: ProductWithUnits, value: number, unitName: string | null, field: string): number {
  if (unitName === null || unitName.toLowerCase() === product.baseUnit.toLowerCase()) return value;
  const unit = product.units.find((u) => u.name.toLowerCase() === unitName.toLowerCase());
  if (!unit) {
    const declared = [product.baseUnit, ...product.units.map((u) => u.name)].join(", ");
    throw badInput(`unit ${JSON.stringify(unitName)} is not declared for ${product.code}; use one of ${declared}`, { field: "unit" });
  }
  const base = value * unit.factor;
  if (!Number.isFinite(base) || base > MAX_QUANTITY) {
    throw badInput(`${field} of ${value} ${unit.name} is ${base} ${product.baseUnit}, more than ${MAX_QUANTITY.toExponential()}; check the figure and its unit`, { field });
  }
  return base;
}

async function findProduct(tx: Database, productCode: string): Promise<ProductWithUnits> {
  const product = await tx.query.productTable.findFirst({
    where: { code: productCode },
    columns: { id: true, code: true, baseUnit: true },
    with: { units: { columns: { name: true, factor: true }, orderBy: { factor: "asc" } } },
  });
  if (!product) throw notFound(`unknown product ${productCode}; see products { code } for the catalog`);
  return product;
}

/** A region that a planner (inside their jurisdiction) or an admin may plan for. */
async function findPlanningRegion(tx: Database, viewer: Viewer, regionCode: string) {
  const [region] = await tx
    .select({ id: regionTable.id, code: regionTable.code, path: regionTable.path })
    .from(regionTable)
    .where(eq(regionTable.code, regionCode));
  if (viewer.role === "ADMIN") {
    if (!region) throw notFound(`no region with code ${regionCode}; see regions { code } for the codes, or load it with createRegions`);
    return region;
  }
  // Unknown and outside the jurisdiction get the same answer, so a planner learns nothing outside it.
  const jurisdiction = viewer.jurisdiction;
  if (!region || !jurisdiction || !region.path.startsWith(jurisdiction.path)) {
    throw notFound(
      `region ${regionCode} not found, or not visible to you: you may plan for ${jurisdiction?.code ?? "no region"} and the regions below it; see regions { code } for their codes`,
    );
  }
  return region;
}

function requirePlanner(actor: Actor, what: string): Viewer {
  const viewer = actor.viewer;
  if (!viewer || (viewer.role !== "PLANNER" && viewer.role !== "ADMIN")) {
    throw forbidden(`only PLANNER users (inside their jurisdiction) and ADMIN users may ${what}; your role is ${viewer?.role ?? "none"}`);
  }
  return viewer;
}

function requireProcurement(actor: Actor, what: string): Viewer {
  const viewer = actor.viewer;
  if (!viewer || (viewer.role !== "PROCUREMENT" && viewer.role !== "ADMIN")) {
    throw forbidden(`only PROCUREMENT users (for their own organization's sites) and ADMIN users may ${what}; your role is ${viewer?.role ?? "none"}`);
  }
  return viewer;
}

async function emitDemandChanged(tx: Database, regionId: number, productId: number) {
  const payload: DemandChangedPayload = { pairs: [{ regionId, productId }] };
  await tx.insert(outboxTable).values({ topic: DEMAND_CHANGED_TOPIC, payload });
}

/**
 * Runs a write at READ COMMITTED (whatever the server's default), so that each statement sees
 * what the writer it waited for committed; if Postgres still aborts it (a race on the one
 * active scenario, a deadlock, a serialization failure), the whole transaction rolled back and
 * runs again, at most three times.
 */
async function writeWithRetry<T>(db: Database, work: (tx: Database) => Promise<T>, conflict: string): Promise<T> {
  for (let tries = 1; ; tries++) {
    try {
      return await db.transaction(work, { isolationLevel: "read committed" });
    } catch (error) {
      const retryable =
        isUniqueViolation(error, "demand_scenario_active_key") || !!findCause(error, (e) => e.code === "40P01" || e.code === "40001");
      if (!retryable) throw error;
      if (tries >= 3) throw new DomainError("CONFLICT", conflict);
    }
  }
}

/** Serialises writers of one (region, product) scenario: the second waits, then sees the first's row. */
const lockScenarioPair = (tx: Database, regionId: number, productId: number) =>
  tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`demand_scenario:${regionId}:${productId}`}, 0))`);

const scenarioInput = z
  .object({
    regionCode: code("regionCode"),
    productCode: code("productCode").toUpperCase(),
    casesPerDay: amount("expected cases per day", { positive: false }),
    usagePerCasePerDay: amount("units used per case per day", { positive: false }),
    unit,
    mode: z
      .enum(SCENARIO_MODES, { message: `mode must be one of ${SCENARIO_MODES.join(", ")}` })
      .nullish()
      .transform((m): ScenarioMode => m ?? "OVERRIDE"),
    startsOn: calendarDate.nullish().transform((d) => d ?? null),
    endsOn: calendarDate.nullish().transform((d) => d ?? null),
    note,
  })
  .superRefine((v, ctx) => {
    if (v.startsOn && v.endsOn && v.startsOn > v.endsOn) {
      ctx.addIssue({ code: "custom", path: ["endsOn"], message: `must not be before startsOn (${v.startsOn}), got ${v.endsOn}` });
    }
  });
export type DemandScenarioInput = z.input<typeof scenarioInput>;
export type DemandScenarioRow = typeof demandScenarioTable.$inferSelect;

/**
 * Sets the demand scenario of a region and product (WHO ESFT style: cases per day times usage
 * per case per day, in the product's base unit; `unit` converts the usage from a pack unit).
 * It supersedes the active scenario of the pair, which stays as history. OVERRIDE (the default)
 * replaces the demand forecast from history; ADD comes on top of it.
 */
export async function setDemandScenario(db: Database, actor: Actor, input: DemandScenarioInput): Promise<DemandScenarioRow> {
  const viewer = requirePlanner(actor, "set demand scenarios");
  const values = parseInput(scenarioInput, input);
  return writeWithRetry(
    db,
    async (tx) => {
      const region = await findPlanningRegion(tx, viewer, values.regionCode);
      const product = await findProduct(tx, values.productCode);
      const usage = toBaseUnits(product, values.usagePerCasePerDay, values.unit, "usagePerCasePerDay");
      if (values.casesPerDay * usage > MAX_QUANTITY) {
        throw badInput(`casesPerDay x usagePerCasePerDay is ${values.casesPerDay * usage} ${product.baseUnit} a day, more than ${MAX_QUANTITY.toExponential()}; check the figures and the unit`);
      }
      await lockScenarioPair(tx, region.id, product.id);
      const superseded = await tx
        .update(demandScenarioTable)
        .set({ supersededAt: sql`now()` })
        .where(and(eq(demandScenarioTable.regionId, region.id), eq(demandScenarioTable.productId, product.id), isNull(demandScenarioTable.supersededAt)))
        .returning();
      const [row] = await tx
        .insert(demandScenarioTable)
        .values({
          regionId: region.id,
          productId: product.id,
          casesPerDay: values.casesPerDay,
          usagePerCasePerDay: usage,
          mode: values.mode,
          startsOn: values.startsOn,
          endsOn: values.endsOn,
          note: values.note,
          createdBy: viewer.userId,
        })
        .returning();
      await writeAudit(tx, actor, {
        action: "demandScenario.set",
        entityType: "demand_scenario",
        entityId: row!.id,
        before: superseded[0] ?? null,
        after: row,
      });
      await emitDemandChanged(tx, region.id, product.id);
      return row!;
    },
    `the demand scenario of ${values.regionCode} / ${values.productCode} was changed by others at the same moment three times; look at demandScenarios and set it again`,
  );
}

const pairInput = z.object({ regionCode: code("regionCode"), productCode: code("productCode").toUpperCase() });
export type ClearDemandScenarioInput = z.input<typeof pairInput>;

/**
 * Ends the active scenario of a region and product without a replacement (it stays as
 * history). Returns whether one was active; when none was, nothing is written.
 */
export async function clearDemandScenario(db: Database, actor: Actor, input: ClearDemandScenarioInput): Promise<boolean> {
  const viewer = requirePlanner(actor, "clear demand scenarios");
  const values = parseInput(pairInput, input);
  return writeWithRetry(
    db,
    async (tx) => {
      const region = await findPlanningRegion(tx, viewer, values.regionCode);
      const product = await findProduct(tx, values.productCode);
      await lockScenarioPair(tx, region.id, product.id);
      const [superseded] = await tx
        .update(demandScenarioTable)
        .set({ supersededAt: sql`now()` })
        .where(and(eq(demandScenarioTable.regionId, region.id), eq(demandScenarioTable.productId, product.id), isNull(demandScenarioTable.supersededAt)))
        .returning();
      if (!superseded) return false;
      await writeAudit(tx, actor, {
        action: "demandScenario.clear",
        entityType: "demand_scenario",
        entityId: superseded.id,
        before: { ...superseded, supersededAt: null },
        after: superseded,
      });
      await emitDemandChanged(tx, region.id, product.id);
      return true;
    },
    `the demand scenario of ${values.regionCode} / ${values.productCode} was changed by others at the same moment three times; look at demandScenarios and try again`,
  );
}

const requestInput = z.object({
  siteCode: code("siteCode"),
  productCode: code("productCode").toUpperCase(),
  quantity: amount("the quantity needed", { positive: true }),
  unit,
  neededBy: calendarDate,
  note,
});
export type PostRequestInput = z.input<typeof requestInput>;
export type ProcurementRequestRow = typeof procurementRequestTable.$inferSelect;

export interface PostRequestOptions {
  /** The moment "today" is taken from (tests pin it); defaults to now. */
  now?: Date;
}

/**
 * Posts a procurement need: a quantity of a product (converted to base units) wanted at a site by
 * a date, from today (in the site's time zone) to a year ahead. PROCUREMENT users post for their
 * own organization's sites, admins for any site; the request belongs to the site's organization.
 */
export async function postRequest(db: Database, actor: Actor, input: PostRequestInput, options: PostRequestOptions = {}): Promise<ProcurementRequestRow> {
  const viewer = requireProcurement(actor, "post requests");
  const values = parseInput(requestInput, input);
  const now = options.now ?? new Date();
  return db.transaction(async (tx) => {
    const [found] = await tx
      .select({ id: siteTable.id, code: siteTable.code, organizationId: siteTable.organizationId, regionId: siteTable.regionId, timeZone: siteTable.timeZone })
      .from(siteTable)
      .where(eq(siteTable.code, values.siteCode));
    // Another organization's site is answered exactly like an unknown one.
    const site = found && (viewer.role === "ADMIN" || found.organizationId === viewer.organizationId) ? found : undefined;
    if (!site) {
      throw notFound(
        viewer.role === "ADMIN"
          ? `unknown site ${values.siteCode}; create it with createSite first`
          : `site ${values.siteCode} is not a site of your organization; check the code against me { organization { sites { code } } }`,
      );
    }
    const product = await findProduct(tx, values.productCode);
    const quantity = toBaseUnits(product, values.quantity, values.unit, "quantity");
    const today = localToday(now, site.timeZone);
    if (values.neededBy < today) {
      throw badInput(`neededBy ${values.neededBy} is in the past (it is ${today} at site ${site.code}); give a date from ${today} on`, { field: "neededBy" });
    }
    const latest = format(addYears(parseISO(today), 1), "yyyy-MM-dd");
    if (values.neededBy > latest) {
      throw badInput(`neededBy ${values.neededBy} is more than a year ahead; give a date up to ${latest} and post again when the need is nearer`, { field: "neededBy" });
    }
    const [row] = await tx
      .insert(procurementRequestTable)
      .values({
        organizationId: site.organizationId,
        siteId: site.id,
        productId: product.id,
        quantity,
        neededBy: values.neededBy,
        note: values.note,
        createdBy: viewer.userId,
      })
      .returning();
    await writeAudit(tx, actor, { action: "request.post", entityType: "procurement_request", entityId: row!.id, after: row });
    await emitDemandChanged(tx, site.regionId, product.id);
    return row!;
  });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Cancels an OPEN request of the caller's organization (admins: any request). Cancelling a
 * cancelled request again changes nothing and returns it; a fulfilled one cannot be cancelled.
 */
export async function cancelRequest(db: Database, actor: Actor, id: string): Promise<ProcurementRequestRow> {
  const viewer = requireProcurement(actor, "cancel requests");
  const missing = () =>
    notFound(`request ${id} not found, or not visible to you; see requests { edges { node { id } } } for your organization's requests`);
  if (typeof id !== "string" || !UUID.test(id)) throw missing();
  return db.transaction(async (tx) => {
    const [before] = await tx
      .select({ request: procurementRequestTable, regionId: siteTable.regionId })
      .from(procurementRequestTable)
      .innerJoin(siteTable, eq(siteTable.id, procurementRequestTable.siteId))
      .where(eq(procurementRequestTable.id, id))
      .for("update", { of: procurementRequestTable });
    if (!before || (viewer.role !== "ADMIN" && before.request.organizationId !== viewer.organizationId)) throw missing();
    if (before.request.status === "CANCELLED") return before.request;
    if (before.request.status !== "OPEN") {
      throw new DomainError("CONFLICT", `request ${id} is ${before.request.status} and can no longer be cancelled; only OPEN requests can`);
    }
    const [row] = await tx
      .update(procurementRequestTable)
      .set({ status: "CANCELLED", closedAt: sql`now()` })
      .where(eq(procurementRequestTable.id, id))
      .returning();
    await writeAudit(tx, actor, { action: "request.cancel", entityType: "procurement_request", entityId: id, before: before.request, after: row });
    await emitDemandChanged(tx, before.regionId, row!.productId);
    return row!;
  });
}

export interface ActiveScenario {
  regionId: number;
  casesPerDay: number;
  usagePerCasePerDay: number;
  mode: ScenarioMode;
  startsOn: string | null;
  endsOn: string | null;
}

/** The active scenario of every region for a product (at most one per region), by region id. */
export function activeScenarios(db: Database, productId: number): Promise<ActiveScenario[]> {
  return db
    .select({
      regionId: demandScenarioTable.regionId,
      casesPerDay: demandScenarioTable.casesPerDay,
      usagePerCasePerDay: demandScenarioTable.usagePerCasePerDay,
      mode: demandScenarioTable.mode,
      startsOn: demandScenarioTable.startsOn,
      endsOn: demandScenarioTable.endsOn,
    })
    .from(demandScenarioTable)
    .where(and(eq(demandScenarioTable.productId, productId), isNull(demandScenarioTable.supersededAt)))
    .orderBy(asc(demandScenarioTable.regionId));
}

export interface OpenRequests {
  regionId: number;
  /** Sum of the OPEN requests of the region's own sites due that day, in base units. */
  quantity: number;
  neededBy: string;
}

/**
 * OPEN requests for a product, summed per region of the requesting site and needed-by day
 * (one row per region and day, by region then day). Days already past are included: an open
 * need that is overdue is still a need.
 */
export function openRequestsByRegion(db: Database, productId: number): Promise<OpenRequests[]> {
  return db
    .select({
      regionId: siteTable.regionId,
      quantity: sql<number>`sum(${procurementRequestTable.quantity})::float8`.mapWith(Number),
      neededBy: procurementRequestTable.neededBy,
    })
    .from(procurementRequestTable)
    .innerJoin(siteTable, eq(siteTable.id, procurementRequestTable.siteId))
    .where(and(eq(procurementRequestTable.productId, productId), eq(procurementRequestTable.status, "OPEN")))
    .groupBy(siteTable.regionId, procurementRequestTable.neededBy)
    .orderBy(asc(siteTable.regionId), asc(procurementRequestTable.neededBy));
}

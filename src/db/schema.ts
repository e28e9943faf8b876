import { sql } from "drizzle-orm";
import {
  bigint,
  bytea,
  check,
  date,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgEnum,
  pgTable,
  primaryKey,
  text,
  timestamp,
  unique,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";

export const regionLevelEnum = pgEnum("region_level", ["COUNTRY", "PROVINCE", "CITY", "COUNTY"]);
export const organizationKindEnum = pgEnum("organization_kind", [
  "MANUFACTURER",
  "RAW_MATERIAL_SUPPLIER",
  "DISTRIBUTOR",
  "HOSPITAL",
  "RESERVE",
  "AGENCY",
]);
export const productCategoryEnum = pgEnum("product_category", ["MASK", "PPE", "TEST_KIT", "RAW_MATERIAL"]);
export const roleEnum = pgEnum("role", ["ADMIN", "PLANNER", "REPORTER", "PROCUREMENT"]);
// Declared from least to most urgent, so `order by risk_level desc` puts RED first.
export const riskLevelEnum = pgEnum("risk_level", ["GREEN", "BLUE", "YELLOW", "ORANGE", "RED"]);
export const scenarioModeEnum = pgEnum("scenario_mode", ["ADD", "OVERRIDE"]);
export const requestStatusEnum = pgEnum("request_status", ["OPEN", "FULFILLED", "CANCELLED"]);
export const matchKindEnum = pgEnum("match_kind", ["DOWNSTREAM", "UPSTREAM"]);
export const matchStatusEnum = pgEnum("match_status", ["PROPOSED", "ACCEPTED", "DECLINED", "FULFILLED", "EXPIRED"]);

const createdAt = () => timestamp("created_at", { withTimezone: true }).notNull().defaultNow();
// For the timestamps that page a connection (newest first): the cursor carries a JavaScript Date,
// which holds milliseconds, so the column must hold no more, or rows of one millisecond fall
// between two pages (raised_at gets the same).
const createdAtMs = () => timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow();

/**
 * Administrative regions. `path` is the materialised path of region ids (`/1/7/42/`), so a
 * jurisdiction's subtree is `path ^@ '/1/7/'`, served by the SP-GiST index even with a bound
 * parameter (a btree LIKE prefix would need a literal and C collation).
 */
export const regionTable = pgTable(
  "region",
  {
    // By default, not always: createRegions takes ids from the sequence to build paths in one INSERT.
    id: integer("id").primaryKey().generatedByDefaultAsIdentity(),
    code: text("code").notNull(),
    name: text("name").notNull(),
    level: regionLevelEnum("level").notNull(),
    parentId: integer("parent_id").references((): any => regionTable.id, { onDelete: "restrict" }),
    path: text("path").notNull(),
    latitude: doublePrecision("latitude"),
    longitude: doublePrecision("longitude"),
    population: bigint("population", { mode: "number" }),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex("region_code_key").on(t.code),
    uniqueIndex("region_path_key").on(t.path),
    index("region_path_prefix_idx").using("spgist", t.path),
    index("region_parent_idx").on(t.parentId),
    check("region_latitude_range", sql`${t.latitude} between -90 and 90`),
    check("region_longitude_range", sql`${t.longitude} between -180 and 180`),
  ],
);

export const organizationTable = pgTable(
  "organization",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    name: text("name").notNull(),
    kind: organizationKindEnum("kind").notNull(),
    /** Unified social credit code (GB 32100-2015), validated with its check character. */
    creditCode: text("credit_code"),
    // Personal data: shown only to the organization itself and admins, never logged.
    contactName: text("contact_name"),
    contactEmail: text("contact_email"),
    contactPhone: text("contact_phone"),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("organization_credit_code_key").on(t.creditCode)],
);

export const siteTable = pgTable(
  "site",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    organizationId: uuid("organization_id")
      .notNull()
      .references(() => organizationTable.id, { onDelete: "restrict" }),
    code: text("code").notNull(),
    name: text("name").notNull(),
    regionId: integer("region_id")
      .notNull()
      .references(() => regionTable.id, { onDelete: "restrict" }),
    /** IANA zone in which the site's report dates and cut-offs are counted. */
    timeZone: text("time_zone").notNull().default("Asia/Shanghai"),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex("site_code_key").on(t.code),
    index("site_organization_idx").on(t.organizationId),
    index("site_region_idx").on(t.regionId),
  ],
);

export const productTable = pgTable(
  "product",
  {
    id: integer("id").primaryKey().generatedAlwaysAsIdentity(),
    code: text("code").notNull(),
    name: text("name").notNull(),
    category: productCategoryEnum("category").notNull(),
    baseUnit: text("base_unit").notNull(),
    // Days until stock-out below which a region turns RED, ORANGE, YELLOW or BLUE for this product.
    riskRedDays: doublePrecision("risk_red_days").notNull().default(3),
    riskOrangeDays: doublePrecision("risk_orange_days").notNull().default(7),
    riskYellowDays: doublePrecision("risk_yellow_days").notNull().default(14),
    riskBlueDays: doublePrecision("risk_blue_days").notNull().default(30),
    createdAt: createdAt(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("product_code_key").on(t.code),
    check(
      "product_risk_thresholds_ordered",
      sql`0 < ${t.riskRedDays} and ${t.riskRedDays} < ${t.riskOrangeDays} and ${t.riskOrangeDays} < ${t.riskYellowDays} and ${t.riskYellowDays} < ${t.riskBlueDays}`,
    ),
  ],
);

/** Named pack units; `factor` base units make one pack (a box of 50 has factor 50). */
export const packUnitTable = pgTable(
  "pack_unit",
  {
    productId: integer("product_id")
      .notNull()
      .references(() => productTable.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    factor: doublePrecision("factor").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.productId, t.name] }),
    check("pack_unit_factor_positive", sql`${t.factor} > 0`),
  ],
);

/** Bill of materials: `quantity` of the input's base unit per one base unit of the product. */
export const bomLineTable = pgTable(
  "bom_line",
  {
    productId: integer("product_id")
      .notNull()
      .references(() => productTable.id, { onDelete: "cascade" }),
    inputProductId: integer("input_product_id")
      .notNull()
      .references(() => productTable.id, { onDelete: "restrict" }),
    quantity: doublePrecision("quantity").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.productId, t.inputProductId] }),
    index("bom_line_input_idx").on(t.inputProductId),
    check("bom_line_quantity_positive", sql`${t.quantity} > 0`),
    check("bom_line_not_self", sql`${t.productId} <> ${t.inputProductId}`),
  ],
);

export const userTable = pgTable(
  "app_user",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    name: text("name").notNull(),
    email: text("email").notNull(),
    role: roleEnum("role").notNull(),
    organizationId: uuid("organization_id").references(() => organizationTable.id, {
      onDelete: "restrict",
    }),
    jurisdictionRegionId: integer("jurisdiction_region_id").references(() => regionTable.id, {
      onDelete: "restrict",
    }),
    createdAt: createdAt(),
    disabledAt: timestamp("disabled_at", { withTimezone: true }),
  },
  (t) => [
    uniqueIndex("app_user_email_key").on(t.email),
    index("app_user_organization_idx").on(t.organizationId),
    // The role decides what scopes a user; the database refuses a user without one.
    check(
      "app_user_role_scope",
      sql`(${t.role} = 'PLANNER' and ${t.jurisdictionRegionId} is not null)
       or (${t.role} in ('REPORTER', 'PROCUREMENT') and ${t.organizationId} is not null)
       or ${t.role} = 'ADMIN'`,
    ),
  ],
);

/** Bearer tokens: only the SHA-256 of the secret is kept; `prefix` lets people tell them apart. */
export const apiTokenTable = pgTable(
  "api_token",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    userId: uuid("user_id")
      .notNull()
      .references(() => userTable.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    tokenHash: text("token_hash").notNull(),
    prefix: text("prefix").notNull(),
    createdAt: createdAt(),
    expiresAt: timestamp("expires_at", { withTimezone: true }),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
    lastUsedAt: timestamp("last_used_at", { withTimezone: true }),
  },
  (t) => [uniqueIndex("api_token_hash_key").on(t.tokenHash), index("api_token_user_idx").on(t.userId)],
);

const measures = () => ({
  onHand: doublePrecision("on_hand"),
  produced: doublePrecision("produced"),
  capacityPerDay: doublePrecision("capacity_per_day"),
  consumed: doublePrecision("consumed"),
  received: doublePrecision("received"),
  shipped: doublePrecision("shipped"),
  backlog: doublePrecision("backlog"),
  stockoutHours: doublePrecision("stockout_hours"),
  qualityFlags: text("quality_flags").array().notNull().default(sql`'{}'::text[]`),
});

/** The one report: a site's figures for one product on one local day, all in base units. */
export const reportTable = pgTable(
  "report",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    siteId: uuid("site_id")
      .notNull()
      .references(() => siteTable.id, { onDelete: "restrict" }),
    productId: integer("product_id")
      .notNull()
      .references(() => productTable.id, { onDelete: "restrict" }),
    date: date("date", { mode: "string" }).notNull(),
    ...measures(),
    revision: integer("revision").notNull().default(1),
    submittedAt: timestamp("submitted_at", { withTimezone: true }).notNull().defaultNow(),
    // Who submitted is history: a plain user id, like the audit log's actor, so it outlives the
    // user's row, and the bulk write pays no per-row foreign-key check for it.
    submittedBy: uuid("submitted_by"),
  },
  (t) => [
    // Migration report_covering_natural_key rebuilt it with INCLUDE (the figures the forecast
    // reads), which drizzle's builder cannot say: the forecast's read is an index-only scan.
    uniqueIndex("report_natural_key").on(t.siteId, t.productId, t.date),
    index("report_product_date_idx").on(t.productId, t.date),
    // The last line of defence behind the service's checks: figures are finite and non-negative.
    check(
      "report_figures_valid",
      sql`${sql.join(
        ["on_hand", "produced", "capacity_per_day", "consumed", "received", "shipped", "backlog", "stockout_hours"].map(
          (c) => sql`(${sql.identifier(c)} >= 0 and ${sql.identifier(c)} < 'Infinity')`,
        ),
        sql` and `,
      )}`,
    ),
  ],
);

/** Superseded versions of a report; a correction never destroys what was there before. */
export const reportRevisionTable = pgTable(
  "report_revision",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    reportId: bigint("report_id", { mode: "number" })
      .notNull()
      .references(() => reportTable.id, { onDelete: "cascade" }),
    revision: integer("revision").notNull(),
    ...measures(),
    submittedAt: timestamp("submitted_at", { withTimezone: true }).notNull(),
    submittedBy: uuid("submitted_by"),
    supersededAt: timestamp("superseded_at", { withTimezone: true }).notNull().defaultNow(),
    supersededBy: uuid("superseded_by"),
  },
  (t) => [uniqueIndex("report_revision_key").on(t.reportId, t.revision)],
);

/** Who did what, when, with the state before and after; written in the mutation's transaction. */
export const auditLogTable = pgTable(
  "audit_log",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
    actorUserId: uuid("actor_user_id"),
    actorTokenId: uuid("actor_token_id"),
    action: text("action").notNull(),
    entityType: text("entity_type").notNull(),
    entityId: text("entity_id"),
    before: jsonb("before"),
    after: jsonb("after"),
    requestId: text("request_id"),
  },
  (t) => [index("audit_log_entity_idx").on(t.entityType, t.entityId), index("audit_log_at_idx").on(t.at)],
);

/** First result of each (user, operation, key), replayed when the same request comes again. */
export const idempotencyKeyTable = pgTable(
  "idempotency_key",
  {
    userId: uuid("user_id")
      .notNull()
      .references(() => userTable.id, { onDelete: "cascade" }),
    operation: text("operation").notNull(),
    key: text("key").notNull(),
    requestHash: text("request_hash").notNull(),
    response: jsonb("response"),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ columns: [t.userId, t.operation, t.key] }),
    index("idempotency_key_created_idx").on(t.createdAt),
  ],
);

/**
 * Transactional outbox: events written in the same transaction as the data they describe and
 * relayed to the job queues afterwards, so a committed write is never missed by the jobs.
 */
export const outboxTable = pgTable(
  "outbox",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    topic: text("topic").notNull(),
    payload: jsonb("payload").notNull(),
    createdAt: createdAt(),
    processedAt: timestamp("processed_at", { withTimezone: true }),
  },
  (t) => [index("outbox_pending_idx").on(t.id).where(sql`${t.processedAt} is null`)],
);

/**
 * A planner's demand scenario for a region and product (WHO ESFT style): expected cases per day
 * times usage per case per day. OVERRIDE replaces the demand forecast from history, ADD comes on
 * top of it. Setting a new one supersedes the active one; the old one stays as history.
 */
export const demandScenarioTable = pgTable(
  "demand_scenario",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    regionId: integer("region_id")
      .notNull()
      .references(() => regionTable.id, { onDelete: "restrict" }),
    productId: integer("product_id")
      .notNull()
      .references(() => productTable.id, { onDelete: "restrict" }),
    casesPerDay: doublePrecision("cases_per_day").notNull(),
    usagePerCasePerDay: doublePrecision("usage_per_case_per_day").notNull(),
    mode: scenarioModeEnum("mode").notNull(),
    startsOn: date("starts_on", { mode: "string" }),
    endsOn: date("ends_on", { mode: "string" }),
    note: text("note"),
    createdBy: uuid("created_by"),
    createdAt: createdAt(),
    supersededAt: timestamp("superseded_at", { withTimezone: true }),
  },
  (t) => [
    uniqueIndex("demand_scenario_active_key").on(t.regionId, t.productId).where(sql`${t.supersededAt} is null`),
    check("demand_scenario_figures_valid", sql`${t.casesPerDay} >= 0 and ${t.casesPerDay} < 'Infinity' and ${t.usagePerCasePerDay} >= 0 and ${t.usagePerCasePerDay} < 'Infinity'`),
    check("demand_scenario_period", sql`${t.endsOn} is null or ${t.startsOn} is null or ${t.startsOn} <= ${t.endsOn}`),
  ],
);

/** A procurement need: a quantity (base units) of a product wanted at a site by a date. */
export const procurementRequestTable = pgTable(
  "procurement_request",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    organizationId: uuid("organization_id")
      .notNull()
      .references(() => organizationTable.id, { onDelete: "restrict" }),
    siteId: uuid("site_id")
      .notNull()
      .references(() => siteTable.id, { onDelete: "restrict" }),
    productId: integer("product_id")
      .notNull()
      .references(() => productTable.id, { onDelete: "restrict" }),
    quantity: doublePrecision("quantity").notNull(),
    neededBy: date("needed_by", { mode: "string" }).notNull(),
    status: requestStatusEnum("status").notNull().default("OPEN"),
    note: text("note"),
    createdBy: uuid("created_by"),
    createdAt: createdAt(),
    closedAt: timestamp("closed_at", { withTimezone: true }),
  },
  (t) => [
    index("procurement_request_organization_idx").on(t.organizationId),
    index("procurement_request_open_idx").on(t.productId, t.neededBy).where(sql`${t.status} = 'OPEN'`),
    check("procurement_request_quantity_valid", sql`${t.quantity} > 0 and ${t.quantity} < 'Infinity'`),
  ],
);

/** One execution of the forecast job: what triggered it and how many series it wrote. */
export const forecastRunTable = pgTable("forecast_run", {
  id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
  trigger: text("trigger").notNull(),
  productId: integer("product_id").references(() => productTable.id, { onDelete: "cascade" }),
  /** The last day of data the run saw (the forecast origin); day 1 of the forecasts is the next day. */
  originDate: date("origin_date", { mode: "string" }).notNull(),
  /** Reports submitted after this moment were not seen by the run. */
  inputCutoff: timestamp("input_cutoff", { withTimezone: true }).notNull(),
  startedAt: timestamp("started_at", { withTimezone: true }).notNull().defaultNow(),
  finishedAt: timestamp("finished_at", { withTimezone: true }),
  series: integer("series").notNull().default(0),
});

/**
 * A (region, product) forecast of one run: the demand forecast with its intervals, the supply
 * forecast, the projected stock path and what follows from them. Day i of each array is
 * origin_date + i + 1. A parent region's demand, supply and inflow are the sums of its own sites'
 * and its children's, so they add up down the tree.
 */
export const forecastTable = pgTable(
  "forecast",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    runId: bigint("run_id", { mode: "number" })
      .notNull()
      .references(() => forecastRunTable.id, { onDelete: "cascade" }),
    regionId: integer("region_id")
      .notNull()
      .references(() => regionTable.id, { onDelete: "cascade" }),
    productId: integer("product_id")
      .notNull()
      .references(() => productTable.id, { onDelete: "cascade" }),
    originDate: date("origin_date", { mode: "string" }).notNull(),
    inputCutoff: timestamp("input_cutoff", { withTimezone: true }).notNull(),
    computedAt: timestamp("computed_at", { withTimezone: true }).notNull().defaultNow(),
    method: text("method").notNull(),
    params: jsonb("params").notNull(),
    demandSource: text("demand_source").notNull(),
    /** Sites whose reports went into it (own and below). */
    sites: integer("sites").notNull(),
    onHand: doublePrecision("on_hand").notNull(),
    dailyDemand: doublePrecision("daily_demand").notNull(),
    daysOfSupply: doublePrecision("days_of_supply"),
    daysToStockout: doublePrecision("days_to_stockout"),
    stockoutDate: date("stockout_date", { mode: "string" }),
    stockoutProbability7d: doublePrecision("stockout_probability_7d").notNull(),
    stockoutProbability14d: doublePrecision("stockout_probability_14d").notNull(),
    shortageQuantity: doublePrecision("shortage_quantity").notNull(),
    riskLevel: riskLevelEnum("risk_level").notNull(),
    // The 80 % and 95 % intervals are demand ± z * demand_sd, clamped at 0: derived when read
    // rather than stored, which keeps a row small enough to stay out of TOAST.
    demand: doublePrecision("demand").array().notNull(),
    demandSd: doublePrecision("demand_sd").array().notNull(),
    supply: doublePrecision("supply").array().notNull(),
    netInflow: doublePrecision("net_inflow").array().notNull(),
    stock: doublePrecision("stock").array().notNull(),
    /**
     * Once the future is known: mean absolute error of the stock path against the on-hand stock
     * that later runs found, over `error_days` days, and the same for the naive forecast (the
     * origin's stock held flat); their ratio is the relative error planners see.
     */
    evaluatedAt: timestamp("evaluated_at", { withTimezone: true }),
    errorDays: integer("error_days"),
    errorMae: doublePrecision("error_mae"),
    naiveMae: doublePrecision("naive_mae"),
  },
  (t) => [
    index("forecast_pair_idx").on(t.regionId, t.productId, t.originDate),
    index("forecast_run_idx").on(t.runId),
  ],
);

/** The newest forecast of each (region, product): what `shortages` and `forecast` read. */
export const forecastLatestTable = pgTable(
  "forecast_latest",
  {
    regionId: integer("region_id")
      .notNull()
      .references(() => regionTable.id, { onDelete: "cascade" }),
    productId: integer("product_id")
      .notNull()
      .references(() => productTable.id, { onDelete: "cascade" }),
    forecastId: bigint("forecast_id", { mode: "number" })
      .notNull()
      .references(() => forecastTable.id, { onDelete: "cascade" }),
    riskLevel: riskLevelEnum("risk_level").notNull(),
    daysToStockout: doublePrecision("days_to_stockout"),
    computedAt: timestamp("computed_at", { withTimezone: true }).notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.regionId, t.productId] }),
    index("forecast_latest_risk_idx").on(t.productId, t.riskLevel),
  ],
);

/**
 * (region, product) pairs whose forecast is out of date, written by the outbox relay in the same
 * transaction that marks the event processed; the forecast job deletes a row once it has
 * recomputed the pair from data at least as new as `last_dirty_at`.
 */
export const forecastDirtyTable = pgTable(
  "forecast_dirty",
  {
    regionId: integer("region_id")
      .notNull()
      .references(() => regionTable.id, { onDelete: "cascade" }),
    productId: integer("product_id")
      .notNull()
      .references(() => productTable.id, { onDelete: "cascade" }),
    firstDirtyAt: timestamp("first_dirty_at", { withTimezone: true }).notNull().defaultNow(),
    lastDirtyAt: timestamp("last_dirty_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.productId, t.regionId] })],
);

/** One solve of the matching job for one product and kind, with what it covered. */
export const matchRunTable = pgTable("match_run", {
  id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
  kind: matchKindEnum("kind").notNull(),
  productId: integer("product_id")
    .notNull()
    .references(() => productTable.id, { onDelete: "cascade" }),
  trigger: text("trigger").notNull(),
  startedAt: timestamp("started_at", { withTimezone: true }).notNull().defaultNow(),
  finishedAt: timestamp("finished_at", { withTimezone: true }),
  suppliers: integer("suppliers").notNull().default(0),
  demands: integer("demands").notNull().default(0),
  arcs: integer("arcs").notNull().default(0),
  /** Need offered to the solver, need covered by its proposals (and earlier accepted ones), in base units. */
  need: doublePrecision("need").notNull().default(0),
  covered: doublePrecision("covered").notNull().default(0),
  cost: doublePrecision("cost").notNull().default(0),
  proposals: integer("proposals").notNull().default(0),
});

/**
 * A proposal to move `quantity` of a product from a supplier site to where it is short: a region
 * (downstream, optionally for a procurement request) or a manufacturer's site short of a raw
 * material (upstream). PROPOSED matches are replaced by the next run; ACCEPTED ones commit the
 * quantity, which no later run offers again.
 */
export const matchTable = pgTable(
  "match",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    runId: bigint("run_id", { mode: "number" })
      .notNull()
      .references(() => matchRunTable.id, { onDelete: "cascade" }),
    kind: matchKindEnum("kind").notNull(),
    productId: integer("product_id")
      .notNull()
      .references(() => productTable.id, { onDelete: "restrict" }),
    fromSiteId: uuid("from_site_id")
      .notNull()
      .references(() => siteTable.id, { onDelete: "restrict" }),
    toRegionId: integer("to_region_id")
      .notNull()
      .references(() => regionTable.id, { onDelete: "restrict" }),
    /** Upstream: the manufacturer's site; downstream: the request's site, when it is for a request. */
    toSiteId: uuid("to_site_id").references(() => siteTable.id, { onDelete: "restrict" }),
    requestId: uuid("request_id").references(() => procurementRequestTable.id, { onDelete: "restrict" }),
    quantity: doublePrecision("quantity").notNull(),
    distanceKm: doublePrecision("distance_km"),
    cost: doublePrecision("cost").notNull(),
    urgency: doublePrecision("urgency").notNull(),
    status: matchStatusEnum("status").notNull().default("PROPOSED"),
    reason: text("reason"),
    createdAt: createdAtMs(),
    respondedAt: timestamp("responded_at", { withTimezone: true }),
    respondedBy: uuid("responded_by"),
    closedAt: timestamp("closed_at", { withTimezone: true }),
  },
  (t) => [
    index("match_product_status_idx").on(t.productId, t.status),
    index("match_from_site_idx").on(t.fromSiteId),
    index("match_to_region_idx").on(t.toRegionId),
    index("match_request_idx").on(t.requestId),
    check("match_quantity_positive", sql`${t.quantity} > 0 and ${t.quantity} < 'Infinity'`),
  ],
);

/**
 * Which input limits which product where: over the forecast horizon, the production of `product`
 * in a region that its sites' stock of `input` cannot support, and the input missing for it.
 */
export const bottleneckTable = pgTable(
  "bottleneck",
  {
    forecastId: bigint("forecast_id", { mode: "number" })
      .notNull()
      .references(() => forecastTable.id, { onDelete: "cascade" }),
    regionId: integer("region_id")
      .notNull()
      .references(() => regionTable.id, { onDelete: "cascade" }),
    productId: integer("product_id")
      .notNull()
      .references(() => productTable.id, { onDelete: "cascade" }),
    inputProductId: integer("input_product_id")
      .notNull()
      .references(() => productTable.id, { onDelete: "cascade" }),
    lostQuantity: doublePrecision("lost_quantity").notNull(),
    inputShort: doublePrecision("input_short").notNull(),
  },
  (t) => [primaryKey({ columns: [t.forecastId, t.inputProductId] }), index("bottleneck_region_idx").on(t.regionId, t.productId)],
);

export const alertKindEnum = pgEnum("alert_kind", [
  "SHORTAGE_RISK",
  "STOCKOUT_IMMINENT",
  "SUPPLY_MATCH",
  "UPSTREAM_INPUT_SHORTAGE",
  "REPORT_OVERDUE",
  "DATA_QUALITY",
]);
export const alertStatusEnum = pgEnum("alert_status", ["OPEN", "ACKNOWLEDGED", "RESOLVED"]);
export const alertResolutionEnum = pgEnum("alert_resolution", ["CLEARED", "MANUAL"]);
export const alertEventTypeEnum = pgEnum("alert_event_type", ["RAISED", "ESCALATED", "RESOLVED"]);
export const deliveryChannelEnum = pgEnum("delivery_channel", ["SSE", "WEBHOOK", "EMAIL"]);
export const deliveryStatusEnum = pgEnum("delivery_status", ["PENDING", "DELIVERED", "FAILED", "DIGESTED", "CANCELLED"]);
export const complianceStatusEnum = pgEnum("compliance_status", ["ON_TIME", "LATE", "MISSING"]);

/**
 * One alert per condition: `dedupe_key` (kind and what it is about, e.g.
 * `SHORTAGE_RISK:region:12:product:3`) is unique among unresolved alerts, so a condition that
 * persists updates its alert in place. `stage` is how bad the condition is now (rules define it;
 * higher is worse), `peak_stage` the worst it has been: only a stage above the peak notifies
 * again, so a condition flapping between two levels notifies once.
 */
export const alertTable = pgTable(
  "alert",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    kind: alertKindEnum("kind").notNull(),
    dedupeKey: text("dedupe_key").notNull(),
    status: alertStatusEnum("status").notNull().default("OPEN"),
    severity: riskLevelEnum("severity").notNull(),
    stage: integer("stage").notNull(),
    peakStage: integer("peak_stage").notNull(),
    /** Where: every alert concerns a region, which decides the planners who see it. */
    regionId: integer("region_id")
      .notNull()
      .references(() => regionTable.id, { onDelete: "cascade" }),
    productId: integer("product_id").references(() => productTable.id, { onDelete: "cascade" }),
    /** The organization concerned, whose users see and receive it besides the planners. */
    organizationId: uuid("organization_id").references(() => organizationTable.id, { onDelete: "cascade" }),
    siteId: uuid("site_id").references(() => siteTable.id, { onDelete: "cascade" }),
    matchId: uuid("match_id").references(() => matchTable.id, { onDelete: "set null" }),
    message: text("message").notNull(),
    /** The numbers that explain it (days of supply, dates, quantities), by kind. */
    details: jsonb("details").notNull(),
    raisedAt: timestamp("raised_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
    escalatedAt: timestamp("escalated_at", { withTimezone: true }),
    acknowledgedAt: timestamp("acknowledged_at", { withTimezone: true }),
    acknowledgedBy: uuid("acknowledged_by").references(() => userTable.id, { onDelete: "set null" }),
    resolvedAt: timestamp("resolved_at", { withTimezone: true }),
    resolvedBy: uuid("resolved_by").references(() => userTable.id, { onDelete: "set null" }),
    resolution: alertResolutionEnum("resolution"),
    resolveNote: text("resolve_note"),
    /** For an alert resolved by hand while its condition held: when the condition next cleared. */
    conditionClearedAt: timestamp("condition_cleared_at", { withTimezone: true }),
  },
  (t) => [
    uniqueIndex("alert_open_dedupe_key").on(t.dedupeKey).where(sql`${t.status} <> 'RESOLVED'`),
    index("alert_dedupe_key_idx").on(t.dedupeKey, t.raisedAt),
    index("alert_region_idx").on(t.regionId, t.raisedAt),
    index("alert_organization_idx").on(t.organizationId, t.raisedAt),
    index("alert_open_kind_idx").on(t.kind, t.productId).where(sql`${t.status} <> 'RESOLVED'`),
    check(
      "alert_resolution_consistent",
      sql`(${t.status} = 'RESOLVED') = (${t.resolvedAt} is not null and ${t.resolution} is not null)`,
    ),
  ],
);

/** What happened to an alert that people are told about: each one is dispatched to every channel once. */
export const alertEventTable = pgTable(
  "alert_event",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    alertId: uuid("alert_id")
      .notNull()
      .references(() => alertTable.id, { onDelete: "cascade" }),
    type: alertEventTypeEnum("type").notNull(),
    severity: riskLevelEnum("severity").notNull(),
    message: text("message").notNull(),
    createdAt: createdAt(),
    dispatchedAt: timestamp("dispatched_at", { withTimezone: true }),
  },
  (t) => [index("alert_event_alert_idx").on(t.alertId)],
);

/**
 * A webhook endpoint. Its owner decides what it receives, as for a user: an organization (its
 * own alerts), a jurisdiction (a planner's region and below) or neither (an admin's: everything).
 * The signing secret is kept encrypted; it is shown once, when registered.
 */
export const webhookTable = pgTable(
  "webhook",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    organizationId: uuid("organization_id").references(() => organizationTable.id, { onDelete: "cascade" }),
    jurisdictionRegionId: integer("jurisdiction_region_id").references(() => regionTable.id, { onDelete: "cascade" }),
    url: text("url").notNull(),
    /** Alert kinds it wants; null for all. */
    kinds: alertKindEnum("kinds").array(),
    secretCiphertext: text("secret_ciphertext").notNull(),
    createdBy: uuid("created_by").references(() => userTable.id, { onDelete: "set null" }),
    createdAt: createdAtMs(),
    consecutiveFailures: integer("consecutive_failures").notNull().default(0),
    disabledAt: timestamp("disabled_at", { withTimezone: true }),
    disabledReason: text("disabled_reason"),
  },
  (t) => [
    index("webhook_organization_idx").on(t.organizationId),
    check("webhook_one_owner", sql`${t.organizationId} is null or ${t.jurisdictionRegionId} is null`),
  ],
);

/**
 * The delivery log: one row per alert event and recipient on a push channel (a webhook, a
 * user's e-mail, the live subscription). Its id is the webhook message id, the same on every
 * retry. DIGESTED rows were held back by the per-recipient cap and sent in `digest_id`.
 */
export const deliveryTable = pgTable(
  "delivery",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    alertEventId: bigint("alert_event_id", { mode: "number" }).references(() => alertEventTable.id, { onDelete: "cascade" }),
    channel: deliveryChannelEnum("channel").notNull(),
    webhookId: uuid("webhook_id").references(() => webhookTable.id, { onDelete: "cascade" }),
    userId: uuid("user_id").references(() => userTable.id, { onDelete: "cascade" }),
    status: deliveryStatusEnum("status").notNull().default("PENDING"),
    attempts: integer("attempts").notNull().default(0),
    lastAttemptAt: timestamp("last_attempt_at", { withTimezone: true }),
    lastStatusCode: integer("last_status_code"),
    lastError: text("last_error"),
    deliveredAt: timestamp("delivered_at", { withTimezone: true }),
    digestId: uuid("digest_id"),
    createdAt: createdAtMs(),
  },
  (t) => [
    unique("delivery_event_recipient_key").on(t.alertEventId, t.channel, t.webhookId, t.userId).nullsNotDistinct(),
    index("delivery_webhook_idx").on(t.webhookId, t.createdAt),
    index("delivery_user_idx").on(t.userId, t.createdAt),
    index("delivery_pending_idx").on(t.createdAt).where(sql`${t.status} = 'PENDING'`),
  ],
);

/**
 * When a region's sites must have reported a day: `cutoff_local_time` on the day plus
 * `cutoff_days_after`, in each site's time zone. A region without a row takes its nearest
 * ancestor's; the default is 10:00 on the next day.
 */
export const reportingScheduleTable = pgTable(
  "reporting_schedule",
  {
    regionId: integer("region_id")
      .primaryKey()
      .references(() => regionTable.id, { onDelete: "cascade" }),
    cutoffLocalTime: text("cutoff_local_time").notNull(),
    cutoffDaysAfter: integer("cutoff_days_after").notNull(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    check("reporting_schedule_time_format", sql`${t.cutoffLocalTime} ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'`),
    check("reporting_schedule_days_after_range", sql`${t.cutoffDaysAfter} between 0 and 7`),
  ],
);

/** Whether each site reported each day by its cut-off, as the compliance job found once the cut-off passed. */
export const reportComplianceTable = pgTable(
  "report_compliance",
  {
    siteId: uuid("site_id")
      .notNull()
      .references(() => siteTable.id, { onDelete: "cascade" }),
    date: date("date", { mode: "string" }).notNull(),
    status: complianceStatusEnum("status").notNull(),
    cutoffAt: timestamp("cutoff_at", { withTimezone: true }).notNull(),
    firstSubmittedAt: timestamp("first_submitted_at", { withTimezone: true }),
    checkedAt: timestamp("checked_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.siteId, t.date] }), index("report_compliance_date_idx").on(t.date, t.status)],
);

/**
 * Read model: each site's newest report of each product, upserted in the transaction that writes
 * reports (so it is never behind them). `on_hand`/`on_hand_date` come from the newest report that
 * carries a stock figure, which is not always the newest report. Rebuilt from `report` by
 * `npm run cli -- read-models rebuild`.
 */
export const inventoryCurrentTable = pgTable(
  "inventory_current",
  {
    siteId: uuid("site_id")
      .notNull()
      .references(() => siteTable.id, { onDelete: "cascade" }),
    productId: integer("product_id")
      .notNull()
      .references(() => productTable.id, { onDelete: "cascade" }),
    // No foreign key: the read model is rebuilt from reports, and the write path pays no check for it.
    reportId: bigint("report_id", { mode: "number" }).notNull(),
    date: date("date", { mode: "string" }).notNull(),
    onHand: doublePrecision("on_hand"),
    onHandDate: date("on_hand_date", { mode: "string" }),
    produced: doublePrecision("produced"),
    capacityPerDay: doublePrecision("capacity_per_day"),
    consumed: doublePrecision("consumed"),
    received: doublePrecision("received"),
    shipped: doublePrecision("shipped"),
    backlog: doublePrecision("backlog"),
    stockoutHours: doublePrecision("stockout_hours"),
  },
  // No other index: a new day changes `date`, and a row with no indexed column changed is updated in
  // place (HOT, helped by the fillfactor the migration sets), which keeps the write path cheap.
  (t) => [primaryKey({ columns: [t.siteId, t.productId] })],
);

/**
 * Read model: the day's totals of every region's whole subtree per product (each region's row
 * adds up its children's), with how many sites and organizations they come from. Refreshed by the
 * `readModels.refreshRollups` job a moment after reports change, one (product, day) slice at a
 * time, so ingestion never contends on the country's row.
 */
export const regionDayRollupTable = pgTable(
  "region_day_rollup",
  {
    regionId: integer("region_id")
      .notNull()
      .references(() => regionTable.id, { onDelete: "cascade" }),
    productId: integer("product_id")
      .notNull()
      .references(() => productTable.id, { onDelete: "cascade" }),
    date: date("date", { mode: "string" }).notNull(),
    sites: integer("sites").notNull(),
    organizations: integer("organizations").notNull(),
    onHand: doublePrecision("on_hand"),
    produced: doublePrecision("produced"),
    capacityPerDay: doublePrecision("capacity_per_day"),
    consumed: doublePrecision("consumed"),
    received: doublePrecision("received"),
    shipped: doublePrecision("shipped"),
    stockoutSites: integer("stockout_sites").notNull(),
    refreshedAt: timestamp("refreshed_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.regionId, t.productId, t.date] }),
    index("region_day_rollup_slice_idx").on(t.productId, t.date),
  ],
);

/** (product, day) slices whose rollups are out of date; written by the outbox relay. */
export const rollupDirtyTable = pgTable(
  "rollup_dirty",
  {
    productId: integer("product_id")
      .notNull()
      .references(() => productTable.id, { onDelete: "cascade" }),
    date: date("date", { mode: "string" }).notNull(),
    dirtyAt: timestamp("dirty_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.productId, t.date] })],
);

// ---------------------------------------------------------------------------------------------
// Report file imports (CSV and .xlsx uploads, processed by the imports.process job)

/** UPLOADING: the file is still coming in (never shown; a failed upload is deleted). */
export const importStatusEnum = pgEnum("import_status", ["UPLOADING", "QUEUED", "RUNNING", "DONE", "FAILED"]);
export const importFormatEnum = pgEnum("import_format", ["CSV", "XLSX"]);

/**
 * An uploaded report file and how far its processing got. The file itself is in `import_chunk`,
 * so any worker on any machine can read it. The same content from the same organization (or, for
 * an admin without one, the same user) is one import: the unique indexes hold it once it is queued.
 */
export const importTable = pgTable(
  "import",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    /** The uploader's organization: its sites are the ones the rows may report for. Null for an admin without one. */
    organizationId: uuid("organization_id").references(() => organizationTable.id, { onDelete: "restrict" }),
    uploadedBy: uuid("uploaded_by")
      .notNull()
      .references(() => userTable.id, { onDelete: "restrict" }),
    /** The token the file came with, recorded on the audit rows of its batches (history: no foreign key). */
    tokenId: uuid("token_id").notNull(),
    filename: text("filename"),
    /** Hex SHA-256 of the content; null while uploading. */
    sha256: text("sha256"),
    sizeBytes: bigint("size_bytes", { mode: "number" }).notNull().default(0),
    format: importFormatEnum("format"),
    /** How the text was decoded (utf-8, utf-16le, utf-16be, gb18030); null for .xlsx and before the job read it. */
    encoding: text("encoding"),
    idempotencyKey: text("idempotency_key"),
    status: importStatusEnum("status").notNull().default("UPLOADING"),
    /** Data lines in the file (rows and lines with errors), once the job has counted them. */
    rowsTotal: integer("rows_total"),
    rowsDone: integer("rows_done").notNull().default(0),
    rowsAccepted: integer("rows_accepted").notNull().default(0),
    rowsRejected: integer("rows_rejected").notNull().default(0),
    /** Batches stored so far: a resumed job goes on after the last one. */
    batchesDone: integer("batches_done").notNull().default(0),
    /** Times the file was queued (a re-upload of a FAILED import queues it again); part of the job id. */
    runs: integer("runs").notNull().default(0),
    errorMessage: text("error_message"),
    createdAt: createdAt(),
    startedAt: timestamp("started_at", { withTimezone: true }),
    finishedAt: timestamp("finished_at", { withTimezone: true }),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("import_organization_content_key").on(t.organizationId, t.sha256).where(sql`${t.organizationId} is not null and ${t.status} <> 'UPLOADING'`),
    uniqueIndex("import_user_content_key").on(t.uploadedBy, t.sha256).where(sql`${t.organizationId} is null and ${t.status} <> 'UPLOADING'`),
    uniqueIndex("import_idempotency_key").on(t.uploadedBy, t.idempotencyKey).where(sql`${t.idempotencyKey} is not null`),
    index("import_uploading_idx").on(t.createdAt).where(sql`${t.status} = 'UPLOADING'`),
  ],
);

/** The bytes of an uploaded file, in pieces of about 1 MB written as the upload streams in. */
export const importChunkTable = pgTable(
  "import_chunk",
  {
    importId: uuid("import_id")
      .notNull()
      .references(() => importTable.id, { onDelete: "cascade" }),
    seq: integer("seq").notNull(),
    data: bytea("data").notNull(),
  },
  (t) => [primaryKey({ columns: [t.importId, t.seq] })],
);

/** One problem of one line of an imported file, with the values the line held (when it could be read). */
export const importRejectedRowTable = pgTable(
  "import_rejected_row",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    importId: uuid("import_id")
      .notNull()
      .references(() => importTable.id, { onDelete: "cascade" }),
    line: integer("line").notNull(),
    field: text("field"),
    message: text("message").notNull(),
    /** The line's cells by column name, as the rows were submitted (null when the line could not be read into a row). */
    rowValues: jsonb("row_values"),
  },
  (t) => [index("import_rejected_row_line_idx").on(t.importId, t.line, t.id)],
);

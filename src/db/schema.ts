import { sql } from "drizzle-orm";
import {
  bigint,
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

const createdAt = () => timestamp("created_at", { withTimezone: true }).notNull().defaultNow();

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
    createdAt: createdAt(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex("product_code_key").on(t.code)],
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

import type { InferSelectModel } from "drizzle-orm";
import type {
  organizationKindEnum,
  productCategoryEnum,
  regionLevelEnum,
  roleEnum,
  organizationTable,
  productTable,
  regionTable,
  reportTable,
  siteTable,
  userTable,
} from "../db/schema.js";

export type Role = (typeof roleEnum.enumValues)[number];
export type RegionLevel = (typeof regionLevelEnum.enumValues)[number];
export type OrganizationKind = (typeof organizationKindEnum.enumValues)[number];
export type ProductCategory = (typeof productCategoryEnum.enumValues)[number];

export type RegionRow = InferSelectModel<typeof regionTable>;
export type OrganizationRow = InferSelectModel<typeof organizationTable>;
export type SiteRow = InferSelectModel<typeof siteTable>;
export type ProductRow = InferSelectModel<typeof productTable>;
export type UserRow = InferSelectModel<typeof userTable>;
export type ReportRow = InferSelectModel<typeof reportTable>;

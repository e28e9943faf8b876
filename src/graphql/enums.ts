import { organizationKindEnum, productCategoryEnum, regionLevelEnum, riskLevelEnum, roleEnum } from "../db/schema.js";
import { builder } from "./builder.js";

export const RegionLevelEnum = builder.enumType("RegionLevel", {
  description: "Administrative level of a region, from the whole country down to a county.",
  values: regionLevelEnum.enumValues,
});

export const RoleEnum = builder.enumType("Role", {
  description: "What a user may do and see: ADMIN everything; PLANNER their jurisdiction; REPORTER and PROCUREMENT their organization.",
  values: roleEnum.enumValues,
});

export const OrganizationKindEnum = builder.enumType("OrganizationKind", {
  description: "What an organization does in the supply chain.",
  values: organizationKindEnum.enumValues,
});

export const ProductCategoryEnum = builder.enumType("ProductCategory", {
  description: "Product family: finished masks, other protective equipment, test kits, or raw materials.",
  values: productCategoryEnum.enumValues,
});

export const RiskLevelEnum = builder.enumType("RiskLevel", {
  description:
    "Five-colour risk of a region for a product, from the days until stock-out: RED (within 3 days, or already out), ORANGE (< 7), YELLOW (< 14), BLUE (< 30), GREEN (30 or more); thresholds can be set per product.",
  values: riskLevelEnum.enumValues,
});

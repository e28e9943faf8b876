import type { InferSelectModel } from "drizzle-orm";
import type {
  alertKindEnum,
  alertStatusEnum,
  regionLevelEnum,
  riskLevelEnum,
  roleEnum,
  regionTable,
  reportTable,
} from "../db/schema.js";

export type Role = (typeof roleEnum.enumValues)[number];
export type RegionLevel = (typeof regionLevelEnum.enumValues)[number];
export type RiskLevel = (typeof riskLevelEnum.enumValues)[number];
export type AlertKind = (typeof alertKindEnum.enumValues)[number];
export type AlertStatus = (typeof alertStatusEnum.enumValues)[number];

export type RegionRow = InferSelectModel<typeof regionTable>;
export type ReportRow = InferSelectModel<typeof reportTable>;

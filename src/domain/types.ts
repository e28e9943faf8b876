import type { InferSelectModel } from "drizzle-orm";
import type {
  regionLevelEnum,
  roleEnum,
  regionTable,
  reportTable,
} from "../db/schema.js";

export type Role = (typeof roleEnum.enumValues)[number];
export type RegionLevel = (typeof regionLevelEnum.enumValues)[number];

export type RegionRow = InferSelectModel<typeof regionTable>;
export type ReportRow = InferSelectModel<typeof reportTable>;

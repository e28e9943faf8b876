import DataLoader from "dataloader";
import { eq, inArray } from "drizzle-orm";
import type { Database } from "../db/index.js";
import { regionTable, siteTable } from "../db/schema.js";
import type { Viewer } from "../domain/viewer.js";
import { alertVisibleTo } from "../domain/alerts/audience.js";

interface SiteScope {
  organizationId: string;
  regionPath: string;
}

/**
 * Request-scoped answers to "may this viewer see X", batched so a page of 100 reports costs one
 * query, not 100. Every object type's auth scope goes through here, including `node` lookups.
 */
export class Access {
  private readonly sites: DataLoader<string, SiteScope | null>;
  private ownRegionIds: Promise<Set<number>> | undefined;
  private plannerOrganizations: DataLoader<string, boolean>;
  private regionPaths: DataLoader<number, string | null>;

  constructor(
    private readonly db: Database,
    readonly viewer: Viewer | null,
  ) {
    this.sites = new DataLoader(async (ids) => {
      const rows = await db
        .select({ id: siteTable.id, organizationId: siteTable.organizationId, regionPath: regionTable.path })
        .from(siteTable)
        .innerJoin(regionTable, eq(regionTable.id, siteTable.regionId))
        .where(inArray(siteTable.id, [...ids]));
      const byId = new Map(rows.map((r) => [r.id, r]));
      return ids.map((id) => byId.get(id) ?? null);
    });
    this.regionPaths = new DataLoader(async (ids) => {
      const rows = await db.select({ id: regionTable.id, path: regionTable.path }).from(regionTable).where(inArray(regionTable.id, [...ids]));
      const byId = new Map(rows.map((r) => [r.id, r.path]));
      return ids.map((id) => byId.get(id) ?? null);
    });
    // A planner sees an organization that has at least one site in their jurisdiction.
    this.plannerOrganizations = new DataLoader(async (orgIds) => {
      const path = this.viewer?.jurisdiction?.path;
      if (!path) return orgIds.map(() => false);
      const rows = await db
        .selectDistinct({ organizationId: siteTable.organizationId, path: regionTable.path })
        .from(siteTable)
        .innerJoin(regionTable, eq(regionTable.id, siteTable.regionId))
        .where(inArray(siteTable.organizationId, [...orgIds]));
      const visible = new Set(rows.filter((r) => r.path.startsWith(path)).map((r) => r.organizationId));
      return orgIds.map((id) => visible.has(id));
    });
  }

  get isAdmin() {
    return this.viewer?.role === "ADMIN";
  }

  async siteVisible(siteId: string): Promise<boolean> {
    const v = this.viewer;
    if (!v) return false;
    if (v.role === "ADMIN") return true;
    const site = await this.sites.load(siteId);
    if (!site) return false;
    if (v.role === "PLANNER") return !!v.jurisdiction && site.regionPath.startsWith(v.jurisdiction.path);
    return site.organizationId === v.organizationId;
  }

  /** Reports are figures: procurement staff see requests and matches, not other sites' stock. */
  async siteReportsVisible(siteId: string): Promise<boolean> {
    if (this.viewer?.role === "PROCUREMENT") return false;
    return this.siteVisible(siteId);
  }

  async organizationVisible(organizationId: string): Promise<boolean> {
    const v = this.viewer;
    if (!v) return false;
    if (v.role === "ADMIN") return true;
    if (v.role === "PLANNER") return this.plannerOrganizations.load(organizationId);
    return v.organizationId === organizationId;
  }

  organizationMember(organizationId: string): boolean {
    return this.isAdmin || (this.viewer !== null && this.viewer.organizationId === organizationId);
  }

  async regionVisible(region: { id: number; path: string }): Promise<boolean> {
    const v = this.viewer;
    if (!v) return false;
    if (v.role === "ADMIN") return true;
    if (v.role === "PLANNER") return !!v.jurisdiction && region.path.startsWith(v.jurisdiction.path);
    return (await this.organizationRegionIds()).has(region.id);
  }

  /**
   * Region-level figures (forecasts, shortages): aggregates over every organization in the region,
   * so only admins and the planners whose jurisdiction holds the region see them.
   */
  async regionFiguresVisible(regionId: number): Promise<boolean> {
    const v = this.viewer;
    if (v?.role === "ADMIN") return true;
    if (v?.role !== "PLANNER" || !v.jurisdiction) return false;
    const path = await this.regionPaths.load(regionId);
    return path !== null && path.startsWith(v.jurisdiction.path);
  }

  /** A match: admins; planners whose jurisdiction holds its destination; the supplying or receiving organization. */
  async matchVisible(m: { fromSiteId: string; toSiteId: string | null; toRegionId: number }): Promise<boolean> {
    const v = this.viewer;
    if (!v) return false;
    if (v.role === "ADMIN" || v.role === "PLANNER") return this.regionFiguresVisible(m.toRegionId);
    if (!v.organizationId) return false;
    const [from, to] = await Promise.all([this.sites.load(m.fromSiteId), m.toSiteId ? this.sites.load(m.toSiteId) : null]);
    return from?.organizationId === v.organizationId || to?.organizationId === v.organizationId;
  }

  /** An alert: admins; planners whose jurisdiction holds its region; the users of the organization concerned. */
  async alertVisible(a: { regionId: number; organizationId: string | null }): Promise<boolean> {
    const v = this.viewer;
    if (!v) return false;
    if (v.role === "ADMIN") return true;
    if (v.role === "PLANNER") {
      const path = await this.regionPaths.load(a.regionId);
      return alertVisibleTo(v, { regionPath: path ?? "", organizationId: a.organizationId }) && path !== null;
    }
    return alertVisibleTo(v, { regionPath: "", organizationId: a.organizationId });
  }

  /** Regions where the viewer's own organization has sites (reporters and procurement). */
  organizationRegionIds(): Promise<Set<number>> {
    const orgId = this.viewer?.organizationId;
    this.ownRegionIds ??= orgId
      ? this.db
          .selectDistinct({ regionId: siteTable.regionId })
          .from(siteTable)
          .where(eq(siteTable.organizationId, orgId))
          .then((rows) => new Set(rows.map((r) => r.regionId)))
      : Promise.resolve(new Set());
    return this.ownRegionIds;
  }
}

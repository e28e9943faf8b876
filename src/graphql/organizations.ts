import { sql, type SQL, type SQLWrapper } from "drizzle-orm";
import { createOrganization, createSite } from "../domain/organizations.js";
import type { Viewer } from "../domain/viewer.js";
import { builder } from "./builder.js";
import { OrganizationKindEnum } from "./enums.js";

/** Sites a viewer may see: admins all, planners those in their jurisdiction, others their own organization's. */
export function siteVisibility(viewer: Viewer, site: { organizationId: SQLWrapper; regionId: SQLWrapper }): SQL {
  switch (viewer.role) {
    case "ADMIN":
      return sql`true`;
    case "PLANNER":
      return viewer.jurisdiction
        ? sql`${site.regionId} in (select id from region where path ^@ ${viewer.jurisdiction.path})`
        : sql`false`;
    default:
      return viewer.organizationId ? sql`${site.organizationId} = ${viewer.organizationId}` : sql`false`;
  }
}

/** Organizations a viewer may see: a planner sees those with a site in their jurisdiction. */
function organizationVisibility(viewer: Viewer, org: { id: SQLWrapper }): SQL {
  switch (viewer.role) {
    case "ADMIN":
      return sql`true`;
    case "PLANNER":
      return viewer.jurisdiction
        ? sql`exists (select 1 from site s join region r on r.id = s.region_id where s.organization_id = ${org.id} and r.path ^@ ${viewer.jurisdiction.path})`
        : sql`false`;
    default:
      return viewer.organizationId ? sql`${org.id} = ${viewer.organizationId}` : sql`false`;
  }
}

export const OrganizationRef = builder.drizzleNode("organizationTable", {
  name: "Organization",
  description: "An enterprise, hospital or agency; it reports through its sites.",
  id: { column: (o) => o.id, description: "Global id of the organization." },
  authScopes: (org) => ({ organizationVisible: org.id }),
  fields: (t) => {
    // Contact details are personal data: members of the organization and admins only, else null.
    const contact = (column: "contactName" | "contactEmail" | "contactPhone", description: string) =>
      t.exposeString(column, {
        nullable: true,
        description,
        authScopes: (org) => ({ organizationMember: org.id }),
        unauthorizedResolver: () => null,
      });
    return {
      name: t.exposeString("name", { description: "Registered name." }),
      kind: t.expose("kind", { type: OrganizationKindEnum, description: "Role in the supply chain." }),
      creditCode: t.exposeString("creditCode", { nullable: true, description: "Unified social credit code (18 characters), if given." }),
      contactName: contact("contactName", "Contact person; visible to the organization itself and admins only."),
      contactEmail: contact("contactEmail", "Contact e-mail; visible to the organization itself and admins only."),
      contactPhone: contact("contactPhone", "Contact phone; visible to the organization itself and admins only."),
      createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was registered here." }),
      sites: t.relation("sites", {
        description: "The organization's sites that the viewer may see, by code.",
        query: (_args, ctx) => ({
          where: { RAW: (site) => siteVisibility(ctx.viewer!, site) },
          orderBy: { code: "asc" },
        }),
      }),
    };
  },
});

export const SiteRef = builder.drizzleNode("siteTable", {
  name: "Site",
  description: "A plant, warehouse, ward or store of an organization, located in one region; reports are per site.",
  id: { column: (s) => s.id, description: "Global id of the site." },
  authScopes: (site) => ({ siteVisible: site.id }),
  fields: (t) => ({
    code: t.exposeString("code", { description: "Stable code used in reports (siteCode)." }),
    name: t.exposeString("name", { description: "Name of the site." }),
    timeZone: t.exposeString("timeZone", { description: "IANA time zone in which the site's report dates are counted." }),
    region: t.relation("region", { description: "The region the site is in." }),
    organization: t.relation("organization", { description: "The organization that owns the site." }),
  }),
});

const CreateOrganizationInput = builder.inputType("CreateOrganizationInput", {
  description: "A new organization.",
  fields: (t) => ({
    name: t.string({ required: true, description: "Registered name." }),
    kind: t.field({ type: OrganizationKindEnum, required: true, description: "Role in the supply chain." }),
    creditCode: t.string({ description: "Unified social credit code: 18 characters, checked with its check character." }),
    contactName: t.string({ description: "Contact person (personal data)." }),
    contactEmail: t.string({ description: "Contact e-mail (personal data)." }),
    contactPhone: t.string({ description: "Contact phone (personal data)." }),
  }),
});

const CreateSiteInput = builder.inputType("CreateSiteInput", {
  description: "A new site of an existing organization.",
  fields: (t) => ({
    organizationId: t.globalID({ required: true, for: OrganizationRef, description: "Global id of the organization." }),
    code: t.string({ required: true, description: "Unique site code (letters, digits, '.', '_', '-')." }),
    name: t.string({ required: true, description: "Name of the site." }),
    regionCode: t.string({ required: true, description: "Code of the region the site is in." }),
    timeZone: t.string({ description: "IANA time zone; defaults to Asia/Shanghai." }),
  }),
});

builder.queryFields((t) => ({
  organizations: t.drizzleConnection({
    type: "organizationTable",
    description: "Organizations the viewer may see, by name; optionally those with a site in a region's subtree, or of one kind.",
    authScopes: { authenticated: true },
    args: {
      regionCode: t.arg.string({ description: "Only organizations with a site in this region or below it." }),
      kind: t.arg({ type: OrganizationKindEnum, description: "Only this kind." }),
    },
    resolve: async (query, _root, args, ctx) => {
      let regionPath: string | undefined;
      if (args.regionCode) {
        const region = await ctx.db.query.regionTable.findFirst({ where: { code: args.regionCode }, columns: { path: true } });
        if (!region) return [];
        regionPath = region.path;
      }
      return ctx.db.query.organizationTable.findMany(
        query({
          where: {
            ...(args.kind ? { kind: args.kind } : {}),
            RAW: (org) =>
              sql`${organizationVisibility(ctx.viewer!, org)} and ${
                regionPath === undefined
                  ? sql`true`
                  : // Only the viewer's own visible sites count, or the filter would say where an
                    // organization has sites outside the viewer's jurisdiction.
                    sql`exists (select 1 from site s join region r on r.id = s.region_id where s.organization_id = ${org.id} and r.path ^@ ${regionPath} and ${siteVisibility(ctx.viewer!, { organizationId: sql`s.organization_id`, regionId: sql`s.region_id` })})`
              }`,
          },
          orderBy: { name: "asc" },
        }),
      );
    },
  }, { name: "OrganizationConnection", description: "A page of organizations." }, { name: "OrganizationEdge", description: "One organization of a page, with its cursor." }),
}));

builder.mutationFields((t) => ({
  createOrganization: t.drizzleField({
    type: "organizationTable",
    description: "Admin: register an organization.",
    authScopes: { admin: true },
    args: { input: t.arg({ type: CreateOrganizationInput, required: true, description: "The organization." }) },
    resolve: async (query, _root, args, ctx) => {
      const org = await createOrganization(ctx.db, ctx.actor, args.input);
      return (await ctx.db.query.organizationTable.findFirst(query({ where: { id: org.id } })))!;
    },
  }),
  createSite: t.drizzleField({
    type: "siteTable",
    description: "Admin: add a site to an organization.",
    authScopes: { admin: true },
    args: { input: t.arg({ type: CreateSiteInput, required: true, description: "The site." }) },
    resolve: async (query, _root, args, ctx) => {
      const site = await createSite(ctx.db, ctx.actor, { ...args.input, organizationId: args.input.organizationId.id });
      return (await ctx.db.query.siteTable.findFirst(query({ where: { id: site.id } })))!;
    },
  }),
}));

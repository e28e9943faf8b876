import SchemaBuilder from "@pothos/core";
import DrizzlePlugin from "@pothos/plugin-drizzle";
import RelayPlugin from "@pothos/plugin-relay";
import ScopeAuthPlugin from "@pothos/plugin-scope-auth";
import { getTableConfig } from "drizzle-orm/pg-core";
import type { Relations } from "../db/index.js";
import { relations } from "../db/relations.js";
import type { Role } from "../domain/types.js";
import type { Context } from "./context.js";

export interface PothosTypes {
  Context: Context;
  DrizzleRelations: Relations;
  AuthScopes: {
    authenticated: boolean;
    admin: boolean;
    roles: Role[];
    self: string;
    siteVisible: string;
    siteReportsVisible: string;
    organizationVisible: string;
    organizationMember: string;
    regionVisible: { id: number; path: string };
  };
  Scalars: {
    Date: { Input: string; Output: string };
    DateTime: { Input: Date; Output: Date | string };
  };
  DefaultFieldNullability: false;
}

export const builder = new SchemaBuilder<PothosTypes>({
  // Relay first so auth scopes receive decoded global ids; then scope-auth wraps every resolver.
  plugins: [RelayPlugin, ScopeAuthPlugin, DrizzlePlugin],
  defaultFieldNullability: false,
  relay: {
    clientMutationId: "omit",
    cursorType: "String",
    nodeTypeOptions: { description: "An object with a global id that `node` can fetch again." },
    idFieldOptions: { description: "Global id of the object." },
    pageInfoTypeOptions: { description: "Where a page of a connection sits in the whole list." },
    defaultConnectionTypeOptions: { description: "A page of results: at most 100 per page (default 20)." },
    defaultEdgeTypeOptions: { description: "One result of a page, with its cursor." },
    nodeQueryOptions: { description: "Fetches any object by its global id, if the viewer may see it.", authScopes: { authenticated: true } },
    nodesQueryOptions: {
      description: "Fetches objects by their global ids; those the viewer may not see come back as errors.",
      authScopes: { authenticated: true },
    },
  },
  drizzle: {
    client: (ctx) => ctx.db as never,
    getTableConfig,
    relations,
    defaultConnectionSize: 20,
    maxConnectionSize: 100,
  },
  scopeAuth: {
    // Type-level checks run once per object, so a forbidden object fails as a whole.
    runScopesOnType: true,
    authorizeOnSubscribe: true,
    unauthorizedError: (_parent, context, _info, result) =>
      context.viewer
        ? `not allowed: ${result.message}; your role (${context.viewer.role}) does not give access to this`
        : "not signed in: send a valid API token as 'Authorization: Bearer <token>'",
    authScopes: (ctx) => ({
      authenticated: ctx.viewer !== null,
      admin: ctx.viewer?.role === "ADMIN",
      roles: (roles) => ctx.viewer !== null && roles.includes(ctx.viewer.role),
      self: (userId) => ctx.viewer !== null && (ctx.viewer.role === "ADMIN" || ctx.viewer.userId === userId),
      siteVisible: (siteId) => ctx.access.siteVisible(siteId),
      siteReportsVisible: (siteId) => ctx.access.siteReportsVisible(siteId),
      organizationVisible: (orgId) => ctx.access.organizationVisible(orgId),
      organizationMember: (orgId) => ctx.access.organizationMember(orgId),
      regionVisible: (region) => ctx.access.regionVisible(region),
    }),
  },
});

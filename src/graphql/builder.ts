import SchemaBuilder from "@pothos/core";
import DrizzlePlugin from "@pothos/plugin-drizzle";
import RelayPlugin from "@pothos/plugin-relay";
import ScopeAuthPlugin from "@pothos/plugin-scope-auth";
import { getTableConfig } from "drizzle-orm/pg-core";
import { GraphQLError } from "graphql";
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
    regionFiguresVisible: number;
    matchVisible: { fromSiteId: string; toSiteId: string | null; toRegionId: number };
    alertVisible: { regionId: number; organizationId: string | null };
  };
  Scalars: {
    Date: { Input: string; Output: string };
    DateTime: { Input: Date; Output: Date | string };
    JSONObject: { Input: Record<string, unknown>; Output: unknown };
    /** A file of a GraphQL multipart request (graphql-multipart-request-spec), as graphql-yoga hands it over. */
    File: { Input: File; Output: never };
  };
  DefaultFieldNullability: false;
}

const NOT_VISIBLE = "not found, or not visible to you";
const notVisible = () => new GraphQLError(NOT_VISIBLE, { extensions: { code: "NOT_FOUND" } });
/** The drizzle plugin's loader throws this when an id has no row. */
const isMissingNode = (error: unknown) => error instanceof Error && /^Model \w+\(.*\) not found/.test(error.message);

/** Rows per page of a connection: when `first` is not given, and at most. */
export const PAGE_SIZE = { default: 20, max: 100 } as const;

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
    // A missing object and one the viewer may not see get the same answer, so ids reveal nothing.
    nodeQueryOptions: {
      description: "Fetches any object by its global id; an error if it does not exist or the viewer may not see it.",
      authScopes: { authenticated: true },
      resolve: async (_root, args, _ctx, _info, resolveNode) => {
        try {
          return await resolveNode(args.id);
        } catch (error) {
          throw isMissingNode(error) ? notVisible() : error;
        }
      },
    },
    nodesQueryOptions: {
      description: "Fetches objects by their global ids; each one that does not exist or the viewer may not see is an error.",
      authScopes: { authenticated: true },
      resolve: async (_root, args, _ctx, _info, resolveNodes) => {
        if (args.ids.length > 100) throw new GraphQLError(`nodes takes at most 100 ids, got ${args.ids.length}; split the list`);
        // Each id is its own promise, so a missing one is an error on its item, not on the list.
        // (The drizzle plugin still loads them in one batch, which fails every item of a list that
        // holds a missing id; each then answers "not found, or not visible".)
        return args.ids.map((id) =>
          resolveNodes([id]).then(
            ([node]) => node,
            (error: unknown) => Promise.reject(isMissingNode(error) ? notVisible() : error),
          ),
        );
      },
    },
  },
  drizzle: {
    client: (ctx) => ctx.db as never,
    getTableConfig,
    relations,
    defaultConnectionSize: PAGE_SIZE.default,
    maxConnectionSize: PAGE_SIZE.max,
  },
  scopeAuth: {
    // Type-level checks run once per object, so a forbidden object fails as a whole.
    runScopesOnType: true,
    authorizeOnSubscribe: true,
    unauthorizedError: (_parent, context, info, result) => {
      if (!context.viewer) return "not signed in: send a valid API token as 'Authorization: Bearer <token>'";
      if (info.parentType.name === "Query" && (info.fieldName === "node" || info.fieldName === "nodes")) return NOT_VISIBLE;
      return `not allowed: ${result.message}; your role (${context.viewer.role}) does not give access to this`;
    },
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
      regionFiguresVisible: (regionId) => ctx.access.regionFiguresVisible(regionId),
      matchVisible: (m) => ctx.access.matchVisible(m),
      alertVisible: (a) => ctx.access.alertVisible(a),
    }),
  },
});

import { createApiToken, revokeApiToken } from "../domain/tokens.js";
import { createUser } from "../domain/users.js";
import { forbidden } from "../domain/errors.js";
import type { Viewer } from "../domain/viewer.js";
import { builder } from "./builder.js";
import { RoleEnum } from "./enums.js";
import { OrganizationRef } from "./organizations.js";

export const UserRef = builder.drizzleNode("userTable", {
  name: "User",
  description: "A person with API access. Users see their own record; admins see all.",
  id: { column: (u) => u.id, description: "Global id of the user." },
  authScopes: (user) => ({ self: user.id }),
  fields: (t) => ({
    name: t.exposeString("name", { description: "Display name." }),
    email: t.exposeString("email", { description: "E-mail address (personal data)." }),
    role: t.expose("role", { type: RoleEnum, description: "What the user may do and see." }),
    organization: t.relation("organization", { nullable: true, description: "The organization of a REPORTER or PROCUREMENT user." }),
    jurisdiction: t.relation("jurisdiction", { nullable: true, description: "The region (and subtree) a PLANNER watches." }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When the user was created." }),
    apiTokens: t.relation("apiTokens", { description: "The user's API tokens, newest first.", query: { orderBy: { createdAt: "desc" } } }),
  }),
});

export const ApiTokenRef = builder.drizzleNode("apiTokenTable", {
  name: "ApiToken",
  description: "An API token. The secret is shown once, at creation; only its hash is stored.",
  id: { column: (k) => k.id, description: "Global id of the token." },
  authScopes: (token) => ({ self: token.userId }),
  fields: (t) => ({
    name: t.exposeString("name", { description: "What the token is for." }),
    prefix: t.exposeString("prefix", { description: "The first characters of the secret, to tell tokens apart." }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was created." }),
    expiresAt: t.expose("expiresAt", { type: "DateTime", nullable: true, description: "When it stops working, if ever." }),
    revokedAt: t.expose("revokedAt", { type: "DateTime", nullable: true, description: "When it was revoked, if it was." }),
    lastUsedAt: t.expose("lastUsedAt", { type: "DateTime", nullable: true, description: "Last use, to the minute." }),
    user: t.relation("user", { description: "Whose token it is." }),
  }),
});

const ViewerRef = builder.objectRef<Viewer>("Viewer").implement({
  description: "Who the token belongs to and what they may see.",
  fields: (t) => ({
    user: t.drizzleField({
      type: "userTable",
      description: "The signed-in user.",
      resolve: async (query, viewer, _args, ctx) => (await ctx.db.query.userTable.findFirst(query({ where: { id: viewer.userId } })))!,
    }),
    role: t.field({ type: RoleEnum, description: "The user's role.", resolve: (v) => v.role }),
    organization: t.drizzleField({
      type: "organizationTable",
      nullable: true,
      description: "The organization the user reports or buys for.",
      resolve: (query, viewer, _args, ctx) =>
        viewer.organizationId ? ctx.db.query.organizationTable.findFirst(query({ where: { id: viewer.organizationId } })) : null,
    }),
    jurisdiction: t.drizzleField({
      type: "regionTable",
      nullable: true,
      description: "For planners: the region whose subtree they may see.",
      resolve: (query, viewer, _args, ctx) =>
        viewer.jurisdiction ? ctx.db.query.regionTable.findFirst(query({ where: { id: viewer.jurisdiction.id } })) : null,
    }),
  }),
});

const CreateUserInput = builder.inputType("CreateUserInput", {
  description: "A new user.",
  fields: (t) => ({
    name: t.string({ required: true, description: "Display name." }),
    email: t.string({ required: true, description: "E-mail, unique." }),
    role: t.field({ type: RoleEnum, required: true, description: "Role." }),
    organizationId: t.globalID({ for: OrganizationRef, description: "Required for REPORTER and PROCUREMENT." }),
    jurisdictionRegionCode: t.string({ description: "Required for PLANNER: the root of their jurisdiction." }),
  }),
});

const CreateApiTokenInput = builder.inputType("CreateApiTokenInput", {
  description: "A new API token for a user.",
  fields: (t) => ({
    userId: t.globalID({ required: true, for: UserRef, description: "Global id of the user." }),
    name: t.string({ required: true, description: "What the token is for." }),
    expiresAt: t.field({ type: "DateTime", description: "When it stops working; none = until revoked." }),
  }),
});

const CreateApiTokenPayload = builder
  .objectRef<{ token: string; apiTokenId: string }>("CreateApiTokenPayload")
  .implement({
    description: "A new token. `token` is the secret: it is shown now and never again.",
    fields: (t) => ({
      token: t.exposeString("token", { description: "The secret to send as 'Authorization: Bearer <token>'." }),
      apiToken: t.drizzleField({
        type: "apiTokenTable",
        description: "The stored token record.",
        resolve: async (query, payload, _args, ctx) =>
          (await ctx.db.query.apiTokenTable.findFirst(query({ where: { id: payload.apiTokenId } })))!,
      }),
    }),
  });

builder.queryFields((t) => ({
  me: t.field({
    type: ViewerRef,
    description: "Who the token belongs to: user, role, organization, jurisdiction.",
    authScopes: { authenticated: true },
    resolve: (_root, _args, ctx) => ctx.viewer!,
  }),
}));

builder.mutationFields((t) => ({
  createUser: t.drizzleField({
    type: "userTable",
    description: "Admin: create a user with a role and its scope (organization or jurisdiction).",
    authScopes: { admin: true },
    args: { input: t.arg({ type: CreateUserInput, required: true, description: "The user." }) },
    resolve: async (query, _root, args, ctx) => {
      const user = await createUser(ctx.db, ctx.actor, { ...args.input, organizationId: args.input.organizationId?.id ?? null });
      return (await ctx.db.query.userTable.findFirst(query({ where: { id: user.id } })))!;
    },
  }),
  createApiToken: t.field({
    type: CreateApiTokenPayload,
    description: "Admin: create an API token for a user. The secret is in the answer, once.",
    authScopes: { admin: true },
    args: { input: t.arg({ type: CreateApiTokenInput, required: true, description: "The token." }) },
    resolve: async (_root, args, ctx) => {
      const { token, apiToken } = await createApiToken(ctx.db, ctx.actor, { ...args.input, userId: args.input.userId.id });
      return { token, apiTokenId: apiToken.id };
    },
  }),
  revokeApiToken: t.drizzleField({
    type: "apiTokenTable",
    description: "Revoke a token at once. Admins may revoke any token; users their own.",
    authScopes: { authenticated: true },
    args: { id: t.arg.globalID({ required: true, for: ApiTokenRef, description: "Global id of the token." }) },
    resolve: async (query, _root, args, ctx) => {
      const viewer = ctx.viewer!;
      if (viewer.role !== "ADMIN") {
        const own = await ctx.db.query.apiTokenTable.findFirst({ where: { id: args.id.id, userId: viewer.userId }, columns: { id: true } });
        if (!own) throw forbidden("you may revoke only your own tokens; ask an admin to revoke another user's token");
      }
      await revokeApiToken(ctx.db, ctx.actor, args.id.id);
      return (await ctx.db.query.apiTokenTable.findFirst(query({ where: { id: args.id.id } })))!;
    },
  }),
}));


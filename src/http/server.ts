import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import { createYoga, type Plugin } from "graphql-yoga";
import { GraphQLError } from "graphql";
import type { Config } from "../config.js";
import type { Database } from "../db/index.js";
import { DomainError, findCause } from "../domain/errors.js";
import { authenticate } from "../domain/tokens.js";
import { createContext, type Context } from "../graphql/context.js";
import { toGraphQLError } from "../graphql/errors.js";
import { schema } from "../graphql/schema.js";
import type { Logger } from "../logger.js";

export interface HttpDeps {
  config: Config;
  db: Database;
  logger: Logger;
  /** Checks every dependency the service needs to answer; throws with the reason if one is down. */
  ready: () => Promise<void>;
}

const unauthenticated = (message: string) =>
  new GraphQLError(message, { extensions: { code: "UNAUTHENTICATED", http: { status: 401 } } });


export function createGraphQLHandler({ config, db, logger }: Omit<HttpDeps, "ready">) {
  const requestIds: Plugin = {
    onResponse({ request, response }) {
      response.headers.set("x-request-id", request.headers.get("x-request-id") ?? "");
    },
  };
  return createYoga<Record<string, never>, Context>({
    schema,
    graphqlEndpoint: "/graphql",
    landingPage: false,
    graphiql: config.NODE_ENV !== "production",
    logging: {
      debug: (...args) => logger.debug({ args }, "yoga"),
      info: (...args) => logger.info({ args }, "yoga"),
      warn: (...args) => logger.warn({ args }, "yoga"),
      // Unexpected errors are logged once, with their stack, in maskError; what yoga reports here is client-caused.
      error: (...args) => logger.debug({ args }, "yoga"),
    },
    plugins: [requestIds],
    context: async ({ request }) => {
      const requestId = request.headers.get("x-request-id") ?? randomUUID();
      const header = request.headers.get("authorization");
      if (!header) return createContext(db, config, null, requestId);
      const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (!match) throw unauthenticated("the Authorization header must be 'Bearer <token>'");
      const viewer = await authenticate(db, match[1]!);
      if (!viewer) throw unauthenticated("the API token is unknown, revoked or expired; ask an admin for a new one");
      return createContext(db, config, viewer, requestId);
    },
    maskedErrors: {
      maskError(error, message) {
        const domain = findCause<DomainError>(error, (e) => e instanceof DomainError);
        if (domain) return toGraphQLError(domain);
        // 22P02 malformed value, 22003 number out of range, 22008 date out of range, 22021 NUL byte.
        // These are the client's mistakes, not ours.
        const malformed = findCause<{ message: string }>(
          error,
          (e) => ["22P02", "22003", "22008", "22021"].includes(e.code) && typeof e.message === "string",
        );
        if (malformed) {
          return new GraphQLError(`a value has the wrong format (${malformed.message}); use ids exactly as this API returned them`, {
            extensions: { code: "BAD_INPUT" },
          });
        }
        // GraphQL's own errors (validation, variable coercion, auth scopes) are written for clients.
        if (error instanceof GraphQLError && (!error.originalError || error.originalError instanceof GraphQLError)) return error;
        logger.error({ err: error }, "unexpected error while answering a request");
        return new GraphQLError(message, { extensions: { code: "INTERNAL_SERVER_ERROR" } });
      },
    },
  });
}

/** The HTTP server: GraphQL at /graphql, liveness at /healthz, readiness at /readyz. */
export function createHttpServer(deps: HttpDeps): Server {
  const yoga = createGraphQLHandler(deps);
  return createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ status: "ok" }));
      return;
    }
    if (path === "/readyz") {
      deps.ready().then(
        () => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ status: "ready" })),
        (error: Error) =>
          res
            .writeHead(503, { "content-type": "application/json", "retry-after": "5" })
            .end(JSON.stringify({ status: "unavailable", reason: error.message })),
      );
      return;
    }
    if (!req.headers["x-request-id"]) req.headers["x-request-id"] = randomUUID();
    void yoga(req, res);
  });
}

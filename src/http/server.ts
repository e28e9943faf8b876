import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createYoga, type Plugin } from "graphql-yoga";
import {
  GraphQLError,
  Kind,
  getNamedType,
  getOperationAST,
  isAbstractType,
  isObjectType,
  type DocumentNode,
  type ExecutionArgs,
  type FragmentDefinitionNode,
  type GraphQLNamedType,
  type GraphQLSchema,
  type SelectionSetNode,
} from "graphql";
import { compileQuery, isCompiledQuery, type CompiledQuery } from "graphql-jit";
import type { Config } from "../config.js";
import type { Database } from "../db/index.js";
import type { LiveAlertSource } from "../domain/alerts/live.js";
import { DomainError, findCause } from "../domain/errors.js";
import { authenticate, bearerToken } from "../domain/tokens.js";
import type { Viewer } from "../domain/viewer.js";
import { createContext, type Context } from "../graphql/context.js";
import { toGraphQLError } from "../graphql/errors.js";
import { schema } from "../graphql/schema.js";
import type { Logger } from "../logger.js";
import {
  clientAddress,
  createRateLimits,
  currentRequestId,
  documentLimitPlugins,
  introspectionPlugins,
  requestIdFrom,
  runWithRequestId,
  useBodyLimits,
  useCostLimit,
  useCsrfPrevention,
  useHttpErrors,
  useNestingLimit,
  useRateLimits,
  useRequestIds,
  type RateLimits,
} from "./limits.js";
import { dashboardHandler } from "./dashboard.js";
import { openDataHandler } from "./open-data.js";
import { ADMIN_QUEUES_PATH, createOperations, useOperationMetrics } from "./operations.js";
import { httpDuration, routeOf } from "../metrics.js";
import { importsHandler } from "./imports.js";
import { createResponseCache, type ResponseCache } from "./response-cache.js";

export interface HttpDeps {
  config: Config;
  db: Database;
  logger: Logger;
  /** Checks every dependency the service needs to answer; throws with the reason if one is down. */
  ready: () => Promise<void>;
  /** The live alert stream behind the alertRaised subscription; without it, subscribing is refused. */
  live?: LiveAlertSource;
  /** The Redis where per-token rate limits are counted; without it, operations are not rate limited. */
  redisUrl?: string;
  /** Cache planners' dashboard answers and checked tokens, invalidated through `redisUrl` (API processes). */
  cacheResponses?: boolean;
  /** A response cache made by the caller (tests), used instead of one made for `cacheResponses`; the caller closes it. */
  responseCache?: ResponseCache;
}

/**
 * The database cannot be reached or is refusing connections: postgres.js's connection errors, the
 * socket's, and SQLSTATE class 08 (connection exception), 57P01-57P03 (shutting down, starting
 * up) and 53300 (too many connections).
 */
export function isDatabaseUnavailable(e: { code?: unknown }): boolean {
  const code = typeof e.code === "string" ? e.code : "";
  return (
    ["CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED", "CONNECT_TIMEOUT", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENETUNREACH", "53300"].includes(code) ||
    code.startsWith("08") ||
    ["57P01", "57P02", "57P03"].includes(code)
  );
}

const databaseUnavailable = () =>
  new GraphQLError(
    "the database is unavailable right now; retry in a few seconds (a batch retried with the same idempotencyKey is stored once)",
    { extensions: { code: "SERVICE_UNAVAILABLE", http: { status: 503, headers: { "retry-after": "5" } } } },
  );

const unauthenticated = (message: string) =>
  new GraphQLError(message, { extensions: { code: "UNAUTHENTICATED", http: { status: 401 } } });

/** Root mutation fields whose operations run compiled: those whose input is a large list. */
const COMPILED_FIELDS = new Set(["submitReports"]);

/**
 * True when every type the selection reaches is an object type without `isTypeOf`. Pothos'
 * scope-auth checks type-level auth scopes (such as Report's) in `isTypeOf`, and graphql-jit calls
 * `isTypeOf` with the value alone and does not wait for a promise: such a check must never run
 * compiled. Abstract types resolve through the same functions, so they stay off the compiled path too.
 */
function reachesOnlyPlainTypes(
  schema: GraphQLSchema,
  type: GraphQLNamedType,
  selectionSet: SelectionSetNode | undefined,
  fragments: Map<string, FragmentDefinitionNode>,
): boolean {
  if (isAbstractType(type)) return false;
  if (!isObjectType(type)) return true; // scalars and enums
  if (typeof type.isTypeOf === "function") return false;
  for (const selection of selectionSet?.selections ?? []) {
    if (selection.kind === Kind.FIELD) {
      if (selection.name.value.startsWith("__")) continue;
      const field = type.getFields()[selection.name.value];
      if (!field || !reachesOnlyPlainTypes(schema, getNamedType(field.type), selection.selectionSet, fragments)) return false;
    } else {
      const fragment = selection.kind === Kind.FRAGMENT_SPREAD ? fragments.get(selection.name.value) : selection;
      const condition = fragment?.typeCondition ? schema.getType(fragment.typeCondition.name.value) : type;
      if (!fragment || !condition || !reachesOnlyPlainTypes(schema, condition, fragment.selectionSet, fragments)) return false;
    }
  }
  return true;
}

/**
 * graphql-jit's errors carry their locations as line and column, without the document's nodes, and
 * yoga rebuilds every error from its nodes (or source and positions) before answering, which would
 * drop the locations. The same error with the source and positions of those locations answers
 * exactly as the standard executor's error does.
 */
function locatedInSource(error: GraphQLError, document: DocumentNode): GraphQLError {
  const source = document.loc?.source;
  if (error.nodes || error.positions || !source || !error.locations?.length) return error;
  const lineStarts = [0];
  for (const m of source.body.matchAll(/\r\n|[\n\r]/g)) lineStarts.push(m.index + m[0].length);
  const positions = error.locations.map((l) => (lineStarts[l.line - 1] ?? 0) + l.column - 1);
  return new GraphQLError(error.message, {
    source,
    positions,
    path: error.path,
    originalError: error.originalError,
    extensions: error.extensions,
  });
}

/**
 * Runs operations that are a single `submitReports` mutation with graphql-jit instead of the
 * standard executor. A batch of 1,000 rows is 12,000 input fields, and the standard executor's
 * variable coercion (graphql-js `coerceInputValue` plus the executor's input snapshot) cost about
 * 20 µs per row, more than the whole ingestion behind it; graphql-jit compiles the coercion for
 * the operation's variable types once, into plain code, and runs it at about 2 µs per row. It calls
 * the same resolvers (with Pothos' field auth scopes) and the same scalars, and yoga masks its
 * errors as any other.
 *
 * Only operations whose selection reaches plain object types are compiled (see
 * reachesOnlyPlainTypes): a client that asks for the stored `reports` gets them through the
 * standard executor, with their type-level auth checks. graphql-jit words variable errors its own
 * way (without graphql-js's path into the list or the scalar's own message); an operation whose
 * variables fail has run nothing yet, so it is handed to the standard executor, which answers with
 * graphql-js's errors: the client sees the same errors on either path.
 */
function useCompiledBulkMutations(logger: Logger): Plugin {
  const compiled = new WeakMap<GraphQLSchema, WeakMap<DocumentNode, Map<string, CompiledQuery | null>>>();
  const compiledFor = (args: ExecutionArgs): CompiledQuery | null => {
    let bySchema = compiled.get(args.schema);
    if (!bySchema) compiled.set(args.schema, (bySchema = new WeakMap()));
    let byName = bySchema.get(args.document);
    if (!byName) bySchema.set(args.document, (byName = new Map()));
    const name = args.operationName ?? "";
    let query = byName.get(name);
    if (query === undefined) {
      query = null;
      const operation = getOperationAST(args.document, args.operationName);
      const [field, ...others] = operation?.selectionSet.selections ?? [];
      const mutation = args.schema.getMutationType();
      const fragments = new Map<string, FragmentDefinitionNode>();
      for (const d of args.document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
      if (
        operation?.operation === "mutation" &&
        mutation &&
        others.length === 0 &&
        field?.kind === Kind.FIELD &&
        !field.directives?.length &&
        COMPILED_FIELDS.has(field.name.value) &&
        reachesOnlyPlainTypes(args.schema, mutation, operation.selectionSet, fragments)
      ) {
        try {
          const result = compileQuery(args.schema, args.document, args.operationName ?? undefined);
          if (isCompiledQuery(result)) query = result;
        } catch (error) {
          // Whatever graphql-jit cannot compile runs on the standard executor.
          logger.warn({ err: error }, "graphql-jit could not compile an operation; it runs on the standard executor");
        }
      }
      byName.set(name, query);
    }
    return query;
  };
  return {
    onExecute({ args, executeFn, setExecuteFn }) {
      const query = compiledFor(args);
      if (!query) return;
      setExecuteFn(async (execArgs: ExecutionArgs) => {
        const result = await query.query(execArgs.rootValue, execArgs.contextValue, execArgs.variableValues ?? {});
        if (!("data" in result)) return executeFn(execArgs);
        if (!result.errors?.length) return result;
        return { errors: result.errors.map((e) => locatedInSource(e, execArgs.document)), data: result.data };
      });
    },
  };
}


export interface GraphQLHandlerDeps extends Omit<HttpDeps, "ready" | "redisUrl"> {
  /** Per-token rate limits; without them, operations are not rate limited (tests, tools). */
  rateLimits?: RateLimits;
  /** The response and token cache; without it, every operation runs and every token is looked up. */
  responseCache?: ResponseCache;
}

export function createGraphQLHandler({ config, db, logger, live, rateLimits, responseCache }: GraphQLHandlerDeps) {
  const production = config.NODE_ENV === "production";
  // One token lookup per request, shared by the introspection check and the context.
  const viewers = new WeakMap<Request, Promise<Viewer | null>>();
  const tokenOf = (request: Request) => bearerToken(request.headers.get("authorization"));
  const viewerOf = (request: Request) => {
    let viewer = viewers.get(request);
    if (!viewer) {
      const token = tokenOf(request);
      viewers.set(request, (viewer = !token ? Promise.resolve(null) : responseCache ? responseCache.authenticate(token) : authenticate(db, token)));
    }
    return viewer;
  };
  return createYoga<{ req?: IncomingMessage }, Context>({
    schema,
    graphqlEndpoint: "/graphql",
    landingPage: false,
    graphiql: !production,
    // A JSON array of operations; each one passes every limit below on its own.
    batching: config.GRAPHQL_MAX_BATCH > 0 ? { limit: config.GRAPHQL_MAX_BATCH } : false,
    // useBodyLimits enforces the limits, with one for uploads and one for everything else.
    maxRequestBodySize: false,
    logging: {
      debug: (...args) => logger.debug({ args }, "yoga"),
      info: (...args) => logger.info({ args }, "yoga"),
      warn: (...args) => logger.warn({ args }, "yoga"),
      // Unexpected errors are logged once, with their stack, in maskError; what yoga reports here is client-caused.
      error: (...args) => logger.debug({ args }, "yoga"),
    },
    plugins: [
      useRequestIds(),
      useOperationMetrics(),
      useHttpErrors(config),
      useCsrfPrevention(),
      useBodyLimits(config),
      ...introspectionPlugins(config, async (request) => (await viewerOf(request)) !== null),
      ...documentLimitPlugins(config),
      useNestingLimit(config),
      useCostLimit(config),
      ...(rateLimits ? [useRateLimits(config, rateLimits)] : []),
      ...(responseCache ? responseCache.plugins({ schema, viewerOf, rateLimits }) : []),
      useCompiledBulkMutations(logger),
    ],
    context: async ({ request, req }) => {
      const requestId = currentRequestId() ?? requestIdFrom(request.headers.get("x-request-id"));
      if (!request.headers.has("authorization")) return createContext(db, config, null, requestId, live);
      const viewer = await viewerOf(request);
      if (!viewer) {
        // Guessing tokens spends the address's budget for requests without a valid token.
        await rateLimits?.consume(clientAddress(config, req), "anonymous");
        throw unauthenticated(
          tokenOf(request)
            ? "the API token is unknown, revoked or expired; ask an admin for a new one"
            : "the Authorization header must be 'Bearer <token>'",
        );
      }
      return createContext(db, config, viewer, requestId, live);
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
        // An outage, not a bug: say so, with a 503 the client can retry on.
        if (findCause(error, isDatabaseUnavailable)) return databaseUnavailable();
        // The same id in the answer and in the log line lets operators find what went wrong.
        const requestId = currentRequestId();
        // The root cause (a database error inside the query builder's, say) is what operators need.
        const root = findCause<{ message?: unknown; code?: unknown }>(error, (e) => !e.originalError && !e.cause);
        const cause = root && root !== error ? { message: String(root.message), code: root.code } : undefined;
        logger.error({ err: error, cause, requestId }, "unexpected error while answering a request");
        const located = error instanceof GraphQLError ? error : undefined;
        return new GraphQLError(
          requestId
            ? `${message.replace(/\.$/, "")} (request id ${requestId}); try again, and if it keeps failing, give the operators this request id`
            : message,
          {
            nodes: located?.nodes,
            source: located?.source,
            positions: located?.positions,
            path: located?.path,
            extensions: {
              code: "INTERNAL_SERVER_ERROR",
              ...(requestId ? { requestId } : {}),
              // Outside production the cause helps whoever is developing; in production it stays in the log.
              ...(config.NODE_ENV === "development" ? { cause: error instanceof Error ? error.message : String(error) } : {}),
            },
          },
        );
      },
    },
  });
}

/**
 * The HTTP server: GraphQL at /graphql, liveness at /healthz, readiness at /readyz, open data at
 * /open-data/shortages.csv and .json, the planner's page at /dashboard/. With `redisUrl`,
 * operations are rate limited per token, counted in that Redis across every API process; the
 * server's `close` event releases its connection.
 */
export function createHttpServer(deps: HttpDeps): Server {
  const rateLimits = deps.redisUrl ? createRateLimits({ config: deps.config, redisUrl: deps.redisUrl, logger: deps.logger }) : undefined;
  const ownCache =
    !deps.responseCache && deps.cacheResponses && deps.redisUrl
      ? createResponseCache({ config: deps.config, db: deps.db, logger: deps.logger, redisUrl: deps.redisUrl })
      : undefined;
  const responseCache = deps.responseCache ?? ownCache;
  const yoga = createGraphQLHandler({ ...deps, rateLimits, responseCache });
  const openData = openDataHandler(deps.db, deps.logger);
  const operations = createOperations(deps);
  const imports = importsHandler({ config: deps.config, db: deps.db, logger: deps.logger, rateLimits });
  const dashboard = dashboardHandler(deps.logger);
  const server = createServer((req, res) => {
    const header = req.headers["x-request-id"];
    const requestId = requestIdFrom(Array.isArray(header) ? header[0] : header);
    req.headers["x-request-id"] = requestId;
    // Every answer, including a streamed one (subscriptions), runs under the request's id, which
    // every log line written meanwhile carries.
    runWithRequestId(requestId, () => route(req, res));
  });
  const route = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const started = performance.now();
    res.once("finish", () => {
      const name = routeOf(path);
      const seconds = (performance.now() - started) / 1000;
      httpDuration.observe({ route: name, method: req.method ?? "", status: String(res.statusCode) }, seconds);
      // One access line per request, with its id (probes and scrapes only at debug level).
      const quiet = name === "/healthz" || name === "/readyz" || name === "/metrics";
      deps.logger[quiet ? "debug" : "info"](
        { requestId: req.headers["x-request-id"], method: req.method, route: name, status: res.statusCode, ms: Math.round(seconds * 1000) },
        "request",
      );
    });
    if (path === "/metrics") {
      operations.metrics(req, res);
      return;
    }
    if (path === ADMIN_QUEUES_PATH || path.startsWith(`${ADMIN_QUEUES_PATH}/`)) {
      operations.adminQueues(req, res);
      return;
    }
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ status: "ok" }));
      return;
    }
    if (path === "/open-data/shortages.csv" || path === "/open-data/shortages.json") {
      openData(req, res, path.endsWith(".csv") ? "csv" : "json");
      return;
    }
    // Report files over plain HTTP (curl -F file=@reports.csv), next to GraphQL's importReportsCsv.
    if (path !== undefined && (path === "/imports" || path.startsWith("/imports/"))) {
      imports(req, res, path);
      return;
    }
    if (path !== undefined && (path === "/dashboard" || path.startsWith("/dashboard/"))) {
      dashboard(req, res, path);
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
    if (responseCache && path === "/graphql" && responseCache.mayAnswerBeforeYoga(req)) {
      answerBeforeYoga(responseCache, req, res);
      return;
    }
    void yoga(req, res);
  };
  // The planners' dashboards ask the same few questions over and over: an answer the cache holds
  // is written without yoga's request and response objects, its plugins or its parse, which cost
  // several times more CPU than the answer itself. Anything else goes to yoga with the body read.
  const answerBeforeYoga = (cache: ResponseCache, req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      chunks.push(chunk);
    });
    req.once("error", () => res.destroy());
    req.once("end", () => {
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      cache.answerBeforeYoga(req, res, body, rateLimits).then(
        (answered) => {
          if (answered) return;
          // @whatwg-node/server takes a body already read from `req.body`.
          (req as IncomingMessage & { body?: Buffer }).body = body;
          void yoga(req, res);
        },
        (error: unknown) => {
          const requestId = String(req.headers["x-request-id"] ?? "");
          deps.logger.error({ err: error, requestId }, "answering from the response cache failed");
          if (!res.headersSent) res.writeHead(500, { "content-type": "application/json; charset=utf-8", "x-request-id": requestId });
          const message = `Unexpected error (request id ${requestId}); try again, and if it keeps failing, give the operators this request id`;
          res.end(JSON.stringify({ errors: [{ message, extensions: { code: "INTERNAL_SERVER_ERROR", requestId } }] }));
        },
      );
    });
  };
  if (rateLimits) server.once("close", () => void rateLimits.close());
  server.once("close", () => void operations.close());
  if (ownCache) server.once("close", () => void ownCache.close());
  return server;
}

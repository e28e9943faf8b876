// Limits against abuse of the GraphQL API: document size and shape, batches, request bodies,
// per-token rate limits shared through Redis, CSRF, introspection, and the request id that ties a
// masked error to its log line. Wired into yoga by src/http/server.ts; configured in src/config.ts.
import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { costLimitRule } from "@escape.tech/graphql-armor-cost-limit";
import { maxAliasesPlugin } from "@escape.tech/graphql-armor-max-aliases";
import { maxDepthPlugin } from "@escape.tech/graphql-armor-max-depth";
import { maxTokensPlugin } from "@escape.tech/graphql-armor-max-tokens";
import { useCSRFPrevention } from "@graphql-yoga/plugin-csrf-prevention";
import { useDisableIntrospection } from "@graphql-yoga/plugin-disable-introspection";
import {
  GraphQLError,
  Kind,
  TypeInfo,
  getNamedType,
  getNullableType,
  getOperationAST,
  isListType,
  validate,
  visit,
  visitWithTypeInfo,
  type ArgumentNode,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLSchema,
  type ValidationContext,
  type ValueNode,
} from "graphql";
import type { Plugin } from "graphql-yoga";
import { Redis } from "ioredis";
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import type { Config } from "../config.js";
import { currentRequestId, runWithRequestId, type Logger } from "../logger.js";

const MiB = 1024 * 1024;
const formatBytes = (n: number) => (n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : `${Math.ceil(n / 1024)} KiB`);
const formatCount = (n: number) => n.toLocaleString("en-US");

// ---------------------------------------------------------------------------------------------
// Request ids

/** A client's own `x-request-id` is kept when it is a plain token; anything else (log injection, huge values) is replaced. */
export function requestIdFrom(header: string | null | undefined): string {
  return header && /^[\w.:-]{1,128}$/.test(header) ? header : randomUUID();
}

// The request context lives with the logger, which stamps its id on every line written meanwhile.
export { currentRequestId, runWithRequestId };

/**
 * Gives every request one id: the HTTP server's (see createHttpServer) or, for requests handed to
 * yoga directly, a new one. It is answered in `x-request-id` and reachable through currentRequestId.
 */
export function useRequestIds(): Plugin {
  const ids = new WeakMap<Request, string>();
  const idOf = (request: Request) => {
    let id = ids.get(request);
    if (!id) ids.set(request, (id = requestIdFrom(request.headers.get("x-request-id"))));
    return id;
  };
  return {
    instrumentation: {
      request: ({ request }, wrapped) => {
        const id = idOf(request);
        return currentRequestId() === id ? wrapped() : runWithRequestId(id, wrapped);
      },
    },
    onResponse({ request, response }) {
      response.headers.set("x-request-id", idOf(request));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Document limits (graphql-armor)

/**
 * graphql-armor's rejections read "Syntax Error: Query depth limit of 12 exceeded, found 14.":
 * neither a syntax error nor a hint of what to do. Each is reported instead as a validation error
 * that names the limit, what was found, and how to stay under it.
 */
function reportAs(rewrite: (found: number | undefined) => string, code: string) {
  return (context: ValidationContext | null, error: GraphQLError) => {
    const found = /found (\d+)/.exec(error.message)?.[1];
    const replaced = new GraphQLError(rewrite(found === undefined ? undefined : Number(found)), { extensions: { code } });
    // max-tokens rejects while parsing, without a validation context: throwing ends the parse.
    if (!context) throw replaced;
    context.reportError(replaced);
  };
}

export function documentLimitPlugins(config: Config): Plugin[] {
  return [
    maxTokensPlugin({
      n: config.GRAPHQL_MAX_TOKENS,
      propagateOnRejection: false,
      onReject: [
        reportAs(
          () =>
            `the query document has more than ${formatCount(config.GRAPHQL_MAX_TOKENS)} tokens (GRAPHQL_MAX_TOKENS); ` +
            "pass large inputs as variables (they are not counted) or split the query",
          "QUERY_TOO_LARGE",
        ),
      ],
    }) as Plugin,
    maxDepthPlugin({
      n: config.GRAPHQL_MAX_DEPTH,
      propagateOnRejection: false,
      onReject: [
        reportAs(
          (found) => `query depth ${found ?? "?"} exceeds the limit of ${config.GRAPHQL_MAX_DEPTH}; ask for fewer nested levels or split the query`,
          "QUERY_TOO_DEEP",
        ),
      ],
    }) as Plugin,
    maxAliasesPlugin({
      n: config.GRAPHQL_MAX_ALIASES,
      propagateOnRejection: false,
      onReject: [
        reportAs(
          (found) => `the query uses ${found ?? "too many"} aliases, more than the limit of ${config.GRAPHQL_MAX_ALIASES}; use fewer aliases or split the query`,
          "TOO_MANY_ALIASES",
        ),
      ],
    }) as Plugin,
  ];
}

/** Largest page of a connection (the drizzle plugin's maxConnectionSize) and the size of a page without `first`. */
const MAX_PAGE = 100;
const DEFAULT_PAGE = 20;
/**
 * What a plain list of objects (`regions`, `children`, `sites`, `revisions`) is assumed to hold. Most
 * hold a few entries; what matters is that lists nested in lists (`regions { children { children
 * ... } }`, `parent { children }` round trips) cost each level's size times the next.
 */
const LIST_ESTIMATE = 10;

/**
 * The operation as the cost limit should see it. graphql-armor's cost multiplies a field by its
 * literal `first:` (or `last:`), and by 1 when the size comes in a variable, is left out, or the
 * field is a list without paging, so `first: $n` would escape the limit and `first: 500` would be
 * charged for rows it never gets. Here every `first`/`last` becomes the page the server will answer:
 * the literal or the variable's value, at most MAX_PAGE, and DEFAULT_PAGE for a connection that
 * names no size; a list of objects without paging counts as LIST_ESTIMATE entries (a connection's
 * `edges` are its page, already counted).
 */
function withPageSizes(schema: GraphQLSchema, document: DocumentNode, variables: Record<string, unknown>): DocumentNode {
  const typeInfo = new TypeInfo(schema);
  const sizeOf = (value: ValueNode | undefined): number | undefined => {
    if (value?.kind === Kind.INT) return Number(value.value);
    if (value?.kind === Kind.VARIABLE) {
      const v = variables[value.name.value];
      return typeof v === "number" ? v : undefined;
    }
    return undefined;
  };
  return visit(
    document,
    visitWithTypeInfo(typeInfo, {
      Field(node) {
        const field = typeInfo.getFieldDef();
        const parent = typeInfo.getParentType();
        if (!field || !node.selectionSet) return undefined;
        const paged = field.args.some((a) => a.name === "first" || a.name === "last");
        const isList = isListType(getNullableType(field.type));
        if (!paged && !(isList && !parent?.name.endsWith("Connection"))) return undefined;
        const [sized, others] = [
          node.arguments?.filter((a) => a.name.value === "first" || a.name.value === "last") ?? [],
          node.arguments?.filter((a) => a.name.value !== "first" && a.name.value !== "last") ?? [],
        ];
        const asked = Math.max(0, ...sized.map((a) => sizeOf(a.value) ?? 0));
        const isConnection = getNamedType(field.type).name.endsWith("Connection");
        const size = paged ? Math.min(asked || (isConnection ? DEFAULT_PAGE : LIST_ESTIMATE), MAX_PAGE) : LIST_ESTIMATE;
        const first: ArgumentNode = { kind: Kind.ARGUMENT, name: { kind: Kind.NAME, value: "first" }, value: { kind: Kind.INT, value: String(size) } };
        return { ...node, arguments: [first, ...others] };
      },
    }),
  );
}

/**
 * The cost limit (graphql-armor cost-limit) on each operation as it runs, with its page sizes
 * known (withPageSizes). It runs at execution because the sizes may be variables; an operation over
 * the limit is answered with the error and nothing runs.
 */
export function useCostLimit(config: Config): Plugin {
  const rule = costLimitRule({
    maxCost: config.GRAPHQL_MAX_COST,
    propagateOnRejection: false,
    onReject: [
      reportAs(
        (found) =>
          `query cost ${found === undefined ? "" : formatCount(found) + " "}exceeds the limit of ${formatCount(config.GRAPHQL_MAX_COST)}; ` +
          "ask for fewer fields, smaller pages (first:) or fewer nested lists, or split the query",
        "QUERY_TOO_COMPLEX",
      ),
    ],
  });
  const check = ({ args, setResultAndStopExecution }: { args: ExecutionArgs; setResultAndStopExecution: (result: ExecutionResult) => void }) => {
    const operation = getOperationAST(args.document, args.operationName);
    if (!operation) return;
    // Only the operation that runs counts, with the fragments it uses.
    const document: DocumentNode = {
      kind: Kind.DOCUMENT,
      definitions: args.document.definitions.filter((d) => d === operation || d.kind === Kind.FRAGMENT_DEFINITION),
    };
    const errors = validate(args.schema, withPageSizes(args.schema, document, args.variableValues ?? {}), [rule]);
    if (errors.length) setResultAndStopExecution({ errors });
  };
  return { onExecute: check, onSubscribe: check };
}

/** Brackets of any kind a document may nest: far beyond any real query, far below what would overflow the parser's stack. */
const MAX_NESTING = 100;

/** How deeply `source` nests (), [] and {}, outside strings and comments. */
function nestingOf(source: string): number {
  let depth = 0;
  let deepest = 0;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === "#") {
      while (i < source.length && source[i] !== "\n" && source[i] !== "\r") i++;
    } else if (c === '"') {
      if (source.startsWith('"""', i)) {
        const end = source.indexOf('"""', i + 3);
        i = end < 0 ? source.length : end + 2;
      } else {
        for (i++; i < source.length && source[i] !== '"' && source[i] !== "\n"; i++) if (source[i] === "\\") i++;
      }
    } else if (c === "{" || c === "[" || c === "(") {
      deepest = Math.max(deepest, ++depth);
    } else if (c === "}" || c === "]" || c === ")") {
      depth--;
    }
  }
  return deepest;
}

/**
 * graphql-js parses recursively: a few thousand nested selections or list literals overflow the
 * stack before the token limit or the depth limit could see them. A document nested deeper than
 * MAX_NESTING is refused before it is parsed.
 */
export function useNestingLimit(config: Config): Plugin {
  return {
    onParse({ parseFn, setParseFn }) {
      setParseFn((source, options) => {
        const depth = nestingOf(typeof source === "string" ? source : source.body);
        if (depth > MAX_NESTING) {
          throw new GraphQLError(
            `the query nests braces, brackets or parentheses ${depth} levels deep, more than ${MAX_NESTING}; ` +
              `ask for fewer nested levels (at most ${config.GRAPHQL_MAX_DEPTH} fields deep) and nest input values less, or pass them as variables`,
            { extensions: { code: "QUERY_TOO_DEEP" } },
          );
        }
        return parseFn(source, options);
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Requests yoga would answer without saying why

const ANSWER_TYPES = ["application/graphql-response+json", "application/json", "multipart/mixed", "text/event-stream"];

/** Whether an Accept header admits one of the media types the endpoint answers with. */
function acceptsAnswer(accept: string | null): boolean {
  if (accept === null || !accept.trim()) return true;
  return accept.split(",").some((part) => {
    const [type, subtype] = (part.split(";")[0] ?? "").trim().toLowerCase().split("/");
    if (type === "*" && subtype === "*") return true;
    return ANSWER_TYPES.some((t) => {
      const [tt, ts] = t.split("/");
      return type === tt && (subtype === "*" || subtype === ts);
    });
  });
}

const httpError = (message: string, status: number, code: string) => new GraphQLError(message, { extensions: { code, http: { status } } });

const notAcceptable = (accept: string | null) =>
  `none of the media types in the Accept header (${accept ?? ""}) is one this endpoint answers with; accept ${ANSWER_TYPES.join(", ")} (or */*)`;

/**
 * Answers, with a JSON error that says what to send instead: an Accept header that admits none of
 * the endpoint's media types (406, before anything runs: yoga finds this out only after executing,
 * a mutation included), a content type no parser reads (415), batches over the limit, and
 * variables or extensions in a query string that are not JSON (400; yoga's JSON.parse error would
 * pass for an internal one). Yoga answers 406 and 415 with an empty body; onResponse fills it in
 * where that still happens.
 */
export function useHttpErrors(config: Config): Plugin {
  const jsonError = (fetchAPI: { Response: typeof Response }, status: number, message: string, code: string, headers?: Headers) => {
    const init = new Headers(headers);
    init.set("content-type", "application/json; charset=utf-8");
    return new fetchAPI.Response(JSON.stringify({ errors: [{ message, extensions: { code } }] }), { status, headers: init });
  };
  return {
    onRequestParse({ request, requestParser, setRequestParser, endResponse, fetchAPI }) {
      if (!acceptsAnswer(request.headers.get("accept"))) {
        // A thrown error would be answered in a media type the client accepts: there is none.
        endResponse(jsonError(fetchAPI, 406, notAcceptable(request.headers.get("accept")), "NOT_ACCEPTABLE"));
        return undefined;
      }
      if (request.method !== "GET" && request.method !== "POST") return undefined;
      if (!requestParser) {
        const type = request.headers.get("content-type");
        throw httpError(
          `${type ? `the content type ${type} is` : "a POST without a content type is"} not one this endpoint reads; ` +
            "POST with content-type application/json (or multipart/form-data for an upload)",
          415,
          "UNSUPPORTED_MEDIA_TYPE",
        );
      }
      const parse = requestParser;
      setRequestParser(async (req) => {
        try {
          return await parse(req);
        } catch (error) {
          if (!(error instanceof SyntaxError)) throw error;
          throw httpError(
            `a parameter of the request is not valid JSON (${error.message}); send variables and extensions as JSON objects, URL-encoded in a GET`,
            400,
            "BAD_REQUEST",
          );
        }
      });
      return {
        onRequestParseDone({ requestParserResult }) {
          if (!Array.isArray(requestParserResult)) return;
          if (config.GRAPHQL_MAX_BATCH === 0) {
            throw httpError("this server takes one operation per request, not a batch (a JSON array); send them one by one", 400, "BATCHING_DISABLED");
          }
          if (requestParserResult.length > config.GRAPHQL_MAX_BATCH) {
            throw httpError(
              `a batch holds at most ${config.GRAPHQL_MAX_BATCH} operations (GRAPHQL_MAX_BATCH), got ${requestParserResult.length}; send the rest in another request`,
              413,
              "BATCH_TOO_LARGE",
            );
          }
          if (requestParserResult.length === 0) throw httpError("the batch (a JSON array) holds no operation; send at least one", 400, "BAD_REQUEST");
        },
      };
    },
    onResponse({ request, response, setResponse, fetchAPI }) {
      if ((response.status !== 406 && response.status !== 415) || response.body) return;
      setResponse(
        response.status === 406
          ? jsonError(fetchAPI, 406, notAcceptable(request.headers.get("accept")), "NOT_ACCEPTABLE", response.headers)
          : jsonError(fetchAPI, 415, "the content type is not one this endpoint reads; POST with content-type application/json", "UNSUPPORTED_MEDIA_TYPE", response.headers),
      );
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Request bodies

const isMultipart = (contentType: string | null) => contentType?.toLowerCase().startsWith("multipart/form-data") ?? false;

function bodyTooLarge(config: Config, multipart: boolean, size?: number): GraphQLError {
  const limit = multipart ? config.UPLOAD_LIMIT_BYTES : config.BODY_LIMIT_BYTES;
  const what = size === undefined ? `is larger than` : `is ${formatBytes(size)}, more than`;
  const hint = multipart
    ? `the limit for uploads of ${formatBytes(limit)} (UPLOAD_LIMIT_BYTES); split the file`
    : `the limit of ${formatBytes(limit)} (BODY_LIMIT_BYTES); send fewer rows per request (submitReports takes at most 5,000) or upload large data as a file`;
  return new GraphQLError(`the request body ${what} ${hint}`, {
    extensions: { code: "PAYLOAD_TOO_LARGE", http: { status: 413, headers: { connection: "close" } } },
  });
}

/**
 * Refuses a body above the limit before anything parses it: at once from its Content-Length (the
 * HTTP parser never delivers more than that), or, for a chunked body, as soon as the bytes read pass
 * it. Uploads (multipart) have their own, larger limit. Replaces yoga's own `maxRequestBodySize`,
 * which has one limit for every kind of body and does not say what to do.
 */
export function useBodyLimits(config: Config): Plugin {
  return {
    onRequestParse({ request, requestParser, setRequestParser, fetchAPI }) {
      const multipart = isMultipart(request.headers.get("content-type"));
      const limit = multipart ? config.UPLOAD_LIMIT_BYTES : config.BODY_LIMIT_BYTES;
      const length = request.headers.get("content-length");
      if (length !== null) {
        if (!/^\d+$/.test(length)) {
          throw new GraphQLError("the Content-Length header is not a number of bytes; send one valid Content-Length or none", {
            extensions: { code: "BAD_REQUEST", http: { status: 400 } },
          });
        }
        if (Number(length) > limit) throw bodyTooLarge(config, multipart, Number(length));
        return;
      }
      if (!requestParser || !request.body) return;
      const parse = requestParser;
      setRequestParser((req) => {
        const body = req.body!;
        // A native stream needs the native TransformStream (graphql-yoga#4583).
        const Transform = body instanceof ReadableStream ? globalThis.TransformStream : fetchAPI.TransformStream;
        let read = 0;
        const limited = body.pipeThrough(
          new Transform({
            transform(chunk: Uint8Array, controller: TransformStreamDefaultController<Uint8Array>) {
              read += chunk.byteLength;
              if (read > limit) controller.error(bodyTooLarge(config, multipart));
              else controller.enqueue(chunk);
            },
          }),
        );
        return parse(
          new fetchAPI.Request(req.url, { method: req.method, headers: req.headers, signal: req.signal, body: limited, duplex: "half" } as RequestInit),
        );
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// CSRF and introspection

/**
 * A browser sends a cross-site GET or form POST ("simple" requests) without asking first, so such a
 * request must carry a header that a page cannot add without a CORS preflight. `Authorization` is
 * one: our credentials are bearer tokens, never cookies, so a request without it carries none anyway.
 */
export function useCsrfPrevention(): Plugin {
  const csrf = useCSRFPrevention({ requestHeaders: ["authorization", "x-graphql-yoga-csrf"] }) as Plugin;
  return {
    onRequestParse(payload) {
      try {
        return csrf.onRequestParse!(payload);
      } catch {
        throw new GraphQLError(
          "a GET request, or a POST that is not JSON (form or text), must carry an 'Authorization: Bearer <token>' " +
            "or an 'x-graphql-yoga-csrf' header (CSRF prevention); add one, or POST with content-type application/json",
          { extensions: { code: "CSRF_HEADER_MISSING", http: { status: 403 } } },
        );
      }
    },
  };
}

/**
 * In production, introspection answers only requests with a valid token: a scanner without one
 * learns nothing, while clients' tooling (code generators, GraphQL over HTTP conformance checks)
 * keeps working; the schema is no secret from them (schema.graphql is published with the code).
 */
export const introspectionPlugins = (config: Config, hasValidToken: (request: Request) => Promise<boolean>): Plugin[] =>
  config.NODE_ENV === "production" ? [useDisableIntrospection({ isDisabled: async (request) => !(await hasValidToken(request)) }) as Plugin] : [];

// ---------------------------------------------------------------------------------------------
// Rate limits

export type RateKind = "read" | "write" | "anonymous";

export interface RateLimits {
  /** Counts one operation against `key`'s budget of `kind`; throws a 429 error when it is spent. */
  consume(key: string, kind: RateKind): Promise<void>;
  close(): Promise<void>;
}

/** The most points one process takes from Redis at a time for one key (see createRateLimits). */
export const RATE_LEASE_MAX = 16;

const RATE_WORDS: Record<RateKind, { what: string; variable: string }> = {
  read: { what: "queries and subscriptions with this token", variable: "RATE_LIMIT_READS_PER_MINUTE" },
  write: { what: "mutations with this token", variable: "RATE_LIMIT_WRITES_PER_MINUTE" },
  anonymous: { what: "requests without a valid token from this address", variable: "RATE_LIMIT_ANONYMOUS_PER_MINUTE" },
};

/**
 * Per-token budgets per minute (fixed windows), counted in Redis so every API process spends the
 * same budget: an `rlflx` counter under `<QUEUE_PREFIX>:ratelimit:<kind>:<key>`.
 *
 * When Redis does not answer, each process counts in its own memory instead and logs a warning (at
 * most once a minute): limits then hold per process, so a client can get at most one budget per
 * process. Refusing every request instead would turn a Redis outage into an API outage, while
 * reports are still stored in Postgres and their jobs wait in the outbox without Redis.
 *
 * A token sending many requests (a dashboard's polling, a script) is not counted in Redis one
 * request at a time: a process takes points from Redis in leases of up to RATE_LEASE_MAX (and at
 * most a fiftieth of the budget) and spends them locally, the first request of a window taking a
 * single point and each lease no more than Redis said was left. Points leased but not spent when
 * the window ends are lost, so with several processes the limit can only be stricter, by less than
 * one lease per process and window, never looser.
 */
export function createRateLimits({ config, redisUrl, logger }: { config: Config; redisUrl: string; logger: Logger }): RateLimits {
  // While the first connection is being made, commands wait for it (the offline queue); once the
  // connection has failed, requests count locally at once instead of waiting for reconnection
  // attempts, until Redis is ready again. A Redis that hangs fails a command after a second.
  // Auto-pipelining sends the counts of requests answered in the same tick in one write.
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, commandTimeout: 1_000, connectionName: "rate-limits", enableAutoPipelining: true });
  let failed = false;
  let lastWarning = 0;
  const warn = (error: unknown) => {
    failed = true;
    if (Date.now() - lastWarning < 60_000) return;
    lastWarning = Date.now();
    logger.warn({ err: error }, "rate limits: Redis is unavailable; counting in this process only until it is back");
  };
  redis.on("error", warn);
  redis.on("ready", () => {
    if (failed) logger.info("rate limits: Redis is back; counting there again");
    failed = false;
  });
  const points: Record<RateKind, number> = {
    read: config.RATE_LIMIT_READS_PER_MINUTE,
    write: config.RATE_LIMIT_WRITES_PER_MINUTE,
    anonymous: config.RATE_LIMIT_ANONYMOUS_PER_MINUTE,
  };
  const limiters = Object.fromEntries(
    (Object.keys(points) as RateKind[]).map((kind) => [
      kind,
      {
        shared: new RateLimiterRedis({
          storeClient: redis,
          keyPrefix: `${config.QUEUE_PREFIX}:ratelimit:${kind}`,
          points: points[kind],
          duration: 60,
          // Once a key is spent, this process refuses it without asking Redis until the window ends.
          inMemoryBlockOnConsumed: points[kind],
        }),
        local: new RateLimiterMemory({ points: points[kind], duration: 60 }),
      },
    ]),
  ) as Record<RateKind, { shared: RateLimiterRedis; local: RateLimiterMemory }>;

  const leaseMax = Object.fromEntries(
    (Object.keys(points) as RateKind[]).map((kind) => [kind, Math.max(1, Math.min(RATE_LEASE_MAX, Math.floor(points[kind] / 50)))]),
  ) as Record<RateKind, number>;
  // Per kind and key: points leased and not yet spent, until the window ends; what Redis said was
  // left after the lease; the lease being taken, which concurrent requests wait for.
  const leases = new Map<string, { spare: number; until: number; left: number; taking?: Promise<void> | undefined }>();
  /** Takes the next lease for `id` from Redis; the lease is in the map, marked as being taken, at once. */
  const takeLease = (id: string, kind: RateKind, key: string): Promise<void> => {
    const now = Date.now();
    const previous = leases.get(id);
    const size = previous && previous.until > now ? Math.max(1, Math.min(leaseMax[kind], previous.left)) : 1;
    const lease: { spare: number; until: number; left: number; taking?: Promise<void> | undefined } = { spare: 0, until: now, left: 0 };
    leases.set(id, lease);
    if (leases.size > 100_000) leases.delete(leases.keys().next().value!);
    lease.taking = limiters[kind].shared
      .consume(key, size)
      .then(
        (res) => {
          lease.spare = size - 1;
          lease.until = now + res.msBeforeNext;
          lease.left = res.remainingPoints;
        },
        (error: unknown) => {
          if (error instanceof RateLimiterRes) lease.until = now + error.msBeforeNext;
          throw error;
        },
      )
      .finally(() => (lease.taking = undefined));
    return lease.taking;
  };
  const leased = async (kind: RateKind, key: string) => {
    const id = `${kind}\u0000${key}`;
    for (;;) {
      const lease = leases.get(id);
      if (lease?.taking) {
        // Another request is taking a lease for this key: share it rather than ask Redis again.
        await lease.taking.catch(() => {});
        continue;
      }
      if (lease && lease.spare > 0 && lease.until > Date.now()) {
        lease.spare--;
        return;
      }
      return takeLease(id, kind, key);
    }
  };

  const refuse = (kind: RateKind, res: RateLimiterRes) => {
    const seconds = Math.max(1, Math.ceil(res.msBeforeNext / 1000));
    return new GraphQLError(
      `rate limit reached: ${points[kind]} ${RATE_WORDS[kind].what} per minute (${RATE_WORDS[kind].variable}); retry after ${seconds} s`,
      { extensions: { code: "RATE_LIMITED", retryAfterSeconds: seconds, http: { status: 429, headers: { "retry-after": String(seconds) } } } },
    );
  };

  return {
    async consume(key, kind) {
      const { local } = limiters[kind];
      try {
        if (failed && redis.status !== "ready") throw new Error(`Redis connection is ${redis.status}`);
        await leased(kind, key);
      } catch (error) {
        if (error instanceof RateLimiterRes) throw refuse(kind, error);
        warn(error);
        try {
          await local.consume(key);
        } catch (spent) {
          if (spent instanceof RateLimiterRes) throw refuse(kind, spent);
          throw spent;
        }
      }
    },
    async close() {
      redis.disconnect();
    },
  };
}

/** The client's address: the socket's, or with TRUST_PROXY_HOPS proxies in front, the one the outermost of them saw. */
export function clientAddress(config: Config, req: IncomingMessage | undefined): string {
  const socket = req?.socket?.remoteAddress ?? "unknown";
  if (!config.TRUST_PROXY_HOPS || !req) return socket;
  const header = req.headers["x-forwarded-for"];
  const hops = (Array.isArray(header) ? header.join(",") : (header ?? "")).split(",").map((s) => s.trim()).filter(Boolean);
  return hops[Math.max(0, hops.length - config.TRUST_PROXY_HOPS)] ?? socket;
}

interface RateContext {
  viewer: { tokenId: string } | null;
  req?: IncomingMessage;
}

/**
 * Counts every operation (each one of a batch, each subscription) against its token's budget of
 * reads or writes, or, without a token, its address's anonymous budget. It runs once the operation
 * is parsed and valid, so a refused document costs nothing but is not counted either.
 */
export function useRateLimits(config: Config, limits: RateLimits): Plugin {
  const consume = async (args: { document: Parameters<typeof getOperationAST>[0]; operationName?: string | null | undefined; contextValue: unknown }) => {
    const context = args.contextValue as RateContext;
    const operation = getOperationAST(args.document, args.operationName)?.operation;
    if (context.viewer) await limits.consume(context.viewer.tokenId, operation === "mutation" ? "write" : "read");
    else await limits.consume(clientAddress(config, context.req), "anonymous");
  };
  return {
    onExecute: ({ args }) => consume(args),
    onSubscribe: ({ args }) => consume(args),
  };
}

// The planner dashboard's heaviest reads answered from memory: `shortages` and `forecast` results
// are kept per API process, per viewer scope, until new forecasts are written.
//
// What is cached: query operations whose root fields are all `shortages` or `forecast` and whose
// selection reaches only forecast, region and catalog types (SHARED_TYPES): nothing personal,
// nothing per user. `reportingCompleteness` is not: its figures move with every report, while
// this cache is invalidated by forecasts.
//
// Key: a SHA-256 of the invalidation generation, the viewer's scope, the document, the operation
// name and the variables. The scope is what access to these types depends on (src/graphql/access.ts):
// ADMIN, or PLANNER plus the root of their jurisdiction. Two planners of one province share
// entries; a planner of another province, an admin or a national planner never meets them.
// Other roles are not cached at all (these fields refuse them).
//
// Invalidation: the forecast jobs run in worker processes; after a run that wrote forecasts (its
// transactions committed), the worker publishes on a Redis channel, and every API process bumps
// its generation and drops its entries when the message arrives. A result computed before that
// but stored after it went under the old generation's key and is never read: the generation is
// taken before the query runs. While the subscription is not confirmed (start-up, Redis away), the
// process neither serves nor stores cached answers, and it drops everything when it is back, since
// messages published meanwhile are lost. The TTL (RESPONSE_CACHE_TTL_SECONDS) bounds whatever else
// changes what a cached answer shows: region or product renames from another process, say.
// Everything is dropped, not one product's entries: a forecast run does not report which products
// it wrote, and an answer without a productCode holds them all anyway.
//
// After an invalidation every open dashboard misses at once; the first request for a key computes
// the answer and the others wait for it (coalescing). Answers from the cache count against the
// token's rate limit like any other read, and are serialized once, not per hit.
//
// The same channel tells API processes to forget cached bearer tokens after a revocation (see
// createViewerCache): with the response cache, authentication is what is left on the hot path.
import { createHash } from "node:crypto";
import { createInMemoryCache, useResponseCache, type Cache } from "@graphql-yoga/plugin-response-cache";
import {
  getNamedType,
  getOperationAST,
  GraphQLError,
  isCompositeType,
  isObjectType,
  Kind,
  parse,
  type DocumentNode,
  type ExecutionResult,
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  type GraphQLSchema,
  type SelectionSetNode,
} from "graphql";
import type { Plugin } from "graphql-yoga";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Redis, type RedisOptions } from "ioredis";
import { sql } from "drizzle-orm";
import type { Config } from "../config.js";
import type { Database } from "../db/index.js";
import { authenticate, bearerToken, hashToken } from "../domain/tokens.js";
import type { Viewer } from "../domain/viewer.js";
import type { Logger } from "../logger.js";
import type { RateLimits } from "./limits.js";
import { responseCacheRequests } from "../metrics.js";

const hitsBeforeYogaCounter = responseCacheRequests.labels("hit_before_yoga");
const hitsCounter = responseCacheRequests.labels("hit");
const missesCounter = responseCacheRequests.labels("miss");

/** Root fields whose answers are cached; every root field of the operation must be one of them. */
export const CACHED_ROOT_FIELDS: ReadonlySet<string> = new Set(["shortages", "forecast"]);

/**
 * Object types a cached answer may contain: forecast figures, the region tree and the catalog.
 * Access to each depends on the role and the planner's jurisdiction only, never on who asks within
 * them. A selection that reaches any other type (a site, an organization, a user) is not cached.
 */
export const SHARED_TYPES: ReadonlySet<string> = new Set([
  "Query",
  "ShortageConnection",
  "ShortageEdge",
  "PageInfo",
  "Shortage",
  "Forecast",
  "ForecastPoint",
  "ForecastParameter",
  "ForecastAccuracy",
  "Region",
  "Product",
  "RiskThresholds",
]);

/** Successful mutations after which cached answers may show something else: they drop them everywhere. */
const MUTATIONS_CHANGING_ANSWERS: ReadonlySet<string> = new Set(["createRegions", "upsertProduct"]);
/** Successful mutations after which a cached token may no longer be valid. */
const MUTATIONS_CHANGING_VIEWERS: ReadonlySet<string> = new Set(["revokeApiToken"]);

export const responseCacheChannel = (prefix: string) => `${prefix}:responseCache:invalidate`;

/** What crosses Redis: which cache to drop and why (for the log). */
export interface CacheInvalidation {
  drop: "responses" | "viewers";
  reason: string;
}

/** Publishes an invalidation to every API process; never rejects (a failure is logged; the TTL bounds it). */
export type InvalidateResponses = (reason: string) => Promise<void>;

const redisOptions = (name: string, forSubscriber: boolean): RedisOptions => ({
  lazyConnect: true,
  // A publisher fails fast while Redis is away; the subscriber waits for it and re-subscribes.
  maxRetriesPerRequest: forSubscriber ? null : 1,
  connectionName: name,
});

function createPublisher(url: string, prefix: string, logger: Logger) {
  const channel = responseCacheChannel(prefix);
  const client = new Redis(url, redisOptions("response-cache-publish", false));
  client.on("error", (error: Error) => logger.debug({ err: error.message }, "response cache: Redis publish connection failed"));
  return {
    async publish(message: CacheInvalidation): Promise<void> {
      try {
        await client.publish(channel, JSON.stringify(message));
      } catch (error) {
        logger.warn(
          { err: (error as Error).message, ...message },
          "response cache: could not publish an invalidation; API processes may answer from their cache until its TTL runs out",
        );
      }
    },
    close: () => (client.status === "ready" ? client.quit().then(() => {}, () => client.disconnect()) : Promise.resolve(client.disconnect())),
  };
}

/** The worker's side: tells every API process that forecasts (or what else) changed. */
export function createResponseInvalidator(options: { url: string; prefix: string; logger: Logger }) {
  const publisher = createPublisher(options.url, options.prefix, options.logger.child({ component: "response-cache" }));
  return {
    invalidate: ((reason) => publisher.publish({ drop: "responses", reason })) satisfies InvalidateResponses,
    close: publisher.close,
  };
}

/**
 * Runs a job step that writes forecasts and then invalidates the API processes' cached answers:
 * after `wrote(result)`, or after a failure (some products' transactions may have committed).
 */
export async function invalidatingAfter<T>(
  invalidate: InvalidateResponses | undefined,
  reason: string,
  step: () => Promise<T>,
  wrote: (result: T) => boolean,
): Promise<T> {
  let result: T;
  try {
    result = await step();
  } catch (error) {
    await invalidate?.(reason);
    throw error;
  }
  if (wrote(result)) await invalidate?.(reason);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Which operations may be cached

/**
 * True when the operation is a query whose root fields are all in CACHED_ROOT_FIELDS and whose
 * selection reaches only SHARED_TYPES. A document that does not parse or names no operation is
 * not cached (validation will say what is wrong with it).
 */
export function isCacheableOperation(schema: GraphQLSchema, document: DocumentNode, operationName: string | null | undefined): boolean {
  const operation = getOperationAST(document, operationName);
  const query = schema.getQueryType();
  if (!operation || operation.operation !== "query" || !query) return false;
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  const seen = new Set<string>();
  const reachesShared = (type: GraphQLCompositeType, selectionSet: SelectionSetNode, root: boolean): boolean => {
    if (!SHARED_TYPES.has(type.name) || !isObjectType(type)) return false;
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) {
        const name = selection.name.value;
        if (name === "__typename") continue;
        if (name.startsWith("__") || (root && !CACHED_ROOT_FIELDS.has(name))) return false;
        const field = type.getFields()[name];
        if (!field) return false;
        const named = getNamedType(field.type);
        if (isCompositeType(named) && (!selection.selectionSet || !reachesShared(named, selection.selectionSet, false))) return false;
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        if (selection.typeCondition && selection.typeCondition.name.value !== type.name) return false;
        if (!reachesShared(type, selection.selectionSet, root)) return false;
      } else {
        const fragment = fragments.get(selection.name.value);
        if (!fragment || fragment.typeCondition.name.value !== type.name) return false;
        // A fragment spread again in the same place adds nothing; a cycle is invalid anyway.
        const key = `${type.name}/${fragment.name.value}/${root}`;
        if (seen.has(key)) continue;
        seen.add(key);
        if (!reachesShared(type, fragment.selectionSet, root)) return false;
      }
    }
    return true;
  };
  return reachesShared(query, operation.selectionSet, true);
}

/** A Map that forgets its oldest entries past `max`: enough for documents and tokens, which repeat. */
function boundedMap<K, V>(max: number) {
  const map = new Map<K, V>();
  return {
    get: (key: K) => map.get(key),
    set(key: K, value: V) {
      if (map.size >= max) map.delete(map.keys().next().value as K);
      map.set(key, value);
    },
    delete: (key: K) => map.delete(key),
    clear: () => map.clear(),
  };
}

/** JSON with object keys sorted, so that `{a, b}` and `{b, a}` variables share an entry. */
function stableJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  const record = value as Record<string, unknown>;
  return `{${Object.keys(record)
    .sort()
    .filter((k) => record[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${stableJson(record[k])}`)
    .join(",")}}`;
}

/** The key of an answer: what yoga's plugin and the answer before yoga both compute. */
const answerKey = (generation: number, scope: string, operationName: string | null | undefined, variables: unknown, documentString: string) =>
  createHash("sha256")
    .update(`${generation}\u0000${scope}\u0000${operationName ?? ""}\u0000${stableJson(variables ?? {})}\u0000${documentString}`)
    .digest("base64url");

/** The scope answers are shared within, or null for viewers whose answers are not cached. */
export function viewerScope(viewer: Viewer | null): string | null {
  if (viewer?.role === "ADMIN") return "ADMIN";
  if (viewer?.role === "PLANNER") return `PLANNER:${viewer.jurisdiction?.id ?? "none"}`;
  return null;
}

// ---------------------------------------------------------------------------------------------
// Cached bearer tokens

/**
 * Bearer tokens resolved to viewers, kept for AUTH_CACHE_SECONDS (never past the token's expiry),
 * by the token's hash. Unknown tokens are not kept: a token just created works at once, and
 * guesses fill nothing. A revocation through the API drops every entry in every API process (the
 * invalidation channel); one made behind the API's back (SQL, a disabled user) takes effect within
 * AUTH_CACHE_SECONDS.
 */
export function createViewerCache(db: Database, ttlMs: number, isLive: () => boolean) {
  const entries = boundedMap<string, { viewer: Promise<Viewer | null>; until: number }>(10_000);
  const lookUp = async (token: string, hash: string): Promise<Viewer | null> => {
    const viewer = await authenticate(db, token);
    if (!viewer) {
      entries.delete(hash);
      return null;
    }
    const [row] = await db.execute<{ expires_at: string | null }>(sql`select expires_at::text from api_token where id = ${viewer.tokenId}::uuid`, "objects");
    const expires = row?.expires_at ? Date.parse(row.expires_at) : Infinity;
    const entry = entries.get(hash);
    if (entry) entry.until = Math.min(entry.until, expires);
    return viewer;
  };
  return {
    authenticate(token: string): Promise<Viewer | null> {
      if (ttlMs <= 0 || !isLive()) return authenticate(db, token);
      const hash = hashToken(token);
      const now = Date.now();
      const cached = entries.get(hash);
      if (cached && cached.until > now) return cached.viewer;
      const viewer = lookUp(token, hash);
      entries.set(hash, { viewer, until: now + ttlMs });
      viewer.catch(() => entries.delete(hash));
      return viewer;
    },
    clear: () => entries.clear(),
  };
}

// ---------------------------------------------------------------------------------------------
// The API's side

export interface ResponseCacheStats {
  hits: number;
  /** Of the hits, those answered before yoga (answerBeforeYoga). */
  hitsBeforeYoga: number;
  misses: number;
  stored: number;
  invalidations: number;
  /** Whether the invalidation channel is subscribed (without it nothing is served from the cache). */
  live: boolean;
}

export interface ResponseCache {
  /** The yoga plugins: the response cache, rate limiting of cached answers, invalidation after mutations. */
  plugins(deps: { schema: GraphQLSchema; viewerOf: (request: Request) => Promise<Viewer | null>; rateLimits?: RateLimits | undefined }): Plugin[];
  /** Resolves a bearer token, from this process's short-lived cache when it can. */
  authenticate(token: string): Promise<Viewer | null>;
  /**
   * Whether a request may be answered before yoga: a POST of a small JSON body with a bearer token
   * and an Accept header this path answers as yoga would. Decided on the headers alone, before the
   * body is read.
   */
  mayAnswerBeforeYoga(req: IncomingMessage): boolean;
  /**
   * Answers a request from the cache without yoga when the body is one operation whose answer is
   * cached for the viewer's scope, counting it against the token's read limit as yoga's path does.
   * Resolves false, having written nothing, when it did not answer: the caller hands the request
   * (and the body it read) to yoga, which answers it, from the cache or not, with every check.
   */
  answerBeforeYoga(req: IncomingMessage, res: ServerResponse, body: Buffer, rateLimits: RateLimits | undefined): Promise<boolean>;
  /** Resolves once the invalidation channel is subscribed (answers are cached from then on). */
  ready(): Promise<void>;
  /** Resolves at the next invalidation this process applies (tests, benchmarks). */
  nextInvalidation(): Promise<CacheInvalidation>;
  /** Drops every cached answer in every API process (through Redis). */
  invalidate(reason: string): Promise<void>;
  stats(): ResponseCacheStats;
  close(): Promise<void>;
}

/** The largest body answered before yoga: the dashboard's queries are a few hundred bytes. */
export const BEFORE_YOGA_MAX_BODY = 16 * 1024;

/**
 * The media type yoga would answer a successful query with, for an Accept header: the first of the
 * header's types that it answers with, in the header's order. Null when that is not one of these
 * two (an event stream, say): such requests go to yoga.
 */
export function answerMediaType(accept: string | undefined): string | null {
  if (accept === undefined || !accept.trim()) return "application/json; charset=utf-8";
  for (const part of accept.split(",")) {
    const type = (part.split(";")[0] ?? "").trim().toLowerCase();
    if (type === "application/json" || type === "*/*" || type === "application/*") return "application/json; charset=utf-8";
    if (type === "application/graphql-response+json") return "application/graphql-response+json; charset=utf-8";
    if (type === "text/event-stream" || type === "multipart/mixed") return null;
  }
  return null;
}

const SERVED_FROM_CACHE = Symbol.for("servedFromResponseCache");
/** How long a request waits for another computing the same answer before computing it itself. */
const COALESCE_WAIT_MS = 30_000;

/**
 * Gives a cached result a `stringify` (yoga's hook for a result's own serializer) that writes its
 * data as JSON once, not on every hit: serializing a page was the largest cost of a hit. Copies
 * of the result (yoga's, the plugin's) share the data object and so the text; anything else
 * (errors, other data) is serialized as usual.
 */
function withSerializedData<T extends ExecutionResult>(result: T): T {
  let data: string | undefined;
  const stringify = (r: ExecutionResult) => {
    if (r.errors?.length || r.data !== result.data || r.data === undefined) return JSON.stringify(r);
    data ??= JSON.stringify(r.data);
    return r.extensions === undefined ? `{"data":${data}}` : `{"data":${data},"extensions":${JSON.stringify(r.extensions)}}`;
  };
  return Object.assign(result, { stringify });
}

/**
 * The response cache of one API process, listening on `<QUEUE_PREFIX>:responseCache:invalidate`.
 * RESPONSE_CACHE_TTL_SECONDS=0 turns the answers' cache off (the token cache follows AUTH_CACHE_SECONDS).
 */
export function createResponseCache(options: {
  config: Pick<Config, "QUEUE_PREFIX" | "NODE_ENV" | "RESPONSE_CACHE_TTL_SECONDS" | "RESPONSE_CACHE_MAX_ENTRIES" | "AUTH_CACHE_SECONDS">;
  db: Database;
  logger: Logger;
  redisUrl: string;
}): ResponseCache {
  const { config } = options;
  const logger = options.logger.child({ component: "response-cache" });
  const channel = responseCacheChannel(config.QUEUE_PREFIX);
  const publisher = createPublisher(options.redisUrl, config.QUEUE_PREFIX, logger);
  const subscriber = new Redis(options.redisUrl, redisOptions("response-cache-subscribe", true));
  const ttlMs = config.RESPONSE_CACHE_TTL_SECONDS * 1000;
  const maxEntries = config.RESPONSE_CACHE_MAX_ENTRIES;

  let live = false;
  let closed = false;
  const liveWaiters: (() => void)[] = [];
  let generation = 0;
  let entries: Cache = createInMemoryCache({ max: maxEntries });
  const stats = { hits: 0, hitsBeforeYoga: 0, misses: 0, stored: 0, invalidations: 0 };
  const waiters: ((m: CacheInvalidation) => void)[] = [];
  const viewers = createViewerCache(options.db, config.AUTH_CACHE_SECONDS * 1000, () => live);
  // Outside production, answers say whether they came from the cache (tests, developers).
  const includeMetadata = config.NODE_ENV !== "production";
  // The schema the plugins were made for: answers before yoga decide with it what may be cached.
  let schemaOfPlugins: GraphQLSchema | undefined;

  const apply = (message: CacheInvalidation) => {
    if (message.drop === "viewers") viewers.clear();
    else {
      // Keys carry the generation: whatever is being computed now under the old one is never read.
      generation++;
      entries = createInMemoryCache({ max: maxEntries });
      stats.invalidations++;
    }
    for (const w of waiters.splice(0)) w(message);
  };

  subscriber.on("message", (name: string, text: string) => {
    if (name !== channel) return;
    let message: CacheInvalidation;
    try {
      message = JSON.parse(text) as CacheInvalidation;
    } catch {
      logger.warn({ text: text.slice(0, 200) }, "response cache: an invalidation that is not JSON; dropping everything");
      message = { drop: "responses", reason: "unreadable message" };
    }
    apply(message);
    if (message.drop === "responses") logger.debug({ reason: message.reason }, "response cache: invalidated");
  });
  // Messages published while the connection was down are lost: nothing is served until the
  // channel is subscribed again, and then everything starts afresh.
  const goDown = () => {
    if (live) logger.warn("response cache: lost the invalidation channel; answering without the cache until it is back");
    live = false;
  };
  subscriber.on("close", goDown);
  subscriber.on("error", (error: Error) => logger.debug({ err: error.message }, "response cache: Redis subscribe connection failed"));
  subscriber.on("ready", () => {
    subscriber.subscribe(channel).then(
      () => {
        if (closed) return;
        apply({ drop: "responses", reason: "(re)subscribed" });
        apply({ drop: "viewers", reason: "(re)subscribed" });
        live = true;
        for (const w of liveWaiters.splice(0)) w();
      },
      (error: Error) => logger.warn({ err: error.message }, "response cache: could not subscribe to invalidations"),
    );
  });
  const connected = subscriber.connect().catch((error: Error) => {
    logger.warn({ err: error.message }, "response cache: Redis unavailable; answering without the cache until it is back");
  });

  // Documents are parsed once more here, before yoga parses them, to decide whether their answer
  // may be looked up; the decision is kept per document text.
  const decisions = boundedMap<string, boolean>(1000);
  const cacheableText = (schema: GraphQLSchema, query: string, operationName: string | null | undefined) => {
    const key = `${operationName ?? ""}\u0000${query}`;
    let decision = decisions.get(key);
    if (decision === undefined) {
      try {
        decision = isCacheableOperation(schema, parse(query, { noLocation: true }), operationName);
      } catch {
        decision = false;
      }
      decisions.set(key, decision);
    }
    return decision;
  };

  const inflight = new Map<string, { release(): void; waitAtMost(ms: number): Promise<void> }>();
  const coalescing = (key: string) => {
    let release!: () => void;
    const done = new Promise<void>((resolve) => (release = resolve));
    const entry = {
      release() {
        if (inflight.get(key) === entry) inflight.delete(key);
        release();
      },
      waitAtMost(ms: number) {
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
        return Promise.race([done, late]).finally(() => clearTimeout(timer));
      },
    };
    return entry;
  };

  const publish = (message: CacheInvalidation) => {
    // This process at once (the answer to the mutation must not be followed by a stale one), then the others.
    apply(message);
    return publisher.publish(message);
  };

  return {
    plugins({ schema, viewerOf, rateLimits }) {
      schemaOfPlugins = schema;
      // Operation contexts whose answer may come from or go to the cache (set while building the key).
      const keyed = new WeakSet<object>();
      const scopes = new WeakMap<Request, string | null>();
      // Keys whose answer an operation of the request is computing, released when it is done.
      const computing = new WeakMap<object, string>();
      const computingFor = new WeakMap<Request, string[]>();
      const caching: Plugin[] = [];
      if (ttlMs > 0) {
        caching.push(
          useResponseCache<object>({
            cache: {
              get: (key) => (key ? entries.get(key) : null),
              set: (key, result, entities, ttl) => {
                stats.stored++;
                entries.set(key, withSerializedData(result), entities, ttl);
                inflight.get(key)?.release();
              },
              invalidate: (list) => entries.invalidate(list),
            },
            ttl: ttlMs,
            invalidateViaMutation: false,
            includeExtensionMetadata: includeMetadata,
            session: async (request) => {
              let scope = scopes.get(request);
              if (scope === undefined) {
                // A failed lookup is reported by the context, which awaits the same promise.
                scope = live ? viewerScope(await viewerOf(request).catch(() => null)) : null;
                scopes.set(request, scope);
              }
              return scope;
            },
            buildResponseCacheKey: ({ documentString, variableValues, operationName, sessionId, context, request }) => {
              if (!live || !sessionId || !cacheableText(schema, documentString, operationName)) return "";
              keyed.add(context as object);
              const key = answerKey(generation, sessionId, operationName, variableValues, documentString);
              if (entries.get(key)) return key;
              // After an invalidation every dashboard misses at once: the first computes the
              // answer, the others wait for it and are answered from the cache.
              const pending = inflight.get(key);
              if (pending) return pending.waitAtMost(COALESCE_WAIT_MS).then(() => key);
              inflight.set(key, coalescing(key));
              computing.set(context as object, key);
              computingFor.set(request, [...(computingFor.get(request) ?? []), key]);
              return key;
            },
            enabled: (_request, context) => live && keyed.has(context),
          }),
        );
      }
      const counting: Plugin = {
        // A request that failed before its operations were answered releases their keys here.
        onResponse({ request }) {
          for (const key of computingFor.get(request) ?? []) inflight.get(key)?.release();
        },
        // Cached answers skip execution, and with it the rate limit counted there: count them here.
        async onExecutionResult({ result, request, setResult, context }) {
          // An answer with errors is not stored: whoever waited for it computes their own.
          const key = computing.get(context);
          if (key) inflight.get(key)?.release();
          if (!result || !(result as Record<symbol, unknown>)[SERVED_FROM_CACHE]) return;
          stats.hits++;
          hitsCounter.inc();
          const viewer = await viewerOf(request);
          if (!rateLimits || !viewer) return;
          try {
            await rateLimits.consume(viewer.tokenId, "read");
          } catch (refusal) {
            if (!(refusal instanceof GraphQLError)) throw refusal;
            setResult({ errors: [refusal] });
          }
        },
        onExecute({ args }) {
          const operation = getOperationAST(args.document, args.operationName);
          if (operation?.operation === "query") {
            if (keyed.has(args.contextValue as object)) {
              stats.misses++;
              missesCounter.inc();
            }
            return;
          }
          if (operation?.operation !== "mutation") return;
          const fields = operation.selectionSet.selections.flatMap((s) => (s.kind === Kind.FIELD ? [s.name.value] : []));
          const answers = fields.some((f) => MUTATIONS_CHANGING_ANSWERS.has(f));
          const tokens = fields.some((f) => MUTATIONS_CHANGING_VIEWERS.has(f));
          if (!answers && !tokens) return;
          return {
            async onExecuteDone({ result }) {
              if (Array.isArray(result) || (result as ExecutionResult).errors?.length) return;
              if (answers) await publish({ drop: "responses", reason: fields.join(",") });
              if (tokens) await publish({ drop: "viewers", reason: fields.join(",") });
            },
          };
        },
      };
      return [...caching, counting];
    },
    authenticate: (token) => viewers.authenticate(token),
    mayAnswerBeforeYoga(req) {
      if (!live || ttlMs <= 0 || req.method !== "POST") return false;
      const length = Number(req.headers["content-length"]);
      const type = req.headers["content-type"];
      return (
        Number.isInteger(length) && length > 0 && length <= BEFORE_YOGA_MAX_BODY &&
        type !== undefined && /^application\/json\s*(;|$)/i.test(type) &&
        bearerToken(req.headers.authorization) !== undefined &&
        answerMediaType(req.headers.accept) !== null &&
        // CORS preflight headers on a POST are unusual: yoga answers them.
        req.headers["access-control-request-method"] === undefined &&
        req.headers["access-control-request-headers"] === undefined
      );
    },
    async answerBeforeYoga(req, res, body, rateLimits) {
      const mediaType = answerMediaType(req.headers.accept);
      const token = bearerToken(req.headers.authorization);
      if (!live || !mediaType || !token) return false;
      let params: { query?: unknown; operationName?: unknown; variables?: unknown; extensions?: unknown };
      try {
        params = JSON.parse(body.toString("utf8")) as typeof params;
      } catch {
        return false;
      }
      // One operation, as the plugin sees it; anything else (a batch, extensions) takes yoga's path.
      if (params === null || typeof params !== "object" || Array.isArray(params) || typeof params.query !== "string") return false;
      if (params.extensions !== undefined && params.extensions !== null) return false;
      const operationName = params.operationName ?? null;
      if (operationName !== null && typeof operationName !== "string") return false;
      const variables = params.variables ?? null;
      if (variables !== null && (typeof variables !== "object" || Array.isArray(variables))) return false;
      const generationNow = generation;
      const viewer = await viewers.authenticate(token).catch(() => null);
      const scope = viewerScope(viewer);
      if (!viewer || !scope || !live || generation !== generationNow || !schemaOfPlugins) return false;
      if (!cacheableText(schemaOfPlugins, params.query, operationName)) return false;
      const cached = entries.get(answerKey(generationNow, scope, operationName, variables, params.query)) as
        | (ExecutionResult & { stringify?: (r: ExecutionResult) => string })
        | null
        | undefined;
      if (!cached) return false;
      try {
        await rateLimits?.consume(viewer.tokenId, "read");
      } catch (refusal) {
        // Yoga's path refuses it in its own words (and counts it once more, past the limit already).
        if (refusal instanceof GraphQLError) return false;
        throw refusal;
      }
      // Yoga's plugin keeps the answer's ETag and Last-Modified in `extensions.http`, which yoga
      // turns into headers and leaves out of the body; so does this.
      const { http, ...extensions } = (cached.extensions ?? {}) as { http?: { headers?: Record<string, string> } } & Record<string, unknown>;
      if (includeMetadata) extensions.responseCache = { hit: true };
      const result: ExecutionResult = { ...cached, extensions };
      if (Object.keys(extensions).length === 0) delete result.extensions;
      const text = cached.stringify ? cached.stringify(result) : JSON.stringify(result);
      stats.hits++;
      stats.hitsBeforeYoga++;
      hitsBeforeYogaCounter.inc();
      // Yoga's default CORS answer to a request from a browser: its origin, allowed.
      const origin = req.headers.origin;
      const cors = origin === undefined ? undefined : { "access-control-allow-origin": origin, vary: "Origin", "access-control-allow-credentials": "true" };
      res.writeHead(200, {
        ...http?.headers,
        ...cors,
        "content-type": mediaType,
        "content-length": Buffer.byteLength(text),
        "x-request-id": String(req.headers["x-request-id"] ?? ""),
      });
      res.end(text);
      return true;
    },
    async ready() {
      await connected;
      if (!live && !closed) await new Promise<void>((resolve) => liveWaiters.push(resolve));
    },
    nextInvalidation: () => new Promise<CacheInvalidation>((resolve) => waiters.push(resolve)),
    invalidate: (reason) => publish({ drop: "responses", reason }),
    stats: () => ({ ...stats, live }),
    async close() {
      closed = true;
      live = false;
      for (const w of liveWaiters.splice(0)) w();
      await Promise.all([
        publisher.close(),
        subscriber.status === "ready" ? subscriber.quit().then(() => {}, () => subscriber.disconnect()) : Promise.resolve(subscriber.disconnect()),
      ]);
    },
  };
}

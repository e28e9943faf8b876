// The live alert stream behind the `alertRaised` subscription. Alerts live in Postgres; what
// crosses Redis is only which alert event happened ({alertId, eventId, type}), so every API
// process, whichever worker published, reads the alert itself and decides per subscriber whether
// it may be shown. Redis pub/sub keeps nothing: a process that is away misses the notification,
// never the alert (the `alerts` query still lists it).
import { createRedisEventTarget } from "@graphql-yoga/redis-event-target";
import { eq, sql } from "drizzle-orm";
import { GraphQLError } from "graphql";
import { createPubSub, SlidingBuffer, type PubSubEvent } from "graphql-yoga";
import type { ConnectionOptions } from "bullmq";
import { Redis, type RedisOptions } from "ioredis";
import type { Database } from "../../db/index.js";
import { alertTable, regionTable } from "../../db/schema.js";
import type { Logger } from "../../logger.js";
import { badInput, notFound } from "../errors.js";
import type { AlertKind } from "../types.js";
import type { Viewer } from "../viewer.js";
import { NOT_PUSHED_TO_PLANNERS, alertVisibleTo } from "./audience.js";

/** What a worker publishes for one alert event: ids only, never the alert's content. */
export interface LiveAlertEvent {
  alertId: string;
  eventId: number;
  type: "RAISED" | "ESCALATED" | "RESOLVED";
}

/** Publishes one event to every API process; resolves once Redis has taken it, rejects if it could not. */
export type AlertPublisher = (event: LiveAlertEvent) => Promise<void>;

export interface LiveAlerts {
  publish: AlertPublisher;
  /**
   * The events published from now on. Resolves once Redis has confirmed the subscription, so
   * nothing published after that is missed; the iterator's `return()` lets go of it.
   */
  listen(): Promise<AsyncIterableIterator<LiveAlertEvent>>;
  /** Another live stream (import progress) over the same two connections, on the channel `name` under the prefix. */
  channel<E>(name: string): LiveChannel<E>;
  close(): Promise<void>;
}

/** One live stream: `listen` as LiveAlerts' (confirmed subscription, `return()` lets go). */
export interface LiveChannel<E> {
  publish(event: E): Promise<void>;
  listen(): Promise<AsyncIterableIterator<E>>;
}

/** The part of LiveAlerts a subscriber needs (the GraphQL context carries only this). */
export type LiveAlertSource = Pick<LiveAlerts, "listen" | "channel">;

export interface LiveAlertsOptions {
  url: string;
  /**
   * Prefix of the channel name (QUEUE_PREFIX): deployments sharing a Redis do not hear each
   * other. Pub/sub channels are not keys, so the braces do not matter for a Cluster here.
   */
  prefix: string;
  logger: Logger;
  /** How long a new subscriber waits for Redis to confirm before it is told to retry. */
  subscribeTimeoutMs?: number;
}

type Topics = Record<string, [unknown]>;

/** Events a slow subscriber may fall behind by; older ones are dropped for it (not for others). */
const SUBSCRIBER_BUFFER = 256;

export const liveChannelName = (prefix: string, name: string) => `${prefix}:live:${name}`;
export const liveAlertChannel = (prefix: string) => liveChannelName(prefix, "alertRaised");

// Publishing fails fast while Redis is away (the job is retried with backoff); subscribing
// waits for the connection: the event target does not handle a failed SUBSCRIBE, and ioredis
// subscribes again by itself after a reconnect.
const PUBLISH_OPTIONS = { lazyConnect: true, maxRetriesPerRequest: 1 } as const satisfies RedisOptions;

/**
 * Two Redis connections: a connection in subscriber mode can only subscribe, so publishing needs
 * its own. The subscriber connects on the first subscription, so a worker-only process that only
 * publishes never opens it.
 */
export function createLiveAlerts(options: LiveAlertsOptions): LiveAlerts {
  const channel = liveAlertChannel(options.prefix);
  const logger = options.logger.child({ component: "live-alerts" });
  const timeoutMs = options.subscribeTimeoutMs ?? 5_000;
  const publishClient = new Redis(options.url, { ...PUBLISH_OPTIONS, connectionName: "live-alerts-publish" } satisfies RedisOptions);
  const subscribeClient = new Redis(options.url, { lazyConnect: true, maxRetriesPerRequest: null, connectionName: "live-alerts-subscribe" } satisfies RedisOptions);
  let failing = false;
  for (const client of [publishClient, subscribeClient]) {
    client.on("error", (error: Error) => {
      if (!failing) logger.warn({ err: error.message }, "live alerts: Redis connection failed; reconnecting");
      failing = true;
    });
    client.on("ready", () => {
      if (failing) logger.info("live alerts: Redis connection back");
      failing = false;
    });
  }
  const lost = (command: string) => (error: Error) => logger.debug({ err: error.message, command }, "live alerts: Redis command failed");
  // The event target subscribes and unsubscribes without waiting for the answer; a refusal (say
  // the connection closed at shutdown) would be an unhandled rejection, which ends the process.
  const subscriber = {
    on: subscribeClient.on.bind(subscribeClient),
    subscribe: (name: string) => subscribeClient.subscribe(name).catch(lost("subscribe")),
    unsubscribe: (name: string) => subscribeClient.unsubscribe(name).catch(lost("unsubscribe")),
  } as unknown as Redis;
  const eventTarget = createRedisEventTarget<PubSubEvent<Topics, string>>({ publishClient, subscribeClient: subscriber });
  // One pubsub per subscriber: the pubsub hands its buffer to every stream it makes, so streams of
  // one pubsub would take each other's events.
  const ownStream = (name: string) => createPubSub<Topics>({ eventTarget, repeaterBuffer: new SlidingBuffer(SUBSCRIBER_BUFFER) }).subscribe(name);
  // Not pubsub.publish: it does not wait for Redis, so a lost message would count as delivered.
  const publishOn = async (name: string, event: unknown) => {
    await publishClient.publish(name, JSON.stringify(event));
  };

  const listenOn = async <E>(name: string): Promise<AsyncIterableIterator<E>> => {
    const stream = ownStream(name) as unknown as AsyncGenerator<E>;
    // The pubsub's stream registers its listener (and the event target its SUBSCRIBE) when first
    // pulled; pull now, so the subscription exists before the client is answered.
    let first: Promise<IteratorResult<E>> | null = stream.next();
    // The same connection answers in order: once this SUBSCRIBE is confirmed, so is the event target's.
    let timer: NodeJS.Timeout | undefined;
    try {
      const confirmed = subscribeClient.subscribe(name);
      confirmed.catch(lost("subscribe"));
      await Promise.race([
        confirmed,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new LiveAlertsUnavailable()), timeoutMs);
        }),
      ]);
    } catch (error) {
      await stream.return(undefined);
      throw error instanceof LiveAlertsUnavailable ? error : new LiveAlertsUnavailable();
    } finally {
      clearTimeout(timer);
    }
    const iterator: AsyncIterableIterator<E> = {
      next() {
        const pending = first ?? stream.next();
        first = null;
        return pending;
      },
      return: () => stream.return(undefined),
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  };

  return {
    publish: (event) => publishOn(channel, event),
    listen: () => listenOn<LiveAlertEvent>(channel),
    channel<E>(name: string): LiveChannel<E> {
      const full = liveChannelName(options.prefix, name);
      return { publish: (event: E) => publishOn(full, event), listen: () => listenOn<E>(full) };
    },
    async close() {
      await Promise.all([publishClient, subscribeClient].map((c) => (c.status === "ready" ? c.quit().catch(() => c.disconnect()) : c.disconnect())));
    },
  };
}

/**
 * Publishes on one live channel from a process that only publishes (a job processor, from the
 * worker's queue connection), with LiveAlerts' publishing connection settings. Close it when done.
 */
export function createLivePublisher<E>(
  connection: ConnectionOptions,
  prefix: string,
  name: string,
): { publish(event: E): Promise<void>; close(): Promise<void> } {
  const channel = liveChannelName(prefix, name);
  let client: Redis;
  if (connection instanceof Redis) client = connection.duplicate(PUBLISH_OPTIONS);
  else {
    const { url, ...rest } = connection as RedisOptions & { url?: string };
    const settings = { ...rest, ...PUBLISH_OPTIONS, connectionName: `live-${name}-publish` };
    client = url ? new Redis(url, settings) : new Redis(settings);
  }
  // Reported by the failing publish itself; without a listener ioredis would print every retry.
  client.on("error", () => {});
  return {
    async publish(event) {
      await client.publish(channel, JSON.stringify(event));
    },
    async close() {
      await (client.status === "ready" ? client.quit().catch(() => client.disconnect()) : client.disconnect());
    },
  };
}

/** Redis did not confirm a subscription in time: the client should try again. */
export class LiveAlertsUnavailable extends GraphQLError {
  constructor() {
    super("live alerts are unavailable right now (the message broker does not answer); subscribe again in a few seconds", {
      extensions: { code: "SERVICE_UNAVAILABLE" },
    });
  }
}

/**
 * Publishes an SSE delivery (one per alert event; every subscriber gets it through Redis) and
 * marks it DELIVERED. A delivery already delivered, cancelled or digested is left alone, so a job
 * run twice publishes once. A failed publish is recorded on the row (attempts, last error; FAILED
 * on the last attempt) and thrown, so the job is retried.
 */
export async function publishAlertDelivery(
  db: Database,
  publish: AlertPublisher,
  deliveryId: string,
  options: { lastAttempt?: boolean } = {},
): Promise<{ published: boolean; status: string }> {
  const [d] = await db.execute<{ channel: string; status: string; alert_id: string; event_id: number; type: LiveAlertEvent["type"] }>(
    sql`select d.channel, d.status, e.alert_id, e.id::int as event_id, e.type
        from delivery d join alert_event e on e.id = d.alert_event_id where d.id = ${deliveryId}::uuid`,
    "objects",
  );
  // The alert (and with it the delivery) was deleted: there is nothing left to announce.
  if (!d) return { published: false, status: "GONE" };
  if (d.channel !== "SSE") throw badInput(`delivery ${deliveryId} is a ${d.channel} delivery; alerts.publish sends SSE deliveries only`);
  if (d.status !== "PENDING" && d.status !== "FAILED") return { published: false, status: d.status };
  try {
    await publish({ alertId: d.alert_id, eventId: d.event_id, type: d.type });
  } catch (error) {
    await db.execute(
      sql`update delivery set attempts = attempts + 1, last_attempt_at = now(), last_error = ${String((error as Error).message ?? error).slice(0, 1000)},
                 status = case when ${options.lastAttempt ?? false} then 'FAILED'::delivery_status else status end
          where id = ${deliveryId}::uuid and status <> 'DELIVERED'`,
    );
    throw error;
  }
  await db.execute(
    sql`update delivery set status = 'DELIVERED', attempts = attempts + 1, last_attempt_at = now(), delivered_at = now(), last_error = null
        where id = ${deliveryId}::uuid and status <> 'DELIVERED'`,
  );
  return { published: true, status: "DELIVERED" };
}

export interface AlertStreamFilter {
  regionCode?: string | null;
  kinds?: readonly AlertKind[] | null;
}

type AlertRow = typeof alertTable.$inferSelect;

/** How often a long-lived stream checks that its token still works and the viewer's rights are unchanged. */
const VIEWER_RECHECK_MS = 60_000;

/**
 * The alerts a viewer is shown live, as published from now on: only those the viewer may see
 * (alertVisibleTo, the same rule as the `alerts` query), of the region's subtree and the kinds
 * asked for. Planners are not sent REPORT_OVERDUE unless they ask for that kind (they follow
 * reporting as completeness). A stream whose token is revoked or expired, or whose user is
 * disabled or given other rights, ends with an error. Values that are errors are the stream's to
 * report (the resolver throws them); the stream goes on after one, except after that last one.
 *
 * A region the viewer may not look at is refused the way other fields refuse it: planners their
 * jurisdiction, organization users the regions that hold one of their sites, admins any.
 */
export async function subscribeToAlerts(
  db: Database,
  live: LiveAlertSource,
  viewer: Viewer,
  filter: AlertStreamFilter,
  options: { recheckViewerMs?: number } = {},
): Promise<AsyncIterableIterator<AlertRow | Error>> {
  const recheckMs = options.recheckViewerMs ?? VIEWER_RECHECK_MS;
  const kinds = filter.kinds?.length ? new Set(filter.kinds) : null;
  const subtree = filter.regionCode != null ? await visibleRegionPath(db, viewer, filter.regionCode) : null;
  const events = await live.listen();
  let checkedAt = Date.now();
  let ended = false;

  const wanted = (a: AlertRow & { regionPath: string }) =>
    alertVisibleTo(viewer, a) &&
    (subtree === null || a.regionPath.startsWith(subtree)) &&
    (kinds ? kinds.has(a.kind) : !(viewer.role === "PLANNER" && NOT_PUSHED_TO_PLANNERS.has(a.kind)));

  const iterator: AsyncIterableIterator<AlertRow | Error> = {
    async next(): Promise<IteratorResult<AlertRow | Error>> {
      while (!ended) {
        const event = await events.next();
        if (event.done) break;
        let alert;
        try {
          alert = await loadAlert(db, event.value);
        } catch (error) {
          // Told to the subscriber (masked, and logged by the server) instead of ending the
          // stream: the next event may well be read.
          return { done: false, value: error as Error };
        }
        if (!alert || !wanted(alert)) continue;
        if (Date.now() - checkedAt >= recheckMs) {
          if (!(await viewerUnchanged(db, viewer))) {
            ended = true;
            await events.return?.();
            return {
              done: false,
              value: new GraphQLError("your API token was revoked or has expired, or your access changed; subscribe again with a valid token", {
                extensions: { code: "UNAUTHENTICATED" },
              }),
            };
          }
          checkedAt = Date.now();
        }
        const { regionPath: _path, ...row } = alert;
        return { done: false, value: row };
      }
      return { done: true, value: undefined };
    },
    async return() {
      ended = true;
      await events.return?.();
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}

// Every subscriber of a process asks for the same alert when an event arrives: one query serves
// them all. Kept per event and only while its subscribers are served, so the next event of the
// same alert reads it again.
const eventAlerts = new WeakMap<Database, Map<number, Promise<(AlertRow & { regionPath: string }) | null>>>();

function loadAlert(db: Database, event: LiveAlertEvent) {
  let cache = eventAlerts.get(db);
  if (!cache) eventAlerts.set(db, (cache = new Map()));
  let pending = cache.get(event.eventId);
  if (!pending) {
    const loading = db
      .select({ alert: alertTable, regionPath: regionTable.path })
      .from(alertTable)
      .innerJoin(regionTable, eq(regionTable.id, alertTable.regionId))
      .where(eq(alertTable.id, event.alertId))
      .then(([r]) => (r ? { ...r.alert, regionPath: r.regionPath } : null));
    cache.set(event.eventId, (pending = loading));
    const forget = () => void setTimeout(() => cache.delete(event.eventId), 1_000).unref();
    loading.then(forget, forget);
  }
  return pending;
}

async function visibleRegionPath(db: Database, viewer: Viewer, regionCode: string): Promise<string> {
  const code = regionCode.trim();
  const [region] = await db.execute<{ path: string; holds_own_site: boolean }>(
    sql`select r.path,
               exists (select 1 from site s join region sr on sr.id = s.region_id
                       where s.organization_id = ${viewer.organizationId}::uuid and sr.path ^@ r.path) as holds_own_site
        from region r where r.code = ${code}`,
    "objects",
  );
  const visible =
    !!region &&
    (viewer.role === "ADMIN" ||
      (viewer.role === "PLANNER" ? !!viewer.jurisdiction && region.path.startsWith(viewer.jurisdiction.path) : region.holds_own_site));
  if (visible) return region.path;
  if (viewer.role === "ADMIN") throw notFound(`no region with code ${code}; see regions { code } for the codes`);
  throw notFound(
    viewer.role === "PLANNER"
      ? `region ${code} not found, or not visible to you: you may look at ${viewer.jurisdiction?.code ?? "no region"} and the regions below it; see regions { code } for their codes`
      : `region ${code} not found, or not visible to you: ask for a region that holds one of your organization's sites, or leave regionCode out`,
  );
}

/** True while the stream's token works and its user has the role and scope it subscribed with. */
async function viewerUnchanged(db: Database, viewer: Viewer): Promise<boolean> {
  const [row] = await db.execute<{ role: string; organization_id: string | null; jurisdiction_id: number | null }>(
    sql`select u.role, u.organization_id, u.jurisdiction_region_id as jurisdiction_id
        from api_token t join app_user u on u.id = t.user_id
        where t.id = ${viewer.tokenId}::uuid and t.revoked_at is null and u.disabled_at is null and (t.expires_at is null or t.expires_at > now())`,
    "objects",
  );
  return !!row && row.role === viewer.role && row.organization_id === viewer.organizationId && (row.jurisdiction_id ?? null) === (viewer.jurisdiction?.id ?? null);
}

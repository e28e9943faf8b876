// Prometheus metrics of this process: one registry, the metrics defined once. API and worker
// processes both serve them at /metrics (src/http/operations.ts), with the queues' job counts
// from BullMQ's own exporter.
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export const registry = new Registry();
collectDefaultMetrics({ register: registry });

const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const JOB_SECONDS = [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900];

export const httpDuration = new Histogram({
  name: "http_request_duration_seconds",
  help: "HTTP requests by route (a fixed set, not the raw path), method and status.",
  labelNames: ["route", "method", "status"] as const,
  buckets: SECONDS,
  registers: [registry],
});

export const graphqlDuration = new Histogram({
  name: "graphql_operation_duration_seconds",
  help: "GraphQL operations by type and root fields (schema names, so the label set is bounded), and whether they returned errors.",
  labelNames: ["type", "fields", "outcome"] as const,
  buckets: SECONDS,
  registers: [registry],
});

export const jobDuration = new Histogram({
  name: "job_duration_seconds",
  help: "Background jobs by queue and name, from start to end of processing: forecast.recompute is a forecast run, matching.recompute a match run.",
  labelNames: ["queue", "name", "outcome"] as const,
  buckets: JOB_SECONDS,
  registers: [registry],
});

export const responseCacheRequests = new Counter({
  name: "response_cache_requests_total",
  help: "Cacheable planner queries (shortages, forecast) by outcome: hit_before_yoga (answered from the cache without yoga), hit (from the cache through yoga), miss (computed).",
  labelNames: ["outcome"] as const,
  registers: [registry],
});

/** The route label of a request path: known routes by name, anything else as "other". */
export function routeOf(path: string): string {
  if (path === "/graphql" || path === "/healthz" || path === "/readyz" || path === "/metrics" || path === "/imports") return path;
  if (path.startsWith("/open-data/")) return path.endsWith(".csv") ? "/open-data/shortages.csv" : "/open-data/shortages.json";
  if (path === "/dashboard" || path.startsWith("/dashboard/")) return "/dashboard";
  if (path.startsWith("/imports/")) return path.endsWith("/rejected.csv") ? "/imports/:id/rejected.csv" : "/imports/:id";
  if (path === "/admin/queues" || path.startsWith("/admin/queues/")) return "/admin/queues";
  return "other";
}

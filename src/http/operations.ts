import type { IncomingMessage, ServerResponse } from "node:http";
import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { ExpressAdapter } from "@bull-board/express";
import { Queue, type ConnectionOptions } from "bullmq";
import express from "express";
import { Kind, getOperationAST } from "graphql";
import type { Plugin } from "graphql-yoga";
import { QUEUES, type QueueName } from "../../jobs/definitions.js";
import type { Config } from "../config.js";
import type { Database } from "../db/index.js";
import { authenticate } from "../domain/tokens.js";
import type { Logger } from "../logger.js";
import { graphqlDuration, registry } from "../metrics.js";

export const ADMIN_QUEUES_PATH = "/admin/queues";

/** Times every GraphQL operation, labelled by its type and root fields. */
export function useOperationMetrics(): Plugin {
  return {
    onExecute({ args }) {
      const started = performance.now();
      const operation = getOperationAST(args.document, args.operationName);
      const fields =
        operation?.selectionSet.selections
          .map((s) => (s.kind === Kind.FIELD ? s.name.value : "…"))
          .sort()
          .join(",") ?? "";
      const type = operation?.operation ?? "unknown";
      return {
        onExecuteDone({ result }) {
          const failed = "errors" in result && Array.isArray(result.errors) && result.errors.length > 0;
          graphqlDuration.observe({ type, fields, outcome: failed ? "error" : "ok" }, (performance.now() - started) / 1000);
        },
      };
    },
  };
}

export interface Operations {
  /** GET /metrics: this process's metrics and, with Redis, the job counts of every queue. */
  metrics(req: IncomingMessage, res: ServerResponse): void;
  /** /admin/queues: the BullMQ dashboard (bull-board), for admins only. */
  adminQueues(req: IncomingMessage, res: ServerResponse): void;
  close(): Promise<void>;
}

const tokenOf = (req: IncomingMessage): string | null => {
  const header = req.headers.authorization ?? "";
  const bearer = /^Bearer\s+(\S+)$/i.exec(header);
  if (bearer) return bearer[1]!;
  // A browser asks for Basic credentials and resends them by itself: the token is the password.
  const basic = /^Basic\s+(\S+)$/i.exec(header);
  if (basic) {
    const decoded = Buffer.from(basic[1]!, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    return colon >= 0 ? decoded.slice(colon + 1) || null : null;
  }
  return null;
};

export function createOperations(deps: { config: Config; db: Database; logger: Logger; redisUrl?: string | undefined }): Operations {
  const { config, db, logger } = deps;
  const connection = deps.redisUrl ? ({ url: deps.redisUrl, maxRetriesPerRequest: 1, enableOfflineQueue: false } as ConnectionOptions) : undefined;
  let queues: Queue[] | undefined;
  const openQueues = () =>
    (queues ??= connection ? (Object.keys(QUEUES) as QueueName[]).map((name) => new Queue(name, { connection, prefix: config.QUEUE_PREFIX })) : []);

  let board: express.Express | undefined;
  const openBoard = () => {
    if (board) return board;
    const adapter = new ExpressAdapter();
    adapter.setBasePath(ADMIN_QUEUES_PATH);
    createBullBoard({ queues: openQueues().map((q) => new BullMQAdapter(q)), serverAdapter: adapter });
    board = express();
    board.disable("x-powered-by");
    board.use(ADMIN_QUEUES_PATH, adapter.getRouter());
    return board;
  };

  const deny = (res: ServerResponse, status: 401 | 403, message: string) => {
    const headers: Record<string, string> = { "content-type": "text/plain; charset=utf-8" };
    if (status === 401) headers["www-authenticate"] = 'Basic realm="supply-monitor queues", charset="UTF-8"';
    res.writeHead(status, headers).end(`${message}\n`);
  };

  return {
    metrics(req, res) {
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" }).end("metrics are read with GET\n");
        return;
      }
      if (config.METRICS_TOKEN && tokenOf(req) !== config.METRICS_TOKEN) {
        res
          .writeHead(401, { "content-type": "text/plain; charset=utf-8", "www-authenticate": "Bearer" })
          .end("metrics need Authorization: Bearer <METRICS_TOKEN> (the token set in this service's METRICS_TOKEN)\n");
        return;
      }
      void (async () => {
        const own = await registry.metrics();
        // A queue that cannot be read (Redis away) leaves its lines out rather than failing the scrape.
        const counts = await Promise.all(
          openQueues().map((q) =>
            q.exportPrometheusMetrics().catch((error: Error) => {
              logger.warn({ err: error.message, queue: q.name }, "queue metrics unavailable");
              return "";
            }),
          ),
        );
        // BullMQ writes HELP/TYPE and samples per queue; the exposition format wants each metric's
        // samples in one group under one HELP/TYPE.
        const families = new Map<string, { meta: string[]; samples: string[] }>();
        for (const line of counts.join("\n").split("\n")) {
          if (line === "") continue;
          const name = line.startsWith("#") ? (line.split(" ")[2] ?? "") : (/^[^{ ]+/.exec(line)?.[0] ?? "");
          let family = families.get(name);
          if (!family) families.set(name, (family = { meta: [], samples: [] }));
          if (!line.startsWith("#")) family.samples.push(line);
          else if (!family.meta.includes(line)) family.meta.push(line);
        }
        const queueLines = [...families.values()].flatMap((f) => [...f.meta, ...f.samples]);
        res.writeHead(200, { "content-type": registry.contentType, "cache-control": "no-store" });
        res.end(req.method === "HEAD" ? undefined : `${own}\n${queueLines.join("\n")}\n`);
      })().catch((error: Error) => {
        logger.error({ err: error }, "metrics failed");
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
        res.end("metrics failed; see the service's log\n");
      });
    },

    adminQueues(req, res) {
      if (!connection) {
        res.writeHead(503, { "content-type": "text/plain; charset=utf-8" }).end("the queue dashboard needs Redis (REDIS_URL)\n");
        return;
      }
      const token = tokenOf(req);
      if (!token) {
        deny(res, 401, "the queue dashboard is for admins: sign in with any user name and an ADMIN API token as the password");
        return;
      }
      authenticate(db, token).then(
        (viewer) => {
          if (!viewer) deny(res, 401, "that token is unknown, expired or revoked; create one with npm run cli -- token create --role ADMIN");
          else if (viewer.role !== "ADMIN") deny(res, 403, `the queue dashboard is for admins; this token's role is ${viewer.role}`);
          else openBoard()(req as never, res as never);
        },
        (error: Error) => {
          logger.error({ err: error }, "queue dashboard: token check failed");
          res.writeHead(503, { "content-type": "text/plain; charset=utf-8", "retry-after": "5" }).end("cannot check the token right now; retry in a few seconds\n");
        },
      );
    },

    async close() {
      await Promise.all((queues ?? []).map((q) => q.close().catch(() => {})));
    },
  };
}

// Report files over plain HTTP, for those who will not write a GraphQL client:
//   POST /imports                      multipart/form-data, field `file` (and optionally `idempotencyKey`)
//   GET  /imports/<id>                 where the import stands (JSON)
//   GET  /imports/<id>/rejected.csv    its rejected lines
// All with `Authorization: Bearer <token>`, the same rights as importReportsCsv and importJob. The
// upload is parsed as it streams (busboy) and written to the database piece by piece, so a large
// file is never held in memory.
import type { IncomingMessage, ServerResponse } from "node:http";
import { once } from "node:events";
import { Busboy, type BusboyFileStream } from "@fastify/busboy";
import type { Config } from "../config.js";
import type { Database } from "../db/index.js";
import { DomainError } from "../domain/errors.js";
import { findVisibleImport, importNotFound } from "../domain/imports/progress.js";
import { rejectedRowsCsv } from "../domain/imports/rejected.js";
import {
  UploadTooLargeError,
  checkUploader,
  discardUpload,
  finishUpload,
  formatBytes,
  importIdempotencyKey,
  importUrls,
  stageUpload,
  type ImportRow,
  type StagedUpload,
} from "../domain/imports/upload.js";
import { authenticate, bearerToken } from "../domain/tokens.js";
import type { Viewer } from "../domain/viewer.js";
import type { Logger } from "../logger.js";
import { requestIdFrom, runWithRequestId, type RateLimits } from "./limits.js";

export interface ImportsHandlerDeps {
  config: Config;
  db: Database;
  logger: Logger;
  rateLimits?: RateLimits | undefined;
}

/** A refusal: the status, a machine-readable code and a message that says what to do. */
class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const EXAMPLE = `curl -H "Authorization: Bearer $TOKEN" -F file=@reports.csv <this server>/imports`;
const FIELDS = "file (the CSV or .xlsx file) and, optionally, idempotencyKey";
const ROUTE = /^\/imports\/([^/]+)(\/rejected\.csv)?$/;

/** Global id of an import, as the GraphQL API names it (ImportJob). */
export const importGlobalId = (id: string) => Buffer.from(`ImportJob:${id}`).toString("base64");

/** An import as the HTTP answers show it. */
export function importJson(row: ImportRow) {
  return {
    id: importGlobalId(row.id),
    importId: row.id,
    status: row.status,
    filename: row.filename,
    format: row.format,
    encoding: row.encoding,
    sizeBytes: row.sizeBytes,
    sha256: row.sha256,
    rowsTotal: row.rowsTotal,
    rowsDone: row.rowsDone,
    rowsAccepted: row.rowsAccepted,
    rowsRejected: row.rowsRejected,
    errorMessage: row.errorMessage,
    createdAt: row.createdAt,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
    ...importUrls(row.id),
  };
}

export function importsHandler(deps: ImportsHandlerDeps) {
  const { config, db, logger } = deps;

  const viewerOf = async (req: IncomingMessage, kind: "read" | "write"): Promise<Viewer> => {
    const header = req.headers.authorization;
    const token = bearerToken(header);
    if (!token) {
      throw new HttpProblem(401, "UNAUTHENTICATED", header ? "the Authorization header must be 'Bearer <token>'" : `not signed in: send your API token as 'Authorization: Bearer <token>', e.g. ${EXAMPLE}`);
    }
    const viewer = await authenticate(db, token);
    if (!viewer) throw new HttpProblem(401, "UNAUTHENTICATED", "the API token is unknown, revoked or expired; ask an admin for a new one");
    await deps.rateLimits?.consume(viewer.tokenId, kind);
    return viewer;
  };

  const upload = async (req: IncomingMessage, res: ServerResponse, requestId: string) => {
    const viewer = await viewerOf(req, "write");
    checkUploader(viewer);
    const contentType = req.headers["content-type"] ?? "";
    if (!/^multipart\/form-data\s*;/i.test(contentType)) {
      throw new HttpProblem(415, "UNSUPPORTED_MEDIA_TYPE", `send the file as multipart/form-data in a field named file: ${EXAMPLE}`);
    }
    const limit = config.UPLOAD_LIMIT_BYTES;
    const length = Number(req.headers["content-length"]);
    if (Number.isFinite(length) && length > limit) {
      // Answered without reading the body: the connection cannot be reused.
      throw new HttpProblem(413, "PAYLOAD_TOO_LARGE", tooLarge(limit), { connection: "close" });
    }
    const staged = await receive(req, viewer, limit);
    const { import: row, existing } = await finishUpload(db, { viewer, requestId }, staged.upload, { idempotencyKey: staged.idempotencyKey });
    send(res, existing ? 200 : 202, { ...importJson(row), existing });
  };

  /** Parses the multipart body as it arrives; the file goes to stageUpload while it streams. */
  const receive = (req: IncomingMessage, viewer: Viewer, limit: number) =>
    new Promise<{ upload: StagedUpload; idempotencyKey: string | null }>((resolve, reject) => {
      let busboy;
      try {
        // A byte over the limit reaches stageUpload, which refuses the file with its message.
        busboy = new Busboy({ headers: req.headers as never, limits: { files: 1, fields: 5, parts: 8, fieldSize: 1024, fileSize: limit + 1 } });
      } catch (error) {
        reject(new HttpProblem(400, "BAD_REQUEST", `the request is not valid multipart/form-data (${(error as Error).message}); ${EXAMPLE}`));
        return;
      }
      let staging: Promise<StagedUpload> | null = null;
      let file: BusboyFileStream | null = null;
      let idempotencyKey: string | null = null;
      let settled = false;
      const fail = (error: unknown) => {
        if (settled) return;
        settled = true;
        req.unpipe(busboy);
        req.resume();
        // A file being staged stops there (stageUpload removes what it stored); one staged already is removed.
        file?.destroy(new Error("the upload was refused"));
        staging?.then((s) => discardUpload(deps.db, s.id)).catch(() => {});
        reject(error);
      };
      busboy.on("field", (name: string, value: string) => {
        if (name === "idempotencyKey") {
          try {
            idempotencyKey = importIdempotencyKey(value);
          } catch (error) {
            fail(error);
          }
        } else if (name === "file") {
          fail(new HttpProblem(400, "BAD_REQUEST", `the field file holds text, not a file: attach the file itself (with curl, -F file=@reports.csv, with the @): ${EXAMPLE}`));
        } else fail(new HttpProblem(400, "BAD_REQUEST", `unknown form field ${JSON.stringify(name.slice(0, 40))}; the fields are ${FIELDS}`));
      });
      busboy.on("file", (name: string, stream: BusboyFileStream, filename: string) => {
        if (name !== "file" || settled) {
          stream.resume();
          fail(new HttpProblem(400, "BAD_REQUEST", `the file must be sent in a field named file, not ${JSON.stringify(name.slice(0, 40))}: ${EXAMPLE}`));
          return;
        }
        file = stream;
        staging = stageUpload(db, viewer, stream, { filename, limitBytes: limit });
        staging.catch(fail);
      });
      busboy.on("filesLimit", () => fail(new HttpProblem(400, "BAD_REQUEST", `send one file per request; the fields are ${FIELDS}`)));
      busboy.on("fieldsLimit", () => fail(new HttpProblem(400, "BAD_REQUEST", `too many form fields; the fields are ${FIELDS}`)));
      busboy.on("partsLimit", () => fail(new HttpProblem(400, "BAD_REQUEST", `too many form parts; the fields are ${FIELDS}`)));
      busboy.on("error", (error: Error) => fail(new HttpProblem(400, "BAD_REQUEST", `the request body is not valid multipart/form-data (${error.message}); ${EXAMPLE}`)));
      busboy.on("finish", () => {
        if (settled) return;
        if (!staging) {
          fail(new HttpProblem(400, "BAD_REQUEST", `the request holds no file: send the CSV or .xlsx file in a form field named file, e.g. ${EXAMPLE}`));
          return;
        }
        staging.then(
          (upload) => {
            if (settled) return void discardUpload(deps.db, upload.id).catch(() => {});
            settled = true;
            resolve({ upload, idempotencyKey });
          },
          fail,
        );
      });
      req.on("error", (error) => fail(error));
      req.on("aborted", () => fail(new HttpProblem(400, "BAD_REQUEST", "the upload was interrupted before the whole file arrived; send it again")));
      req.pipe(busboy);
    });

  const status = async (req: IncomingMessage, res: ServerResponse, id: string) => {
    const viewer = await viewerOf(req, "read");
    const row = await findVisibleImport(db, viewer, id);
    if (!row) throw new HttpProblem(404, "NOT_FOUND", importNotFound(id).message);
    send(res, 200, importJson(row));
  };

  const rejected = async (req: IncomingMessage, res: ServerResponse, id: string) => {
    const viewer = await viewerOf(req, "read");
    const row = await findVisibleImport(db, viewer, id);
    if (!row) throw new HttpProblem(404, "NOT_FOUND", importNotFound(id).message);
    const base = (row.filename ?? "import").replace(/\.[^.]*$/, "").replace(/[^\w.-]+/g, "_").slice(0, 80) || "import";
    res.writeHead(200, {
      "content-type": "text/csv; charset=utf-8",
      "content-disposition": `attachment; filename="${base}-rejected.csv"`,
      "cache-control": "private, no-store",
    });
    if (req.method === "HEAD") return void res.end();
    for await (const piece of rejectedRowsCsv(db, row.id)) {
      if (res.destroyed) return;
      // Written as the client reads: a large list is never held whole.
      if (!res.write(piece)) await Promise.race([once(res, "drain"), once(res, "close")]);
    }
    res.end();
  };

  return (req: IncomingMessage, res: ServerResponse, path: string) => {
    const header = req.headers["x-request-id"];
    const requestId = requestIdFrom(Array.isArray(header) ? header[0] : header);
    res.setHeader("x-request-id", requestId);
    const route = ROUTE.exec(path);
    const handle = async () => {
      if (path === "/imports") {
        if (req.method !== "POST") throw new HttpProblem(405, "METHOD_NOT_ALLOWED", `upload a file with POST: ${EXAMPLE}`, { allow: "POST" });
        return upload(req, res, requestId);
      }
      if (!route) throw new HttpProblem(404, "NOT_FOUND", "no such page: imports are at /imports/<id> and /imports/<id>/rejected.csv");
      if (req.method !== "GET" && req.method !== "HEAD") throw new HttpProblem(405, "METHOD_NOT_ALLOWED", "read an import with GET", { allow: "GET, HEAD" });
      const id = decodeURIComponent(route[1]!);
      return route[2] ? rejected(req, res, id) : status(req, res, id);
    };
    runWithRequestId(requestId, () => {
      handle().catch((error: unknown) => {
        const problem = asProblem(error, requestId);
        if (problem.status >= 500) logger.error({ err: error, requestId, path }, "unexpected error while answering an imports request");
        if (res.headersSent) return void res.destroy();
        send(res, problem.status, { errors: [{ message: problem.message, extensions: { code: problem.code } }] }, problem.headers);
        // The rest of a refused upload is not read; the client sees the answer, then the connection closes.
        if (problem.headers.connection === "close") req.resume();
      });
    });
  };
}

const tooLarge = (limit: number) => `the file is larger than the upload limit of ${formatBytes(limit)} (UPLOAD_LIMIT_BYTES); split it into several files of fewer rows and upload each`;

function asProblem(error: unknown, requestId: string): HttpProblem {
  if (error instanceof HttpProblem) return error;
  if (error instanceof UploadTooLargeError) return new HttpProblem(413, "PAYLOAD_TOO_LARGE", error.message, { connection: "close" });
  if (error instanceof DomainError) {
    const status = { BAD_INPUT: 400, NOT_FOUND: 404, FORBIDDEN: 403, UNAUTHENTICATED: 401, CONFLICT: 409, BATCH_TOO_LARGE: 413, IDEMPOTENCY_KEY_REUSED: 409 }[error.code];
    return new HttpProblem(status, error.code, error.message);
  }
  // The rate limiter's refusal is a GraphQL error that carries its HTTP status.
  const http = (error as { extensions?: { code?: string; http?: { status?: number; headers?: Record<string, string> } } })?.extensions;
  if (http?.http?.status) return new HttpProblem(http.http.status, http.code ?? "ERROR", (error as Error).message, http.http.headers);
  return new HttpProblem(500, "INTERNAL_SERVER_ERROR", `something went wrong on our side (request id ${requestId}); try again, and if it keeps failing, give the operators this request id`);
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...headers }).end(`${JSON.stringify(body, null, 1)}\n`);
}

import { GraphQLError } from "graphql";
import { importFormatEnum, importStatusEnum } from "../db/schema.js";
import {
  IMPORT_PROGRESS_CHANNEL,
  UUID,
  importNotFound,
  importVisibleSql,
  subscribeToImport,
  type ImportProgressEvent,
} from "../domain/imports/progress.js";
import { checkUploader, finishUpload, importIdempotencyKey, importUrls, stageUpload } from "../domain/imports/upload.js";
import { builder } from "./builder.js";

const NOT_A_FILE =
  "a File is sent as a part of a GraphQL multipart request (multipart/form-data with the parts operations, map and the file), tied to a variable; it cannot be written in the query or given as JSON";

builder.scalarType("File", {
  description:
    "A file sent with the request as a GraphQL multipart request (https://github.com/jaydenseric/graphql-multipart-request-spec): the operation in the part `operations`, the file in its own part, tied to the variable by `map`.",
  serialize: () => {
    throw new GraphQLError("File is an input type only");
  },
  parseValue: (value) => {
    // yoga's File (the platform's, or @whatwg-node's ponyfill: not always an instance of the global class).
    const file = value as Partial<File> | null;
    if (file && typeof file === "object" && typeof file.stream === "function" && typeof file.name === "string") return value as File;
    throw new GraphQLError(NOT_A_FILE);
  },
  parseLiteral: () => {
    throw new GraphQLError(NOT_A_FILE);
  },
});

const ImportStatusEnum = builder.enumType("ImportStatus", {
  description:
    "UPLOADING: the file is still arriving (never returned by importReportsCsv); QUEUED: waiting for a worker; RUNNING: its rows are being stored, batch by batch; DONE: every line was read (rowsRejected says how many were refused); FAILED: stopped, errorMessage says why and what to do.",
  values: importStatusEnum.enumValues,
});

const ImportFormatEnum = builder.enumType("ImportFormat", {
  description: "CSV: comma-separated text (UTF-8 with or without BOM, UTF-16 or GB18030, detected); XLSX: an Excel workbook, its first sheet. Told by content, not by file name.",
  values: importFormatEnum.enumValues,
});

/** Only reporters (their organization's imports) and admins: an import's lines hold report figures. */
const importRoles = { roles: ["ADMIN", "REPORTER"] as ("ADMIN" | "REPORTER")[] };

export const ImportJobRef = builder.drizzleNode("importTable", {
  name: "ImportJob",
  description:
    "An uploaded report file and its processing in the background: its rows go through the same checks as submitReports, as the uploader, in batches. Visible to the uploader's organization (its reporters) and to admins.",
  id: { column: (i) => i.id, description: "Global id of the import." },
  authScopes: (i) => ({ $all: { ...importRoles, $any: { admin: true, ...(i.organizationId ? { organizationMember: i.organizationId } : {}) } } }),
  fields: (t) => ({
    status: t.expose("status", { type: ImportStatusEnum, description: "Where the import stands." }),
    filename: t.exposeString("filename", { nullable: true, description: "The name the file was uploaded with (informative only: the content decides the format)." }),
    format: t.expose("format", { type: ImportFormatEnum, nullable: true, description: "CSV or XLSX, told from the content." }),
    encoding: t.exposeString("encoding", { nullable: true, description: "How a CSV file's text was decoded (utf-8, utf-16le, utf-16be, gb18030); null for workbooks." }),
    sizeBytes: t.exposeInt("sizeBytes", { description: "Size of the file in bytes." }),
    sha256: t.exposeString("sha256", {
      nullable: true,
      description: "SHA-256 of the content (hex). The same content uploaded again by the same organization returns this import instead of a new one.",
    }),
    rowsTotal: t.exposeInt("rowsTotal", { nullable: true, description: "Data lines in the file (rows and lines with errors); null until the worker has counted them." }),
    rowsDone: t.exposeInt("rowsDone", { description: "Lines processed so far: rowsAccepted + rowsRejected." }),
    rowsAccepted: t.exposeInt("rowsAccepted", { description: "Rows stored (new, corrected or unchanged reports)." }),
    rowsRejected: t.exposeInt("rowsRejected", { description: "Lines refused; each is listed, with its problems, at rejectedRowsUrl." }),
    progress: t.float({
      nullable: true,
      description: "rowsDone / rowsTotal, from 0 to 1; null until the lines are counted.",
      resolve: (i) => (i.rowsTotal ? Math.min(1, i.rowsDone / i.rowsTotal) : i.rowsTotal === 0 ? 1 : null),
    }),
    errorMessage: t.exposeString("errorMessage", { nullable: true, description: "For a FAILED import: what went wrong and what to do." }),
    rejectedRowsUrl: t.string({
      description:
        "Path (on this server) of the rejected lines as CSV: line, field, message, then the line's values; GET it with the same 'Authorization: Bearer <token>'.",
      resolve: (i) => importUrls(i.id).rejectedRowsUrl,
    }),
    organization: t.relation("organization", { nullable: true, description: "The organization whose sites the rows may report for (null for an admin without one)." }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When the file was uploaded." }),
    startedAt: t.expose("startedAt", { type: "DateTime", nullable: true, description: "When a worker started on it." }),
    finishedAt: t.expose("finishedAt", { type: "DateTime", nullable: true, description: "When it ended DONE or FAILED." }),
    updatedAt: t.expose("updatedAt", { type: "DateTime", description: "When its state last changed." }),
  }),
});

/** The import's uuid from its global id, or null when the id is of another type or malformed. */
const importIdOf = (id: { typename: string; id: string }) => (id.typename === "ImportJob" && UUID.test(id.id) ? id.id : null);

/** A file part as a stream of bytes, read as the resolver goes. */
async function* bytesOf(file: File): AsyncGenerator<Uint8Array, void, undefined> {
  const reader = file.stream().getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

builder.queryFields((t) => ({
  importJob: t.drizzleField({
    type: "importTable",
    nullable: true,
    description: "An import by its id, as importReportsCsv (or POST /imports) answered; null if it does not exist or is not visible to you.",
    authScopes: importRoles,
    args: { id: t.arg.globalID({ required: true, description: "The import's global id." }) },
    resolve: (query, _root, args, ctx) => {
      const id = importIdOf(args.id);
      if (!id) return null;
      return ctx.db.query.importTable.findFirst(
        query({ where: { id, status: { ne: "UPLOADING" }, RAW: (i) => importVisibleSql(ctx.viewer, i.organizationId) } }),
      );
    },
  }),
}));

builder.mutationFields((t) => ({
  importReportsCsv: t.drizzleField({
    type: "importTable",
    description:
      "Upload a report file, CSV (header row = ReportInput's field names; UTF-8 with or without BOM, UTF-16 or GB18030) or an Excel .xlsx workbook laid out the same way, as a GraphQL multipart request. It is stored and processed in the background: follow it with importJob or the importProgress subscription. The same content uploaded again by your organization returns the same import. Large files are better sent to POST /imports (curl -F file=@reports.csv), which never holds them in memory.",
    authScopes: importRoles,
    args: {
      file: t.arg({ type: "File", required: true, description: "The file." }),
      idempotencyKey: t.arg.string({ description: "Any unique string per file (a UUID); a retry with the same key and file returns the same import." }),
    },
    resolve: async (query, _root, args, ctx) => {
      const viewer = checkUploader(ctx.viewer);
      // Refused before the file is stored.
      importIdempotencyKey(args.idempotencyKey);
      const staged = await stageUpload(ctx.db, viewer, bytesOf(args.file), { filename: args.file.name, limitBytes: ctx.config.UPLOAD_LIMIT_BYTES });
      const { import: row } = await finishUpload(ctx.db, ctx.actor, staged, { idempotencyKey: args.idempotencyKey });
      return (await ctx.db.query.importTable.findFirst(query({ where: { id: row.id } })))!;
    },
  }),
}));

builder.subscriptionFields((t) => ({
  importProgress: t.field({
    type: ImportJobRef,
    description:
      "An import's state now, then after every stored batch, until it is DONE or FAILED (the last event); visible to the uploader's organization and to admins. Over server-sent events: POST /graphql with 'Accept: text/event-stream'.",
    authScopes: importRoles,
    args: { id: t.arg.globalID({ required: true, description: "The import's global id." }) },
    subscribe: async (_root, args, ctx) => {
      if (!ctx.live) {
        throw new GraphQLError("live progress is not served by this process; poll importJob(id) instead", { extensions: { code: "SERVICE_UNAVAILABLE" } });
      }
      const id = importIdOf(args.id);
      if (!id) throw importNotFound(args.id.id);
      return subscribeToImport(ctx.db, ctx.live.channel<ImportProgressEvent>(IMPORT_PROGRESS_CHANNEL), ctx.viewer!, id);
    },
    resolve: (row) => row,
  }),
}));

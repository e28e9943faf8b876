// Report files, as issue 8 judges them: uploaded with curl -F to POST /imports or as a GraphQL
// multipart request, stored in Postgres in pieces, processed by the imports.process job on a real
// BullMQ worker (through the outbox relay), progress watched over SSE, rejected lines downloaded as
// CSV with their line numbers; the same content again is the same import; GB18030 and .xlsx files
// are read right; bad files are refused with a message and leave nothing behind; a run stopped
// half-way resumes after its last stored batch without storing a batch twice.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { parse } from "csv-parse/sync";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JOBS } from "../jobs/definitions.js";
import { processors } from "../jobs/processors/index.js";
import { startWorker, type RunningWorker } from "../jobs/worker.js";
import { loadConfig } from "../src/config.js";
import { createLiveAlerts, type LiveAlerts } from "../src/domain/alerts/live.js";
import { upsertProduct } from "../src/domain/catalog.js";
import { processImport } from "../src/domain/imports/process.js";
import { dateOfDay, dayNumber } from "../src/domain/reports/validate.js";
import { createHttpServer } from "../src/http/server.js";
import { createLogger } from "../src/logger.js";
import { subscribeSse } from "./helpers/channels.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { TEST_REDIS_URL } from "./helpers/env.js";
import { makeUser, seedWorld, setupActor, type TestUser } from "./helpers/fixtures.js";
import { clearRedisPrefix } from "./helpers/redis.js";

const prefix = `{test-imports-${randomBytes(4).toString("hex")}}`;
const UPLOAD_LIMIT = 256 * 1024;
let t: TestDatabase;
let live: LiveAlerts;
let server: Server;
let port: number;
let base: string;
let worker: RunningWorker;
let maker: TestUser;
let supplier: TestUser;
let planner: TestUser;
let admin: TestUser;

const today = dayNumber(new Date().toISOString().slice(0, 10));
const day = (daysAgo: number) => dateOfDay(today - daysAgo);
const HEADER = "siteCode,productCode,date,unit,onHand,consumed";
const PRODUCTS = ["MASK-N95", "MASK-SURGICAL", "MASK-KN95"];
/** `n` good lines of the manufacturer's plant, days `from`.. ago, three products a day. */
const goodLines = (n: number, from: number) =>
  Array.from({ length: n }, (_, i) => `HZ-MASK-1,${PRODUCTS[i % 3]},${day(from + Math.floor(i / 3))},,${1000 + i},${i % 7}`);

beforeAll(async () => {
  t = await createTestDatabase();
  const world = await seedWorld(t.db);
  maker = await makeUser(t.db, "REPORTER", { organizationId: world.maker.id });
  supplier = await makeUser(t.db, "REPORTER", { organizationId: world.supplier.id });
  planner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330000" });
  admin = await makeUser(t.db, "ADMIN");
  // 箱 (a box, as Chinese files write it): a unit the upload must read back from GB18030 and .xlsx.
  await upsertProduct(t.db, setupActor, {
    code: "MASK-N95", name: "N95 respirator", category: "MASK", baseUnit: "piece",
    units: [{ name: "box", factor: 20 }, { name: "carton", factor: 480 }, { name: "箱", factor: 10 }],
  });
  const config = loadConfig({ NODE_ENV: "test", LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent", QUEUE_PREFIX: prefix, UPLOAD_LIMIT_BYTES: String(UPLOAD_LIMIT) });
  const logger = createLogger(config);
  live = createLiveAlerts({ url: TEST_REDIS_URL, prefix, logger });
  server = createHttpServer({ config, db: t.db, logger, live, ready: async () => {} });
  port = await new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
  base = `http://127.0.0.1:${port}`;
  // Only the import job runs: what the stored reports set off (forecasts, alerts) is other files' business.
  worker = await startWorker({
    config, db: t.db, logger, connection: { url: TEST_REDIS_URL, maxRetriesPerRequest: null }, listen: t.listen,
    jobs: { "imports.process": JOBS["imports.process"] },
    processors: { "imports.process": processors["imports.process"] },
  });
});

afterAll(async () => {
  await worker?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await live?.close();
  await clearRedisPrefix(TEST_REDIS_URL, prefix);
  await t?.drop();
});

const rows = <T extends Record<string, unknown>>(query: ReturnType<typeof sql>) => t.db.execute<T>(query, "objects") as Promise<T[]>;
const one = async <T extends Record<string, unknown>>(query: ReturnType<typeof sql>) => (await rows<T>(query))[0]!;
const uuidOf = (globalId: string) => Buffer.from(globalId, "base64").toString("utf8").replace(/^ImportJob:/, "");

/** POST /imports as curl -F sends it. */
async function upload(token: string | null, content: string | Buffer, filename = "reports.csv", fields: Record<string, string> = {}) {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  form.append("file", new Blob([typeof content === "string" ? content : new Uint8Array(content)]), filename);
  const response = await fetch(`${base}/imports`, { method: "POST", headers: token ? { authorization: `Bearer ${token}` } : {}, body: form });
  return { status: response.status, body: (await response.json()) as any };
}

/** importReportsCsv as a GraphQL multipart request. */
async function uploadGraphQL(token: string, content: string | Buffer, filename: string, idempotencyKey?: string) {
  const form = new FormData();
  form.append("operations", JSON.stringify({
    query: "mutation($f: File!, $k: String) { importReportsCsv(file: $f, idempotencyKey: $k) { id status sha256 format encoding filename } }",
    variables: { f: null, k: idempotencyKey ?? null },
  }));
  form.append("map", JSON.stringify({ 0: ["variables.f"] }));
  form.append("0", new Blob([typeof content === "string" ? content : new Uint8Array(content)]), filename);
  const response = await fetch(`${base}/graphql`, { method: "POST", headers: { authorization: `Bearer ${token}` }, body: form });
  return (await response.json()) as { data?: any; errors?: { message: string; extensions?: { code?: string } }[] };
}

async function gql(token: string, query: string, variables?: Record<string, unknown>) {
  const response = await fetch(`${base}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as { data?: any; errors?: { message: string }[] };
}

const PROGRESS = "status rowsTotal rowsDone rowsAccepted rowsRejected progress errorMessage rejectedRowsUrl";

/** Every state importProgress sends, up to its end (DONE or FAILED, then the stream completes). */
async function watch(token: string, globalId: string, started?: () => Promise<unknown>) {
  const stream = await subscribeSse(port, token, `subscription { importProgress(id: "${globalId}") { ${PROGRESS} } }`);
  await started?.();
  const states: any[] = [];
  try {
    for (;;) {
      const event = await stream.next();
      if (event.event === "complete") return states;
      if (event.data?.errors) throw new Error(JSON.stringify(event.data.errors));
      states.push(event.data.data.importProgress);
    }
  } finally {
    stream.close();
  }
}

async function rejectedCsv(token: string, path: string) {
  const response = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
  const bytes = Buffer.from(await response.arrayBuffer());
  const text = bytes.toString("utf8");
  return { status: response.status, type: response.headers.get("content-type"), text, records: response.ok ? (parse(text, { bom: true, columns: true }) as Record<string, string>[]) : [] };
}

describe("a CSV file uploaded with curl -F", () => {
  it("is queued at once, processed in batches with progress pushed over SSE, and its rejected lines are downloadable", async () => {
    const queue = worker.queues.get("imports")!;
    // Held until the subscriber listens, so the stream shows the whole run from QUEUED to DONE.
    await queue.pause();
    const lines = [
      HEADER,
      ...goodLines(1500, 400),
      `HZ-MASK-1,MASK-N95,${day(10)},,-5,1`, // line 1502: negative
      `NJ-NW-1,MASK-N95,${day(10)},,7,1`, // line 1503: another organization's site
      `HZ-MASK-1,MASK-N95,${day(11)},,"1,5",1`, // line 1504: a comma in a number (the reader refuses it)
      `HZ-MASK-1,NO-SUCH-PRODUCT,${day(10)},,7,1`, // line 1505: unknown product
    ];
    const { status, body } = await upload(maker.token, `\uFEFF${lines.join("\r\n")}\r\n`, "week 12.csv");
    expect(status).toBe(202);
    expect(body).toMatchObject({ status: "QUEUED", format: "CSV", encoding: "utf-8", filename: "week 12.csv", existing: false, rowsDone: 0 });
    expect(body.sha256).toMatch(/^[0-9a-f]{64}$/);

    const states = await watch(maker.token, body.id, () => queue.resume());
    expect(states[0]).toMatchObject({ status: "QUEUED", rowsDone: 0 });
    expect(states.some((s) => s.status === "RUNNING")).toBe(true);
    const done = states.at(-1);
    expect(done).toMatchObject({ status: "DONE", rowsTotal: 1504, rowsDone: 1504, rowsAccepted: 1500, rowsRejected: 4, progress: 1, errorMessage: null });
    // Progress only moves forward, and every state adds up.
    for (let i = 1; i < states.length; i++) expect(states[i].rowsDone).toBeGreaterThanOrEqual(states[i - 1].rowsDone);
    for (const s of states) expect(s.rowsDone).toBe(s.rowsAccepted + s.rowsRejected);

    const { n } = await one<{ n: number }>(sql`select count(*)::int as n from report r join site s on s.id = r.site_id where s.code = 'HZ-MASK-1' and r.date between ${day(899)} and ${day(400)}`);
    expect(n).toBe(1500);
    // Through the write path, as the uploader: one audit row per batch, with the user and token of the upload.
    const audit = await rows<{ action: string; actor_user_id: string; actor_token_id: string }>(
      sql`select action, actor_user_id::text, actor_token_id::text from audit_log where request_id = ${`import-${body.importId}`} order by id`,
    );
    expect(audit.map((a) => a.action)).toEqual(["reports.submit (import)", "reports.submit (import)"]);
    expect(audit.every((a) => a.actor_user_id === maker.viewer.userId && a.actor_token_id === maker.viewer.tokenId)).toBe(true);

    const csv = await rejectedCsv(maker.token, done.rejectedRowsUrl);
    expect(csv.status).toBe(200);
    expect(csv.type).toMatch(/^text\/csv/);
    expect(csv.text.startsWith("\uFEFFline,field,message,siteCode,productCode,date,unit,onHand,")).toBe(true);
    expect(csv.records.map((r) => [r.line, r.field])).toEqual([["1502", "onHand"], ["1503", "siteCode"], ["1504", "onHand"], ["1505", "productCode"]]);
    expect(csv.records[0]!.message).toMatch(/^line 1502: onHand must be >= 0, got -5/);
    expect(csv.records[1]).toMatchObject({ siteCode: "NJ-NW-1", productCode: "MASK-N95", date: day(10), onHand: "7" });
    expect(csv.records[1]!.message).toMatch(/^line 1503: /);
    expect(csv.records[2]!.message).toMatch(/^line 1504: onHand must be a number written without thousands separators/);
    expect(csv.records[3]).toMatchObject({ siteCode: "HZ-MASK-1", productCode: "NO-SUCH-PRODUCT" });

    // The same state over GET /imports/<id>.
    const state = await fetch(`${base}/imports/${body.importId}`, { headers: { authorization: `Bearer ${maker.token}` } });
    expect(await state.json()).toMatchObject({ status: "DONE", rowsAccepted: 1500, rowsRejected: 4 });
  });
});

describe("the same content again, and idempotency keys", () => {
  it("returns the existing import whatever the file name, over GraphQL multipart and POST /imports alike", async () => {
    const content = `${HEADER}\n${goodLines(6, 2000).join("\n")}\n`;
    const first = await uploadGraphQL(maker.token, content, "monday.csv", "erp-export-1");
    expect(first.errors).toBeUndefined();
    expect(first.data.importReportsCsv).toMatchObject({ status: "QUEUED", format: "CSV", filename: "monday.csv" });
    const id = first.data.importReportsCsv.id;
    const states = await watch(maker.token, id);
    expect(states.at(-1)).toMatchObject({ status: "DONE", rowsAccepted: 6, rowsRejected: 0 });

    const again = await upload(maker.token, content, "renamed copy.csv");
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ id, existing: true, status: "DONE", filename: "monday.csv" });
    // A colleague of the same organization uploading it gets the same import too; the same key with the same file as well.
    const colleague = await makeUser(t.db, "REPORTER", { organizationId: maker.viewer.organizationId! });
    expect((await upload(colleague.token, content, "x.csv")).body.id).toBe(id);
    expect((await uploadGraphQL(maker.token, content, "y.csv", "erp-export-1")).data.importReportsCsv.id).toBe(id);

    const { imports, chunks } = await one<{ imports: number; chunks: number }>(
      sql`select (select count(*)::int from import where sha256 = ${first.data.importReportsCsv.sha256}) as imports,
                 (select count(*)::int from import_chunk c join import i on i.id = c.import_id where i.sha256 = ${first.data.importReportsCsv.sha256}) as chunks`,
    );
    expect({ imports, chunks }).toEqual({ imports: 1, chunks: 1 });

    // The key with another file is refused, and that file is not kept.
    const other = await uploadGraphQL(maker.token, `${content}HZ-MASK-1,MASK-N95,${day(3)},,1,1\n`, "z.csv", "erp-export-1");
    expect(other.errors?.[0]).toMatchObject({ extensions: { code: "IDEMPOTENCY_KEY_REUSED" } });
    expect(other.errors?.[0]?.message).toMatch(/was already used for another file .*use a new key for a new file/);
    // Another organization uploading the same bytes gets an import of its own (its rows are refused: not its site).
    const theirs = await upload(supplier.token, content, "monday.csv");
    expect(theirs.status).toBe(202);
    expect(theirs.body.id).not.toBe(id);
    expect((await watch(supplier.token, theirs.body.id)).at(-1)).toMatchObject({ status: "DONE", rowsAccepted: 0, rowsRejected: 6 });
    const { waiting } = await one<{ waiting: number }>(sql`select count(*)::int as waiting from import where status = 'UPLOADING'`);
    expect(waiting).toBe(0);
  });
});

describe("encodings and workbooks", () => {
  it("reads a GB18030 file from older Chinese office software", async () => {
    const gb = (hex: string) => Buffer.from(hex, "hex");
    const box = gb("cfe4"); // 箱
    const hangzhou = gb("babcd6dd2d31"); // 杭州-1
    expect(new TextDecoder("gb18030").decode(Buffer.concat([box, hangzhou]))).toBe("箱杭州-1");
    const file = Buffer.concat([
      Buffer.from(`siteCode,productCode,date,unit,onHand\r\nHZ-MASK-1,MASK-N95,${day(2100)},`), box, Buffer.from(",12\r\n"),
      hangzhou, Buffer.from(`,MASK-N95,${day(2100)},,5\r\n`),
    ]);
    const { status, body } = await upload(maker.token, file, "gbk.csv");
    expect(status).toBe(202);
    expect(body.encoding).toBe("gb18030");
    expect((await watch(maker.token, body.id)).at(-1)).toMatchObject({ status: "DONE", rowsAccepted: 1, rowsRejected: 1 });
    const [report] = await rows<{ on_hand: number }>(sql`select r.on_hand from report r join product p on p.id = r.product_id where p.code = 'MASK-N95' and r.date = ${day(2100)}`);
    expect(report!.on_hand).toBe(120); // 12 箱 of 10
    const csv = await rejectedCsv(maker.token, body.rejectedRowsUrl);
    expect(csv.records).toMatchObject([{ line: "3", field: "siteCode", siteCode: "杭州-1" }]);
  });

  it("tells UTF-8 from the first 64 KiB even when a character straddles their end", async () => {
    const line = (i: number, pad: number) => `HZ-MASK-1,MASK-N95,${day(3000 + i)},${" ".repeat(pad)}箱,1\r\n`;
    const lines = ["siteCode,productCode,date,unit,onHand\r\n"];
    let size = Buffer.byteLength(lines[0]!);
    while (size + Buffer.byteLength(line(lines.length, 1000)) < 65_536 - 100) size += Buffer.byteLength(lines[lines.length] = line(lines.length, 1000));
    // The next line's 箱 (three bytes in UTF-8) starts one byte before the 64 KiB mark.
    const pad = 65_535 - size - Buffer.byteLength(line(lines.length, 0).split("箱")[0]!);
    lines.push(line(lines.length, pad), line(lines.length + 1, 10));
    const file = Buffer.from(lines.join(""));
    expect(file.subarray(65_535, 65_538).toString()).toBe("箱");
    const { status, body } = await upload(maker.token, file, "long.csv");
    expect(status).toBe(202);
    expect(body.encoding).toBe("utf-8");
    expect((await watch(maker.token, body.id)).at(-1)).toMatchObject({ status: "DONE", rowsAccepted: lines.length - 1, rowsRejected: 0 });
  });

  it("reads an .xlsx workbook (told by its content, not its name) with the sheet's row numbers as lines", async () => {
    const file = readFileSync(new URL("./fixtures/imports/reports.xlsx", import.meta.url));
    const { status, body } = await upload(maker.token, file, "reports.csv");
    expect(status).toBe(202);
    expect(body).toMatchObject({ format: "XLSX", encoding: null });
    expect((await watch(maker.token, body.id)).at(-1)).toMatchObject({ status: "DONE", rowsTotal: 5, rowsAccepted: 2, rowsRejected: 3 });
    const stored = await rows<{ code: string; date: string; on_hand: number; consumed: number | null }>(
      sql`select p.code, r.date::text, r.on_hand, r.consumed from report r join product p on p.id = r.product_id where r.date between '2026-11-01' and '2026-11-04' order by r.date`,
    );
    expect(stored).toEqual([
      { code: "MASK-N95", date: "2026-11-01", on_hand: 120, consumed: 30 },
      { code: "GOGGLES", date: "2026-11-04", on_hand: 40, consumed: 4 },
    ]);
    const csv = await rejectedCsv(maker.token, body.rejectedRowsUrl);
    expect(csv.records.map((r) => [r.line, r.field])).toEqual([["4", "onHand"], ["5", "siteCode"], ["6", "onHand"]]);
    expect(csv.records[2]).toMatchObject({ siteCode: "HZ-MASK-1", productCode: "GOGGLES", date: "2026-11-03", onHand: "abc" });
  });
});

describe("bad uploads", () => {
  const count = async () => (await rows<{ n: number }>(sql`select (select count(*) from import) + (select count(*) from import_chunk) as n`))[0]!.n;

  it("are refused with a message that says what to do, and leave nothing behind", async () => {
    const before = await count();
    const refused = async (response: Promise<{ status: number; body: any }>, status: number, message: RegExp) => {
      const r = await response;
      expect(r.status, JSON.stringify(r.body)).toBe(status);
      expect(r.body.errors[0].message).toMatch(message);
    };
    await refused(upload(null, "x"), 401, /not signed in: send your API token as 'Authorization: Bearer <token>'/);
    await refused(upload(planner.token, `${HEADER}\n`), 403, /only REPORTER and ADMIN users may upload report files/);
    await refused(upload(maker.token, ""), 400, /^the file is empty; upload a CSV file whose first line is the header/);
    await refused(upload(maker.token, `${HEADER}\r\n\r\n`), 400, /holds a header but no report rows; add one line per report/);
    await refused(upload(maker.token, `site,product,day\nHZ-MASK-1,MASK-N95,${day(1)}\n`), 400, /^line 1: the header is not valid: unknown columns "site", "product", "day".*nothing was stored/);
    await refused(upload(maker.token, Buffer.from("%PDF-1.7\n%\u00e2\u00e3\n1 0 obj", "latin1"), "reports.csv"), 400, /^the file is a PDF document, not a CSV file or an Excel \.xlsx workbook; save the report as/);
    await refused(upload(maker.token, Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1])), 400, /old Excel \.xls workbook/);
    await refused(upload(maker.token, `${HEADER}\n${"x".repeat(UPLOAD_LIMIT)}`), 413, /larger than the upload limit of 256 KiB \(UPLOAD_LIMIT_BYTES\); split it/);
    await refused(upload(maker.token, `${HEADER}\n`, "a.csv", { idempotencyKey: "x".repeat(201) }), 400, /idempotencyKey is longer than 200 characters/);

    // No file part, and the file sent as text instead of a file.
    const noFile = new FormData();
    noFile.append("idempotencyKey", "k-1");
    const r1 = await fetch(`${base}/imports`, { method: "POST", headers: { authorization: `Bearer ${maker.token}` }, body: noFile });
    expect(r1.status).toBe(400);
    expect(((await r1.json()) as any).errors[0].message).toMatch(/the request holds no file: send the CSV or \.xlsx file in a form field named file, e\.g\. curl -H "Authorization: Bearer \$TOKEN" -F file=@reports\.csv/);
    const asText = new FormData();
    asText.append("file", HEADER);
    const r2 = await fetch(`${base}/imports`, { method: "POST", headers: { authorization: `Bearer ${maker.token}` }, body: asText });
    expect(((await r2.json()) as any).errors[0].message).toMatch(/the field file holds text, not a file/);
    const json = await fetch(`${base}/imports`, { method: "POST", headers: { authorization: `Bearer ${maker.token}`, "content-type": "application/json" }, body: "{}" });
    expect(json.status).toBe(415);

    // Over the limit without a Content-Length: refused while it streams in, its stored pieces removed.
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(encoder.encode(`--b\r\ncontent-disposition: form-data; name="file"; filename="big.csv"\r\ncontent-type: text/csv\r\n\r\n${HEADER}\n`));
        for (let i = 0; i < 20; i++) controller.enqueue(encoder.encode(`${goodLines(400, 1000).join("\n")}\n`));
        controller.enqueue(encoder.encode("\r\n--b--\r\n"));
        controller.close();
      },
    });
    const streamed = await fetch(`${base}/imports`, {
      method: "POST",
      headers: { authorization: `Bearer ${maker.token}`, "content-type": "multipart/form-data; boundary=b" },
      body,
      duplex: "half",
    } as RequestInit);
    expect(streamed.status).toBe(413);
    expect(((await streamed.json()) as any).errors[0].message).toMatch(/larger than the upload limit/);

    // Over GraphQL: no file, a file over the limit.
    const noVariable = await gql(maker.token, "mutation { importReportsCsv(file: null) { id } }");
    expect(noVariable.errors?.[0]?.message).toMatch(/File!/);
    for (const wrong of [await gql(maker.token, 'mutation { importReportsCsv(file: "reports.csv") { id } }'), await gql(maker.token, "mutation($f: File!) { importReportsCsv(file: $f) { id } }", { f: "reports.csv" })]) {
      expect(wrong.errors?.[0]?.message).toMatch(/a File is sent as a part of a GraphQL multipart request \(multipart\/form-data with the parts operations, map and the file\)/);
    }
    const big = await uploadGraphQL(maker.token, `${HEADER}\n${"x".repeat(UPLOAD_LIMIT)}`, "big.csv");
    expect(big.errors?.[0]).toMatchObject({ extensions: { code: "PAYLOAD_TOO_LARGE" } });

    expect(await count()).toBe(before);
  });

  it("fail in the background, storing nothing, for problems found further down the file", async () => {
    const zip = Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), Buffer.from("not really a workbook")]);
    const notAWorkbook = await upload(maker.token, zip, "book.xlsx");
    expect(notAWorkbook.body).toMatchObject({ status: "QUEUED", format: "XLSX" });
    const failed = (await watch(maker.token, notAWorkbook.body.id)).at(-1);
    expect(failed).toMatchObject({ status: "FAILED", rowsDone: 0 });
    expect(failed.errorMessage).toMatch(/^the file is a zip archive but not an Excel workbook that can be read .*save the report as an Excel workbook \(\.xlsx\) or as "CSV UTF-8/);

    // An unclosed quote on line 4: lines 2 and 3 are fine, yet nothing is stored.
    const quote = await upload(maker.token, `${HEADER}\n${goodLines(2, 2200).join("\n")}\nHZ-MASK-1,"MASK-N95,${day(2205)},,1,1\n${goodLines(3, 2210).join("\n")}\n`);
    const stopped = (await watch(maker.token, quote.body.id)).at(-1);
    expect(stopped).toMatchObject({ status: "FAILED", rowsAccepted: 0 });
    expect(stopped.errorMessage).toMatch(/^line 4: a quoted value starting on this line is never closed.*; nothing was stored, correct the file and upload it again$/);
    const { n } = await one<{ n: number }>(sql`select count(*)::int as n from report where date between ${day(2212)} and ${day(2200)}`);
    expect(n).toBe(0);
  });
});

describe("who sees an import", () => {
  it("is the uploader's organization and admins, over GraphQL, SSE and HTTP", async () => {
    const { body } = await upload(maker.token, `${HEADER}\nNJ-NW-1,MASK-N95,${day(2300)},,1,1\n`, "scope.csv");
    await watch(maker.token, body.id);
    const query = "query($id: ID!) { importJob(id: $id) { id status rowsRejected organization { name } } }";
    expect((await gql(maker.token, query, { id: body.id })).data.importJob).toMatchObject({ id: body.id, status: "DONE", rowsRejected: 1 });
    expect((await gql(admin.token, query, { id: body.id })).data.importJob).toMatchObject({ id: body.id });
    // Another organization: as if it did not exist; a planner: not for them at all.
    const other = await gql(supplier.token, query, { id: body.id });
    expect(other.errors).toBeUndefined();
    expect(other.data.importJob).toBeNull();
    expect((await gql(planner.token, query, { id: body.id })).errors?.[0]?.message).toMatch(/not allowed/);
    const stream = await subscribeSse(port, supplier.token, `subscription { importProgress(id: "${body.id}") { status } }`);
    const first = await stream.next();
    stream.close();
    expect(first.data.errors[0].message).toMatch(/not found, or not visible to you/);
    for (const path of [`/imports/${body.importId}`, `/imports/${body.importId}/rejected.csv`]) {
      const r = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${supplier.token}` } });
      expect(r.status, path).toBe(404);
      expect(await r.text()).not.toMatch(/NJ-NW-1/);
    }
    expect((await fetch(`${base}/imports/${body.importId}/rejected.csv`)).status).toBe(401);
  });
});

describe("a run stopped half-way", () => {
  it("resumes after its last stored batch, and a batch stored but not yet counted is not stored again", async () => {
    const queue = worker.queues.get("imports")!;
    await queue.pause();
    const { body } = await upload(maker.token, `${HEADER}\n${goodLines(1200, 1200).join("\n")}\nHZ-MASK-1,MASK-N95,${day(1100)},,-1,1\n`, "long.csv");
    const id = body.importId as string;
    // Stopped after its first batch, as a worker shutting down does.
    let batches = 0;
    await expect(processImport(t.db, id, { backfillDays: 7, shouldStop: () => ++batches >= 1 })).rejects.toThrow(/resumes after batch 1/);
    const [partial] = await rows<{ status: string; batches_done: number; rows_accepted: number }>(sql`select status, batches_done, rows_accepted from import where id = ${id}`);
    expect(partial).toEqual({ status: "RUNNING", batches_done: 1, rows_accepted: 1000 });
    // As if the run had died after storing batch 1 and before counting it.
    await t.db.execute(sql`update import set batches_done = 0, rows_done = 0, rows_accepted = 0, rows_rejected = 0 where id = ${id}`);

    const states = await watch(maker.token, body.id, () => queue.resume());
    expect(states.at(-1)).toMatchObject({ status: "DONE", rowsTotal: 1201, rowsAccepted: 1200, rowsRejected: 1 });
    const [stored] = await rows<{ n: number; revised: number }>(
      sql`select count(*)::int as n, count(*) filter (where revision > 1)::int as revised from report where date between ${day(1599)} and ${day(1200)}`,
    );
    expect(stored).toEqual({ n: 1200, revised: 0 });
    const audit = await rows<{ n: number }>(sql`select count(*)::int as n from audit_log where request_id = ${`import-${id}`}`);
    expect(audit[0]!.n).toBe(2);
    const { rejected } = await one<{ rejected: number }>(sql`select count(*)::int as rejected from import_rejected_row where import_id = ${id}`);
    expect(rejected).toBe(1);
    // Run again once DONE: nothing happens.
    expect(await processImport(t.db, id, { backfillDays: 7 })).toEqual({ status: "DONE" });
    expect(uuidOf(body.id)).toBe(id);
  });
});

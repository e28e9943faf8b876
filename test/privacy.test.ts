// Secrets and personal data, as issue 6 judges it: a whole scenario runs through the real HTTP
// server and a real worker, logging at trace level into a captured stream: organizations with
// contact details, users with e-mail addresses, tokens, reports, errors of every kind (bad
// tokens, refused input, unexpected database errors that quote their parameters), a webhook, an
// alert e-mailed to its audience (one address refused by the mail server) and the jobs behind it.
// Then no token, webhook secret, e-mail address, phone number or contact name may appear in any
// log line, outbox payload or BullMQ job in Redis; tokens are stored only hashed and webhook
// secrets only encrypted; job payloads are ids, numbers, enums, dates and booleans by construction.
import { createHash, randomBytes } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { QueueEvents } from "bullmq";
import { sql } from "drizzle-orm";
import { Redis } from "ioredis";
import { SMTPServer } from "smtp-server";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { z } from "zod";
import { JOBS } from "../jobs/definitions.js";
import { startWorker, type RunningWorker } from "../jobs/worker.js";
import { loadConfig } from "../src/config.js";
import { createLiveAlerts, type LiveAlerts } from "../src/domain/alerts/live.js";
import { decryptSecret } from "../src/domain/alerts/secrets.js";
import { createHttpServer } from "../src/http/server.js";
import { createLogger } from "../src/logger.js";
import { startReceiver, type Receiver } from "./helpers/channels.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { TEST_REDIS_URL } from "./helpers/env.js";
import { makeUser, seedWorld } from "./helpers/fixtures.js";
import { clearRedisPrefix } from "./helpers/redis.js";

const prefix = `{test-privacy-${randomBytes(4).toString("hex")}}`;
const logLines: string[] = [];
let t: TestDatabase;
let server: Server;
let port: number;
let live: LiveAlerts;
let worker: RunningWorker;
let receiver: Receiver;
let smtp: SMTPServer;
let config: ReturnType<typeof loadConfig>;
const mails: { to: string[] }[] = [];

// The personal data and secrets of the scenario: none may leave the tables meant for it.
const contacts = [
  { name: "Zhang Wei", email: "zhang.wei@xihu-clinic.example", phone: "+86 571 8888 1234" },
  { name: "Liu Yang", email: "liu.yang@nonwoven-supply.example", phone: "13912345678" },
  { name: "Zhao Min", email: "zhao.min@broken-clinic.example", phone: "(0571) 8765-4321" },
];
const userEmails = { reporter: "li.na@xihu-clinic.example", planner: "chen.jie@planning.example", procurement: "wu.min@xihu-clinic.example" };
/** The mail server refuses this recipient, quoting the address in its answer. */
const refusedRecipient = userEmails.procurement;
const tokens: string[] = [];
const webhookSecrets: string[] = [];
/** What the database holds at the end: every user's e-mail and every organization's contact details. */
const stored = { emails: [] as string[], phones: [] as string[], names: [] as string[] };
const emails = (): string[] => [...new Set([...contacts.map((c) => c.email), ...Object.values(userEmails), ...stored.emails])];
const phones = (): string[] => [...new Set([...contacts.map((c) => c.phone), ...stored.phones])];
const contactNames = (): string[] => [...new Set([...contacts.map((c) => c.name), ...stored.names])];

async function gql(token: string | null, query: string, variables?: Record<string, unknown>, headers: Record<string, string> = {}) {
  const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body: JSON.stringify({ query, variables }),
  });
  return { status: response.status, ...((await response.json()) as { data?: any; errors?: { message: string; extensions?: { code?: string } }[] }) };
}
async function ok(token: string, query: string, variables?: Record<string, unknown>) {
  const r = await gql(token, query, variables);
  expect(r.errors, query).toBeUndefined();
  return r.data;
}
const rawId = (globalId: string) => Buffer.from(globalId, "base64").toString("utf8").replace(/^[^:]*:/, "");

async function startSmtpRefusing(address: string) {
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    onRcptTo(rcpt, _session, callback) {
      if (rcpt.address !== address) return callback();
      // What real servers answer: the refusal quotes the address.
      const error = Object.assign(new Error(`<${rcpt.address}>: Recipient address rejected: mailbox unavailable`), { responseCode: 550 });
      callback(error);
    },
    onData(stream, session, callback) {
      stream.resume();
      stream.on("end", () => {
        mails.push({ to: session.envelope.rcptTo.map((r) => r.address) });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `smtp://127.0.0.1:${(server.server.address() as AddressInfo).port}` };
}

beforeAll(async () => {
  t = await createTestDatabase();
  await seedWorld(t.db);
  const admin = await makeUser(t.db, "ADMIN");
  tokens.push(admin.token);
  const mailServer = await startSmtpRefusing(refusedRecipient);
  smtp = mailServer.server;
  config = loadConfig({ NODE_ENV: "test", LOG_LEVEL: "trace", QUEUE_PREFIX: prefix, SMTP_URL: mailServer.url, ALERT_DELIVERY_BACKOFF_MS: "50", ALERT_DELIVERY_ATTEMPTS: "2" });
  // Everything the service logs, as the lines it writes to stdout.
  const logger = createLogger(config, { write: (line: string) => void logLines.push(line) });
  live = createLiveAlerts({ url: TEST_REDIS_URL, prefix, logger });
  server = createHttpServer({ config, db: t.db, logger, live, ready: async () => {} });
  port = await new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
  worker = await startWorker({ config, db: t.db, logger, connection: { url: TEST_REDIS_URL, maxRetriesPerRequest: null }, publishAlert: live.publish, listen: t.listen });
  receiver = await startReceiver();

  // Organizations with contact details: inline in the document, and as variables.
  const [zhang, liu] = contacts as [(typeof contacts)[0], (typeof contacts)[0]];
  const clinic = await ok(
    admin.token,
    `mutation { createOrganization(input: { name: "Xihu Clinic", kind: HOSPITAL, contactName: "${zhang.name}", contactEmail: "${zhang.email}", contactPhone: "${zhang.phone}" }) { id } }`,
  );
  const clinicId = clinic.createOrganization.id;
  await ok(admin.token, "mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { id } }", {
    input: { name: "Nonwoven Supply", kind: "RAW_MATERIAL_SUPPLIER", contactName: liu.name, contactEmail: liu.email, contactPhone: liu.phone },
  });
  await ok(admin.token, `mutation { createSite(input: { organizationId: "${clinicId}", code: "XH-CLINIC-1", name: "Clinic ward", regionCode: "330106" }) { code } }`);

  // Users with e-mail addresses, and tokens for them.
  const reporter = await ok(admin.token, `mutation { createUser(input: { name: "Li Na", email: "${userEmails.reporter}", role: REPORTER, organizationId: "${clinicId}" }) { id } }`);
  const planner = await ok(admin.token, "mutation($input: CreateUserInput!) { createUser(input: $input) { id } }", {
    input: { name: "Chen Jie", email: userEmails.planner, role: "PLANNER", jurisdictionRegionCode: "330100" },
  });
  await ok(admin.token, "mutation($input: CreateUserInput!) { createUser(input: $input) { id } }", {
    input: { name: "Wu Min", email: userEmails.procurement, role: "PROCUREMENT", organizationId: clinicId },
  });
  const tokenFor = async (userId: string) => {
    const r = await ok(admin.token, "mutation($u: ID!) { createApiToken(input: { userId: $u, name: \"privacy\" }) { token apiToken { id } } }", { u: userId });
    tokens.push(r.createApiToken.token);
    return r.createApiToken as { token: string; apiToken: { id: string } };
  };
  const reporterToken = (await tokenFor(reporter.createUser.id)).token;
  const plannerToken = (await tokenFor(planner.createUser.id)).token;
  const spare = await tokenFor(reporter.createUser.id);

  // A webhook: its secret is shown once.
  const hook = await ok(plannerToken, "mutation($u: String!) { registerWebhook(url: $u) { secret } }", { u: receiver.url });
  receiver.secret = hook.registerWebhook.secret;
  webhookSecrets.push(hook.registerWebhook.secret);

  // Reports: good rows and refused ones, with an idempotency key.
  const day = (ago: number) => new Date(Date.now() - ago * 86_400_000).toISOString().slice(0, 10);
  const submitted = await ok(reporterToken, "mutation($r: [ReportInput!]!) { submitReports(reports: $r, idempotencyKey: \"privacy-1\") { accepted rejected { message } } }", {
    r: [
      { siteCode: "XH-CLINIC-1", productCode: "MASK-N95", date: day(2), onHand: 500, consumed: 40 },
      { siteCode: "XH-CLINIC-1", productCode: "MASK-N95", date: day(1), onHand: 460, consumed: 40 },
      { siteCode: "XH-CLINIC-1", productCode: "MASK-N95", date: day(3), onHand: -5 },
      { siteCode: "HZ-MASK-1", productCode: "MASK-N95", date: day(1), onHand: 5 },
    ],
  });
  expect(submitted.submitReports.accepted).toBe(2);

  // Errors of every kind.
  const unknownToken = `smt_${randomBytes(32).toString("base64url")}`;
  tokens.push(unknownToken);
  expect((await gql(unknownToken, "{ me { role } }")).status).toBe(401);
  expect((await gql(null, "{ me { role } }", undefined, { authorization: `Basic ${Buffer.from(`${zhang.email}:pw`).toString("base64")} ${zhang.email}` })).status).toBe(401);
  await ok(reporterToken, "mutation($id: ID!) { revokeApiToken(id: $id) { revokedAt } }", { id: spare.apiToken.id });
  expect((await gql(spare.token, "{ me { role } }")).status).toBe(401);
  const duplicate = await gql(admin.token, `mutation { createUser(input: { name: "Li Na", email: "${userEmails.reporter}", role: REPORTER, organizationId: "${clinicId}" }) { id } }`);
  expect(duplicate.errors?.[0]?.message).toMatch(/already exists/);
  const invalid = await gql(admin.token, "mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { id } }", {
    input: { name: "x", kind: "HOSPITAL", contactEmail: `${zhang.email} or ${liu.email}`, contactPhone: `${zhang.phone} ext. 5` },
  });
  expect(invalid.errors?.[0]?.extensions?.code).toBe("BAD_INPUT");
  const syntax = await gql(admin.token, `mutation { createUser(input: { name: "Li Na", email: "${userEmails.reporter}", role: REPORTER }) { id }`);
  expect(syntax.errors?.[0]?.message).toMatch(/Syntax Error/);
  const coercion = await gql(admin.token, "mutation($input: CreateUserInput!) { createUser(input: $input) { id } }", { input: { name: 5, email: userEmails.planner, phone: zhang.phone } });
  expect(coercion.errors?.length).toBeGreaterThan(0);
  // Unexpected errors: the database refuses the insert (a constraint the code does not know), and
  // the error quotes the query's parameters: the contact details and the e-mail address.
  await t.db.execute(sql`alter table organization add constraint privacy_probe check (name <> 'Probe Clinic') not valid`);
  await t.db.execute(sql`alter table app_user add constraint privacy_probe check (name <> 'Probe User') not valid`);
  const probe = contacts[2]!;
  const unexpected = await gql(admin.token, "mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { id } }", {
    input: { name: "Probe Clinic", kind: "HOSPITAL", contactName: probe.name, contactEmail: probe.email, contactPhone: probe.phone },
  });
  expect(unexpected.errors?.[0]?.extensions?.code).toBe("INTERNAL_SERVER_ERROR");
  const unexpectedUser = await gql(admin.token, `mutation { createUser(input: { name: "Probe User", email: "${probe.email}", role: ADMIN }) { id } }`);
  expect(unexpectedUser.errors?.[0]?.extensions?.code).toBe("INTERNAL_SERVER_ERROR");
  await t.db.execute(sql`alter table organization drop constraint privacy_probe; alter table app_user drop constraint privacy_probe`);

  // An alert for the clinic, resolved by the planner: the worker dispatches it to the live
  // subscription, the planner's webhook and every user's e-mail (one refused by the server).
  const [alert] = await t.db.execute<{ id: string }>(
    sql`insert into alert (kind, dedupe_key, severity, stage, peak_stage, region_id, organization_id, site_id, message, details)
        values ('STOCKOUT_IMMINENT', 'privacy', 'RED', 1, 1, (select id from region where code = '330106'), ${rawId(clinicId)},
                (select id from site where code = 'XH-CLINIC-1'), 'Xihu Clinic runs out of MASK-N95', '{}')
        returning id::text`,
    "objects",
  );
  await ok(plannerToken, "mutation($id: ID!) { resolveAlert(id: $id, note: \"restocked\") { status } }", { id: Buffer.from(`Alert:${alert!.id}`).toString("base64") });

  // The compliance check, asked for by hand (its schedule runs every quarter hour).
  const events = new QueueEvents("compliance", { connection: { url: TEST_REDIS_URL }, prefix });
  await events.waitUntilReady();
  try {
    const job = await worker.queues.get("compliance")!.add("compliance.check", {});
    await job.waitUntilFinished(events, 20_000);
  } finally {
    await events.close();
  }

  // Everything the scenario set off has run: webhook and mails delivered or failed for good,
  // the outbox relayed.
  await vi.waitFor(
    async () => {
      expect(receiver.received.filter((r) => r.verified)).toHaveLength(1);
      expect(mails.some((m) => m.to.includes(userEmails.planner))).toBe(true);
      const [pending] = await t.db.execute<{ n: number }>(
        sql`select (select count(*) from delivery where status = 'PENDING')::int + (select count(*) from outbox where processed_at is null)::int as n`,
        "objects",
      );
      expect(pending!.n).toBe(0);
    },
    { timeout: 20_000, interval: 50 },
  );
  const [refused] = await t.db.execute<{ status: string; last_error: string }>(
    sql`select d.status, d.last_error from delivery d join app_user u on u.id = d.user_id where u.email = ${refusedRecipient}`,
    "objects",
  );
  expect(refused).toMatchObject({ status: "FAILED", last_error: expect.stringMatching(/550/) });
  stored.emails = (await t.db.execute<{ email: string }>(sql`select email from app_user`, "objects")).map((u) => u.email);
  const orgs = await t.db.execute<{ email: string | null; phone: string | null; name: string | null }>(
    sql`select contact_email as email, contact_phone as phone, contact_name as name from organization`,
    "objects",
  );
  for (const o of orgs) {
    if (o.email) stored.emails.push(o.email);
    if (o.phone) stored.phones.push(o.phone);
    if (o.name) stored.names.push(o.name);
  }
}, 60_000);

afterAll(async () => {
  await worker?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await live?.close();
  await receiver?.close();
  await new Promise<void>((resolve) => (smtp ? smtp.close(() => resolve()) : resolve()));
  await clearRedisPrefix(TEST_REDIS_URL, prefix);
  await t?.drop();
});

/** Every needle, in the forms it may take: as given, lower-cased, and a phone number's digits alone. */
function needles(): string[] {
  const phoneForms = phones().flatMap((p) => [p, p.replace(/\D/g, ""), p.replace(/^\+86\s?|^\(0\d+\)\s?/, "")]);
  return [...tokens, ...webhookSecrets, ...webhookSecrets.map((s) => s.slice("whsec_".length)), ...emails(), ...emails().map((e) => e.toLowerCase()), ...phoneForms, ...contactNames()];
}
const found = (haystack: string) => needles().filter((n) => haystack.includes(n));

describe("logs", () => {
  it("were written, at trace level, through the paths that could leak (errors, rejected input, jobs)", () => {
    const parsed = logLines.map((l) => JSON.parse(l) as Record<string, any>);
    expect(parsed.length).toBeGreaterThan(20);
    expect(parsed.filter((l) => l.msg === "unexpected error while answering a request")).toHaveLength(2);
    expect(parsed.some((l) => l.level <= 20)).toBe(true);
    // The refused recipient: the mail server's answer quoted the address.
    expect(parsed.filter((l) => l.job === "alerts.deliverEmail" && l.msg === "job failed").map((l) => l.err)).toEqual([expect.stringMatching(/550 <\[address\]>/)]);
  });

  it("hold no token, webhook secret, e-mail address, phone number or contact name", () => {
    const leaks = logLines.flatMap((line) => found(line).map((needle) => ({ needle, line: line.slice(0, 400) })));
    expect(leaks).toEqual([]);
  });
});

describe("the logger", () => {
  it("masks tokens, secrets, e-mail addresses and phone numbers wherever they appear in a line, and leaves ids, dates and figures", () => {
    const lines: string[] = [];
    const logger = createLogger({ LOG_LEVEL: "trace" }, { write: (line: string) => void lines.push(line) });
    const token = `smt_${randomBytes(32).toString("base64url")}`;
    const secret = `whsec_${randomBytes(32).toString("base64")}`;
    const email = "Wang.Fang+alerts@Clinic-7.example.org";
    const phones = ["+86 571 8888 1234", "13912345678", "(0571) 8765-4321", "+8613912345678", "0571-88881234", "+1 (415) 555-0100"];
    logger.info(`sent with ${token} to ${email}, call ${phones.join(" or ")}`);
    logger.warn({ headers: { authorization: `Bearer ${token}` }, webhook: { secret }, nested: { deep: [{ note: `signed with ${secret}` }] } }, "request");
    logger.child({ recipient: email }).error(new Error(`550 <${email}> rejected; phone ${phones[0]}`));
    // A failed query that quotes its parameters (drizzle with paramsInErrors; postgres.js in debug mode).
    const failed = Object.assign(new Error(`Failed query: insert into organization values ($1, $2, $3)\nparams: Zhang Wei,${email},${phones[1]}`), {
      params: ["Zhang Wei", email, phones[1]],
    });
    logger.error({ err: failed }, "unexpected error while answering a request");
    logger.debug({ args: [{ query: `mutation { createUser(input: { email: "${email}" }) { id } }`, variables: { email, phone: phones[2] } }] }, "yoga");
    logger.info({ token: "not-even-our-format", contactName: "Zhang Wei", contactEmail: "x", contactPhone: "y" }, "fields");
    const text = lines.join("");
    for (const needle of [token, token.slice(4), secret, secret.slice(6), email, email.toLowerCase(), ...phones, "Zhang Wei", "not-even-our-format"]) {
      expect(text, needle).not.toContain(needle);
    }
    for (const mask of ["[token]", "[secret]", "[email]", "[phone]", "[redacted]"]) expect(text).toContain(mask);
    // Every line is still one JSON object.
    expect(lines.map((l) => typeof JSON.parse(l))).toEqual(lines.map(() => "object"));

    lines.length = 0;
    const kept = [
      "3f0c1b2e-9a4d-4c5e-8f6a-446655440000",
      // A UUID whose first group is all digits (about 1 in 125 request ids) is an id, not a phone.
      "38358003-fea3-4213-ae6a-cfb2a35040de",
      "15512927-1280-4fe1-89ed-1be6d2b34e7b",
      "2026-03-09",
      "2026-03-09T10:00:00.000Z",
      "forecast-recompute-3527544686",
      "repeat:compliance-check:1763772343123",
      "row 3: onHand must be >= 0, got -5",
      "quantity 1500000 in 330102",
      "http://127.0.0.1:4000/graphql",
    ];
    for (const k of kept) logger.info({ value: k }, k);
    expect(lines.map((l) => JSON.parse(l)).map((l) => [l.msg, l.value])).toEqual(kept.map((k) => [k, k]));
  });

  it("masks in time linear in the line, whatever a client sent (no catastrophic backtracking)", () => {
    const lines: string[] = [];
    const logger = createLogger({ LOG_LEVEL: "trace" }, { write: (line: string) => void lines.push(line) });
    // Each of these took seconds to hours with patterns that can split a run in many ways or
    // retry it from each character.
    const hostile = ["1".repeat(40) + "a", "1".repeat(100_000) + "a", "1 ".repeat(50_000) + "a", "1-".repeat(50_000) + "1a", "a".repeat(100_000), "a.".repeat(50_000) + "@b"];
    const started = performance.now();
    for (const text of hostile) logger.info({ text }, text);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(lines).toHaveLength(hostile.length);
  });
});

describe("jobs", () => {
  /** Why a payload schema could carry personal data, or nothing: ids, numbers, enums, dates and booleans only. */
  function freeText(schema: z.ZodType, path: string): string[] {
    const def = (schema as any)._zod.def;
    switch (def.type) {
      case "object":
        return Object.entries(def.shape as Record<string, z.ZodType>).flatMap(([key, value]) => freeText(value, `${path}.${key}`));
      case "array":
        return freeText(def.element, `${path}[]`);
      case "optional":
      case "nullable":
      case "default":
      case "readonly":
        return freeText(def.innerType, path);
      case "number":
      case "int":
      case "bigint":
      case "boolean":
      case "enum":
      case "literal":
      case "date":
        return [];
      case "string": {
        const format = def.format ?? (def.checks ?? []).map((c: any) => c._zod.def.format).find(Boolean);
        return ["uuid", "guid", "datetime", "date"].includes(format) ? [] : [`${path}: a string that is not an id or an ISO date (${format ?? "free text"})`];
      }
      default:
        return [`${path}: a ${def.type}, which may hold anything`];
    }
  }

  it("have payload schemas of ids, numbers, enums, dates and booleans only", () => {
    // The walk itself tells free text from ids.
    expect(freeText(z.object({ email: z.string(), note: z.string().max(20), any: z.record(z.string(), z.number()), id: z.uuid() }), "probe")).toEqual([
      "probe.email: a string that is not an id or an ISO date (free text)",
      "probe.note: a string that is not an id or an ISO date (free text)",
      "probe.any: a record, which may hold anything",
    ]);
    expect(Object.entries(JOBS).flatMap(([name, job]) => freeText(job.payload, name))).toEqual([]);
  });

  it("and the outbox carry none of the scenario's personal data or secrets", async () => {
    const outbox = await t.db.execute<{ payload: string }>(sql`select topic || ' ' || payload::text as payload from outbox`, "objects");
    expect(outbox.length).toBeGreaterThan(0);
    expect(found(outbox.map((o) => o.payload).join("\n"))).toEqual([]);

    // Every key BullMQ keeps under this file's prefix: job hashes (name, data, return value,
    // failure reason), queues, event streams, schedulers.
    const redis = new Redis(TEST_REDIS_URL);
    try {
      const dump: string[] = [];
      let cursor = "0";
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 500);
        cursor = next;
        for (const key of keys) {
          const type = await redis.type(key);
          if (type === "hash") dump.push(JSON.stringify(await redis.hgetall(key)));
          else if (type === "list") dump.push(...(await redis.lrange(key, 0, -1)));
          else if (type === "set") dump.push(...(await redis.smembers(key)));
          else if (type === "zset") dump.push(...(await redis.zrange(key, 0, -1)));
          else if (type === "string") dump.push((await redis.get(key)) ?? "");
          else if (type === "stream") dump.push(JSON.stringify(await redis.xrange(key, "-", "+")));
        }
      } while (cursor !== "0");
      const text = dump.join("\n");
      // The scenario's jobs are there to look at.
      for (const name of ["alerts.dispatch", "alerts.deliverEmail", "alerts.deliverWebhook", "alerts.publish", "compliance.check", "reports.flagOutliers"]) {
        expect(text, name).toContain(name);
      }
      expect(found(text)).toEqual([]);
    } finally {
      await redis.quit();
    }
  });
});

describe("at rest", () => {
  it("API tokens are stored only as their SHA-256 hash", async () => {
    const rows = await t.db.execute<{ row: string; token_hash: string }>(sql`select to_jsonb(a)::text as row, token_hash from api_token a`, "objects");
    const text = rows.map((r) => r.row).join("\n");
    expect(tokens.filter((token) => text.includes(token))).toEqual([]);
    // Every token of the scenario that was issued is there, as its hash.
    const hashes = new Set(rows.map((r) => r.token_hash));
    const issued = tokens.filter((token) => hashes.has(createHash("sha256").update(token).digest("hex")));
    expect(issued).toHaveLength(tokens.length - 1); // all but the made-up unknown one
  });

  it("webhook secrets are stored only encrypted (AES-256-GCM under SECRET_KEY)", async () => {
    const rows = await t.db.execute<{ id: string; row: string; secret_ciphertext: string }>(sql`select id::text, to_jsonb(w)::text as row, secret_ciphertext from webhook w`, "objects");
    expect(rows).toHaveLength(1);
    expect(found(rows[0]!.row)).toEqual([]);
    expect(decryptSecret(rows[0]!.secret_ciphertext, config.SECRET_KEY, rows[0]!.id)).toBe(webhookSecrets[0]);
  });

  it("no table holds a token or webhook secret; e-mails and phone numbers only where they belong (users, organizations)", async () => {
    const tables = await t.db.execute<{ name: string }>(sql`select tablename as name from pg_tables where schemaname = 'public' order by tablename`, "objects");
    const leaks: { table: string; needles: string[] }[] = [];
    for (const { name } of tables) {
      const [dump] = await t.db.execute<{ text: string }>(sql`select coalesce(string_agg(to_jsonb(x)::text, E'\n'), '') as text from ${sql.identifier(name)} x`, "objects");
      const text = dump!.text;
      const secrets = [...tokens, ...webhookSecrets].filter((s) => text.includes(s));
      const personal = name === "app_user" || name === "organization" ? [] : found(text);
      if (secrets.length || personal.length) leaks.push({ table: name, needles: [...new Set([...secrets, ...personal])] });
    }
    expect(leaks).toEqual([]);
  });
});

import { AsyncLocalStorage } from "node:async_hooks";
import { pino, type Logger } from "pino";
import type { Config } from "./config.js";

/**
 * Structured JSON logs. Tokens, secrets, e-mails, phone numbers and contact names never reach a
 * log line, in two layers:
 * - known fields are replaced by pino's `redact` (headers, `token`, `email`, contact details,
 *   GraphQL `variables`, whatever the value looks like);
 * - every string of every finished line (messages, error messages and stacks, nested objects,
 *   child bindings, even keys) is scanned for anything shaped like a token, an e-mail address or a
 *   phone number, and masked. Personal data reaches logs mostly by accident, inside a message
 *   such as a database error that quotes a query's parameters, where no field name gives it away.
 */
export const REDACT_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  "headers.authorization",
  "*.headers.authorization",
  "authorization",
  "*.authorization",
  "token",
  "*.token",
  "secret",
  "*.secret",
  "password",
  "*.password",
  "email",
  "*.email",
  "phone",
  "*.phone",
  "contactEmail",
  "*.contactEmail",
  "contactPhone",
  "*.contactPhone",
  "contactName",
  "*.contactName",
  "variables",
  "*.variables",
  // A failed query's parameters (drizzle's DrizzleQueryError, postgres.js in debug mode) are
  // whatever the user sent: names, addresses, phone numbers.
  "err.params",
  "err.parameters",
  "err.cause.params",
  "err.cause.parameters",
];

// API tokens (src/domain/tokens.ts: `smt_` and base64url) and webhook signing secrets
// (`whsec_` and base64), whole; a bearer credential of any shape.
const TOKEN = /\bsmt_[A-Za-z0-9_-]+/g;
const WEBHOOK_SECRET = /\bwhsec_[A-Za-z0-9+/=]+/g;
const BEARER = /\b(Bearer\s+)[^\s"',;]+/gi;
// Starts only where a run of address characters starts (the look-behind): a long run without an
// "@" is then given up once, not tried again from each of its characters.
const EMAIL = /(?<![A-Za-z0-9.!#$%&'*+/=?^_`{|}~-])[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g;
/**
 * A phone number as people write it: an optional `+` or `(area)`, digit groups joined by single
 * spaces or hyphens. Not part of a longer word, id or decimal (the look-behind and look-ahead:
 * UUID groups, job ids such as `forecast-recompute-3527544686`, base64, `0.1234567`); whether it
 * is a phone number is decided by its digits (see maskPhone). Every group after the first needs
 * its separator, so a run of digits can be split only one way: the pattern takes time linear in
 * the text, whatever the text (a log line may hold anything a client sent).
 */
// The look-ahead refuses a separator followed by any word character, not only a digit: a UUID
// whose first group is all digits (`38358003-fea3-...`, about 1 in 125 random ones) is an id.
const PHONE = /(?<![\w.@/\\+-])(?:\+\s?)?(?:\(\+?\d{1,5}\)\s?)?\d+(?:[ -](?:\(\d{1,5}\)|\d+))*(?![\w@]|[.-]\w)/g;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;
/** drizzle's "Failed query: ...\nparams: ..." message (and so its stack) quotes the parameters: contact names too. */
const QUERY_PARAMS = /(\nparams: )[^\n]*/g;

function maskPhone(candidate: string): string {
  const digits = candidate.replace(/\D/g, "").length;
  // Written with a + or in groups: 7 to 15 digits (E.164 has at most 15), but not a bare date
  // (2026-03-09). One unbroken run: 8 to 12 digits (a Chinese mobile number has 11, a landline
  // with its area code 10 to 12), so that quantities up to a million and millisecond timestamps
  // (13 digits, in BullMQ's job ids) stay readable.
  const bare = /^\d+$/.test(candidate);
  const isPhone = bare ? digits >= 8 && digits <= 12 : digits >= 7 && digits <= 15 && !ISO_DATE.test(candidate);
  return isPhone ? "[phone]" : candidate;
}

/** The string with every token, webhook secret, e-mail address, phone number and query parameter list in it masked. */
export function maskPersonalData(text: string): string {
  return text
    .replace(QUERY_PARAMS, "$1[redacted]")
    .replace(TOKEN, "[token]")
    .replace(WEBHOOK_SECRET, "[secret]")
    .replace(BEARER, "$1[token]")
    .replace(EMAIL, "[email]")
    .replace(PHONE, maskPhone);
}

function maskValue(value: unknown): unknown {
  if (typeof value === "string") return maskPersonalData(value);
  if (Array.isArray(value)) return value.map(maskValue);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) out[maskPersonalData(key)] = maskValue(v);
    return out;
  }
  return value;
}

/**
 * The finished JSON line, masked. Parsing it back is what makes this complete (whatever pino
 * or a serializer put there is seen) and exact (only string values are masked, never the
 * line's numbers or its JSON syntax). A line that does not parse is masked as plain text.
 */
export function maskLogLine(line: string): string {
  try {
    return `${JSON.stringify(maskValue(JSON.parse(line)))}\n`;
  } catch {
    return maskPersonalData(line);
  }
}

/**
 * `destination` (tests capture lines with it) defaults to stdout. Whatever it is, lines reach
 * it masked.
 */
/**
 * The request being answered, for code that is not handed the request (yoga calls `maskError` with
 * the error alone; services log deep inside a resolver): every line logged while it runs carries its id.
 */
const requestScope = new AsyncLocalStorage<{ requestId: string }>();

/** Runs `fn` (the handling of one request, including its streamed answer) under `requestId`. */
export const runWithRequestId = <T>(requestId: string, fn: () => T): T => requestScope.run({ requestId }, fn);

/** The id of the request being answered, where there is one. */
export const currentRequestId = (): string | undefined => requestScope.getStore()?.requestId;

export function createLogger(config: Pick<Config, "LOG_LEVEL">, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level: config.LOG_LEVEL,
      base: { service: "supply-monitor" },
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
      hooks: { streamWrite: maskLogLine },
      mixin: () => {
        const requestId = currentRequestId();
        return requestId ? { requestId } : {};
      },
    },
    // Synchronous writes: the last lines before an exit or a crash are the ones that matter.
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

export type { Logger };

import { pino, type Logger } from "pino";
import type { Config } from "./config.js";

/**
 * Structured JSON logs. Tokens, e-mails, phone numbers and contact names never reach a log line:
 * the redaction paths cover request headers and every object field with such a name.
 */
export const REDACT_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  "headers.authorization",
  "authorization",
  "token",
  "*.token",
  "email",
  "*.email",
  "contactEmail",
  "*.contactEmail",
  "contactPhone",
  "*.contactPhone",
  "contactName",
  "*.contactName",
  "variables",
  "*.variables",
];

export function createLogger(config: Pick<Config, "LOG_LEVEL">, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level: config.LOG_LEVEL,
      base: { service: "supply-monitor" },
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    // Synchronous writes: the last lines before an exit or a crash are the ones that matter.
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

export type { Logger };

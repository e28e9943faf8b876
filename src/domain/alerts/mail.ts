// Alert e-mail: plain text that reads well in any client and survives forwarding, sent over the
// SMTP server of SMTP_URL. Addresses come from the caller at send time and appear nowhere else:
// not in job payloads, not in logs, not in the delivery log's errors.
import nodemailer, { type NodemailerError } from "nodemailer";
import type { AlertMessage } from "./delivery.js";

export interface MailContent {
  subject: string;
  text: string;
}

const KIND_LABELS: Record<string, string> = {
  SHORTAGE_RISK: "Shortage risk",
  STOCKOUT_IMMINENT: "Stock-out imminent",
  SUPPLY_MATCH: "Supply match",
  UPSTREAM_INPUT_SHORTAGE: "Upstream input shortage",
  REPORT_OVERDUE: "Report overdue",
  DATA_QUALITY: "Data quality",
};
const EVENT_LABELS: Record<string, string> = { RAISED: "New alert", ESCALATED: "Escalated", RESOLVED: "Resolved" };

const utc = (ms: number) => `${new Date(ms).toISOString().slice(0, 16).replace("T", " ")} UTC`;
const shorten = (s: string, max: number) => (s.length > max ? `${s.slice(0, max - 1)}…` : s);

function figure(value: unknown): string {
  if (typeof value === "number") return Number.isInteger(value) ? value.toLocaleString("en-US") : value.toLocaleString("en-US", { maximumFractionDigits: 2 });
  if (value === null || value === undefined) return "-";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/** `daysOfSupply` -> `days of supply`: the details' keys read as words. */
const words = (key: string) => key.replace(/([a-z0-9])([A-Z])/g, "$1 $2").replace(/_/g, " ").toLowerCase();

function alertLines(m: AlertMessage): string[] {
  const details = Object.entries(m.details);
  return [
    `Kind:      ${KIND_LABELS[m.kind] ?? m.kind} (${m.kind})`,
    `Severity:  ${m.severity}`,
    `Status:    ${m.status}`,
    `Region:    ${m.regionName} (${m.regionCode})`,
    ...(m.productCode ? [`Product:   ${m.productName} (${m.productCode})`] : []),
    `Raised:    ${utc(m.raisedAt)}`,
    `Updated:   ${utc(m.updatedAt)}`,
    ...(details.length ? ["", "Figures:", ...details.map(([k, v]) => `  ${words(k)}: ${figure(v)}`)] : []),
  ];
}

const FOOTER = [
  "",
  "--",
  "You receive this because the alert concerns your organization or a region in your jurisdiction.",
  "Acknowledge or resolve it through the API (acknowledgeAlert, resolveAlert); the alerts query lists it with its id.",
];

export function composeAlertMail(m: AlertMessage): MailContent {
  const label = EVENT_LABELS[m.event.type] ?? m.event.type;
  return {
    subject: shorten(`[${m.event.severity}] ${label}: ${m.event.message}`, 200),
    text: [`${label}: ${m.event.message}`, "", ...alertLines(m), "", `Alert id: ${m.id}`, ...FOOTER].join("\n"),
  };
}

/** One message for the alerts the per-recipient cap held back in a window. */
export function composeDigestMail(messages: AlertMessage[], window: { start: number; end: number }): MailContent {
  const worst = ["RED", "ORANGE", "YELLOW", "BLUE", "GREEN"].find((s) => messages.some((m) => m.event.severity === s)) ?? "GREEN";
  const items = messages.flatMap((m, i) => [
    `${i + 1}. [${m.event.severity}] ${EVENT_LABELS[m.event.type] ?? m.event.type}: ${m.event.message}`,
    `   ${KIND_LABELS[m.kind] ?? m.kind}, ${m.regionName} (${m.regionCode})${m.productCode ? `, ${m.productCode}` : ""}, ${utc(m.event.at)}; alert id ${m.id}`,
  ]);
  return {
    subject: `[${worst}] ${messages.length} more alert update${messages.length === 1 ? "" : "s"} (digest, ${utc(window.start)} to ${utc(window.end)})`,
    text: [
      `More alert updates came in than are sent one by one, so these ${messages.length} come together:`,
      "",
      ...items,
      ...FOOTER,
    ].join("\n"),
  };
}

export interface MailResult {
  ok: boolean;
  error: string | null;
  /** The server refused the message for good (5xx): another attempt would be refused too. */
  permanent: boolean;
}

/** Error texts go into the delivery log; an address quoted by the server must not. */
export const withoutAddresses = (text: string) => text.replace(/[^\s<>"'@,;:]+@[^\s<>"'@,;:]+/g, "[address]");

export async function sendMail(smtpUrl: string, from: string, to: string, content: MailContent): Promise<MailResult> {
  // One connection per message: alert mail is rare (the cap sees to that), and nothing is left
  // open when the worker stops.
  const transport = nodemailer.createTransport({ url: smtpUrl, connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 30_000 });
  try {
    await transport.sendMail({ from, to, subject: content.subject, text: content.text });
    return { ok: true, error: null, permanent: false };
  } catch (error) {
    const e = error as NodemailerError;
    const detail = e.response ?? e.message;
    return { ok: false, error: withoutAddresses(`${e.code ? `${e.code}: ` : ""}${detail}`).slice(0, 500), permanent: e.permanent === true };
  } finally {
    transport.close();
  }
}

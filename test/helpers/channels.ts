// Real endpoints for alert delivery tests: a webhook receiver that verifies signatures, an SMTP
// server, and a GraphQL-over-SSE subscriber, as their users would run them.
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { SMTPServer } from "smtp-server";
import { Webhook } from "standardwebhooks";

export interface Received {
  /** performance.now() when the request had been read. */
  at: number;
  headers: IncomingHttpHeaders;
  body: string;
  payload: any;
  verified: boolean;
}

export interface Receiver {
  url: string;
  received: Received[];
  /** The signing secret to verify with, once registered. */
  secret?: string;
  close(): Promise<void>;
}

/** A real HTTP endpoint that verifies every request's signature and answers `status(n)` to the n-th (from 1). */
export async function startReceiver(status: (n: number) => number = () => 204): Promise<Receiver> {
  const receiver: Receiver = { url: "", received: [], close: async () => {} };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      let verified = false;
      let payload: unknown = null;
      try {
        payload = new Webhook(receiver.secret!).verify(body, req.headers as Record<string, string>);
        verified = true;
      } catch {
        verified = false;
      }
      receiver.received.push({ at: performance.now(), headers: req.headers, body, payload, verified });
      res.statusCode = verified ? status(receiver.received.length) : 401;
      res.end(res.statusCode >= 400 ? `refused #${receiver.received.length}` : "");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/supply`;
  receiver.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return receiver;
}

export interface Mail {
  to: string[];
  subject: string;
  text: string;
}

/** Reads a single-part text message as a mail client would: unfolds and decodes headers and body. */
export function parseMail(raw: string): { subject: string; text: string } {
  const split = raw.indexOf("\r\n\r\n");
  const head = raw.slice(0, split).replace(/\r\n[ \t]+/g, " ");
  const body = raw.slice(split + 4);
  const header = (name: string) => head.split("\r\n").find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`))?.slice(name.length + 1).trim() ?? "";
  const qp = (s: string) => Buffer.from(s.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16))), "latin1").toString("utf8");
  const subject = header("subject")
    .replace(/\?=\s+=\?/g, "?==?")
    .replace(/=\?utf-8\?([QB])\?([^?]*)\?=/gi, (_, enc: string, text: string) =>
      enc.toUpperCase() === "B" ? Buffer.from(text, "base64").toString("utf8") : qp(text.replace(/_/g, " ")),
    );
  const encoding = header("content-transfer-encoding").toLowerCase();
  const text = encoding === "base64" ? Buffer.from(body, "base64").toString("utf8") : encoding === "quoted-printable" ? qp(body) : body;
  return { subject, text: text.replace(/\r\n/g, "\n") };
}

export interface Mailbox {
  url: string;
  mails: Mail[];
  close(): Promise<void>;
}

/** A real SMTP server on loopback (smtp-server) that keeps every message it is given. */
export async function startSmtp(): Promise<Mailbox> {
  const mails: Mail[] = [];
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        mails.push({ to: session.envelope.rcptTo.map((r) => r.address), ...parseMail(Buffer.concat(chunks).toString("utf8")) });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(0, "127.0.0.1", resolve));
  return {
    url: `smtp://127.0.0.1:${(smtp.server.address() as AddressInfo).port}`,
    mails,
    close: () => new Promise<void>((resolve) => smtp.close(() => resolve())),
  };
}

export interface SseEvent {
  /** performance.now() when it was read. */
  at: number;
  event: string;
  data: any;
}

/** A GraphQL-over-SSE subscription as a client makes it: POST with Accept: text/event-stream. */
export interface Stream {
  /** The HTTP status and content type of the answer. */
  status: number;
  contentType: string | null;
  /** The next `next` or `complete` event (keep-alive comments are skipped). */
  next(): Promise<SseEvent>;
  /** Every event received so far, whether or not `next()` took it yet. */
  received: SseEvent[];
  close(): void;
}

/** Subscribes; the answer starts once the server has subscribed (Redis confirmed), so from then on nothing is missed. */
export async function subscribeSse(port: number, token: string | null, query: string): Promise<Stream> {
  const abort = new AbortController();
  const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
    method: "POST",
    headers: { accept: "text/event-stream", "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query }),
    signal: abort.signal,
  });
  const received: SseEvent[] = [];
  const waiting: ((e: SseEvent) => void)[] = [];
  let taken = 0;
  void (async () => {
    let buffer = "";
    const decoder = new TextDecoder();
    try {
      const reader = response.body!.getReader();
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
        buffer += decoder.decode(chunk.value, { stream: true });
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const lines = block.split("\n").filter((l) => !l.startsWith(":"));
          if (!lines.length) continue;
          const event = lines.find((l) => l.startsWith("event:"))?.slice(6).trim() ?? "message";
          const data = lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
          const parsed = { at: performance.now(), event, data: data ? JSON.parse(data) : null };
          received.push(parsed);
          waiting.shift()?.(parsed);
        }
      }
    } catch {
      // aborted by close()
    }
  })();
  return {
    status: response.status,
    contentType: response.headers.get("content-type"),
    received,
    next: () => {
      const i = taken++;
      return i < received.length ? Promise.resolve(received[i]!) : new Promise((resolve) => waiting.push(resolve));
    },
    close: () => abort.abort(),
  };
}

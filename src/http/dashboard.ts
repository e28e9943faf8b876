import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";
import type { Logger } from "../logger.js";

/** The page's files, each served at /dashboard/<name>; nothing else in the folder is reachable. */
const FILES: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "dashboard.css": "text/css; charset=utf-8",
  "app.js": "text/javascript; charset=utf-8",
  "api.js": "text/javascript; charset=utf-8",
  "chart.js": "text/javascript; charset=utf-8",
  "render.js": "text/javascript; charset=utf-8",
  "favicon.svg": "image/svg+xml",
};

/**
 * The page runs only its own files and talks only to this origin's /graphql. Scripts build the DOM
 * with textContent, never HTML strings, so Trusted Types can be required: any HTML sink is refused.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
].join("; ");

const SECURITY_HEADERS = {
  "content-security-policy": DASHBOARD_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

interface StaticFile {
  body: Buffer;
  type: string;
  etag: string;
}

/**
 * `GET /dashboard/` and its files: the planner's page, a static client of the public GraphQL API.
 * The files are read once, when the server is created. Their names carry no version, so browsers
 * keep them but ask again each time (`no-cache` with an ETag, answered 304 while unchanged): a
 * deploy is seen at once and never mixes an old page with new scripts.
 */
export function dashboardHandler(logger: Logger, dir: string = fileURLToPath(new URL("./dashboard/", import.meta.url))) {
  const files = new Map<string, StaticFile>();
  let missing: string | null = null;
  for (const [name, type] of Object.entries(FILES)) {
    try {
      const body = readFileSync(`${dir}${dir.endsWith("/") ? "" : "/"}${name}`);
      files.set(name, { body, type, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"` });
    } catch (error) {
      missing ??= `${dir}${name}: ${(error as Error).message}`;
    }
  }
  if (missing) logger.warn({ missing }, "the dashboard's files are missing: /dashboard answers 503 until the build copies src/http/dashboard/");

  const text = (res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}) =>
    res.writeHead(status, { ...SECURITY_HEADERS, "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", ...headers }).end(`${message}\n`);

  return (req: IncomingMessage, res: ServerResponse, path: string) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      text(res, 405, "the dashboard is read with GET", { allow: "GET, HEAD" });
      return;
    }
    if (path === "/dashboard") {
      // Relative links (./app.js, ../graphql) resolve against the folder, wherever the API is mounted.
      const query = (req.url ?? "").slice(path.length);
      text(res, 308, "the dashboard is at /dashboard/", { location: `/dashboard/${query}` });
      return;
    }
    if (missing) {
      text(res, 503, "the dashboard's files are not installed with this build (src/http/dashboard/ must be copied next to dashboard.js); the GraphQL API at /graphql works without them");
      return;
    }
    const name = path === "/dashboard/" ? "index.html" : path.slice("/dashboard/".length);
    const file = Object.hasOwn(FILES, name) ? files.get(name) : undefined;
    if (!file) {
      text(res, 404, `no such file in the dashboard: ${name.slice(0, 100)}; the page is at /dashboard/`);
      return;
    }
    const headers = { ...SECURITY_HEADERS, "content-type": file.type, "cache-control": "no-cache", etag: file.etag };
    if (req.headers["if-none-match"] === file.etag) {
      res.writeHead(304, headers).end();
      return;
    }
    res.writeHead(200, { ...headers, "content-length": String(file.body.length) }).end(req.method === "HEAD" ? undefined : file.body);
  };
}

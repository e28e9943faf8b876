import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { stringify } from "csv-stringify/sync";
import type { Database } from "../db/index.js";
import { MIN_ORGANIZATIONS, OPEN_DATA_COLUMNS, openDataShortages } from "../domain/open-data.js";
import type { Logger } from "../logger.js";

/** Forecasts change a few times a day; a shared cache may keep an answer this long. */
const MAX_AGE_SECONDS = 300;
/** One computation serves every request of this window in this process. */
const MEMO_MS = 30_000;

interface Rendered {
  body: Buffer;
  etag: string;
  lastModified: string | null;
}

const PRODUCT_CODE = /^[A-Z0-9][A-Z0-9-]{0,63}$/;

/**
 * `GET /open-data/shortages.csv` and `/open-data/shortages.json` (optionally `?product=CODE`):
 * public, no token. Answers carry `Cache-Control`, an `ETag` and `Last-Modified`, and a
 * conditional request whose ETag still matches gets 304.
 */
export function openDataHandler(db: Database, logger: Logger) {
  const memo = new Map<string, { at: number; value: Promise<Rendered> }>();

  const render = async (format: "csv" | "json", productCode: string | undefined): Promise<Rendered> => {
    const rows = await openDataShortages(db, productCode ? { productCode } : {});
    const names = OPEN_DATA_COLUMNS.map(([name]) => name);
    const newest = rows.reduce<string | null>((m, r) => (typeof r.computed_at === "string" && (m === null || r.computed_at > m) ? r.computed_at : m), null);
    const body =
      format === "csv"
        ? stringify(rows, { header: true, columns: names, cast: { boolean: (v) => String(v) } })
        : JSON.stringify(
            {
              description: `Shortage outlook per region and product. Cells where fewer than ${MIN_ORGANIZATIONS} organizations report are suppressed (figures null).`,
              suppressionThreshold: MIN_ORGANIZATIONS,
              columns: OPEN_DATA_COLUMNS.map(([name, description]) => ({ name, description })),
              rows,
            },
            null,
            1,
          );
    const buffer = Buffer.from(body, "utf8");
    return {
      body: buffer,
      etag: `"${createHash("sha256").update(buffer).digest("base64url").slice(0, 27)}"`,
      lastModified: newest ? new Date(newest).toUTCString() : null,
    };
  };

  return (req: IncomingMessage, res: ServerResponse, format: "csv" | "json") => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" }).end("open data is read with GET\n");
      return;
    }
    const url = new URL(req.url ?? "/", "http://open-data");
    const unknown = [...url.searchParams.keys()].filter((k) => k !== "product");
    const product = url.searchParams.get("product")?.trim().toUpperCase() || undefined;
    if (unknown.length || (product !== undefined && !PRODUCT_CODE.test(product))) {
      res
        .writeHead(400, { "content-type": "text/plain; charset=utf-8" })
        .end(
          unknown.length
            ? `unknown query parameter ${unknown.map((k) => JSON.stringify(k)).join(", ")}; the only one is product=CODE (e.g. product=MASK-N95)\n`
            : `product must be a product code such as MASK-N95\n`,
        );
      return;
    }
    const key = `${format}|${product ?? ""}`;
    const now = Date.now();
    let entry = memo.get(key);
    if (!entry || now - entry.at > MEMO_MS) {
      entry = { at: now, value: render(format, product) };
      memo.set(key, entry);
      // A failed computation is not remembered.
      entry.value.catch(() => memo.delete(key));
    }
    entry.value.then(
      (r) => {
        const headers: Record<string, string> = {
          "content-type": format === "csv" ? "text/csv; charset=utf-8" : "application/json; charset=utf-8",
          "cache-control": `public, max-age=${MAX_AGE_SECONDS}`,
          etag: r.etag,
          "access-control-allow-origin": "*",
          "x-content-type-options": "nosniff",
        };
        if (r.lastModified) headers["last-modified"] = r.lastModified;
        if (format === "csv") headers["content-disposition"] = `inline; filename="shortages${product ? `-${product}` : ""}.csv"`;
        const match = req.headers["if-none-match"];
        if (match && match.split(",").some((t) => t.trim() === r.etag || t.trim() === `W/${r.etag}`)) {
          res.writeHead(304, headers).end();
          return;
        }
        headers["content-length"] = String(r.body.length);
        res.writeHead(200, headers).end(req.method === "HEAD" ? undefined : r.body);
      },
      (error: Error) => {
        logger.error({ err: error }, "open data could not be computed");
        res
          .writeHead(503, { "content-type": "text/plain; charset=utf-8", "retry-after": "30" })
          .end("open data cannot be computed right now; retry in a minute\n");
      },
    );
  };
}

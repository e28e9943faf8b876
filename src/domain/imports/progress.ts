// Who may see an import, and its progress as a live stream (the importProgress subscription). The
// worker announces each stored batch through Redis pub/sub with the import's id only; every API
// process re-reads the import from Postgres for its subscribers, so what they are sent is always
// the stored state, and a lost announcement costs at most one poll interval.
import { and, eq, ne, sql, type Column, type SQL } from "drizzle-orm";
import type { Database } from "../../db/index.js";
import { importTable } from "../../db/schema.js";
import type { LiveChannel } from "../alerts/live.js";
import { notFound } from "../errors.js";
import type { Viewer } from "../viewer.js";
import type { ImportRow } from "./upload.js";

/** What the worker publishes after each batch: the id only, never the import's content. */
export interface ImportProgressEvent {
  importId: string;
}

/** The live channel of import progress, under the deployment's prefix. */
export const IMPORT_PROGRESS_CHANNEL = "importProgress";

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Admins see every import; reporters their organization's. (An import's rejected lines hold report figures.) */
export function importVisibleTo(viewer: Viewer | null, row: Pick<ImportRow, "organizationId">): boolean {
  if (!viewer) return false;
  if (viewer.role === "ADMIN") return true;
  return viewer.role === "REPORTER" && row.organizationId !== null && row.organizationId === viewer.organizationId;
}

/** The same rule in SQL, given the import's organization column. */
export function importVisibleSql(viewer: Viewer | null, organizationId: SQL | Column): SQL {
  if (viewer?.role === "ADMIN") return sql`true`;
  if (viewer?.role === "REPORTER" && viewer.organizationId) return sql`${organizationId} = ${viewer.organizationId}::uuid`;
  return sql`false`;
}

/** The import with this id if the viewer may see it; null for one that does not exist, is not visible or is still uploading. */
export async function findVisibleImport(db: Database, viewer: Viewer | null, id: string): Promise<ImportRow | null> {
  if (!UUID.test(id)) return null;
  const [row] = await db.select().from(importTable).where(and(eq(importTable.id, id), ne(importTable.status, "UPLOADING")));
  return row && importVisibleTo(viewer, row) ? row : null;
}

export const importNotFound = (id: string) =>
  notFound(`import ${id} not found, or not visible to you: imports are visible to the uploader's organization and to admins; use the id importReportsCsv or POST /imports answered with`);

const FINISHED = new Set(["DONE", "FAILED"]);
/** How often a subscriber re-reads the import when no announcement came (one may be lost). */
const POLL_MS = 5_000;

/**
 * The import's state now, then each time it changes, until it is DONE or FAILED (that state is
 * the last value). Resolves once the live channel has confirmed the subscription, so no change
 * after the first value is missed.
 */
export async function subscribeToImport(
  db: Database,
  live: Pick<LiveChannel<ImportProgressEvent>, "listen">,
  viewer: Viewer,
  id: string,
  options: { pollMs?: number } = {},
): Promise<AsyncIterableIterator<ImportRow>> {
  const pollMs = options.pollMs ?? POLL_MS;
  if (!(await findVisibleImport(db, viewer, id))) throw importNotFound(id);
  const events = await live.listen();
  // The first value is the state once the subscription is confirmed (read now, not when the client pulls).
  let initial: ImportRow | null = await findVisibleImport(db, viewer, id);
  let pending: Promise<IteratorResult<ImportProgressEvent>> | null = null;
  // The channel let go of us (its connection closed): polling alone from then on.
  let deaf = false;
  let shown: string | null = null;
  let finished = false;
  let ended = false;

  const end = async (): Promise<IteratorResult<ImportRow>> => {
    ended = true;
    await events.return?.();
    return { done: true, value: undefined };
  };
  /** Until an announcement of this import, or the poll interval, whichever comes first. */
  const change = async () => {
    const deadline = Date.now() + pollMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return;
      if (!deaf) pending ??= events.next();
      let timer: NodeJS.Timeout | undefined;
      const waited = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), left)));
      const next = await (pending ? Promise.race([pending, waited]) : waited);
      clearTimeout(timer);
      if (next === null) return;
      pending = null;
      if (next.done) deaf = true;
      else if (next.value.importId === id) return;
    }
  };

  const iterator: AsyncIterableIterator<ImportRow> = {
    async next() {
      while (!ended) {
        if (finished) return end();
        const row = initial ?? (await findVisibleImport(db, viewer, id));
        initial = null;
        if (!row) return end();
        const state = `${row.status}|${row.rowsTotal}|${row.rowsDone}|${row.rowsAccepted}|${row.rowsRejected}|${row.batchesDone}|${row.errorMessage}`;
        if (state !== shown) {
          shown = state;
          finished = FINISHED.has(row.status);
          return { done: false, value: row };
        }
        await change();
      }
      return { done: true, value: undefined };
    },
    return: end,
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}

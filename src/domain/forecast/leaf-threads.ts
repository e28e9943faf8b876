// Leaf forecasts on worker threads (piscina). The forecasting kernel is the CPU-heavy part of a
// recompute; on the event loop it would keep one core busy while PostgreSQL waits to be asked for
// the next product, and hold up everything else the worker does (BullMQ's lock renewals
// included). On threads, the event loop only reads and writes, and the kernel runs beside it.
import { Piscina } from "piscina";
import type { WorkerConfig } from "../../config.js";
import { DomainError } from "../errors.js";
import type { LeafJob, NodeOutlook } from "./leaf-inputs.js";
import type { LeafThreadResult } from "./leaf-thread.js";

export interface LeafThreads {
  /** The leaves' outlooks of one job, computed on a free thread (jobs queue while all are busy). */
  run(job: LeafJob): Promise<[number, NodeOutlook][]>;
  /** Ends the threads once the jobs already asked for are done; a job asked for after this is refused. */
  close(): Promise<void>;
  readonly size: number;
}

/**
 * A job takes well under a second (a province's or a product's leaves); one still running after
 * this is stuck, and is ended so that its forecast job fails and is retried instead of holding
 * its worker (whose lock the event loop would otherwise renew for ever).
 */
export const LEAF_JOB_TIMEOUT_MS = 5 * 60_000;

/** The threads a worker starts: a recompute has at most FORECAST_CONCURRENCY leaf jobs out at once, so more would idle. */
export function leafThreadCount(c: Pick<WorkerConfig, "FORECAST_THREADS" | "FORECAST_CONCURRENCY">): number {
  return Math.min(c.FORECAST_THREADS, c.FORECAST_CONCURRENCY);
}

export function startLeafThreads(count: number, { onError }: { onError?: (error: Error) => void } = {}): LeafThreads {
  if (!Number.isInteger(count) || count < 1) throw new Error(`leaf threads: count must be a whole number from 1, got ${count}`);
  const pool = new Piscina<LeafJob, LeafThreadResult>({
    // Run from TypeScript (tsx, vitest), a thread goes through a starter that registers tsx first:
    // a worker does not inherit the loader of the thread that started it.
    filename: new URL(import.meta.url.endsWith(".ts") ? "./leaf-thread-tsx.mjs" : "./leaf-thread.js", import.meta.url).href,
    minThreads: count,
    maxThreads: count,
  });
  // A thread that fails outside any job (while loading) is reported here; unheard, the event
  // would end the process. The jobs asked for since then are refused with it.
  let broken: Error | null = null;
  pool.on("error", (error: Error) => {
    broken = error;
    onError?.(error);
  });
  let closing = false;
  return {
    size: count,
    async run(job) {
      // (piscina's own refusal only says "The task has been aborted".)
      if (closing) throw new Error("the leaf forecast threads are closed: the worker is shutting down");
      if (broken) throw new Error(`the leaf forecast threads failed: ${(broken as Error).message}`);
      const result = await pool.run(job, { signal: AbortSignal.timeout(LEAF_JOB_TIMEOUT_MS) });
      if ("refused" in result) throw new DomainError(result.refused.code, result.refused.message, result.refused.details);
      return result.leaves;
    },
    close() {
      closing = true;
      return pool.close();
    },
  };
}

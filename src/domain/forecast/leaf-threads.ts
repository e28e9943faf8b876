// Leaf forecasts on worker threads (piscina). The forecasting kernel is the CPU-heavy part of a
// recompute; on the event loop it would keep one core busy while PostgreSQL waits to be asked for
// the next product, and hold up everything else the worker does (BullMQ's lock renewals
// included). On threads, the event loop only reads and writes, and the kernel runs beside it.
import { Piscina } from "piscina";
import type { LeafJob, NodeOutlook } from "./leaf-inputs.js";

export interface LeafThreads {
  /** The leaves' outlooks of one job, computed on a free thread (jobs queue while all are busy). */
  run(job: LeafJob): Promise<[number, NodeOutlook][]>;
  /** Ends the threads once the jobs already asked for are done; a job asked for after this is refused. */
  close(): Promise<void>;
  readonly size: number;
}

export function startLeafThreads(count: number): LeafThreads {
  if (!Number.isInteger(count) || count < 1) throw new Error(`leaf threads: count must be a whole number from 1, got ${count}`);
  const pool = new Piscina<LeafJob, [number, NodeOutlook][]>({
    // Run from TypeScript (tsx, vitest), a thread goes through a starter that registers tsx first:
    // a worker does not inherit the loader of the thread that started it.
    filename: new URL(import.meta.url.endsWith(".ts") ? "./leaf-thread-tsx.mjs" : "./leaf-thread.js", import.meta.url).href,
    minThreads: count,
    maxThreads: count,
  });
  let closing = false;
  return {
    size: count,
    // (piscina's own refusal only says "The task has been aborted".)
    run: (job) => (closing ? Promise.reject(new Error("the leaf forecast threads are closed: the worker is shutting down")) : pool.run(job)),
    close: () => {
      closing = true;
      return pool.close();
    },
  };
}

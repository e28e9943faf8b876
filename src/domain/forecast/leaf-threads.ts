// Leaf forecasts on worker threads. The forecasting kernel is the CPU-heavy part of a recompute;
// on the event loop it would keep one core busy while PostgreSQL waits to be asked for the next
// product, and hold up everything else the worker does (BullMQ's lock renewals included). On a
// thread, the event loop only reads and writes, and the kernel runs beside it.
import { Worker } from "node:worker_threads";
import type { LeafJob, NodeOutlook } from "./leaf-inputs.js";

export interface LeafThreads {
  /** The leaves' outlooks of one job, computed on a free thread (jobs queue when all are busy). */
  run(job: LeafJob): Promise<[number, NodeOutlook][]>;
  /** Ends the threads once their jobs are done; a job asked for after this is refused. */
  close(): Promise<void>;
  readonly size: number;
}

interface Pending {
  id: number;
  job: LeafJob;
  resolve: (leaves: [number, NodeOutlook][]) => void;
  reject: (error: Error) => void;
}

interface Slot {
  worker: Worker;
  current: Pending | null;
}

/**
 * A thread running leaf-thread: through a starter that registers tsx first when the service runs
 * from TypeScript.
 */
function spawn(): Worker {
  return new Worker(new URL(import.meta.url.endsWith(".ts") ? "./leaf-thread-tsx.mjs" : "./leaf-thread.js", import.meta.url));
}

export function startLeafThreads(count: number): LeafThreads {
  if (!Number.isInteger(count) || count < 1) throw new Error(`leaf threads: count must be a whole number from 1, got ${count}`);
  const queue: Pending[] = [];
  const slots: Slot[] = [];
  const inFlight = new Set<Promise<unknown>>();
  let nextId = 0;
  let closed = false;

  const dispatch = () => {
    for (const slot of slots) {
      if (slot.current || queue.length === 0) continue;
      slot.current = queue.shift()!;
      slot.worker.ref();
      slot.worker.postMessage({ id: slot.current.id, job: slot.current.job });
    }
  };

  const open = (): Slot => {
    const slot: Slot = { worker: spawn(), current: null };
    slot.worker.on("message", (m: { id: number; leaves?: [number, NodeOutlook][]; error?: { name: string; message: string; stack?: string } }) => {
      const job = slot.current;
      if (!job || job.id !== m.id) return;
      slot.current = null;
      slot.worker.unref();
      if (m.error) job.reject(Object.assign(new Error(m.error.message), { name: m.error.name, stack: m.error.stack }));
      else job.resolve(m.leaves!);
      dispatch();
    });
    // A thread that died (out of memory, a crash while loading) fails its job, which the forecast
    // job retries; a new thread takes its place for the jobs behind it.
    const died = (error: Error) => {
      const i = slots.indexOf(slot);
      if (i < 0) return;
      slots.splice(i, 1);
      slot.current?.reject(error);
      slot.current = null;
      if (!closed) {
        slots.push(open());
        dispatch();
      }
    };
    slot.worker.on("error", died);
    slot.worker.on("exit", (code) => died(new Error(`a leaf forecast thread stopped (exit code ${code}) before finishing its job`)));
    // An idle thread does not keep the process alive; one with a job does, until it answers.
    slot.worker.unref();
    return slot;
  };

  for (let i = 0; i < count; i++) slots.push(open());

  return {
    size: count,
    run(job) {
      if (closed) return Promise.reject(new Error("the leaf forecast threads are closed: the worker is shutting down"));
      const done = new Promise<[number, NodeOutlook][]>((resolve, reject) => {
        queue.push({ id: nextId++, job, resolve, reject });
        dispatch();
      });
      const settled: Promise<unknown> = done.then(
        (): boolean => inFlight.delete(settled),
        (): boolean => inFlight.delete(settled),
      );
      inFlight.add(settled);
      return done;
    },
    async close() {
      closed = true;
      // Let the jobs already handed out finish (a recompute ends its current transaction on shutdown).
      await Promise.all([...inFlight]);
      await Promise.all(slots.splice(0).map((s) => s.worker.terminate()));
    },
  };
}

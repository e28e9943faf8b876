// The body of a leaf forecast thread (leaf-threads.ts): computes each job it is sent and posts back
// its outlooks, or the error, under the job's id.
import { parentPort } from "node:worker_threads";
import { computeLeaves, type LeafJob } from "./leaf-inputs.js";

parentPort!.on("message", ({ id, job }: { id: number; job: LeafJob }) => {
  try {
    parentPort!.postMessage({ id, leaves: computeLeaves(job) });
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    parentPort!.postMessage({ id, error: { name: e.name, message: e.message, stack: e.stack } });
  }
});

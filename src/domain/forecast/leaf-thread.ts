// The body of a leaf forecast thread (leaf-threads.ts): one job in, its leaves' outlooks out. A
// domain error (a refused input) comes back as data, since an error crossing threads keeps its
// message but not its class, and the job runner treats a DomainError as final.
import { DomainError } from "../errors.js";
import { computeLeaves, type LeafJob, type NodeOutlook } from "./leaf-inputs.js";

export type LeafThreadResult = { leaves: [number, NodeOutlook][] } | { refused: { code: DomainError["code"]; message: string; details?: Record<string, unknown> } };

export default function leafThread(job: LeafJob): LeafThreadResult {
  try {
    return { leaves: computeLeaves(job) };
  } catch (error) {
    if (error instanceof DomainError) return { refused: { code: error.code, message: error.message, ...(error.details ? { details: error.details } : {}) } };
    throw error;
  }
}

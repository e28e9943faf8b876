// Summaries of V8 CPU profiles (the `.cpuprofile` format of `node --cpu-prof` and of the
// inspector's Profiler domain): self time by package or source file, and the hottest functions.
import { Session } from "node:inspector/promises";

export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
    hitCount?: number;
    children?: number[];
  }[];
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
}

/** Groups a script URL: a package under node_modules, a file of this project, or node itself. */
function bucketOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith("(") ? functionName : "(native)";
  const nm = url.lastIndexOf("/node_modules/");
  if (nm >= 0) {
    const parts = url.slice(nm + "/node_modules/".length).split("/");
    return parts[0]!.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  if (url.startsWith("node:")) return "node: (runtime)";
  for (const dir of ["/src/", "/bench/", "/jobs/"]) {
    const i = url.lastIndexOf(dir);
    if (i >= 0) return url.slice(i + 1);
  }
  return url;
}

/**
 * Where a function lives, for the hot-function list. Lines of TypeScript files are left out:
 * tsx compiles them without keeping line numbers, so the profile's lines would mislead.
 */
function fileOf(url: string, bucket: string, line: number): string {
  if (!url) return "";
  const nm = url.lastIndexOf("/node_modules/");
  if (nm >= 0) return `${url.slice(nm + "/node_modules/".length)}:${line + 1}`;
  if (url.endsWith(".ts")) return bucket;
  return `${bucket}:${line + 1}`;
}

export interface ProfileSummary {
  totalMs: number;
  buckets: { name: string; ms: number }[];
  functions: { name: string; ms: number }[];
}

/**
 * Self time per package, file and function. `window` (microseconds of the monotonic clock, as
 * `process.hrtime.bigint() / 1000n` gives in any process on the machine) keeps only the samples
 * taken inside it.
 */
export function summarizeProfile(profile: CpuProfile, window?: { fromUs: number; toUs: number }): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  // timeDeltas[i] is the time before sample i; attribute it to the sample it precedes.
  let at = profile.startTime;
  for (let i = 0; i < samples.length; i++) {
    at += deltas[i] ?? 0;
    if (window && (at < window.fromUs || at > window.toUs)) continue;
    self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + (deltas[i] ?? 0) / 1000);
  }
  const buckets = new Map<string, number>();
  const functions = new Map<string, number>();
  let totalMs = 0;
  for (const [id, ms] of self) {
    const { callFrame } = byId.get(id)!;
    const bucket = bucketOf(callFrame.url, callFrame.functionName);
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + ms);
    const fn = `${callFrame.functionName || "(anonymous)"}  ${fileOf(callFrame.url, bucket, callFrame.lineNumber)}`;
    functions.set(fn, (functions.get(fn) ?? 0) + ms);
    totalMs += ms;
  }
  const sorted = (m: Map<string, number>) => [...m].map(([name, ms]) => ({ name, ms })).sort((a, b) => b.ms - a.ms);
  return { totalMs, buckets: sorted(buckets), functions: sorted(functions) };
}

export function formatProfile(title: string, summary: ProfileSummary, top = 15): string {
  const busy = summary.totalMs - (summary.buckets.find((b) => b.name === "(idle)")?.ms ?? 0);
  const pct = (ms: number) => `${((100 * ms) / summary.totalMs).toFixed(1).padStart(5)} %`;
  const lines = [`${title}: ${(summary.totalMs / 1000).toFixed(2)} s sampled, ${(busy / 1000).toFixed(2)} s on CPU`, "  self time by package / file:"];
  for (const b of summary.buckets.slice(0, top)) lines.push(`    ${pct(b.ms)}  ${(b.ms / 1000).toFixed(2).padStart(7)} s  ${b.name}`);
  lines.push("  hottest functions (self time):");
  for (const f of summary.functions.slice(0, top)) lines.push(`    ${pct(f.ms)}  ${(f.ms / 1000).toFixed(2).padStart(7)} s  ${f.name}`);
  return lines.join("\n");
}

/** Profiles this process while `work` runs. */
export async function profileInProcess<T>(work: () => Promise<T>): Promise<{ result: T; profile: CpuProfile }> {
  const session = new Session();
  session.connect();
  try {
    await session.post("Profiler.enable");
    await session.post("Profiler.setSamplingInterval", { interval: 1000 });
    await session.post("Profiler.start");
    let result: T;
    try {
      result = await work();
    } catch (error) {
      await session.post("Profiler.stop");
      throw error;
    }
    const { profile } = await session.post("Profiler.stop");
    return { result, profile: profile as CpuProfile };
  } finally {
    session.disconnect();
  }
}

// Where the CPU goes during a timed run, read from /proc (Linux). Everything degrades to
// `undefined` elsewhere, so a benchmark still runs, it just prints fewer columns.
import { readdirSync, readFileSync } from "node:fs";

const CLOCK_TICKS_PER_SECOND = 100; // `getconf CLK_TCK` on every Linux this runs on

interface ProcStat {
  pid: number;
  comm: string;
  ppid: number;
  /** utime + stime, seconds. */
  cpu: number;
  /** cutime + cstime: CPU of children this process has reaped, seconds. */
  childrenCpu: number;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  const comm = text.slice(open + 1, close);
  // Fields after the command: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
  const rest = text.slice(close + 2).split(" ");
  const field = (n: number) => Number(rest[n - 3]);
  return {
    pid,
    comm,
    ppid: field(4),
    cpu: (field(14) + field(15)) / CLOCK_TICKS_PER_SECOND,
    childrenCpu: (field(16) + field(17)) / CLOCK_TICKS_PER_SECOND,
  };
}

/** CPU seconds of one process, or undefined when it is gone or /proc is missing. */
export function processCpuSeconds(pid: number): number | undefined {
  return readStat(pid)?.cpu;
}

/** CPU seconds of a process and every process below it (node:cluster's children, say). */
export function processTreeCpuSeconds(pid: number): number | undefined {
  const own = readStat(pid);
  if (!own) return undefined;
  const stats = [...allProcesses().values()];
  const below = new Set([pid]);
  let total = own.cpu;
  // Parents come before children often but not always: repeat until nothing is added.
  for (let added = true; added; ) {
    added = false;
    for (const stat of stats) {
      if (below.has(stat.pid) || !below.has(stat.ppid)) continue;
      below.add(stat.pid);
      total += stat.cpu;
      added = true;
    }
  }
  return total;
}

/** Busy and total jiffies of all CPUs together, from /proc/stat. */
export function machineCpu(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
    const values = line.trim().split(/\s+/).slice(1).map(Number);
    const total = values.reduce((a, b) => a + b, 0);
    const idle = (values[3] ?? 0) + (values[4] ?? 0); // idle + iowait
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** Peak resident set size of a process in MiB (VmHWM), or undefined. */
export function peakRssMiB(pid: number | "self"): number | undefined {
  try {
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Every process on the machine, by pid. */
function allProcesses(): Map<number, ProcStat> {
  const out = new Map<number, ProcStat>();
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const pid of pids) {
    const stat = readStat(Number(pid));
    if (stat) out.set(stat.pid, stat);
  }
  return out;
}

export interface CpuSnapshot {
  all: Map<number, ProcStat>;
  childPid: number | undefined;
  self: number;
  child: number | undefined;
  /** CPU seconds per PostgreSQL process pid. */
  postgres: Map<number, number>;
  machine: { busy: number; total: number } | undefined;
}

/**
 * `postgresPids` are the server processes that work for this benchmark: the backends of its
 * database and the shared writers. Other sessions on the same server (someone's tests) are left
 * out, and show up under "other processes" instead.
 */
export function cpuSnapshot(childPid: number | undefined, postgresPids: number[]): CpuSnapshot {
  const usage = process.cpuUsage();
  const postgres = new Map<number, number>();
  for (const pid of postgresPids) {
    const cpu = processCpuSeconds(pid);
    if (cpu !== undefined) postgres.set(pid, cpu);
  }
  return {
    all: allProcesses(),
    childPid,
    self: (usage.user + usage.system) / 1e6,
    child: childPid === undefined ? undefined : processCpuSeconds(childPid),
    postgres,
    machine: machineCpu(),
  };
}

export interface CpuSpent {
  /** CPU seconds of the benchmark process (clients, and the service itself when in-process). */
  bench: number;
  /** CPU seconds of the API child process, when there is one. */
  api: number | undefined;
  /** CPU seconds of the PostgreSQL processes working for the benchmark. */
  postgres: number | undefined;
  /** CPU seconds of everything else on the machine (other sessions, other programs). */
  other: number | undefined;
  /** The largest parts of `other`, by command name; "(exited)" = processes gone by the end. */
  otherByCommand: { comm: string; cpu: number }[];
  /** Share of the machine's CPU time that was busy, 0..1. */
  machineBusy: number | undefined;
}

export function cpuSpent(before: CpuSnapshot, after: CpuSnapshot): CpuSpent {
  const bench = after.self - before.self;
  const api = before.child === undefined || after.child === undefined ? undefined : after.child - before.child;
  let postgres: number | undefined;
  if (after.postgres.size) {
    postgres = 0;
    // A backend that started during the run counts from zero; one that ended during it is lost.
    for (const [pid, cpu] of after.postgres) postgres += cpu - (before.postgres.get(pid) ?? 0);
  }
  if (!before.machine || !after.machine) return { bench, api, postgres, other: undefined, otherByCommand: [], machineBusy: undefined };
  const busy = after.machine.busy - before.machine.busy;
  const total = after.machine.total - before.machine.total;
  const other = Math.max(0, busy / CLOCK_TICKS_PER_SECOND - bench - (api ?? 0) - (postgres ?? 0));
  const ours = new Set([process.pid, ...after.postgres.keys(), ...(after.childPid === undefined ? [] : [after.childPid])]);
  const byCommand = new Map<string, number>();
  let attributed = 0;
  const add = (comm: string, spent: number) => {
    if (spent <= 0) return;
    byCommand.set(comm, (byCommand.get(comm) ?? 0) + spent);
    attributed += spent;
  };
  for (const [pid, { comm, cpu, ppid, childrenCpu }] of after.all) {
    const previous = before.all.get(pid);
    if (comm === "postgres" && after.all.get(ppid)?.comm !== "postgres") {
      // The postmaster: what it reaped is autovacuum workers and sessions (of any database) that ended.
      add("postgres children that exited (autovacuum workers, ended sessions)", childrenCpu - (previous?.childrenCpu ?? childrenCpu));
    }
    if (ours.has(pid)) continue;
    add(comm === "postgres" ? "postgres (other sessions)" : comm, cpu - (previous?.cpu ?? 0));
  }
  if (other - attributed > 0.05) byCommand.set("(exited)", other - attributed);
  const otherByCommand = [...byCommand]
    .map(([comm, cpu]) => ({ comm, cpu }))
    .filter((o) => o.cpu >= 0.05)
    .sort((a, b) => b.cpu - a.cpu);
  return { bench, api, postgres, other, otherByCommand, machineBusy: total ? busy / total : undefined };
}

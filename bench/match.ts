// `npm run bench -- match`: the transport solver (src/domain/matching/solver.ts) against HiGHS (the
// `highs` npm package, WebAssembly) on the same instances, in one run: dense instances with every
// supplier -> region arc, costs by haversine between random coordinates, then a sparse national
// instance (county demands, each linked to its nearest supplier sites). Both solve the same
// lexicographic problem: HiGHS in two LPs (maximise the urgency-weighted coverage, then minimise
// cost with that coverage held; here each from scratch with HiGHS's default options, its fastest
// configuration that we tried), ours in one network simplex. test/matching-solver.test.ts uses the
// same HiGHS model (`solveLexWithHighs`, there with tolerances 1e-10) as its reference.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { availableParallelism, cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import type { Highs } from "highs";
import { haversineKm, solveTransport, type TransportProblem, type TransportSolution } from "../src/domain/matching/solver.js";
import { seededRandom } from "../src/tools/random.js";

export const MATCH_USAGE = `  match      transport solver vs HiGHS: dense 200x200, 500x200, 1000x300, 1000x1000 and a sparse national instance
             --seed N (1) --sizes 200x200,500x200,1000x300,1000x1000 --counties N (3000) --sites N (2000) --nearest N (30)
             --runs N (5: ours is timed as the median of N runs, HiGHS once) --no-sparse-highs (skip HiGHS on the sparse instance)
             --highs-options JSON (extra HiGHS options, e.g. '{"presolve":"off"}'; default none: HiGHS as shipped)`;

export type { Highs };
/**
 * Loads the HiGHS WebAssembly runtime (once per process is enough). Through `require`: the
 * package's types describe its CommonJS build (whose `default` is the loader), and TypeScript's
 * view of an ES `import` of it does not match what Node loads.
 */
export const loadHighs = (): Promise<Highs> => (createRequire(import.meta.url)("highs") as { default: () => Promise<Highs> }).default();

export { seededRandom };

// Risk levels weigh 1, 2, 4, 8; a need due sooner weighs more (1 + 1/(1 + days), days 0..28).
function urgencyOf(rand: () => number): number {
  const level = 2 ** Math.floor(rand() * 4);
  const days = Math.floor(rand() * 29);
  return level * (1 + 1 / (1 + days));
}

/** A quantity with one decimal, 40,000.5-style: real numbers, not only integers. */
function quantity(rand: () => number, lo: number, hi: number): number {
  return Math.round((lo + rand() * (hi - lo)) * 10) / 10;
}

interface Point {
  lat: number;
  lon: number;
}

// Mainland China's box, roughly.
function randomPoint(rand: () => number): Point {
  return { lat: 20 + rand() * 25, lon: 80 + rand() * 45 };
}

/** Supplies that add up to `ratio` x the total demand (rounded to one decimal each). */
function suppliesFor(rand: () => number, m: number, totalDemand: number, ratio: number): Float64Array {
  const w = Array.from({ length: m }, () => 0.2 + rand());
  const sum = w.reduce((s, x) => s + x, 0);
  return Float64Array.from(w, (x) => Math.round(((x / sum) * totalDemand * ratio) * 10) / 10);
}

/**
 * Every supplier linked to every region, cost = haversine km between random points; supply is
 * `ratio` x demand (below 1: short).
 */
export function denseInstance(seed: number, m: number, n: number, ratio: number): TransportProblem {
  const rand = seededRandom(seed);
  const sites = Array.from({ length: m }, () => randomPoint(rand));
  const regions = Array.from({ length: n }, () => randomPoint(rand));
  const demand = Float64Array.from({ length: n }, () => quantity(rand, 50, 5000));
  const urgency = Float64Array.from({ length: n }, () => urgencyOf(rand));
  const supply = suppliesFor(rand, m, demand.reduce((s, x) => s + x, 0), ratio);
  const from = new Int32Array(m * n);
  const to = new Int32Array(m * n);
  const cost = new Float64Array(m * n);
  let a = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      from[a] = i;
      to[a] = j;
      cost[a] = haversineKm(sites[i]!.lat, sites[i]!.lon, regions[j]!.lat, regions[j]!.lon);
      a++;
    }
  }
  return { supply, demand, urgency, arcs: { from, to, cost } };
}

/**
 * A national instance: `counties` demand nodes and `sites` supplier sites clustered around 30
 * provincial centres, each county linked to its `nearest` nearest sites only (the arcs beyond are
 * forbidden), cost = haversine km; supply 0.9 x demand.
 */
export function sparseNationalInstance(seed: number, counties: number, sites: number, nearest: number): TransportProblem {
  const rand = seededRandom(seed);
  const centres = Array.from({ length: 30 }, () => randomPoint(rand));
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const around = (): Point => {
    const c = centres[Math.floor(rand() * centres.length)]!;
    return { lat: Math.max(-89, Math.min(89, c.lat + 1.5 * gauss())), lon: c.lon + 1.5 * gauss() };
  };
  const sitePts = Array.from({ length: sites }, around);
  const countyPts = Array.from({ length: counties }, around);
  const demand = Float64Array.from({ length: counties }, () => quantity(rand, 10, 20000));
  const urgency = Float64Array.from({ length: counties }, () => urgencyOf(rand));
  const supply = suppliesFor(rand, sites, demand.reduce((s, x) => s + x, 0), 0.9);
  const k = Math.min(nearest, sites);
  const from = new Int32Array(counties * k);
  const to = new Int32Array(counties * k);
  const cost = new Float64Array(counties * k);
  const dist = new Float64Array(sites);
  const order = new Int32Array(sites);
  let a = 0;
  for (let j = 0; j < counties; j++) {
    const c = countyPts[j]!;
    for (let i = 0; i < sites; i++) {
      dist[i] = haversineKm(sitePts[i]!.lat, sitePts[i]!.lon, c.lat, c.lon);
      order[i] = i;
    }
    order.sort((x, y) => dist[x]! - dist[y]! || x - y);
    for (let r = 0; r < k; r++) {
      from[a] = order[r]!;
      to[a] = j;
      cost[a] = dist[order[r]!]!;
      a++;
    }
  }
  return { supply, demand, urgency, arcs: { from, to, cost } };
}

export interface HighsSettings {
  /** Primal, dual and optimality tolerances; "default" leaves HiGHS's (1e-7). Default 1e-10, HiGHS's tightest. */
  tolerance?: number | "default";
  /** Phase 2 from scratch rather than from the phase 1 basis. */
  coldPhase2?: boolean;
  /** Further HiGHS options, such as { presolve: "off" }. */
  highs?: Record<string, string | number | boolean>;
}

export interface HighsLex {
  /** Phase 1 optimum: the largest urgency-weighted coverage. */
  coverage: number;
  /** Phase 2 optimum: the least cost with that coverage held. */
  cost: number;
  /** Phase 2 flow per arc. */
  flow: Float64Array;
  /** Relative slack phase 2 needed on the coverage row: 0 normally; see solveLexWithHighs. */
  slack: number;
  seconds: { build: number; phase1: number; phase2: number };
}

/**
 * The same lexicographic problem as an LP for HiGHS. Columns: x_a per arc (>= 0) and y_j per
 * demand node (0 <= y_j <= d_j, the covered need). Rows: sum_{a out of i} x_a <= s_i;
 * sum_{a into j} x_a - y_j = 0; and a coverage row sum_j u_j y_j, free in phase 1. Phase 1
 * maximises sum_j u_j y_j = W*. Phase 2 holds the coverage row at >= W* (HiGHS then allows its
 * primal feasibility tolerance; when it still calls that infeasible, at >= W* (1 - slack) with the
 * least slack from 1e-14 up that it accepts) and minimises sum_a c_a x_a, starting from the
 * phase 1 basis. The y_j columns keep that row to n entries rather than one per arc. Tolerances
 * are HiGHS's tightest (1e-10) unless `options.tolerance` says otherwise.
 */
export function solveLexWithHighs(highs: Highs, p: TransportProblem, options: HighsSettings = {}): HighsLex {
  const tolerance = options.tolerance === undefined ? 1e-10 : options.tolerance;
  const m = p.supply.length;
  const n = p.demand.length;
  const A = p.arcs.from.length;
  if (A === 0) return { coverage: 0, cost: 0, flow: new Float64Array(0), slack: 0, seconds: { build: 0, phase1: 0, phase2: 0 } };
  const t0 = performance.now();
  const numCols = A + n;
  const numRows = m + n + 1;
  const starts = new Int32Array(numCols + 1);
  const indices = new Int32Array(2 * numCols);
  const values = new Float64Array(2 * numCols);
  for (let a = 0; a < A; a++) {
    starts[a] = 2 * a;
    indices[2 * a] = p.arcs.from[a]!;
    values[2 * a] = 1;
    indices[2 * a + 1] = m + p.arcs.to[a]!;
    values[2 * a + 1] = 1;
  }
  for (let j = 0; j < n; j++) {
    const k = 2 * (A + j);
    starts[A + j] = k;
    indices[k] = m + j;
    values[k] = -1;
    indices[k + 1] = m + n;
    values[k + 1] = p.urgency[j]!;
  }
  starts[numCols] = 2 * numCols;
  const colCost = new Float64Array(numCols);
  const colLower = new Float64Array(numCols);
  const colUpper = new Float64Array(numCols).fill(Infinity);
  for (let j = 0; j < n; j++) {
    colCost[A + j] = p.urgency[j]!;
    colUpper[A + j] = p.demand[j]!;
  }
  const rowLower = new Float64Array(numRows);
  const rowUpper = new Float64Array(numRows);
  for (let i = 0; i < m; i++) {
    rowLower[i] = -Infinity;
    rowUpper[i] = p.supply[i]!;
  }
  rowLower[m + n] = -Infinity;
  rowUpper[m + n] = Infinity;
  const model = highs.createModel({
    numCols,
    numRows,
    sense: highs.constants.objectiveSense.maximize,
    colCost,
    colLower,
    colUpper,
    rowLower,
    rowUpper,
    matrix: { format: "csc", numRows, numCols, starts, indices, values },
  });
  try {
    model.options.set({ output_flag: false, ...options.highs });
    if (tolerance !== "default") {
      model.options.set({ primal_feasibility_tolerance: tolerance, dual_feasibility_tolerance: tolerance, optimality_tolerance: tolerance });
    }
    const t1 = performance.now();
    model.run();
    expectOptimal(model.getModelStatus(), "phase 1");
    const coverage = model.getObjectiveValue();
    const t2 = performance.now();
    const cost2 = new Float64Array(numCols);
    cost2.set(p.arcs.cost);
    if (options.coldPhase2) model.clearSolver();
    model.changeObjectiveSense(highs.constants.objectiveSense.minimize);
    model.changeColsCost({ kind: "range", from: 0, to: numCols - 1 }, cost2);
    // Hold the coverage at W* exactly; when HiGHS finds that infeasible by a rounding error, give
    // the least slack that it accepts. The slack matters: the least cost can fall steeply as the
    // coverage is let go (moving a unit between needs of nearly equal urgency can save a long
    // haul), so 1e-12 relative of coverage can be worth 1e-9 relative of cost.
    let slack = 0;
    for (;;) {
      model.changeRowBounds(m + n, coverage - slack * Math.abs(coverage), Infinity);
      model.run();
      if (model.getModelStatus() === 7 || slack >= 1e-11) break;
      slack = slack === 0 ? 1e-14 : slack * 10;
    }
    expectOptimal(model.getModelStatus(), "phase 2");
    const cost = model.getObjectiveValue();
    const flow = model.getSolution().colValue.slice(0, A);
    const t3 = performance.now();
    return { coverage, cost, flow, slack, seconds: { build: (t1 - t0) / 1000, phase1: (t2 - t1) / 1000, phase2: (t3 - t2) / 1000 } };
  } finally {
    model.dispose();
  }
}

function expectOptimal(status: number, phase: string) {
  if (status !== 7) throw new Error(`HiGHS ${phase}: model status ${status}, not optimal (7)`, { cause: status });
}

/**
 * The largest bound violation of a solution, relative to the problem's scale (the largest
 * supply or demand): negative flow, supplier outflow over supply, inflow over need.
 */
export function boundViolation(p: TransportProblem, flow: Float64Array): number {
  const out = new Float64Array(p.supply.length);
  const inflow = new Float64Array(p.demand.length);
  let worst = 0;
  for (let a = 0; a < flow.length; a++) {
    const f = flow[a]!;
    worst = Math.max(worst, -f);
    out[p.arcs.from[a]!]! += f;
    inflow[p.arcs.to[a]!]! += f;
  }
  for (let i = 0; i < out.length; i++) worst = Math.max(worst, out[i]! - p.supply[i]!);
  for (let j = 0; j < inflow.length; j++) worst = Math.max(worst, inflow[j]! - p.demand[j]!);
  return worst;
}

const relDiff = (a: number, b: number) => (a === b ? 0 : Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b)));

/** Wall and CPU (user + system, this process) milliseconds of one call. */
function timed<T>(f: () => T): { value: T; wall: number; cpu: number } {
  const c = process.cpuUsage();
  const t = performance.now();
  const value = f();
  const wall = performance.now() - t;
  const used = process.cpuUsage(c);
  return { value, wall, cpu: (used.user + used.system) / 1000 };
}

interface Row {
  name: string;
  arcs: number;
  supplyRatio: number;
  ours: TransportSolution;
  oursWall: number;
  oursCpu: number;
  highs?: HighsLex;
  highsWall?: number;
  highsCpu?: number;
  /** Largest bound violation of our flows, relative to the largest need. */
  violation: number;
}

/** Our solver, timed as the median of `runs` runs (wall and CPU medians taken separately). */
function timeOurs(p: TransportProblem, runs: number) {
  const walls: number[] = [];
  const cpus: number[] = [];
  let solution: TransportSolution | undefined;
  for (let r = 0; r < runs; r++) {
    const t = timed(() => solveTransport(p));
    solution = t.value;
    walls.push(t.wall);
    cpus.push(t.cpu);
  }
  const median = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  return { solution: solution!, wall: median(walls), cpu: median(cpus) };
}

function row(name: string, p: TransportProblem, supplyRatio: number, runs: number, highs: Highs | undefined, highsOptions: HighsSettings): Row {
  const ours = timeOurs(p, runs);
  const r: Row = {
    name,
    arcs: p.arcs.from.length,
    supplyRatio,
    ours: ours.solution,
    oursWall: ours.wall,
    oursCpu: ours.cpu,
    violation: boundViolation(p, ours.solution.flow) / Math.max(1, ...p.demand),
  };
  if (highs) {
    const h = timed(() => solveLexWithHighs(highs, p, highsOptions));
    r.highs = h.value;
    r.highsWall = h.wall;
    r.highsCpu = h.cpu;
  }
  return r;
}

const sig = (x: number) => x.toPrecision(12);
const msText = (x: number) => (x < 10 ? x.toFixed(1) : x.toFixed(0));

function printTable(rows: Row[]) {
  console.log("| instance (suppliers x regions) | arcs | supply / demand | weighted coverage: ours / HiGHS | cost (km x units): ours / HiGHS | relative difference (coverage, cost) | ours ms: wall / CPU (pivots) | HiGHS ms: wall / CPU | speed-up: wall / CPU |");
  console.log("|---|---:|---:|---|---|---|---|---|---|");
  for (const r of rows) {
    const h = r.highs;
    const diff = h ? `${relDiff(r.ours.weightedCoverage, h.coverage).toExponential(1)}, ${relDiff(r.ours.cost, h.cost).toExponential(1)}` : "-";
    const hMs = h ? `${msText(r.highsWall!)} / ${msText(r.highsCpu!)}` : "not run";
    const speed = h ? `${(r.highsWall! / r.oursWall).toFixed(0)}x / ${(r.highsCpu! / r.oursCpu).toFixed(0)}x` : "-";
    console.log(
      `| ${r.name} | ${r.arcs.toLocaleString("en")} | ${r.supplyRatio.toFixed(2)} | ${sig(r.ours.weightedCoverage)} / ${h ? sig(h.coverage) : "-"} | ` +
        `${sig(r.ours.cost)} / ${h ? sig(h.cost) : "-"} | ${diff} | ${msText(r.oursWall)} / ${msText(r.oursCpu)} (${r.ours.pivots}) | ${hMs} | ${speed} |`,
    );
  }
}

export async function runMatchBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      seed: { type: "string", default: "1" },
      sizes: { type: "string", default: "200x200,500x200,1000x300,1000x1000" },
      counties: { type: "string", default: "3000" },
      sites: { type: "string", default: "2000" },
      nearest: { type: "string", default: "30" },
      runs: { type: "string", default: "5" },
      "no-sparse-highs": { type: "boolean", default: false },
      "highs-options": { type: "string", default: "{}" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(MATCH_USAGE);
    return;
  }
  const int = (name: string, v: string, min: number, max: number) => {
    const x = Number(v);
    if (!Number.isInteger(x) || x < min || x > max) throw new Error(`--${name} must be a whole number from ${min} to ${max}, got ${v}`);
    return x;
  };
  const seed = int("seed", values.seed, 0, 2 ** 31);
  const runs = int("runs", values.runs, 1, 51);
  const counties = int("counties", values.counties, 1, 100_000);
  const sites = int("sites", values.sites, 1, 100_000);
  const nearest = int("nearest", values.nearest, 1, 1000);
  const sizes = values.sizes.split(",").map((s) => {
    const match = /^(\d+)x(\d+)$/.exec(s.trim());
    if (!match) throw new Error(`--sizes: "${s}" is not SUPPLIERSxREGIONS`);
    return [int("sizes", match[1]!, 1, 5000), int("sizes", match[2]!, 1, 5000)] as const;
  });
  // HiGHS as shipped (its default tolerances, presolve and solver choice) unless told otherwise,
  // each phase solved from scratch: starting phase 2 from the phase 1 basis made it 2-3x slower on
  // 500x200 and 1000x300.
  const highsOptions: HighsSettings = { tolerance: "default", coldPhase2: true, highs: JSON.parse(values["highs-options"]) as Record<string, string | number | boolean> };

  const highs = await loadHighs();
  console.log(
    `match bench, seed ${seed}: Node ${process.version}, highs ${highsPackageVersion()} (HiGHS ${highs.version.string}, WebAssembly, one thread; default tolerances, ` +
      `extra options ${JSON.stringify(highsOptions.highs)}, each phase from scratch); ${cpus()[0]?.model ?? "unknown CPU"}, ${availableParallelism()} cores, ` +
      `load average ${loadavg().map((x) => x.toFixed(1)).join(" ")}`,
  );
  // Warm-ups, so neither side's timed runs pay for compilation: V8 needs a few solves to optimise
  // ours (the cold first solve is reported on its own), HiGHS's WebAssembly one.
  const warm = denseInstance(seed + 999, 300, 300, 0.9);
  const cold = timed(() => solveTransport(warm));
  for (let k = 0; k < 5; k++) solveTransport(warm);
  solveLexWithHighs(highs, denseInstance(seed + 998, 100, 100, 0.8), highsOptions);

  // Supply short of demand in the 200x200, 1000x300 and 1000x1000 instances, ample in 500x200.
  const ratios = [0.8, 1.3, 0.9, 0.9];
  const rows: Row[] = [];
  for (const [k, [m, n]] of sizes.entries()) {
    const ratio = ratios[k % ratios.length]!;
    console.error(`  dense ${m}x${n}...`);
    rows.push(row(`dense ${m}x${n}`, denseInstance(seed + k, m, n, ratio), ratio, runs, highs, highsOptions));
  }
  console.error(`  sparse national...`);
  const sparse = sparseNationalInstance(seed, counties, sites, nearest);
  rows.push(row(`sparse national ${sites}x${counties}, ${nearest} nearest`, sparse, 0.9, runs, values["no-sparse-highs"] ? undefined : highs, highsOptions));

  console.log();
  printTable(rows);
  console.log();
  const worst = Math.max(...rows.map((r) => r.violation));
  console.log(`largest bound violation of our flows, relative to the largest need: ${worst === 0 ? "0" : worst.toExponential(1)}`);
  console.log(
    `ours: median of ${runs} runs after warm-up solves (a cold first solve, in a fresh process, of a dense 300x300 took ${msText(cold.wall)} ms wall, ${msText(cold.cpu)} ms CPU); ` +
      `HiGHS: one run (model copy into WebAssembly + phase 1 + phase 2) after a warm-up solve.`,
  );
  console.log(`CPU = user + system time of this process; under contention from other processes wall time also counts waiting for a core.`);
}

/** The installed `highs` package's version (its package.json is not in its exports map). */
function highsPackageVersion(): string {
  try {
    const entry = createRequire(import.meta.url).resolve("highs");
    const pkg = JSON.parse(readFileSync(join(dirname(entry), "..", "package.json"), "utf8")) as { version: string };
    return pkg.version;
  } catch {
    return "?";
  }
}

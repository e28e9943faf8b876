// The transport solver (src/domain/matching/solver.ts) against HiGHS on many seeded random
// instances, degenerate ones included, plus small cases worked by hand, input validation and the
// distance helpers. HiGHS solves the same lexicographic problem as two LPs (bench/match.ts,
// solveLexWithHighs): phase 1 gives the largest urgency-weighted coverage, phase 2 the least cost
// with that coverage held. Every flow is also checked against every bound, and for optimality
// with the min-cost-flow certificate in exact arithmetic (checkNoImprovingCycle), which does not
// depend on HiGHS or its tolerances. A failure names its seed and kind, so it reproduces.
import { beforeAll, describe, expect, it } from "vitest";
import { loadHighs, seededRandom, solveLexWithHighs, type Highs } from "../bench/match.js";
import { DomainError } from "../src/domain/errors.js";
import { EARTH_RADIUS_KM, haversineKm, solveTransport, treeDistance, type SolveOptions, type TransportProblem, type TransportSolution } from "../src/domain/matching/solver.js";

let highs: Highs;
beforeAll(async () => {
  highs = await loadHighs();
});

function problem(supply: number[], demand: number[], urgency: number[], arcs: [number, number, number][]): TransportProblem {
  return {
    supply: Float64Array.from(supply),
    demand: Float64Array.from(demand),
    urgency: Float64Array.from(urgency),
    arcs: {
      from: Int32Array.from(arcs, (a) => a[0]),
      to: Int32Array.from(arcs, (a) => a[1]),
      cost: Float64Array.from(arcs, (a) => a[2]),
    },
  };
}

function max(xs: ArrayLike<number>): number {
  let m = 0;
  for (let k = 0; k < xs.length; k++) m = Math.max(m, xs[k]!);
  return m;
}

function sum(xs: ArrayLike<number>): number {
  let s = 0;
  for (let k = 0; k < xs.length; k++) s += xs[k]!;
  return s;
}

/**
 * Every bound, exactly for signs and to the rounding of a sum for totals: 0 <= flow, supplier
 * outflow <= supply, inflow <= need; `covered`, `shipped`, `cost` and `weightedCoverage` agree with
 * the flows. Flows exist only on the given (allowed) arcs: the flow vector is indexed by them.
 */
function checkBounds(p: TransportProblem, s: TransportSolution, label: string) {
  const A = p.arcs.from.length;
  expect(s.flow.length, label).toBe(A);
  const slack = 1e-12 * Math.max(max(p.supply), max(p.demand), 1);
  const out = new Float64Array(p.supply.length);
  const inflow = new Float64Array(p.demand.length);
  let cost = 0;
  for (let a = 0; a < A; a++) {
    const f = s.flow[a]!;
    if (!(f >= 0 && Number.isFinite(f))) throw new Error(`${label}: flow[${a}] = ${f}`);
    out[p.arcs.from[a]!]! += f;
    inflow[p.arcs.to[a]!]! += f;
    cost += f * p.arcs.cost[a]!;
  }
  for (let i = 0; i < out.length; i++) {
    if (out[i]! > p.supply[i]! + slack) throw new Error(`${label}: supplier ${i} ships ${out[i]} > ${p.supply[i]}`);
    expect(Math.abs(s.shipped[i]! - out[i]!), `${label}: shipped[${i}]`).toBeLessThanOrEqual(slack);
    expect(s.shipped[i]!, label).toBeLessThanOrEqual(p.supply[i]!);
  }
  let weighted = 0;
  for (let j = 0; j < inflow.length; j++) {
    if (inflow[j]! > p.demand[j]! + slack) throw new Error(`${label}: demand ${j} receives ${inflow[j]} > ${p.demand[j]}`);
    expect(Math.abs(s.covered[j]! - inflow[j]!), `${label}: covered[${j}]`).toBeLessThanOrEqual(slack);
    expect(s.covered[j]! >= 0 && s.covered[j]! <= p.demand[j]!, `${label}: covered[${j}] within [0, need]`).toBe(true);
    weighted += p.urgency[j]! * s.covered[j]!;
  }
  expect(Math.abs(s.cost - cost), `${label}: cost`).toBeLessThanOrEqual(1e-12 * Math.max(Math.abs(cost), 1) * 10);
  expect(Math.abs(s.weightedCoverage - weighted), `${label}: weightedCoverage`).toBeLessThanOrEqual(1e-12 * Math.max(weighted, 1) * 10);
}

/** Both lexicographic objectives equal HiGHS's to 1e-9 relative (plus 1e-12 of the scale, for an optimum of 0). */
function checkAgainstHighs(p: TransportProblem, s: TransportSolution, label: string) {
  let h: ReturnType<typeof solveLexWithHighs>;
  try {
    h = solveLexWithHighs(highs, p);
  } catch (error) {
    throw new Error(`${label}: ${(error as Error).message}`);
  }
  const scaleW = max(p.urgency) * sum(p.demand);
  const scaleC = max(p.arcs.cost) * sum(p.supply);
  const close = (ours: number, ref: number, scale: number) => Math.abs(ours - ref) <= 1e-9 * Math.max(Math.abs(ours), Math.abs(ref)) + 1e-12 * scale;
  if (!close(s.weightedCoverage, h.coverage, scaleW)) {
    throw new Error(`${label}: weighted coverage ${s.weightedCoverage} but HiGHS phase 1 gives ${h.coverage}`);
  }
  if (!close(s.cost, h.cost, scaleC)) throw new Error(`${label}: cost ${s.cost} but HiGHS phase 2 gives ${h.cost}`);
}

/** A double as an exact integer: x * 2^1100 (every finite double times that is a whole number). */
function exact(x: number): bigint {
  if (x === 0) return 0n;
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const hi = view.getUint32(0);
  const lo = view.getUint32(4);
  const biased = (hi >>> 20) & 0x7ff;
  const fraction = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  const mantissa = biased === 0 ? fraction : fraction | (1n << 52n);
  const shift = 1100n + BigInt(biased === 0 ? -1074 : biased - 1075);
  return (hi >>> 31 ? -1n : 1n) * (mantissa << shift);
}

/**
 * The optimality certificate of min-cost flow, checked in exact arithmetic and independently of
 * HiGHS: the residual network of the flow (the network of solver.ts: transport, coverage and idle
 * arcs, costs as (primary, secondary) = (-urgency, 0) or (0, cost) pairs) has no cycle of negative
 * cost in lexicographic order, so no change of the flow raises the weighted coverage, nor lowers
 * the cost without lowering it. Bellman-Ford with BigInt pairs. A flow below 1e-12 of the largest
 * quantity counts as 0 (cannot be decreased): rounding leaves such residues.
 */
function checkNoImprovingCycle(p: TransportProblem, s: TransportSolution, label: string) {
  const m = p.supply.length;
  const n = p.demand.length;
  const root = m + n;
  const zero = 1e-12 * Math.max(max(p.supply), max(p.demand));
  const edges: [number, number, bigint, bigint][] = [];
  for (let a = 0; a < s.flow.length; a++) {
    const from = p.arcs.from[a]!;
    const to = m + p.arcs.to[a]!;
    const c = exact(p.arcs.cost[a]!);
    edges.push([from, to, 0n, c]);
    if (s.flow[a]! > zero) edges.push([to, from, 0n, -c]);
  }
  for (let j = 0; j < n; j++) {
    const u = exact(p.urgency[j]!);
    if (s.covered[j]! < p.demand[j]! - zero) edges.push([m + j, root, -u, 0n]);
    if (s.covered[j]! > zero) edges.push([root, m + j, u, 0n]);
  }
  for (let i = 0; i < m; i++) {
    edges.push([i, root, 0n, 0n]);
    if (s.shipped[i]! < p.supply[i]! - zero) edges.push([root, i, 0n, 0n]);
  }
  const V = m + n + 1;
  const dp = new Array<bigint>(V).fill(0n);
  const ds = new Array<bigint>(V).fill(0n);
  for (let round = 0; round < V; round++) {
    let changed = false;
    for (const [from, to, cp, cs] of edges) {
      const np = dp[from]! + cp;
      const ns = ds[from]! + cs;
      if (np < dp[to]! || (np === dp[to]! && ns < ds[to]!)) {
        dp[to] = np;
        ds[to] = ns;
        changed = true;
      }
    }
    if (!changed) return;
  }
  throw new Error(`${label}: the residual network has a lexicographically negative cycle: the flow is not optimal`);
}

function solveAndCheck(p: TransportProblem, label: string, options?: SolveOptions): TransportSolution {
  const s = solveTransport(p, options);
  checkBounds(p, s, label);
  checkNoImprovingCycle(p, s, label);
  checkAgainstHighs(p, s, label);
  return s;
}

type Rand = () => number;
const int = (rand: Rand, lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
const pick = <T,>(rand: Rand, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

/**
 * A random instance whose every feature is drawn from a menu that includes the degenerate
 * choices: integer quantities and costs from a tiny range (ties everywhere), zero or equal costs,
 * equal urgencies, zero supplies and needs, supply from none to three times demand, sparse arcs
 * (forbidden pairs, demand nodes with no arc), parallel arcs, a single supplier.
 */
function randomInstance(seed: number): { p: TransportProblem; kind: string } {
  const rand = seededRandom(seed);
  const m = pick(rand, [1, 1, 2, 3, 5, 8, 12, 20]);
  const n = pick(rand, [1, 2, 3, 5, 8, 12, 20]);
  const qty = pick(rand, ["real", "small-int", "with-zeros"] as const);
  const costs = pick(rand, ["real", "small-int", "zero", "equal", "km"] as const);
  const urg = pick(rand, ["real", "levels", "equal"] as const);
  const density = pick(rand, [1, 1, 0.6, 0.3]);
  const ratio = pick(rand, [0, 0.3, 0.7, 1, 1, 1.5, 3]);
  const parallel = rand() < 0.2;
  const quantity = () => (qty === "small-int" ? int(rand, 1, 6) : qty === "with-zeros" && rand() < 0.3 ? 0 : Math.round(rand() * 80_000) / 2);
  const demand = Array.from({ length: n }, quantity);
  const weights = Array.from({ length: m }, () => (qty === "with-zeros" && rand() < 0.3 ? 0 : qty === "small-int" ? int(rand, 1, 4) : rand()));
  const wSum = sum(weights) || 1;
  const total = sum(demand) * ratio;
  const supply = weights.map((w) => (qty === "small-int" ? Math.round((w / wSum) * total) : Math.round((w / wSum) * total * 2) / 2));
  const urgency = Array.from({ length: n }, () => (urg === "equal" ? 3 : urg === "levels" ? pick(rand, [1, 2, 4, 8]) : 0.1 + rand() * 10));
  const equalCost = rand() * 100;
  const cost = () =>
    costs === "real" ? rand() * 3000 : costs === "small-int" ? int(rand, 0, 3) : costs === "zero" ? 0 : costs === "equal" ? equalCost : haversineKm(20 + rand() * 25, 80 + rand() * 45, 20 + rand() * 25, 80 + rand() * 45);
  const arcs: [number, number, number][] = [];
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      if (rand() >= density) continue;
      arcs.push([i, j, cost()]);
      if (parallel && rand() < 0.3) arcs.push([i, j, cost()]);
    }
  }
  // Shuffle, so arcs are not always grouped by supplier.
  for (let k = arcs.length - 1; k > 0; k--) {
    const r = Math.floor(rand() * (k + 1));
    [arcs[k], arcs[r]] = [arcs[r]!, arcs[k]!];
  }
  const kind = `${m}x${n} qty=${qty} costs=${costs} urgency=${urg} density=${density} supply/demand=${ratio}${parallel ? " parallel" : ""}`;
  return { p: problem(supply, demand, urgency, arcs), kind };
}

describe("solveTransport against HiGHS", () => {
  it("matches both lexicographic optima on 500 random instances, degenerate ones included", () => {
    const kinds = new Set<string>();
    for (let seed = 1; seed <= 500; seed++) {
      const { p, kind } = randomInstance(seed);
      kinds.add(kind.replace(/^\d+x\d+ /, ""));
      solveAndCheck(p, `seed ${seed} (${kind})`);
    }
    expect(kinds.size).toBeGreaterThan(150); // the menu was really sampled
  });

  it("matches on medium instances, with and without the candidate-arc first phase", () => {
    for (let seed = 1001; seed <= 1012; seed++) {
      const rand = seededRandom(seed);
      const m = int(rand, 20, 60);
      const n = int(rand, 20, 60);
      const ratio = pick(rand, [0.5, 0.9, 1.2]);
      const demand = Array.from({ length: n }, () => Math.round(rand() * 20_000) / 4);
      const total = sum(demand) * ratio;
      const w = Array.from({ length: m }, () => rand());
      const supply = w.map((x) => (x / sum(w)) * total);
      const urgency = Array.from({ length: n }, () => pick(rand, [1, 2, 4, 8]) * (1 + 1 / (1 + int(rand, 0, 28))));
      const tie = rand() < 0.5;
      const arcs: [number, number, number][] = [];
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) if (rand() < 0.9) arcs.push([i, j, tie ? int(rand, 0, 5) : rand() * 2500]);
      const p = problem(supply, demand, urgency, arcs);
      const label = `seed ${seed} (${m}x${n}, supply/demand ${ratio}, ${tie ? "tied" : "real"} costs)`;
      const a = solveAndCheck(p, `${label}, all arcs priced`, { candidatesPerNode: 0 });
      const b = solveAndCheck(p, `${label}, 2 candidates per node first`, { candidatesPerNode: 2 });
      expect(b.pivots).toBeGreaterThan(0);
      expect(Math.abs(a.cost - b.cost)).toBeLessThanOrEqual(1e-9 * Math.max(a.cost, 1));
    }
  });

  it("finds flows optimal in exact arithmetic when the data span many orders of magnitude", () => {
    // Quantities over 6 orders around a scale from 1e-3 to 1e6, urgencies from 1e-3 to 1e3, costs
    // from 1e-4 to 1e4 (a fifth of them 0). Here the least cost is so sensitive to the coverage that
    // HiGHS, whose answers carry its 1e-10 feasibility tolerance, lands up to ~3e-8 below our cost
    // with a flow that the exact certificate shows is not optimal; so HiGHS is the reference for
    // the coverage only, and the certificate for the rest.
    for (let seed = 1; seed <= 60; seed++) {
      const rand = seededRandom(seed * 7919);
      const m = int(rand, 1, 30);
      const n = int(rand, 1, 30);
      const logUniform = (lo: number, hi: number) => Math.exp(Math.log(lo) + rand() * (Math.log(hi) - Math.log(lo)));
      const scale = logUniform(1e-3, 1e6);
      const supply = Array.from({ length: m }, () => (rand() < 0.1 ? 0 : scale * logUniform(1e-3, 1e3)));
      const demand = Array.from({ length: n }, () => (rand() < 0.1 ? 0 : scale * logUniform(1e-3, 1e3)));
      const urgency = Array.from({ length: n }, () => logUniform(1e-3, 1e3));
      const density = rand();
      const arcs: [number, number, number][] = [];
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) if (rand() < density) arcs.push([i, j, rand() < 0.2 ? 0 : logUniform(1e-4, 1e4)]);
      const p = problem(supply, demand, urgency, arcs);
      const label = `extreme seed ${seed} (${m}x${n})`;
      const s = solveTransport(p);
      checkBounds(p, s, label);
      checkNoImprovingCycle(p, s, label);
      const h = solveLexWithHighs(highs, p);
      expect(Math.abs(s.weightedCoverage - h.coverage), label).toBeLessThanOrEqual(1e-9 * Math.max(s.weightedCoverage, h.coverage) + 1e-300);
    }
  });

  it("the exact certificate does reject a flow that is not optimal", () => {
    const p = problem([10], [6, 6], [1, 1], [[0, 0, 5], [0, 1, 1]]);
    const best = solveTransport(p);
    expect(() => checkNoImprovingCycle(p, best, "optimal")).not.toThrow();
    const costly = { ...best, flow: Float64Array.from([6, 4]), covered: Float64Array.from([6, 4]) };
    expect(() => checkNoImprovingCycle(p, costly, "costly")).toThrow(/negative cycle/);
    const short = { ...best, flow: Float64Array.from([0, 6]), covered: Float64Array.from([0, 6]), shipped: Float64Array.from([6]) };
    expect(() => checkNoImprovingCycle(p, short, "short")).toThrow(/negative cycle/);
  });

  it("matches on the degenerate families one by one", () => {
    const rand = seededRandom(77);
    const cases: [string, TransportProblem][] = [];
    for (let k = 0; k < 10; k++) {
      const n = int(rand, 1, 15);
      const demand = Array.from({ length: n }, () => int(rand, 0, 5) * 1000.5);
      const urgency = Array.from({ length: n }, () => pick(rand, [1, 1, 2]));
      const all = (c: () => number, i = 0) => Array.from({ length: n }, (_, j) => [i, j, c()] as [number, number, number]);
      cases.push([`single supplier, short ${k}`, problem([sum(demand) / 2], demand, urgency, all(() => int(rand, 0, 2)))]);
      cases.push([`single supplier, ample ${k}`, problem([sum(demand) * 2], demand, urgency, all(() => rand() * 10))]);
      cases.push([`no supply ${k}`, problem([0, 0], demand, urgency, [...all(() => 1, 0), ...all(() => 2, 1)])]);
      cases.push([`no suppliers at all ${k}`, problem([], demand, urgency, [])]);
      cases.push([`no demand ${k}`, problem([5, 7], demand.map(() => 0), urgency, [...all(() => 1, 0), ...all(() => 2, 1)])]);
      cases.push([`no arcs ${k}`, problem([5, 7], demand, urgency, [])]);
      cases.push([`zero costs, equal urgency ${k}`, problem([sum(demand) * 0.6, 1], demand, demand.map(() => 1), [...all(() => 0, 0), ...all(() => 0, 1)])]);
      cases.push([
        `half the demand nodes disconnected ${k}`,
        problem([sum(demand) * 0.4, sum(demand) * 0.4], demand, urgency, [...all(() => rand() * 5, 0), ...all(() => rand() * 5, 1)].filter((a) => a[1] % 2 === 0)),
      ]);
    }
    cases.push(["no demand nodes", problem([3, 4], [], [], [])]);
    cases.push(["nothing at all", problem([], [], [], [])]);
    for (const [label, p] of cases) solveAndCheck(p, label);
  });
});

describe("solveTransport by hand", () => {
  it("covers the most urgent need first even when it costs more", () => {
    // One supplier of 10; needs of 6 (urgency 2, 5 km away) and 6 (urgency 1, 1 km away).
    const s = solveTransport(problem([10], [6, 6], [2, 1], [[0, 0, 5], [0, 1, 1]]));
    expect(Array.from(s.covered)).toEqual([6, 4]);
    expect(s.weightedCoverage).toBe(16);
    expect(s.cost).toBe(34);
  });

  it("with equal urgency, covers as much as possible at the least cost", () => {
    const s = solveTransport(problem([10], [6, 6], [1, 1], [[0, 0, 5], [0, 1, 1]]));
    expect(Array.from(s.flow)).toEqual([4, 6]);
    expect(s.cost).toBe(26);
  });

  it("reroutes a supplier to reach more weighted need rather than serving the urgent node from it", () => {
    // A can reach the urgent H and the low L; B can reach only H. Both must be used: B -> H, A -> L.
    const s = solveTransport(problem([1, 1], [1, 1], [10, 1], [[0, 0, 0], [0, 1, 100], [1, 0, 50]]));
    expect(Array.from(s.flow)).toEqual([0, 1, 1]);
    expect(s.weightedCoverage).toBe(11);
    expect(s.cost).toBe(150);
  });

  it("solves the classic balanced case at least cost, leaving surplus supply idle", () => {
    const s = solveTransport(problem([5, 5], [4, 4], [1, 1], [[0, 0, 1], [0, 1, 3], [1, 0, 2], [1, 1, 1]]));
    expect(Array.from(s.flow)).toEqual([4, 0, 0, 4]);
    expect(Array.from(s.shipped)).toEqual([4, 4]);
    expect(s.cost).toBe(8);
  });

  it("keeps real quantities exact", () => {
    const s = solveTransport(problem([40_000.5, 0.25], [20_000.25, 20_000.5], [1, 1], [[0, 0, 2], [0, 1, 1], [1, 0, 0]]));
    expect(Array.from(s.covered)).toEqual([20_000.25, 20_000.5]);
    expect(Array.from(s.flow)).toEqual([20_000, 20_000.5, 0.25]);
    expect(s.cost).toBe(60_000.5);
  });

  it("does not trade a sliver of weighted coverage for a large saving", () => {
    // Urgencies 1 and 1 + 1e-9: the second need is covered first, though it costs 1000 more.
    const s = solveTransport(problem([1], [1, 1], [1, 1 + 1e-9], [[0, 0, 0], [0, 1, 1000]]));
    expect(Array.from(s.flow)).toEqual([0, 1]);
  });

  it("is deterministic and ignores arcs that cannot carry flow", () => {
    const { p } = randomInstance(4242);
    const a = solveTransport(p);
    const b = solveTransport(p);
    expect(Buffer.from(a.flow.buffer).equals(Buffer.from(b.flow.buffer))).toBe(true);
    const s = solveTransport(problem([0, 3], [2, 0], [1, 1], [[0, 0, 1], [1, 1, 1], [1, 0, 7]]));
    expect(Array.from(s.flow)).toEqual([0, 0, 2]);
  });

  it("rejects bad input with BAD_INPUT and a message that says what is wrong", () => {
    const ok = () => problem([1], [1], [1], [[0, 0, 1]]);
    const bad = (mutate: (p: TransportProblem) => void, message: RegExp) => {
      const p = ok();
      mutate(p);
      let error: unknown;
      try {
        solveTransport(p);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(DomainError);
      expect((error as DomainError).code).toBe("BAD_INPUT");
      expect((error as DomainError).message).toMatch(message);
    };
    bad((p) => (p.supply[0] = -1), /supply\[0\] must be a finite number >= 0, got -1/);
    bad((p) => (p.supply[0] = Infinity), /supply\[0\]/);
    bad((p) => (p.demand[0] = NaN), /demand\[0\] must be a finite number >= 0, got NaN/);
    bad((p) => (p.urgency[0] = 0), /urgency\[0\] must be a finite number > 0, got 0/);
    bad((p) => (p.urgency[0] = -2), /urgency\[0\]/);
    bad((p) => (p.arcs.cost[0] = -0.5), /arcs.cost\[0\] must be a finite number >= 0/);
    bad((p) => (p.arcs.cost[0] = NaN), /arcs.cost\[0\]/);
    bad((p) => (p.arcs.from[0] = 1), /arcs.from\[0\] = 1 is not a supplier index \(0..0\)/);
    bad((p) => (p.arcs.to[0] = -1), /arcs.to\[0\] = -1 is not a demand index/);
    bad((p) => (p.urgency = new Float64Array(2).fill(1)), /urgency has 2 entries but demand has 1/);
    bad((p) => (p.arcs.cost = new Float64Array(0)), /same length/);
    bad((p) => ((p as any).supply = [1]), /supply must be a Float64Array/);
    bad((p) => (p.supply = new Float64Array([Number.MAX_VALUE, Number.MAX_VALUE])), /total supply and total demand must be finite/);
  });
});

describe("distances", () => {
  it("haversineKm: known distances, symmetry, zero, antipodes", () => {
    // Beijing (Tiananmen) to Shanghai (People's Square): about 1,067 km great-circle.
    const d = haversineKm(39.9042, 116.4074, 31.2304, 121.4737);
    expect(d).toBeGreaterThan(1060);
    expect(d).toBeLessThan(1075);
    expect(haversineKm(31.2304, 121.4737, 39.9042, 116.4074)).toBe(d);
    expect(haversineKm(10, 20, 10, 20)).toBe(0);
    // One degree of latitude: pi R / 180.
    expect(haversineKm(0, 0, 1, 0)).toBeCloseTo((Math.PI * EARTH_RADIUS_KM) / 180, 9);
    expect(haversineKm(0, 0, 0, 180)).toBeCloseTo(Math.PI * EARTH_RADIUS_KM, 6);
    expect(haversineKm(0, 179.5, 0, -179.5)).toBeCloseTo(haversineKm(0, 0, 0, 1), 9); // across the date line
    expect(() => haversineKm(91, 0, 0, 0)).toThrow(/lat1 must be a latitude/);
    expect(() => haversineKm(0, NaN, 0, 0)).toThrow(/lon1 must be a finite longitude/);
  });

  it("treeDistance: steps up to the common ancestor and down", () => {
    expect(treeDistance("/1/7/42/", "/1/7/42/")).toBe(0);
    expect(treeDistance("/1/7/42/", "/1/7/")).toBe(1);
    expect(treeDistance("/1/7/42/", "/1/7/43/")).toBe(2);
    expect(treeDistance("/1/7/42/", "/1/8/")).toBe(3);
    expect(treeDistance("/1/8/", "/1/7/42/")).toBe(3);
    expect(treeDistance("/1/", "/1/7/42/")).toBe(2);
    expect(treeDistance("/1/7/", "/2/9/")).toBe(4); // separate trees, through a virtual super-root
    expect(treeDistance("/1/7/", "/1/70/")).toBe(2); // segments compare whole, not by prefix
    for (const badPath of ["", "/", "1/7/", "/1/7", "/1//7/", "//"]) {
      expect(() => treeDistance(badPath, "/1/"), badPath).toThrow(/pathA must be a region path/);
    }
  });
});

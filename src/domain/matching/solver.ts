// The exact transportation solver behind matching (SPEC "Matching"): suppliers with capacities,
// demand nodes with needs and urgency weights, allowed arcs with costs. Pure, no I/O, deterministic
// (the same input gives the same flows, bit for bit).
//
// ## Formulation
//
// Suppliers i = 0..m-1 with capacity s_i >= 0; demand nodes j = 0..n-1 with need d_j >= 0 and
// urgency u_j > 0; allowed arcs a = (i -> j) with cost c_a >= 0 (a forbidden pair, beyond the
// maximum distance or lead time, is simply not an arc; parallel arcs are allowed). Variables: the
// flow x_a >= 0 on each arc.
//
//     shipped_i = sum_{a out of i} x_a <= s_i          (capacity)
//     covered_j = sum_{a into j}  x_a <= d_j          (need)
//
// Objective, lexicographic: first maximise the urgency-weighted covered need
// W(x) = sum_j u_j covered_j; then, among all x that reach the maximum W*, minimise the cost
// C(x) = sum_a c_a x_a. When supply covers every reachable need, W* covers it all and this is
// the plain minimum-cost transportation problem; when supply is short, a unit goes where it
// weighs most, and cost only decides between equally weighted ways of covering. (Because W is a
// weighted sum, covering two units of urgency 1 is worth as much as one unit of urgency 2; a caller
// that wants strict priority classes gives the classes weights far enough apart.)
//
// As a minimum-cost flow: nodes are the suppliers, the demand nodes and one root T; supplier i
// supplies s_i and T absorbs sum_i s_i. Arcs, each with a cost *pair* (primary, secondary):
//
//     transport  i -> j   capacity infinite   cost (0, c_a)
//     coverage   j -> T   capacity d_j        cost (-u_j, 0)
//     idle       i -> T   capacity infinite   cost (0, 0)
//
// Feasible flows of this network and feasible x correspond one to one (idle flow = s_i - shipped_i
// >= 0, coverage flow = covered_j <= d_j), and the cost of a flow is the pair (-W(x), C(x)).
// Minimising that pair in lexicographic order is exactly the rule above.
//
// ## Why this is exact (no penalty constant)
//
// A big-M penalty (cost c_a - M u_j) is exact only if M dominates every possible trade of coverage
// for cost, a bound that depends on the data and that floating point erodes. Instead the network
// simplex below works with the cost pairs themselves. Pairs ordered lexicographically form an
// ordered group, and the simplex method needs nothing more: node potentials pi and reduced costs
// r_a = cost_a + pi_tail - pi_head are pairs, and pricing compares them in that order. Optimality
// certificate: when every non-tree arc at its lower bound has r_a >=lex 0 and every one at its
// upper bound has r_a <=lex 0, then for any feasible flow y,
//     cost(y) - cost(x) = sum_a r_a (y_a - x_a)
// (the potentials cancel by flow conservation, tree arcs have r_a = 0), and every term is >=lex 0
// (y_a - x_a >= 0 at a lower bound, <= 0 at an upper bound), so x is lexicographically optimal.
//
// Floating point. The primary (coverage) decisions are exact: the tree is rooted at T, and every
// tree path from a node to T is transport arcs (primary cost 0) ending in one coverage or idle arc,
// so every primary potential is exactly 0 or exactly one input u_j. The solver maintains them by
// assignment, never by accumulated differences, and each primary reduced cost is then a single
// IEEE subtraction of two input numbers, whose sign, and whether it is zero, are exact (with
// gradual underflow, fl(a - b) = 0 only when a = b). So the solver never trades weighted coverage
// for cost, however small the difference of urgencies, and it stops only when no arc can raise
// the weighted coverage. (This matters: the least cost can fall steeply as coverage is let go, so
// a method that holds coverage only to a tolerance, as an LP solver does, can return a cheaper
// flow that is not the lexicographic optimum.) The secondary (cost) reduced cost c + pi_s - pi_t
// is a sum of costs along a tree path and carries rounding; an arc counts as cost-improving only
// below -1e-12 x (c + |pi_s| + |pi_t|), a bound on that rounding relative to the numbers it is
// computed from, and the potentials are recomputed from the tree every N pivots and before the
// solver may stop, so errors never accumulate. Quantities are real numbers (40,000.5): pivots move
// flow by the exact smallest residual, flows are clamped to their bounds, and at the end the tree
// flows are recomputed from the non-tree ones (each exactly 0 or d_j) by subtree sums, so the
// returned flows lie within their bounds exactly and conserve flow to the rounding of one sum.
// test/matching-solver.test.ts checks the result against HiGHS and, independently, with the
// optimality certificate of min-cost flow (no negative cycle in the residual network) evaluated
// in exact (BigInt) arithmetic.
//
// ## Algorithm
//
// Primal network simplex on a strongly feasible spanning tree (Cunningham 1976: every tree arc
// with zero residual toward the root points the right way, so degenerate pivots cannot cycle),
// tree stored as parent / thread / reverse thread / subtree size / last successor (the layout of
// LEMON's NetworkSimplex, Kovacs 2015), block-search pricing (blocks of sqrt(arcs), most violated
// arc of the first block that has one). The initial tree is the star of coverage and idle arcs
// around T (all supply idle, nothing covered), which is feasible and strongly feasible as it
// stands: no artificial arcs, no big-M phase. The network has no directed cycle, so it is never
// unbounded. On a dense network pricing starts from each node's cheapest arcs and brings in the
// others as they turn out to improve (see candidateThresholds). Everything is typed arrays indexed
// by arc and node; no per-arc objects.
import { badInput } from "../errors.js";

export { EARTH_RADIUS_KM, haversineKm, treeDistance } from "./distance.js";

export interface TransportArcs {
  /** Supplier index of each arc, 0..supply.length-1. */
  from: Int32Array;
  /** Demand index of each arc, 0..demand.length-1. */
  to: Int32Array;
  /** Cost per unit shipped on each arc, finite and >= 0 (distance, or a cost derived from it). */
  cost: Float64Array;
}

export interface TransportProblem {
  /** Capacity of each supplier, finite and >= 0. */
  supply: Float64Array;
  /** Need of each demand node, finite and >= 0. */
  demand: Float64Array;
  /** Weight of each demand node, finite and > 0: more urgent need is covered first. */
  urgency: Float64Array;
  /** The allowed supplier -> demand arcs; a forbidden pair is simply absent. */
  arcs: TransportArcs;
}

export interface SolveOptions {
  /**
   * Tuning only; the optimum does not depend on it. On a network with more than
   * 1.5 x candidatesPerNode arcs per node, the simplex first prices only each node's
   * candidatesPerNode cheapest arcs, and brings the others in as they turn out to improve (see
   * candidateThresholds). 0 prices every arc from the start. Default CANDIDATES_PER_NODE (20).
   */
  candidatesPerNode?: number;
}

export interface TransportSolution {
  /** Flow on each input arc, in input order: 0 <= flow[a]. */
  flow: Float64Array;
  /** Total cost, sum_a cost[a] * flow[a]. */
  cost: number;
  /** Need covered at each demand node (its inflow), 0 <= covered[j] <= demand[j]. */
  covered: Float64Array;
  /** Quantity sent by each supplier (its outflow), 0 <= shipped[i] <= supply[i]. */
  shipped: Float64Array;
  /** sum_j urgency[j] * covered[j], the maximum possible. */
  weightedCoverage: number;
  /** Simplex pivots taken (for benchmarks and diagnostics). */
  pivots: number;
}

/**
 * Solves the transportation problem described at the top of this file: the flow that maximises
 * the urgency-weighted covered need, and among those the one of least cost. Throws BAD_INPUT
 * (DomainError) for negative or non-finite quantities or costs, urgency <= 0, arc endpoints out
 * of range, or arrays of mismatched lengths. An empty problem (no suppliers, no demand, no arcs)
 * has the zero solution.
 */
export function solveTransport(p: TransportProblem, options: SolveOptions = {}): TransportSolution {
  validateNodes(p);
  const candidatesPerNode = options.candidatesPerNode ?? CANDIDATES_PER_NODE;
  if (!(Number.isInteger(candidatesPerNode) && candidatesPerNode >= 0)) {
    throw badInput(`candidatesPerNode must be a whole number >= 0, got ${candidatesPerNode}`);
  }
  const { supply, demand, urgency, arcs } = p;
  const m = supply.length;
  const n = demand.length;
  const A = arcs.from.length;

  // Only suppliers with supply and demand nodes with need take part, and only the arcs between
  // them; everything else carries no flow. This also keeps every tree arc of the initial star
  // strongly feasible (a coverage arc with capacity 0 would not be).
  const supplierNode = new Int32Array(m).fill(-1);
  const demandNode = new Int32Array(n).fill(-1);
  const usable = validateArcs(p, supplierNode, demandNode);
  let ms = 0;
  for (let i = 0; i < m; i++) if (supplierNode[i] === 0) supplierNode[i] = ms++;
  let nd = 0;
  for (let j = 0; j < n; j++) if (demandNode[j] === 0) demandNode[j] = ms + nd++;

  const flowOut = new Float64Array(A);
  const covered = new Float64Array(n);
  const shipped = new Float64Array(m);
  let pivots = 0;
  if (usable > 0) {
    const net = buildNetwork(p, supplierNode, demandNode, ms, nd, usable, candidatesPerNode);
    pivots = networkSimplex(net);
    const nT = net.nodes - 1;
    for (let e = nT; e < net.arcs; e++) flowOut[net.orig[e - nT]!] = net.flow[e]!;
    for (let j = 0; j < n; j++) {
      const v = demandNode[j]!;
      if (v >= 0) covered[j] = net.flow[v]!;
    }
  }

  // Compensated (Neumaier) sums: a million terms should not cost digits.
  let cost = 0;
  let costC = 0;
  for (let a = 0; a < A; a++) {
    const x = flowOut[a]!;
    if (x === 0) continue;
    const i = arcs.from[a]!;
    shipped[i] = shipped[i]! + x;
    const t = arcs.cost[a]! * x;
    const s = cost + t;
    costC += Math.abs(cost) >= Math.abs(t) ? cost - s + t : t - s + cost;
    cost = s;
  }
  for (let i = 0; i < m; i++) if (shipped[i]! > supply[i]!) shipped[i] = supply[i]!; // rounding of the sum only
  let weighted = 0;
  let weightedC = 0;
  for (let j = 0; j < n; j++) {
    const t = urgency[j]! * covered[j]!;
    const s = weighted + t;
    weightedC += Math.abs(weighted) >= Math.abs(t) ? weighted - s + t : t - s + weighted;
    weighted = s;
  }
  return { flow: flowOut, cost: cost + costC, covered, shipped, weightedCoverage: weighted + weightedC, pivots };
}

function validateNodes(p: TransportProblem) {
  if (!p || typeof p !== "object") throw badInput("the transport problem must be an object with supply, demand, urgency and arcs");
  const { supply, demand, urgency, arcs } = p;
  if (!(supply instanceof Float64Array)) throw badInput("supply must be a Float64Array");
  if (!(demand instanceof Float64Array)) throw badInput("demand must be a Float64Array");
  if (!(urgency instanceof Float64Array)) throw badInput("urgency must be a Float64Array");
  if (!arcs || !(arcs.from instanceof Int32Array) || !(arcs.to instanceof Int32Array) || !(arcs.cost instanceof Float64Array)) {
    throw badInput("arcs must have from and to (Int32Array) and cost (Float64Array)");
  }
  if (urgency.length !== demand.length) {
    throw badInput(`urgency has ${urgency.length} entries but demand has ${demand.length}: give one urgency per demand node`);
  }
  if (arcs.to.length !== arcs.from.length || arcs.cost.length !== arcs.from.length) {
    throw badInput(`arcs.from, arcs.to and arcs.cost must have the same length, got ${arcs.from.length}, ${arcs.to.length} and ${arcs.cost.length}`);
  }
  let totalSupply = 0;
  for (let i = 0; i < supply.length; i++) {
    const v = supply[i]!;
    if (!(v >= 0 && v < Infinity)) throw badInput(`supply[${i}] must be a finite number >= 0, got ${v}`, { index: i });
    totalSupply += v;
  }
  let totalDemand = 0;
  for (let j = 0; j < demand.length; j++) {
    const v = demand[j]!;
    if (!(v >= 0 && v < Infinity)) throw badInput(`demand[${j}] must be a finite number >= 0, got ${v}`, { index: j });
    totalDemand += v;
    const u = urgency[j]!;
    if (!(u > 0 && u < Infinity)) throw badInput(`urgency[${j}] must be a finite number > 0, got ${u}`, { index: j });
  }
  if (!(totalSupply < Infinity) || !(totalDemand < Infinity)) throw badInput("total supply and total demand must be finite");
}

/**
 * Checks every arc and counts the usable ones (supply > 0 at the tail, need > 0 at the head),
 * setting supplierNode / demandNode to 0 for each node such an arc touches (they are -1 on entry).
 */
function validateArcs(p: TransportProblem, supplierNode: Int32Array, demandNode: Int32Array): number {
  const { supply, demand } = p;
  const { from, to, cost } = p.arcs;
  const m = supply.length;
  const n = demand.length;
  let usable = 0;
  for (let a = 0; a < from.length; a++) {
    const i = from[a]!;
    const j = to[a]!;
    const c = cost[a]!;
    if (!(i >= 0 && i < m)) throw badInput(`arcs.from[${a}] = ${i} is not a supplier index (0..${m - 1})`, { index: a });
    if (!(j >= 0 && j < n)) throw badInput(`arcs.to[${a}] = ${j} is not a demand index (0..${n - 1})`, { index: a });
    if (!(c >= 0 && c < Infinity)) throw badInput(`arcs.cost[${a}] must be a finite number >= 0, got ${c}`, { index: a });
    if (supply[i]! > 0 && demand[j]! > 0) {
      usable++;
      supplierNode[i] = 0;
      demandNode[j] = 0;
    }
  }
  return usable;
}

/** The network of the formulation, arrays indexed by internal arc and node. */
interface Network {
  /** Nodes: suppliers 0..ms-1, demand nodes ms..ms+nd-1, root T = nodes-1. */
  nodes: number;
  /**
   * Arcs: 0..nodes-2 are the root arcs, arc v being node v's idle (supplier) or coverage (demand)
   * arc; the transport arcs follow, the `candidates` first (see candidateThresholds).
   */
  arcs: number;
  candidates: number;
  /** Input index of each transport arc: internal arc e is input arc orig[e - (nodes - 1)]. */
  orig: Int32Array;
  src: Int32Array;
  tgt: Int32Array;
  /** Primary cost: -u_j on coverage arcs, 0 elsewhere. */
  costP: Float64Array;
  /** Secondary cost: c_a on transport arcs, 0 elsewhere. */
  costS: Float64Array;
  cap: Float64Array;
  flow: Float64Array;
  /** Node supply: s_i at suppliers, 0 at demand nodes, -sum s_i at the root. */
  supply: Float64Array;
}

function buildNetwork(p: TransportProblem, supplierNode: Int32Array, demandNode: Int32Array, ms: number, nd: number, usable: number, K: number): Network {
  const nodes = ms + nd + 1;
  const root = nodes - 1;
  const nT = nodes - 1;
  const E = nT + usable;
  const src = new Int32Array(E);
  const tgt = new Int32Array(E);
  const costP = new Float64Array(E);
  const costS = new Float64Array(E);
  const cap = new Float64Array(E).fill(Infinity);
  const flow = new Float64Array(E);
  const supply = new Float64Array(nodes);
  const { from, to, cost } = p.arcs;

  // Root arcs, all in the initial tree: idle arcs carry all the supply, coverage arcs nothing.
  let total = 0;
  for (let i = 0; i < p.supply.length; i++) {
    const v = supplierNode[i]!;
    if (v < 0) continue;
    supply[v] = p.supply[i]!;
    total += p.supply[i]!;
    src[v] = v;
    tgt[v] = root;
    flow[v] = p.supply[i]!;
  }
  supply[root] = -total;
  for (let j = 0; j < p.demand.length; j++) {
    const v = demandNode[j]!;
    if (v < 0) continue;
    src[v] = v;
    tgt[v] = root;
    cap[v] = p.demand[j]!;
    costP[v] = -p.urgency[j]!;
  }

  // Transport arcs: the candidates from the front in input order, the others from the back.
  const threshold = candidateThresholds(p, supplierNode, demandNode, nodes, usable, K);
  const orig = new Int32Array(usable);
  let head = nT;
  let tail = E - 1;
  for (let a = 0; a < from.length; a++) {
    const i = from[a]!;
    const j = to[a]!;
    if (!(p.supply[i]! > 0 && p.demand[j]! > 0)) continue;
    const s = supplierNode[i]!;
    const t = demandNode[j]!;
    const c = cost[a]!;
    const e = c <= threshold[s]! || c <= threshold[t]! ? head++ : tail--;
    src[e] = s;
    tgt[e] = t;
    costS[e] = c;
    orig[e - nT] = a;
  }
  return { nodes, arcs: E, candidates: head - nT, orig, src, tgt, costP, costS, cap, flow, supply };
}

/** Candidate arcs kept per node (cheapest in and out) for the first, restricted phase. */
export const CANDIDATES_PER_NODE = 20;
/** The restricted phase is used when there are more than DENSE_FACTOR x K arcs per node. */
const DENSE_FACTOR = 1.5;

/**
 * On a dense network most arcs never carry flow: a supplier ships to nearby demand. The simplex
 * first prices only a candidate subset, each node's K cheapest arcs (in for a demand node, out for
 * a supplier, ties included); when those admit no improving pivot, one scan of the other arcs
 * brings in every one that would improve (networkSimplex, siftIn), until a scan finds none, so the
 * result is the optimum over all arcs; the subset only makes most pivots cheap to price. On the
 * bench's 1000 x 1000 instances this prices 3-5x fewer arcs and takes fewer pivots.
 * Returns each node's cost threshold (an arc is a candidate when its cost is at most the
 * threshold of either end), found in one pass with a bounded max-heap per node; all Infinity when
 * the network is too sparse for this to gain (K x DENSE_FACTOR arcs per node or fewer).
 */
function candidateThresholds(p: TransportProblem, supplierNode: Int32Array, demandNode: Int32Array, nodes: number, usable: number, K: number): Float64Array {
  const threshold = new Float64Array(nodes).fill(Infinity);
  if (K === 0 || usable <= DENSE_FACTOR * K * nodes) return threshold;
  const heap = new Float64Array(nodes * K);
  const size = new Int32Array(nodes);
  const { from, to, cost } = p.arcs;
  const push = (v: number, c: number) => {
    const base = v * K;
    let k = size[v]!;
    if (k < K) {
      // Sift up.
      size[v] = k + 1;
      while (k > 0) {
        const up = (k - 1) >> 1;
        if (heap[base + up]! >= c) break;
        heap[base + k] = heap[base + up]!;
        k = up;
      }
      heap[base + k] = c;
    } else if (c < heap[base]!) {
      // Replace the largest and sift down.
      k = 0;
      for (;;) {
        let child = 2 * k + 1;
        if (child >= K) break;
        if (child + 1 < K && heap[base + child + 1]! > heap[base + child]!) child++;
        if (heap[base + child]! <= c) break;
        heap[base + k] = heap[base + child]!;
        k = child;
      }
      heap[base + k] = c;
    }
  };
  for (let a = 0; a < from.length; a++) {
    const i = from[a]!;
    const j = to[a]!;
    if (!(p.supply[i]! > 0 && p.demand[j]! > 0)) continue;
    const c = cost[a]!;
    const s = supplierNode[i]!;
    const t = demandNode[j]!;
    if (size[s]! < K || c < heap[s * K]!) push(s, c);
    if (size[t]! < K || c < heap[t * K]!) push(t, c);
  }
  for (let v = 0; v < nodes - 1; v++) if (size[v] === K) threshold[v] = heap[v * K]!;
  return threshold;
}

const STATE_TREE = 0;
const STATE_LOWER = 1;
const STATE_UPPER = -1;
/** pred[u] goes from u up to parent[u]. */
const DIR_UP = 1;
/** pred[u] goes from parent[u] down to u. */
const DIR_DOWN = -1;

/**
 * A cost reduced cost c + pi_s - pi_t counts as negative only below -COST_EPS x (c + |pi_s| +
 * |pi_t|): a bound on its rounding error, relative to the numbers it is computed from.
 */
const COST_EPS = 1e-12;

/**
 * Runs the lexicographic network simplex on `net` from the star tree; leaves the optimal flow in
 * net.flow and returns the number of pivots.
 */
function networkSimplex(net: Network): number {
  const { nodes: N, arcs: E, src, tgt, costP, costS, cap, flow, orig } = net;
  const root = N - 1;
  const nT = N - 1; // root arcs 0..nT-1, transport arcs nT..E-1

  const parent = new Int32Array(N);
  const pred = new Int32Array(N);
  const predDir = new Int8Array(N);
  const thread = new Int32Array(N);
  const revThread = new Int32Array(N);
  const succNum = new Int32Array(N);
  const lastSucc = new Int32Array(N);
  const piP = new Float64Array(N);
  const piS = new Float64Array(N);
  const state = new Int8Array(E);
  const dirty = new Int32Array(N + 1);

  // The star: every node hangs from T by its own root arc (arc v), directed up to T.
  state.fill(STATE_LOWER, nT, E);
  for (let v = 0; v < root; v++) {
    parent[v] = root;
    pred[v] = v;
    predDir[v] = DIR_UP;
    succNum[v] = 1;
    lastSucc[v] = v;
    thread[v] = v + 1;
    revThread[v + 1] = v;
    // Primary potential: u_j at a demand node (its coverage arc: -u_j + pi_j - pi_T = 0), 0 at a
    // supplier; secondary potentials are all 0.
    piP[v] = -costP[v]!;
  }
  parent[root] = -1;
  pred[root] = -1;
  succNum[root] = N;
  lastSucc[root] = root - 1;
  thread[root - 1] = root;
  thread[root] = 0;
  revThread[0] = root;

  /**
   * Moves every improving arc of priced..E-1 to the front of that range (swapping it with the
   * arc there; both are non-tree arcs at flow 0, so only their endpoints, cost and input index
   * move) and returns the new end of the priced range, or -1 when there was none: then the current
   * tree is optimal over every arc.
   */
  const siftIn = (from: number): number => {
    let end = from;
    for (let a = from; a < E; a++) {
      const s = src[a]!;
      const t = tgt[a]!;
      const rp = piP[s]! - piP[t]!;
      if (rp > 0) continue;
      if (rp === 0) {
        const c = costS[a]!;
        const ps = piS[s]!;
        const pt = piS[t]!;
        if (!(c + ps - pt < -COST_EPS * (c + Math.abs(ps) + Math.abs(pt)))) continue;
      }
      if (a !== end) {
        src[a] = src[end]!;
        tgt[a] = tgt[end]!;
        src[end] = s;
        tgt[end] = t;
        const c = costS[a]!;
        costS[a] = costS[end]!;
        costS[end] = c;
        const o = orig[a - nT]!;
        orig[a - nT] = orig[end - nT]!;
        orig[end - nT] = o;
      }
      end++;
    }
    return end === from ? -1 : end;
  };

  const recomputePotentials = () => {
    piP[root] = 0;
    piS[root] = 0;
    for (let u = thread[root]!; u !== root; u = thread[u]!) {
      const e = pred[u]!;
      const d = predDir[u]!;
      const w = parent[u]!;
      // Tree arc reduced cost 0: cost + pi_tail - pi_head = 0.
      piP[u] = piP[w]! - d * costP[e]!;
      piS[u] = piS[w]! - d * costS[e]!;
    }
  };

  // Pricing covers arcs 0..priced-1: the root arcs and the candidate transport arcs. Arcs beyond
  // are all at their lower bound 0, outside the tree; each time the priced arcs admit no improving
  // pivot, one scan of those arcs moves every one that would improve into the priced range
  // (sifting), and the solver stops only when that scan finds none.
  let priced = nT + net.candidates;
  let blockSize = Math.max(10, Math.ceil(Math.sqrt(priced)));
  const refreshEvery = Math.max(N, 1000);
  const maxPivots = 50 * E + 100 * N + 1_000_000;
  let nextArc = 0;
  let pivots = 0;
  let sinceRefresh = 0;
  let fresh = true; // potentials recomputed from the tree since the last pivot

  for (;;) {
    // Block search: scan blocks of arcs from where the last search stopped; take the most violated
    // arc (lexicographically) of the first block that has one. A transport arc is never at an
    // upper bound (its capacity is infinite) and has primary cost 0, so its test is shorter.
    let inArc = -1;
    let bestP = 0;
    let bestS = 0;
    let cnt = blockSize;
    let e = nextArc;
    for (let scanned = 0; scanned < priced; scanned++) {
      const st = state[e]!;
      if (st !== STATE_TREE) {
        const s = src[e]!;
        const t = tgt[e]!;
        if (e >= nT) {
          const rp = piP[s]! - piP[t]!;
          if (rp <= bestP) {
            const c = costS[e]!;
            const ps = piS[s]!;
            const pt = piS[t]!;
            const rs = c + ps - pt;
            if (rp < bestP || (rs < bestS && rs < -COST_EPS * (c + Math.abs(ps) + Math.abs(pt)))) {
              bestP = rp;
              bestS = rs;
              inArc = e;
            }
          }
        } else {
          const rp = st * (costP[e]! + piP[s]! - piP[t]!);
          if (rp <= bestP) {
            const ps = piS[s]!;
            const pt = piS[t]!;
            const rs = st * (costS[e]! + ps - pt);
            if (rp < bestP || (rs < bestS && rs < -COST_EPS * (costS[e]! + Math.abs(ps) + Math.abs(pt)))) {
              bestP = rp;
              bestS = rs;
              inArc = e;
            }
          }
        }
      }
      if (++e === priced) e = 0;
      if (--cnt === 0) {
        if (inArc >= 0) break;
        cnt = blockSize;
      }
    }
    nextArc = e;
    if (inArc < 0) {
      if (!fresh) {
        recomputePotentials();
        fresh = true;
        sinceRefresh = 0;
      } else {
        const end = priced < E ? siftIn(priced) : -1;
        if (end < 0) break; // optimal over every arc, certified with potentials fresh from the tree
        priced = end;
        blockSize = Math.max(10, Math.ceil(Math.sqrt(priced)));
      }
      continue;
    }
    if (++pivots > maxPivots) throw new Error(`solveTransport: no optimum after ${maxPivots} pivots (numerical trouble)`);
    fresh = false;

    // Join node: the first common ancestor of the entering arc's ends.
    const inSrc = src[inArc]!;
    const inTgt = tgt[inArc]!;
    let u = inSrc;
    let v = inTgt;
    while (u !== v) {
      if (succNum[u]! < succNum[v]!) u = parent[u]!;
      else v = parent[v]!;
    }
    const join = u;

    // Leaving arc: the smallest residual on the cycle; on ties the last one met going around the
    // cycle in its direction from the join (this keeps the tree strongly feasible).
    const inState = state[inArc]!;
    const first = inState === STATE_LOWER ? inSrc : inTgt;
    const second = inState === STATE_LOWER ? inTgt : inSrc;
    let delta = cap[inArc]!;
    let result = 0;
    let uOut = -1;
    let outToUpper = false;
    for (u = first; u !== join; u = parent[u]!) {
      const a = pred[u]!;
      // On this side the cycle's flow runs from the join down to `first`: it fills an arc that
      // points down and empties one that points up.
      const fills = predDir[u] === DIR_DOWN;
      const d = fills ? cap[a]! - flow[a]! : flow[a]!;
      if (d < delta) {
        delta = d;
        uOut = u;
        result = 1;
        outToUpper = fills;
      }
    }
    for (u = second; u !== join; u = parent[u]!) {
      const a = pred[u]!;
      // Here it runs from `second` up to the join.
      const fills = predDir[u] === DIR_UP;
      const d = fills ? cap[a]! - flow[a]! : flow[a]!;
      if (d <= delta) {
        delta = d;
        uOut = u;
        result = 2;
        outToUpper = fills;
      }
    }
    if (!(delta < Infinity)) throw new Error("solveTransport: unbounded cycle (cannot happen on this network)");

    // Push delta around the cycle, keeping every flow within its bounds.
    if (delta > 0) {
      const val = inState * delta;
      flow[inArc] = flow[inArc]! + val;
      for (u = inSrc; u !== join; u = parent[u]!) {
        const a = pred[u]!;
        const f = flow[a]! - predDir[u]! * val;
        flow[a] = f < 0 ? 0 : f > cap[a]! ? cap[a]! : f;
      }
      for (u = inTgt; u !== join; u = parent[u]!) {
        const a = pred[u]!;
        const f = flow[a]! + predDir[u]! * val;
        flow[a] = f < 0 ? 0 : f > cap[a]! ? cap[a]! : f;
      }
    }

    if (result === 0) {
      // The entering arc itself blocks: it moves to its other bound and the tree stays.
      state[inArc] = -inState;
      flow[inArc] = -inState === STATE_UPPER ? cap[inArc]! : 0;
      continue;
    }
    const outArc = pred[uOut]!;
    state[inArc] = STATE_TREE;
    state[outArc] = outToUpper ? STATE_UPPER : STATE_LOWER;
    flow[outArc] = outToUpper ? cap[outArc]! : 0;

    const uIn = result === 1 ? first : second;
    const vIn = result === 1 ? second : first;

    // Re-hang the subtree cut off by the leaving arc from the entering arc: the stem from uIn up
    // to uOut is reversed, and the thread, subtree sizes and last successors follow.
    const oldRevThread = revThread[uOut]!;
    const oldSuccNum = succNum[uOut]!;
    const oldLastSucc = lastSucc[uOut]!;
    const vOut = parent[uOut]!;
    if (uIn === uOut) {
      parent[uIn] = vIn;
      pred[uIn] = inArc;
      predDir[uIn] = uIn === inSrc ? DIR_UP : DIR_DOWN;
      if (thread[vIn] !== uOut) {
        let after = thread[oldLastSucc]!;
        thread[oldRevThread] = after;
        revThread[after] = oldRevThread;
        after = thread[vIn]!;
        thread[vIn] = uOut;
        revThread[uOut] = vIn;
        thread[oldLastSucc] = after;
        revThread[after] = oldLastSucc;
      }
    } else {
      // When oldRevThread is vIn (so the join is vOut), the thread goes on after uOut's subtree.
      const threadContinue = oldRevThread === vIn ? thread[oldLastSucc]! : thread[vIn]!;
      let stem = uIn;
      let parStem = vIn;
      let last = lastSucc[uIn]!;
      let after = thread[last]!;
      thread[vIn] = uIn;
      let nDirty = 0;
      dirty[nDirty++] = vIn;
      while (stem !== uOut) {
        const nextStem = parent[stem]!;
        thread[last] = nextStem;
        dirty[nDirty++] = last;
        const before = revThread[stem]!;
        thread[before] = after;
        revThread[after] = before;
        parent[stem] = parStem;
        parStem = stem;
        stem = nextStem;
        last = lastSucc[stem] === lastSucc[parStem] ? revThread[parStem]! : lastSucc[stem]!;
        after = thread[last]!;
      }
      parent[uOut] = parStem;
      thread[last] = threadContinue;
      revThread[threadContinue] = last;
      lastSucc[uOut] = last;
      if (oldRevThread !== vIn) {
        thread[oldRevThread] = after;
        revThread[after] = oldRevThread;
      }
      for (let k = 0; k < nDirty; k++) {
        const w = dirty[k]!;
        revThread[thread[w]!] = w;
      }
      let tmpSc = 0;
      const tmpLs = lastSucc[uOut]!;
      for (let w = uOut, pw = parent[w]!; w !== uIn; w = pw, pw = parent[w]!) {
        pred[w] = pred[pw]!;
        predDir[w] = -predDir[pw]!;
        tmpSc += succNum[w]! - succNum[pw]!;
        succNum[w] = tmpSc;
        lastSucc[pw] = tmpLs;
      }
      pred[uIn] = inArc;
      predDir[uIn] = uIn === inSrc ? DIR_UP : DIR_DOWN;
      succNum[uIn] = oldSuccNum;
    }
    const upLimitOut = lastSucc[join] === vIn ? join : -1;
    const lastSuccOut = lastSucc[uOut]!;
    for (let w = vIn; w !== -1 && lastSucc[w] === vIn; w = parent[w]!) lastSucc[w] = lastSuccOut;
    if (join !== oldRevThread && vIn !== oldRevThread) {
      for (let w = vOut; w !== upLimitOut && lastSucc[w] === oldLastSucc; w = parent[w]!) lastSucc[w] = oldRevThread;
    } else if (lastSuccOut !== oldLastSucc) {
      for (let w = vOut; w !== upLimitOut && lastSucc[w] === oldLastSucc; w = parent[w]!) lastSucc[w] = lastSuccOut;
    }
    for (let w = vIn; w !== join; w = parent[w]!) succNum[w] = succNum[w]! + oldSuccNum;
    for (let w = vOut; w !== join; w = parent[w]!) succNum[w] = succNum[w]! - oldSuccNum;

    // Potentials of the moved subtree. Secondary: shift by the entering arc's reduced cost.
    // Primary: assign. The subtree does not contain T, so its tree arcs are transport arcs of
    // primary cost 0 and all its nodes share uIn's primary potential, which is exact: either
    // piP[vIn] (a transport or idle arc, cost 0) or, for a coverage arc (vIn = T, piP = 0), u_j.
    if (++sinceRefresh >= refreshEvery) {
      recomputePotentials();
      sinceRefresh = 0;
    } else {
      const d = predDir[uIn]!;
      const sigma = piS[vIn]! - piS[uIn]! - d * costS[inArc]!;
      const newP = piP[vIn]! - d * costP[inArc]!;
      const end = thread[lastSucc[uIn]!]!;
      for (let w = uIn; w !== end; w = thread[w]!) {
        piS[w] = piS[w]! + sigma;
        piP[w] = newP;
      }
    }
  }

  recomputeTreeFlows(net, state, parent, pred, predDir, revThread);
  return pivots;
}

/**
 * Sets every tree arc's flow from the non-tree flows (each exactly 0 or its capacity) by subtree
 * sums, children before parents (reverse thread order): the flow that pivots accumulated carries
 * the rounding of every pivot, this one only the rounding of one sum per node.
 */
function recomputeTreeFlows(net: Network, state: Int8Array, parent: Int32Array, pred: Int32Array, predDir: Int8Array, revThread: Int32Array) {
  const { nodes: N, arcs: E, src, tgt, cap, flow } = net;
  const root = N - 1;
  const excess = Float64Array.from(net.supply);
  for (let e = 0; e < E; e++) {
    if (state[e] === STATE_TREE) continue;
    const f = state[e] === STATE_UPPER ? cap[e]! : 0;
    flow[e] = f;
    if (f !== 0) {
      excess[src[e]!] = excess[src[e]!]! - f;
      excess[tgt[e]!] = excess[tgt[e]!]! + f;
    }
  }
  for (let u = revThread[root]!; u !== root; u = revThread[u]!) {
    const a = pred[u]!;
    const x = excess[u]!;
    // The subtree of u must send x out through its tree arc: up it if it points up, else against it.
    const f = predDir[u] === DIR_UP ? x : -x;
    flow[a] = f < 0 ? 0 : f > cap[a]! ? cap[a]! : f;
    excess[parent[u]!] = excess[parent[u]!]! + x;
  }
}

// The leaf forecaster: answers known by hand, then the Michigan PPE stock as a real-data check of
// the projected stock path against the naive forecast (the figures BENCHMARKS.md records).
import { describe, expect, it } from "vitest";
import { forecastLeaf, MIN_CONSUMPTION_DAYS, TREND_WEEKS, type LeafHistory } from "../src/domain/forecast/leaf.js";
import { project } from "../src/domain/forecast/projection.js";
import { BACKTEST_HORIZONS, BACKTEST_PRODUCTS, backtestMichigan, scaleOf } from "../bench/lib/michigan-backtest.js";
import { MICHIGAN_FIXTURE_CSV, MICHIGAN_REGIONS, loadMichiganDaily } from "../bench/lib/michigan.js";
import { badInputMessage } from "./helpers/errors.js";

const Z95 = 1.959963984540054;


/** A history of `days` days with the given series; every other one null throughout. */
function history(days: number, series: Partial<LeafHistory>): LeafHistory {
  const nulls = () => new Array<number | null>(days).fill(null);
  return { onHand: nulls(), consumed: nulls(), produced: nulls(), received: nulls(), shipped: nulls(), ...series };
}

const steady = (days: number, start: number, perDay: number) => Array.from({ length: days }, (_, t) => start - perDay * t);

/** The projected stock path the service computes from an outlook (no production). */
function stockPath(h: LeafHistory, horizon: number): number[] {
  const o = forecastLeaf(h, horizon);
  const onHand = [...h.onHand].reverse().find((v) => v !== null) ?? 0;
  return project({ onHand, demand: o.demand.mean, demandSd: o.demandSd, supply: new Array<number>(horizon).fill(0), netInflow: o.netInflow }).stock;
}

describe("forecastLeaf from reported consumption", () => {
  it("forecasts constant consumption flat, with no inflow", () => {
    const o = forecastLeaf(history(40, { consumed: new Array(40).fill(50), onHand: new Array(40).fill(1000) }), 14);
    expect(o.demandSource).toBe("consumption");
    expect(o.demand.mean).toEqual(new Array(14).fill(50));
    expect(o.demandSd).toEqual(new Array(14).fill(0));
    expect(o.netInflow).toEqual(new Array(14).fill(0));
  });

  it("does not let days that ended out of stock lower demand", () => {
    // 30 days at 50 a day, then 6 days on which the region ran dry after handing out only 10.
    const consumed = [...new Array(30).fill(50), ...new Array(6).fill(10)];
    const onHand = [...steady(30, 1800, 50), ...new Array(6).fill(0)];
    const o = forecastLeaf(history(36, { consumed, onHand }), 7);
    expect(o.demandSource).toBe("consumption");
    for (const d of o.demand.mean) expect(d).toBeCloseTo(50, 9);
    // The same figures with stock left: then 10 a day was the demand, and the forecast follows it.
    const stocked = forecastLeaf(history(36, { consumed, onHand: new Array(36).fill(500) }), 7);
    expect(stocked.demand.mean[0]).toBeCloseTo(10, 9);
  });

  it("fills days without a report by interpolation and forecasts from the origin", () => {
    // 40 then two unreported days then 70: the gap is 50, 60, not zeros; rising by 10 a day.
    const consumed: (number | null)[] = Array.from({ length: 30 }, (_, t) => 10 * t);
    consumed[27] = null;
    consumed[28] = null;
    const o = forecastLeaf(history(30, { consumed }), 5);
    expect(o.demandSource).toBe("consumption");
    expect(o.demand.mean[0]).toBeGreaterThan(290);
    // Interpolation restores the two days exactly: the same forecast as with them reported.
    expect(o).toEqual(forecastLeaf(history(30, { consumed: Array.from({ length: 30 }, (_, t) => 10 * t) }), 5));
    // Three trailing days without consumption: the outlook still starts the day after the origin.
    const late = forecastLeaf(history(33, { consumed: [...consumed, null, null, null] }), 5);
    expect(late.demand.mean[0]).toBeGreaterThan(o.demand.mean[0] as number);
  });

  it("derives the standard deviation from the 95 % interval of the demand model", () => {
    const consumed = Array.from({ length: 60 }, (_, t) => 100 + (t % 3) * 7 - (t % 5) * 3);
    const o = forecastLeaf(history(60, { consumed }), 10);
    o.demandSd.forEach((sd, i) => {
      expect(sd).toBeGreaterThan(0);
      expect(sd).toBeCloseTo(((o.demand.high95[i] as number) - (o.demand.mean[i] as number)) / Z95, 6);
    });
    for (const d of o.demand.low95) expect(d).toBeGreaterThanOrEqual(0);
  });

  it(`needs ${MIN_CONSUMPTION_DAYS} days of consumption, else reads the stock`, () => {
    const consumed: (number | null)[] = new Array(40).fill(null);
    for (let t = 34; t < 40; t++) consumed[t] = 100;
    const o = forecastLeaf(history(40, { consumed, onHand: steady(40, 10_000, 100) }), 7);
    expect(o.demandSource).toBe("stock-drawdown");
  });
});

describe("forecastLeaf from on-hand stock only", () => {
  it("reads a steady drawdown of 100 a day as demand 100, and projects it", () => {
    const h = history(60, { onHand: steady(60, 10_000, 100) });
    const o = forecastLeaf(h, 14);
    expect(o.demandSource).toBe("stock-drawdown");
    for (const d of o.demand.mean) expect(d).toBeCloseTo(100, 6);
    // Nothing replenishes it: the stock path falls 100 a day from the last report (4,100).
    for (const x of o.netInflow) expect(x).toBeCloseTo(0, 6);
    const path = stockPath(h, 14);
    path.forEach((s, i) => expect(s).toBeCloseTo(4100 - 100 * (i + 1), 6));
  });

  it("projects a short drawdown too, and one whose last report is days old", () => {
    const h = history(20, { onHand: steady(20, 5000, 100) });
    expect(stockPath(h, 3)).toEqual([3000, 2900, 2800].map((v) => expect.closeTo(v, 6)));
    // Reported until three days ago: the three unreported days are drawn down on day 1.
    const late = history(23, { onHand: [...steady(20, 5000, 100), null, null, null] });
    expect(stockPath(late, 2).map((v) => Math.round(v))).toEqual([2700, 2600]);
  });

  it("keeps a stock that deliveries hold level flat, with the drawdown as demand", () => {
    // Falls 100 a day for six days, and a delivery of 600 on the seventh, for ten weeks.
    const onHand = Array.from({ length: 70 }, (_, t) => 5000 - 100 * (t % 7));
    const o = forecastLeaf(history(70, { onHand }), 14);
    expect(o.demandSource).toBe("stock-drawdown");
    for (const d of o.demand.mean) expect(d).toBeGreaterThan(90);
    for (const d of o.demand.mean) expect(d).toBeLessThan(110);
    // Weekly changes are all 0: no trend, so the deliveries are taken to go on matching demand.
    o.netInflow.forEach((x, i) => expect(x).toBeCloseTo(o.demand.mean[i] as number, 9));
    const last = onHand.at(-1) as number;
    for (const s of stockPath(history(70, { onHand }), 14)) expect(s).toBeCloseTo(last, 6);
  });

  it(`extrapolates a rising or falling trend only when all ${TREND_WEEKS} weeks agree`, () => {
    // Each week: +1,000 delivered, 100 a day used: net +300 a week.
    const onHand = Array.from({ length: 60 }, (_, t) => 2000 + 1000 * Math.floor(t / 7) - 100 * t);
    const o = forecastLeaf(history(60, { onHand }), 7);
    const trend = (o.netInflow[1] as number) - (o.demand.mean[1] as number);
    expect(trend).toBeCloseTo(300 / 7, 6);
    // One week the other way (a delivery missed), and the trend is not trusted.
    const missed = onHand.map((v, t) => (t >= 46 ? v - 1000 : v));
    const m = forecastLeaf(history(60, { onHand: missed }), 7);
    expect((m.netInflow[1] as number) - (m.demand.mean[1] as number)).toBe(0);
  });

  it("reads sites carried forward between weekly reports at their weekly rate", () => {
    // Flat for six days, then 700 less: 100 a day, seen once a week, nothing delivered.
    const onHand = Array.from({ length: 70 }, (_, t) => 10_000 - 700 * Math.floor(t / 7));
    const h = history(70, { onHand });
    const o = forecastLeaf(h, 14);
    expect(o.demand.classification).toBe("intermittent");
    const mean = o.demand.mean.reduce((a, b) => a + b, 0) / 14;
    expect(mean).toBeGreaterThan(85);
    expect(mean).toBeLessThan(115);
    const path = stockPath(h, 14);
    expect(path[13]).toBeCloseTo((onHand.at(-1) as number) - 1400, 6);
  });

  it("does not take a reporting dip for consumption", () => {
    // A steady 100 a day, with one day on which a site's 5,000 were missing from the total.
    const onHand: number[] = steady(60, 10_000, 100);
    onHand[50] = (onHand[50] as number) - 5000;
    const o = forecastLeaf(history(60, { onHand }), 7);
    for (const d of o.demand.mean) expect(d).toBeCloseTo(100, 6);
  });

  it("takes reported receipts out of the drawdown and does not count on more", () => {
    // The stock stays at 1,000 because 100 a day is received: 100 a day is consumed, and the
    // projection, which does not promise deliveries, draws it down.
    const h = history(40, { onHand: new Array(40).fill(1000), received: new Array(40).fill(100) });
    const o = forecastLeaf(h, 5);
    for (const d of o.demand.mean) expect(d).toBeCloseTo(100, 6);
    expect(stockPath(h, 5).map((v) => Math.round(v))).toEqual([900, 800, 700, 600, 500]);
  });

  it("claims no demand for a stock that never fell", () => {
    const o = forecastLeaf(history(30, { onHand: Array.from({ length: 30 }, (_, t) => 100 + t) }), 7);
    expect(o.demandSource).toBe("stock-drawdown");
    expect(o.demand.mean).toEqual(new Array(7).fill(0));
  });
});

describe("forecastLeaf with nothing usable, and bad input", () => {
  it("returns zeros with source none", () => {
    for (const h of [history(0, {}), history(10, {}), history(10, { onHand: [null, null, 5, null, null, null, null, null, null, null] })]) {
      const o = forecastLeaf(h, 4);
      expect(o.demandSource).toBe("none");
      expect(o.demand.mean).toEqual([0, 0, 0, 0]);
      expect(o.demand.high95).toEqual([0, 0, 0, 0]);
      expect(o.demandSd).toEqual([0, 0, 0, 0]);
      expect(o.netInflow).toEqual([0, 0, 0, 0]);
    }
  });

  it("rejects malformed input with a message naming the problem", () => {
    const ok = history(3, { onHand: [1, 2, 3] });
    expect(badInputMessage(() => forecastLeaf({ ...ok, consumed: [1, 2] }, 7))).toMatch(
      /history\.consumed has 2 days but history\.onHand has 3: every series must cover the same days/,
    );
    expect(badInputMessage(() => forecastLeaf({ ...ok, onHand: [1, -5, 3] }, 7))).toMatch(/history\.onHand\[1\] is negative \(-5\)/);
    expect(badInputMessage(() => forecastLeaf({ ...ok, shipped: [null, Number.NaN, null] }, 7))).toMatch(/history\.shipped\[1\] is NaN: use null/);
    expect(badInputMessage(() => forecastLeaf({ ...ok, received: [Infinity, null, null] }, 7))).toMatch(/history\.received\[0\] is Infinity: quantities must be finite/);
    expect(badInputMessage(() => forecastLeaf({ ...ok, produced: [null, undefined as unknown as null, null] }, 7))).toMatch(
      /history\.produced\[1\] is undefined: every day needs a number, or null/,
    );
    expect(badInputMessage(() => forecastLeaf({ ...ok, consumed: undefined as unknown as null[] }, 7))).toMatch(/history\.consumed must be an array/);
    expect(badInputMessage(() => forecastLeaf(null as unknown as LeafHistory, 7))).toMatch(/history must be an object/);
    for (const horizon of [0, -1, 2.5, 367, Number.NaN]) {
      expect(badInputMessage(() => forecastLeaf(ok, horizon))).toMatch(/horizon must be a whole number of days from 1 to 366/);
    }
  });

  it("is deterministic and leaves its input alone", () => {
    const onHand = Array.from({ length: 90 }, (_, t) => 5000 + ((t * 7919) % 613) - 20 * t);
    const h = history(90, { onHand });
    const copy = structuredClone(h);
    expect(forecastLeaf(h, 28)).toEqual(forecastLeaf(copy, 28));
    expect(h).toEqual(copy);
  });
});

describe("Michigan hospital PPE stock (real data, vendored slice)", () => {
  const data = loadMichiganDaily(MICHIGAN_FIXTURE_CSV, BACKTEST_PRODUCTS);

  it("cleans the dirty values it contains", () => {
    const c = data.cleaning;
    expect(c.malformed).toEqual([
      "2020-04-04 2N Surgical_Masks '3,621,35'",
      "2020-10-16 3 Gloves '64,767,68'",
      "2020-11-03 8 Surgical_Masks '3,98,124'",
      "2020-11-17 5 Surgical_Masks '4,92,231'",
    ]);
    // The slice has no Reporting_PPE column: its 16 marked copies are among the stale copies.
    expect(c.notReports).toBe(0);
    expect(c.staleCopies).toBe(60);
    expect(c.statewide).toEqual(["2020-05-27 Surgical_Masks", "2020-08-20 Gloves"]);
    const s = data.series.get("1")?.get("Surgical_Masks") as (number | null)[];
    const day = (d: string) => data.dates.indexOf(d);
    expect(s[day("2020-05-27")]).toBeNull(); // 128,295 among 1.1 million on both sides
    expect(data.series.get("1")?.get("N95_Masks")?.[day("2020-09-24")]).toBeNull(); // 09-14 sent again
    for (const region of MICHIGAN_REGIONS) for (const p of BACKTEST_PRODUCTS) for (const v of data.series.get(region)?.get(p) ?? []) expect(v === null || v >= 0).toBe(true);
    expect(scaleOf([5, null, 7, 4])).toBe(2.5);
  });

  it("projects stock 7 and 14 days ahead about as well as the last value, never clearly worse", () => {
    // Every third day as an origin keeps this under a few seconds; `npm run backtest -- michigan`
    // scores every day. The goal (ratio below 1.0 for every product, 0.9 on average) is
    // NOT met: on-hand stock here moves like a random walk with delivery jumps (BENCHMARKS.md,
    // "backtest michigan"), and the forecast is level with naive. What is asserted is that it
    // is never clearly worse, and ahead where a trend holds (N95 masks).
    const r = backtestMichigan(data, { stride: 3 });
    for (const p of r.products) {
      for (const h of BACKTEST_HORIZONS) {
        const s = p.byHorizon[h];
        expect(s?.origins, `${p.product} ${h}`).toBeGreaterThan(300);
        expect((s?.mase as number) / (s?.maseNaive as number), `${p.product} ${h}-day`).toBeLessThan(1.02);
      }
    }
    for (const h of BACKTEST_HORIZONS) {
      const a = r.average[h] as { mase: number; maseNaive: number };
      expect(a.mase / a.maseNaive, `average ${h}-day`).toBeLessThan(1.005);
    }
    const n95 = r.products.find((p) => p.product === "N95_Masks");
    for (const h of BACKTEST_HORIZONS) expect((n95?.byHorizon[h]?.mase as number) / (n95?.byHorizon[h]?.maseNaive as number)).toBeLessThan(1);
    // The naive forecast through the same harness is naive: the comparison itself is sound.
    const naive = backtestMichigan(data, { stride: 3, forecaster: (_h, onHand, horizon) => new Array<number>(horizon).fill(onHand) });
    for (const p of naive.products) for (const h of BACKTEST_HORIZONS) expect(p.byHorizon[h]?.mase).toBe(p.byHorizon[h]?.maseNaive);
  });
});

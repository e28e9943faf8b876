// Pure forecasting library: answers known by hand, then the Michigan PPE data as a real-data check.
import { describe, expect, it } from "vitest";
import {
  adjustedConsumption,
  adjustedConsumptionOfDays,
  adjustedDailyDemand,
  stockoutFraction,
  type ConsumptionDay,
} from "../src/domain/forecast/consumption.js";
import {
  ADI_INTERMITTENT,
  averageDemandInterval,
  crostonSba,
  dampedHolt,
  dampedVarianceMultipliers,
  forecastDemand,
  mase,
  type ForecastIntervals,
} from "../src/domain/forecast/methods.js";
import {
  MICHIGAN_PRODUCTS,
  MICHIGAN_REGIONS,
  loadMichiganSeries,
  michiganAccuracy,
  parseCount,
} from "../bench/forecast-accuracy.js";
import { badInputMessage } from "./helpers/errors.js";

/** Deterministic pseudo-random numbers in [0, 1): test series must not change between runs. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}


function expectNested(f: ForecastIntervals) {
  f.mean.forEach((m, i) => {
    const at = `h=${i + 1}`;
    expect(f.low95[i], at).toBeGreaterThanOrEqual(0);
    expect(f.low95[i], at).toBeLessThanOrEqual(f.low80[i] as number);
    expect(f.low80[i], at).toBeLessThanOrEqual(m);
    expect(m, at).toBeLessThanOrEqual(f.high80[i] as number);
    expect(f.high80[i], at).toBeLessThanOrEqual(f.high95[i] as number);
  });
}

const width95 = (f: ForecastIntervals, i: number) => (f.high95[i] as number) - (f.low95[i] as number);

describe("stock-out adjusted consumption", () => {
  it("scales consumption over the days with stock up to the whole window", () => {
    const r = adjustedConsumption(70, 30, 10);
    expect(r.ok).toBe(true);
    expect(r.adjusted).toBeCloseTo(105, 10);
    expect(r.perDay).toBeCloseTo(3.5, 10);
    expect(adjustedConsumption(70, 30, 0).adjusted).toBe(70);
  });

  it("has no value when every day was a stock-out, and says why", () => {
    const r = adjustedConsumption(0, 30, 30);
    expect(r.ok).toBe(false);
    expect(r.adjusted).toBeNull();
    expect(r.ok ? "" : r.reason).toMatch(/all 30 days/);
  });

  it("counts zero stock with unmet need as a whole day and stock-out hours as a fraction", () => {
    expect(stockoutFraction({ consumed: 0, onHand: 0, unmetNeed: true })).toBe(1);
    expect(stockoutFraction({ consumed: 0, onHand: 0, unmetNeed: 12 })).toBe(1);
    // Zero stock with no one turned away is a quiet day, not a stock-out.
    expect(stockoutFraction({ consumed: 0, onHand: 0, unmetNeed: 0 })).toBe(0);
    expect(stockoutFraction({ consumed: 5, stockoutHours: 6 })).toBe(0.25);
    expect(stockoutFraction({ consumed: 0, stockoutHours: 30 })).toBe(1);
  });

  it("does not let a stock-out period lower average consumption", () => {
    // 20 days at 3.5 a day, then 10 days out of stock with need turned away: 70 consumed.
    const days: ConsumptionDay[] = [
      ...Array.from({ length: 20 }, () => ({ consumed: 3.5, onHand: 40 })),
      ...Array.from({ length: 10 }, () => ({ consumed: 0, onHand: 0, unmetNeed: true })),
    ];
    const r = adjustedConsumptionOfDays(days);
    expect(r.stockoutDays).toBe(10);
    expect(r.adjusted).toBeCloseTo(105, 10);
    expect(r.perDay).toBeCloseTo(3.5, 10);
    // Day by day: the outage days carry the demand of the days around them, not zero.
    const daily = adjustedDailyDemand(days, 28);
    for (const v of daily) expect(v).toBeCloseTo(3.5, 10);
    // A half-day outage doubles what was recorded for the half day with stock.
    expect(adjustedDailyDemand([{ consumed: 2, stockoutHours: 12 }])).toEqual([4]);
    // Nothing but outage in the window: unknown, not zero.
    expect(adjustedDailyDemand([{ consumed: 0, onHand: 0, unmetNeed: true }])).toEqual([null]);
  });

  it("rejects impossible windows with a message naming the value", () => {
    expect(badInputMessage(() => adjustedConsumption(70, 30, 31))).toMatch(/stockoutDays \(31\) cannot exceed days in the window \(30\)/);
    expect(badInputMessage(() => adjustedConsumption(-1, 30, 0))).toMatch(/consumed cannot be negative/);
    expect(badInputMessage(() => adjustedConsumption(Number.NaN, 30, 0))).toMatch(/consumed must be a number/);
    expect(badInputMessage(() => adjustedConsumptionOfDays([]))).toMatch(/no days/);
    expect(badInputMessage(() => adjustedConsumptionOfDays([{ consumed: 1, stockoutHours: -2 }]))).toMatch(
      /days\[0\]\.stockoutHours cannot be negative/,
    );
  });
});

describe("forecast methods", () => {
  it("scales errors by the in-sample naive one-step MAE", () => {
    // Training changes 1 and 2: scale 1.5; absolute errors 1 and 1: MASE 1 / 1.5.
    expect(mase([3, 5], [4, 4], [1, 2, 4])).toBeCloseTo(2 / 3, 12);
    expect(mase([3], [3], [7, 7, 7])).toBeNull();
  });

  it("uses the damped-trend variance of Hyndman et al. (2008), Table 6.1, class 1", () => {
    const p = { alpha: 0.4, beta: 0.1, phi: 0.9 };
    const { alpha: a, beta: b, phi: f } = p;
    const closedForm = (h: number) =>
      1 +
      a * a * (h - 1) +
      ((b * f * h) / (1 - f) ** 2) * (2 * a * (1 - f) + b * f) -
      ((b * f * (1 - f ** h)) / ((1 - f) ** 2 * (1 - f * f))) * (2 * a * (1 - f * f) + b * f * (1 + 2 * f - f ** h));
    const v = dampedVarianceMultipliers(p, 28);
    v.forEach((x, i) => expect(x).toBeCloseTo(closedForm(i + 1), 9));
  });

  it("extrapolates a linear trend, damped, and beats naive on it", () => {
    const next = lcg(7);
    const history = Array.from({ length: 60 }, (_, t) => 100 + 3 * t + (next() - 0.5) * 2);
    const last = history.at(-1) as number;
    const f = forecastDemand(history, { horizon: 28 });
    expect(f.classification).toBe("regular");
    expect(f.method).toBe("damped-holt");
    expect(f.params.phi).toBeGreaterThanOrEqual(0.8);
    expect(f.params.phi).toBeLessThanOrEqual(0.98);
    expect(f.params.beta).toBeLessThan(f.params.alpha as number);
    // Going up about 3 a day at first...
    expect(f.mean[0]).toBeGreaterThan(last + 1.5);
    expect(f.mean[0]).toBeLessThan(last + 4.5);
    // ...and flattening: every step smaller than the one before, the total below a straight line.
    for (let h = 2; h < 28; h++) {
      const step = (f.mean[h] as number) - (f.mean[h - 1] as number);
      expect(step).toBeGreaterThan(0);
      expect(step).toBeLessThan((f.mean[h - 1] as number) - (f.mean[h - 2] as number));
    }
    expect(f.mean[27]).toBeLessThan(last + 3 * 28);
    expect(f.mean[27]).toBeGreaterThan(last + 3 * 10);
    expect(f.backtest.origins).toBeGreaterThan(0);
    expect(f.backtest.maeMethod as number).toBeLessThan((f.backtest.maeNaive as number) / 2);
    expect(f.backtest.mase as number).toBeLessThan(f.backtest.maseNaive as number);
  });

  it("gives a flat forecast with zero-width intervals for a constant series", () => {
    const f = forecastDemand(new Array(40).fill(50), { horizon: 28 });
    expect(f.mean).toEqual(new Array(28).fill(50));
    for (let i = 0; i < 28; i++) expect(width95(f, i)).toBe(0);
    // A constant with a little noise: still flat, and the 95 % band a few units wide, not tens.
    const wobble = Array.from({ length: 40 }, (_, t) => 50 + (t % 2 === 0 ? 0.5 : -0.5));
    const g = forecastDemand(wobble, { horizon: 28 });
    expect(Math.max(...g.mean) - Math.min(...g.mean)).toBeLessThan(0.5);
    for (const m of g.mean) expect(Math.abs(m - 50)).toBeLessThan(1);
    expect(width95(g, 0)).toBeLessThan(5);
    expectNested(g);
  });

  it("nests the intervals (95 % around 80 % around the mean) and widens them with h", () => {
    const next = lcg(42);
    const history = Array.from({ length: 120 }, (_, t) => 500 + 2 * t + (next() - 0.5) * 40);
    for (const f of [forecastDemand(history, { horizon: 28 }), dampedHolt(history, 28)]) {
      expectNested(f);
      for (let i = 1; i < 28; i++) expect(width95(f, i)).toBeGreaterThanOrEqual(width95(f, i - 1));
      expect(width95(f, 27)).toBeGreaterThan(1.5 * width95(f, 0));
      expect((f.high80[27] as number) - (f.low80[27] as number)).toBeLessThan(width95(f, 27));
    }
  });

  it("never forecasts below zero for a falling series", () => {
    const history = Array.from({ length: 40 }, (_, t) => Math.max(0, 400 - 10 * t));
    const f = forecastDemand(history, { horizon: 28 });
    for (const series of [f.mean, f.low80, f.low95, f.high80, f.high95]) for (const v of series) expect(v).toBeGreaterThanOrEqual(0);
  });

  it("picks Croston/SBA for intermittent demand, near demand size / interval", () => {
    const next = lcg(2024);
    const history: number[] = [];
    while (history.length < 240) {
      const gap = 3 + Math.floor(next() * 3); // every 3..5 days, mean 4
      for (let i = 1; i < gap; i++) history.push(0);
      history.push(8 + Math.floor(next() * 5)); // 8..12 units, mean 10
    }
    const demands = history.filter((v) => v > 0);
    const expected = demands.reduce((a, b) => a + b, 0) / demands.length / averageDemandInterval(history);
    expect(averageDemandInterval(history)).toBeGreaterThan(ADI_INTERMITTENT);

    const f = forecastDemand(history, { horizon: 28 });
    expect(f.classification).toBe("intermittent");
    expect(f.method).toBe("croston-sba");
    // SBA deflates Croston's size/interval by (1 - alpha/2): a little under, never far off.
    expect(Math.abs((f.mean[0] as number) - expected) / expected).toBeLessThan(0.1);
    expect(new Set(f.mean).size).toBe(1);
    expectNested(f);
    expect(f.low80[0]).toBe(0);
    expect(f.high95[0] as number).toBeGreaterThan(f.mean[0] as number);
    expect(crostonSba(history, 7).mean[0]).toBe(f.mean[0]);
  });

  it("falls back to naive below 14 points", () => {
    const f = forecastDemand([5, 7, 6, 9, 8], { horizon: 3 });
    expect(f.method).toBe("naive");
    expect(f.classification).toBe("short");
    expect(f.mean).toEqual([8, 8, 8]);
    expect(f.backtest.origins).toBe(0);
    expectNested(f);
  });

  it("is deterministic", () => {
    const next = lcg(9);
    const history = Array.from({ length: 90 }, (_, t) => 80 + t + next() * 20);
    expect(forecastDemand(history)).toEqual(forecastDemand([...history]));
  });

  it("rejects bad input with a message naming the problem", () => {
    expect(badInputMessage(() => forecastDemand([]))).toMatch(/history is empty/);
    expect(badInputMessage(() => forecastDemand([1, 2, Number.NaN, 4]))).toMatch(/history\[2\] is NaN/);
    expect(badInputMessage(() => forecastDemand([1, -3, 2]))).toMatch(/history\[1\] is negative \(-3\)/);
    expect(badInputMessage(() => forecastDemand([1, Infinity]))).toMatch(/history\[1\] is Infinity/);
    expect(badInputMessage(() => forecastDemand([1, 2], { horizon: 0 }))).toMatch(/horizon must be a whole number/);
    expect(badInputMessage(() => forecastDemand([1, 2], { horizon: 2.5 }))).toMatch(/horizon/);
    expect(badInputMessage(() => dampedHolt([1, 2, Number.NaN], 7))).toMatch(/history\[2\] is NaN/);
  });
});

describe("Michigan hospital PPE (real data)", () => {
  it("parses counts and drops malformed cells instead of guessing", () => {
    expect(parseCount("28523")).toBe(28523);
    expect(parseCount("6,476,768")).toBe(6476768);
    expect(parseCount("3,621,35")).toBeNull();
    expect(parseCount("64,767,68")).toBeNull();
    expect(parseCount("")).toBeNull();
    expect(parseCount(undefined)).toBeNull();
  });

  it("forecasts on-hand stock 14 days ahead no worse than naive (mean MASE over 32 series; the margin is noise, see BENCHMARKS.md)", () => {
    const all = loadMichiganSeries();
    expect(all).toHaveLength(MICHIGAN_REGIONS.length * MICHIGAN_PRODUCTS.length);
    const get = (region: string, product: string) => all.find((s) => s.region === region && s.product === product);
    // The four malformed cells of the daily period are dropped on top of the 18 days with empty
    // PPE columns: "3,621,35" (2N), "64,767,68" (3), "4,92,231" (5), "3,98,124" (8).
    expect(get("2N", "N95_Masks")?.dropped).toBe(18);
    expect(get("2N", "Surgical_Masks")?.dropped).toBe(19);
    expect(get("3", "Gloves")?.dropped).toBe(19);
    expect(get("5", "Surgical_Masks")?.dropped).toBe(19);
    expect(get("8", "Surgical_Masks")?.dropped).toBe(19);
    for (const s of all) for (const v of s.values) expect(Number.isFinite(v) && v >= 0).toBe(true);

    const rows = michiganAccuracy(14, all);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    for (const r of rows) expect(r.origins).toBeGreaterThanOrEqual(8);
    const method = mean(rows.map((r) => r.maseMethod));
    const naive = mean(rows.map((r) => r.maseNaive));
    expect(method).toBeLessThan(naive);
    // And the selection may not buy that average with a product it makes clearly worse.
    for (const product of MICHIGAN_PRODUCTS) {
      const p = rows.filter((r) => r.series.product === product);
      expect(mean(p.map((r) => r.maseMethod)) / mean(p.map((r) => r.maseNaive)), product).toBeLessThan(1.01);
    }
  });
});

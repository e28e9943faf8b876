import { describe, expect, it } from "vitest";
import { addSite, inDayOrder, parseNumbers, productionForecast, type SiteSeries } from "../src/domain/forecast/leaf-inputs.js";
import type { LeafHistory } from "../src/domain/forecast/leaf.js";

const f = (xs: (number | null)[]) => Float64Array.from(xs, (x) => (x === null ? NaN : x));

function series(days: number[], cols: Partial<Record<Exclude<keyof SiteSeries, "siteId" | "regionId" | "day">, (number | null)[]>>): SiteSeries {
  return {
    siteId: "s",
    regionId: 1,
    day: Float64Array.from(days),
    onHand: cols.onHand ? f(cols.onHand) : null,
    consumed: cols.consumed ? f(cols.consumed) : null,
    produced: cols.produced ? f(cols.produced) : null,
    received: cols.received ? f(cols.received) : null,
    shipped: cols.shipped ? f(cols.shipped) : null,
    stockoutHours: cols.stockoutHours ? f(cols.stockoutHours) : null,
    capacityPerDay: cols.capacityPerDay ? f(cols.capacityPerDay) : null,
  };
}

const empty = (n: number): LeafHistory => ({
  onHand: new Array(n).fill(null),
  consumed: new Array(n).fill(null),
  produced: new Array(n).fill(null),
  received: new Array(n).fill(null),
  shipped: new Array(n).fill(null),
});

/** float8 as PostgreSQL 12+ prints it: the shortest exact digits, with an exponent from 1e15 and below 1e-4. */
function pgFloat8(v: number): string {
  if (Object.is(v, -0)) return "-0";
  if (!Number.isFinite(v)) return Number.isNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity";
  const a = Math.abs(v);
  if (a === 0 || (a < 1e15 && a >= 1e-4)) return String(v);
  const [mantissa, exponent] = v.toExponential().split("e") as [string, string];
  const e = Number(exponent);
  return `${mantissa}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
}

describe("parseNumbers (float8 as PostgreSQL prints it)", () => {
  it("reads the values Number() reads, bit for bit", () => {
    // Shortest round-trip text, which is what PostgreSQL 12+ prints for float8.
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const values = [0, -0, 1, -1, 0.1, 0.3, 1e-7, 5e-324, 1.7976931348623157e308, 123456789012345, 1234567890123456, 0.000123, 2 ** 53 + 2, -42.5];
    for (let i = 0; i < 5000; i++) values.push((random() - 0.5) * 10 ** Math.floor(random() * 30 - 10), Math.round(random() * 1e6) / 100);
    const text = values.map(pgFloat8).join(",");
    const parsed = parseNumbers(text, values.length);
    values.forEach((v, i) => expect(Object.is(parsed[i], v), `${v} read as ${parsed[i]}`).toBe(true));
  });

  it("reads an empty field as NaN (not reported), Infinity and exponents by Number()", () => {
    expect(pgFloat8(1e15)).toBe("1e+15");
    expect(pgFloat8(0.000012345)).toBe("1.2345e-05");
    expect([...parseNumbers(",5,,Infinity,-Infinity,1e+20,2.5e-5,")]).toEqual([NaN, 5, NaN, Infinity, -Infinity, 1e20, 2.5e-5, NaN]);
  });

  it("refuses a column whose length differs from the days'", () => {
    expect(() => parseNumbers("1,2,3", 2)).toThrow("expected 2 values, got 3");
  });
});

describe("a site's series", () => {
  it("comes out the same whatever order the aggregate returned its reports in", () => {
    const ordered = series([-3, -2, 0], { onHand: [10, 8, 5], consumed: [2, 2, null] });
    const shuffled = series([0, -3, -2], { onHand: [5, 10, 8], consumed: [null, 2, 2] });
    const a = empty(4);
    const b = empty(4);
    addSite(a, inDayOrder(ordered), 4);
    addSite(b, inDayOrder(shuffled), 4);
    expect(b).toEqual(a);
    expect(a.onHand).toEqual([10, 8, 8, 5]);
    // Day -1 has no report: consumption takes the straight line, the last figure carries on.
    expect(a.consumed).toEqual([2, 2, 2, 2]);
  });

  it("adds a second site's figures to the first's, leaving unreported columns null", () => {
    const h = empty(3);
    addSite(h, series([-2, -1, 0], { onHand: [1, 2, 3], received: [null, 4, null] }), 3);
    addSite(h, series([-1, 0], { onHand: [10, 20], received: [1, 1] }), 3);
    expect(h.onHand).toEqual([1, 12, 23]);
    expect(h.received).toEqual([null, 5, 1]);
    expect(h.produced).toEqual([null, null, null]);
    expect(h.consumed).toEqual([null, null, null]);
  });

  it("adjusts consumption for stock-out hours and for a day that ends with nothing on hand", () => {
    const h = empty(3);
    addSite(h, series([-2, -1, 0], { onHand: [5, 5, 0], consumed: [10, 6, 8], stockoutHours: [null, 12, null] }), 3);
    // Day -1: half a day out, 6 / (1 - 0.5). Day 0: out, no hours: the window's adjusted average.
    expect(h.consumed[1]).toBe(12);
    expect(h.consumed[2]).toBe((10 + 6 + 8) / (3 - 0.5 - 1));
  });

  it("forecasts production from the last week's output, capped by capacity and by raw material", () => {
    const s = series([-9, -3, -2, -1], { produced: [1000, 100, 200, 300], capacityPerDay: [null, 500, null, 150] });
    expect(productionForecast(s, 3, Infinity)).toEqual([150, 150, 150]);
    expect(productionForecast(s, 3, 200)).toEqual([150, 50, 0]);
    expect(productionForecast(series([-30], { produced: [100] }), 2, Infinity)).toEqual([0, 0]);
  });
});

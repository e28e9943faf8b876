/* global document */
// The forecast chart, drawn as SVG by hand: daily demand with its 80 % and 95 % prediction
// intervals as bands and expected production, and below it the projected stock, with the
// stock-out date marked across both.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 760;
const LEFT = 64;
const RIGHT = 20;
const DEMAND = { top: 28, height: 190 };
const STOCK = { top: 278, height: 150 };
const HEIGHT = STOCK.top + STOCK.height + 34;

const axisNumber = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });
const number = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });

/**
 * @param {string} name
 * @param {Record<string, string | number>} [attrs]
 * @param {string} [text]
 */
function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Round tick steps (1, 2, 5 x 10^k) covering [min, max] in about `count` steps. */
function ticks(min, max, count) {
  if (max <= min) max = min + 1;
  const raw = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const out = [];
  for (let v = lo; v <= hi + step / 2; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** A panel's vertical scale and its gridlines with labels. */
function panel(svg, box, values, title) {
  const finite = values.filter(Number.isFinite);
  const ys = ticks(Math.min(0, ...finite), Math.max(0, ...finite), 4);
  const lo = ys[0];
  const hi = ys.at(-1);
  const y = (v) => box.top + box.height - ((v - lo) / (hi - lo)) * box.height;
  svg.append(el("text", { x: LEFT, y: box.top - 10, class: "chart-title" }, title));
  for (const v of ys) {
    svg.append(el("line", { x1: LEFT, x2: WIDTH - RIGHT, y1: y(v), y2: y(v), class: v === 0 ? "zero" : "gridline" }));
    svg.append(el("text", { x: LEFT - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, axisNumber.format(v)));
  }
  return y;
}

const line = (points) => points.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join("");
const band = (upper, lower) => `${line(upper)}L${line([...lower].reverse()).slice(1)}Z`;

/**
 * @param {{ shortage: { asOf: string, onHand: number, stockoutDate: string | null, region: { name: string, code: string }, product: { code: string, baseUnit: string } },
 *           points: { date: string, demand: number, demandLow80: number, demandHigh80: number, demandLow95: number, demandHigh95: number, supply: number, stock: number }[] }} forecast
 * @returns {HTMLElement} the chart, its legend and its figures as a table
 */
export function forecastChart(forecast) {
  const { shortage, points } = forecast;
  const wrap = document.createElement("figure");
  wrap.className = "chart";
  const unit = shortage.product.baseUnit;
  const place = `${shortage.region.name} (${shortage.region.code})`;

  const svg = el("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-labelledby": "chart-title chart-desc", class: "forecast-svg" });
  svg.append(el("title", { id: "chart-title" }, `Forecast of ${shortage.product.code} in ${place}`));
  const last = points.at(-1);
  const desc = [
    `Daily demand forecast for ${points.length} days from ${points[0]?.date ?? "-"} to ${last?.date ?? "-"}, with 80 % and 95 % intervals, and the projected stock from ${number.format(shortage.onHand)} ${unit} on ${shortage.asOf}.`,
    shortage.stockoutDate ? `The projected stock runs out on ${shortage.stockoutDate}.` : "The projected stock does not run out within the horizon.",
  ].join(" ");
  svg.append(el("desc", { id: "chart-desc" }, desc));

  // Day 0 is the last day of data (asOf); the forecast points are days 1..n.
  const n = points.length;
  const x = (i) => LEFT + (i / Math.max(n, 1)) * (WIDTH - LEFT - RIGHT);

  const yd = panel(svg, DEMAND, points.flatMap((p) => [p.demandHigh95, p.demandLow95, p.supply]), `Daily demand and expected production (${unit} a day)`);
  svg.append(el("path", { d: band(points.map((p, i) => [x(i + 1), yd(p.demandHigh95)]), points.map((p, i) => [x(i + 1), yd(p.demandLow95)])), class: "band-95" }));
  svg.append(el("path", { d: band(points.map((p, i) => [x(i + 1), yd(p.demandHigh80)]), points.map((p, i) => [x(i + 1), yd(p.demandLow80)])), class: "band-80" }));
  svg.append(el("path", { d: line(points.map((p, i) => [x(i + 1), yd(p.demand)])), class: "demand-line" }));
  svg.append(el("path", { d: line(points.map((p, i) => [x(i + 1), yd(p.supply)])), class: "supply-line" }));

  const ys = panel(svg, STOCK, [shortage.onHand, ...points.map((p) => p.stock)], `Projected stock (${unit})`);
  svg.append(el("path", { d: line([[x(0), ys(shortage.onHand)], ...points.map((p, i) => [x(i + 1), ys(p.stock)])]), class: "stock-line" }));

  // Dates along the bottom, a week apart, starting at the last day of data.
  const dates = [shortage.asOf, ...points.map((p) => p.date)];
  for (let i = 0; i <= n; i += 7) {
    svg.append(el("line", { x1: x(i), x2: x(i), y1: STOCK.top + STOCK.height, y2: STOCK.top + STOCK.height + 5, class: "axis" }));
    svg.append(el("text", { x: x(i), y: STOCK.top + STOCK.height + 20, class: "tick", "text-anchor": "middle" }, dates[i].slice(5)));
  }

  if (shortage.stockoutDate) {
    let i = dates.indexOf(shortage.stockoutDate);
    if (i < 0 && shortage.stockoutDate < dates[0]) i = 0;
    if (i >= 0) {
      const marker = el("g", { class: "stockout", "data-date": shortage.stockoutDate });
      marker.append(el("line", { x1: x(i), x2: x(i), y1: DEMAND.top - 4, y2: STOCK.top + STOCK.height }));
      const right = i > n * 0.6;
      marker.append(el("text", { x: x(i) + (right ? -6 : 6), y: DEMAND.top + 12, "text-anchor": right ? "end" : "start" }, `stock-out ${shortage.stockoutDate}`));
      svg.append(marker);
    }
  }
  wrap.append(svg);

  const legend = document.createElement("ul");
  legend.className = "legend chart-legend";
  legend.setAttribute("aria-label", "Chart legend");
  for (const [cls, text] of [
    ["key-demand", "forecast demand"],
    ["key-80", "80 % interval"],
    ["key-95", "95 % interval"],
    ["key-supply", "expected production"],
    ["key-stock", "projected stock"],
    ["key-stockout", "stock-out date"],
  ]) {
    const li = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = `swatch ${cls}`;
    li.append(swatch, text);
    legend.append(li);
  }
  const caption = document.createElement("figcaption");
  caption.append(legend);
  wrap.append(caption);

  // The same figures for screen readers and for anyone who wants the numbers.
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = "The figures as a table";
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  for (const h of ["Day", "Demand", "80 % interval", "95 % interval", "Production", "Stock"]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = h;
    head.append(th);
  }
  const body = table.createTBody();
  for (const p of points) {
    const row = body.insertRow();
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = p.date === shortage.stockoutDate ? `${p.date} (stock-out)` : p.date;
    row.append(th);
    for (const v of [
      number.format(p.demand),
      `${number.format(p.demandLow80)} to ${number.format(p.demandHigh80)}`,
      `${number.format(p.demandLow95)} to ${number.format(p.demandHigh95)}`,
      number.format(p.supply),
      number.format(p.stock),
    ]) {
      const td = row.insertCell();
      td.className = "num";
      td.textContent = v;
    }
  }
  details.append(summary, table);
  wrap.append(details);
  return wrap;
}

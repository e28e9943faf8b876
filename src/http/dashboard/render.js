/* global document */
// DOM helpers. Everything the API returns goes in as text (textContent), never as HTML.

export const RISK_LEVELS = ["RED", "ORANGE", "YELLOW", "BLUE", "GREEN"];
export const LEVEL_NAMES = { COUNTRY: "Country", PROVINCE: "Provinces", CITY: "Cities", COUNTY: "Counties" };
export const LEVEL_SINGULAR = { COUNTRY: "Country", PROVINCE: "Province", CITY: "City", COUNTY: "County" };
export const LEVEL_ORDER = ["COUNTRY", "PROVINCE", "CITY", "COUNTY"];

/**
 * @param {string} tag
 * @param {Record<string, unknown>} [props] properties (className, type, ...), `attrs` for attributes, `on` for listeners
 * @param {...(Node | string | number | null | undefined | false)} children
 */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue;
    if (k === "attrs") for (const [a, av] of Object.entries(v)) node.setAttribute(a, String(av));
    else if (k === "on") for (const [event, fn] of Object.entries(v)) node.addEventListener(event, fn);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(typeof c === "number" ? String(c) : c);
  return node;
}

/** The risk as a coloured badge whose text is the level: colour is never the only cue. */
export const riskBadge = (level) => h("span", { className: `risk risk-${level}` }, level);

const whole = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
const one = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });
export const fmt = {
  whole: (v) => (v === null || v === undefined ? "–" : whole.format(v)),
  one: (v) => (v === null || v === undefined ? "–" : one.format(v)),
  percent: (v) => (v === null || v === undefined ? "–" : `${whole.format(v * 100)} %`),
  days: (v) => (v === null || v === undefined ? "no stock-out in sight" : `${one.format(v)} days`),
  time: (iso) => (iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "–"),
};

/** A local calendar day as YYYY-MM-DD. */
export function isoDay(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** Replaces a table body's rows. */
export function fillBody(table, rows) {
  const body = table.tBodies[0];
  body.replaceChildren(...rows);
  table.hidden = rows.length === 0;
}

/** A table cell; `num` right-aligns figures. */
export const cell = (content, num = false) => h("td", num ? { className: "num" } : {}, content);

export const regionLabel = (region) => `${region.name} (${region.code})`;

// Builds test/fixtures/getusppe/by-state.csv from the GetUsPPE exports in ../shared/data/getusppe
// (MIT, see test/fixtures/getusppe/LICENSE): per US state and product, the quantity donors offered
// (supply) and the quantity matched to facilities (need). `npx tsx scripts/getusppe-fixture.ts`.
//
// Cleaning, as the raw files need it:
// - state: two-letter codes in any case ("Fl", "ca") are upper-cased; full names ("Ohio",
//   "Florida", "Michigan") are mapped to their codes; misspellings ("albama"), foreign places
//   (Shanghai, NSW, Ontario, ...), territories and blanks are dropped;
// - quantity: whole positive numbers only; a blank, zero, negative or non-number is dropped;
// - a match's facility has no state in the export, so its need is placed in the state of the donor
//   it was matched with (offers.donorKey = matches.donorkey); matches whose donor has no usable
//   state are dropped, as are test rows and the header repeated inside the file;
// - only the items the catalog carries: n95, kn95, surgical_mask, three_ply_mask (as surgical
//   masks), face_shield, nitrile_gloves, gown, safety_goggles.
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "csv-parse/sync";
import { US_STATES } from "../test/fixtures/getusppe/states.js";

const SOURCE = fileURLToPath(new URL("../../shared/data/getusppe/", import.meta.url));
const OUT = fileURLToPath(new URL("../test/fixtures/getusppe/by-state.csv", import.meta.url));
export const ITEMS: Record<string, string> = {
  n95: "MASK-N95",
  kn95: "MASK-KN95",
  surgical_mask: "MASK-SURGICAL",
  three_ply_mask: "MASK-SURGICAL",
  face_shield: "FACE-SHIELD",
  nitrile_gloves: "GLOVES-NITRILE",
  gown: "GOWN-ISOLATION",
  safety_goggles: "GOGGLES",
};

const byName = new Map(Object.entries(US_STATES).map(([code, s]) => [s.name.toLowerCase(), code]));
function state(raw: string | undefined): string | null {
  const v = (raw ?? "").trim();
  if (/^[A-Za-z]{2}$/.test(v) && US_STATES[v.toUpperCase()]) return v.toUpperCase();
  return byName.get(v.toLowerCase()) ?? null;
}
const quantity = (raw: string | undefined) => (/^\d+$/.test((raw ?? "").trim()) && Number(raw) > 0 ? Number(raw) : null);

const read = (file: string) => parse(readFileSync(SOURCE + file), { columns: true, skip_empty_lines: true, relax_column_count: true }) as Record<string, string>[];
const offers = read("all_offers.csv");
const matches = read("all_matches.csv");
const donorState = new Map<string, string>();
const totals = new Map<string, { offered: number; matched: number }>();
const cell = (st: string, product: string) => {
  const key = `${st},${product}`;
  let t = totals.get(key);
  if (!t) totals.set(key, (t = { offered: 0, matched: 0 }));
  return t;
};
const dropped = { offers: 0, matches: 0 };
for (const o of offers) {
  const st = state(o.stateprovince);
  if (st && o.donorKey) donorState.set(o.donorKey, st);
  const product = ITEMS[o.equipmentEnum ?? ""];
  const q = quantity(o.qty);
  if (!st || !product || q === null) {
    dropped.offers++;
    continue;
  }
  cell(st, product).offered += q;
}
for (const m of matches) {
  const st = donorState.get(m.donorkey ?? "");
  const product = ITEMS[m.enumcode ?? ""];
  const q = quantity(m.qty);
  if (!st || !product || q === null || m.matchstatus === "matchstatus") {
    dropped.matches++;
    continue;
  }
  cell(st, product).matched += q;
}
const lines = ["state,product,offered,matched", ...[...totals].sort(([a], [b]) => a.localeCompare(b)).map(([k, t]) => `${k},${t.offered},${t.matched}`)];
writeFileSync(OUT, lines.join("\n") + "\n");
console.log(`wrote ${lines.length - 1} rows to ${OUT}; dropped ${dropped.offers} of ${offers.length} offers and ${dropped.matches} of ${matches.length} matches`);

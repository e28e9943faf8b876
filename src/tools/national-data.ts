// A realistic national data set for benchmarks and demos: China's region tree, the catalog,
// hospitals spread by population, manufacturers in the provinces that made masks and PPE in 2020,
// raw-material suppliers next to them, and daily reports with an outbreak wave in one province.
// Reports are stored through submitReports, the write path of the API, so everything that path
// maintains (revisions, flags, outbox events, read models) is maintained for generated data too.
import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import { seededRandom } from "./random.js";
import type { Database } from "../db/index.js";
import { writeAudit } from "../domain/audit.js";
import { DEFAULT_CATALOG, seedCatalog } from "../domain/catalog.js";
import { DomainError, badInput } from "../domain/errors.js";
import { chinaRegions } from "../domain/region-sources.js";
import { createRegions, type RegionInput } from "../domain/regions.js";
import { MAX_BATCH_ROWS, submitReports } from "../domain/reports/ingest.js";
import type { ReportRowInput } from "../domain/reports/validate.js";
import { authenticate, createApiToken, revokeApiToken } from "../domain/tokens.js";
import { createUser } from "../domain/users.js";
import { isUniqueViolation } from "../domain/validation.js";
import { systemActor, type Actor, type Viewer } from "../domain/viewer.js";

export interface GenerateNationalOptions {
  /** Sites in all: hospitals, manufacturers' plants and raw-material suppliers' sites. */
  sites: number;
  /** Days of reports, ending yesterday (UTC). */
  days: number;
  /** The first this many finished goods of the catalog (default all 10). */
  products?: number;
  seed?: number;
  /** Province code of the outbreak (420000 or 42; default 420000, Hubei). */
  outbreakProvince?: string;
  /** Batches written at the same time (default 3); the database needs a pool one larger. */
  concurrency?: number;
  /** Called with `done: 0` when the reports start (after regions, catalog and sites), then after each batch. */
  onProgress?: (p: { done: number; total: number }) => void;
}

export interface GenerateNationalResult {
  regions: number;
  organizations: number;
  sites: number;
  reports: number;
  rejected: number;
  firstDay: string;
  lastDay: string;
  outbreakProvince: string;
  /** The first few messages of rejected rows, if any (there should be none). */
  rejectedExamples: string[];
}

export const GENERATE_LIMITS = {
  sites: { min: 1, max: 200_000 },
  days: { min: 1, max: 730 },
  seed: { min: 0, max: 2 ** 32 - 1 },
  concurrency: { min: 1, max: 16 },
} as const;
export const DEFAULT_SEED = 2020;
export const DEFAULT_OUTBREAK_PROVINCE = "420000";
/** Every generated site code starts with this: how a later run recognises an earlier one. */
export const SITE_CODE_PREFIX = "GEN-";
const GENERATOR_EMAIL = "national-data-generator@generate.local";

/** The catalog's finished goods in catalog order: what hospitals hold and manufacturers make. */
export const FINISHED_GOODS = DEFAULT_CATALOG.filter((p) => p.category !== "RAW_MATERIAL").map((p) => p.code.toUpperCase());
const CATALOG = new Map(DEFAULT_CATALOG.map((p) => [p.code.toUpperCase(), p]));

/** Population by province, 7th national census (2020-11-01), GB/T 2260 codes. */
export const PROVINCE_POPULATION_2020: Readonly<Record<string, number>> = {
  "110000": 21_893_095, "120000": 13_866_009, "130000": 74_610_235, "140000": 34_915_616, "150000": 24_049_155,
  "210000": 42_591_407, "220000": 24_073_453, "230000": 31_850_088, "310000": 24_870_895, "320000": 84_748_016,
  "330000": 64_567_588, "340000": 61_027_171, "350000": 41_540_086, "360000": 45_188_635, "370000": 101_527_453,
  "410000": 99_365_519, "420000": 57_752_557, "430000": 66_444_864, "440000": 126_012_510, "450000": 50_126_804,
  "460000": 10_081_232, "500000": 32_054_159, "510000": 83_674_866, "520000": 38_562_148, "530000": 47_209_277,
  "540000": 3_648_100, "610000": 39_528_999, "620000": 25_019_831, "630000": 5_923_957, "640000": 7_202_654,
  "650000": 25_852_345,
};

/**
 * Where masks and PPE were made in 2020, with a share of the manufacturers and their industrial
 * clusters (a county, or a city and its counties): Xiantao's nonwovens, Changyuan's medical
 * supplies, Gaobeidian and Anxin in Baoding, Dongguan and Shenzhen, Shaoxing, Nantong, Zibo...
 */
export const MANUFACTURING_PROVINCES: Readonly<Record<string, { weight: number; clusters: readonly string[] }>> = {
  "440000": { weight: 18, clusters: ["441900", "440300", "440100", "440500", "440600"] },
  "320000": { weight: 14, clusters: ["320600", "320500", "320100"] },
  "330000": { weight: 13, clusters: ["330600", "330100", "330300", "330200"] },
  "370000": { weight: 12, clusters: ["370300", "370700", "370200", "371300"] },
  "410000": { weight: 11, clusters: ["410783", "410700", "410100"] },
  "420000": { weight: 11, clusters: ["429004", "429005", "429006", "420100"] },
  "130000": { weight: 8, clusters: ["130684", "130632", "130638", "130600"] },
  "350000": { weight: 6, clusters: ["350582", "350500", "350200"] },
  "340000": { weight: 4, clusters: ["340100"] },
  "310000": { weight: 3, clusters: ["310000"] },
};
/** Manufacturers outside those provinces, spread by population. */
const MANUFACTURERS_ELSEWHERE = 0.1;
/** Of a manufacturer in one of those provinces, how likely its plants stand in a cluster. */
const IN_CLUSTER = 0.7;
const MANUFACTURER_SHARE = 0.045;
const SUPPLIER_SHARE = 0.015;
/** Below this many sites, every site is a hospital. */
const MIN_SITES_FOR_PRODUCERS = 10;

/**
 * Per finished good: a typical hospital's daily use, how many times that the outbreak drives it
 * at its peak, and a typical plant's daily capacity. Orders of magnitude from 2020 reports (a
 * tertiary hospital in Wuhan used tens of thousands of masks and thousands of coveralls a day).
 */
const FINISHED_PROFILE: Readonly<Record<string, { use: number; surge: number; capacity: number }>> = {
  "MASK-SURGICAL": { use: 1500, surge: 6, capacity: 150_000 },
  "MASK-N95": { use: 120, surge: 12, capacity: 20_000 },
  "MASK-KN95": { use: 80, surge: 8, capacity: 40_000 },
  "COVERALL-MEDICAL": { use: 30, surge: 14, capacity: 4_000 },
  "GOWN-ISOLATION": { use: 120, surge: 8, capacity: 12_000 },
  GOGGLES: { use: 10, surge: 10, capacity: 6_000 },
  "FACE-SHIELD": { use: 25, surge: 10, capacity: 15_000 },
  "GLOVES-NITRILE": { use: 1200, surge: 5, capacity: 300_000 },
  "TEST-PCR": { use: 250, surge: 10, capacity: 40_000 },
  "TEST-ANTIGEN": { use: 80, surge: 6, capacity: 60_000 },
};
const DEFAULT_FINISHED_PROFILE = { use: 100, surge: 6, capacity: 20_000 };

/**
 * Per raw material: a supplier's typical daily capacity (base units), how many of its sites'
 * suppliers make it (weight), and how tight its supply to manufacturers gets when they run at
 * full speed (melt-blown fabric was the bottleneck of 2020).
 */
const RAW_PROFILE: Readonly<Record<string, { capacity: number; weight: number; supply: number; extra: number }>> = {
  "MELTBLOWN-PP": { capacity: 3_000, weight: 5, supply: 1.05, extra: 0.35 },
  "SPUNBOND-PP": { capacity: 15_000, weight: 4, supply: 1.4, extra: 0.6 },
  "NOSE-WIRE": { capacity: 2_000_000, weight: 1, supply: 1.4, extra: 0.6 },
  EARLOOP: { capacity: 4_000_000, weight: 1, supply: 1.4, extra: 0.6 },
  "NITRILE-COMPOUND": { capacity: 20_000, weight: 2, supply: 1.4, extra: 0.6 },
  "PCR-REAGENT": { capacity: 100_000, weight: 2, supply: 1.3, extra: 0.6 },
};
const DEFAULT_RAW_PROFILE = { capacity: 10_000, weight: 1, supply: 1.4, extra: 0.6 };

/** Kinds of manufacturer, by catalog category, with their share. */
const CATEGORY_SHARE: Readonly<Record<string, number>> = { MASK: 0.5, PPE: 0.35, TEST_KIT: 0.15 };

const DAY_MS = 86_400_000;

// ---------------------------------------------------------------------------------------------
// Options

export interface ResolvedOptions {
  sites: number;
  days: number;
  products: number;
  seed: number;
  outbreakProvince: string;
  concurrency: number;
}

const whole = (name: string, value: unknown, min: number, max: number, hint = ""): number => {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw badInput(`${name} must be a whole number from ${min.toLocaleString("en")} to ${max.toLocaleString("en")}, got ${JSON.stringify(value)}${hint}`);
  }
  return value;
};

/** Checks the options (nothing touches the database); every problem says what to give instead. */
export function resolveOptions(options: GenerateNationalOptions): ResolvedOptions {
  const sites = whole("sites", options.sites, GENERATE_LIMITS.sites.min, GENERATE_LIMITS.sites.max);
  const days = whole("days", options.days, GENERATE_LIMITS.days.min, GENERATE_LIMITS.days.max);
  const products = whole(
    "products", options.products ?? FINISHED_GOODS.length, 1, FINISHED_GOODS.length,
    ` (the catalog has ${FINISHED_GOODS.length} finished goods: ${FINISHED_GOODS.join(", ")})`,
  );
  const seed = whole("seed", options.seed ?? DEFAULT_SEED, GENERATE_LIMITS.seed.min, GENERATE_LIMITS.seed.max);
  const concurrency = whole("concurrency", options.concurrency ?? 3, GENERATE_LIMITS.concurrency.min, GENERATE_LIMITS.concurrency.max);
  const raw = options.outbreakProvince ?? DEFAULT_OUTBREAK_PROVINCE;
  const trimmed = typeof raw === "string" ? raw.trim() : "";
  const code = /^\d{2}$/.test(trimmed) ? `${trimmed}0000` : trimmed;
  if (!(code in PROVINCE_POPULATION_2020)) {
    const names = new Map(chinaRegions().filter((r) => r.level === "PROVINCE").map((r) => [r.code, r.name]));
    throw badInput(
      `outbreakProvince must be the code of a province, got ${JSON.stringify(raw)}; one of ` +
        Object.keys(PROVINCE_POPULATION_2020).map((c) => `${c} ${names.get(c) ?? ""}`.trim()).join(", "),
    );
  }
  return { sites, days, products, seed, outbreakProvince: code, concurrency };
}

// ---------------------------------------------------------------------------------------------
// The plan: organizations and sites (pure, from the seed)

type SiteKind = "HOSPITAL" | "MANUFACTURER" | "RAW_MATERIAL_SUPPLIER";

interface Leaf {
  code: string;
  name: string;
  cityCode: string;
  provinceCode: string;
  /** Where hospitals go within a province: city districts and the capital hold more people. */
  weight: number;
}

interface Geography {
  provinces: { code: string; name: string; population: number; leaves: Leaf[] }[];
  provinceByCode: Map<string, Geography["provinces"][number]>;
  leavesByCity: Map<string, Leaf[]>;
  leafByCode: Map<string, Leaf>;
  nameOf: Map<string, string>;
}

export interface PlannedOrganization {
  name: string;
  kind: SiteKind;
}

export interface PlannedSite {
  code: string;
  name: string;
  organization: number;
  kind: SiteKind;
  regionCode: string;
  provinceCode: string;
  cityCode: string;
  /** Finished goods (hospital: held; manufacturer: made) or raw materials (supplier: made). */
  products: string[];
  /** Raw materials a manufacturer holds for what it makes. */
  inputs: string[];
}

export interface NationalPlan {
  regions: RegionInput[];
  organizations: PlannedOrganization[];
  sites: PlannedSite[];
  products: string[];
}

function geography(regions: readonly RegionInput[]): Geography {
  const nameOf = new Map(regions.map((r) => [r.code, r.name]));
  const provinces: Geography["provinces"] = [];
  const provinceByCode = new Map<string, Geography["provinces"][number]>();
  const parentOf = new Map<string, string>();
  const hasChildren = new Set<string>();
  for (const r of regions) {
    if (r.parentCode) {
      parentOf.set(r.code, r.parentCode);
      hasChildren.add(r.parentCode);
    }
    if (r.level === "PROVINCE") {
      const p = { code: r.code, name: r.name, population: PROVINCE_POPULATION_2020[r.code] ?? 0, leaves: [] as Leaf[] };
      provinces.push(p);
      provinceByCode.set(r.code, p);
    }
  }
  const leavesByCity = new Map<string, Leaf[]>();
  const leafByCode = new Map<string, Leaf>();
  for (const r of regions) {
    // Counties, and the cities that have none (Dongguan, Zhongshan, Danzhou, Jiayuguan).
    if (hasChildren.has(r.code) || (r.level !== "COUNTY" && r.level !== "CITY")) continue;
    const cityCode = r.level === "CITY" ? r.code : parentOf.get(r.code)!;
    const provinceCode = parentOf.get(cityCode)!;
    const province = provinceByCode.get(provinceCode);
    if (!province) continue;
    const district = r.name.endsWith("区");
    const capital = cityCode.slice(2, 4) === "01";
    // Development zones and the South China Sea islands are regions too, with few people.
    const sparse = r.name.includes("群岛") ? 0.02 : /开发区|高新|园区/.test(r.name) ? 0.4 : 1;
    const leaf: Leaf = { code: r.code, name: r.name, cityCode, provinceCode, weight: (district ? 1.6 : r.name.endsWith("市") ? 1.2 : 1) * (capital ? 1.5 : 1) * sparse };
    province.leaves.push(leaf);
    leafByCode.set(r.code, leaf);
    const list = leavesByCity.get(cityCode);
    if (list) list.push(leaf);
    else leavesByCity.set(cityCode, [leaf]);
  }
  return { provinces, provinceByCode, leavesByCity, leafByCode, nameOf };
}

/** Picks an index by weight. */
function pick(random: () => number, weights: readonly number[]): number {
  let total = 0;
  for (const w of weights) total += w;
  let x = random() * total;
  for (let i = 0; i < weights.length; i++) {
    x -= weights[i]!;
    if (x < 0) return i;
  }
  return weights.length - 1;
}

/** `total` split by weight, whole numbers (largest remainder), each at least `floor`. */
function apportion(total: number, weights: readonly number[], floor: number): number[] {
  const counts = weights.map(() => (total >= floor * weights.length ? floor : 0));
  const rest = total - counts.reduce((a, b) => a + b, 0);
  const sum = weights.reduce((a, b) => a + b, 0);
  const exact = weights.map((w) => (rest * w) / sum);
  exact.forEach((e, i) => (counts[i]! += Math.floor(e)));
  let left = total - counts.reduce((a, b) => a + b, 0);
  const order = exact.map((e, i) => [e - Math.floor(e), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let k = 0; left > 0; k++, left--) counts[order[k % order.length]![1]]! += 1;
  return counts;
}

const BRAND = ["康", "健", "泰", "华", "安", "瑞", "德", "恒", "信", "达", "宝", "盛", "卫", "洁", "护", "佳", "润", "诚", "航", "远"];
const brand = (random: () => number) => BRAND[Math.floor(random() * BRAND.length)]! + BRAND[Math.floor(random() * BRAND.length)]!;
const HOSPITAL_NAMES = ["人民医院", "中医医院", "妇幼保健院", "第二人民医院", "第三人民医院", "中西医结合医院", "传染病医院"];

/** Organizations and sites of a data set: which kind, where, what they hold or make. Pure. */
export function planNational(options: ResolvedOptions, regions: readonly RegionInput[] = chinaRegions()): NationalPlan {
  const random = seededRandom(options.seed);
  const geo = geography(regions);
  const finished = FINISHED_GOODS.slice(0, options.products);
  const inputsOf = (code: string) => (CATALOG.get(code)?.inputs ?? []).map((i) => i.productCode.toUpperCase());
  const categoryOf = (code: string) => CATALOG.get(code)!.category;
  // Municipalities' cities are "市辖区" and "县": the province's name stands for them.
  const cityName = (leaf: Leaf) => {
    const city = geo.nameOf.get(leaf.cityCode)!;
    return city === "市辖区" || city === "县" ? geo.nameOf.get(leaf.provinceCode)! : city;
  };
  const placeName = (leaf: Leaf) => (leaf.cityCode === leaf.code ? leaf.name : `${cityName(leaf)}${leaf.name}`);

  const producers = options.sites >= MIN_SITES_FOR_PRODUCERS;
  const manufacturerSites = producers ? Math.max(1, Math.round(options.sites * MANUFACTURER_SHARE)) : 0;
  const supplierSites = producers ? Math.max(1, Math.round(options.sites * SUPPLIER_SHARE)) : 0;
  const hospitalSites = options.sites - manufacturerSites - supplierSites;

  const organizations: PlannedOrganization[] = [];
  const sites: PlannedSite[] = [];
  const seq = new Map<string, number>();
  const siteCode = (kind: string, regionCode: string) => {
    const key = `${kind}-${regionCode}`;
    const n = (seq.get(key) ?? 0) + 1;
    seq.set(key, n);
    return `${SITE_CODE_PREFIX}${key}-${String(n).padStart(3, "0")}`;
  };

  // Hospitals: by province population, at least one in every province; within a province by
  // county weight. Most are one site, some have a second or third campus in the same city.
  const perProvince = apportion(hospitalSites, geo.provinces.map((p) => p.population), 1);
  const hospitalsInLeaf = new Map<string, number>();
  geo.provinces.forEach((province, pi) => {
    let left = perProvince[pi]!;
    const weights = province.leaves.map((l) => l.weight);
    while (left > 0) {
      const leaf = province.leaves[pick(random, weights)]!;
      const r = random();
      const campuses = Math.min(left, r < 0.88 ? 1 : r < 0.97 ? 2 : 3);
      const n = (hospitalsInLeaf.get(leaf.code) ?? 0) + 1;
      hospitalsInLeaf.set(leaf.code, n);
      const name = `${placeName(leaf)}${n <= HOSPITAL_NAMES.length ? HOSPITAL_NAMES[n - 1] : `第${n - 4}人民医院`}`;
      const org = organizations.push({ name, kind: "HOSPITAL" }) - 1;
      const cityLeaves = geo.leavesByCity.get(leaf.cityCode)!;
      for (let c = 0; c < campuses; c++) {
        const at = c === 0 ? leaf : cityLeaves[Math.floor(random() * cityLeaves.length)]!;
        sites.push({
          code: siteCode("H", at.code), name: campuses === 1 ? name : `${name}${["本部", "东院区", "西院区"][c]}`,
          organization: org, kind: "HOSPITAL", regionCode: at.code, provinceCode: at.provinceCode, cityCode: at.cityCode,
          products: finished, inputs: [],
        });
      }
      left -= campuses;
    }
  });

  // Manufacturers: one category each, one to three of its products, one to three plants in the
  // same cluster or province.
  const categories = [...new Set(finished.map(categoryOf))];
  const manufacturingCodes = Object.keys(MANUFACTURING_PROVINCES).filter((c) => geo.provinceByCode.has(c));
  const elsewhere = geo.provinces.filter((p) => !(p.code in MANUFACTURING_PROVINCES));
  const makerSites: PlannedSite[] = [];
  for (let left = manufacturerSites; left > 0; ) {
    let leaves: Leaf[];
    if (random() < MANUFACTURERS_ELSEWHERE && elsewhere.length) {
      leaves = elsewhere[pick(random, elsewhere.map((p) => p.population))]!.leaves;
    } else {
      const code = manufacturingCodes[pick(random, manufacturingCodes.map((c) => MANUFACTURING_PROVINCES[c]!.weight))]!;
      const province = geo.provinceByCode.get(code)!;
      const clusters = MANUFACTURING_PROVINCES[code]!.clusters.flatMap((c) =>
        geo.leafByCode.has(c) ? [geo.leafByCode.get(c)!] : c === code ? province.leaves : (geo.leavesByCity.get(c) ?? []));
      leaves = clusters.length && random() < IN_CLUSTER ? clusters : province.leaves;
    }
    const first = leaves[Math.floor(random() * leaves.length)]!;
    const category = categories[pick(random, categories.map((c) => CATEGORY_SHARE[c] ?? 0.1))]!;
    const candidates = finished.filter((p) => categoryOf(p) === category);
    // One to three of the category's products, as a plant's lines make.
    const makes = candidates.filter(() => random() < 0.5).slice(0, 3);
    if (!makes.length) makes.push(candidates[Math.floor(random() * candidates.length)]!);
    const inputs = [...new Set(makes.flatMap(inputsOf))];
    const r = random();
    const plants = Math.min(left, r < 0.7 ? 1 : r < 0.9 ? 2 : 3);
    const name = `${cityName(first)}${brand(random)}${category === "TEST_KIT" ? "生物科技" : "医疗用品"}有限公司`;
    const org = organizations.push({ name, kind: "MANUFACTURER" }) - 1;
    for (let c = 0; c < plants; c++) {
      const at = c === 0 ? first : leaves[Math.floor(random() * leaves.length)]!;
      const site: PlannedSite = {
        code: siteCode("M", at.code), name: `${name}${plants === 1 ? "" : `第${c + 1}`}工厂`, organization: org, kind: "MANUFACTURER",
        regionCode: at.code, provinceCode: at.provinceCode, cityCode: at.cityCode, products: makes, inputs,
      };
      sites.push(site);
      makerSites.push(site);
    }
    left -= plants;
  }

  // Raw-material suppliers: next to the manufacturers that need their material (same city),
  // each making one or two of the inputs, weighted towards melt-blown and spunbond fabric.
  // (With few sites every manufacturer may make goods without inputs, such as test kits: their
  // suppliers then make what the chosen goods need, next to any manufacturer.)
  const consumers = makerSites.filter((s) => s.inputs.length);
  const needed = [...new Set(finished.flatMap(inputsOf))];
  for (let left = supplierSites; left > 0; ) {
    const near = consumers.length ? consumers[Math.floor(random() * consumers.length)]! : makerSites[Math.floor(random() * makerSites.length)]!;
    const materials = near.inputs.length ? near.inputs : needed;
    const weights = materials.map((m) => (RAW_PROFILE[m] ?? DEFAULT_RAW_PROFILE).weight);
    const makes = [materials[pick(random, weights)]!];
    if (materials.length > 1 && random() < 0.3) {
      const second = materials[pick(random, weights)]!;
      if (second !== makes[0]) makes.push(second);
    }
    const cityLeaves = geo.leavesByCity.get(near.cityCode)!;
    const r = random();
    const count = Math.min(left, r < 0.8 ? 1 : 2);
    const name = `${cityName(geo.leafByCode.get(near.regionCode)!)}${brand(random)}新材料有限公司`;
    const org = organizations.push({ name, kind: "RAW_MATERIAL_SUPPLIER" }) - 1;
    for (let c = 0; c < count; c++) {
      const at = cityLeaves[Math.floor(random() * cityLeaves.length)]!;
      sites.push({
        code: siteCode("S", at.code), name: `${name}${count === 1 ? "" : `${c + 1}号`}生产基地`, organization: org,
        kind: "RAW_MATERIAL_SUPPLIER", regionCode: at.code, provinceCode: at.provinceCode, cityCode: at.cityCode, products: makes, inputs: [],
      });
    }
    left -= count;
  }
  const regionsWithPopulation = regions.map((r) =>
    r.level === "PROVINCE" && PROVINCE_POPULATION_2020[r.code] !== undefined ? { ...r, population: PROVINCE_POPULATION_2020[r.code]! } : r,
  );
  const products = [...new Set([...finished, ...sites.flatMap((s) => (s.kind === "HOSPITAL" ? [] : [...s.products, ...s.inputs]))])];
  return { regions: regionsWithPopulation, organizations, sites, products };
}

/** The series a site reports each day (one report per series and day). */
export const seriesCount = (site: PlannedSite) => site.products.length + site.inputs.length;

// ---------------------------------------------------------------------------------------------
// The days: an outbreak wave, and the national mobilisation that answers it with a lag

export interface Timeline {
  dates: string[];
  /** The outbreak's intensity per day, 0 to 1 (a Gaussian wave). */
  wave: Float64Array;
  /** How far production and deliveries have been scaled up, 0 to 1; it lags the wave. */
  mobilisation: Float64Array;
}

export function timeline(days: number, lastDay: string): Timeline {
  const end = Date.parse(`${lastDay}T00:00:00Z`);
  const dates = Array.from({ length: days }, (_, t) => new Date(end - (days - 1 - t) * DAY_MS).toISOString().slice(0, 10));
  // The peak a few days before the last day: the outbreak is still raging when the data ends,
  // which is when planners open the dashboard.
  const peak = 0.85 * (days - 1);
  const width = Math.max(1.5, days / 7);
  const wave = new Float64Array(days);
  const mobilisation = new Float64Array(days);
  for (let t = 0; t < days; t++) {
    wave[t] = Math.exp(-0.5 * ((t - peak) / width) ** 2);
    const x = Math.min(1, Math.max(0, (t - (peak - width)) / (2.5 * width)));
    mobilisation[t] = x * x * (3 - 2 * x);
  }
  return { dates, wave, mobilisation };
}

/** Yesterday (UTC): no site's local date is earlier, so no report lies in the future. */
export const yesterdayUtc = (now = new Date()) => new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) - DAY_MS).toISOString().slice(0, 10);

// ---------------------------------------------------------------------------------------------
// Daily figures (pure, per site: the same seed gives the same figures whatever the batching)

/** Kilograms are kept as whole grams, so stock stays exact and never goes below zero. */
const scaleOf = (code: string) => (CATALOG.get(code)?.baseUnit === "kg" ? 1000 : 1);
/** Base units of `input` in one base unit of `product`, by the bill of materials. */
const perUnitOf = (product: string, input: string) => CATALOG.get(product)?.inputs?.find((i) => i.productCode.toUpperCase() === input)?.quantity ?? 0;

interface Series {
  code: string;
  scale: number;
  onHand: number;
  backlog: number;
  capacity: number;
  /** Hospital: daily use before the outbreak. Input: daily need at normal output. */
  base: number;
  surge: number;
  /** Days between deliveries, and this series' offset in that cycle. */
  period: number;
  phase: number;
  /** Hospital: recent daily demand as the hospital sees it, for its orders. */
  recent: number;
  /** Input: its quantity (in scaled units) per unit of each made series, by position. */
  perUnit: number[];
  /** Input: deliveries a day, in days of normal need, before the country mobilises and the extra after. */
  supply: number;
  extra: number;
}

export interface SiteState {
  site: PlannedSite;
  outbreak: boolean;
  random: () => number;
  made: Series[];
  inputs: Series[];
  desired: number[];
}

const lognormal = (random: () => number, sigma: number) => {
  // Box-Muller; the mean is 1.
  const z = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  return Math.exp(sigma * z - (sigma * sigma) / 2);
};

/** A well-mixed 32-bit seed for site `i` (mulberry32 streams from nearby seeds overlap). */
function siteSeed(seed: number, i: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(i + 1, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

export function initialState(site: PlannedSite, index: number, seed: number, outbreakProvince: string): SiteState {
  const random = seededRandom(siteSeed(seed, index));
  const blank = (code: string): Series => ({
    code, scale: scaleOf(code), onHand: 0, backlog: 0, capacity: 0, base: 0, surge: 0, period: 1, phase: 0, recent: 0, perUnit: [], supply: 0, extra: 0,
  });
  const made: Series[] = [];
  const inputs: Series[] = [];
  if (site.kind === "HOSPITAL") {
    const size = lognormal(random, 0.8);
    for (const code of site.products) {
      const profile = FINISHED_PROFILE[code] ?? DEFAULT_FINISHED_PROFILE;
      const s = blank(code);
      s.base = Math.max(1, profile.use * size);
      s.surge = profile.surge;
      s.recent = s.base;
      s.period = 2 + Math.floor(random() * 4);
      s.phase = Math.floor(random() * s.period);
      s.onHand = Math.round(s.base * (HOSPITAL_COVER_DAYS - 10 + random() * 20));
      made.push(s);
    }
  } else {
    const size = lognormal(random, 0.6);
    for (const code of site.products) {
      const s = blank(code);
      const capacity = site.kind === "MANUFACTURER" ? (FINISHED_PROFILE[code] ?? DEFAULT_FINISHED_PROFILE).capacity : (RAW_PROFILE[code] ?? DEFAULT_RAW_PROFILE).capacity;
      s.capacity = Math.max(1, Math.round(capacity * size * s.scale));
      s.onHand = Math.round(s.capacity * (1 + random() * 4));
      s.backlog = Math.round(s.capacity * random());
      made.push(s);
    }
    for (const code of site.inputs) {
      const s = blank(code);
      s.perUnit = made.map((m) => perUnitOf(m.code, code) * s.scale);
      s.base = made.reduce((sum, m, j) => sum + m.capacity * NORMAL_UTILISATION * s.perUnit[j]!, 0);
      s.onHand = Math.round(s.base * (INPUT_COVER_DAYS - 8 + random() * 12));
      s.period = 3 + Math.floor(random() * 5);
      s.phase = Math.floor(random() * s.period);
      const profile = RAW_PROFILE[code] ?? DEFAULT_RAW_PROFILE;
      s.supply = profile.supply;
      s.extra = profile.extra;
      inputs.push(s);
    }
  }
  return { site, outbreak: site.provinceCode === outbreakProvince, random, made, inputs, desired: made.map(() => 0) };
}

const NORMAL_UTILISATION = 0.6;
/**
 * Hospitals' stock target, in days of recent demand: about a month, as hospitals kept before 2020
 * (so a country at peace reads BLUE or GREEN, and only the outbreak turns regions red).
 */
const HOSPITAL_COVER_DAYS = 35;
/** Manufacturers' raw-material target, in days of normal need. */
const INPUT_COVER_DAYS = 25;
/** Outside the outbreak province demand rises too (precaution, travellers), by this share of the surge. */
const ELSEWHERE_SURGE = 0.08;

/** Appends one day's reports of a site to `rows` and advances its state. */
export function reportDay(state: SiteState, t: number, time: Timeline, rows: ReportRowInput[]): void {
  const { site, random } = state;
  const siteCode = site.code;
  const date = time.dates[t]!;
  const wave = time.wave[t]!;
  const mob = time.mobilisation[t]!;
  if (site.kind === "HOSPITAL") {
    // Elsewhere the wave arrives two days later and much weaker.
    const elsewhereWave = time.wave[Math.max(0, t - 2)]!;
    for (const s of state.made) {
      const multiplier = state.outbreak ? 1 + s.surge * wave : 1 + ELSEWHERE_SURGE * s.surge * elsewhereWave;
      const demand = Math.round(s.base * multiplier * (0.85 + 0.3 * random()));
      s.recent = 0.5 * s.recent + 0.5 * demand;
      let received = 0;
      if ((t + s.phase) % s.period === 0) {
        // What the supply chain can bring: little more than usual until the country mobilises.
        const capacity = state.outbreak ? 1.3 + 0.9 * s.surge * mob : 1.3 + 0.3 * s.surge * mob;
        const cap = s.base * s.period * capacity * (0.9 + 0.2 * random());
        received = Math.max(0, Math.round(Math.min(HOSPITAL_COVER_DAYS * s.recent - s.onHand, cap)));
      }
      const available = s.onHand + received;
      const consumed = Math.min(demand, available);
      const stockoutHours = demand > available ? Math.round(240 * (1 - available / demand)) / 10 : 0;
      s.onHand = available - consumed;
      rows.push({ siteCode, productCode: s.code, date, onHand: s.onHand, consumed, received, stockoutHours });
    }
    return;
  }

  // Producers: output towards capacity as the country mobilises, bounded by the raw material on
  // hand plus what arrives that day; orders outrun output while the wave is high.
  const utilisation = NORMAL_UTILISATION + 0.38 * mob;
  for (let j = 0; j < state.made.length; j++) {
    const s = state.made[j]!;
    state.desired[j] = s.capacity * Math.min(1, utilisation + 0.04 * (random() - 0.5));
  }
  const received: number[] = [];
  const ratio = state.made.map(() => 1);
  for (const input of state.inputs) {
    let arriving = 0;
    if ((t + input.phase) % input.period === 0) {
      const target = input.base * INPUT_COVER_DAYS * (1 + mob);
      const cap = input.base * input.period * (input.supply + input.extra * mob) * (0.9 + 0.2 * random());
      arriving = Math.max(0, Math.round(Math.min(target - input.onHand, cap)));
    }
    received.push(arriving);
    let need = 0;
    for (let j = 0; j < state.made.length; j++) need += state.desired[j]! * input.perUnit[j]!;
    const fraction = need > 0 ? Math.min(1, (input.onHand + arriving) / need) : 1;
    for (let j = 0; j < state.made.length; j++) if (input.perUnit[j]! > 0 && fraction < ratio[j]!) ratio[j] = fraction;
  }
  const produced = state.made.map((_, j) => Math.floor(state.desired[j]! * ratio[j]!));
  const demandFactor = site.kind === "MANUFACTURER" ? 1 + 0.6 * wave : 1 + 0.5 * mob;
  for (let j = 0; j < state.made.length; j++) {
    const s = state.made[j]!;
    const made = produced[j]!;
    const orders = Math.round(made * (0.92 + 0.12 * random()) * demandFactor);
    const shipped = Math.min(s.onHand + made, orders + s.backlog);
    s.backlog = s.backlog + orders - shipped;
    s.onHand = s.onHand + made - shipped;
    const k = s.scale;
    rows.push({ siteCode, productCode: s.code, date, onHand: s.onHand / k, produced: made / k, capacityPerDay: s.capacity / k, shipped: shipped / k, backlog: s.backlog / k });
  }
  for (let i = 0; i < state.inputs.length; i++) {
    const input = state.inputs[i]!;
    let used = 0;
    for (let j = 0; j < state.made.length; j++) used += produced[j]! * input.perUnit[j]!;
    const available = input.onHand + received[i]!;
    const consumed = Math.min(available, Math.round(used));
    input.onHand = available - consumed;
    const k = input.scale;
    rows.push({ siteCode, productCode: input.code, date, onHand: input.onHand / k, consumed: consumed / k, received: received[i]! / k });
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

/**
 * Generates the data set into `db` (PostgreSQL or the embedded PGlite). Refuses, before writing
 * anything, a database that already holds generated sites. Regions and catalog are created or
 * refreshed as `regions seed cn` and `catalog seed` do; organizations and sites are written in one
 * transaction; reports go through submitReports in batches of up to MAX_BATCH_ROWS, a few at a
 * time, each site's days in order.
 */
export async function generateNational(db: Database, options: GenerateNationalOptions): Promise<GenerateNationalResult> {
  const opts = resolveOptions(options);
  const actor = systemActor("generate");
  await refuseCollisions(db);

  const plan = planNational(opts);
  const lastDay = yesterdayUtc();
  const time = timeline(opts.days, lastDay);
  const total = plan.sites.reduce((sum, s) => sum + seriesCount(s), 0) * opts.days;

  await seedCatalog(db, actor);
  const regions = await createRegions(db, actor, plan.regions);
  const { viewer, tokenId } = await writeOrganizations(db, actor, plan, opts);

  // The token's secret was never shown; revoking it leaves no admin credential behind.
  let result: Awaited<ReturnType<typeof writeReports>>;
  try {
    result = await writeReports(db, viewer, plan, opts, time, total, options.onProgress);
  } catch (error) {
    // The write's error is the one to report, not a failed revocation after it.
    await revokeApiToken(db, actor, tokenId).catch(() => {});
    throw error;
  }
  await revokeApiToken(db, actor, tokenId);
  return {
    regions: regions.created + regions.updated,
    organizations: plan.organizations.length,
    sites: plan.sites.length,
    reports: result.reports,
    rejected: result.rejected,
    rejectedExamples: result.rejectedExamples,
    firstDay: time.dates[0]!,
    lastDay,
    outbreakProvince: opts.outbreakProvince,
  };
}

const alreadyGenerated = (sites: number, reports: number) =>
  new DomainError(
    "CONFLICT",
    `the database already holds ${sites.toLocaleString("en")} generated sites (codes ${SITE_CODE_PREFIX}…) with ${reports.toLocaleString("en")} reports ` +
      `from an earlier run; the generator only writes into a database without them. Generate into a new database: ` +
      `create an empty one and point DATABASE_URL at it, or for the embedded database remove its folder (DATA_DIR/pglite) or set DATA_DIR to a new folder`,
  );

async function refuseCollisions(db: Database) {
  const [row] = await db.execute<{ sites: number; reports: number; users: number }>(
    sql`select (select count(*)::int from site where code like ${`${SITE_CODE_PREFIX}%`}) as sites,
               (select count(*)::int from report r join site s on s.id = r.site_id where s.code like ${`${SITE_CODE_PREFIX}%`}) as reports,
               (select count(*)::int from app_user where email = ${GENERATOR_EMAIL}) as users`,
    "objects",
  );
  if (Number(row!.sites) > 0 || Number(row!.users) > 0) throw alreadyGenerated(Number(row!.sites), Number(row!.reports));
}

/** Organizations, sites and the generator's own ADMIN user, all or nothing. */
async function writeOrganizations(db: Database, actor: Actor, plan: NationalPlan, opts: ResolvedOptions): Promise<{ viewer: Viewer; tokenId: string }> {
  try {
    return await db.transaction(async (tx) => {
      const orgIds = plan.organizations.map(() => randomUUID());
      const CHUNK = 5000;
      for (let i = 0; i < plan.organizations.length; i += CHUNK) {
        const part = plan.organizations.slice(i, i + CHUNK);
        await tx.execute(
          // Kinds go as text: PGlite cannot send an array of an enum type.
          sql`insert into organization (id, name, kind)
              select u.id, u.name, u.kind::organization_kind
              from unnest(${sql.param(orgIds.slice(i, i + CHUNK))}::uuid[], ${sql.param(part.map((o) => o.name))}::text[],
                          ${sql.param(part.map((o) => o.kind))}::text[]) as u(id, name, kind)`,
        );
      }
      let inserted = 0;
      for (let i = 0; i < plan.sites.length; i += CHUNK) {
        const part = plan.sites.slice(i, i + CHUNK);
        const rows = await tx.execute<{ n: number }>(
          sql`with added as (
                insert into site (organization_id, code, name, region_id)
                select u.organization_id, u.code, u.name, r.id
                from unnest(${sql.param(part.map((s) => orgIds[s.organization]!))}::uuid[], ${sql.param(part.map((s) => s.code))}::text[],
                            ${sql.param(part.map((s) => s.name))}::text[], ${sql.param(part.map((s) => s.regionCode))}::text[])
                       as u(organization_id, code, name, region_code)
                join region r on r.code = u.region_code
                returning 1)
              select count(*)::int as n from added`,
          "objects",
        );
        inserted += Number(rows[0]!.n);
      }
      if (inserted !== plan.sites.length) {
        throw new Error(`only ${inserted} of ${plan.sites.length} sites found their region; the region tree is incomplete`);
      }
      const user = await createUser(tx, actor, { name: "National data generator", email: GENERATOR_EMAIL, role: "ADMIN" });
      const { token, apiToken } = await createApiToken(tx, actor, { userId: user.id, name: "generate" });
      const viewer = await authenticate(tx, token);
      if (!viewer) throw new Error("the generator's fresh API token does not authenticate");
      await writeAudit(tx, actor, {
        action: "generate.national",
        entityType: "dataset",
        after: {
          organizations: plan.organizations.length, sites: plan.sites.length, days: opts.days, products: opts.products,
          seed: opts.seed, outbreakProvince: opts.outbreakProvince,
        },
      });
      return { viewer, tokenId: apiToken.id };
    });
  } catch (error) {
    // Another run got there first.
    if (isUniqueViolation(error, "site_code_key") || isUniqueViolation(error, "app_user_email_key") || (error instanceof DomainError && error.code === "CONFLICT")) {
      const [row] = await db.execute<{ n: number }>(sql`select count(*)::int as n from site where code like ${`${SITE_CODE_PREFIX}%`}`, "objects");
      throw alreadyGenerated(Number(row!.n), 0);
    }
    throw error;
  }
}

/**
 * One unit of work: a group of whole sites over a run of days, at most MAX_BATCH_ROWS rows.
 * Chunks of days of one group are written one after the other, so each site's days are stored
 * in date order, as live reporting stores them; groups are written `concurrency` at a time.
 */
async function writeReports(
  db: Database,
  viewer: Viewer,
  plan: NationalPlan,
  opts: ResolvedOptions,
  time: Timeline,
  total: number,
  onProgress: GenerateNationalOptions["onProgress"],
) {
  const states = plan.sites.map((site, i) => initialState(site, i, opts.seed, opts.outbreakProvince));
  const widest = Math.max(1, ...plan.sites.map(seriesCount));
  // As many days per batch as fit: each series then costs one inventory upsert (and one read of
  // stored days) per batch rather than per few days; measured about a fifth faster than a week per batch.
  const chunkDays = Math.max(1, Math.min(opts.days, Math.floor(MAX_BATCH_ROWS / widest)));
  const groups: SiteState[][] = [];
  let current: SiteState[] = [];
  let width = 0;
  for (const state of states) {
    const w = seriesCount(state.site);
    if (current.length && (width + w) * chunkDays > MAX_BATCH_ROWS) {
      groups.push(current);
      current = [];
      width = 0;
    }
    current.push(state);
    width += w;
  }
  if (current.length) groups.push(current);
  const chunks = Math.ceil(opts.days / chunkDays);
  const jobs = chunks * groups.length;
  // Backfill flags reports that arrive late. Generated reports stand for ones sent on time, so
  // the window covers every generated day (and a day more: a site's local today may be UTC's tomorrow).
  const backfillDays = opts.days + 2;
  const previous: Promise<void>[] = groups.map(() => Promise.resolve());
  let next = 0;
  let done = 0;
  let accepted = 0;
  let rejected = 0;
  const rejectedExamples: string[] = [];

  // Reports start now: a caller timing the writes starts its clock here.
  onProgress?.({ done: 0, total });
  const worker = async () => {
    while (next < jobs) {
      const job = next++;
      const chunk = Math.floor(job / groups.length);
      const g = job % groups.length;
      const rows: ReportRowInput[] = [];
      const last = Math.min(opts.days, (chunk + 1) * chunkDays);
      // Figures are drawn now, in job order, so a site's days are drawn in date order.
      for (const state of groups[g]!) for (let t = chunk * chunkDays; t < last; t++) reportDay(state, t, time, rows);
      const before = previous[g]!;
      const write = before.then(async () => {
        const result = await submitReports(db, { viewer }, rows, { backfillDays });
        accepted += result.accepted;
        rejected += result.rejected.length;
        for (const r of result.rejected) if (rejectedExamples.length < 5) rejectedExamples.push(r.message);
        done += rows.length;
        onProgress?.({ done, total });
      });
      previous[g] = write;
      await write;
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, jobs) }, worker));
  return { reports: accepted, rejected, rejectedExamples };
}

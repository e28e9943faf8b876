// Distances that price a supplier -> demand arc in the matching solver (SPEC "Matching": distance
// between region centroids, or tree distance where a region has no coordinates). Pure.
import { badInput } from "../errors.js";

/** Mean Earth radius (IUGG, R1 = (2a + b) / 3), km. */
export const EARTH_RADIUS_KM = 6371.0088;

const RAD = Math.PI / 180;

/**
 * Great-circle distance in km between two points given in decimal degrees (WGS84 latitude and
 * longitude), on a sphere of radius EARTH_RADIUS_KM. The haversine form stays accurate for
 * nearby points, where the spherical law of cosines loses digits; `min(1, ...)` guards the
 * arcsine against rounding just above 1 for antipodal points. Symmetric, 0 for equal points,
 * at most pi * R (about 20,015 km). Throws BAD_INPUT for a non-finite coordinate or a latitude
 * outside [-90, 90]; longitudes may be any finite number (they wrap).
 */
export function haversineKm(lat1: number, lon1: number, lat2: number, lon2: number): number {
  checkLat(lat1, "lat1");
  checkLat(lat2, "lat2");
  checkLon(lon1, "lon1");
  checkLon(lon2, "lon2");
  const sinHalfDLat = Math.sin(((lat2 - lat1) * RAD) / 2);
  const sinHalfDLon = Math.sin(((lon2 - lon1) * RAD) / 2);
  const h = sinHalfDLat * sinHalfDLat + Math.cos(lat1 * RAD) * Math.cos(lat2 * RAD) * sinHalfDLon * sinHalfDLon;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(h)));
}

function checkLat(v: number, name: string) {
  if (!(v >= -90 && v <= 90)) throw badInput(`${name} must be a latitude in degrees from -90 to 90, got ${v}`);
}

function checkLon(v: number, name: string) {
  if (!Number.isFinite(v)) throw badInput(`${name} must be a finite longitude in degrees, got ${v}`);
}

/**
 * Distance in tree steps between two regions given by their materialised paths, the `region.path`
 * column: the ids from the root down to the region, each followed by a slash, as in `/1/7/42/`
 * (region 42, child of 7, child of the root 1). It is the number of parent-child edges on the tree
 * path between them: the steps up from A to the deepest common ancestor, plus the steps down from
 * there to B. `/1/7/42/` and `/1/8/` share `/1/`, so the distance is 2 + 1 = 3; a region is 0 from
 * itself, 1 from its parent, 2 from a sibling. Two paths with no common root (two separate trees)
 * are joined through a virtual super-root: the distance is then the sum of their depths, so it
 * is still a metric. Segments are compared as strings, so `/01/` and `/1/` are different regions.
 * Throws BAD_INPUT for a path that is not of this form (no leading or trailing slash, an empty
 * segment such as `//`, or the empty path `/`).
 */
export function treeDistance(pathA: string, pathB: string): number {
  const a = segments(pathA, "pathA");
  const b = segments(pathB, "pathB");
  const n = Math.min(a.length, b.length);
  let common = 0;
  while (common < n && a[common] === b[common]) common++;
  return a.length - common + (b.length - common);
}

const PATH = /^\/(?:[^/]+\/)+$/;

function segments(path: string, name: string): string[] {
  if (typeof path !== "string" || !PATH.test(path)) {
    throw badInput(`${name} must be a region path such as "/1/7/42/" (ids separated by slashes, with a leading and a trailing slash), got ${JSON.stringify(path)}`);
  }
  return path.slice(1, -1).split("/");
}

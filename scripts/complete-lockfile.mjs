#!/usr/bin/env node
// npm 11 leaves other platforms' optional packages (rollup's and msgpackr-extract's native builds)
// out of package-lock.json when the registry it talks to does not serve them (npm/cli#4828,
// #8805, #9342), and `npm ci` then refuses the lock file as out of sync. This records each missing
// package with its exact version and its platform (os/cpu/libc, read from the package name, which
// follows the `<pkg>-<os>-<cpu>[-<abi>]` convention), so `npm ci` accepts the lock file and skips
// them on other platforms, as it would with a complete lock file.
// Run after every `npm install`: `npm run lockfile:complete`.
import { readFileSync, writeFileSync } from "node:fs";

const OS = ["android", "darwin", "freebsd", "linux", "openbsd", "openharmony", "sunos", "win32", "aix"];
const file = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(file, "utf8"));
const packages = lock.packages;
let added = 0;

function platformOf(name) {
  const parts = name.split("/").pop().split("-");
  const osIndex = parts.findIndex((p) => OS.includes(p));
  if (osIndex < 0 || osIndex + 1 >= parts.length) return null;
  const [os, cpu, abi] = parts.slice(osIndex);
  const libc = abi === "musl" ? ["musl"] : abi === "gnu" || abi === "gnueabihf" ? ["glibc"] : undefined;
  return { os: [os], cpu: [cpu], ...(os === "linux" && libc ? { libc } : {}) };
}

for (const [path, entry] of Object.entries(packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    if (packages[`${path ? `${path}/` : ""}node_modules/${name}`] || packages[`node_modules/${name}`]) continue;
    const platform = platformOf(name);
    if (!platform || !/^\d+\.\d+\.\d+/.test(version)) {
      console.error(`skipped ${name}@${version}: not a platform package with an exact version; fix by hand`);
      continue;
    }
    packages[`node_modules/${name}`] = { version, ...(entry.dev ? { dev: true } : {}), optional: true, ...platform };
    added++;
  }
}

lock.packages = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a.localeCompare(b))));
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.error(`package-lock.json: recorded ${added} optional packages for other platforms`);

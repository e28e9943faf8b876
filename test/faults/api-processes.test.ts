// `API_PROCESSES=2 src/main.ts api`: two API processes share one port under node:cluster; one
// killed is replaced while the port keeps answering, and SIGTERM stops them all.
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { TEST_REDIS_URL } from "../helpers/env.js";
import { makeUser, seedWorld, type TestUser } from "../helpers/fixtures.js";
import { clearRedisPrefix } from "../helpers/redis.js";
import { startService, stopService, type ServiceProcess } from "./harness.js";

const prefix = `{api-processes-${randomBytes(4).toString("hex")}}`;
let t: TestDatabase;
let api: ServiceProcess | undefined;
let planner: TestUser;

/**
 * The live API processes whose parent is `pid`: running src/main.ts (tsx also starts an esbuild
 * service under each process), and not a zombie waiting to be reaped.
 */
function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(ppid) !== pid || state === "Z") continue;
      if (readFileSync(`/proc/${name}/cmdline`, "utf8").includes("src/main.ts")) found.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Resolves once `pid` has `count` children that answer requests, none of them in `not`. */
async function children(pid: number, count: number, not: number[] = []): Promise<number[]> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const now = childrenOf(pid).filter((c) => !not.includes(c));
    if (now.length === count && (await fetch(`http://127.0.0.1:${api!.port}/healthz`).then((r) => r.ok, () => false))) return now;
    if (Date.now() > deadline) throw new Error(`expected ${count} API processes under ${pid}, found ${now.length}:\n${api!.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const ask = async () => {
  const response = await fetch(`http://127.0.0.1:${api!.port}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${planner.token}` },
    body: JSON.stringify({ query: "{ me { role } }" }),
  });
  return { status: response.status, body: (await response.json()) as unknown };
};

beforeAll(async () => {
  t = await createTestDatabase();
  await seedWorld(t.db);
  planner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330000" });
  api = await startService("api", { DATABASE_URL: t.url!, REDIS_URL: TEST_REDIS_URL, QUEUE_PREFIX: prefix, DATABASE_POOL_SIZE: "3", API_PROCESSES: "2" });
});

afterAll(async () => {
  await stopService(api, "SIGKILL");
  await clearRedisPrefix(TEST_REDIS_URL, prefix);
  await t?.drop();
});

describe("API_PROCESSES", () => {
  it("runs that many API processes on one port, replaces one that dies, and stops them all on SIGTERM", async () => {
    const pid = api!.child.pid!;
    const first = await children(pid, 2);
    for (let i = 0; i < 6; i++) expect(await ask()).toEqual({ status: 200, body: { data: { me: { role: "PLANNER" } } } });

    process.kill(first[0]!, "SIGKILL");
    const replaced = await children(pid, 2, [first[0]!]);
    expect(replaced).toContain(first[1]);
    for (let i = 0; i < 4; i++) expect((await ask()).status).toBe(200);

    expect(await stopService(api, "SIGTERM")).toBe(0);
    expect(childrenOf(pid)).toEqual([]);
    for (const child of replaced) expect(() => process.kill(child, 0)).toThrow();
  });

  it("refuses more than one process on the embedded database, saying what to set", () => {
    expect(() => loadConfig({ API_PROCESSES: "2" })).toThrow(/API_PROCESSES: above 1 needs DATABASE_URL/);
    expect(loadConfig({ API_PROCESSES: "2", DATABASE_URL: "postgres://postgres@127.0.0.1:5432/supply" }).API_PROCESSES).toBe(2);
    expect(() => loadConfig({ API_PROCESSES: "0", DATABASE_URL: "postgres://postgres@127.0.0.1:5432/supply" })).toThrow(/API_PROCESSES/);
  });
});

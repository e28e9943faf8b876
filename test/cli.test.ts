import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { count, eq } from "drizzle-orm";
import { createOrganization } from "../src/domain/organizations.js";
import { systemActor } from "../src/domain/viewer.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../src/db/index.js";
import { apiTokenTable, bomLineTable, packUnitTable, productTable, regionTable, userTable } from "../src/db/schema.js";
import { DEFAULT_CATALOG } from "../src/domain/catalog.js";
import { chinaRegions } from "../src/domain/region-sources.js";
import { copyPgliteTemplate, createTestDatabase, type TestDatabase } from "./helpers/db.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const tmp = mkdtempSync(path.join(tmpdir(), "supply-cli-test-"));

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], env: Record<string, string | undefined>): Promise<CliResult> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: undefined, DATA_DIR: undefined, ...env };
  for (const key of Object.keys(childEnv)) if (childEnv[key] === undefined) delete childEnv[key];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], { cwd: root, env: childEnv });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** A pid that surely belonged to a process that has ended. */
function deadPid(): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", ""]);
    child.on("error", reject);
    child.on("exit", () => resolve(child.pid!));
  });
}

const sha256 = (s: string) => createHash("sha256").update(s, "utf8").digest("hex");
/** A stack trace line, as printed for unexpected errors but never for expected ones. */
const STACK_LINE = /^\s+at /m;

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

// Each test starts one to four CLI processes (Node, tsx, the service's modules): seconds apiece
// while the other test worker keeps the cores busy.
describe("cli against PostgreSQL", { timeout: 60_000 }, () => {
  let db: TestDatabase;
  let env: Record<string, string>;

  beforeAll(async () => {
    db = await createTestDatabase();
    // DATA_DIR points at an empty folder so a fallback to PGlite would show up as missing data.
    env = { DATABASE_URL: db.url!, DATA_DIR: path.join(tmp, "unused") };
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("token create prints only the token, and stores only its hash", async () => {
    const result = await runCli(["token", "create", "--role", "ADMIN", "--name", "ops"], env);
    expect(result.stderr).not.toMatch(STACK_LINE);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^smt_[A-Za-z0-9_-]{43}\n$/);
    const token = result.stdout.trimEnd();
    expect(result.stderr).not.toContain(token);

    const [user] = await db.db.select().from(userTable).where(eq(userTable.email, "ops@cli.local"));
    expect(user).toMatchObject({ name: "ops", role: "ADMIN" });
    const tokens = await db.db.select().from(apiTokenTable).where(eq(apiTokenTable.userId, user!.id));
    expect(tokens).toHaveLength(1);
    expect(tokens[0]).toMatchObject({ name: "ops", tokenHash: sha256(token), expiresAt: null });
    expect(JSON.stringify(tokens)).not.toContain(token);
  });

  it("token create reuses the user with the same e-mail, and refuses one with another role", async () => {
    const again = await runCli(["token", "create", "--role", "ADMIN", "--name", "ops", "--expires-in-days", "30"], env);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^smt_[A-Za-z0-9_-]{43}\n$/);
    const users = await db.db.select().from(userTable).where(eq(userTable.email, "ops@cli.local"));
    expect(users).toHaveLength(1);
    const tokens = await db.db.select().from(apiTokenTable).where(eq(apiTokenTable.userId, users[0]!.id));
    expect(tokens).toHaveLength(2);
    const expiring = tokens.find((t) => t.tokenHash === sha256(again.stdout.trimEnd()));
    expect(expiring?.expiresAt!.getTime()).toBeGreaterThan(Date.now() + 29 * 86_400_000);

    const planner = await runCli(["token", "create", "--role", "PLANNER", "--name", "ops", "--jurisdiction", "CN"], env);
    expect(planner.code).toBe(1);
    expect(planner.stdout).toBe("");
    expect(planner.stderr).toContain("user ops@cli.local already exists with role ADMIN, not PLANNER");
    expect(planner.stderr).not.toMatch(STACK_LINE);
    const after = await db.db.select({ n: count() }).from(apiTokenTable).where(eq(apiTokenTable.userId, users[0]!.id));
    expect(after[0]!.n).toBe(2);
  });

  it("token create for a reporter takes the organization's id as the API shows it", async () => {
    const org = await createOrganization(db.db, systemActor("test"), { name: "CLI Co", kind: "HOSPITAL" });
    const globalId = Buffer.from(`Organization:${org.id}`).toString("base64");
    const result = await runCli(["token", "create", "--role", "REPORTER", "--name", "ward", "--organization-id", globalId], env);
    expect(result.stderr).not.toMatch(STACK_LINE);
    expect(result.code).toBe(0);
    const [user] = await db.db.select().from(userTable).where(eq(userTable.email, "ward@cli.local"));
    expect(user).toMatchObject({ role: "REPORTER", organizationId: org.id });
  });

  it("catalog seed twice leaves the 16 default products with their pack units and bills of materials", async () => {
    for (let run = 0; run < 2; run++) {
      const result = await runCli(["catalog", "seed"], env);
      expect(result.code).toBe(0);
      expect(result.stdout).toBe("");
      expect(result.stderr).toContain("16 products");
    }
    const products = await db.db.select().from(productTable);
    expect(products).toHaveLength(16);
    const units = await db.db.select().from(packUnitTable);
    const bom = await db.db.select().from(bomLineTable);
    expect(new Set(units.map((u) => u.productId)).size).toBe(16);
    expect(units).toHaveLength(DEFAULT_CATALOG.reduce((n, p) => n + (p.units?.length ?? 0), 0));
    expect(bom).toHaveLength(DEFAULT_CATALOG.reduce((n, p) => n + (p.inputs?.length ?? 0), 0));
    const n95 = products.find((p) => p.code === "MASK-N95")!;
    expect(units.filter((u) => u.productId === n95.id).map((u) => [u.name, u.factor])).toEqual(
      expect.arrayContaining([["box", 20], ["carton", 480]]),
    );
  });

  it("regions seed cn loads China's regions once", async () => {
    const total = chinaRegions().length;
    const first = await runCli(["regions", "seed", "cn"], env);
    expect(first.stderr).not.toMatch(STACK_LINE);
    expect(first.code).toBe(0);
    expect(first.stderr).toContain(`regions: ${total} created, 0 updated`);
    const second = await runCli(["regions", "seed", "cn"], env);
    expect(second.stderr).toContain(`regions: 0 created, ${total} updated`);
    const [hangzhou] = await db.db.select().from(regionTable).where(eq(regionTable.code, "330100"));
    expect(hangzhou).toMatchObject({ name: "杭州市", level: "CITY" });
  });

  it("regions import loads a CSV file and reports line errors without a stack trace", async () => {
    const good = path.join(tmp, "regions.csv");
    writeFileSync(good, "\uFEFFcode,name,level,parentCode,latitude,longitude\nXL,Xland,COUNTRY,,10,20\nXL-N,North,PROVINCE,XL,,\n");
    const first = await runCli(["regions", "import", good], env);
    expect(first.code).toBe(0);
    expect(first.stderr).toContain("2 created, 0 updated");
    const [north] = await db.db.select().from(regionTable).where(eq(regionTable.code, "XL-N"));
    const [xland] = await db.db.select().from(regionTable).where(eq(regionTable.code, "XL"));
    expect(xland).toMatchObject({ name: "Xland", level: "COUNTRY", latitude: 10, longitude: 20 });
    expect(north).toMatchObject({ level: "PROVINCE", parentId: xland!.id });

    const second = await runCli(["regions", "import", good], env);
    expect(second.code).toBe(0);
    expect(second.stderr).toContain("0 created, 2 updated");

    const bad = path.join(tmp, "bad.csv");
    writeFileSync(bad, "code,name,level,latitude,longitude\nYL,Yland,COUNTRY,,\nYL-1,One,PROVINCE,abc,1\n");
    const failed = await runCli(["regions", "import", bad], env);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain(`${bad}: line 3: latitude must be a number between -90 and 90, got "abc"`);
    expect(failed.stderr).not.toMatch(STACK_LINE);
    expect(await db.db.select().from(regionTable).where(eq(regionTable.code, "YL"))).toEqual([]);

    const missing = await runCli(["regions", "import", path.join(tmp, "nope.csv")], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/cannot read .*nope\.csv: no such file/);
  });

  // No database work happens for these: they run side by side.
  it.concurrent.for([
    { cmd: "" },
    { cmd: "help" },
    { cmd: "--help" },
    { cmd: "frobnicate" },
    { cmd: "token create --name x" },
    { cmd: "token create --role KING --name x" },
    { cmd: "token create --role ADMIN" },
    { cmd: "token create --role ADMIN --name x --expires-in-days soon" },
    { cmd: "catalog seed --bogus" },
    { cmd: "catalog seed --role ADMIN" },
    { cmd: "regions import" },
    { cmd: "regions seed fr" },
  ])("usage error for $cmd exits 2 with the usage text", async ({ cmd }, { expect }) => {
    const result = await runCli(cmd.split(" ").filter(Boolean), env);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain("Usage: npm run cli -- <command>");
    expect(result.stderr).not.toMatch(STACK_LINE);
  });
});

describe("cli with the embedded PGlite database", () => {
  const dataDir = path.join(tmp, "pglite-data");
  const env = { DATA_DIR: dataDir };
  const lockFile = path.join(dataDir, "pglite.lock");

  it("seeds the catalog and releases its lock", { timeout: 120_000 }, async () => {
    const result = await runCli(["catalog", "seed"], env);
    expect(result.stderr).not.toMatch(STACK_LINE);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain("16 products");
    expect(existsSync(path.join(dataDir, "pglite"))).toBe(true);
    expect(existsSync(lockFile)).toBe(false);
  });

  it("refuses to open the folder while the lock names a live process", { timeout: 120_000 }, async () => {
    writeFileSync(lockFile, `${process.pid}\n`);
    const refused = await runCli(["catalog", "seed"], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      `the embedded database in ${path.join(dataDir, "pglite")} is in use by process ${process.pid} (probably \`npm start\`); ` +
        "stop it first, or set DATABASE_URL to use a shared PostgreSQL",
    );
    expect(refused.stderr).not.toMatch(STACK_LINE);
    expect(readFileSync(lockFile, "utf8")).toBe(`${process.pid}\n`);
  });

  it("holds the lock from open until close within one process", { timeout: 120_000 }, async () => {
    const dir = path.join(tmp, "in-process");
    // A migrated folder, so the lock is all this test waits for (the first test covers initdb).
    await copyPgliteTemplate(dir);
    const handle = openDatabase({ dataDir: dir });
    try {
      expect(readFileSync(path.join(dir, "pglite.lock"), "utf8")).toBe(`${process.pid}\n`);
      expect(() => openDatabase({ dataDir: dir })).toThrow(/already open in this process/);
      await handle.ping();
    } finally {
      await handle.close();
    }
    expect(existsSync(path.join(dir, "pglite.lock"))).toBe(false);
    const reopened = openDatabase({ dataDir: dir });
    await reopened.close();
  });

  it("takes over a lock left by a process that has ended", { timeout: 120_000 }, async () => {
    writeFileSync(lockFile, `${await deadPid()}\n`);
    const result = await runCli(["token", "create", "--role", "ADMIN", "--name", "ops"], env);
    expect(result.stderr).not.toMatch(STACK_LINE);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^smt_[A-Za-z0-9_-]{43}\n$/);
    expect(existsSync(lockFile)).toBe(false);
  });
});

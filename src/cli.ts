import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { eq } from "drizzle-orm";
import { ConfigError, loadConfig } from "./config.js";
import { openDatabase, type Database } from "./db/index.js";
import { DatabaseLockedError } from "./db/pglite-lock.js";
import { regionTable, roleEnum, userTable } from "./db/schema.js";
import { seedCatalog } from "./domain/catalog.js";
import { DomainError, badInput } from "./domain/errors.js";
import { chinaRegions, parseRegionsCsv } from "./domain/region-sources.js";
import { createRegions, type RegionInput } from "./domain/regions.js";
import { createApiToken } from "./domain/tokens.js";
import type { Role } from "./domain/types.js";
import { createUser } from "./domain/users.js";
import { systemActor, type Actor } from "./domain/viewer.js";
import { rebuildReadModels } from "./domain/read-models.js";

const ROLES = roleEnum.enumValues;

const USAGE = `Usage: npm run cli -- <command>

Commands:
  token create --role ${ROLES.join("|")} --name NAME
               [--email EMAIL] [--organization-id ID] [--jurisdiction REGIONCODE] [--expires-in-days N]
      Creates a user (or reuses the one with that e-mail) and an API token named NAME for it.
      Prints only the token on stdout, e.g. TOKEN=$(npm run -s cli -- token create --role ADMIN --name ops)
      E-mail defaults to NAME as a slug @cli.local. REPORTER and PROCUREMENT need --organization-id,
      PLANNER needs --jurisdiction (a region code such as 330000).
  catalog seed
      Creates or refreshes the default products, pack units and bills of materials.
  regions seed cn
      Loads China's provinces, cities and counties (GB/T 2260). Safe to run again.
  regions import FILE.csv
      Loads regions from a UTF-8 CSV file with the header
      code,name,level,parentCode,latitude,longitude,population (the last four optional).
  read-models rebuild
      Derives the read models (current inventory per site, region/day rollups) again from every
      report. Run it after restoring reports from elsewhere; the service keeps them current itself.
  help
      Shows this text.

The database is DATABASE_URL, or else the embedded one in DATA_DIR (default ./.data);
the embedded one can only be used while \`npm start\` is stopped.
`;

class UsageError extends Error {}

/** Accepts an organization's id as the API shows it (a global id) or as the bare UUID. */
function organizationUuid(value: string | undefined): string | undefined {
  if (!value || /^[0-9a-f-]{36}$/i.test(value)) return value;
  const decoded = Buffer.from(value, "base64").toString("utf8");
  return decoded.startsWith("Organization:") ? decoded.slice("Organization:".length) : value;
}

type Command =
  | {
      kind: "token create";
      role: Role;
      name: string;
      email: string | undefined;
      organizationId: string | undefined;
      jurisdiction: string | undefined;
      expiresInDays: number | undefined;
    }
  | { kind: "catalog seed" }
  | { kind: "regions seed cn" }
  | { kind: "regions import"; file: string }
  | { kind: "read-models rebuild" }
  | { kind: "help" };

const TOKEN_OPTIONS = ["role", "name", "email", "organization-id", "jurisdiction", "expires-in-days"] as const;

function parseCommand(argv: string[]): Command {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        role: { type: "string" },
        name: { type: "string" },
        email: { type: "string" },
        "organization-id": { type: "string" },
        jurisdiction: { type: "string" },
        "expires-in-days": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  const command = positionals.join(" ");
  if (values.help || command === "help" || command === "") return { kind: "help" };

  const noTokenOptions = () => {
    const misplaced = TOKEN_OPTIONS.filter((o) => values[o] !== undefined);
    if (misplaced.length) throw new UsageError(`--${misplaced.join(", --")} only apply to "token create"`);
  };
  if (command === "catalog seed") {
    noTokenOptions();
    return { kind: "catalog seed" };
  }
  if (command === "read-models rebuild") {
    noTokenOptions();
    return { kind: "read-models rebuild" };
  }
  if (command === "regions seed cn") {
    noTokenOptions();
    return { kind: "regions seed cn" };
  }
  if (positionals[0] === "regions" && positionals[1] === "seed") {
    throw new UsageError(`only "regions seed cn" is built in; load other countries with "regions import FILE.csv"`);
  }
  if (positionals[0] === "regions" && positionals[1] === "import") {
    if (positionals.length !== 3) throw new UsageError(`"regions import" takes exactly one CSV file`);
    noTokenOptions();
    return { kind: "regions import", file: positionals[2]! };
  }
  if (command === "token create") {
    const role = values.role?.toUpperCase();
    if (!role) throw new UsageError(`token create needs --role ${ROLES.join("|")}`);
    if (!(ROLES as readonly string[]).includes(role)) throw new UsageError(`--role must be one of ${ROLES.join(", ")}, got "${values.role}"`);
    const name = values.name?.trim();
    if (!name) throw new UsageError("token create needs --name NAME: who or what the token is for, such as ops");
    let expiresInDays: number | undefined;
    if (values["expires-in-days"] !== undefined) {
      expiresInDays = /^\d+$/.test(values["expires-in-days"]) ? Number(values["expires-in-days"]) : NaN;
      if (!(expiresInDays >= 1 && expiresInDays <= 3650)) {
        throw new UsageError(`--expires-in-days must be a whole number of days from 1 to 3650, got "${values["expires-in-days"]}"`);
      }
    }
    return {
      kind: "token create",
      role: role as Role,
      name,
      email: values.email?.trim().toLowerCase(),
      organizationId: organizationUuid(values["organization-id"]?.trim()),
      jurisdiction: values.jurisdiction?.trim(),
      expiresInDays,
    };
  }
  throw new UsageError(`unknown command "${command}"`);
}

/** `Ops Team` -> `ops-team`; a name with no Latin letters or digits gets a stable hash instead. */
function emailFor(name: string): string {
  const slug = name
    .normalize("NFKD")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 48)
    .replace(/-+$/, "");
  return `${slug || `user-${createHash("sha256").update(name).digest("hex").slice(0, 10)}`}@cli.local`;
}

async function findUser(db: Database, email: string) {
  const [user] = await db
    .select({
      id: userTable.id,
      role: userTable.role,
      organizationId: userTable.organizationId,
      jurisdiction: regionTable.code,
      disabledAt: userTable.disabledAt,
    })
    .from(userTable)
    .leftJoin(regionTable, eq(regionTable.id, userTable.jurisdictionRegionId))
    .where(eq(userTable.email, email));
  return user;
}

async function tokenCreate(db: Database, actor: Actor, cmd: Extract<Command, { kind: "token create" }>): Promise<void> {
  const email = cmd.email ?? emailFor(cmd.name);
  let user = await findUser(db, email);
  if (!user) {
    try {
      await createUser(db, actor, {
        name: cmd.name,
        email,
        role: cmd.role,
        organizationId: cmd.organizationId ?? null,
        jurisdictionRegionCode: cmd.jurisdiction ?? null,
      });
      process.stderr.write(`created ${cmd.role} user ${email}\n`);
    } catch (error) {
      // Another process created the same user meanwhile: reuse it like any existing one.
      if (!(error instanceof DomainError && error.code === "CONFLICT")) throw error;
    }
    user = (await findUser(db, email))!;
  } else {
    process.stderr.write(`reusing existing user ${email}\n`);
  }
  // A reused user must be what was asked for: a token must never carry more rights than requested.
  if (user.role !== cmd.role) {
    throw badInput(`user ${email} already exists with role ${user.role}, not ${cmd.role}; pass another --email (or --name) for a ${cmd.role} user`);
  }
  if (cmd.organizationId && user.organizationId !== cmd.organizationId) {
    throw badInput(`user ${email} already exists for organization ${user.organizationId ?? "none"}, not ${cmd.organizationId}; pass another --email`);
  }
  if (cmd.jurisdiction && user.jurisdiction !== cmd.jurisdiction) {
    throw badInput(`user ${email} already exists with jurisdiction ${user.jurisdiction ?? "none"}, not ${cmd.jurisdiction}; pass another --email`);
  }
  if (user.disabledAt) throw badInput(`user ${email} is disabled; enable it or pass another --email`);

  const expiresAt = cmd.expiresInDays ? new Date(Date.now() + cmd.expiresInDays * 86_400_000) : null;
  const { token, apiToken } = await createApiToken(db, actor, { userId: user.id, name: cmd.name, expiresAt });
  process.stdout.write(`${token}\n`);
  process.stderr.write(
    `created API token "${apiToken.name}" (${apiToken.prefix}…)${expiresAt ? `, expires ${expiresAt.toISOString()}` : ""}; ` +
      `it is shown only once, store it now\n`,
  );
}

async function importRegions(db: Database, actor: Actor, regions: RegionInput[]) {
  const result = await createRegions(db, actor, regions);
  process.stderr.write(`regions: ${result.created} created, ${result.updated} updated\n`);
}

async function run(db: Database, cmd: Exclude<Command, { kind: "help" }>): Promise<void> {
  const actor = systemActor("cli");
  switch (cmd.kind) {
    case "token create":
      return tokenCreate(db, actor, cmd);
    case "catalog seed": {
      const count = await seedCatalog(db, actor);
      process.stderr.write(`catalog: ${count} products created or updated\n`);
      return;
    }
    case "regions seed cn":
      return importRegions(db, actor, chinaRegions());
    case "read-models rebuild": {
      const started = performance.now();
      const r = await rebuildReadModels(db);
      process.stderr.write(
        `read models rebuilt in ${((performance.now() - started) / 1000).toFixed(1)} s: current inventory of ${r.inventory} site/product series, ` +
          `${r.rollups} region rollups over ${r.slices} product-days\n`,
      );
      return;
    }
    case "regions import": {
      let text: string;
      try {
        text = await readFile(cmd.file, "utf8");
      } catch (error) {
        throw badInput(`cannot read ${cmd.file}: ${(error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message}`);
      }
      try {
        return await importRegions(db, actor, parseRegionsCsv(text));
      } catch (error) {
        if (error instanceof DomainError) throw new DomainError(error.code, `${cmd.file}: ${error.message}`, error.details);
        throw error;
      }
    }
  }
}

async function main(argv: string[]): Promise<number> {
  let cmd: Command;
  try {
    cmd = parseCommand(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`error: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (cmd.kind === "help") {
    process.stderr.write(USAGE);
    return 2;
  }
  try {
    const config = loadConfig();
    const handle = openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR, poolSize: 2 });
    try {
      await handle.migrate();
      await run(handle.db, cmd);
    } finally {
      await handle.close();
    }
    return 0;
  } catch (error) {
    if (error instanceof DomainError || error instanceof ConfigError || error instanceof DatabaseLockedError) {
      process.stderr.write(`error: ${error.message}\n`);
    } else {
      process.stderr.write(`error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    }
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));

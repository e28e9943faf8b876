// DATABASE_URL may name a Unix socket the way libpq does (`?host=/var/run/postgresql`): the pool,
// the migration's connection and LISTEN all go through it.
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase, postgresTarget, type DatabaseHandle } from "../src/db/index.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";

const SOCKET_DIR = "/var/run/postgresql";
let t: TestDatabase;
let handle: DatabaseHandle;

beforeAll(async () => {
  t = await createTestDatabase();
  // As a database tuned for older clients might be: float8 printed with 15 digits only.
  await t.db.execute(sql.raw(`alter database "${new URL(t.url!).pathname.slice(1)}" set extra_float_digits = 0`));
  const url = new URL(t.url!);
  url.searchParams.set("host", SOCKET_DIR);
  handle = openDatabase({ url: url.toString(), dataDir: "", poolSize: 2 });
});

afterAll(async () => {
  await handle?.close();
  await t?.drop();
});

describe("a Unix socket in DATABASE_URL", () => {
  it("takes the host parameter out of the URL and gives it as the socket's folder", () => {
    expect(postgresTarget("postgres://postgres@localhost:5432/supply?host=/var/run/postgresql&sslmode=disable")).toEqual({
      url: "postgres://postgres@localhost:5432/supply?sslmode=disable",
      host: "/var/run/postgresql",
    });
    expect(postgresTarget("postgres://postgres@127.0.0.1:5432/supply")).toEqual({ url: "postgres://postgres@127.0.0.1:5432/supply" });
  });

  it("connects through the socket for queries, migrations and notifications", async () => {
    await handle.migrate();
    await handle.ping();
    // inet_server_addr() is null on a Unix-socket connection, an address over TCP.
    const [row] = await handle.db.execute<{ addr: string | null; db: string }>(sql`select inet_server_addr()::text as addr, current_database() as db`, "objects");
    expect(row).toEqual({ addr: null, db: new URL(t.url!).pathname.slice(1) });
    let heard!: () => void;
    const notified = new Promise<void>((resolve) => (heard = resolve));
    const stop = await handle.listen("socket_test", () => heard());
    await handle.db.execute(sql`notify socket_test`);
    await notified;
    await stop();
  });
});

describe("the service's connections", () => {
  it("read float8 as text exactly, whatever the database's extra_float_digits", async () => {
    const [row] = await handle.db.execute<{ v: string; digits: string }>(
      sql`select (0.1::float8 + 0.2::float8)::text as v, current_setting('extra_float_digits') as digits`,
      "objects",
    );
    expect(row).toEqual({ v: "0.30000000000000004", digits: "1" });
  });
});

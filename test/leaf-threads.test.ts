import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { DomainError } from "../src/domain/errors.js";
import { computeLeaves, type LeafJob, type SiteRow } from "../src/domain/forecast/leaf-inputs.js";
import { startLeafThreads } from "../src/domain/forecast/leaf-threads.js";

/** A site with 60 days of stock and consumption (and one with output), as the pipeline reads them. */
function row(siteId: string, regionId: number, level: number, produced = false): SiteRow {
  const days = Array.from({ length: 60 }, (_, i) => i - 59);
  const join = (f: (d: number) => number) => days.map(f).join(",");
  return {
    site_id: siteId,
    region_id: regionId,
    day: join((d) => d),
    on_hand: join((d) => level + 3 * d + (d % 7)),
    consumed: join((d) => 40 + (d % 5) + 0.25),
    produced: produced ? join(() => 120) : null,
    received: join((d) => (d % 7 === 0 ? 280 : 0)),
    shipped: null,
    stockout_hours: join(() => 0),
    capacity_per_day: produced ? join(() => 100) : null,
  };
}

const job = (horizon = 14): LeafJob => ({
  rows: [row("a", 1, 900), row("b", 1, 400), row("c", 2, 2000, true)],
  holdings: [["c", [{ inputId: 9, perUnit: 2, onHand: 500 }]]],
  horizon,
});

const threads = startLeafThreads(2);
afterAll(() => threads.close());

describe("leaf forecasts on worker threads", () => {
  it("give exactly what the event loop computes", async () => {
    const onThread = new Map(await threads.run(job()));
    const inline = new Map(computeLeaves(job()));
    expect([...onThread.keys()].sort()).toEqual([1, 2]);
    expect(onThread).toEqual(inline);
    // Region 2's site makes 100 a day (its capacity) until its 500 of input (2 per unit) run out.
    expect(onThread.get(2)!.supply.slice(0, 4)).toEqual([100, 100, 50, 0]);
    expect(onThread.get(2)!.limits.get(9)).toEqual({ lost: 1400 - 250, short: 2300 });
  });

  it("pass an error back to the job that caused it, and go on with the next", async () => {
    // A refused input stays a DomainError across the thread: the job runner fails such a job at once.
    const refused = await threads.run(job(0)).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DomainError);
    expect(refused).toMatchObject({ code: "BAD_INPUT", message: expect.stringMatching(/horizon must be a whole number/) });
    const results = await Promise.all([1, 2, 3, 4, 5].map(() => threads.run(job())));
    for (const r of results) expect(new Map(r)).toEqual(new Map(computeLeaves(job())));
  });

  it("finish the jobs they hold when closed, and refuse new ones", async () => {
    const pool = startLeafThreads(1);
    const running = [pool.run(job()), pool.run(job())];
    const closed = pool.close();
    await expect(pool.run(job())).rejects.toThrow(/closed/);
    const done = await Promise.all(running);
    await closed;
    expect(done.map((r) => r.length)).toEqual([2, 2]);
  });

  it("keep the process alive while a job runs, even with nothing else to wait for", async () => {
    // A thread left unref'd during its job let a script end before its answer came back.
    const module = fileURLToPath(new URL("../src/domain/forecast/leaf-threads.ts", import.meta.url));
    const script = `import { startLeafThreads } from ${JSON.stringify(module)};
      const t = startLeafThreads(1);
      const r = await t.run(${JSON.stringify(job())});
      console.log(JSON.stringify(r.map(([id]) => id)));
      await t.close();`;
    const dir = await mkdtemp(join(tmpdir(), "leaf-threads-"));
    try {
      await writeFile(join(dir, "run.mts"), script);
      const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", join(dir, "run.mts")], { timeout: 30_000 });
      expect(JSON.parse(stdout)).toEqual([1, 2]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

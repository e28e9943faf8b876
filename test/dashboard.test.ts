// The planner's page at /dashboard/, end to end in headless Chromium (Debian's `chromium`, driven
// by playwright-core): the page talks to a real API server over HTTP, on a real database whose
// forecasts and alerts the services computed.
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import http, { type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { sql } from "drizzle-orm";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { evaluateShortageAlerts } from "../src/domain/alerts/rules.js";
import { recomputeDirty } from "../src/domain/forecast/pipeline.js";
import { relayOutbox } from "../src/domain/outbox.js";
import { refreshDirtyRollups } from "../src/domain/read-models.js";
import { submitReports } from "../src/domain/reports/ingest.js";
import { dateOfDay, dayNumber, type ReportRowInput } from "../src/domain/reports/validate.js";
import { DASHBOARD_CSP, dashboardHandler } from "../src/http/dashboard.js";
import { createHttpServer } from "../src/http/server.js";
import { createLogger } from "../src/logger.js";
import { createTestDatabase, type TestDatabase } from "./helpers/db.js";
import { makeUser, seedWorld, type TestUser } from "./helpers/fixtures.js";

const CHROMIUM = "/usr/bin/chromium";
const SCREENSHOT = path.resolve(import.meta.dirname, "../test-artifacts/dashboard.png");
const PRODUCT = "GLOVES-NITRILE";

describe("the planner's dashboard in a browser", () => {
  let t: TestDatabase;
  let server: Server;
  let browser: Browser;
  let base: string;
  let planner: TestUser;
  let reporter: TestUser;
  /** Every console error and uncaught exception of every page, CSP violations included. */
  const problems: string[] = [];
  const lastDay = dayNumber(new Date(Date.now() - 86_400_000).toISOString().slice(0, 10));
  const yesterday = dateOfDay(lastDay);

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`the dashboard test drives Debian's Chromium at ${CHROMIUM}, which is not installed: run 'apt-get install -y chromium' (.ci/run does when it is missing)`);
    }
    const launched = chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    t = await createTestDatabase();
    const world = await seedWorld(t.db);
    planner = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330100" });
    reporter = await makeUser(t.db, "REPORTER", { organizationId: world.hospital.id });
    const admin = await makeUser(t.db, "ADMIN");

    // Xihu's hospital steady for a month, then down to about a day of gloves: RED. Shangcheng's
    // plant holds plenty: GREEN, and so is Hangzhou, the two together.
    const rows: ReportRowInput[] = [];
    for (let i = 29; i >= 0; i--) {
      const date = dateOfDay(lastDay - i);
      // About 100 pairs a day, varying, so the forecast has intervals to draw.
      const used = 100 + ((i * 37) % 41) - 20;
      rows.push({ siteCode: world.hospitalSite.code, productCode: PRODUCT, date, onHand: i === 0 ? 120 : 5000, consumed: used, received: i === 0 ? 0 : used });
      rows.push({ siteCode: world.makerSite.code, productCode: PRODUCT, date, onHand: 50_000 });
    }
    expect((await submitReports(t.db, admin.actor, rows, { backfillDays: 400 })).rejected).toEqual([]);
    while ((await relayOutbox(t.db, async () => {})).events > 0);
    await refreshDirtyRollups(t.db);
    await recomputeDirty(t.db, { trigger: "test" });
    const gloves = (await t.db.query.productTable.findFirst({ where: { code: PRODUCT } }))!.id;
    expect(await evaluateShortageAlerts(t.db, gloves)).toMatchObject({ raised: 1 });
    // The sites existed long before the day's cut-off, so they were expected to report.
    await t.db.execute(sql`update site set created_at = now() - interval '60 days'`);

    const config = loadConfig({ NODE_ENV: "test", LOG_LEVEL: "silent" });
    server = createHttpServer({ config, db: t.db, logger: createLogger(config), ready: async () => {} });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await launched;
  });
  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => server?.close(resolve));
    await t?.drop();
  });

  async function openPage(): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    // A step that cannot happen fails in seconds, with Playwright's log of what it waited for.
    page.setDefaultTimeout(5000);
    page.on("console", (m) => {
      // A 401 answer is logged by Chromium as a failed resource: that is the bad-token case, shown on the page.
      if (m.type() === "error" && !/status of 401/.test(m.text())) problems.push(m.text());
    });
    page.on("pageerror", (e) => problems.push(e.message));
    await page.goto(`${base}/dashboard`);
    return page;
  }

  async function signIn(page: Page, token: string) {
    await page.getByLabel("API token", { exact: true }).fill(token);
    await page.getByRole("button", { name: "Sign in" }).click();
  }

  const rawGet = (target: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      http
        .get(`${base}${target}`, { path: target }, (res) => {
          let body = "";
          res.setEncoding("utf8").on("data", (c: string) => (body += c)).on("end", () => resolve({ status: res.statusCode!, body }));
        })
        .on("error", reject);
    });

  const errorText = (page: Page) => page.locator("#messages .error").first().textContent();

  it("serves the page with a strict policy, its files only, and cache validation", async () => {
    const index = await fetch(`${base}/dashboard`, { redirect: "manual" });
    expect(index.status).toBe(308);
    expect(index.headers.get("location")).toBe("/dashboard/");
    const page = await fetch(`${base}/dashboard/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(page.headers.get("content-security-policy")).toBe(DASHBOARD_CSP);
    expect(DASHBOARD_CSP).toMatch(/script-src 'self';/);
    expect(DASHBOARD_CSP).not.toMatch(/unsafe/);
    expect(page.headers.get("x-content-type-options")).toBe("nosniff");
    expect(page.headers.get("cache-control")).toBe("no-cache");
    const html = await page.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)/); // no inline script
    const etag = page.headers.get("etag")!;
    expect((await fetch(`${base}/dashboard/`, { headers: { "if-none-match": etag } })).status).toBe(304);
    const js = await fetch(`${base}/dashboard/app.js`);
    expect(js.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    // Sent as is (fetch would resolve the dots): only the page's own files are served.
    for (const bad of ["/dashboard/../dashboard.ts", "/dashboard/%2e%2e/dashboard.ts", "/dashboard/..%2fdashboard.ts", "/dashboard/dashboard.ts", "/dashboard/x"]) {
      const r = await rawGet(bad);
      expect(r.status, bad).toBe(404);
      expect(r.body, bad).toMatch(/^no such file in the dashboard: .*; the page is at \/dashboard\/$/m);
    }
    expect((await fetch(`${base}/dashboard/`, { method: "POST" })).status).toBe(405);

    // A build that left the files behind says so instead of serving half a page.
    const config = loadConfig({ NODE_ENV: "test", LOG_LEVEL: "silent" });
    const handler = dashboardHandler(createLogger(config), path.join(import.meta.dirname, "no-such-folder"));
    const bare = http.createServer((req, res) => handler(req, res, (req.url ?? "/").split("?")[0]!));
    await new Promise<void>((resolve) => bare.listen(0, "127.0.0.1", resolve));
    try {
      const r = await fetch(`http://127.0.0.1:${(bare.address() as AddressInfo).port}/dashboard/`);
      expect(r.status).toBe(503);
      expect(await r.text()).toMatch(/the dashboard's files are not installed with this build \(src\/http\/dashboard\/ must be copied/);
    } finally {
      await new Promise((resolve) => bare.close(resolve));
    }
  });

  it("says clearly when a token is wrong, is not a planner's, or stops working, and keeps none of them", async () => {
    const page = await openPage();
    await signIn(page, "smt_not-a-real-token");
    await page.locator("#messages .error").waitFor();
    expect(await errorText(page)).toMatch(/That token was not accepted: the API token is unknown, revoked or expired; ask an admin for a new one/);
    expect(await page.locator("#app").isHidden()).toBe(true);
    expect(await page.getByLabel("API token", { exact: true }).getAttribute("aria-invalid")).toBe("true");
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);

    await signIn(page, reporter.token);
    await page.locator("#messages .error", { hasText: "REPORTER" }).waitFor();
    expect(await errorText(page)).toMatch(/This page is for planners; this token belongs to a REPORTER user/);
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);

    // A planner whose token is revoked while the page is open is signed out with the reason.
    const short = await makeUser(t.db, "PLANNER", { jurisdictionRegionCode: "330102" });
    await signIn(page, short.token);
    await page.locator("#app").waitFor();
    expect(await page.locator("#who").textContent()).toMatch(/planner of 上城区 \(330102\)/);
    // Everything the page loads on entry has answered (alerts and completeness come last).
    await page.locator("#alerts-empty:not([hidden])").waitFor();
    await page.locator(`#completeness-table tbody tr[data-region="330102"]`).waitFor();
    await t.db.execute(sql`update api_token set revoked_at = now() where user_id = ${short.viewer.userId}::uuid`);
    await page.getByRole("button", { name: "Refresh" }).click();
    await page.locator("#login").waitFor();
    expect(await errorText(page)).toMatch(/Your token is no longer accepted \(.*unknown, revoked or expired.*\)\. Sign in again/);
    expect(await page.evaluate(() => sessionStorage.getItem("supply-monitor.token"))).toBeNull();
    await page.close();
  });

  it("shows a planner the RED region in the table and the grid, its forecast, and acknowledges its alert", async () => {
    const page = await openPage();
    await signIn(page, planner.token);
    await page.locator("#app").waitFor();
    expect(await page.locator("#who").textContent()).toMatch(/planner of 杭州市 \(330100\)/);

    await page.getByLabel("Product", { exact: true }).selectOption(PRODUCT);
    // The table: every region of the jurisdiction with data, most urgent first, the risk in words.
    await page.locator(`#shortages tbody tr[data-region="330106"]`).waitFor();
    const table = await page.$$eval("#shortages tbody tr", (trs) =>
      trs.map((tr) => ({ region: (tr as HTMLElement).dataset.region, risk: (tr as HTMLElement).dataset.risk, text: tr.querySelector(".risk")?.textContent })),
    );
    expect(table.map((r) => r.region).sort()).toEqual(["330100", "330102", "330106"]);
    expect(table[0]).toEqual({ region: "330106", risk: "RED", text: "RED" });
    expect(table.slice(1).map((r) => r.risk)).toEqual(["GREEN", "GREEN"]);
    // The grid: a tile per region, coloured and labelled with its risk.
    const tile = page.locator(`#grid button[data-region="330106"]`);
    expect(await tile.getAttribute("class")).toMatch(/\brisk-RED\b/);
    expect(await tile.textContent()).toMatch(/^西湖区RED[0-3](\.\d)? d$/);
    expect(await page.locator("#grid button.risk-GREEN").count()).toBe(2);

    // The forecast chart: demand with both intervals as bands, the stock path, the stock-out date.
    await tile.click();
    await page.locator("#chart svg .stockout").waitFor();
    const [stored] = await t.db.execute<{ stockout_date: string; as_of: string }>(
      sql`select f.stockout_date::text, f.origin_date::text as as_of from forecast_latest l join forecast f on f.id = l.forecast_id
          join region r on r.id = l.region_id join product p on p.id = l.product_id where r.code = '330106' and p.code = ${PRODUCT}`,
      "objects",
    );
    expect(stored!.stockout_date).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(await page.locator("#chart svg .stockout").getAttribute("data-date")).toBe(stored!.stockout_date);
    expect(await page.locator("#chart svg .stockout text").textContent()).toBe(`stock-out ${stored!.stockout_date}`);
    for (const cls of ["band-95", "band-80", "demand-line", "stock-line"]) {
      expect(await page.locator(`#chart svg .${cls}`).getAttribute("d"), cls).toMatch(/^M[\d.]+,[\d.]+(L[\d.]+,[\d.]+){27,}/);
    }
    expect(await page.locator("#chart table tbody tr").count()).toBe(28);
    expect(await page.locator("#forecast-title").textContent()).toBe("Forecast: 西湖区 (330106), Nitrile examination gloves");
    expect(await page.locator("#forecast-summary").textContent()).toContain(`stock-out projected on ${stored!.stockout_date}`);

    // Reporting completeness of the jurisdiction and the regions below it: yesterday, both sites
    // reported (after the cut-off: the reports were sent today).
    await page.locator(`#completeness-table tbody tr[data-region="330106"]`).waitFor();
    const completeness = await page.$$eval("#completeness-table tbody tr", (trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)));
    expect(completeness).toEqual([
      ["杭州市 (330100)", "2", "2", "0", "2", "0", "100 %", "0 %"],
      ["上城区 (330102)", "1", "1", "0", "1", "0", "100 %", "0 %"],
      ["西湖区 (330106)", "1", "1", "0", "1", "0", "100 %", "0 %"],
    ]);
    expect(await page.locator("#completeness-date").inputValue()).toBe(yesterday);

    // The alert, acknowledged in place.
    const alertRow = page.locator(`#alerts-table tbody tr[data-region="330106"][data-kind="SHORTAGE_RISK"]`);
    await alertRow.waitFor();
    expect(await alertRow.locator(".risk").textContent()).toBe("RED");
    expect(await alertRow.textContent()).toMatch(/西湖区 \(330106\): GLOVES-NITRILE runs out in about [\d.]+ days \(\d{4}-\d{2}-\d{2}\): 120 on hand/);
    await alertRow.getByRole("button", { name: /^Acknowledge/ }).click();
    await page.locator(`#alerts-table tbody tr[data-region="330106"][data-status="ACKNOWLEDGED"]`).waitFor();
    expect(await alertRow.locator("td").last().textContent()).toMatch(/^ACKNOWLEDGED /);
    expect(await alertRow.getByRole("button").count()).toBe(0);
    const alerts = await t.db.execute<{ status: string; acknowledged_by: string }>(sql`select status, acknowledged_by::text from alert where kind = 'SHORTAGE_RISK'`, "objects");
    expect(alerts).toEqual([{ status: "ACKNOWLEDGED", acknowledged_by: planner.viewer.userId }]);

    rmSync(SCREENSHOT, { force: true });
    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    const png = readFileSync(SCREENSHOT);
    expect(png.subarray(0, 8).toString("hex")).toBe("89504e470d0a1a0a");
    expect(png.length).toBeGreaterThan(20_000);

    // The token lives in the tab's session: a reload stays signed in, with the product chosen.
    await page.reload();
    await page.locator(`#shortages tbody tr[data-region="330106"]`).waitFor();
    expect(await page.getByLabel("Product", { exact: true }).inputValue()).toBe(PRODUCT);
    expect(await page.locator("#alerts-empty").textContent()).toBe("No open alerts in your jurisdiction.");

    await page.getByRole("button", { name: "Log out" }).click();
    await page.locator("#login").waitFor();
    expect(await page.locator("#app").isHidden()).toBe(true);
    expect(await page.locator("#shortages tbody tr").count()).toBe(0);
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    await page.reload();
    await page.locator("#login").waitFor();
    expect(await page.locator("#app").isHidden()).toBe(true);
    await page.close();

    // No page broke a rule of its Content-Security-Policy, nor threw.
    expect(problems).toEqual([]);
  });
});

/* global document, sessionStorage, Node */
// The planner's dashboard: risk by region for a product (table and tile grid), a region's
// forecast, the alerts with acknowledge buttons, reporting completeness. It reads and writes
// only through the public GraphQL API (api.js), as any other client would.
import { ApiError, allPages, graphql, session } from "./api.js";
import { forecastChart } from "./chart.js";
import { LEVEL_NAMES, LEVEL_ORDER, LEVEL_SINGULAR, cell, fillBody, fmt, h, isoDay, regionLabel, riskBadge } from "./render.js";

const PRODUCT_KEY = "supply-monitor.product";
/** A national planner's whole tree for one product is about 3,300 regions. */
const MAX_REGIONS = 5000;

const $ = (id) => {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page has no #${id}`);
  return node;
};

const ui = {
  login: $("login"),
  loginForm: $("login-form"),
  token: $("token"),
  app: $("app"),
  session: $("session"),
  who: $("who"),
  logout: $("logout"),
  messages: $("messages"),
  status: $("status"),
  scope: $("scope"),
  product: $("product"),
  refresh: $("refresh"),
  asOf: $("as-of"),
  risk: $("risk"),
  riskEmpty: $("risk-empty"),
  grid: $("grid"),
  shortages: $("shortages"),
  forecast: $("forecast"),
  forecastTitle: $("forecast-title"),
  forecastSummary: $("forecast-summary"),
  chart: $("chart"),
  forecastClose: $("forecast-close"),
  alerts: $("alerts"),
  alertStatus: $("alert-status"),
  alertsEmpty: $("alerts-empty"),
  alertsTable: $("alerts-table"),
  alertsMore: $("alerts-more"),
  completeness: $("completeness"),
  completenessDate: $("completeness-date"),
  completenessUp: $("completeness-up"),
  completenessTable: $("completeness-table"),
  completenessCaption: $("completeness-caption"),
};

/** What the page shows; reset on log-out. */
let state = freshState(undefined);
function freshState(previous) {
  return {
    viewer: null,
    /** The region whose subtree the page shows: the planner's jurisdiction (admins pick a top region). */
    scope: null,
    /** The regions the page may be scoped to: the jurisdiction, or for admins the top of the tree. */
    scopes: [],
    /** Completeness drill-down: the regions walked down from the scope. */
    completenessPath: [],
    forecastRegion: null,
    alertsCursor: null,
    /** Each section drops answers to requests it no longer waits for (kept across sign-ins). */
    seq: previous?.seq ?? { shortages: 0, forecast: 0, alerts: 0, completeness: 0 },
  };
}

// ---------------------------------------------------------------------------------------------
// Messages

function say(text) {
  ui.status.textContent = text;
}

function showError(context, error) {
  if (error instanceof ApiError && error.unauthenticated && session.token) {
    logout(`Your token is no longer accepted (${error.message}). Sign in again with a valid token.`);
    return;
  }
  const message = error instanceof Error ? error.message : String(error);
  const dismiss = h("button", { type: "button", className: "dismiss", textContent: "Dismiss" });
  const p = h("p", { className: "error" }, h("strong", {}, `${context}: `), message, " ", dismiss);
  dismiss.addEventListener("click", () => p.remove());
  ui.messages.append(p);
}

function clearMessages() {
  ui.messages.replaceChildren();
}

async function busy(section, fn) {
  section.setAttribute("aria-busy", "true");
  try {
    return await fn();
  } finally {
    section.removeAttribute("aria-busy");
  }
}

// ---------------------------------------------------------------------------------------------
// Signing in and out

const ME = `query DashboardViewer { me { role user { name } jurisdiction { code name level } } }`;

async function signIn(token) {
  let me;
  try {
    ({ me } = await graphql(ME, {}, token));
  } catch (error) {
    if (error instanceof ApiError && error.unauthenticated) {
      throw new Error(`That token was not accepted: ${error.message}.`, { cause: error });
    }
    throw error;
  }
  if (me.role !== "PLANNER" && me.role !== "ADMIN") {
    throw new Error(`This page is for planners; this token belongs to a ${me.role} user, who sees no region-level figures. Use a planner's token.`);
  }
  if (me.role === "PLANNER" && !me.jurisdiction) {
    throw new Error("This planner has no jurisdiction yet; ask an admin to give the user a region.");
  }
  return me;
}

async function onLogin(event) {
  event.preventDefault();
  clearMessages();
  const token = ui.token.value.trim();
  if (!token) {
    showError("Sign in", new Error("enter your API token"));
    return;
  }
  const button = ui.loginForm.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const me = await signIn(token);
    session.token = token;
    ui.token.value = "";
    await enter(me);
  } catch (error) {
    ui.token.setAttribute("aria-invalid", "true");
    showError("Sign in", error);
    ui.token.focus();
  } finally {
    button.disabled = false;
  }
}

function logout(reason) {
  session.token = null;
  sessionStorage.removeItem(PRODUCT_KEY);
  // Answers still on their way are for the session that ended: drop them.
  for (const key of Object.keys(state.seq)) state.seq[key]++;
  state = freshState(state);
  ui.app.hidden = true;
  ui.session.hidden = true;
  ui.who.textContent = "";
  ui.grid.replaceChildren();
  ui.chart.replaceChildren();
  ui.forecast.hidden = true;
  for (const table of [ui.shortages, ui.alertsTable, ui.completenessTable]) fillBody(table, []);
  ui.scope.replaceChildren();
  ui.product.replaceChildren(h("option", { value: "" }, "Choose a product…"));
  ui.login.hidden = false;
  clearMessages();
  if (reason) showError("Signed out", new Error(reason));
  say("Signed out.");
  ui.token.focus();
}

async function enter(me) {
  state.viewer = me;
  ui.token.removeAttribute("aria-invalid");
  ui.login.hidden = true;
  ui.app.hidden = false;
  ui.session.hidden = false;
  ui.who.textContent = `${me.user.name}, ${me.role.toLowerCase()}${me.jurisdiction ? ` of ${regionLabel(me.jurisdiction)}` : ""}`;
  ui.completenessDate.value = isoDay(new Date(Date.now() - 86_400_000));

  const [scopes, products] = await Promise.all([loadScopes(me), loadProducts()]);
  // Signed out meanwhile (the token stopped working): nothing more to show.
  if (state.viewer !== me) return;
  if (!scopes.length) {
    showError("Regions", new Error("there is no region to show; an admin loads them with `npm run cli -- regions seed cn`"));
    return;
  }
  ui.scope.replaceChildren(...scopes.map((r) => h("option", { value: r.code }, regionLabel(r))));
  state.scopes = scopes;
  state.scope = scopes[0].code;
  state.completenessPath = [scopes[0]];

  const byCategory = Map.groupBy(products, (p) => p.category);
  ui.product.replaceChildren(
    h("option", { value: "" }, "Choose a product…"),
    ...[...byCategory].map(([category, list]) =>
      h("optgroup", { label: category.replace("_", " ").toLowerCase() }, ...list.map((p) => h("option", { value: p.code }, `${p.name} (${p.code})`))),
    ),
  );
  const remembered = sessionStorage.getItem(PRODUCT_KEY);
  if (remembered && products.some((p) => p.code === remembered)) ui.product.value = remembered;
  say(`Signed in as ${ui.who.textContent}.`);
  await refreshAll();
}

async function loadScopes(me) {
  if (me.jurisdiction) return [me.jurisdiction];
  // Admins: the top of the tree (usually the country).
  try {
    const { regions } = await graphql(`query DashboardTopRegions { regions { code name level } }`);
    return regions;
  } catch (error) {
    showError("Regions", error);
    return [];
  }
}

async function loadProducts() {
  try {
    const { products } = await graphql(`query DashboardProducts { products { code name category baseUnit } }`);
    return products;
  } catch (error) {
    showError("Products", error);
    return [];
  }
}

function refreshAll() {
  return Promise.all([loadShortages(), loadAlerts(), loadCompleteness(), state.forecastRegion ? loadForecast(state.forecastRegion) : null]);
}

// ---------------------------------------------------------------------------------------------
// Risk by region

// Only `shortages` at the root: the API caches such answers per jurisdiction until forecasts change.
const SHORTAGES = `query DashboardShortages($region: String!, $product: String!, $first: Int, $after: String) {
  shortages(regionCode: $region, productCode: $product, first: $first, after: $after) {
    edges { node {
      region { code name level }
      riskLevel onHand dailyDemand daysOfSupply daysToStockout stockoutDate
      stockoutProbability7d stockoutProbability14d shortageQuantity sites asOf computedAt
    } }
    pageInfo { hasNextPage endCursor }
  }
}`;

async function loadShortages() {
  const product = ui.product.value;
  const seq = ++state.seq.shortages;
  if (!product) {
    ui.riskEmpty.textContent = "Choose a product to see the risk of every region.";
    ui.riskEmpty.hidden = false;
    ui.grid.replaceChildren();
    fillBody(ui.shortages, []);
    ui.asOf.textContent = "";
    return;
  }
  await busy(ui.risk, async () => {
    try {
      const { nodes, truncated } = await allPages(SHORTAGES, { region: state.scope, product }, (d) => d.shortages, MAX_REGIONS);
      if (seq !== state.seq.shortages) return;
      renderShortages(nodes, truncated);
    } catch (error) {
      if (seq === state.seq.shortages) showError(`Risk by region for ${product}`, error);
    }
  });
}

function renderShortages(rows, truncated) {
  const product = ui.product.value;
  ui.riskEmpty.hidden = rows.length > 0;
  ui.riskEmpty.textContent = rows.length ? "" : `No forecast for ${product} in this jurisdiction yet: no site here has reported it.`;
  const newest = rows.reduce((m, r) => (r.computedAt > m ? r.computedAt : m), "");
  const asOf = rows.reduce((m, r) => (r.asOf > m ? r.asOf : m), "");
  ui.asOf.textContent = rows.length
    ? `${rows.length} regions with ${product} data${truncated ? ` (the first ${rows.length} only)` : ""}; data up to ${asOf}, forecasts computed ${fmt.time(newest)}. Regions where no site reports ${product} have no forecast and are not listed.`
    : "";

  fillBody(
    ui.shortages,
    rows.map((r) =>
      h(
        "tr",
        { dataset: { region: r.region.code, risk: r.riskLevel } },
        h("th", { scope: "row" }, regionButton(r.region, r.region.name, h("span", { className: "code" }, r.region.code))),
        cell(LEVEL_SINGULAR[r.region.level] ?? r.region.level),
        cell(riskBadge(r.riskLevel)),
        cell(fmt.one(r.daysOfSupply), true),
        cell(r.stockoutDate ?? "–"),
        cell(`${fmt.percent(r.stockoutProbability7d)} / ${fmt.percent(r.stockoutProbability14d)}`, true),
        cell(fmt.whole(r.onHand), true),
        cell(fmt.whole(r.dailyDemand), true),
        cell(fmt.whole(r.shortageQuantity), true),
        cell(r.sites, true),
        cell(r.asOf),
      ),
    ),
  );

  // Tiles by level, each level in code order: GB/T 2260 codes keep neighbours together.
  const byLevel = Map.groupBy(rows, (r) => r.region.level);
  ui.grid.replaceChildren(
    ...LEVEL_ORDER.filter((level) => byLevel.has(level)).map((level) => {
      const list = [...byLevel.get(level)].sort((a, b) => a.region.code.localeCompare(b.region.code));
      return h(
        "section",
        { className: "tiles", attrs: { "aria-label": `${LEVEL_NAMES[level]}: risk tiles` } },
        h("h3", {}, `${LEVEL_NAMES[level]} (${list.length})`),
        h(
          "ul",
          {},
          ...list.map((r) =>
            h(
              "li",
              {},
              regionButton(
                r.region,
                h("span", { className: "tile-name" }, r.region.name),
                h("span", { className: "tile-risk" }, r.riskLevel),
                h("span", { className: "tile-days" }, r.daysToStockout === null ? "no stock-out" : `${fmt.one(r.daysToStockout)} d`),
                { className: `tile risk-${r.riskLevel}`, title: `${regionLabel(r.region)}: ${r.riskLevel}, ${fmt.days(r.daysToStockout)} to stock-out` },
              ),
            ),
          ),
        ),
      );
    }),
  );
  markSelected();
}

/** A button that opens the region's forecast; the last argument may be extra properties. */
function regionButton(region, ...content) {
  const last = content.at(-1);
  const extra = last && !(last instanceof Node) && typeof last === "object" ? content.pop() : {};
  return h(
    "button",
    { type: "button", className: "region-link", ...extra, dataset: { region: region.code }, on: { click: () => void loadForecast(region.code, true) } },
    ...content,
  );
}

function markSelected() {
  for (const b of ui.app.querySelectorAll("button[data-region]")) {
    const selected = b.dataset.region === state.forecastRegion;
    b.classList.toggle("selected", selected);
    b.setAttribute("aria-pressed", String(selected));
  }
}

// ---------------------------------------------------------------------------------------------
// Forecast of one region

const FORECAST = `query DashboardForecast($region: String!, $product: String!) {
  forecast(regionCode: $region, productCode: $product) {
    method demandSource
    shortage {
      asOf onHand dailyDemand daysOfSupply daysToStockout stockoutDate riskLevel stockoutProbability7d stockoutProbability14d shortageQuantity
      region { code name } product { code name baseUnit }
    }
    points { date demand demandLow80 demandHigh80 demandLow95 demandHigh95 supply stock }
  }
}`;

async function loadForecast(regionCode, focus = false) {
  const product = ui.product.value;
  if (!product) return;
  state.forecastRegion = regionCode;
  markSelected();
  const seq = ++state.seq.forecast;
  ui.forecast.hidden = false;
  await busy(ui.forecast, async () => {
    try {
      const { forecast } = await graphql(FORECAST, { region: regionCode, product });
      if (seq !== state.seq.forecast) return;
      if (!forecast) {
        ui.forecastTitle.textContent = `Forecast: ${regionCode}, ${product}`;
        ui.forecastSummary.textContent = "No forecast yet for this region and product: no site below it has reported the product, or the forecast job has not run since.";
        ui.chart.replaceChildren();
      } else {
        const s = forecast.shortage;
        ui.forecastTitle.textContent = `Forecast: ${regionLabel(s.region)}, ${s.product.name}`;
        ui.forecastSummary.replaceChildren(
          riskBadge(s.riskLevel),
          ` ${fmt.whole(s.onHand)} ${s.product.baseUnit} on hand on ${s.asOf}, about ${fmt.whole(s.dailyDemand)} a day of demand; `,
          s.stockoutDate ? `stock-out projected on ${s.stockoutDate} (${fmt.days(s.daysToStockout)})` : "no stock-out within the horizon",
          `; ${fmt.percent(s.stockoutProbability7d)} chance of running out within 7 days, ${fmt.percent(s.stockoutProbability14d)} within 14. Demand method ${forecast.method}, from ${forecast.demandSource}.`,
        );
        ui.chart.replaceChildren(forecastChart(forecast));
      }
      if (focus) ui.forecastTitle.focus();
    } catch (error) {
      if (seq === state.seq.forecast) showError(`Forecast of ${regionCode} for ${product}`, error);
    }
  });
}

function closeForecast() {
  state.forecastRegion = null;
  state.seq.forecast++;
  ui.forecast.hidden = true;
  ui.chart.replaceChildren();
  markSelected();
}

// ---------------------------------------------------------------------------------------------
// Alerts

const ALERTS = `query DashboardAlerts($region: String, $status: AlertStatus, $first: Int, $after: String) {
  alerts(regionCode: $region, status: $status, first: $first, after: $after) {
    edges { node { id kind severity status message raisedAt acknowledgedAt region { code name } product { code name } } }
    pageInfo { hasNextPage endCursor }
  }
}`;

const ACKNOWLEDGE = `mutation DashboardAcknowledge($id: ID!) { acknowledgeAlert(id: $id) { id status acknowledgedAt } }`;

async function loadAlerts(more = false) {
  const seq = more ? state.seq.alerts : ++state.seq.alerts;
  await busy(ui.alerts, async () => {
    try {
      const { alerts } = await graphql(ALERTS, { region: state.scope, status: ui.alertStatus.value, first: 50, after: more ? state.alertsCursor : null });
      if (seq !== state.seq.alerts) return;
      const rows = alerts.edges.map((e) => alertRow(e.node));
      if (more) ui.alertsTable.tBodies[0].append(...rows);
      else fillBody(ui.alertsTable, rows);
      ui.alertsTable.hidden = ui.alertsTable.tBodies[0].rows.length === 0;
      state.alertsCursor = alerts.pageInfo.endCursor;
      ui.alertsMore.hidden = !alerts.pageInfo.hasNextPage;
      ui.alertsEmpty.hidden = !ui.alertsTable.hidden;
      ui.alertsEmpty.textContent = ui.alertStatus.value === "OPEN" ? "No open alerts in your jurisdiction." : "No acknowledged alerts waiting to be resolved.";
    } catch (error) {
      if (seq === state.seq.alerts) showError("Alerts", error);
    }
  });
}

function alertRow(a) {
  const statusCell = cell(statusText(a));
  const row = h(
    "tr",
    { dataset: { alertId: a.id, region: a.region.code, kind: a.kind } },
    cell(riskBadge(a.severity)),
    cell(a.kind.replaceAll("_", " ").toLowerCase()),
    cell(regionLabel(a.region)),
    cell(a.product ? a.product.code : "–"),
    cell(a.message),
    cell(fmt.time(a.raisedAt)),
    statusCell,
  );
  if (a.status === "OPEN") {
    const button = h("button", { type: "button", className: "ack", attrs: { "aria-label": `Acknowledge: ${a.message}` } }, "Acknowledge");
    button.addEventListener("click", () => void acknowledge(a, button, statusCell));
    statusCell.append(" ", button);
  }
  return row;
}

const statusText = (a) => (a.status === "ACKNOWLEDGED" && a.acknowledgedAt ? `ACKNOWLEDGED ${fmt.time(a.acknowledgedAt)}` : a.status);

async function acknowledge(alert, button, statusCell) {
  button.disabled = true;
  button.textContent = "Acknowledging…";
  try {
    const { acknowledgeAlert } = await graphql(ACKNOWLEDGE, { id: alert.id });
    statusCell.replaceChildren(statusText(acknowledgeAlert));
    statusCell.closest("tr").dataset.status = acknowledgeAlert.status;
    say(`Alert acknowledged: ${alert.message}`);
  } catch (error) {
    button.disabled = false;
    button.textContent = "Acknowledge";
    showError(`Acknowledging the alert on ${regionLabel(alert.region)}`, error);
  }
}

// ---------------------------------------------------------------------------------------------
// Reporting completeness

const COMPLETENESS = `query DashboardCompleteness($region: String!, $date: Date!) {
  reportingCompleteness(regionCode: $region, date: $date) {
    region { code name level } expectedSites reportingSites onTimeSites lateSites missingSites completeness timeliness
  }
}`;

async function loadCompleteness() {
  const region = state.completenessPath.at(-1);
  const date = ui.completenessDate.value;
  const seq = ++state.seq.completeness;
  ui.completenessUp.hidden = state.completenessPath.length <= 1;
  if (!region) return;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) {
    showError("Reporting completeness", new Error("choose a day"));
    return;
  }
  await busy(ui.completeness, async () => {
    try {
      const { reportingCompleteness: rows } = await graphql(COMPLETENESS, { region: region.code, date });
      if (seq !== state.seq.completeness) return;
      ui.completenessCaption.textContent = `Sites expected to report on ${date} in ${regionLabel(region)} (first row) and each region directly below it`;
      fillBody(
        ui.completenessTable,
        rows.map((r, i) =>
          h(
            "tr",
            { className: i === 0 ? "total" : "", dataset: { region: r.region.code } },
            h(
              "th",
              { scope: "row" },
              i > 0 && r.region.level !== "COUNTY"
                ? h("button", { type: "button", className: "drill", on: { click: () => drill(r.region) }, attrs: { "aria-label": `Completeness below ${regionLabel(r.region)}` } }, regionLabel(r.region))
                : regionLabel(r.region),
            ),
            cell(r.expectedSites, true),
            cell(r.reportingSites, true),
            cell(r.onTimeSites, true),
            cell(r.lateSites, true),
            cell(r.missingSites, true),
            cell(fmt.percent(r.completeness), true),
            cell(fmt.percent(r.timeliness), true),
          ),
        ),
      );
    } catch (error) {
      if (seq === state.seq.completeness) showError(`Reporting completeness on ${date}`, error);
    }
  });
}

function drill(region) {
  state.completenessPath.push(region);
  void loadCompleteness();
}

// ---------------------------------------------------------------------------------------------

function onProductChange() {
  const product = ui.product.value;
  if (product) sessionStorage.setItem(PRODUCT_KEY, product);
  else sessionStorage.removeItem(PRODUCT_KEY);
  closeForecast();
  void loadShortages();
}

ui.loginForm.addEventListener("submit", (e) => void onLogin(e));
ui.logout.addEventListener("click", () => logout());
ui.product.addEventListener("change", onProductChange);
ui.scope.addEventListener("change", () => {
  state.scope = ui.scope.value;
  state.completenessPath = state.scopes.filter((r) => r.code === state.scope);
  closeForecast();
  void refreshAll();
});
ui.refresh.addEventListener("click", () => {
  clearMessages();
  void refreshAll();
});
ui.forecastClose.addEventListener("click", closeForecast);
ui.alertStatus.addEventListener("change", () => void loadAlerts());
ui.alertsMore.addEventListener("click", () => void loadAlerts(true));
ui.completenessDate.addEventListener("change", () => void loadCompleteness());
ui.completenessUp.addEventListener("click", () => {
  state.completenessPath.pop();
  void loadCompleteness();
});

// A token kept from earlier in this tab's session signs in again without asking.
if (session.token) {
  signIn(session.token).then(enter, (error) => {
    session.token = null;
    ui.login.hidden = false;
    showError("Sign in", error);
  });
} else {
  ui.login.hidden = false;
}

#!/usr/bin/env node
// The dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; no browser is ever downloaded), against a running engine API.
//
//   DASHBOARD_URL    where the built dashboard is served, e.g. http://127.0.0.1:8000/
//   API_TOKEN        the engine's bearer token (for pause and resume)
//   API_URL          the API base (default: DASHBOARD_URL + "api/trading")
//   SCREENSHOT_PATH  where to save the overview's screenshot (default dashboard.png);
//                    the other pages are saved beside it (…-decisions.png, …-performance.png)
//   CHROMIUM_PATH    default /usr/bin/chromium
//
// Every figure the page must show is read from the API first: the test compares the page
// with the engine's own answers, never with numbers written here. Exit 0: all checks passed.
import { mkdtempSync, rmSync, existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const DASHBOARD_URL = process.env.DASHBOARD_URL;
const TOKEN = process.env.API_TOKEN ?? "";
const SCREENSHOT_PATH = process.env.SCREENSHOT_PATH ?? "dashboard.png";
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const TIMEOUT = 20_000;

if (!DASHBOARD_URL) fail("set DASHBOARD_URL to the dashboard's address, e.g. http://127.0.0.1:8000/");
if (!existsSync(CHROMIUM)) fail(`${CHROMIUM} is missing: install Debian's packages (apt-get install -y chromium chromium-driver)`);
const API_URL = (process.env.API_URL ?? new URL("api/trading", DASHBOARD_URL).href).replace(/\/$/, "");

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
  console.log(`ok - ${message}`);
}

async function getJson(path) {
  const response = await fetch(`${API_URL}${path}`, { headers: TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {} });
  if (!response.ok) throw new Error(`GET ${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

/** Every row of a list endpoint matching `query` (the dashboard sums them the same way). */
async function getAll(path, query = {}) {
  const items = [];
  for (let offset = 0; ; offset += 500) {
    const page = await getJson(`${path}?${new URLSearchParams({ ...query, limit: 500, offset })}`);
    items.push(...page.items);
    if (page.items.length === 0 || items.length >= page.total) return items;
  }
}

/** The file a download button saves: its name and text. */
async function downloaded(button) {
  const [download] = await Promise.all([button.page().waitForEvent("download", { timeout: 60_000 }), button.click()]);
  const path = await download.path();
  return { name: download.suggestedFilename(), text: readFileSync(path, "utf8") };
}

/** Midnight in New York (the engine's session day), `daysAgo` days before the day of `ms`. */
function newYorkDayStart(ms, daysAgo = 0) {
  const parts = new Intl.DateTimeFormat("en-US", { timeZone: "America/New_York", year: "numeric", month: "numeric", day: "numeric" })
    .formatToParts(ms);
  const p = Object.fromEntries(parts.map((x) => [x.type, Number(x.value)]));
  // 05:00 UTC of that date is before 2 a.m. in New York: its offset is the one at midnight.
  const early = new Date(Date.UTC(p.year, p.month - 1, p.day - daysAgo, 5));
  const offset = early.toLocaleString("en-US", { timeZone: "America/New_York", timeZoneName: "longOffset" }).match(/GMT([+-]\d\d):(\d\d)/);
  const minutes = offset ? Number(offset[1]) * 60 + Math.sign(Number(offset[1])) * Number(offset[2]) : 0;
  return new Date(Date.UTC(p.year, p.month - 1, p.day - daysAgo) - minutes * 60_000).toISOString();
}

const sumPnl = (trades) => trades.reduce((acc, t) => acc + Number(t.pnl), 0);

const usd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
const signedUsd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", signDisplay: "exceptZero" });
const shot = (suffix) => SCREENSHOT_PATH.replace(/(\.png)?$/, `-${suffix}.png`);

const userDataDir = mkdtempSync(join(tmpdir(), "stonks-e2e-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  viewport: { width: 1440, height: 1000 },
  deviceScaleFactor: 1,
});
const pageErrors = [];
let exitCode = 0;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  page.on("console", (message) => {
    if (message.type() === "error") console.log(`  browser console: ${message.text()}`);
  });

  const text = async (testId) => {
    await page.getByTestId(testId).waitFor();
    return (await page.getByTestId(testId).innerText()).trim();
  };

  // -- The browser's clock is not the engine's --------------------------------------------------
  // The engine's clock is its own (a replay's is simulated): put the browser's an hour after the
  // newest closed trade, so a widget that windows by the browser's clock shows other figures
  // than the API's at the engine's as_of.
  const newest = (await getJson("/trades?limit=1")).items[0];
  const browserNow = newest ? Date.parse(newest.exit_at) + 3_600_000 : Date.UTC(2001, 0, 2, 15);
  await context.clock.setSystemTime(browserNow);

  // -- Overview: the real risk tier and Active Pool ----------------------------------------
  const status = await getJson("/status");
  await page.goto(DASHBOARD_URL);
  console.log(`  browser clock ${new Date(await page.evaluate(() => Date.now())).toISOString()}, engine's ${status.as_of}`);
  await page.getByTestId("risk-tier").waitFor();
  const tier = (await page.getByTestId("risk-tier").innerText()).trim().toLowerCase();
  check(tier === status.risk_tier, `overview shows the risk tier from the API (${status.risk_tier})`);
  const expectedAccount = `${status.trading_mode === "live" ? "LIVE" : "PAPER"} · ${status.broker === "alpaca" ? "Alpaca" : "paper broker"}`;
  const account = (await page.getByTestId("trading-account").innerText()).trim();
  const headerAccount = (await page.getByTestId("header-account").innerText()).trim();
  check(
    account === expectedAccount && headerAccount === expectedAccount,
    `overview and header show the trading mode and broker from the API (${account} / ${headerAccount})`,
  );
  const activePool = (await page.getByTestId("active-pool").innerText()).trim();
  check(activePool === usd.format(Number(status.active_pool)), `overview shows the Active Pool from the API (${activePool})`);
  const reservePool = (await page.getByTestId("reserve-pool").innerText()).trim();
  check(reservePool === usd.format(Number(status.reserve_pool)), `overview shows the Reserve Pool from the API (${reservePool})`);
  check(await page.getByTestId("heat-gauge").locator("svg").count() === 1, "the portfolio heat gauge is drawn");
  check(await page.getByTestId("api-error").count() === 0, "the overview shows no API error");

  // "Realized, 24 h" is the 24 h before the engine's now (rounded down to the minute).
  const engineNow = Date.parse((await getJson("/status")).as_of);
  const last24h = await getAll("/trades", { since: new Date(Math.floor(engineNow / 60_000) * 60_000 - 86_400_000).toISOString() });
  const realized = await text("realized-24h");
  check(realized === (last24h.length ? signedUsd.format(sumPnl(last24h)) : "—"),
    `"Realized, 24 h" is the API's ${last24h.length} trades in the engine's last 24 h (${realized})`);

  // -- Pause without the token: refused, said so, nothing changed -------------------------
  if (!status.paused) {
    await page.getByTestId("pause-button").click();
    await page.getByTestId("api-error").filter({ hasText: "token" }).waitFor();
    check(true, "Pause without the token shows the API's refusal");
    check((await getJson("/status")).paused === false, "…and the engine is still not paused");
  }

  // -- Pause and resume with the token -------------------------------------------------------
  await page.getByTestId("token-button").click();
  await page.getByTestId("token-input").fill(TOKEN);
  await page.getByTestId("token-save").click();
  await page.getByTestId("pause-button").click();
  await page.getByTestId("engine-state").filter({ hasText: "paused" }).waitFor();
  check((await getJson("/status")).paused === true, "Pause with the token: the status says paused, and so does the API");
  await page.screenshot({ path: shot("paused") });
  await page.getByTestId("resume-button").click();
  await page.waitForFunction(() => !document.querySelector('[data-testid="engine-state"]')?.textContent?.includes("paused"));
  const resumed = await getJson("/status");
  check(resumed.paused === false, `Resume restores it (status: ${await page.getByTestId("engine-state").innerText()})`);
  await page.waitForTimeout(300);
  await page.screenshot({ path: SCREENSHOT_PATH, fullPage: true });

  // -- Halt all trading now, with a reason, and clear it (issue 15) ---------------------------
  const breakerBefore = (await getJson("/status")).circuit_breaker;
  await page.getByTestId("halt-reason").fill("e2e: owner halts everything");
  await page.getByTestId("halt-button").click();
  await page.getByTestId("clear-halt-button").waitFor();
  const halted = (await getJson("/status")).circuit_breaker;
  check(halted.active && halted.trigger === "manual" && halted.reason.includes("e2e: owner halts everything"),
    `"Halt all trading now" trips the manual breaker with the reason (API: ${halted.trigger}, ${halted.reason})`);
  check(await text("breaker-state") === "active", "…and the breaker card says active");
  check((await page.getByTestId("breaker").innerText()).includes("e2e: owner halts everything"), "…with the owner's reason");
  await page.screenshot({ path: shot("halted") });
  await page.getByTestId("clear-halt-button").click();
  await page.getByTestId("halt-button").waitFor();
  const cleared = (await getJson("/status")).circuit_breaker;
  check(cleared.trigger !== "manual" && cleared.active === breakerBefore.active,
    `"Clear the halt" ends the manual halt only (active before ${breakerBefore.active}, now ${cleared.active})`);

  // -- Reconciliation with the broker (issue 14): the card shows the API's answer ---------------
  const reconciliation = await getJson("/reconciliation");
  const reconciliationCard = await page.getByTestId("reconciliation").innerText();
  check(reconciliation.runs.length > 0 || reconciliationCard.includes("nothing to reconcile"),
    `the reconciliation card says the paper broker has nothing to reconcile (runs: ${reconciliation.runs.length})`);
  check(await page.getByTestId("reconciliation-open").count() === (reconciliation.open.length > 0 ? 1 : 0)
    && reconciliationCard.includes(reconciliation.open.length ? "Acknowledge" : "No open differences"),
    `…and lists the API's ${reconciliation.open.length} open finding(s)`);

  // -- Decisions: the real rows ---------------------------------------------------------------
  const decisions = await getJson("/decisions?limit=25");
  check(decisions.total > 0, `the API has decisions (${decisions.total})`);
  await page.getByTestId("tab-decisions").click();
  await page.getByTestId("decision-row").first().waitFor();
  const rows = page.getByTestId("decision-row");
  check(await rows.count() === decisions.items.length, `the decisions table lists the API's ${decisions.items.length} newest decisions`);
  const first = decisions.items[0];
  const firstText = await rows.first().innerText();
  check(firstText.includes(first.ticker) && firstText.includes(first.decision),
    `the first row is the newest decision (${first.ticker}, ${first.decision})`);
  const reason = first.decision === "skip" ? first.skip_reason : null;
  if (reason) check(firstText.includes(reason), "…with its skip reason");
  await rows.first().click();
  await page.getByTestId("decision-trace").waitFor();
  check(await page.getByTestId("decision-trace").locator("li").count() > 0, "a row expands into its reasoning trace");
  await page.screenshot({ path: shot("decisions"), fullPage: true });

  // -- Performance charts -------------------------------------------------------------------
  const history = await getJson("/metrics/history?limit=1");
  check(history.total > 0, `the API has end-of-day snapshots (${history.total})`);
  await page.getByTestId("tab-performance").click();
  for (const id of ["chart-pnl", "chart-returns", "chart-drawdown"]) {
    await page.locator(`[data-testid="${id}"] svg.recharts-surface`).first().waitFor();
    check(true, `${id} renders an SVG chart`);
  }
  await page.locator('[data-testid="chart-pnl"] .recharts-line-curve').waitFor();
  const curve = await page.locator('[data-testid="chart-pnl"] .recharts-line-curve').getAttribute("d");
  check(curve !== null && curve.length > 20, "the cumulative P&L line has a path");
  // Day one counts: P&L is from the value the first session opened with (its close − its daily P&L).
  const snapshots = await getAll("/metrics/history");
  const [firstClose, lastClose] = [snapshots[0], snapshots[snapshots.length - 1]];
  check(firstClose.daily_pnl !== null, `the first snapshot has its day's P&L (${firstClose.daily_pnl})`);
  const opened = Number(firstClose.portfolio_value) - Number(firstClose.daily_pnl);
  const totalPnl = Number(lastClose.portfolio_value) - opened;
  const pnlSubtitle = await page.getByTestId("chart-pnl").locator("header p").innerText();
  check(pnlSubtitle.endsWith(signedUsd.format(totalPnl)), `the cumulative P&L counts from the first open, day one included (${pnlSubtitle})`);
  const booked = Number(lastClose.realized_pnl) + Number(lastClose.unrealized_pnl);
  // (to a few cents: the snapshot's P&L figures are rounded apart from its value)
  check(Math.abs(booked - totalPnl) < 0.05, `…and matches the last close's realized + unrealized P&L (${booked.toFixed(4)} vs ${totalPnl.toFixed(4)})`);
  await page.screenshot({ path: shot("performance"), fullPage: true });
  const liveSheet = await downloaded(page.getByTestId("tearsheet-live"));
  check(liveSheet.name === "tearsheet-live.html" && liveSheet.text.includes("Trading account tearsheet"),
    `the Performance page's tearsheet button downloads the live tearsheet (${liveSheet.name})`);

  // -- Portfolio and trades: real rows, or the honest empty state -----------------------------
  const positions = await getJson("/positions");
  await page.getByTestId("tab-portfolio").click();
  if (positions.items.length > 0) {
    await page.getByTestId("positions-table").waitFor();
    const text = await page.getByTestId("positions-table").innerText();
    check(positions.items.every((p) => text.includes(p.ticker)), "the positions table lists every open position");
    await page.locator('[data-testid="sector-chart"] svg.recharts-surface').waitFor();
    check(true, "the sector allocation pie renders");
  } else {
    await page.getByTestId("positions").getByTestId("no-data").waitFor();
    check(true, "no open positions: the portfolio says so");
  }
  await page.screenshot({ path: shot("portfolio"), fullPage: true });
  const trades = await getJson("/trades?limit=25");
  await page.getByTestId("tab-trades").click();
  if (trades.total > 0) {
    await page.getByTestId("trades-table").waitFor();
    const text = await page.getByTestId("trades-table").innerText();
    check(text.includes(trades.items[0].ticker) && text.includes(usd.format(Number(trades.items[0].pnl)).replace("-", "")),
      `the trade history shows the newest closed trade (${trades.items[0].ticker})`);
  } else {
    await page.getByTestId("trades").getByTestId("no-data").waitFor();
    check(true, "no closed trades: the history says so");
  }
  await page.screenshot({ path: shot("trades"), fullPage: true });

  // -- Backtesting: launch one through the form, poll until it completes ------------------------
  await page.getByTestId("tab-backtest").click();
  const form = page.getByTestId("backtest-form");
  await form.waitFor();
  await form.getByLabel("Start", { exact: true }).fill(process.env.BACKTEST_START ?? "2003-01-02");
  await form.getByLabel("End", { exact: true }).fill(process.env.BACKTEST_END ?? "2003-12-31");
  await form.getByLabel("Signals").selectOption("momentum");
  // A capital the browser lets through but the API refuses: its reason, beside the field.
  const capital = form.getByLabel("Initial capital ($)");
  const goodCapital = await capital.inputValue();
  await capital.fill("2000000000000");
  const [refusedBacktest] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === "POST" && r.url().endsWith("/backtest")),
    form.getByRole("button", { name: "Run backtest" }).click(),
  ]);
  const capitalReasons = (await refusedBacktest.json()).detail
    .filter((d) => d.loc.join(".") === "body.initial_capital").map((d) => d.msg);
  check(refusedBacktest.status() === 422 && capitalReasons.length > 0,
    `the API refuses a capital of 2e12 and names the field (${capitalReasons.join("; ")})`);
  const capitalNote = await text("field-error-initial_capital");
  check(capitalNote === capitalReasons.join("; "), `the backtest form shows that reason beside the capital ("${capitalNote}")`);
  await capital.fill(goodCapital);
  await form.getByRole("button", { name: "Run backtest" }).click();
  await page.getByTestId("backtest-status").filter({ hasText: /completed|failed/ }).waitFor({ timeout: 120_000 });
  const backtestStatus = await page.getByTestId("backtest-status").innerText();
  check(backtestStatus === "completed", `a backtest launched from the form runs to the end (${backtestStatus})`);
  const latest = (await getJson("/backtest?limit=1")).items[0];
  check(latest.status === "completed", "…and the API agrees");
  await page.locator('[data-testid="backtest-equity"] svg.recharts-surface').waitFor();
  check(true, "its equity curve renders");
  await page.screenshot({ path: shot("backtest"), fullPage: true });
  const runSheet = await downloaded(page.getByTestId("tearsheet-backtest"));
  check(runSheet.name === `tearsheet-${latest.id}.html` && runSheet.text.includes(`Backtest tearsheet ${latest.id}`),
    `the backtest's tearsheet button downloads its tearsheet (${runSheet.name})`);

  // -- Optimize: a refusal beside its field, then a small search launched from the form -------------
  await page.getByTestId("tab-optimize").click();
  const optimizeForm = page.getByTestId("optimize-form");
  await optimizeForm.getByTestId("space-row").first().waitFor();
  await optimizeForm.getByLabel("Start", { exact: true }).fill(process.env.OPTIMIZE_START ?? "2004-01-02");
  await optimizeForm.getByLabel("End", { exact: true }).fill(process.env.OPTIMIZE_END ?? "2004-06-30");
  await optimizeForm.getByLabel("Tickers").fill("AAPL, MSFT");
  await optimizeForm.getByLabel("Trials", { exact: true }).fill("4");
  await optimizeForm.getByLabel("Seed").fill("7");
  const firstRow = optimizeForm.getByTestId("space-row").first();
  const firstParameter = await firstRow.getByLabel("Parameter").inputValue();
  const goodHigh = await firstRow.getByLabel("High").inputValue();
  const allowed = (await getJson("/optimizations/parameters")).items.find((p) => p.name === firstParameter);
  await firstRow.getByLabel("High").fill(String(allowed.high + 1)); // beyond what the API allows
  const finished = (id) => page.locator(`[data-run-id="${id}"]`).getByTestId("optimization-status")
    .filter({ hasText: /completed|failed|interrupted/ }).waitFor({ timeout: 240_000 });
  const submit = () => Promise.all([
    page.waitForResponse((r) => r.request().method() === "POST" && r.url().endsWith("/optimizations")),
    optimizeForm.getByRole("button", { name: "Run optimization" }).click(),
  ]).then(([response]) => response);
  const refused = await submit();
  check(refused.status() === 422, `the form sends the bad range and the API refuses it (${refused.status()})`);
  // The same request, sent here: the page must show the API's own field and reason.
  const replay = await fetch(`${API_URL}/optimizations`, {
    method: "POST",
    headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
    body: refused.request().postData(),
  });
  const reasons = (await replay.json()).detail.filter((d) => d.loc.join(".") === `body.space.${firstParameter}`).map((d) => d.msg);
  check(replay.status === 422 && reasons.length > 0, `the API names space.${firstParameter} (${reasons.join("; ")})`);
  const note = (await text(`field-error-space.${firstParameter}`));
  check(note === reasons.join("; "), `the form shows that reason beside the ${firstParameter} row ("${note}")`);
  check((await getJson("/optimizations")).items.every((o) => o.status !== "running"), "…and nothing started");
  await page.screenshot({ path: shot("optimize-refused"), fullPage: true });

  await firstRow.getByLabel("High").fill(goodHigh);
  const accepted = await submit();
  check(accepted.status() === 202, `the corrected form starts a run (${accepted.status()})`);
  const runId = (await accepted.json()).optimization_id;
  await finished(runId);
  const run = await getJson(`/optimizations/${runId}`);
  check(run.status === "completed" && (await text("optimization-status")) === "completed",
    `the run launched from the form finishes, and the page says so (API: ${run.status}${run.error ? `, ${run.error}` : ""})`);
  check(await text("optimization-progress") === `${run.trials_done} / ${run.trials_planned}`, `its progress is the API's ${run.trials_done} / ${run.trials_planned} trials`);
  const trialRows = page.getByTestId("optimization-trials").getByTestId("optimization-trial-row");
  check(await trialRows.count() === run.trials.length && run.trials.length === 4,
    `the trials table shows the API's ${run.trials.length} trials`);
  const shownBest = await text("optimization-best-value");
  const expectedBest = run.best_value === null ? "—" : run.objective === "total_return" ? `${run.best_value > 0 ? "+" : ""}${(run.best_value * 100).toFixed(2)}%` : run.best_value.toFixed(4);
  check(shownBest === expectedBest, `the best ${run.objective} shown is the API's (${shownBest}, trial ${run.best_trial})`);
  const shownDsr = await text("optimization-dsr");
  check(shownDsr === (run.dsr?.error ? "—" : `${(run.dsr.dsr * 100).toFixed(1)}%`), `the Deflated Sharpe shown is the API's (${shownDsr})`);
  const shownPbo = await text("optimization-pbo");
  check(shownPbo === (run.pbo?.error ? "—" : `${(run.pbo.pbo * 100).toFixed(1)}%`), `the PBO shown is the API's (${shownPbo})`);
  const listed = page.getByTestId("optimization-list").getByTestId("optimization-row").first();
  await listed.getByTestId("optimization-row-status").filter({ hasText: "completed" }).waitFor();
  check((await listed.innerText()).includes(`best ${expectedBest}`), "the list shows the run completed, with its best value");
  await page.locator('[data-testid="optimization-best-equity"] svg.recharts-surface').waitFor();
  check(true, "the best trial's equity renders");
  check(await page.getByTestId("api-error").count() === 0, "the Optimize page shows no API error");
  await page.screenshot({ path: shot("optimize"), fullPage: true });

  // A small walk-forward run: two windows of 60 sessions searched, 30 traded unseen.
  await optimizeForm.getByLabel("Trials", { exact: true }).fill("2");
  await optimizeForm.getByText("Walk-forward:").click();
  await optimizeForm.getByLabel("Train (sessions)").fill("60");
  await optimizeForm.getByLabel("Test (sessions)").fill("30");
  const walkAccepted = await submit();
  check(walkAccepted.status() === 202, `a walk-forward run starts from the form (${walkAccepted.status()})`);
  const walkId = (await walkAccepted.json()).optimization_id;
  await finished(walkId);
  const walk = await getJson(`/optimizations/${walkId}`);
  check(walk.status === "completed" && walk.kind === "walk_forward" && walk.windows.length === 2,
    `it finishes with the API's ${walk.windows.length} windows (${walk.status}${walk.error ? `, ${walk.error}` : ""})`);
  check(await page.getByTestId("wf-window-row").count() === walk.windows.length, "the windows table shows each window");
  check(await trialRows.count() === walk.trials.length, `the trials table shows the API's ${walk.trials.length} trials of all windows`);
  const efficiency = await text("wf-efficiency");
  check(efficiency === (walk.summary.degradation == null ? "—" : walk.summary.degradation.toFixed(2)),
    `the walk-forward efficiency shown is the API's (${efficiency})`);
  await page.locator('[data-testid="wf-equity"] svg.recharts-surface').waitFor();
  check(await page.locator('[data-testid="wf-equity"] .recharts-line').count() === 1 + walk.windows.filter((w) => w.in_sample_equity.length).length,
    "the equity chart draws the stitched out-of-sample line and each window's in-sample one");
  await page.screenshot({ path: shot("optimize-walk-forward"), fullPage: true });

  // -- Micro: today and 7 days are the engine's New York days -----------------------------------
  await page.getByTestId("tab-micro").click();
  const microStatus = await getJson("/status");
  const microNow = Date.parse(microStatus.as_of);
  const acts = await getAll("/decisions", { decision: "act", since: newYorkDayStart(microNow) });
  const entries = acts.filter((d) => d.is_micro_trade && d.recommendation_id !== null).length;
  check(microStatus.micro_entries_today === entries, `the status's micro entries today are the ${entries} its decisions show`);
  check(await text("micro-entries-today") === String(entries), `micro "Entries today" is the API's ${entries} micro entries today`);
  const week = (await getAll("/trades", { since: newYorkDayStart(microNow, 6) })).filter((t) => t.is_micro_trade);
  const closedToday = week.filter((t) => Date.parse(t.exit_at) >= Date.parse(newYorkDayStart(microNow))).length;
  check(await text("micro-closed-today") === String(closedToday), `micro "Closed today" is the API's ${closedToday}`);
  check(await text("micro-7d-count") === String(week.length), `micro "Closed, 7 days" is the API's ${week.length}`);
  check(await text("micro-7d-pnl") === (week.length ? signedUsd.format(sumPnl(week)) : "—"), "…with their P&L");

  // -- Every other page renders without an error ---------------------------------------------
  for (const tab of ["micro", "notifications"]) {
    await page.getByTestId(`tab-${tab}`).click();
    await page.locator("main section").first().waitFor();
    await page.waitForLoadState("networkidle");
    check(await page.getByTestId("api-error").count() === 0, `the ${tab} page loads without an API error`);
    await page.screenshot({ path: shot(tab), fullPage: true });
  }
  check(pageErrors.length === 0, `no uncaught errors in the page${pageErrors.length ? `: ${pageErrors.join("; ")}` : ""}`);
  console.log(`screenshot: ${SCREENSHOT_PATH}`);
} catch (error) {
  exitCode = 1;
  console.error(`FAIL: ${error instanceof Error ? error.message : error}`);
  try {
    const page = context.pages()[0];
    if (page) await page.screenshot({ path: shot("failure"), fullPage: true });
    console.error(`page at failure: ${shot("failure")}`);
  } catch {
    // the browser is gone; the message above says why
  }
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(exitCode);

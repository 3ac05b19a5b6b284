// Browser end-to-end test of the portal, in Debian's Chromium driven by
// playwright-core. Started by run.sh against a real `factorychain up` with a
// private nats-server. Screenshots go to ../artifacts/e2e/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const PORTAL = process.env.PORTAL_URL;
const GRPC = process.env.GRPC_URL;
const BIN = process.env.FACTORYCHAIN_BIN;
// One folder per deployment shape (e2e/run.sh runs the suite against each).
const SHOTS = new URL(`../artifacts/e2e/${process.env.E2E_SHAPE ?? "one-process"}/`, import.meta.url).pathname;
mkdirSync(SHOTS, { recursive: true });

function push(token, value, machine = "press-1") {
  return execFileSync(BIN, ["push", "--server", GRPC, "--token", token, "--machine", machine, "--metric", "temperature", "--value", String(value), "--unit", "Cel"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

test("sign up, create a device, watch a live value, export CSV, revoke the token", async () => {
  assert.ok(PORTAL && GRPC && BIN, "run through e2e/run.sh");
  const browser = await launch();
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1024, height: 768 } });
  const page = await context.newPage();
  try {
    // Sign up (the company name is hostile on purpose: it must come back escaped).
    const email = `owner-${Date.now()}@e2e.example`;
    await page.goto(`${PORTAL}/signup`);
    await page.fill('input[name="company"]', "E2E Works <script>window.pwned=1</script>");
    await page.selectOption('select[name="plan"]', "starter");
    await page.fill('input[name="name"]', "Kim Owner");
    await page.fill('input[name="email"]', email);
    await page.fill('input[name="password"]', "correct horse battery staple");
    await Promise.all([page.waitForURL(`${PORTAL}/`), page.click('button[type="submit"]')]);
    await page.screenshot({ path: `${SHOTS}01-dashboard-empty.png` });
    assert.equal(await page.evaluate(() => window.pwned), undefined, "no script injection");

    // Create a device; its token is shown once.
    await page.goto(`${PORTAL}/devices`);
    await page.fill('form[action="/devices"] input[name="name"]', "press line 1");
    await page.click('form[action="/devices"] button[type="submit"]');
    const token = (await page.textContent("#device-token")).trim();
    assert.match(token, /^fcd_d_[0-9a-f]{16}_[0-9a-f]{64}$/);
    await page.screenshot({ path: `${SHOTS}02-device-token.png` });
    await page.goto(`${PORTAL}/devices`);
    assert.equal(await page.locator("#device-token").count(), 0, "the token is shown only once");
    assert.equal(await page.locator("tr[data-device]").count(), 1);

    // Push with the token over gRPC, then watch the machine page update live.
    push(token, 21.5);
    await page.goto(`${PORTAL}/machines/press-1`);
    await page.waitForSelector('#live-table[data-connected="open"]', { timeout: 10000 });
    const cell = page.locator('tr[data-metric="temperature"] [data-role="value"]');
    assert.equal((await cell.textContent()).trim(), "21.5");
    push(token, 42.25);
    await page.waitForFunction(() => document.querySelector('tr[data-metric="temperature"] [data-role="value"]')?.textContent.trim() === "42.25", null, { timeout: 10000 });
    await page.screenshot({ path: `${SHOTS}03-machine-live.png` });

    // The dashboard shows the machine as running.
    await page.goto(`${PORTAL}/`);
    assert.equal(await page.locator('[data-machine="press-1"] .dot.running').count(), 1);
    await page.screenshot({ path: `${SHOTS}04-dashboard.png` });

    // Series explorer and CSV export.
    await page.goto(`${PORTAL}/explore?series=press-1%2Ftemperature&range=1h&step=raw`);
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export-csv")]);
    const csv = readFileSync(await download.path(), "utf8");
    assert.match(csv, /^timestamp_ms,timestamp_utc,value,quality,unit\n/);
    assert.match(csv, /,21\.5,1,Cel\n/);
    assert.match(csv, /,42\.25,1,Cel\n/);
    await page.screenshot({ path: `${SHOTS}05-explorer.png` });

    // Korean labels.
    await page.goto(`${PORTAL}/lang/ko`);
    await page.goto(`${PORTAL}/devices`);
    assert.ok((await page.textContent("header")).includes("디바이스"));
    await page.screenshot({ path: `${SHOTS}06-devices-ko.png` });

    // Revoke the token: the device's next push is refused.
    await Promise.all([page.waitForURL(`${PORTAL}/devices`), page.click('tr[data-device] form[action$="/revoke"] button')]);
    assert.ok((await page.textContent("tr[data-device]")).includes("폐기됨"));
    assert.throws(() => push(token, 1), (e) => /Unauthenticated/.test(String(e.stderr)), "a revoked token is refused");
    await page.screenshot({ path: `${SHOTS}07-revoked.png` });

    // Invite a teammate, then withdraw the invitation in place: htmx swaps the row out without a reload.
    await page.goto(`${PORTAL}/users`);
    await page.fill('form[action="/users/invite"] input[name="email"]', "lee@e2e.example");
    await page.click('form[action="/users/invite"] button[type="submit"]');
    assert.match(await page.textContent("#invite-link"), /\/invite\/[0-9a-f]{64}$/);
    await page.goto(`${PORTAL}/users`);
    assert.equal(await page.locator("#invitations tbody tr").count(), 1);
    await page.evaluate(() => { window.sameDocument = true; });
    await page.click('#invitations form[action$="/withdraw"] button');
    await page.waitForFunction(() => document.querySelectorAll("#invitations tbody tr").length === 0, null, { timeout: 10000 });
    assert.equal(await page.evaluate(() => window.sameDocument), true, "the row went away without a page load");
    await page.screenshot({ path: `${SHOTS}08-invitation-withdrawn.png` });

    // The hostile company name never executed and the page still works.
    assert.equal(await page.evaluate(() => window.pwned), undefined);
  } catch (e) {
    await page.screenshot({ path: `${SHOTS}failure.png` }).catch(() => {});
    throw e;
  } finally {
    await browser.close();
  }
});

async function signUp(page, company) {
  await page.goto(`${PORTAL}/signup`);
  await page.fill('input[name="company"]', company);
  await page.selectOption('select[name="plan"]', "growth");
  await page.fill('input[name="name"]', `${company} owner`);
  await page.fill('input[name="email"]', `owner-${Date.now()}-${Math.random().toString(16).slice(2)}@e2e.example`);
  await page.fill('input[name="password"]', "correct horse battery staple");
  await Promise.all([page.waitForURL(`${PORTAL}/`), page.click('button[type="submit"]')]);
  await page.goto(`${PORTAL}/partners`);
  const org = (await page.textContent("#org-id")).trim();
  await page.goto(`${PORTAL}/api-keys`);
  await page.fill('form[action="/api-keys"] input[name="name"]', "cli");
  await page.selectOption('form[action="/api-keys"] select[name="role"]', "operator");
  await page.click('form[action="/api-keys"] button[type="submit"]');
  const key = (await page.textContent("#api-key")).trim();
  return { org, key };
}

function fc(key, args) {
  return execFileSync(BIN, args, { encoding: "utf8", env: { ...process.env, FC_PORTAL: PORTAL, FC_API_KEY: key }, stdio: ["ignore", "pipe", "pipe"] });
}

test("a buyer and its supplier share a design, deliver an order and settle it on the ledger", async () => {
  const browser = await launch();
  const buyerCtx = await browser.newContext({ acceptDownloads: true, viewport: { width: 1100, height: 900 } });
  const supplierCtx = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const buyer = await buyerCtx.newPage();
  const supplier = await supplierCtx.newPage();
  const dir = execFileSync("mktemp", ["-d"], { encoding: "utf8" }).trim();
  try {
    const b = await signUp(buyer, "Hanbit Motors");
    const s = await signUp(supplier, "Daehan Precision");
    // Partnership: the buyer asks, the supplier's owner accepts.
    await buyer.goto(`${PORTAL}/partners`);
    await buyer.fill('form[action="/partners"] input[name="supplier_id"]', s.org);
    await Promise.all([buyer.waitForURL(`${PORTAL}/partners`), buyer.click('form[action="/partners"] button')]);
    await supplier.goto(`${PORTAL}/partners`);
    await Promise.all([supplier.waitForURL(`${PORTAL}/partners`), supplier.click('#buyers form[action$="/accept"] button')]);
    // Keys are made on each company's own machine; the design is encrypted there.
    fc(b.key, ["keys", "generate", "--out", `${dir}/buyer.key`, "--org", "Hanbit Motors", "--register"]);
    fc(s.key, ["keys", "generate", "--out", `${dir}/supplier.key`, "--org", "Daehan Precision", "--register"]);
    execFileSync("sh", ["-c", `printf 'ISO-10303-21; bracket BRK-7 rev C' > ${dir}/brk7.step`]);
    assert.match(fc(b.key, ["design", "push", `${dir}/brk7.step`, "--design", "BRK-7", "--to", s.org]), /published BRK-7 v1/);
    await supplier.goto(`${PORTAL}/designs`);
    assert.ok((await supplier.textContent("table.designs")).includes("BRK-7"));
    await supplier.screenshot({ path: `${SHOTS}10-supplier-designs.png` });

    // The buyer issues the order in the portal.
    await buyer.goto(`${PORTAL}/orders`);
    await buyer.fill('#new-order input[name="part"]', "Bracket, left");
    await buyer.fill('#new-order input[name="quantity"]', "200");
    await buyer.fill('#new-order input[name="unit_price_krw"]', "1500");
    await buyer.fill('#new-order input[name="due"]', new Date(Date.now() + 7 * 86400000).toISOString().slice(0, 10));
    await buyer.fill('#new-order input[name="allowed_defects"]', "1");
    await Promise.all([buyer.waitForURL(/\/orders\/t_[0-9a-f]{16}\/PO-/), buyer.click('#new-order button[type="submit"]')]);
    const orderUrl = buyer.url().replace(PORTAL, "");
    assert.equal((await buyer.textContent("#order-status")).trim(), "Issued");

    // The supplier accepts and ships.
    await supplier.goto(`${PORTAL}${orderUrl}`);
    await Promise.all([supplier.waitForURL(`${PORTAL}${orderUrl}`), supplier.click("#accept-order")]);
    await supplier.fill('#ship input[name="shipment_id"]', "SH-1");
    await supplier.fill('#ship input[name="quantity"]', "200");
    await Promise.all([supplier.waitForURL(`${PORTAL}${orderUrl}`), supplier.click('#ship button')]);
    assert.equal((await supplier.textContent("#order-status")).trim(), "In delivery");

    // The buyer receives, inspects and accepts: the payment instruction follows by itself.
    await buyer.goto(`${PORTAL}${orderUrl}`);
    await Promise.all([buyer.waitForURL(`${PORTAL}${orderUrl}`), buyer.click('#shipments input[value="receive"] ~ button')]);
    await buyer.fill('#shipments input[name="sampled"]', "8");
    await buyer.fill('#shipments input[name="defects"]', "1");
    await Promise.all([buyer.waitForURL(`${PORTAL}${orderUrl}`), buyer.click('#shipments input[value="inspect"] ~ button')]);
    await Promise.all([buyer.waitForURL(`${PORTAL}${orderUrl}`), buyer.click('#shipments input[value="accept"] ~ button')]);
    assert.equal((await buyer.textContent("#order-status")).trim(), "Delivered");
    await buyer.screenshot({ path: `${SHOTS}11-buyer-order-delivered.png` });
    await buyer.goto(`${PORTAL}/deliveries`);
    assert.ok((await buyer.textContent("table.deliveries")).includes("SH-1"));
    await buyer.goto(`${PORTAL}/statements`);
    assert.ok((await buyer.textContent("table.payments")).includes("₩300,000"));
    await buyer.screenshot({ path: `${SHOTS}12-buyer-statement.png` });

    // The supplier sees the same amount and verifies its entries against the signed checkpoint.
    await supplier.goto(`${PORTAL}/statements`);
    assert.ok((await supplier.textContent("table.payments")).includes("₩300,000"));
    await supplier.goto(`${PORTAL}/ledger`);
    await supplier.fill(`form[data-network="${b.org}"] input[name="index"]`, "1");
    await Promise.all([supplier.waitForURL(/\/ledger\?network=/), supplier.click(`form[data-network="${b.org}"] button`)]);
    assert.match(await supplier.textContent("#verify-result"), /✓/);
    await supplier.screenshot({ path: `${SHOTS}13-supplier-verify.png` });
    // And recomputes every amount from the entries alone.
    const vkey = (await supplier.textContent("#vkey")).trim();
    assert.match(fc(s.key, ["settlement", "replay", "--network", b.org, "--key", vkey]), /1 payments, 300000 KRW, equal to the service/);
  } catch (e) {
    await buyer.screenshot({ path: `${SHOTS}failure-buyer.png` }).catch(() => {});
    await supplier.screenshot({ path: `${SHOTS}failure-supplier.png` }).catch(() => {});
    throw e;
  } finally {
    await browser.close();
  }
});

test("a rule previewed and saved raises an alarm the live alarms page shows; a stop gets its reason on the OEE page", async () => {
  const browser = await launch();
  const page = await (await browser.newContext({ viewport: { width: 1024, height: 900 } })).newPage();
  try {
    await signUp(page, "Mill Works");
    await page.goto(`${PORTAL}/devices`);
    await page.fill('form[action="/devices"] input[name="name"]', "mill gateway");
    await page.click('form[action="/devices"] button[type="submit"]');
    const token = (await page.textContent("#device-token")).trim();
    // Forty minutes of history: running (80 °C) for twenty, silent for ten, running again.
    const M = 60000, now = Math.floor(Date.now() / M) * M, t0 = now - 40 * M;
    for (let i = 0; i <= 40; i++) {
      if (i > 20 && i < 30) continue;
      execFileSync(BIN, ["push", "--server", GRPC, "--token", token, "--machine", "mill-1", "--metric", "temperature", "--value", "80", "--unit", "Cel", "--timestamp-ms", String(t0 + i * M)], { stdio: "ignore" });
    }

    // The simple rule form: try the rule on the last 30 days (nothing above 90 °C yet); the
    // preview leaves it in the JSON editor, which saves it.
    await page.goto(`${PORTAL}/alarm-rules`);
    await page.fill('#quick-rule input[name="id"]', "mill-hot");
    await page.fill('#quick-rule input[name="machine"]', "mill-1");
    await page.fill('#quick-rule input[name="metric"]', "temperature");
    await page.selectOption('#quick-rule select[name="kind"]', "above");
    await page.fill('#quick-rule input[name="limit"]', "90");
    await page.selectOption('#quick-rule select[name="severity"]', "critical");
    await page.click('#quick-rule button[value="backtest"]');
    assert.equal(await page.getAttribute("#backtest", "data-alarms"), "0");
    assert.match(await page.inputValue('textarea[name="rule"]'), /"above": 90/);
    await page.screenshot({ path: `${SHOTS}10-rule-backtest.png` });
    await Promise.all([page.waitForURL(`${PORTAL}/alarm-rules`), page.click('form[action="/alarm-rules"] button[value="save"]')]);
    assert.equal(await page.locator('tr[data-rule="mill-hot"]').count(), 1);

    // The alarms page hears of the new alarm without a reload.
    await page.goto(`${PORTAL}/alarms`);
    await page.waitForSelector('#alarms-section[data-connected="open"]', { timeout: 10000 });
    assert.equal(await page.locator("tr[data-alarm]").count(), 0);
    push(token, 95.5, "mill-1");
    await page.waitForSelector('#alarms-section tr[data-alarm][data-state="raised"]', { timeout: 15000 });
    assert.match(await page.textContent("#alarms-section"), /95\.5/);
    await page.screenshot({ path: `${SHOTS}11-alarms-live.png` });
    await Promise.all([page.waitForURL(`${PORTAL}/alarms`), page.click('#alarms-section form[action$="/acknowledge"] button')]);
    assert.equal(await page.locator('tr[data-alarm][data-state="acknowledged"]').count(), 1);

    // OEE: the owner saves a setup whose shift began five minutes before the history.
    const start = new Date(t0 - 5 * M), hhmm = (d) => d.toISOString().slice(11, 16);
    const setup = {
      calendar: { utc_offset_min: 0, shifts: [{ name: "early", start: hhmm(start), end: hhmm(new Date(start.getTime() + 8 * 3600000)) }] },
      reasons: [{ code: "breakdown", label: "Breakdown", kind: "unplanned" }],
      machines: [{ machine: "mill-1", line: "M", state: { metric: "temperature", running_above: 50, no_data_ms: 120000 } }],
    };
    await page.goto(`${PORTAL}/oee`);
    assert.equal(await page.locator("#no-oee-setup").count(), 1);
    await page.fill('textarea[name="setup"]', JSON.stringify(setup));
    await Promise.all([page.waitForURL(`${PORTAL}/oee`), page.click('form[action="/oee/setup"] button[type="submit"]')]);
    await page.goto(`${PORTAL}/oee?date=${start.toISOString().slice(0, 10)}`);
    assert.equal(await page.locator('tr[data-machine="mill-1"][data-shift="early"]').count(), 1);
    assert.match(await page.textContent('[data-total="availability"]'), /%/);
    const stop = page.locator('form.stop[data-stop-machine="mill-1"]').last();
    await stop.locator('select[name="reason"]').selectOption("breakdown");
    await page.screenshot({ path: `${SHOTS}12-oee-stop.png` });
    await Promise.all([page.waitForURL(/\/oee\?date=/), stop.locator("button").click()]);
    assert.equal(await page.locator('#oee-pareto [data-reason="breakdown"]').count(), 1);
    await page.screenshot({ path: `${SHOTS}13-oee.png`, fullPage: true });
  } finally {
    await browser.close();
  }
});

test("a tablet-sized screen gets the whole dashboard without horizontal scrolling", async () => {
  const browser = await launch();
  const page = await browser.newPage({ viewport: { width: 800, height: 1280 } });
  try {
    await page.goto(`${PORTAL}/login`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `page is ${overflow}px wider than the screen`);
    await page.screenshot({ path: `${SHOTS}09-login-tablet.png` });
  } finally {
    await browser.close();
  }
});

test("the OpenAPI document validates as OpenAPI 3.1, and a client generated from it calls the API", async () => {
  const tools = process.env.OPENAPI_TOOLS;
  assert.ok(PORTAL && tools, "run through e2e/run.sh");
  const browser = await launch();
  let key;
  try {
    const page = await (await browser.newContext()).newPage();
    ({ key } = await signUp(page, "OpenAPI Client Co"));
  } finally {
    await browser.close();
  }
  const dir = mkdtempSync(join(tmpdir(), "fc-openapi-"));
  const res = await fetch(`${PORTAL}/api/openapi.json`);
  assert.equal(res.status, 200);
  writeFileSync(join(dir, "openapi.json"), await res.text());
  const run = (cmd, args) => execFileSync(cmd, args, { encoding: "utf8", cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  // A real validator, against the OpenAPI 3.1 schema.
  assert.match(run(join(tools, "openapi-spec-validator"), [join(dir, "openapi.json")]), /OK/);
  // A real generator; then the generated client against this portal.
  run(join(tools, "openapi-python-client"), ["generate", "--path", join(dir, "openapi.json"), "--meta", "none", "--output-path", join(dir, "fc_api")]);
  const check = new URL("openapi_client_check.py", import.meta.url).pathname;
  assert.match(run(join(tools, "python"), [check, dir, PORTAL, key]), /parsed as documented/);
  rmSync(dir, { recursive: true, force: true });
});

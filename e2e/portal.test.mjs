// Browser end-to-end test of the portal, in Debian's Chromium driven by
// playwright-core. Started by run.sh against a real `factorychain up` with a
// private nats-server. Screenshots go to ../artifacts/e2e/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const PORTAL = process.env.PORTAL_URL;
const GRPC = process.env.GRPC_URL;
const BIN = process.env.FACTORYCHAIN_BIN;
const SHOTS = new URL("../artifacts/e2e/", import.meta.url).pathname;
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

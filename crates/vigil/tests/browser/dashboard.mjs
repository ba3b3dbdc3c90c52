// Drives Vigil's web dashboard in Debian's headless Chromium (playwright-core, no
// browser download), as crates/vigil/tests/dashboard_browser.rs asks:
//
//   1. signs in as a doctor with a wrong password (refused), then the right one;
//   2. waits until the inbox's live stream is open and prints `ready`; the Rust test
//      then publishes a critical reading over MQTT;
//   3. sees the alert arrive on the page without a reload, tries a wrong read-back
//      (refused, the page says why), acknowledges with the right one;
//   4. opens the patient page and waits for its blood-pressure chart and its ECG strip
//      (zoomed: 50 mm/s, 20 mm/mV);
//      and opens the weekly follow-up report;
//   5. signs out, signs in as the institution's administrator, and reads the hospital
//      overview's figures; switches to English.
//
// Screenshots of the sign-in page, the inbox, the patient page, the overview and the
// weekly report go to
// $VIGIL_SCREENSHOTS. Every step prints a line; a failure exits non-zero with the reason.
// Environment: VIGIL_URL, VIGIL_USER, VIGIL_PASSWORD, VIGIL_ADMIN_USER, VIGIL_ADMIN_PASSWORD,
// VIGIL_READ_BACK, VIGIL_SCREENSHOTS,
// CHROMIUM (default /usr/bin/chromium).
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const url = env('VIGIL_URL');
const shots = env('VIGIL_SCREENSHOTS');
const readBack = env('VIGIL_READ_BACK');
mkdirSync(shots, { recursive: true });
const step = (what) => console.log(`step: ${what}`);

// Readable on a phone: nothing wider than the window (the ECG strip scrolls inside
// its own box).
async function fitsThePhone(page, what) {
  const [content, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  if (content > width + 1) throw new Error(`${what} is ${content} px wide on a ${width} px phone`);
  step(`${what} fits the phone (${content} px of ${width})`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync'],
});
try {
  // A phone-sized window: the dashboard must read on a phone.
  const context = await browser.newContext({ viewport: { width: 412, height: 915 }, locale: 'zh-CN' });
  const page = await context.newPage();
  // A script error on any page fails the run.
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.setDefaultTimeout(30_000);

  await page.goto(url + '/');
  await page.waitForSelector('#login-form');
  // zh-CN by default.
  const heading = await page.textContent('#login-form h1');
  if (heading !== '登录') throw new Error(`the sign-in page is not in Chinese: ${heading}`);
  step('sign-in page (zh-CN)');
  await page.fill('#login-user', env('VIGIL_USER'));
  await page.fill('#login-password', 'not the password');
  await page.click('#login-form button[type=submit]');
  await page.waitForFunction(() => document.getElementById('login-error')?.textContent.length > 0);
  step(`wrong password refused: ${await page.textContent('#login-error')}`);
  await page.screenshot({ path: join(shots, '1-sign-in.png'), fullPage: true });
  await page.fill('#login-password', env('VIGIL_PASSWORD'));
  await page.click('#login-form button[type=submit]');

  await page.waitForSelector('#live[data-state="live"]');
  await page.waitForSelector('#alerts[data-loaded]');
  step('inbox open, live stream connected');
  console.log('ready');

  // The alert arrives over the live stream (no reload).
  const card = page.locator('article.alert[data-severity="CRITICAL"]');
  await card.first().waitFor({ timeout: 60_000 });
  const value = (await card.first().locator('.value').textContent()).trim();
  step(`live alert arrived: ${value}`);
  if (value !== readBack) throw new Error(`the alert shows ${value}, expected ${readBack}`);
  const alertId = await card.first().getAttribute('data-alert-id');
  await fitsThePhone(page, 'the inbox');
  await page.screenshot({ path: join(shots, '2-inbox.png'), fullPage: true });

  // A wrong read-back is refused and the page says so.
  await card.first().locator('input.read-back').fill('129/112 mmHg');
  await card.first().locator('form.ack button').click();
  await card.first().locator('.status.error').waitFor();
  step(`wrong read-back refused: ${await card.first().locator('.status.error').textContent()}`);
  await card.first().locator('input.read-back').fill(readBack);
  await card.first().locator('form.ack button').click();
  await card.first().locator('.status.ok').waitFor();
  // Refreshed: the card now says who acknowledged it.
  await page.locator('article.alert[data-severity="CRITICAL"] .acked').first().waitFor();
  step(`acknowledged: ${await page.locator('article.alert .acked').first().textContent()}`);

  // The patient page with its chart.
  await page.locator('article.alert a.patient').first().click();
  await page.waitForSelector('svg.chart[data-type="bp"]');
  const points = await page.getAttribute('svg.chart[data-type="bp"]', 'data-points');
  step(`patient page: ${await page.textContent('#patient-title')}, bp chart with ${points} values`);
  if (!(Number(points) >= 1)) throw new Error(`the BP chart has ${points} values`);
  // Glucose with its meal context: each point marked, the legend naming them.
  await page.waitForSelector('svg.chart[data-type="glucose"]');
  const contexts = await page.$$eval('svg.chart[data-type="glucose"] circle[data-context]', (cs) => cs.map((c) => c.getAttribute('data-context')).sort());
  if (contexts.join(',') !== 'fasting,postprandial') throw new Error(`glucose contexts drawn: ${contexts}`);
  const legend = await page.textContent('figure:has(svg.chart[data-type="glucose"]) .legend');
  step(`glucose chart: ${contexts.length} values by context; legend: ${legend}`);
  await page.waitForSelector('#sum-bp');
  // The ECG strip on its paper: 10 s at 130 Hz, then zoomed (20 mm/mV).
  await page.waitForSelector('#ecg svg.ecg');
  const ecgPoints = Number(await page.getAttribute('#ecg svg.ecg', 'data-points'));
  if (ecgPoints < 1000) throw new Error(`the ECG strip has ${ecgPoints} points`);
  const width = Number(await page.getAttribute('#ecg svg.ecg', 'width'));
  await page.selectOption('#ecg-section select >> nth=0', '50');
  await page.selectOption('#ecg-section select >> nth=1', '20');
  const zoomed = Number(await page.getAttribute('#ecg svg.ecg', 'width'));
  if (!(zoomed > width)) throw new Error(`50 mm/s did not widen the strip (${width} → ${zoomed})`);
  step(`ECG strip: ${ecgPoints} samples drawn, ${width} px at 25 mm/s, ${zoomed} px at 50 mm/s`);
  await page.selectOption('#ecg-section select >> nth=0', '25');
  await page.selectOption('#ecg-section select >> nth=1', '10');
  await page.waitForFunction(() => document.getElementById('ecg').scrollLeft > 0);
  await fitsThePhone(page, 'the patient page');
  await page.screenshot({ path: join(shots, '3-patient.png'), fullPage: true });
  // The weekly report opens in a tab of its own, printable.
  const [report] = await Promise.all([context.waitForEvent('page'), page.click('#report-link')]);
  await report.waitForSelector('#report-title');
  step(`weekly report: ${await report.textContent('#report-title')}`);
  await report.screenshot({ path: join(shots, '5-report.png'), fullPage: true });
  await report.close();

  // Back in the inbox, the alert resolved from its card with a note of what was done:
  // it leaves the open alerts.
  await page.evaluate(() => { location.hash = '#/inbox'; });
  const open = page.locator(`article.alert[data-alert-id="${alertId}"]`);
  await open.waitFor();
  await open.locator('input.note').fill('called the patient; dose adjusted');
  await open.locator('form.resolve button').click();
  await open.locator('.status.ok').waitFor();
  await page.waitForFunction(
    (id) => document.getElementById('alerts')?.hasAttribute('data-loaded') && !document.querySelector(`article.alert[data-alert-id="${id}"]`),
    alertId,
    { timeout: 30_000 },
  );
  step('resolved from the inbox with a note: the alert left the open alerts');

  // Signed out, then the institution's administrator: the hospital overview.
  await page.click('#signout');
  await page.waitForSelector('#login-form');
  await page.fill('#login-user', env('VIGIL_ADMIN_USER'));
  await page.fill('#login-password', env('VIGIL_ADMIN_PASSWORD'));
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#overview-title');
  const patients = await page.textContent('#kpi-patients .big');
  const bp = await page.textContent('#kpi-bp .big');
  step(`overview: ${patients} patients, BP control ${bp}, ack ${await page.textContent('#kpi-ack .big')}, gateways online ${await page.textContent('#kpi-gateways .big')}, devices reporting ${await page.textContent('#kpi-devices .big')}`);
  if ((await page.textContent('#kpi-gateways .big')) !== '100%') throw new Error('the gateway that just sent is not online');
  if (patients !== '1' || bp !== '0%') throw new Error(`unexpected overview figures: ${patients} patients, BP control ${bp}`);
  await fitsThePhone(page, 'the overview');
  await page.screenshot({ path: join(shots, '4-overview.png'), fullPage: true });

  // The page in English, at a click.
  await page.click('#lang');
  await page.waitForFunction(() => document.getElementById('overview-title')?.textContent.startsWith('Overview'));
  step('switched to English');
  // Refusals the run provokes (401 before signing in and for the wrong password, 422
  // for the wrong read-back) are logged by the browser as failed loads; any other
  // error is a fault.
  const faults = errors.filter((e) => !/Failed to load resource: .* status of (401|422)/.test(e));
  if (faults.length) throw new Error(`errors on the page: ${faults.join('; ')}`);
  console.log('done');
} finally {
  await browser.close();
}

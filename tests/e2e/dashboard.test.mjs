// The admin dashboard in headless Chromium against the seeded ledger: the
// numbers on the page are the seed's, sign-in works by link and by form,
// the layout holds at 1280x800 and on a phone, and the page logs no errors
// and breaks no CSP rule. Screenshots go to tests/out/.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startServer, repoRoot } from './lib/server.mjs';
import { seedRows, writeSeed, newestFirst, expectedSummary, expectedContents } from './lib/seed.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = path.join(repoRoot, 'tests/out');
const rows = seedRows();

function watch(page) {
  const w = { errors: [], console: [] };
  page.on('pageerror', (e) => w.errors.push(String((e && e.stack) || e)));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') w.console.push(`${m.type()}: ${m.text()}`);
  });
  return w;
}

async function newPage(browser, viewport) {
  const context = await browser.newContext({ viewport });
  await context.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const page = await context.newPage();
  return { context, page, w: watch(page) };
}

async function assertClean(page, w) {
  assert.deepEqual(w.errors, [], 'no uncaught errors');
  assert.deepEqual(w.console, [], 'no console errors or warnings');
  assert.deepEqual(await page.evaluate(() => window.__violations), [], 'no CSP violations');
}

describe('dashboard in Chromium', () => {
  let srv;
  let browser;
  let token;
  before(async () => {
    fs.mkdirSync(OUT, { recursive: true });
    const first = await startServer({ files: { 'a.html': '<p>a</p>' } });
    assert.equal((await first.stop()).code, 0, first.log());
    writeSeed(first, rows);
    srv = await startServer({ root: first.root, stateDir: first.stateDir });
    token = srv.adminToken();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      timeout: 60000,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  after(async () => {
    await browser?.close();
    assert.equal((await srv.stop()).code, 0, srv.log());
  });

  test('signed in by link: the seeded numbers, chart, tables and a receipt', async () => {
    const { context, page, w } = await newPage(browser, { width: 1280, height: 800 });
    await page.goto(`${srv.adminUrl}/#token=${token}`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 15000 });
    assert.equal(new URL(page.url()).hash, '', 'the token leaves the address bar');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('receiptd-admin-token')), token);

    const want = expectedSummary(rows);
    const num = (id) => page.$eval(`#${id}`, (e) => ({ value: e.dataset.value, text: e.textContent }));
    for (const [id, key] of [['n-deliveries', 'deliveries'], ['n-confirmed', 'confirmed'], ['n-corrupted', 'corrupted'],
      ['n-pending', 'pending'], ['n-bound', 'bound']]) {
      const got = await num(id);
      assert.equal(got.value, String(want[key]), id);
      assert.equal(got.text, want[key].toLocaleString('en-US'), id);
    }
    const rate = await num('n-rate');
    assert.equal(Number(rate.value), want.confirmation_rate);
    assert.equal(rate.text, (want.confirmation_rate * 100).toFixed(1) + '%');

    // By kind: a row for every kind with deliveries, with its own rate.
    const kinds = await page.$$eval('#kinds tbody tr', (trs) => trs.map((tr) => ({
      kind: tr.dataset.kind,
      deliveries: tr.querySelector('[data-field=deliveries]').textContent,
      confirmed: tr.querySelector('[data-field=confirmed]').textContent,
      rate: Number(tr.querySelector('[data-field=rate]').dataset.value),
    })));
    assert.deepEqual(kinds, Object.entries(want.kinds).filter(([, k]) => k.deliveries > 0).map(([kind, k]) => ({
      kind, deliveries: String(k.deliveries), confirmed: String(k.confirmed), rate: k.confirmation_rate,
    })));

    const contents = await page.$$eval('#contents tbody tr', (trs) => trs.map((tr) => ({
      content: tr.dataset.content,
      sha256: tr.dataset.sha256,
      deliveries: tr.querySelector('[data-field=deliveries]').textContent,
      confirmed: tr.querySelector('[data-field=confirmed]').textContent,
      corrupted: tr.querySelector('[data-field=corrupted]').textContent,
      rate: Number(tr.querySelector('[data-field=rate]').dataset.value),
      median: tr.querySelector('[data-field=median]').dataset.value,
      p95: tr.querySelector('[data-field=p95]').dataset.value,
    })));
    assert.deepEqual(contents, expectedContents(rows).map((c) => ({
      content: c.content, sha256: c.sha256, deliveries: String(c.deliveries), confirmed: String(c.confirmed),
      corrupted: String(c.corrupted), rate: c.confirmation_rate, median: String(c.median_ms), p95: String(c.p95_ms),
    })));

    const bars = await page.$$eval('#chart svg rect.bar', (r) => r.length);
    assert.ok(bars > 10, `chart bars: ${bars}`);
    assert.equal(await page.$$eval('#chart svg polyline', (p) => p.length), 2);

    const ids = await page.$$eval('#deliveries tbody tr', (trs) => trs.map((tr) => tr.dataset.delivery));
    assert.deepEqual(ids, newestFirst(rows).slice(0, 50).map((r) => r.delivery));
    await page.click('#more');
    await page.waitForFunction((n) => document.querySelectorAll('#deliveries tbody tr').length === n, rows.length);
    assert.equal(await page.isHidden('#more'), true);

    // The kind filter.
    await page.selectOption('select[name=kind]', 'download');
    await page.click('#search button[type=submit]');
    const downloads = newestFirst(rows.filter((r) => r.kind === 'download'));
    await page.waitForFunction((n) => document.querySelectorAll('#deliveries tbody tr').length === n, downloads.length);
    assert.deepEqual(await page.$$eval('#deliveries tbody tr', (trs) => trs.map((tr) => tr.dataset.delivery)),
      downloads.map((r) => r.delivery));
    await page.selectOption('select[name=kind]', '');

    // Search, then open a confirmed delivery and read its receipt.
    await page.selectOption('select[name=status]', 'corrupted');
    await page.click('#search button[type=submit]');
    const corrupted = newestFirst(rows.filter((r) => r.status === 'corrupted'));
    await page.waitForFunction((n) => document.querySelectorAll('#deliveries tbody tr').length === n, corrupted.length);
    assert.deepEqual(await page.$$eval('#deliveries tbody tr', (trs) => trs.map((tr) => tr.dataset.status)),
      corrupted.map(() => 'corrupted'));
    await page.click(`#deliveries tbody tr[data-delivery="${corrupted[0].delivery}"]`);
    await page.waitForSelector('#detail:not([hidden])');
    assert.equal(await page.textContent('#detail-receipt'), corrupted[0].receipt);
    assert.match(await page.textContent('#detail-receipt-payload'), /"delivery"/);
    await page.selectOption('select[name=status]', '');
    await page.click('#search button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('#deliveries tbody tr').length === 50);

    await page.screenshot({ path: path.join(OUT, 'dashboard.png'), fullPage: true });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling at 1280 px (${overflow})`);
    await assertClean(page, w);
    await context.close();
  });

  test('on a phone: one column, no horizontal scrolling', async () => {
    const { context, page, w } = await newPage(browser, { width: 390, height: 844 });
    await page.goto(`${srv.adminUrl}/#token=${token}`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 15000 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling at 390 px (${overflow})`);
    assert.equal(await page.$eval('#n-deliveries', (e) => e.dataset.value), String(rows.length));
    await page.screenshot({ path: path.join(OUT, 'dashboard-phone.png'), fullPage: true });
    await assertClean(page, w);
    await context.close();
  });

  test('signed in by form; a wrong token is refused', async () => {
    const { context, page, w } = await newPage(browser, { width: 1280, height: 800 });
    await page.goto(`${srv.adminUrl}/`);
    await page.waitForSelector('#signin:not([hidden])');
    assert.equal(await page.isHidden('#app'), true);
    // The 401 is expected here; Chromium reports the failed fetch in the console.
    await page.fill('#token', 'x'.repeat(43));
    await page.click('#signin-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('signin-error').textContent !== '');
    assert.equal(await page.isHidden('#app'), true);
    await page.fill('#token', token);
    await page.click('#signin-form button[type=submit]');
    await page.waitForSelector('body[data-ready="true"]');
    assert.equal(await page.$eval('#n-deliveries', (e) => e.dataset.value), String(rows.length));
    await page.click('#signout');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('receiptd-admin-token')), null);
    w.console = w.console.filter((m) => !/status of 401/.test(m));
    await assertClean(page, w);
    await context.close();
  });
});

// A real site in real Chromium (docs/agent.md, docs/protocol.md "Which
// requests are deliveries"): one page with five images, a stylesheet, a
// script and a PDF. One page view is one delivery, confirmed; the images,
// the stylesheet and the script are none; a reload, a new tab and a link to
// the page are each a new confirmed delivery; a download through the agent
// is confirmed with the PDF's digest and arrives intact, and one whose
// bytes a proxy altered is recorded corrupted.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, freePort, repoRoot } from './lib/server.mjs';
import { launch, newContext, watch, recorded } from './lib/browser.mjs';
import { SITE, PDF, sha256, b64u, startAlteringProxy } from './lib/site.mjs';

const PDF_SHA = b64u(sha256(PDF));

function deliveryOf(response) {
  const id = response.headers()['receipt-delivery'];
  assert.match(id ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  return id;
}

/** The row of delivery id once its status is final (confirmed or corrupted). */
async function settled(srv, id) {
  const row = await srv.until(() => srv.query(
    `SELECT id, path, status, client, kind, hex(sha256) AS sha, hex(received_sha256) AS received,
       received_size, size, delivered_size
     FROM deliveries WHERE id = '${id}' AND status IN ('confirmed', 'corrupted')`)[0], 15000);
  assert.ok(row, `delivery ${id} was not confirmed:\n${srv.log()}`);
  return row;
}

/** Every row, once the writer has caught up with what the browser did. */
async function allRows(srv) {
  // The rows of a page's subresources would have been queued before its
  // confirmation, which is durable by now: a short wait covers the rest.
  await new Promise((r) => setTimeout(r, 300));
  return srv.query('SELECT id, path, kind, status, client FROM deliveries ORDER BY id');
}

const hex = (b64url) => Buffer.from(b64url, 'base64url').toString('hex').toUpperCase();

function assertQuiet(w, what = 'page') {
  assert.deepEqual(w.errors, [], `${what}: uncaught errors`);
  assert.deepEqual(w.unexpected(), [], `${what}: console messages`);
}

/** Waits until the page's images, stylesheet and script are in. */
async function assertSubresourcesLoaded(pg) {
  await pg.waitForLoadState('load');
  const state = await pg.evaluate(() => ({
    images: [...document.images].map((i) => i.complete && i.naturalWidth),
    app: document.documentElement.dataset.app,
    colour: getComputedStyle(document.querySelector('h1')).color,
  }));
  assert.deepEqual(state.images, [8, 8, 8, 8, 8], 'five images shown');
  assert.equal(state.app, 'ran', 'the script ran');
  assert.equal(state.colour, 'rgb(34, 68, 102)', 'the stylesheet applies');
}

describe('a real site in Chromium', () => {
  let browser;
  before(async () => {
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
  });

  /** Runs fn(srv, context) against a receiptd serving the site; stops both. */
  async function onSite(fn, opts = {}) {
    const srv = await startServer({ files: SITE, ...opts });
    const context = await newContext(browser);
    try {
      await fn(srv, context);
    } finally {
      await context.close();
      assert.equal((await srv.stop()).code, 0, srv.log());
    }
  }

  test('one page view is one delivery, confirmed; images, style and script are none', async () => {
    await onSite(async (srv, context) => {
        const pg = await context.newPage();
        const w = watch(pg);
        const res = await pg.goto(srv.url + '/');
        const id = deliveryOf(res);
        await assertSubresourcesLoaded(pg);
        const row = await settled(srv, id);
        assert.equal(row.status, 'confirmed');
        assert.equal(row.path, '/index.html');
        assert.equal(row.kind, 'page');
        const rows = await allRows(srv);
        assert.deepEqual(rows.map((r) => [r.path, r.kind, r.status]), [['/index.html', 'page', 'confirmed']]);
        // The subresources were served, with their validators, and no receipt headers.
        const img = await (await context.request.get(srv.url + '/img/1.png', {
          headers: { 'Sec-Fetch-Dest': 'image', 'Sec-Fetch-Mode': 'no-cors', 'Sec-Fetch-Site': 'same-origin' },
        }));
        assert.equal(img.status(), 200);
        assert.ok(img.headers().etag);
        assert.equal(img.headers()['receipt-delivery'], undefined);
        assert.equal((await recorded(pg)).confirmed.length, 1);
        assertQuiet(w);
    });
  });

  test('a reload, a new tab and a link to the same page: each a new confirmed delivery', async () => {
    await onSite(async (srv, context) => {
        const pg = await context.newPage();
        const w = watch(pg);
        const first = await settled(srv, deliveryOf(await pg.goto(srv.url + '/index.html')));
        await pg.waitForLoadState('networkidle');

        const reloaded = await settled(srv, deliveryOf(await pg.reload()));
        await pg.waitForLoadState('networkidle');

        const tab = await context.newPage();
        const w2 = watch(tab);
        const inTab = await settled(srv, deliveryOf(await tab.goto(srv.url + '/index.html')));
        await tab.waitForLoadState('networkidle');

        const [nav] = await Promise.all([
          pg.waitForNavigation(),
          pg.click('#again'),
        ]);
        const linked = await settled(srv, deliveryOf(nav));
        await pg.waitForLoadState('networkidle');

        const views = [first, reloaded, inTab, linked];
        assert.equal(new Set(views.map((r) => r.id)).size, 4, 'four deliveries');
        for (const r of views) {
          assert.equal(r.status, 'confirmed');
          assert.equal(r.kind, 'page');
          assert.equal(r.client, first.client, 'one browser, one client');
        }
        const rows = await allRows(srv);
        assert.equal(rows.length, 4, JSON.stringify(rows));
        assertQuiet(w);
        assertQuiet(w2, 'new tab');
    });
  });

  test('a download link: one delivery, confirmed with the PDF\'s digest; the file arrives intact', async () => {
    await onSite(async (srv, context) => {
        const pg = await context.newPage();
        const w = watch(pg);
        const page = await settled(srv, deliveryOf(await pg.goto(srv.url + '/')));
        await pg.waitForLoadState('networkidle');
        const fetched = pg.waitForResponse((r) => r.url().endsWith('/docs/report.pdf') &&
          r.request().method() === 'GET');
        const [download] = await Promise.all([pg.waitForEvent('download'), pg.click('#download')]);
        const id = deliveryOf(await fetched);
        assert.equal(download.suggestedFilename(), 'report.pdf');
        const got = fs.readFileSync(await download.path());
        assert.ok(got.equals(PDF), 'the downloaded bytes are the PDF');

        const row = await settled(srv, id);
        assert.equal(row.status, 'confirmed');
        assert.equal(row.kind, 'download');
        assert.equal(row.path, '/docs/report.pdf');
        assert.equal(row.sha, hex(PDF_SHA));
        assert.equal(row.received, hex(PDF_SHA), 'confirmed with the digest of the bytes received');
        assert.equal(row.received_size, PDF.length);
        assert.equal(row.client, page.client);
        // The agent's own confirmation of the page stays the page's: the
        // download's answer goes to its link, not to document.
        const { confirmed } = await recorded(pg);
        assert.deepEqual(confirmed.map((c) => c.delivery), [page.id]);
        const rows = await allRows(srv);
        assert.deepEqual(rows.map((r) => [r.kind, r.status]), [['page', 'confirmed'], ['download', 'confirmed']]);
        assertQuiet(w);
    });
  });

  test('data-receipt-open: fetched, confirmed, opened in a new tab', async () => {
    await onSite(async (srv, context) => {
        const pg = await context.newPage();
        const w = watch(pg);
        await settled(srv, deliveryOf(await pg.goto(srv.url + '/')));
        await pg.waitForLoadState('networkidle');
        const fetched = pg.waitForResponse((r) => r.url().endsWith('/docs/report.pdf') &&
          r.request().method() === 'GET');
        const [popup] = await Promise.all([context.waitForEvent('page'), pg.click('#open')]);
        const id = deliveryOf(await fetched);
        await popup.waitForURL(/^blob:/, { timeout: 15000 });
        const row = await settled(srv, id);
        assert.equal(row.status, 'confirmed');
        assert.equal(row.kind, 'download');
        assert.equal(row.received, hex(PDF_SHA));
        assertQuiet(w);
    });
  });

  test('a download whose bytes a proxy altered is recorded corrupted', async () => {
    // The browser talks to receiptd through a proxy on loopback that flips
    // one byte in the middle of the PDF; the page itself passes untouched.
    let proxy = null;
    const port = await freePort();
    const proxyPort = await freePort();
    const srv = await startServer({
      files: SITE, port, args: ['--public-url', `http://127.0.0.1:${proxyPort}`],
    });
    const context = await newContext(browser);
    try {
      proxy = await startAlteringProxy(srv.url, '/docs/report.pdf', 100000, proxyPort);
      const pg = await context.newPage();
      const w = watch(pg);
      const page = await settled(srv, deliveryOf(await pg.goto(proxy.url + '/')));
      assert.equal(page.status, 'confirmed', 'the page passed intact');
      await pg.waitForLoadState('networkidle');
      const fetched = pg.waitForResponse((r) => r.url().endsWith('/docs/report.pdf') &&
        r.request().method() === 'GET');
      const [download] = await Promise.all([pg.waitForEvent('download'), pg.click('#download')]);
      const id = deliveryOf(await fetched);
      const got = fs.readFileSync(await download.path());
      assert.equal(got.length, PDF.length);
      assert.ok(!got.equals(PDF), 'the proxy altered the file');
      assert.deepEqual(proxy.altered, ['/docs/report.pdf']);

      const row = await settled(srv, id);
      assert.equal(row.status, 'corrupted');
      assert.equal(row.kind, 'download');
      assert.equal(row.sha, hex(PDF_SHA), 'the version is the stored PDF');
      assert.equal(row.received, sha256(got).toString('hex').toUpperCase(),
        'the digest of what arrived');
      assertQuiet(w);
    } finally {
      await context.close();
      await proxy?.close();
      assert.equal((await srv.stop()).code, 0, srv.log());
    }
  });

  test('the dashboard after one visit: 1 delivery, 100 % confirmed, a page view', async () => {
    // The picture docs/api.md shows: RECEIPT_DASHBOARD_SHOT=PATH writes it
    // there as well as to tests/out/.
    const srv = await startServer({ files: SITE });
    const visitor = await newContext(browser);
    const admin = await browser.newContext({ viewport: { width: 1100, height: 720 } });
    try {
      const pg = await visitor.newPage();
      await settled(srv, deliveryOf(await pg.goto(srv.url + '/')));
      await assertSubresourcesLoaded(pg);
      await allRows(srv);

      const dash = await admin.newPage();
      const w = watch(dash);
      await dash.goto(`${srv.adminUrl}/#token=${srv.adminToken()}`);
      await dash.waitForSelector('body[data-ready="true"]', { timeout: 15000 });
      const value = (id) => dash.$eval(`#${id}`, (e) => [e.dataset.value, e.textContent]);
      assert.deepEqual(await value('n-deliveries'), ['1', '1']);
      assert.deepEqual(await value('n-confirmed'), ['1', '1']);
      assert.deepEqual(await value('n-pending'), ['0', '0']);
      assert.deepEqual(await value('n-rate'), ['1', '100.0%']);
      const kinds = await dash.$$eval('#kinds tbody tr', (trs) => trs.map((tr) => [tr.dataset.kind,
        tr.querySelector('[data-field=deliveries]').textContent, tr.querySelector('[data-field=rate]').textContent]));
      assert.deepEqual(kinds, [['page', '1', '100.0%']]);
      const out = path.join(repoRoot, 'tests/out');
      fs.mkdirSync(out, { recursive: true });
      const shot = await dash.screenshot({ path: path.join(out, 'dashboard-one-visit.png') });
      if (process.env.RECEIPT_DASHBOARD_SHOT) fs.writeFileSync(process.env.RECEIPT_DASHBOARD_SHOT, shot);
      assert.deepEqual(w.errors, []);
    } finally {
      await visitor.close();
      await admin.close();
      assert.equal((await srv.stop()).code, 0, srv.log());
    }
  });
});

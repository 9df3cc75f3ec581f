// The browser agent (web/agent.js) in real headless Chromium against a real
// receiptd on loopback: confirmation, client identity, injection edge cases,
// a strict CSP, retries across an outage, the saved page opened twice, the
// receipt:confirmed event and the insecure-origin refusal.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { startServer, repoRoot } from './lib/server.mjs';
import { fetchJwks, verifyReceipt } from './lib/client.mjs';
import {
  launch, newContext, watch, clientIdOf, recorded, pendingIn, INSECURE_HOST,
} from './lib/browser.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const CONFIRM_WITHIN_MS = 5000;

const page = (body) => `<!doctype html><html><head><meta charset="utf-8"><title>t</title></head><body>${body}</body></html>`;

const FILES = {
  'a.html': page('<h1>Terms</h1><p>Version 3.</p>'),
  'b.html': page('<h1>Notice</h1>'),
  'event.html': page('<h1>Event</h1>'),
  // No </body> at all: the element goes at the very end.
  'nobody.html': '<!doctype html><html><head><title>t</title></head><p>Cut short',
  // </body> in a comment, a script string and a template; the last one,
  // in upper case, is the real end of the body.
  'several.html': '<!doctype html><html><head><title>t</title></head><body>\n' +
    '<!-- the layout closes with </body> -->\n<p>Text</p>\n' +
    '<script>window.marker = "</body>";</script>\n' +
    '<template></body></template>\n</BODY>\n</html>\n',
};

/** Polls the ledger until the delivery is confirmed; returns [row, ms]. */
async function confirmedRow(srv, id, since, limitMs = 15000) {
  const row = await srv.until(() => srv.query(
    `select id, status, client from deliveries where id = '${id}' and status = 'confirmed'`)[0], limitMs);
  return [row, Date.now() - since];
}

function deliveryOf(response) {
  const id = response.headers()['receipt-delivery'];
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  return id;
}

/** The client ID of the key a page's agent sent (request events may lag). */
async function browserClient(w, i = 0) {
  for (let n = 0; n < 250 && w.clientKeys.length <= i; n++) await sleep(20);
  assert.ok(w.clientKeys.length > i, 'no plug-in request seen');
  return clientIdOf(w.clientKeys[i]);
}

/** Opens url in page; asserts the delivery is confirmed within 5 s. */
async function openConfirmed(srv, pg, url) {
  const t0 = Date.now();
  const id = deliveryOf(await pg.goto(url));
  const [row, ms] = await confirmedRow(srv, id, t0);
  assert.ok(row, `delivery ${id} was not confirmed:\n${srv.log()}`);
  assert.ok(ms <= CONFIRM_WITHIN_MS, `confirmed after ${ms} ms`);
  return row;
}

/** Waits for the agent to settle its confirmations (the ledger row is
 * durable before the answer reaches the page). */
async function assertNothingPending(pg, message) {
  let left = await pendingIn(pg);
  for (let n = 0; n < 100 && left.length > 0; n++) {
    await sleep(30);
    left = await pendingIn(pg);
  }
  assert.deepEqual(left, [], message);
}

function assertQuiet(w, what = 'page') {
  assert.deepEqual(w.errors, [], `${what}: uncaught errors`);
  assert.deepEqual(w.unexpected(), [], `${what}: console messages`);
}

/** A page whose load event waits until the test calls release(). */
async function startSlowImageServer() {
  const waiting = [];
  let released = false;
  const server = http.createServer((req, res) => {
    const send = () => res.writeHead(204, { 'Cache-Control': 'no-store' }).end();
    if (released) send();
    else waiting.push(send);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}/slow.gif`;
  return {
    url,
    requested: async () => {
      for (let i = 0; i < 500 && waiting.length === 0; i++) await sleep(20);
      assert.ok(waiting.length > 0, 'the page did not ask for the slow image');
    },
    release() {
      released = true;
      waiting.splice(0).forEach((f) => f());
    },
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}

describe('browser agent in headless Chromium', () => {
  let browser;
  let srv;
  before(async () => {
    browser = await launch();
    srv = await startServer({ files: FILES });
  });
  after(async () => {
    await browser?.close();
    if (srv) assert.equal((await srv.stop()).code, 0, srv.log());
  });

  test('agent.js is served with an ETag and an hour of caching, under 16 KiB', async () => {
    const res = await fetch(srv.url + '/_receipt/agent.js');
    assert.equal(res.status, 200);
    const body = Buffer.from(await res.arrayBuffer());
    assert.ok(body.equals(fs.readFileSync(path.join(repoRoot, 'web/agent.js'))), 'served agent.js is the source');
    assert.ok(body.length < 16384, `agent.js has ${body.length} bytes`);
    assert.match(res.headers.get('content-type'), /^text\/javascript/);
    assert.equal(res.headers.get('cache-control'), 'public, max-age=3600');
    const etag = res.headers.get('etag');
    assert.ok(etag);
    const again = await fetch(srv.url + '/_receipt/agent.js', { headers: { 'If-None-Match': etag } });
    assert.equal(again.status, 304);
  });

  test('a page is confirmed within 5 s, by the browser\'s client ID', async () => {
    const context = await newContext(browser);
    try {
      const pg = await context.newPage();
      const w = watch(pg);
      const row = await openConfirmed(srv, pg, srv.url + '/a.html');
      assert.equal(row.client, await browserClient(w));
      assert.equal(w.clientKeys.length, 1);
      await assertNothingPending(pg);
      assertQuiet(w);
    } finally {
      await context.close();
    }
  });

  test('reload: a second delivery, same client ID; another context: another client ID', async () => {
    const one = await newContext(browser);
    const two = await newContext(browser);
    try {
      const pg = await one.newPage();
      const w = watch(pg);
      const first = await openConfirmed(srv, pg, srv.url + '/b.html');
      // The page was served without validators, so a plain reload fetches
      // it again: a new delivery, confirmed by the same client.
      await pg.waitForLoadState('networkidle');
      let t0 = Date.now();
      const res = await pg.reload();
      assert.equal(res.status(), 200);
      const again = deliveryOf(res);
      assert.notEqual(again, first.id);
      const [second, ms] = await confirmedRow(srv, again, t0);
      assert.ok(second && ms <= CONFIRM_WITHIN_MS, `after a reload: ${ms} ms`);
      assert.equal(second.client, first.client);
      await pg.waitForLoadState('networkidle');
      // A reload that bypasses the cache is one too.
      const cdp = await one.newCDPSession(pg);
      const fetched = pg.waitForResponse((r) => r.url() === srv.url + '/b.html');
      t0 = Date.now();
      await cdp.send('Page.reload', { ignoreCache: true });
      const third = deliveryOf(await fetched);
      assert.ok(![first.id, again].includes(third));
      const [row3, ms3] = await confirmedRow(srv, third, t0);
      assert.ok(row3 && ms3 <= CONFIRM_WITHIN_MS, `reload confirmed: ${ms3} ms`);
      assert.equal(row3.client, first.client);
      await browserClient(w, 2);
      assert.equal(new Set(w.clientKeys).size, 1, 'one key pair across loads');
      await assertNothingPending(pg);

      const other = await two.newPage();
      const w2 = watch(other);
      const fourth = await openConfirmed(srv, other, srv.url + '/b.html');
      assert.notEqual(fourth.client, first.client);
      assert.equal(fourth.client, await browserClient(w2));
      assertQuiet(w);
      assertQuiet(w2, 'second context');
    } finally {
      await one.close();
      await two.close();
    }
  });

  test('a page without </body> is confirmed', async () => {
    const context = await newContext(browser);
    try {
      const pg = await context.newPage();
      const w = watch(pg);
      await openConfirmed(srv, pg, srv.url + '/nobody.html');
      assert.equal(await pg.locator('script[src="/_receipt/agent.js"]').count(), 1);
      assertQuiet(w);
    } finally {
      await context.close();
    }
  });

  test('a page with several </body> strings in scripts and comments is confirmed', async () => {
    const context = await newContext(browser);
    try {
      const pg = await context.newPage();
      const w = watch(pg);
      await openConfirmed(srv, pg, srv.url + '/several.html');
      assert.equal(await pg.evaluate(() => window.marker), '</body>', 'the page\'s own script is intact');
      assert.equal(await pg.locator('script[src="/_receipt/agent.js"]').count(), 1);
      assert.equal(await pg.evaluate(() => document.querySelector('template').innerHTML), '',
        'nothing was injected into the template');
      assertQuiet(w);
    } finally {
      await context.close();
    }
  });

  test('a page under Content-Security-Policy: script-src \'self\' is confirmed', async () => {
    const csp = await startServer({
      files: { 'strict.html': page('<h1>Strict</h1><script>document.title = "inline ran";</script>') },
      args: ['--add-header', 'Content-Security-Policy:script-src \'self\''],
    });
    const context = await newContext(browser);
    try {
      const pg = await context.newPage();
      const w = watch(pg);
      const t0 = Date.now();
      const res = await pg.goto(csp.url + '/strict.html');
      assert.equal(res.headers()['content-security-policy'], 'script-src \'self\'');
      const [row, ms] = await confirmedRow(csp, deliveryOf(res), t0);
      assert.ok(row && ms <= CONFIRM_WITHIN_MS, `confirmed under CSP: ${ms} ms\n${csp.log()}`);
      // The policy is in force: the page's inline script was refused, and
      // that is the only violation.
      assert.equal(await pg.title(), 't');
      // The row is readable once its batch is committed, the agent's answer
      // comes once it is durable (pipelined commits), and the violation
      // event is dispatched asynchronously: wait for both before counting.
      const { violations, confirmed } = await csp.until(async () => {
        const r = await recorded(pg);
        return r.confirmed.length > 0 && r.violations.length > 0 ? r : null;
      }) ?? await recorded(pg);
      assert.equal(violations.length, 1, JSON.stringify(violations));
      assert.equal(violations[0].uri, 'inline');
      assert.equal(confirmed.length, 1);
      assert.deepEqual(w.errors, []);
      assert.deepEqual(w.unexpected([/^Executing inline script violates the following Content Security Policy/]), []);
    } finally {
      await context.close();
      await csp.stop();
    }
  });

  test('receiptd down when the confirmation is due, then up: confirmed after the next page load', async () => {
    // The page's load event waits for an image from a helper server, so the
    // test can stop receiptd after the agent has its plug-in data and before
    // it confirms. The confirmation then meets a closed port (a network
    // error) and stays in IndexedDB. A receiptd started again on the same
    // port, with the same state directory (keys and ledger) and content,
    // receives it when the next page of that origin loads.
    const slow = await startSlowImageServer();
    let down = await startServer({
      files: {
        'late.html': page(`<h1>Late</h1><img src="${slow.url}" alt="">`),
        'next.html': page('<h1>Next</h1>'),
      },
    });
    let up = null;
    const context = await newContext(browser);
    try {
      const pg = await context.newPage();
      const w = watch(pg);
      const jwks = pg.waitForResponse((r) => r.url().endsWith('/_receipt/jwks.json'));
      const res = await pg.goto(down.url + '/late.html', { waitUntil: 'commit' });
      const first = deliveryOf(res);
      await (await jwks).finished();
      await slow.requested();
      await sleep(200); // decrypting the plug-in data needs no server
      assert.equal((await down.stop()).code, 0, down.log());

      const failed = pg.waitForEvent('requestfailed', {
        predicate: (r) => r.url().endsWith('/_receipt/confirm'), timeout: 15000,
      });
      slow.release();
      await failed;
      assert.deepEqual((await pendingIn(pg)).map((p) => p.delivery), [first]);
      assert.deepEqual(w.errors, []);
      await pg.close(); // no retry from this page: the next load must do it

      up = await startServer({ root: down.root, stateDir: down.stateDir, port: down.port });
      assert.notEqual(up.query(`select status from deliveries where id = '${first}'`)[0]?.status, 'confirmed');
      const next = await context.newPage();
      const w2 = watch(next);
      const t0 = Date.now();
      const second = deliveryOf(await next.goto(up.url + '/next.html'));
      const [row, ms] = await confirmedRow(up, first, t0);
      assert.ok(row && ms <= CONFIRM_WITHIN_MS, `pending confirmation delivered: ${ms} ms\n${up.log()}`);
      assert.equal(row.client, await browserClient(w));
      const [row2] = await confirmedRow(up, second, t0);
      assert.equal(row2?.client, row.client);
      await assertNothingPending(next);
      // The page that retried an earlier page's confirmation announces only
      // its own delivery.
      assert.deepEqual((await recorded(next)).confirmed.map((c) => c.delivery), [second]);
      assertQuiet(w2, 'next page');
    } finally {
      await context.close();
      await slow.close();
      await down.stop();
      await up?.stop();
    }
  });

  test('offline when the confirmation is due: sent on the online event', async () => {
    const slow = await startSlowImageServer();
    fs.writeFileSync(path.join(srv.root, 'offline.html'), page(`<h1>Offline</h1><img src="${slow.url}" alt="">`));
    const context = await newContext(browser);
    try {
      const pg = await context.newPage();
      const w = watch(pg);
      const jwks = pg.waitForResponse((r) => r.url().endsWith('/_receipt/jwks.json'));
      const id = deliveryOf(await pg.goto(srv.url + '/offline.html', { waitUntil: 'commit' }));
      await (await jwks).finished();
      await slow.requested();
      await sleep(200);
      await context.setOffline(true);
      let failures = 0;
      pg.on('requestfailed', (r) => { if (r.url().endsWith('/_receipt/confirm')) failures++; });
      slow.release();
      // The first attempt and the in-page retry 2 s later both fail; the
      // next retry would wait 4 s more, so a request sooner than that comes
      // from the online event.
      for (let i = 0; i < 500 && failures < 2; i++) await sleep(20);
      assert.equal(failures, 2);
      assert.notEqual(srv.query(`select status from deliveries where id = '${id}'`)[0]?.status, 'confirmed');
      const sent = pg.waitForRequest((r) => r.url().endsWith('/_receipt/confirm'), { timeout: 3000 });
      const t0 = Date.now();
      await context.setOffline(false);
      await sent;
      const [row, ms] = await confirmedRow(srv, id, t0);
      assert.ok(row && ms <= CONFIRM_WITHIN_MS, `confirmed after going online: ${ms} ms`);
      assert.deepEqual(w.errors, []);
    } finally {
      await context.close();
      await slow.close();
    }
  });

  test('the same saved page in two contexts: one confirmed, the other gets 409 quietly', async () => {
    // A page saved once (with its ticket) and opened by two browsers, each
    // from the server's origin so that the agent element still loads. Pages
    // served before the ticket moved to the headers carry it in the
    // element; the agent still reads it there.
    const res = await fetch(srv.url + '/a.html');
    const ticket = res.headers.get('receipt-ticket');
    const saved = (await res.text()).replace('<script src="/_receipt/agent.js" async>',
      `<script src="/_receipt/agent.js" data-receipt-ticket="${ticket}" async>`);
    assert.match(saved, /data-receipt-ticket="[A-Za-z0-9_-]+"/);
    const savedUrl = srv.url + '/saved/a.html';
    const serveSaved = (route) => route.fulfill({ status: 200, contentType: 'text/html', body: saved });
    const one = await newContext(browser);
    const two = await newContext(browser);
    try {
      const p1 = await one.newPage();
      const w1 = watch(p1);
      await p1.route(savedUrl, serveSaved);
      const isConfirm = (r) => r.url().endsWith('/_receipt/confirm') && r.request().method() === 'POST';
      const accepted = p1.waitForResponse(isConfirm, { timeout: 15000 });
      await p1.goto(savedUrl);
      const a = await accepted;
      assert.equal(a.status(), 200);
      const winner = await browserClient(w1);

      const p2 = await two.newPage();
      const w2 = watch(p2);
      await p2.route(savedUrl, serveSaved);
      const conflict = p2.waitForResponse(isConfirm, { timeout: 15000 });
      await p2.goto(savedUrl);
      assert.equal((await conflict).status(), 409);
      assert.notEqual(await browserClient(w2), winner);
      await sleep(500);
      const rows = srv.query(`select id, status, client from deliveries where client = '${winner}'`);
      assert.equal(rows.length, 1);
      assert.equal(rows[0].status, 'confirmed');
      assert.deepEqual((await recorded(p2)).confirmed, []);
      await assertNothingPending(p2, 'a 409 is not retried');
      assertQuiet(w1, 'first browser');
      assertQuiet(w2, 'second browser');
    } finally {
      await one.close();
      await two.close();
    }
  });

  test('a ticket that does not open is left alone quietly', async () => {
    const url = srv.url + '/saved/bogus.html';
    const context = await newContext(browser);
    try {
      const pg = await context.newPage();
      const w = watch(pg);
      await pg.route(url, (route) => route.fulfill({
        status: 200, contentType: 'text/html',
        body: page('<script src="/_receipt/agent.js" data-receipt-ticket="AAAAAAAAAAAAAAAAAAAAAA" async></script>'),
      }));
      const plugin = pg.waitForResponse((r) => r.url().includes('/_receipt/plugin/'));
      await pg.goto(url);
      assert.equal((await plugin).status(), 404);
      await sleep(500);
      assert.equal(w.confirms.length, 0);
      assertQuiet(w);
    } finally {
      await context.close();
    }
  });

  test('receipt:confirmed fires once, with the delivery and a receipt that verifies', async () => {
    const context = await newContext(browser);
    try {
      const pg = await context.newPage();
      const w = watch(pg);
      const row = await openConfirmed(srv, pg, srv.url + '/event.html');
      await sleep(1500);
      const { confirmed } = await recorded(pg);
      assert.equal(confirmed.length, 1);
      assert.equal(confirmed[0].delivery, row.id);
      assert.equal(confirmed[0].status, 'confirmed');
      const { payload } = await verifyReceipt(await fetchJwks(srv.url), confirmed[0].receipt);
      assert.equal(payload.delivery, row.id);
      assert.equal(payload.client.id, row.client);
      // The evidence log's proof comes with it (docs/evidence.md).
      const event = JSON.parse(confirmed[0].proof.leaf.event);
      assert.deepEqual([event.type, event.delivery], ['confirmed', row.id]);
      assert.match(confirmed[0].proof.checkpoint, /\/_receipt\/log\n\d+\n/);
      assert.equal(w.confirms.length, 1, 'one confirmation request');
      assertQuiet(w);
    } finally {
      await context.close();
    }
  });

  test('an insecure origin: no WebCrypto, one console message, nothing confirmed', async () => {
    const context = await newContext(browser);
    try {
      const pg = await context.newPage();
      const w = watch(pg);
      const res = await pg.goto(`http://${INSECURE_HOST}:${srv.port}/a.html`);
      const id = deliveryOf(res);
      assert.equal(await pg.evaluate(() => window.isSecureContext), false);
      await sleep(1000);
      const mine = w.console.filter((m) => m.text.startsWith('receipt:'));
      assert.equal(mine.length, 1, JSON.stringify(w.console));
      assert.match(mine[0].text, /secure context/);
      assert.equal(mine[0].type, 'warning');
      assert.equal(w.clientKeys.length, 0, 'no plug-in request');
      const row = await srv.until(() => srv.query(`select status from deliveries where id = '${id}'`)[0]);
      assert.equal(row?.status, 'issued');
      assert.deepEqual(w.errors, []);
      assert.deepEqual(w.unexpected([/^receipt: /]), []);
    } finally {
      await context.close();
    }
  });
});

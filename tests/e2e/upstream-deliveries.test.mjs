// Deliveries through an upstream (--upstream): a 200 to a GET is a delivery
// under the rules of a file's (docs/protocol.md, "Which requests are
// deliveries"), its content the path with its query, its bytes read whole,
// hashed and, for a page, injected. Chromium confirms the application's
// dynamic page and a download from it; the receipt command confirms an
// upstream binary with its key and the right digest; subresources, HEAD,
// POST and faults record nothing.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { startServer, rawRequest, statusOf } from './lib/server.mjs';
import { startApp, pattern } from './lib/upstream.mjs';
import { clientDirs, runCli, parseJsonLine, removeOwnTempDirs } from './lib/cli.mjs';
import { launch, newContext, watch, recorded } from './lib/browser.mjs';

const ELEMENT = '<script src="/_receipt/agent.js" async></script>';
const FIRMWARE = pattern(64 * 1024, 'firmware');
const sha256 = (b) => crypto.createHash('sha256').update(b).digest();
const hex = (b) => b.toString('hex').toUpperCase();
const NAVIGATION = { 'Sec-Fetch-Dest': 'document', 'Sec-Fetch-Mode': 'navigate', 'Sec-Fetch-Site': 'none', 'Sec-Fetch-User': '?1' };
const SUBRESOURCE = { 'Sec-Fetch-Dest': 'script', 'Sec-Fetch-Mode': 'no-cors', 'Sec-Fetch-Site': 'same-origin' };

/** One request over node:http, body whole. */
function request(url, { method = 'GET', headers = {}, body = null } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const rowOf = (srv, id) => srv.until(() => srv.query(
  `SELECT path, kind, status, hex(sha256) AS sha, size, hex(delivered_sha256) AS delivered, delivered_size
   FROM deliveries WHERE id = '${id}'`)[0]);
const count = (srv) => srv.query('SELECT count(*) AS n FROM deliveries')[0].n;
const settle = () => new Promise((r) => setTimeout(r, 300));

describe('deliveries through an upstream', () => {
  let app;
  let srv;
  before(async () => {
    app = await startApp();
    srv = await startServer({ args: ['--upstream', app.url, '--untrack', '/api/**'] });
  });
  after(async () => {
    const { code } = await srv.stop();
    assert.equal(code, 0, srv.log());
    await app.stop();
    removeOwnTempDirs();
  });

  test('a page view is a page delivery: the agent element in, validators out, the path with its query', async () => {
    const res = await request(`${srv.url}/page.html?lang=en`, { headers: NAVIGATION });
    assert.equal(res.status, 200);
    const body = res.body.toString();
    assert.ok(body.includes(`${ELEMENT}</body>`), body);
    assert.equal(Number(res.headers['content-length']), res.body.length);
    assert.equal(res.headers['repr-digest'], `sha-256=:${sha256(res.body).toString('base64')}:`);
    assert.equal(res.headers['cache-control'], 'private, no-cache');
    assert.equal(res.headers.etag, undefined);
    assert.equal(res.headers['last-modified'], undefined);
    assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(res.headers['x-app'], 'upstream-app');
    assert.equal(res.headers['set-cookie'].length, 2);
    assert.match(res.headers['receipt-ticket'], /^[A-Za-z0-9_-]+$/);
    assert.equal(res.headers['server-timing'], `receipt;desc="${res.headers['receipt-ticket']}"`);
    const row = await rowOf(srv, res.headers['receipt-delivery']);
    const upstreamBytes = Buffer.from(body.replace(ELEMENT, ''));
    assert.deepEqual(row, {
      path: '/page.html?lang=en', kind: 'page', status: 'issued',
      sha: hex(sha256(upstreamBytes)), size: upstreamBytes.length,
      delivered: hex(sha256(res.body)), delivered_size: res.body.length,
    });
    const again = await request(`${srv.url}/page.html?lang=en`, { headers: NAVIGATION });
    assert.notEqual(again.headers['receipt-delivery'], res.headers['receipt-delivery'], 'every view is a delivery');
  });

  test('the upstream is asked for identity; its no-store stays', async () => {
    const res = await request(`${srv.url}/headers`, { headers: { ...NAVIGATION, 'Accept-Encoding': 'gzip, br' } });
    const seen = Object.fromEntries(JSON.parse(res.body).headers.map(([k, v]) => [k.toLowerCase(), v]));
    assert.equal(seen['accept-encoding'], 'identity');
    assert.ok(res.headers['receipt-delivery'], 'a view of a JSON document');
    const sub = await request(`${srv.url}/headers`, { headers: { ...SUBRESOURCE, 'Accept-Encoding': 'gzip, br' } });
    const subSeen = Object.fromEntries(JSON.parse(sub.body).headers.map(([k, v]) => [k.toLowerCase(), v]));
    assert.equal(subSeen['accept-encoding'], 'gzip, br', 'what is no delivery passes as asked');
  });

  // As a file's injected page ignores them (docs/protocol.md 5.4), the
  // upstream never sees a conditional or range field of a GET whose answer
  // would get the agent element: its 304 or 206 would pass undelivered.
  // What is no injected page keeps them, as a file's answer does.
  test('conditional and range fields reach the upstream only for what is no injected page', async () => {
    const CONDITIONAL = {
      'If-None-Match': '"seen-1"',
      'If-Modified-Since': 'Mon, 01 Dec 2025 10:00:00 GMT',
      'If-Match': '"seen-1"',
      'If-Unmodified-Since': 'Mon, 01 Dec 2035 10:00:00 GMT',
      'If-Range': '"seen-1"',
      'Range': 'bytes=0-9',
    };
    const names = Object.keys(CONDITIONAL).map((n) => n.toLowerCase());
    const get = async (target, fields) => {
      const text = await rawRequest(srv.port, `GET ${target} HTTP/1.1\r\nHost: x\r\n` +
        Object.entries({ ...fields, ...CONDITIONAL }).map(([k, v]) => `${k}: ${v}\r\n`).join('') +
        'Connection: close\r\n\r\n');
      const at = text.indexOf('\r\n\r\n');
      const delivery = /\r\nReceipt-Delivery: (\S+)\r\n/i.exec(text.slice(0, at));
      return { text, status: statusOf(text), body: text.slice(at + 4), delivery: delivery && delivery[1] };
    };
    const seenIn = (json) => JSON.parse(json).headers.map(([k]) => k.toLowerCase()).filter((k) => names.includes(k));
    const unescape = (s) => s.replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&');
    const seenInPage = (body) => seenIn(unescape(/<pre id="seen">([^<]*)<\/pre>/.exec(body)[1]));

    // A page view: 200, injected, a delivery; the upstream saw none of them.
    const res = await get('/doc/headers?html=1', NAVIGATION);
    assert.equal(res.status, 200, res.text);
    assert.ok(res.body.includes(`${ELEMENT}</body>`));
    assert.doesNotMatch(res.text.slice(0, res.text.indexOf('\r\n\r\n')), /\r\n(ETag|Content-Range|Accept-Ranges):/i);
    assert.deepEqual(seenInPage(res.body), [], 'the upstream saw no conditional or range field');
    assert.equal((await rowOf(srv, res.delivery)).kind, 'page');
    // A subresource (an image, a stylesheet), a download by the agent and a
    // device (which polls a binary with If-None-Match as well as it reads a
    // page) are no injected page before the answer says so: every field
    // reaches the upstream, and its 304 passes.
    const IMAGE = { 'Sec-Fetch-Dest': 'image', 'Sec-Fetch-Mode': 'no-cors', 'Sec-Fetch-Site': 'same-origin' };
    const STYLE = { 'Sec-Fetch-Dest': 'style', 'Sec-Fetch-Mode': 'no-cors', 'Sec-Fetch-Site': 'same-origin' };
    for (const [what, fields, delivery] of [['an image', IMAGE, false], ['a stylesheet', STYLE, false],
      ['a download', { 'Receipt-Fetch': 'download' }, true], ['a device', {}, true]]) {
      const out = await get('/doc/headers', fields);
      assert.equal(out.status, 200, `${what}:\n${out.text}`);
      assert.deepEqual(seenIn(out.body).sort(), [...names].sort(), `${what}: the upstream saw every field`);
      assert.equal(Boolean(out.delivery), delivery, what);
    }
    await settle();
    const before = count(srv);
    const notModified = await get('/doc/headers?html=1', IMAGE);
    assert.equal(notModified.status, 304, notModified.text);
    assert.equal(notModified.delivery, null);
    await settle();
    assert.equal(count(srv), before, 'a 304 is no delivery');
  });

  test('subresources, HEAD, POST, --untrack paths, redirects and 404s record nothing', async () => {
    await settle();
    const before = count(srv);
    const script = await request(`${srv.url}/page.html`, { headers: SUBRESOURCE });
    assert.equal(script.status, 200);
    assert.equal(script.headers['receipt-delivery'], undefined);
    assert.ok(script.headers.etag, 'no delivery keeps its validators');
    assert.ok(!script.body.toString().includes(ELEMENT));
    const head = await request(`${srv.url}/page.html`, { method: 'HEAD', headers: NAVIGATION });
    assert.equal(head.status, 200);
    assert.equal(head.headers['receipt-delivery'], undefined);
    const post = await request(`${srv.url}/login`, { method: 'POST', body: 'user=ada&next=/' });
    assert.equal(post.status, 303);
    const api = await request(`${srv.url}/api/items`, { headers: NAVIGATION });
    assert.equal(api.status, 200);
    assert.equal(api.headers['receipt-delivery'], undefined);
    assert.equal((await request(`${srv.url}/private`, { headers: NAVIGATION })).status, 302);
    assert.equal((await request(`${srv.url}/nothing`, { headers: NAVIGATION })).status, 404);
    await settle();
    assert.equal(count(srv), before);
  });

  test('kept handles and recycled calls carry nothing of one request into the next', { timeout: 30000 }, async () => {
    const seen = (res) => {
      const echo = JSON.parse(res.body);
      return { ...echo, fields: Object.fromEntries(echo.headers.map(([k, v]) => [k.toLowerCase(), v])) };
    };
    /* A POST with a body and fields of its own, then a GET on what it leaves. */
    const post = seen(await request(`${srv.url}/headers`, {
      method: 'POST', headers: { 'X-Only-Post': 'p', 'Content-Type': 'text/plain' }, body: 'posted body',
    }));
    assert.equal(post.method, 'POST');
    assert.equal(post.fields['x-only-post'], 'p');
    const get = seen(await request(`${srv.url}/headers`, { headers: SUBRESOURCE }));
    assert.equal(get.method, 'GET');
    for (const gone of ['x-only-post', 'content-type', 'content-length', 'transfer-encoding'])
      assert.equal(get.fields[gone], undefined, gone);
    const head = await request(`${srv.url}/headers`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    const afterHead = await request(`${srv.url}/headers`, { headers: SUBRESOURCE });
    assert.equal(seen(afterHead).method, 'GET', 'a GET after a HEAD has its body');

    /* Many at once, each with a field of its own and from none to six more
     * of different sizes; every other one read whole as a delivery, the
     * rest streamed. Each answer is its own request's, whole. */
    const many = await Promise.all(Array.from({ length: 120 }, (_, i) => {
      const headers = { ...(i % 2 ? NAVIGATION : SUBRESOURCE), 'X-Request': String(i) };
      for (let k = 0; k < i % 7; k++) headers[`X-Extra-${k}`] = `${i}.${k};`.repeat(1 + (i % 5) * 40);
      return request(`${srv.url}/headers?i=${i}`, { headers }).then((res) => ({ i, res, headers }));
    }));
    for (const { i, res, headers } of many) {
      assert.equal(res.status, 200, `request ${i}`);
      assert.equal(Number(res.headers['content-length']), res.body.length, `request ${i}`);
      const echo = seen(res);
      assert.equal(echo.method, 'GET');
      assert.equal(echo.path, `/headers?i=${i}`);
      assert.equal(echo.fields['x-request'], String(i));
      const extras = Object.keys(echo.fields).filter((k) => k.startsWith('x-extra-')).sort();
      assert.deepEqual(extras, Array.from({ length: i % 7 }, (_, k) => `x-extra-${k}`), `request ${i}`);
      for (let k = 0; k < i % 7; k++) assert.equal(echo.fields[`x-extra-${k}`], headers[`X-Extra-${k}`]);
      assert.equal(Boolean(res.headers['receipt-delivery']), i % 2 === 1, `request ${i}`);
      if (i % 2) assert.equal(res.headers['repr-digest'], `sha-256=:${sha256(res.body).toString('base64')}:`);
    }
  });

  test('a tracked request whose path and query pass a ticket\'s limit is 414, and goes nowhere', async () => {
    await settle();
    const before = count(srv);
    const res = await request(`${srv.url}/page.html?q=${'x'.repeat(200)}`, { headers: NAVIGATION });
    assert.equal(res.status, 414);
    assert.equal(JSON.parse(res.body).error, 'uri_too_long');
    const sub = await request(`${srv.url}/page.html?q=${'x'.repeat(200)}`, { headers: SUBRESOURCE });
    assert.equal(sub.status, 200, 'no delivery: no limit of a ticket\'s');
    await settle();
    assert.equal(count(srv), before);
  });

  test('the receipt command fetches an upstream binary with its key and confirms the right digest', async () => {
    const c = await clientDirs();
    const r = await runCli(['fetch', `${srv.url}/firmware.bin?v=2`, '-o', c.out('fw.bin'), '--json', ...c.args()]);
    assert.equal(r.code, 0, r.stderr);
    const j = parseJsonLine(r.stdout);
    assert.equal(j.status, 'confirmed');
    assert.ok(fs.readFileSync(c.out('fw.bin')).equals(FIRMWARE), 'the bytes are the upstream\'s');
    const row = await srv.until(() => srv.query(
      `SELECT path, kind, status, hex(sha256) AS sha, hex(received_sha256) AS received, size
       FROM deliveries WHERE id = '${j.delivery}' AND status = 'confirmed'`)[0]);
    assert.deepEqual(row, { path: '/firmware.bin?v=2', kind: 'device', status: 'confirmed', sha: hex(sha256(FIRMWARE)), received: hex(sha256(FIRMWARE)), size: FIRMWARE.length });
  });

  test('an answer cut, too slow or too large is a 502 or 504 and no delivery', async () => {
    const small = await startServer({ args: ['--upstream', app.url, '--proxy-max-body', '1', '--proxy-buffer', '64', '--upstream-timeout', '1'] });
    try {
      for (const [p, status, error] of [['/cut', 502, 'upstream_cut'], ['/download.bin', 502, 'upstream_too_large'], ['/slow-body?ms=3000', 504, 'upstream_timeout']]) {
        const res = await request(`${small.url}${p}`, { headers: NAVIGATION });
        assert.equal(res.status, status, `${p}: ${res.body}`);
        assert.equal(JSON.parse(res.body).error, error, p);
      }
      await settle();
      assert.equal(count(small), 0);
    } finally {
      assert.equal((await small.stop()).code, 0, small.log());
    }
  });
});

describe('deliveries through an upstream in Chromium', () => {
  let app;
  let browser;
  before(async () => {
    app = await startApp();
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await app.stop();
  });

  test('the application\'s dynamic page and a download from it, each confirmed', async () => {
    const srv = await startServer({ args: ['--upstream', app.url] });
    const context = await newContext(browser);
    try {
      const pg = await context.newPage();
      const w = watch(pg);
      const res = await pg.goto(`${srv.url}/page.html`);
      const pageId = res.headers()['receipt-delivery'];
      assert.ok(pageId);
      const page = await srv.until(() => srv.query(
        `SELECT path, kind, status, client FROM deliveries WHERE id = '${pageId}' AND status = 'confirmed'`)[0], 15000);
      assert.deepEqual({ ...page, client: undefined }, { path: '/page.html', kind: 'page', status: 'confirmed', client: undefined });
      assert.match(await pg.textContent('p'), /^View \d+, token [0-9a-f]{16}\.$/);
      await pg.waitForLoadState('networkidle');

      const fetched = pg.waitForResponse((r) => r.url().endsWith('/firmware.bin') && r.request().method() === 'GET');
      const [download] = await Promise.all([pg.waitForEvent('download'), pg.click('#download')]);
      const fwId = (await fetched).headers()['receipt-delivery'];
      assert.ok(fwId);
      assert.ok(fs.readFileSync(await download.path()).equals(FIRMWARE), 'the download is the upstream\'s bytes');
      const fw = await srv.until(() => srv.query(
        `SELECT kind, status, client, hex(received_sha256) AS received FROM deliveries WHERE id = '${fwId}' AND status = 'confirmed'`)[0], 15000);
      assert.deepEqual(fw, { kind: 'download', status: 'confirmed', client: page.client, received: hex(sha256(FIRMWARE)) });
      assert.deepEqual((await recorded(pg)).confirmed.map((c) => c.delivery), [pageId]);
      assert.deepEqual(w.errors, []);
    } finally {
      await context.close();
      assert.equal((await srv.stop()).code, 0, srv.log());
    }
  });
});

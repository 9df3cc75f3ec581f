// Which requests are deliveries (docs/protocol.md section 5.1), as a table
// of cases against a real receiptd: fetch metadata or none, the agent's
// Receipt-Fetch header, --track and --untrack with the last match winning,
// and --track-subresources. Each case checks the response (Receipt headers,
// validators, injection) and the ledger (one row of the right kind, or
// none).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServer } from './lib/server.mjs';

const PAGE = '<!doctype html><html><body><p>Notice</p></body></html>\n';
const ELEMENT = '<script src="/_receipt/agent.js" async></script>';
const FILES = {
  'index.html': PAGE,
  'doc.pdf': '%PDF-1.4\n%fixture\n',
  'img/logo.png': 'not really a png',
  'img/charts/q1.png': 'a chart',
  'style.css': 'body{}',
  'data.json': '{"a":1}',
  'status/up.json': '{"up":true}',
  'status/notice.html': PAGE,
  'status/other.html': PAGE,
  'fw/image.bin': 'firmware',
};

const NAV = { 'Sec-Fetch-Dest': 'document', 'Sec-Fetch-Mode': 'navigate', 'Sec-Fetch-Site': 'none', 'Sec-Fetch-User': '?1' };
const IMG = { 'Sec-Fetch-Dest': 'image', 'Sec-Fetch-Mode': 'no-cors', 'Sec-Fetch-Site': 'same-origin' };
const STYLE = { 'Sec-Fetch-Dest': 'style', 'Sec-Fetch-Mode': 'no-cors', 'Sec-Fetch-Site': 'same-origin' };
const XHR = { 'Sec-Fetch-Dest': 'empty', 'Sec-Fetch-Mode': 'cors', 'Sec-Fetch-Site': 'same-origin' };
const DOWNLOAD = { 'Sec-Fetch-Dest': 'empty', 'Sec-Fetch-Mode': 'navigate', 'Sec-Fetch-Site': 'same-origin' };
const FRAME = { 'Sec-Fetch-Dest': 'iframe', 'Sec-Fetch-Mode': 'navigate', 'Sec-Fetch-Site': 'same-origin' };
const AGENT = { ...XHR, 'Receipt-Fetch': 'download' };
const NODE_FETCH = { 'Sec-Fetch-Mode': 'cors' }; // what Node's fetch() sends

/** A GET with exactly these headers (fetch() would add its own). */
function get(url, headers) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { Connection: 'close', ...headers } }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
  });
}

// [path, headers, kind or null (no delivery)]
const DEFAULT_CASES = [
  ['/', NAV, 'page'],
  ['/index.html', FRAME, 'page'],
  ['/index.html', {}, 'device'],
  ['/index.html', NODE_FETCH, 'device'],
  ['/index.html', XHR, null],
  ['/doc.pdf', NAV, 'view'],
  ['/doc.pdf', DOWNLOAD, 'download'],
  ['/doc.pdf', AGENT, 'download'],
  ['/doc.pdf', { ...XHR, 'Receipt-Fetch': 'other' }, null],
  ['/img/logo.png', IMG, null],
  ['/style.css', STYLE, null],
  ['/data.json', XHR, null],
  ['/fw/image.bin', {}, 'device'],
  ['/fw/image.bin', { 'User-Agent': 'curl/8' }, 'device'],
];

// With --untrack '/status/**' --track '/status/notice.html' --track '/img/charts/**'
const RULE_CASES = [
  ['/status/up.json', {}, null], // untracked, even for a device
  ['/status/other.html', NAV, null],
  ['/status/notice.html', NAV, 'page'], // the later --track wins
  ['/status/notice.html', IMG, 'tracked'],
  ['/img/charts/q1.png', IMG, 'tracked'],
  ['/img/logo.png', IMG, null],
  ['/index.html', NAV, 'page'],
];

// With --track-subresources --untrack '/data.json'
const SUBRESOURCE_CASES = [
  ['/img/logo.png', IMG, 'tracked'],
  ['/style.css', STYLE, 'tracked'],
  ['/index.html', NAV, 'page'],
  ['/data.json', XHR, null],
  ['/data.json', {}, null],
];

async function runCases(srv, cases) {
  const ids = [];
  for (const [path, headers, kind] of cases) {
    const what = `${path} ${JSON.stringify(headers)}`;
    const res = await get(srv.url + path, headers);
    assert.equal(res.status, 200, what);
    const id = res.headers['receipt-delivery'];
    if (kind === null) {
      assert.equal(id, undefined, `${what}: no delivery`);
      assert.equal(res.headers['receipt-ticket'], undefined, what);
      assert.equal(res.headers['server-timing'], undefined, what);
      assert.ok(res.headers.etag, `${what}: served with its validators`);
      assert.ok(!res.body.includes(ELEMENT), `${what}: not injected`);
      continue;
    }
    assert.match(id ?? '', /^[0-9a-f-]{36}$/, `${what}: a delivery`);
    const injected = res.body.includes(ELEMENT);
    assert.equal(injected, path.endsWith('.html') || path === '/' ? ['page', 'device'].includes(kind) : false,
      `${what}: injected only into pages and devices' HTML`);
    assert.equal(!!res.headers.etag, !injected, `${what}: validators unless injected`);
    ids.push([id, kind, what]);
  }
  // Every delivery has its row of its kind; nothing else became a row.
  const rows = await srv.until(() => {
    const r = srv.query('SELECT id, kind FROM deliveries');
    return r.length >= ids.length && r;
  });
  await new Promise((r) => setTimeout(r, 200));
  const all = srv.query('SELECT id, kind FROM deliveries');
  assert.equal(all.length, ids.length, JSON.stringify(all));
  const byId = new Map(rows.map((r) => [r.id, r.kind]));
  for (const [id, kind, what] of ids) assert.equal(byId.get(id), kind, what);
}

describe('which requests are deliveries', () => {
  const servers = [];
  const start = async (args = []) => {
    const srv = await startServer({ files: FILES, args });
    servers.push(srv);
    return srv;
  };
  after(async () => {
    for (const srv of servers) assert.equal((await srv.stop()).code, 0, srv.log());
  });

  test('by fetch metadata, with the defaults', async () => {
    await runCases(await start(), DEFAULT_CASES);
  });

  test('--track and --untrack: the last rule that matches wins', async () => {
    await runCases(await start(['--untrack', '/status/**', '--track', '/status/notice.html',
      '--track', '/img/charts/**']), RULE_CASES);
  });

  test('--track-subresources: every 200, but for what is untracked', async () => {
    await runCases(await start(['--track-subresources', '--untrack', '/data.json']), SUBRESOURCE_CASES);
  });

  test('no delivery is ever a 304, a 206 or a HEAD; a page view ignores conditionals', async () => {
    const srv = await start();
    const page = await get(srv.url + '/index.html', { ...NAV, 'If-None-Match': '*', 'If-Modified-Since': 'Sun, 01 Jan 2090 00:00:00 GMT' });
    assert.equal(page.status, 200);
    assert.ok(page.headers['receipt-delivery']);
    const img = await get(srv.url + '/img/logo.png', IMG);
    const again = await get(srv.url + '/img/logo.png', { ...IMG, 'If-None-Match': img.headers.etag });
    assert.equal(again.status, 304);
    // A PDF viewer's ranges after the view: 206, no delivery.
    const range = await get(srv.url + '/doc.pdf', { 'Sec-Fetch-Dest': 'empty', 'Sec-Fetch-Mode': 'no-cors', Range: 'bytes=0-3' });
    assert.equal(range.status, 206);
    assert.equal(range.body, '%PDF');
    assert.equal(range.headers['receipt-delivery'], undefined);
    const deviceRange = await get(srv.url + '/fw/image.bin', { Range: 'bytes=0-3' });
    assert.equal(deviceRange.status, 206);
    assert.equal(deviceRange.headers['receipt-delivery'], undefined);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(srv.query('SELECT kind FROM deliveries'), [{ kind: 'page' }]);
  });
});

// receiptd in front of an application (--upstream): what is no delivery
// passes through unchanged and unrecorded, streaming both ways; the
// upstream learns who asked; an upstream that is down, slow, cut or
// garbled gives 502 or 504 and no row.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { startServer, freePort, tempDir, rawRequest, statusOf } from './lib/server.mjs';
import { startApp, startNginx, makeCertificates, pattern, rssOf } from './lib/upstream.mjs';
import { makeCA } from './lib/tls.mjs';

const sha256hex = (b) => crypto.createHash('sha256').update(b).digest('hex');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** One request over node:http (fetch refuses hop-by-hop fields), body whole. */
function request(url, { method = 'GET', headers = {}, body = null, agent = false } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, raw: res.rawHeaders, body: Buffer.concat(chunks), complete: res.complete }));
      res.on('error', (e) => resolve({ status: res.statusCode, headers: res.headers, raw: res.rawHeaders, body: Buffer.concat(chunks), complete: false, error: e }));
    });
    req.on('error', reject);
    if (body !== null) {
      if (typeof body === 'function') body(req);
      else req.end(body);
    } else {
      req.end();
    }
  });
}

/** Fetch metadata of a page's script: no delivery under the default rules. */
const SUBRESOURCE = { 'Sec-Fetch-Dest': 'script', 'Sec-Fetch-Mode': 'no-cors', 'Sec-Fetch-Site': 'same-origin' };

const rows = (srv) => srv.query('SELECT count(*) AS n FROM deliveries')[0].n;

/** Stops a server and checks it exited cleanly, without a sanitizer's report. */
async function stopClean(srv) {
  const { code } = await srv.stop();
  assert.equal(code, 0, srv.log());
  assert.doesNotMatch(srv.log(), /runtime error|AddressSanitizer|LeakSanitizer/);
}

describe('reverse proxy: passing through', () => {
  let app;
  let srv;
  let files;
  before(async () => {
    app = await startApp();
    srv = await startServer({
      files: { 'local.txt': 'from the root\n' },
      args: ['--upstream-for', '/app/', `${app.url}/`, '--upstream-for', '/raw/', app.url],
    });
    files = srv.root;
  });
  after(async () => {
    await stopClean(srv);
    await app.stop();
  });

  test('--root answers what no upstream claims', async () => {
    const res = await fetch(`${srv.url}/local.txt`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'from the root\n');
    assert.ok(files);
    /* Its issuance lands a moment later; the tests below count rows from here. */
    await srv.until(() => rows(srv) === 1);
  });

  test('a form POST: its 303, Location and Set-Cookie pass unchanged, and nothing is recorded', async () => {
    const before = rows(srv);
    const res = await request(`${srv.url}/app/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'user=ada&next=%2Fprivate',
    });
    assert.equal(res.status, 303);
    assert.equal(res.headers.location, '/private');
    assert.deepEqual(res.headers['set-cookie'], ['session=ok; Path=/; HttpOnly']);
    assert.equal(res.headers['receipt-delivery'], undefined);
    const bad = await request(`${srv.url}/app/login`, { method: 'POST', body: 'user=' });
    assert.equal(bad.status, 422);
    assert.deepEqual(JSON.parse(bad.body), { error: 'no user' });
    await sleep(200);
    assert.equal(rows(srv), before);
  });

  test('redirects, 404s and their cookies pass unchanged and unrecorded', async () => {
    const before = rows(srv);
    const redirect = await request(`${srv.url}/app/private`);
    assert.equal(redirect.status, 302);
    assert.equal(redirect.headers.location, '/login?next=/private');
    const missing = await request(`${srv.url}/app/nothing/here`);
    assert.equal(missing.status, 404);
    assert.match(missing.body.toString(), /<h1>Not found<\/h1>/);
    assert.deepEqual(missing.headers['set-cookie'], ['seen404=1; Path=/']);
    assert.equal(missing.headers['content-type'], 'text/html; charset=utf-8');
    await sleep(200);
    assert.equal(rows(srv), before);
  });

  test('several Set-Cookie fields stay several, in order; the upstream\'s other fields pass', async () => {
    const res = await request(`${srv.url}/app/page.html`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    const cookies = res.headers['set-cookie'];
    assert.equal(cookies.length, 2);
    assert.match(cookies[0], /^visit=\d+; Path=\/; HttpOnly$/);
    assert.equal(cookies[1], 'theme=dark; Path=/');
    assert.equal(res.headers['x-app'], 'upstream-app');
    assert.equal(res.body.length, 0);
    /* receiptd writes its own Date and no Server of the application's. */
    assert.equal(res.raw.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'date').length, 1);
    assert.equal(res.headers.server, undefined);
  });

  test('PUT, PATCH and DELETE with bodies, by length and chunked, reach the upstream whole', async () => {
    const body = crypto.randomBytes(300 * 1024);
    for (const method of ['PUT', 'PATCH', 'DELETE', 'POST']) {
      const res = await request(`${srv.url}/app/api/echo`, {
        method, headers: { 'Content-Type': 'application/x-test', 'Content-Length': body.length }, body,
      });
      assert.equal(res.status, method === 'POST' ? 201 : 200, method);
      const echo = JSON.parse(res.body);
      assert.equal(echo.method, method);
      assert.equal(echo.length, body.length);
      assert.equal(echo.sha256, sha256hex(body));
      assert.equal(echo.content_type, 'application/x-test');
    }
    const chunked = await request(`${srv.url}/app/api/echo`, {
      method: 'POST',
      headers: { 'Transfer-Encoding': 'chunked' },
      body: (req) => {
        req.write(body.subarray(0, 1000));
        setTimeout(() => { req.write(body.subarray(1000, 200000)); req.end(body.subarray(200000)); }, 50);
      },
    });
    const echo = JSON.parse(chunked.body);
    assert.equal(echo.length, body.length);
    assert.equal(echo.sha256, sha256hex(body));
    assert.equal(echo.chunked, true);
  });

  test('JSON, chunked answers, 304 and HEAD pass through', async () => {
    const api = await fetch(`${srv.url}/app/api/items`);
    assert.equal(api.status, 200);
    assert.equal(api.headers.get('content-type'), 'application/json');
    assert.deepEqual((await api.json()).items.map((i) => i.name), ['terms', 'notice']);
    /* A page's subresource is no delivery: it streams as it comes. */
    const chunked = await request(`${srv.url}/app/chunked.txt`, { headers: SUBRESOURCE });
    assert.equal(chunked.headers['transfer-encoding'], 'chunked');
    assert.equal(chunked.body.toString(), 'first piece\nsecond piece\nlast piece\n');
    const fresh = await request(`${srv.url}/app/etag.txt`, { headers: { 'If-None-Match': '"etag-1"' } });
    assert.equal(fresh.status, 304);
    assert.equal(fresh.headers.etag, '"etag-1"');
    assert.equal(fresh.body.length, 0);
    const head = await request(`${srv.url}/app/download.bin`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(10 * 1024 * 1024));
    assert.equal(head.body.length, 0);
  });

  // RFC 9110 8.6 and 15.4.5: a 304's Content-Length, if any, is the
  // length of the representation (a cache updating its stored fields from
  // the 304, RFC 9111 4.3.4, takes it), as is a HEAD's; a 204 has none.
  // Each is read over a raw socket with a second request behind it on the
  // same connection: the exact header block, and nothing between the two
  // answers (no stray last chunk that the client would read as the next).
  test('304, 204 and HEAD: the upstream\'s Content-Length as it sent it, or none, and nothing after the header block', async () => {
    const before = rows(srv);
    const NAVIGATION = 'Sec-Fetch-Dest: document\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Site: none\r\n';
    const cases = [
      // [what, method, query, request fields, status, Content-Length sent on (null: none)]
      ['a 304 with a length', 'GET', 'status=304&length=1234', '', 304, '1234'],
      ['a 304 without one', 'GET', 'status=304', '', 304, null],
      ['a 304 to a tracked page view, without one', 'GET', 'status=304', NAVIGATION, 304, null],
      ['a 304 to a tracked page view, with one', 'GET', 'status=304&length=99', NAVIGATION, 304, '99'],
      ['a 304 to a HEAD, with a length', 'HEAD', 'status=304&length=5', '', 304, '5'],
      ['a 204', 'GET', 'status=204', '', 204, null],
      ['a 204 that says Content-Length: 0', 'GET', 'status=204&length=0', '', 204, null],
      ['a HEAD with a length', 'HEAD', 'status=200&length=777', '', 200, '777'],
      ['a HEAD with Content-Length: 0', 'HEAD', 'status=200&length=0', '', 200, '0'],
      ['a HEAD whose GET is chunked', 'HEAD', 'status=200&chunked=1', '', 200, null],
      ['a HEAD without a length', 'HEAD', 'status=200', '', 200, null],
    ];
    const next = 'GET /app/api/items HTTP/1.1\r\nHost: x\r\nConnection: close\r\n' +
      `${Object.entries(SUBRESOURCE).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
    for (const [what, method, query, fields, status, length] of cases) {
      const raw = await rawRequest(srv.port,
        `${method} /app/bodiless?${query} HTTP/1.1\r\nHost: x\r\n${fields}\r\n${next}`);
      const end = raw.indexOf('\r\n\r\n') + 4;
      assert.ok(end > 4, `${what}: ${JSON.stringify(raw)}`);
      const head = raw.slice(0, end);
      const rest = raw.slice(end);
      const at = `${what}:\n${raw}`;
      assert.equal(statusOf(head), status, at);
      const lengths = head.match(/\r\nContent-Length: [^\r]*/gi) || [];
      assert.deepEqual(lengths, length === null ? [] : [`\r\nContent-Length: ${length}`], at);
      assert.doesNotMatch(head, /\r\nTransfer-Encoding:/i, at);
      assert.match(head, /\r\nETag: "bodiless-1"\r\n/, at);
      if (/\r\nConnection: close\r\n/i.test(head)) {
        // Without a length to state, the connection ends with the header block.
        assert.equal(length, null, `${at}: closed only for want of a length`);
        assert.equal(rest, '', `${at}: nothing after the header block`);
      } else {
        assert.equal(statusOf(rest), 200, `${at}: the next answer, right after the header block`);
        assert.ok(rest.endsWith('"notice"}]}'), at);
      }
    }
    await sleep(200);
    assert.equal(rows(srv), before, 'no 304, 204 or HEAD is a delivery');
  });

  test('a prefix is replaced by the path of its URL, and kept by a URL without one', async () => {
    const res = await request(`${srv.url}/app/headers?x=1`);
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body).path, '/headers?x=1');
    const kept = await request(`${srv.url}/raw/headers?y=%41`);
    assert.equal(kept.status, 200);
    assert.equal(JSON.parse(kept.body).path, '/raw/headers?y=%41');
  });

  test('the upstream sees who asked, and no hop-by-hop field', async () => {
    const res = await request(`${srv.url}/app/headers`, {
      headers: {
        Host: 'www.example.test',
        Connection: 'keep-alive, X-Hop',
        'X-Hop': 'stays here',
        'Keep-Alive': 'timeout=5',
        TE: 'trailers',
        'Proxy-Authorization': 'Basic eDp5',
        'X-Forwarded-For': '203.0.113.9',
        Forwarded: 'for=203.0.113.9',
        'X-End-To-End': 'goes on',
        Cookie: 'a=1; b=2',
      },
    });
    const seen = Object.fromEntries(JSON.parse(res.body).headers.map(([k, v]) => [k.toLowerCase(), v]));
    assert.equal(seen.host, 'www.example.test');
    assert.equal(seen['x-end-to-end'], 'goes on');
    assert.equal(seen.cookie, 'a=1; b=2');
    for (const gone of ['connection', 'x-hop', 'keep-alive', 'te', 'proxy-authorization', 'expect'])
      assert.equal(seen[gone], undefined, gone);
    /* No trusted proxy is configured: the peer is the client, whatever it says. */
    assert.equal(seen['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.equal(seen['x-forwarded-host'], 'www.example.test');
    assert.equal(seen.forwarded, 'for=127.0.0.1;host="www.example.test";proto=http');
  });

  test('WebSocket upgrades are answered 501 with a JSON error', async () => {
    const raw = await rawRequest(srv.port, 'GET /app/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n' +
      'Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    assert.equal(statusOf(raw), 501);
    assert.equal(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)).error, 'websocket_not_supported');
  });

  test('dot segments are refused, not resolved past the prefix', async () => {
    const raw = await rawRequest(srv.port, 'GET /app/../local.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(statusOf(raw), 400);
  });

  test('connections to the upstream are kept alive and reused', async () => {
    const before = JSON.parse((await request(`${srv.url}/app/stats`)).body);
    for (let i = 0; i < 20; i++) assert.equal((await request(`${srv.url}/app/api/items`)).status, 200);
    const after = JSON.parse((await request(`${srv.url}/app/stats`)).body);
    assert.equal(after.requests - before.requests, 21);
    assert.ok(after.connections - before.connections <= 2, `${after.connections - before.connections} new connections`);
  });

  test('connections opened for a burst stay open for the next one', async () => {
    const burst = () => Promise.all(Array.from({ length: 24 }, () => request(`${srv.url}/app/slow?ms=100`)));
    for (const res of await burst()) assert.equal(res.status, 200);
    const before = JSON.parse((await request(`${srv.url}/app/stats`)).body);
    for (const res of await burst()) assert.equal(res.status, 200);
    const after = JSON.parse((await request(`${srv.url}/app/stats`)).body);
    assert.ok(after.connections - before.connections <= 2, `${after.connections - before.connections} new connections`);
  });
});

describe('reverse proxy: forwarding fields behind trusted proxies and over TLS', () => {
  let app;
  let srv;
  let ca;
  before(async () => {
    app = await startApp();
    ca = makeCA();
    const pair = ca.issue();
    srv = await startServer({
      https: true,
      args: ['--upstream', app.url, '--trusted-proxy', '127.0.0.0/8', '--tls-cert', pair.chain, '--tls-key', pair.key],
    });
  });
  after(async () => {
    await stopClean(srv);
    await app.stop();
  });

  /** The fields the application saw for a request with headers. */
  const seenFor = (headers) => new Promise((resolve, reject) => {
    const req = https.request(`${srv.url}/headers`, { headers: { Host: 'www.example.test', ...headers }, ca: fs.readFileSync(ca.cert), servername: 'localhost', agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        assert.equal(res.statusCode, 200);
        resolve(Object.fromEntries(JSON.parse(Buffer.concat(chunks)).headers.map(([k, v]) => [k.toLowerCase(), v])));
      });
    });
    req.on('error', reject);
    req.end();
  });

  test('a trusted proxy\'s X-Forwarded-* fields are appended to, and its proto and host passed on', async () => {
    const seen = await seenFor({
      'X-Forwarded-For': '203.0.113.9, 198.51.100.20',
      'X-Forwarded-Proto': 'http',
      'X-Forwarded-Host': 'public.example.test',
    });
    assert.equal(seen['x-forwarded-for'], '203.0.113.9, 198.51.100.20, 127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.equal(seen['x-forwarded-host'], 'public.example.test');
    /* It sent no Forwarded: the one the application gets starts with the client it named. */
    assert.equal(seen.forwarded, 'for=198.51.100.20, for=127.0.0.1;host="www.example.test";proto=https');
  });

  test('a trusted proxy\'s Forwarded is appended to, and names the client in X-Forwarded-For', async () => {
    const seen = await seenFor({ Forwarded: 'for="[2001:db8::7]";proto=https, for=192.0.2.60' });
    assert.equal(seen.forwarded, 'for="[2001:db8::7]";proto=https, for=192.0.2.60, for=127.0.0.1;host="www.example.test";proto=https');
    assert.equal(seen['x-forwarded-for'], '192.0.2.60, 127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'https');
    assert.equal(seen['x-forwarded-host'], 'www.example.test');
  });

  test('without forwarding fields the scheme is the listener\'s own: https', async () => {
    const seen = await seenFor({});
    assert.equal(seen['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'https');
    assert.equal(seen.forwarded, 'for=127.0.0.1;host="www.example.test";proto=https');
  });

  test('malformed fields, even from a trusted proxy, are replaced, not passed on', async () => {
    const seen = await seenFor({ 'X-Forwarded-For': 'not an address', 'X-Forwarded-Host': 'evil.example.test' });
    assert.equal(seen['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen['x-forwarded-host'], 'www.example.test');
    assert.equal(seen.forwarded, 'for=127.0.0.1;host="www.example.test";proto=https');
  });
});

describe('reverse proxy: streaming with bounded memory', () => {
  let app;
  let srv;
  before(async () => {
    app = await startApp();
    srv = await startServer({ args: ['--upstream', app.url] });
  });
  after(async () => {
    await stopClean(srv);
    await app.stop();
  });

  /** GETs /download.bin with headers, read slowly; the bytes, the answer's headers and the peak RSS growth. */
  async function slowDownload(headers) {
    await request(`${srv.url}/api/items`); /* threads and pools warmed up */
    const base = rssOf(srv.proc.pid);
    let peak = base;
    let head;
    const got = await new Promise((resolve, reject) => {
      const chunks = [];
      http.get(`${srv.url}/download.bin`, { agent: false, headers }, (res) => {
        head = res.headers;
        res.on('data', (c) => {
          chunks.push(c);
          /* Read slowly: the transfer must pause, not pile up here. */
          res.pause();
          peak = Math.max(peak, rssOf(srv.proc.pid));
          setTimeout(() => res.resume(), 2);
        });
        res.on('end', () => resolve(Buffer.concat(chunks)));
        res.on('error', reject);
      });
    });
    return { got, headers: head, growth: peak - base };
  }

  test('a 10 MiB download that is no delivery streams to a slow reader without being held', async () => {
    const want = pattern(10 * 1024 * 1024, 'download');
    const { got, headers, growth } = await slowDownload(SUBRESOURCE);
    assert.equal(headers['content-length'], String(want.length));
    assert.equal(headers['receipt-delivery'], undefined);
    assert.ok(got.equals(want), 'the bytes are the upstream\'s');
    assert.ok(growth < 4 * 1024 * 1024, `resident memory grew by ${growth} bytes`);
  });

  test('a 10 MiB delivery is read whole into --proxy-buffer and a temporary file, then sent from it', async () => {
    const want = pattern(10 * 1024 * 1024, 'download');
    const { got, headers, growth } = await slowDownload({});
    assert.equal(headers['content-length'], String(want.length));
    assert.equal(headers['repr-digest'], `sha-256=:${crypto.createHash('sha256').update(want).digest('base64')}:`);
    const id = headers['receipt-delivery'];
    assert.ok(id, 'a device\'s delivery');
    assert.ok(got.equals(want), 'the bytes are the upstream\'s');
    assert.ok(growth < 4 * 1024 * 1024, `resident memory grew by ${growth} bytes`);
    const row = await srv.until(() => srv.query(`SELECT kind, size, lower(hex(sha256)) AS sha FROM deliveries WHERE id = '${id}'`)[0]);
    assert.deepEqual(row, { kind: 'device', size: want.length, sha: sha256hex(want) });
  });

  test('a 10 MiB upload streams to the upstream without being held', async () => {
    const body = crypto.randomBytes(10 * 1024 * 1024);
    const base = rssOf(srv.proc.pid);
    let peak = base;
    const timer = setInterval(() => (peak = Math.max(peak, rssOf(srv.proc.pid))), 5);
    const res = await request(`${srv.url}/api/echo`, {
      method: 'PUT',
      body: (req) => {
        let off = 0;
        const next = () => {
          while (off < body.length) {
            const piece = body.subarray(off, off + 64 * 1024);
            off += piece.length;
            if (!req.write(piece)) return req.once('drain', next);
          }
          req.end();
        };
        next();
      },
    });
    clearInterval(timer);
    const echo = JSON.parse(res.body);
    assert.equal(echo.length, body.length);
    assert.equal(echo.sha256, sha256hex(body));
    assert.ok(peak - base < 4 * 1024 * 1024, `resident memory grew by ${peak - base} bytes`);
  });

  test('clients that go away mid-download or mid-upload leave the server well', async () => {
    for (let i = 0; i < 5; i++) {
      await new Promise((resolve) => {
        const req = http.get(`${srv.url}/download.bin`, { agent: false }, (res) => {
          res.once('data', () => { req.destroy(); resolve(); });
        });
        req.on('error', resolve);
      });
      await new Promise((resolve) => {
        const req = http.request(`${srv.url}/api/echo`, { method: 'PUT', agent: false,
          headers: { 'Content-Length': 4 * 1024 * 1024 } });
        req.on('error', resolve);
        req.write(crypto.randomBytes(256 * 1024), () => { req.destroy(); resolve(); });
      });
    }
    /* An HTTP/1.0 client gets a streamed answer of unknown length ended by the close. */
    const raw = await rawRequest(srv.port, 'GET /chunked.txt HTTP/1.0\r\nHost: x\r\n\r\n');
    assert.equal(statusOf(raw), 200);
    assert.ok(raw.endsWith('first piece\nsecond piece\nlast piece\n'), raw);
    const ok = await request(`${srv.url}/api/items`);
    assert.equal(ok.status, 200);
  });

  test('a request body over --proxy-max-body is refused with 413, by its length or as it streams', async () => {
    const small = await startServer({ args: ['--upstream', app.url, '--proxy-max-body', '1'] });
    try {
      /* Refused from the header alone: the body need not be sent. */
      const raw = await rawRequest(small.port, 'POST /api/echo HTTP/1.1\r\nHost: x\r\n' +
        `Content-Length: ${1024 * 1024 + 1}\r\n\r\n`);
      assert.equal(statusOf(raw), 413);
      assert.equal(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)).error, 'body_too_large');
      /* Chunked: refused once it has passed the limit, at its end. */
      const big = crypto.randomBytes(1536 * 1024);
      const res = await request(`${small.url}/api/echo`, {
        method: 'POST',
        headers: { 'Transfer-Encoding': 'chunked' },
        body: (req) => { req.write(big.subarray(0, 512 * 1024)); req.end(big.subarray(512 * 1024)); },
      });
      assert.equal(res.status, 413);
      assert.equal(JSON.parse(res.body).error, 'body_too_large');
    } finally {
      await stopClean(small);
    }
  });
});

describe('reverse proxy: faults', () => {
  let app;
  let srv;
  let downPort;
  before(async () => {
    app = await startApp();
    downPort = await freePort(); /* nothing listens there */
    srv = await startServer({
      args: ['--upstream', app.url, '--upstream-for', '/down/', `http://127.0.0.1:${downPort}`, '--upstream-timeout', '1'],
      logLevel: 'info',
    });
  });
  after(async () => {
    await stopClean(srv);
    await app.stop();
  });

  const expectError = async (p, status, code) => {
    const res = await request(`${srv.url}${p}`);
    assert.equal(res.status, status, `${p}: ${res.body}`);
    assert.equal(res.headers['content-type'], 'application/json');
    assert.equal(JSON.parse(res.body).error, code, p);
  };

  test('an upstream that is down gives 502, logged once a second with a count', async () => {
    for (let i = 0; i < 10; i++) await expectError('/down/page.html', 502, 'upstream_unavailable');
    await sleep(100);
    const lines = srv.log().split('\n').filter((l) => l.includes(`upstream http://127.0.0.1:${downPort} cannot connect`));
    assert.ok(lines.length >= 1 && lines.length <= 2, lines.join('\n'));
    assert.match(lines[0], /; 1 failed request since the last report$/);
    await sleep(1000);
    await expectError('/down/x', 502, 'upstream_unavailable');
    const logged = () => srv.log().split('\n').filter((l) => l.includes(`upstream http://127.0.0.1:${downPort} cannot connect`));
    const later = await srv.until(() => logged().length > lines.length && logged());
    assert.match(later[later.length - 1], /; (9|10|11) failed requests since the last report$/);
  });

  test('a slow upstream gives 504 after --upstream-timeout', async () => {
    const t0 = Date.now();
    await expectError('/slow?ms=4000', 504, 'upstream_timeout');
    assert.ok(Date.now() - t0 < 3500);
  });

  test('garbage, a closed connection and oversized header fields give 502', async () => {
    await expectError('/garbage', 502, 'upstream_bad_answer');
    await expectError('/close', 502, 'upstream_bad_answer');
    await expectError('/big-headers', 502, 'upstream_bad_answer');
  });

  test('header fields larger than the connection has room for give 502, answered, and the connection serves on', async () => {
    /* --connection-memory is 16384 by default: 8 KB of fields pass, 15 KB
     * (under the 32 KiB cap) do not fit beside the request and receiptd's own. */
    /* Subresources pass the upstream's fields; the others would be
     * deliveries, which no 502 records. */
    const fits = await request(`${srv.url}/large-headers?bytes=8000`, { headers: SUBRESOURCE });
    assert.equal(fits.status, 200);
    assert.equal(fits.headers['x-large-7'].length, 990);
    assert.equal(fits.body.toString(), 'large\n');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const res = await request(`${srv.url}/large-headers?bytes=15000`, { agent });
      assert.equal(res.status, 502);
      assert.equal(JSON.parse(res.body).error, 'upstream_headers_too_large');
      assert.equal(res.headers['x-large-0'], undefined);
      /* A long request leaves less room: 6 KB of fields no longer fit beside 9 KB of request. */
      const crowded = await request(`${srv.url}/large-headers?bytes=6000`, { agent, headers: { 'X-Pad-Request': 'p'.repeat(9000) } });
      assert.equal(crowded.status, 502);
      const after = await request(`${srv.url}/large-headers?bytes=1000`, { agent, headers: SUBRESOURCE });
      assert.equal(after.status, 200);
    } finally {
      agent.destroy();
    }
  });

  test('an answer cut mid-body never arrives complete', async () => {
    const res = await request(`${srv.url}/cut`);
    if (res.status === 200) assert.equal(res.complete && res.body.length === 100000, false);
    else assert.equal(res.status, 502);
  });

  test('no fault leaves a row', async () => {
    await sleep(200);
    assert.equal(rows(srv), 0);
  });

  test('/metrics counts upstream answers by status, failures by reason, and latency', async () => {
    await request(`${srv.url}/api/items`);
    const text = await (await fetch(`${srv.adminUrl}/metrics`)).text();
    assert.match(text, /^receiptd_upstream_responses_total\{prefix="\/",code="200"\} [1-9]\d*$/m);
    assert.match(text, /^receiptd_upstream_failures_total\{prefix="\/down\/",reason="connect"\} (1[01]|[2-9]\d)$/m);
    assert.match(text, /^receiptd_upstream_failures_total\{prefix="\/",reason="timeout"\} 1$/m);
    assert.match(text, /^receiptd_upstream_failures_total\{prefix="\/",reason="bad_answer"\} [3-9]$/m);
    assert.match(text, /^receiptd_upstream_failures_total\{prefix="\/",reason="headers_too_large"\} 2$/m);
    assert.match(text, /^receiptd_upstream_latency_seconds_bucket\{prefix="\/",le="\+Inf"\} [1-9]\d*$/m);
    assert.match(text, /^receiptd_upstream_latency_seconds_count\{prefix="\/"\} [1-9]\d*$/m);
    assert.match(text, /^receiptd_http_responses_total\{route="upstream",code="502"\} [1-9]\d*$/m);
  });

  test('a stopping server answers what still waits for an upstream, and exits 0', async () => {
    const other = await startServer({ args: ['--upstream', app.url, '--shutdown-grace', '1'] });
    const pending = request(`${other.url}/slow?ms=8000`);
    await sleep(300);
    const t0 = Date.now();
    const { code } = await other.stop();
    assert.equal(code, 0, other.log());
    const res = await pending.catch((e) => ({ status: 0, error: e }));
    assert.ok(res.status === 503 || res.status === 0, `status ${res.status}`);
    assert.ok(Date.now() - t0 < 5000);
  });
});

describe('reverse proxy: other upstreams', () => {
  test('a Unix socket upstream', async () => {
    const sock = path.join(tempDir('receipt-sock-'), 'app.sock');
    const app = await startApp({ unix: sock });
    const srv = await startServer({ args: ['--upstream', `unix:${sock}`] });
    try {
      const res = await request(`${srv.url}/headers`, { headers: { Host: 'site.example' } });
      assert.equal(res.status, 200);
      assert.equal(Object.fromEntries(JSON.parse(res.body).headers).Host, 'site.example');
    } finally {
      await stopClean(srv);
      await app.stop();
    }
  });

  test('--upstream-host sets the Host field; "upstream" sends the upstream\'s own', async () => {
    const app = await startApp();
    const fixed = await startServer({ args: ['--upstream', app.url, '--upstream-host', 'internal.example'] });
    const own = await startServer({ args: ['--upstream', app.url, '--upstream-host', 'upstream'] });
    try {
      const host = async (s) => Object.fromEntries(JSON.parse((await request(`${s.url}/headers`)).body).headers).Host;
      assert.equal(await host(fixed), 'internal.example');
      assert.equal(await host(own), `127.0.0.1:${app.port}`);
    } finally {
      await stopClean(fixed);
      await stopClean(own);
      await app.stop();
    }
  });

  test('nginx serving files, over http and over https with the certificate verified', async () => {
    const root = tempDir('receipt-nginx-root-');
    const blob = crypto.randomBytes(200 * 1024);
    fs.writeFileSync(path.join(root, 'blob.bin'), blob);
    fs.writeFileSync(path.join(root, 'note.txt'), 'a note\n');
    const certs = makeCertificates();
    const plain = await startNginx({ root });
    const tls = await startNginx({ root, tls: certs });
    const srv = await startServer({
      args: ['--upstream-for', '/files/', `${plain.url}/`, '--upstream-for', '/secure/', `https://localhost:${tls.port}/`,
        '--upstream-ca', certs.ca],
    });
    const untrusted = await startServer({ args: ['--upstream', tls.url] });
    try {
      const res = await request(`${srv.url}/files/note.txt`);
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'a note\n');
      const missing = await request(`${srv.url}/files/none.txt`);
      assert.equal(missing.status, 404);
      const secure = await request(`${srv.url}/secure/note.txt`);
      assert.equal(secure.status, 200, secure.body.toString());
      assert.equal(secure.body.toString(), 'a note\n');
      const refused = await request(`${untrusted.url}/note.txt`);
      assert.equal(refused.status, 502);
      assert.equal(JSON.parse(refused.body).error, 'upstream_tls');
    } finally {
      await stopClean(srv);
      await stopClean(untrusted);
      await plain.stop();
      await tls.stop();
    }
  });

  test('a --temp-dir that takes no file stops the start with a clear error', async () => {
    const { runReceiptd } = await import('./lib/server.mjs');
    const state = path.join(tempDir('receipt-state-'), 'state');
    const r = await runReceiptd(['--upstream', 'http://127.0.0.1:9', '--state-dir', state, '--listen', '127.0.0.1:0',
      '--admin-listen', 'off', '--temp-dir', '/nonexistent/dir']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--temp-dir \/nonexistent\/dir takes no temporary file/);
  });
});

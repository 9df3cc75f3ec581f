// Request smuggling and framing, over raw sockets: a request whose end two
// parsers could place differently is refused and its connection closed,
// nothing after it on the connection is read, and nothing is recorded.
// The cases libmicrohttpd 0.9.75 answers or rewrites itself are pinned
// down too, as docs/operations.md describes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { freePort, startServer } from './lib/server.mjs';
import { makeCA } from './lib/tls.mjs';

// Sends bytes, reads until the server closes (or timeoutMs); says which.
function exchange(port, bytes, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    const done = (closed) => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed });
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on('data', (d) => chunks.push(d));
    sock.on('end', () => done(true));
    sock.on('error', (e) => (chunks.length ? done(true) : reject(e)));
    sock.write(Buffer.from(bytes, 'latin1'));
  });
}

const statusLines = (text) => text.match(/^HTTP\/1\.[01] \d{3}[^\r\n]*/gm) || [];
const smuggled = 'GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n';
const confirmHead = 'POST /_receipt/confirm HTTP/1.1\r\nHost: x\r\nContent-Type: application/jose\r\n';

// receiptd's own refusals: status, error code, and the bytes that carry them.
const refused = [
  ['two different Content-Length values', 400, 'conflicting_length',
    `${confirmHead}Content-Length: 5\r\nContent-Length: 40\r\n\r\nhello${smuggled}`],
  ['two different Content-Length values on a GET', 400, 'conflicting_length',
    `GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 36\r\n\r\n${smuggled}`],
  ['Content-Length with Transfer-Encoding', 400, 'conflicting_length',
    `${confirmHead}Content-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`],
  ['Transfer-Encoding with Content-Length after it', 400, 'conflicting_length',
    `${confirmHead}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n${smuggled}`],
  // Chunked not the last coding: nothing says where the body ends (RFC 9112 6.3, rule 4).
  ['Transfer-Encoding: gzip', 400, 'bad_transfer_coding',
    `${confirmHead}Transfer-Encoding: gzip\r\n\r\n${smuggled}`],
  ['Transfer-Encoding: chunked, gzip', 400, 'bad_transfer_coding',
    `${confirmHead}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n${smuggled}`],
  ['Transfer-Encoding: chunked, then a field saying gzip', 400, 'bad_transfer_coding',
    `${confirmHead}Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n${smuggled}`],
  ['Transfer-Encoding: xchunked', 400, 'bad_transfer_coding',
    `${confirmHead}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${smuggled}`],
  ['Transfer-Encoding on a GET', 400, 'bad_transfer_coding',
    `GET /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n${smuggled}`],
  // Transfer-Encoding in HTTP/1.0: a 1.0 hop may have passed the chunks on undecoded (RFC 9112 6.1).
  ['Transfer-Encoding: chunked in HTTP/1.0', 400, 'bad_transfer_coding',
    `${confirmHead.replace('HTTP/1.1', 'HTTP/1.0')}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`],
  ['Transfer-Encoding: chunked on an HTTP/1.0 GET', 400, 'bad_transfer_coding',
    `GET /a.txt HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`],
  // Chunked last: the end is known, the other coding is not understood (RFC 9112 6.1).
  ['Transfer-Encoding: gzip, chunked', 501, 'unsupported_transfer_coding',
    `${confirmHead}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n${smuggled}`],
  ['Transfer-Encoding: chunked, chunked', 501, 'unsupported_transfer_coding',
    `${confirmHead}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n${smuggled}`],
  ['two Transfer-Encoding fields', 501, 'unsupported_transfer_coding',
    `${confirmHead}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`],
  ['HTTP/1.1 without Host', 400, 'bad_host', `GET /a.txt HTTP/1.1\r\n\r\n${smuggled}`],
  ['HTTP/1.1 with two Host fields', 400, 'bad_host',
    `GET /a.txt HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n${smuggled}`],
  ['a bare CR in a header value', 400, 'bad_header',
    `GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Note: a\rb\r\n\r\n${smuggled}`],
  ['a bare CR in a confirmation header', 400, 'bad_header',
    `${confirmHead}Content-Length: 5\r\nReceipt-Client-Key: a\rb\r\n\r\nhello${smuggled}`],
];

// The answer's status line and JSON body, and whether it says Connection: close.
function refusal(out) {
  const head = out.text.slice(0, out.text.indexOf('\r\n\r\n'));
  return {
    lines: statusLines(out.text),
    close: /\r\nConnection: close\r\n/i.test(head),
    body: out.text.slice(out.text.indexOf('\r\n\r\n') + 4),
    // Every field but Date, in order: what a listener adds of its own shows.
    fields: head.split('\r\n').slice(1).filter((f) => !/^Date:/i.test(f)),
  };
}

// What libmicrohttpd 0.9.75 does before receiptd sees the request: the
// status, whether the connection closes, and whether the request is served.
const library = [
  // Its error page, with the status line and headers sent twice.
  ['a negative Content-Length', { status: 400, lines: 2, closed: true, served: false },
    `${confirmHead}Content-Length: -1\r\n\r\n${smuggled}`],
  ['an overflowing Content-Length', { status: 413, lines: 2, closed: true, served: false },
    `${confirmHead}Content-Length: 99999999999999999999999\r\n\r\n${smuggled}`],
  // The value ends at the NUL: served, with the User-Agent "ab".
  ['a NUL in a header value', { status: 200, lines: 1, closed: false, served: true, agent: 'ab' },
    'GET /a.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: ab\0cd\r\n\r\n'],
  // The folded line joins the field's name ("User-Agentcd: ab"): served,
  // without a User-Agent.
  ['an obs-folded header line', { status: 200, lines: 1, closed: false, served: true, agent: null },
    'GET /a.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: ab\r\n cd\r\n\r\n'],
];

test('framing that could smuggle a request: refused, closed, nothing read after, nothing recorded', async (t) => {
  const srv = await startServer({ files: { 'a.txt': 'hello' } });
  t.after(() => srv.kill()); // also when an assertion fails
  const rows = () => srv.query('SELECT id, user_agent FROM deliveries');
  for (const [what, status, code, bytes] of refused) {
    const before = rows().length;
    const out = await exchange(srv.port, bytes);
    const lines = statusLines(out.text);
    assert.equal(lines.length, 1, `${what}: one answer, nothing read after it:\n${out.text}`);
    assert.match(lines[0], new RegExp(`^HTTP/1\\.1 ${status} `), what);
    assert.match(out.text, /\r\nConnection: close\r\n/i, what);
    assert.equal(out.closed, true, `${what}: the connection is closed`);
    const body = JSON.parse(out.text.slice(out.text.indexOf('\r\n\r\n') + 4));
    assert.equal(body.error, code, what);
    // A delivery after it lands, so the writer has caught up: nothing else did.
    const marker = await fetch(srv.url + '/a.txt');
    await marker.text();
    const id = marker.headers.get('receipt-delivery');
    await srv.until(() => rows().some((r) => r.id === id));
    assert.equal(rows().length, before + 1, `${what}: nothing recorded`);
  }
  // The same request with sound framing is served: the checks refuse only what they say.
  const ok10 = await exchange(srv.port, 'GET /a.txt HTTP/1.0\r\n\r\n');
  assert.match(statusLines(ok10.text)[0], /^HTTP\/1\.1 200 /, 'HTTP/1.0 needs no Host');
  const sameTwice = await exchange(srv.port,
    `${confirmHead}Content-Length: 2\r\nContent-Length: 2\r\nConnection: close\r\n\r\nxx`);
  assert.match(statusLines(sameTwice.text)[0], /^HTTP\/1\.1 400 /);
  assert.match(sameTwice.text, /"error":"missing_client_key"/, 'equal Content-Length values frame one body');
  assert.equal((await srv.stop()).code, 0, srv.log());
});

// The admin and --redirect-http listeners apply the same checks
// (daemon/http_framing.c) with the same answers: the status, the JSON body
// and Connection: close, before anything else is looked at (the admin
// token, the redirect's target).
test('the admin and redirect listeners refuse the same framing as the public one, with the same answer', async (t) => {
  const plain = await startServer({ files: { 'a.txt': 'hello' } });
  t.after(() => plain.kill());
  const pair = makeCA().issue();
  const redirectPort = await freePort();
  const tls = await startServer({
    https: true, files: { 'a.txt': 'hello' },
    args: ['--tls-cert', pair.chain, '--tls-key', pair.key, '--redirect-http', `127.0.0.1:${redirectPort}`],
  });
  t.after(() => tls.kill());
  // The admin API asks for a token: a malformed request is refused before that.
  const toAdmin = (bytes) => bytes.replaceAll('/_receipt/confirm', '/api/summary').replaceAll('/a.txt', '/api/summary');
  for (const [what, status, code, bytes] of refused) {
    const pub = refusal(await exchange(plain.port, bytes));
    assert.equal(pub.lines.length, 1, `public, ${what}`);
    assert.match(pub.lines[0], new RegExp(`^HTTP/1\\.1 ${status} `), `public, ${what}`);
    assert.equal(JSON.parse(pub.body).error, code, `public, ${what}`);
    for (const [listener, port, sent] of [['admin', plain.adminPort, toAdmin(bytes)], ['redirect', redirectPort, bytes]]) {
      const out = await exchange(port, sent);
      const got = refusal(out);
      const at = `${listener}, ${what}:\n${out.text}`;
      assert.equal(got.lines.length, 1, `${at}: one answer, nothing read after it`);
      assert.equal(got.lines[0], pub.lines[0], at);
      assert.equal(got.body, pub.body, `${at}: the public listener's JSON body`);
      assert.equal(got.close, true, `${at}: Connection: close`);
      assert.equal(out.closed, true, `${at}: the connection is closed`);
      // The redirect listener's answer is the public one's, field for field.
      if (listener === 'redirect') assert.deepEqual(got.fields, pub.fields, at);
    }
  }
  // What is sound is served as before: the checks refuse only what they say.
  const token = plain.adminToken();
  const ok = await exchange(plain.adminPort,
    `GET /api/summary HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Length: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
  assert.match(statusLines(ok.text)[0], /^HTTP\/1\.1 200 /, ok.text);
  const ok10 = await exchange(plain.adminPort, 'GET /api/summary HTTP/1.0\r\n\r\n');
  assert.match(statusLines(ok10.text)[0], /^HTTP\/1\.1 401 /, 'HTTP/1.0 needs no Host; then the token is asked for');
  const moved = await exchange(redirectPort, 'GET /a.txt HTTP/1.0\r\n\r\n');
  assert.match(statusLines(moved.text)[0], /^HTTP\/1\.1 308 /, moved.text);
  assert.equal((await plain.stop()).code, 0, plain.log());
  assert.equal((await tls.stop()).code, 0, tls.log());
});

test('what libmicrohttpd 0.9.75 answers or rewrites itself (docs/operations.md)', async (t) => {
  const srv = await startServer({ files: { 'a.txt': 'hello' } });
  t.after(() => srv.kill()); // also when an assertion fails
  for (const [what, want, bytes] of library) {
    const before = srv.query('SELECT count(*) AS n FROM deliveries')[0].n;
    const out = await exchange(srv.port, bytes, want.closed ? 3000 : 1500);
    const lines = statusLines(out.text);
    assert.equal(lines.length, want.lines, `${what}:\n${out.text}`);
    assert.match(lines[0], new RegExp(`^HTTP/1\\.1 ${want.status} `), what);
    assert.equal(out.closed, want.closed, what);
    if (want.served) {
      const id = /\r\nReceipt-Delivery: (\S+)\r\n/.exec(out.text)[1];
      const [row] = await srv.until(() => srv.query(`SELECT user_agent FROM deliveries WHERE id='${id}'`));
      assert.equal(row.user_agent, want.agent, what);
    } else {
      const marker = await fetch(srv.url + '/a.txt');
      await marker.text();
      await srv.until(() => srv.query('SELECT count(*) AS n FROM deliveries')[0].n > before);
      assert.equal(srv.query('SELECT count(*) AS n FROM deliveries')[0].n, before + 1, `${what}: nothing recorded`);
    }
  }
  assert.equal((await srv.stop()).code, 0, srv.log());
});

// A request answered in full or refused with 431, never closed unanswered
// when there is room for an answer: libmicrohttpd builds the response's
// header block in the connection's memory pool, after the request's own
// bytes and one record per parsed field (docs/operations.md).
test('request headers near --connection-memory: 200, or 431 while an answer still fits', async (t) => {
  const pool = 8192;
  // The longest content path a delivery may have (200 bytes): its plug-in
  // data, and so the answer's header block, is the largest.
  const long = `/${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(73)}.txt`;
  assert.equal(long.length, 200);
  const srv = await startServer({ files: { 'a.txt': 'hello', [long.slice(1)]: 'hello' }, args: ['--connection-memory', String(pool)] });
  t.after(() => srv.kill()); // also when an assertion fails
  const clientKey = 'BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU';
  const cookies = Array.from({ length: 40 }, (_, i) => `c${i}=v`).join('; ');
  const shapes = [
    ['plain', '/a.txt', '', 0],
    ['with a client key (plug-in data in the answer)', '/a.txt', `Receipt-Client-Key: ${clientKey}\r\n`, 1],
    ['with a client key, at a 200-byte path', long, `Receipt-Client-Key: ${clientKey}\r\n`, 1],
    ['with 40 cookies', '/a.txt', `Cookie: ${cookies}\r\n`, 41],
  ];
  let served = 0;
  for (const [what, target, extra, fields] of shapes) {
    const seen = { 200: 0, 431: 0 };
    for (let fill = 0; fill <= pool + 256; fill += 48) {
      const bytes = `GET ${target}?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${extra}X-Fill: ${'a'.repeat(fill)}\r\n\r\n`;
      const records = fields + 4; // Host, Connection, X-Fill, q
      const out = await exchange(srv.port, bytes);
      const line = statusLines(out.text)[0];
      const at = `${what}, ${bytes.length} bytes`;
      // the headroom grows by 3 bytes a path byte past 64 (daemon/http.c)
      if (bytes.length + records * 80 + 2300 + 3 * Math.max(0, target.length - 64) <= pool) {
        assert.match(line ?? '', /^HTTP\/1\.1 200 /, `${at}: served`);
      }
      if (bytes.length + records * 80 + 512 <= pool) {
        assert.ok(line, `${at}: answered, not closed unanswered`);
      }
      if (!line) continue;
      const status = Number(line.split(' ')[1]);
      assert.ok(status === 200 || status === 431, `${at}: ${line}`);
      seen[status]++;
      if (status === 200) {
        served++;
        if (extra.startsWith('Receipt-Client-Key')) assert.match(out.text, /\r\nReceipt-Plugin: /i, `${at}: the whole answer`);
      } else if (/\r\nContent-Type: application\/json/i.test(out.text)) {
        assert.match(out.text, /"error":"headers_too_large"/, at);
        assert.match(out.text, /\r\nConnection: close\r\n/i, at);
      }
    }
    assert.ok(seen[200] > 0 && seen[431] > 0, `${what}: both answers seen (${JSON.stringify(seen)})`);
  }
  // Only the requests answered 200 were recorded.
  await srv.until(() => srv.query('SELECT count(*) AS n FROM deliveries')[0].n >= served);
  assert.equal(srv.query('SELECT count(*) AS n FROM deliveries')[0].n, served);
  assert.equal((await srv.stop()).code, 0, srv.log());
});

test('a CORS preflight is answered and keeps its connection for the request it clears', async (t) => {
  const srv = await startServer({ files: { 'a.txt': 'hello' } });
  t.after(() => srv.kill());
  const preflight = (path, extra = '') =>
    `OPTIONS ${path} HTTP/1.1\r\nHost: x\r\nOrigin: https://pages.example\r\n` +
    'Access-Control-Request-Method: POST\r\n' +
    `Access-Control-Request-Headers: content-type, receipt-client-key\r\n${extra}\r\n`;
  for (const [path, allow] of [['/_receipt/confirm', 'POST'], ['/_receipt/plugin/x', 'GET']]) {
    // Both requests on one connection, as a browser sends them.
    const out = await exchange(srv.port,
      `${preflight(path)}GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    const lines = statusLines(out.text);
    assert.equal(lines.length, 2, `${path}: both answered on one connection:\n${out.text}`);
    assert.match(lines[0], /^HTTP\/1\.1 204 /, path);
    assert.match(lines[1], /^HTTP\/1\.1 200 /, path);
    const first = out.text.slice(0, out.text.indexOf(lines[1]));
    assert.doesNotMatch(first, /\r\nConnection: close\r\n/i, `${path}: the preflight keeps the connection`);
    assert.match(first, /\r\nAccess-Control-Allow-Origin: \*\r\n/i, path);
    assert.match(first, new RegExp(`\\r\\nAccess-Control-Allow-Methods: ${allow}\\r\\n`, 'i'), path);
    assert.match(first, /\r\nAccess-Control-Allow-Headers: [^\r]*Receipt-Client-Key/i, path);
    assert.ok(out.text.endsWith('hello'), `${path}: the request after it is served`);
  }
  // A preflight with a body is still answered; its connection then closes,
  // so that the body it did not read cannot become a request.
  const withBody = await exchange(srv.port,
    `${preflight('/_receipt/confirm', 'Content-Length: 36\r\n')}${smuggled}`);
  const lines = statusLines(withBody.text);
  assert.equal(lines.length, 1, withBody.text);
  assert.match(lines[0], /^HTTP\/1\.1 204 /);
  assert.equal(withBody.closed, true);
  assert.equal((await srv.stop()).code, 0, srv.log());
});
